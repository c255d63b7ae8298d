"""Triangulating synchronised views of one person, and reprojecting the result into each view."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mocap.camera import Camera
from mocap.formats import Keypoints2D
from mocap.multiview.triangulate import reprojection_errors, triangulate_resolving_swaps, triangulate_robust
from mocap.skeletons import get_layout


@dataclass(frozen=True)
class Triangulated:
    """Triangulated keypoints and their diagnostics.

    Attributes:
        points: (T, J, 3) world metres of the calibration, keypoint layout joints; NaN
            where fewer than two views agree.
        inliers: (C, T, J) bool, the views each point was triangulated from.
        swapped: (C, T) bool, views whose left and right were swapped back in that frame.
        reprojection_px: (C, T, J) pixel distance between the reprojected points and the
            detected keypoints (distorted pixels); NaN where either is missing.
    """

    points: np.ndarray
    inliers: np.ndarray
    swapped: np.ndarray
    reprojection_px: np.ndarray


def triangulate_views(views: Sequence[Keypoints2D], cameras: Sequence[Camera], *, threshold_px: float = 40.0,
                      min_confidence: float = 0.3, resolve_swaps: bool = True) -> Triangulated:
    """Triangulate synchronised keypoints of C views (same layout, same T).

    Args:
        views: C Keypoints2D, distorted pixels.
        cameras: C calibrated cameras, metres.
        threshold_px: a view agrees with a point when it reprojects within this (pixels).
        min_confidence: 2D keypoints below this do not vote.
        resolve_swaps: undo the detector's left/right swaps per view and frame (3 views or more).
    """
    layout = get_layout(views[0].layout)
    raw = np.stack([v.keypoints for v in views]).astype(np.float64)  # (C, T, J, 2)
    conf = np.stack([v.confidence for v in views]).astype(np.float64)
    w = np.where(np.isfinite(conf) & (conf >= min_confidence), conf, 0.0)
    px = np.stack([cam.undistort_pixels(k) for cam, k in zip(cameras, raw)])
    proj = np.stack([cam.projection for cam in cameras])
    swapped = np.zeros(raw.shape[:2], bool)
    if resolve_swaps and layout.left_right and len(cameras) > 2:
        _, swapped = triangulate_resolving_swaps(px, proj, w, layout.mirror_permutation(),
                                                 outlier_px=threshold_px)
        mirror = layout.mirror_permutation()
        px = np.where(swapped[..., None, None], px[:, :, mirror], px)
        raw = np.where(swapped[..., None, None], raw[:, :, mirror], raw)
        w = np.where(swapped[..., None], w[:, :, mirror], w)
    points, inliers = triangulate_robust(px, proj, w, threshold_px=threshold_px)
    return Triangulated(points=points, inliers=inliers, swapped=swapped,
                        reprojection_px=reprojection_errors(points, cameras, raw))


def reproject_to_view(joints_world: np.ndarray, rotation: np.ndarray, offset: np.ndarray, camera: Camera, *,
                      start: int, num_frames: int) -> np.ndarray:
    """Joints of the levelled world frame reprojected into one view, on that view's frame numbers.

    Args:
        joints_world: (T, J, 3) metres with ``joints_world = calibration_world @ rotation.T + offset``
            (:func:`mocap.cleanup.world.level_and_ground`).
        start: the view's frame number of the synchronised frame 0 (:func:`mocap.multiview.sync.common_span`).
        num_frames: frames in the view's video.
    Returns:
        (min(start + T, num_frames), J, 2) distorted pixels; NaN before ``start``.
    """
    px = camera.project((joints_world - offset) @ rotation)  # back into the calibration's world
    frames = np.full((start + len(px),) + px.shape[1:], np.nan)
    frames[start:] = px
    return frames[: min(len(frames), num_frames)]
