"""Straight segments of images: what :mod:`mocap.fit.scene` reads gravity and the focal length
from (the room's vertical and horizontal edges), found away from the people in the picture.

Pure functions of images and keypoints, pixels (x right, y down).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: people's boxes grow by this share of their height before their segments are dropped (limbs
#: are straight too; the keypoints miss hair, hands' tips and loose clothes)
BOX_MARGIN = 0.15


def line_segments(image: np.ndarray, boxes: np.ndarray | None = None, *, min_length_px: float | None = None,
                  max_side: int = 1280) -> np.ndarray:
    """Straight segments of ``image`` outside people's boxes (OpenCV's line segment detector).

    Args:
        image: (H, W, 3) uint8 RGB or (H, W) uint8 grey.
        boxes: (P, 4) people's boxes (x0, y0, x1, y1), pixels; grown by :data:`BOX_MARGIN`
            of their height; a segment whose midpoint lies in one is dropped. None: none.
        min_length_px: shorter segments are dropped (default 2.5 % of the image's long side).
        max_side: a larger image is looked at scaled down to this long side (a 1080p frame
            takes 0.05 s instead of 0.13 s on the 2-core machine; the verticals of the
            Pose2Sim rooms move by 0.1-0.6 degrees, either way).
    Returns:
        (N, 4) float64 segments (x1, y1, x2, y2), pixels.
    """
    import cv2

    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"image must be (H, W, 3) or (H, W) uint8, got {img.shape} {img.dtype}")
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    small, scale = _small(grey, max_side)
    found = cv2.createLineSegmentDetector().detect(small)[0]
    seg = np.zeros((0, 4)) if found is None else found.reshape(-1, 4).astype(np.float64) / scale
    min_len = 0.025 * max(grey.shape) if min_length_px is None else float(min_length_px)
    seg = seg[np.hypot(seg[:, 2] - seg[:, 0], seg[:, 3] - seg[:, 1]) >= min_len]
    # the picture's own edges (its frame, an encoder's dark rows, letterbox and pillarbox bars)
    # are not the room's
    x0, y0, x1, y1 = (v / scale for v in picture_box(small))
    x, y = seg[:, [0, 2]], seg[:, [1, 3]]
    edge = 4.0 / scale
    seg = seg[~(((np.abs(x - x0) < edge).all(1)) | ((np.abs(x - x1) < edge).all(1))
                | ((np.abs(y - y0) < edge).all(1)) | ((np.abs(y - y1) < edge).all(1)))]
    if boxes is not None and len(seg):
        seg = seg[~in_people_boxes((seg[:, :2] + seg[:, 2:]) / 2, boxes)]  # by their midpoints
    return seg


def _small(grey: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``grey`` scaled down to ``max_side`` on its long side (area averaging; as it is when
    smaller), and the scale (small pixels per pixel)."""
    import cv2

    scale = min(1.0, float(max_side) / max(grey.shape))
    small = grey if scale == 1.0 else cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return small, scale


#: :func:`picture_box`: a border's rows (or columns) are this even (the spread of their middle
#: 96 % of levels) and this close to the outermost one's level
BORDER_SPREAD = 12.0
BORDER_LEVEL = 10.0


def picture_box(grey: np.ndarray, *, max_share: float = 0.45) -> tuple[float, float, float, float]:
    """Where the picture is inside any even border of its frame: the dark rows some encoders pad
    with, a letterbox's bars above and below, a pillarbox's at the sides (a portrait video
    shown in a landscape frame). From each side, the rows (columns) as even as the outermost one
    (:data:`BORDER_SPREAD`) and at its level (:data:`BORDER_LEVEL`), up to ``max_share`` of
    the frame, are border; a side even as far as that is a blank picture, no border.

    Args:
        grey: (H, W) uint8 image.
    Returns:
        (x0, y0, x1, y1): the picture's first and last pixel columns and rows (the frame's
        own, 0, 0, W - 1, H - 1, without a border).
    """
    img = np.asarray(grey, dtype=np.float32)
    h, w = img.shape

    def inner(lines: np.ndarray) -> int:  # (N, L) rows from the outside in -> how many are border
        most, done, level = int(max_share * len(lines)), 0, None
        while done < most:  # in growing blocks: most frames have no border, or a thin one
            block = lines[done: min(most, done + max(16, done))]
            lo, mid, hi = np.percentile(block, [2.0, 50.0, 98.0], axis=1)
            level = mid[0] if level is None else level
            even = (hi - lo <= BORDER_SPREAD) & (np.abs(mid - level) <= BORDER_LEVEL)
            if not even.all():
                return done + int(np.argmin(even))
            done += len(block)
        return 0  # even as far as a border may reach: a blank picture, not a bar

    top, bottom = inner(img), inner(img[::-1])
    left, right = inner(img.T), inner(img.T[::-1])
    return float(left), float(top), float(w - 1 - right), float(h - 1 - bottom)


#: :func:`frames_picture_box`: bars narrower than this share of the frame's side are not told
#: (an encoder's few dark rows change nothing that uses the box)
MIN_BAR_SHARE = 0.02


def frames_picture_box(frames: Sequence[np.ndarray], max_side: int = 1280) -> np.ndarray | None:
    """Where the picture sits in a video's frames when bars surround it (letterbox, pillarbox):
    (4,) (x0, y0, x1, y1) pixels of the frame, the largest of the frames' :func:`picture_box`
    (a dark scene's edge is not a bar in every frame); None without bars of at least
    :data:`MIN_BAR_SHARE` of the side. ``frames``: (H, W, 3) uint8 RGB, same size."""
    import cv2

    boxes = []
    for frame in frames:
        grey = cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2GRAY)
        small, scale = _small(grey, max_side)
        x0, y0, x1, y1 = picture_box(small)
        h, w = grey.shape
        boxes.append([x0 / scale, y0 / scale, min(w - 1.0, (x1 + 1) / scale - 1), min(h - 1.0, (y1 + 1) / scale - 1)])
    if not boxes:
        return None
    b = np.array(boxes)
    box = np.r_[b[:, :2].min(0), b[:, 2:].max(0)]
    h, w = np.asarray(frames[0]).shape[:2]
    bars = np.array([box[0], box[1], w - 1 - box[2], h - 1 - box[3]]) / np.array([w, h, w, h])
    return box if (bars >= MIN_BAR_SHARE).any() else None


