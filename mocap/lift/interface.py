"""What a 2D -> 3D lifter is: the :class:`Lifter` protocol and its :class:`LiftResult`.

The lifters themselves (:mod:`mocap.lift.lifters` for the MediaPipe baseline and the choice
by name, :mod:`mocap.lift.network` for the temporal network) import these; this module
imports none of them, so the stage's imports point one way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mocap.formats import Keypoints2D


@dataclass(frozen=True)
class LiftResult:
    """Output of a lifter.

    Attributes:
        joints_cam: (T, 21, 3) float metres, MOTION21 joints relative to the pelvis, camera
            axes (x right, y down, z away from the camera); NaN where unknown.
        root_translation_cam: (T, 3) float metres, the pelvis in the camera frame, or None
            when the lifter does not estimate it (then
            :func:`mocap.lift.lifters.estimate_root_translation` does).
    """

    joints_cam: np.ndarray
    root_translation_cam: np.ndarray | None = None


class Lifter(Protocol):
    """``lift`` turns 2D keypoints into root-relative 3D in camera axes.

    A lifter may also set ``reads_confidence = True``: it was trained on missing and
    low-confidence points, so :func:`mocap.pipelines.capture.lift_keypoints` gives it the detector's
    keypoints and confidences as they are, not the gap-filled 2D (whose low-confidence points
    are replaced by interpolation).
    """

    name: str

    def lift(self, keypoints: Keypoints2D) -> LiftResult: ...
