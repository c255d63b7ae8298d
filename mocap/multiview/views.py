"""Triangulating synchronised views of one person, and reprojecting the result into each view;
who is who when the views hold several people."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mocap.camera import Camera
from mocap.formats import Keypoints2D
from mocap.multiview.association import Association, associate_people, detection_size, person_keypoints
from mocap.multiview.triangulate import (reprojection_errors, retriangulate_jumps, retriangulate_off_bones,
                                         triangulate_resolving_swaps, triangulate_robust)
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
        dropped: (T, J) bool, points the views agreed on but no set of views could fit to the
            body (off its path, or its bones far off their usual lengths): NaN in ``points``.
            None: not checked.
    """

    points: np.ndarray
    inliers: np.ndarray
    swapped: np.ndarray
    reprojection_px: np.ndarray
    dropped: np.ndarray | None = None


def triangulate_views(views: Sequence[Keypoints2D], cameras: Sequence[Camera], *, threshold_px: float = 40.0,
                      min_confidence: float = 0.3, resolve_swaps: bool = True, rigid_bones: bool = True) -> Triangulated:
    """Triangulate synchronised keypoints of C views (same layout, same T).

    Args:
        views: C Keypoints2D, distorted pixels.
        cameras: C calibrated cameras, metres.
        threshold_px: a view agrees with a point when it reprojects within this (pixels).
        min_confidence: 2D keypoints below this do not vote.
        resolve_swaps: undo the detector's left/right swaps per view and frame (3 views or more).
        rigid_bones: a joint that jumps off its own trajectory for a frame, or whose bones come out
            far off their usual length, is triangulated again from the views that fit
            (:func:`retriangulate_jumps`, :func:`retriangulate_off_bones`; 3 views or more), or
            dropped (``dropped``).
    """
    return triangulate_arrays(np.stack([v.keypoints for v in views]), np.stack([v.confidence for v in views]),
                              cameras, views[0].layout, threshold_px=threshold_px, min_confidence=min_confidence,
                              resolve_swaps=resolve_swaps, rigid_bones=rigid_bones)


def triangulate_arrays(keypoints: np.ndarray, confidence: np.ndarray, cameras: Sequence[Camera], layout: str, *,
                       threshold_px: float = 40.0, min_confidence: float = 0.3, resolve_swaps: bool = True,
                       rigid_bones: bool = True) -> Triangulated:
    """:func:`triangulate_views` of arrays: ``keypoints`` (C, T, J, 2) distorted pixels and
    ``confidence`` (C, T, J) of the skeleton called ``layout`` (any, e.g. hands42)."""
    layout = get_layout(layout)
    raw = np.asarray(keypoints, dtype=np.float64)  # (C, T, J, 2)
    conf = np.asarray(confidence, dtype=np.float64)
    w = np.where(np.isfinite(conf) & (conf >= min_confidence), conf, 0.0)
    px = np.stack([cam.undistort_pixels(k) for cam, k in zip(cameras, raw)])
    proj = np.stack([cam.projection for cam in cameras])
    swapped = np.zeros(raw.shape[:2], bool)
    if resolve_swaps and layout.left_right and len(cameras) > 2:
        mirror = layout.mirror_permutation()
        points, swapped = triangulate_resolving_swaps(px, proj, w, mirror, outlier_px=threshold_px)
        swapped = majority_orientation(swapped, (w > 0).any(-1), points, mirror)
        px = np.where(swapped[..., None, None], px[:, :, mirror], px)
        raw = np.where(swapped[..., None, None], raw[:, :, mirror], raw)
        w = np.where(swapped[..., None], w[:, :, mirror], w)
    points, inliers = triangulate_robust(px, proj, w, threshold_px=threshold_px)
    dropped = None
    if rigid_bones:
        agreed = np.isfinite(points).all(-1)
        points, inliers = retriangulate_jumps(points, inliers, px, proj, w, threshold_px=threshold_px)
        points, inliers = retriangulate_off_bones(points, inliers, px, proj, w, layout.edges, threshold_px=threshold_px)
        dropped = agreed & ~np.isfinite(points).all(-1)
    return Triangulated(points=points, inliers=inliers, swapped=swapped,
                        reprojection_px=reprojection_errors(points, cameras, raw), dropped=dropped)