def in_people_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) bool: ``points`` (N, 2) pixels inside any of the people's ``boxes`` (P, 4) (x0, y0,
    x1, y1; rows with NaN ignored), each grown by :data:`BOX_MARGIN` of its longer side: what is
    there moves with the person, not with the background."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    b = b[np.isfinite(b).all(1)]
    if not len(b) or not len(p):
        return np.zeros(len(p), bool)
    m = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0])[:, None] * BOX_MARGIN
    b = b + np.concatenate([-m, -m, m, m], 1)
    return ((p[:, None, 0] >= b[None, :, 0]) & (p[:, None, 0] <= b[None, :, 2])
            & (p[:, None, 1] >= b[None, :, 1]) & (p[:, None, 1] <= b[None, :, 3])).any(1)


def scene_segments(frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None]) -> np.ndarray:
    """The segments (:func:`line_segments`) of a few frames of one static camera, each without
    the people in it (``boxes``: per frame, (P, 4) pixels or None), pooled: (N, 4) pixels."""
    if len(frames) != len(boxes):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} sets of boxes")
    parts = [line_segments(f, b) for f, b in zip(frames, boxes)]
    return np.concatenate(parts) if parts else np.zeros((0, 4))


def people_boxes(keypoints: np.ndarray) -> np.ndarray:
    """(P, J, 2) one frame's people's keypoints (pixels, NaN where unseen) -> (P', 4) boxes
    (x0, y0, x1, y1) of those with any keypoint seen (:func:`mocap.detect2d.tracking.keypoint_boxes`)."""
    from mocap.detect2d.tracking import keypoint_boxes

    kp = np.asarray(keypoints, dtype=np.float64)
    boxes = keypoint_boxes(kp.reshape(-1, kp.shape[-2], 2))
    return boxes[np.isfinite(boxes).all(1)]
