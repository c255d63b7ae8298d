"""The lifting stage run on one person's keypoints: root-relative 3D and the root trajectory,
both in the camera frame."""
from __future__ import annotations

import numpy as np

from mocap.formats import Keypoints2D
from mocap.lift.lifters import LiftResult, Lifter, default_focal_px, estimate_root_translation
from mocap.skeletons import MOTION21, map_confidence, map_joints


def lift_camera_joints(lifter: Lifter, keypoints: Keypoints2D, filled: Keypoints2D) -> LiftResult:
    """Lift with ``lifter``: the detector's own ``keypoints`` for a lifter that reads
    confidences (trained on low-confidence and missing points), else the gap-filled ``filled``.

    On the real Pose2Sim video, cam03, interpolating the points under the confidence
    threshold first costs the network 9 mm PA-MPJPE (70.2 -> 79.5).
    """
    return lifter.lift(keypoints if getattr(lifter, "reads_confidence", False) else filled)


def root_trajectory(result: LiftResult, filled: Keypoints2D, *, focal_px: float | None = None,
                    min_confidence: float = 0.3) -> np.ndarray:
    """The root in the camera frame: the lifter's own, else the pelvis position that best
    reprojects the lifted joints onto the (gap-filled) 2D keypoints.

    Args:
        focal_px: focal length, pixels; None: from a 55 degree field of view.
    Returns:
        (T, 3) metres, camera frame; NaN in frames with fewer than 3 usable joints.
    """
    if result.root_translation_cam is not None:
        return result.root_translation_cam
    f = focal_px if focal_px is not None else default_focal_px(filled.image_size)
    principal = (filled.image_size[0] / 2.0, filled.image_size[1] / 2.0)
    kp = map_joints(filled.keypoints, filled.layout, MOTION21)
    conf = map_confidence(filled.confidence, filled.layout, MOTION21)
    return estimate_root_translation(result.joints_cam, kp, conf, focal_px=f, principal_px=principal,
                                     min_confidence=min_confidence)