def majority_orientation(swapped: np.ndarray, seen: np.ndarray, points: np.ndarray,
                         mirror: np.ndarray) -> np.ndarray:
    """Per-frame swap flags turned so that most views keep their left and right.

    Swap resolution compares the views with the first one, so a frame where the first view
    is the one swapped comes out with every other view swapped, and a mirrored body. Where
    more views that saw the person are swapped than kept, every flag of that frame is turned
    (which mirrors the frame's points); on a tie, the orientation whose points lie nearer
    the previous frame's.

    Args:
        swapped: (C, T) bool from :func:`mocap.multiview.triangulate.triangulate_resolving_swaps`.
        seen: (C, T) bool, the views with keypoints in each frame.
        points: (T, J, 3) the points triangulated with ``swapped``.
        mirror: (J,) the permutation that swaps left and right joints.
    Returns:
        (C, T) bool.
    """
    swapped = swapped.copy()
    count, total = (swapped & seen).sum(0), seen.sum(0)
    turn = 2 * count > total
    tie = 2 * count == total
    points = np.where(turn[:, None, None], points[:, mirror], points)
    for t in np.nonzero(tie & (total > 0))[0]:
        if t == 0 or not np.isfinite(points[t - 1]).any():
            continue
        kept = np.nanmean(np.linalg.norm(points[t] - points[t - 1], axis=-1))
        turned = np.nanmean(np.linalg.norm(points[t, mirror] - points[t - 1], axis=-1))
        if turned < kept:
            turn[t] = True
            points[t] = points[t, mirror]
    swapped[:, turn] = ~swapped[:, turn]
    return swapped & seen


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


def stack_slots(arrays: Sequence[np.ndarray], fill: float) -> np.ndarray:
    """C arrays (T, P_c, ...) -> (C, T, max P_c, ...), padded with ``fill`` (views of equal T)."""
    p = max(a.shape[1] for a in arrays)
    return np.stack([np.concatenate([a, np.full((a.shape[0], p - a.shape[1]) + a.shape[2:], fill, dtype=np.float64)], 1)
                     if a.shape[1] < p else np.asarray(a, np.float64) for a in arrays])


def associate_views(keypoints: np.ndarray, confidence: np.ndarray, cameras: Sequence[Camera], *, layout: str,
                    fps: float, track_ids: np.ndarray | None = None, min_confidence: float = 0.3,
                    threshold_px: float = 40.0) -> Association:
    """Who is who in synchronised views of several people (:func:`mocap.multiview.association.associate_people`).

    Args:
        keypoints: (C, T, P, J, 2) distorted pixels of every view's detection slots, NaN where empty.
        confidence: (C, T, P, J); track_ids (C, T, P) per-view 2D track ids (-1: none) or None.
        cameras: C calibrated cameras, metres.
    """
    und = np.stack([cam.undistort_pixels(k) for cam, k in zip(cameras, keypoints)])
    proj = np.stack([cam.projection for cam in cameras])
    return associate_people(und, confidence, proj, layout=layout, fps=fps, track_ids=track_ids,
                            min_confidence=min_confidence, threshold_px=threshold_px)


def person_views(keypoints: np.ndarray, confidence: np.ndarray, association: Association, person: int,
                 views: Sequence[Keypoints2D]) -> list[Keypoints2D]:
    """One associated person's keypoints in each view, as Keypoints2D like ``views`` (layout,
    image size, fps); NaN and confidence 0 where the person has no detection there."""
    kp, conf = person_keypoints(keypoints, confidence, association.labels, person)
    return [Keypoints2D(keypoints=k.astype(np.float32), confidence=c.astype(np.float32), layout=v.layout,
                        image_size=v.image_size, fps=v.fps) for k, c, v in zip(kp, conf, views)]


def missing_views(association: Association, cameras: Sequence[Camera], *, layout: str,
                  margin: float = 0.0) -> list[tuple[int, int, int, np.ndarray]]:
    """Where a person triangulated from other views has no detection in a view that should see them.

    Args:
        association: from :func:`associate_views` (its ``points``, calibration world).
        cameras: the C cameras it was made with.
        margin: share of the image a person's hip centre may lie outside it and still count.
    Returns:
        (view, frame, person id, (J, 2) distorted pixels of the person's joints projected into
        that view) for every such view and frame: where a detector could look again.
    """
    names = get_layout(layout).joint_names
    hips = [names.index("left_hip"), names.index("right_hip")]
    out = []
    for n, person in enumerate(association.ids):
        frames = np.nonzero(association.observed[n])[0]
        for c, cam in enumerate(cameras):
            have = (association.labels[c][frames] == person).any(-1)
            todo = frames[~have]
            if not todo.size:
                continue
            px = cam.project(association.points[n, todo])  # (F, J, 2)
            centre = px[:, hips].mean(1)
            w, h = cam.size
            inside = (centre[:, 0] > -margin * w) & (centre[:, 0] < (1 + margin) * w) \
                & (centre[:, 1] > -margin * h) & (centre[:, 1] < (1 + margin) * h)
            out += [(c, int(f), int(person), p) for f, p, ok in zip(todo, px, inside) if ok]
    return out


