"""Drawing primitives of the 2D skeletons (:mod:`mocap.export.draw`): bones and joints with
cv2's anti-aliased, sub-pixel lines. Images are RGB ``(H, W, 3) uint8``, points in pixels."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

_OUTLINE_RGB = (20, 20, 20)
_SHIFT = 4  # sub-pixel bits for cv2 drawing
_SCALE = 1 << _SHIFT


def edge_side(side: np.ndarray, a: int, b: int) -> int:
    """An edge is left (right) if one end is left (right) and neither is on the other side."""
    s = {int(side[a]), int(side[b])} - {0}
    return s.pop() if len(s) == 1 else 0



def _fixed(p: np.ndarray) -> tuple[int, int]:
    """A point in pixels as cv2 fixed-point (``_SHIFT`` fractional bits), clipped to a safe range."""
    q = np.clip(np.asarray(p, dtype=np.float64), -1e6, 1e6) * _SCALE
    return int(round(q[0])), int(round(q[1]))


def draw_bones(
    img: np.ndarray,
    points: np.ndarray,
    valid: np.ndarray,
    edges: Sequence[tuple[int, int]],
    colours: Sequence[tuple[int, int, int]],
    side: np.ndarray,
    thickness: int,
    *,
    outline: tuple[int, int, int] | None = _OUTLINE_RGB,
) -> None:
    """Draw ``edges`` and joints of ``points`` (J, 2) pixels in place on ``img``; skip invalid joints.

    An outline (``thickness + 2`` wide) goes under every line and dot so the skeleton reads
    on light and dark backgrounds; joints are drawn last, so a joint's centre pixel has
    exactly its side's colour.
    """
    radius = thickness + 1
    pts = [_fixed(p) if v else None for p, v in zip(points, valid)]
    drawn = [(a, b) for a, b in edges if valid[a] and valid[b]]
    if outline is not None:
        for a, b in drawn:
            cv2.line(img, pts[a], pts[b], outline, thickness + 2, cv2.LINE_AA, _SHIFT)
    for a, b in drawn:
        cv2.line(img, pts[a], pts[b], colours[edge_side(side, a, b)], thickness, cv2.LINE_AA, _SHIFT)
    for j, p in enumerate(pts):
        if p is None:
            continue
        if outline is not None:
            cv2.circle(img, p, (radius + 1) * _SCALE, outline, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(img, p, radius * _SCALE, colours[int(side[j])], -1, cv2.LINE_AA, _SHIFT)
