"""The lifting stage run on one person's keypoints: root-relative 3D and the root trajectory,
both in the camera frame."""
from __future__ import annotations

import numpy as np

from mocap.formats import Keypoints2D
from mocap.lift.lifters import LiftResult, Lifter, default_focal_px, estimate_root_translation
from mocap.skeletons import MOTION21, map_confidence, map_joints


#: A camera rolled by more than this (degrees) has its picture turned upright for the network
#: (trained with cameras within about 3 degrees of level; :func:`lift_camera_joints`'s
#: ``turn_rad``): on pose2sim_single's cam04 (rolled 26 degrees) the limbs 111 -> 83 mm off the
#: triangulation, the person's height -4.2 -> -0.6 % (docs/fit.md)
UPRIGHT_ROLL_DEG = 3.0


def picture_turn(turn_rad: float) -> np.ndarray:
    """(3, 3) the camera's turn about its optical axis that turns its picture by ``turn_rad``
    about the principal point (x right, y down: positive from +x towards +y); its (2, 2) corner
    turns the pixels."""
    c, s = np.cos(turn_rad), np.sin(turn_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def turn_pixels(pixels: np.ndarray, turn: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(..., 2) ``pixels`` turned about the centre of an ``image_size`` (width, height) picture by
    ``turn`` (:func:`picture_turn`'s (3, 3); its (2, 2) corner turns the pixels), float32."""
    c = np.array(image_size, dtype=np.float64) / 2.0
    return ((np.asarray(pixels, dtype=np.float64) - c) @ np.asarray(turn)[:2, :2].T + c).astype(np.float32)


def turned_keypoints(keypoints: Keypoints2D, turn_rad: float) -> Keypoints2D:
    """``keypoints`` as a camera turned about its optical axis by ``turn_rad`` (:func:`picture_turn`)
    sees them: the pixels turned about the picture's centre, the world landmarks (camera axes) with them."""
    import dataclasses

    r = picture_turn(turn_rad)
    kp = turn_pixels(keypoints.keypoints, r, keypoints.image_size)
    wl = keypoints.world_landmarks
    return dataclasses.replace(keypoints, keypoints=kp,
                               world_landmarks=None if wl is None else (wl.astype(np.float64) @ r.T).astype(np.float32))


def lift_camera_joints(lifter: Lifter, keypoints: Keypoints2D, filled: Keypoints2D, *,
                       focal_px: float | None = None, turn_rad: float = 0.0) -> LiftResult:
    """Lift with ``lifter``: the detector's own ``keypoints`` for a lifter that reads
    confidences (trained on low-confidence and missing points), else the gap-filled ``filled``.

    On the real Pose2Sim video, cam03, interpolating the points under the confidence
    threshold first costs the network 9 mm PA-MPJPE (70.2 -> 79.5).

    A lifter marked ``ray_centred`` (the network: trained with cameras aimed at the person,
    its input centred on the hips) answers in the axes of a camera that looks at the person;
    its joints are turned into this camera's axes (:func:`ray_to_camera`), so a person off
    the image's centre does not lean by the angle between the optical axis and their ray.

    ``turn_rad``: the picture is turned by this angle about its centre before the lift
    (:func:`turned_keypoints`), and the 3D turned back (exact for the camera: a turn about its
    optical axis); a turn that stands the person's world upright in the picture puts a rolled
    camera's 2D where the network was trained (cameras within a few degrees of level).
    """
    if turn_rad:
        r = picture_turn(turn_rad)
        lifted = lift_camera_joints(lifter, turned_keypoints(keypoints, turn_rad), turned_keypoints(filled, turn_rad),
                                    focal_px=focal_px)
        root = lifted.root_translation_cam
        return LiftResult(joints_cam=lifted.joints_cam @ r, root_translation_cam=None if root is None else root @ r)
    result = lifter.lift(keypoints if getattr(lifter, "reads_confidence", False) else filled)
    if not getattr(lifter, "ray_centred", False):
        return result
    f = focal_px if focal_px is not None else default_focal_px(filled.image_size)
    pelvis = map_joints(filled.keypoints, filled.layout, MOTION21)[:, MOTION21.index("pelvis")]
    turn = ray_to_camera(pelvis, focal_px=f, principal_px=(filled.image_size[0] / 2.0, filled.image_size[1] / 2.0))
    return LiftResult(joints_cam=np.einsum("tij,tkj->tki", turn, result.joints_cam),
                      root_translation_cam=result.root_translation_cam)


def ray_to_camera(pixels: np.ndarray, *, focal_px: float, principal_px: tuple[float, float]) -> np.ndarray:
    """(T, 3, 3) rotations from the axes of a camera aimed along each pixel's ray to the camera's.

    The smallest turn of the optical axis onto the ray (for rays off the centre by less than
    about 30 degrees it keeps the image's horizontal within a degree of a level look-at).

    Args:
        pixels: (T, 2) pixels; NaN frames are interpolated from the known ones (held at the
            ends; the centre if none is known).
        focal_px: focal length; principal_px: (c_x, c_y), pixels.
    """
    from mocap.rotations import rotation_matrix_between_vectors

    px = np.array(pixels, dtype=np.float64).reshape(-1, 2)
    known = np.isfinite(px).all(-1)
    if known.any():
        for c in range(2):
            px[:, c] = np.interp(np.arange(len(px)), np.flatnonzero(known), px[known, c])
    else:
        px[:] = principal_px
    rays = np.concatenate([(px - np.asarray(principal_px)) / float(focal_px), np.ones((len(px), 1))], -1)
    return rotation_matrix_between_vectors(np.array([0.0, 0.0, 1.0]), rays)


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