def plausible_find(found: np.ndarray, confidence: np.ndarray, expected: np.ndarray, others: np.ndarray,
                   others_confidence: np.ndarray, *, min_confidence: float = 0.3, near: float = 0.15,
                   apart: float = 0.15) -> bool:
    """Whether a detection made where a person was expected (:func:`missing_views`) is that person.

    Args:
        found: (J, 2) pixels and confidence (J,) of the detection.
        expected: (J, 2) pixels where the person's joints were expected.
        others: (P, J, 2) the view's other detections in that frame and their confidences (P, J).
        near: the detection's median joint distance to ``expected`` must be under this share
            of its size (box diagonal).
        apart: and its median joint distance to every other detection over this share: a
            network that locks onto someone already detected found nobody new.
    """
    ok = np.isfinite(found).all(-1) & (confidence >= min_confidence)
    size = float(detection_size(found, ok))
    if not ok.sum() >= 6 or not size > 0:
        return False
    with np.errstate(invalid="ignore"):
        dist = np.linalg.norm(found - expected, axis=-1)
        if not np.nanmedian(np.where(ok & np.isfinite(dist), dist, np.nan)) < near * size:
            return False
        for o, oc in zip(others, others_confidence):
            both = ok & np.isfinite(o).all(-1) & (oc >= min_confidence)
            if both.sum() >= 6 and np.median(np.linalg.norm(found - o, axis=-1)[both]) < apart * size:
                return False
    return True


def triangulate_hands(views: Sequence[Keypoints2D], cameras: Sequence[Camera], swapped: np.ndarray, *,
                      threshold_px: float = 30.0, min_confidence: float = 0.5) -> Triangulated:
    """Both hands of one person from C synchronised views.

    Args:
        views: C Keypoints2D of the same T frames with ``hand_keypoints`` (T, 42, 2) distorted
            pixels and ``hand_confidence`` (T, 42) (hands42: the body's left hand, then right;
            :mod:`mocap.detect2d.hands`), found at the wrists of each view's body as detected.
        cameras: C calibrated cameras, metres.
        swapped: (C, T) bool, the frames whose body the triangulation turned back from a
            left/right swap (:attr:`Triangulated.swapped`): the hand found at such a body's
            "left" wrist is its right hand, so those frames' two hands trade places first.
        threshold_px: a view agrees with a point when it reprojects within this (pixels).
        min_confidence: hand points under this (the hand network's presence) do not vote.
    Returns:
        :class:`Triangulated` of the hands42 points (T, 42, 3), world metres of the calibration,
        NaN where fewer than two views agree; its ``swapped`` is ``swapped``.
    """
    kp, conf, _ = hands_unswapped(views, swapped)
    tri = triangulate_arrays(kp, conf, cameras, "hands42", threshold_px=threshold_px, min_confidence=min_confidence,
                             resolve_swaps=False, rigid_bones=False)
    return Triangulated(points=tri.points, inliers=tri.inliers, swapped=np.asarray(swapped, bool),
                        reprojection_px=tri.reprojection_px)


def hands_unswapped(views: Sequence[Keypoints2D], swapped: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The views' hands with the body's left/right swaps applied (see :func:`triangulate_hands`):
    hand points (C, T, 42, 2) pixels, confidences (C, T, 42), world landmarks (C, T, 42, 3)
    metres in each view's camera axes (None when a view has none); hands42 order, float64."""
    if any(v.hand_keypoints is None for v in views):
        raise ValueError("every view needs hand_keypoints: detect the hands first (mocap.detect2d.hands)")
    mirror = get_layout("hands42").mirror_permutation()
    swapped = np.asarray(swapped, bool)
    kp = np.stack([v.hand_keypoints for v in views]).astype(np.float64)  # (C, T, 42, 2)
    if swapped.shape != kp.shape[:2]:
        raise ValueError(f"swapped must be {kp.shape[:2]} (views, frames), got {swapped.shape}")
    conf = np.nan_to_num(np.stack([v.hand_confidence for v in views]).astype(np.float64))
    world = None if any(v.hand_world is None for v in views) else np.stack([v.hand_world for v in views]).astype(np.float64)
    kp = np.where(swapped[..., None, None], kp[:, :, mirror], kp)
    conf = np.where(swapped[..., None], conf[:, :, mirror], conf)
    if world is not None:
        world = np.where(swapped[..., None, None], world[:, :, mirror], world)
    return kp, conf, world
