"""Triangulation of 2D keypoints seen by several calibrated cameras."""
from __future__ import annotations

import numpy as np


def triangulate_dlt(pixels: np.ndarray, projections: np.ndarray, weights: np.ndarray | None = None,
                    *, min_views: int = 2) -> np.ndarray:
    """Confidence-weighted linear (DLT) triangulation, vectorised over points.

    Args:
        pixels: (C, ..., 2) undistorted pixels per camera; NaN where a view misses the point.
        projections: (C, 3, 4) camera matrices ``K [R | t]``.
        weights: (C, ...) non-negative weights (e.g. confidence); 0 drops a view.
        min_views: fewer usable views than this gives NaN.
    Returns:
        (..., 3) world points.
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    projections = np.asarray(projections, dtype=np.float64)
    c = pixels.shape[0]
    if pixels.shape[-1] != 2 or projections.shape != (c, 3, 4):
        raise ValueError(f"pixels (C, ..., 2) and projections (C, 3, 4) disagree: {pixels.shape}, {projections.shape}")
    w = np.ones(pixels.shape[:-1]) if weights is None else np.nan_to_num(np.asarray(weights, dtype=np.float64))
    usable = np.isfinite(pixels).all(-1) & (w > 0)
    w = np.where(usable, w, 0.0)
    uv = np.nan_to_num(pixels)
    batch = pixels.shape[1:-1]
    # rows u * P3 - P1 and v * P3 - P2 for every view: (..., 2C, 4)
    p = projections.reshape((c,) + (1,) * len(batch) + (3, 4))
    rows_u = uv[..., 0:1] * p[..., 2, :] - p[..., 0, :]
    rows_v = uv[..., 1:2] * p[..., 2, :] - p[..., 1, :]
    rows = np.stack([rows_u, rows_v], 1) * w[:, None, ..., None]  # (C, 2, ..., 4)
    a = np.moveaxis(rows.reshape((2 * c,) + batch + (4,)), 0, -2)  # (..., 2C, 4)
    # normalise rows for conditioning
    norm = np.linalg.norm(a, axis=-1, keepdims=True)
    a = a / np.where(norm > 0, norm, 1.0) * (norm > 0)
    _, _, vt = np.linalg.svd(a)
    x = vt[..., -1, :]
    out = x[..., :3] / x[..., 3:4]
    out[usable.sum(0) < min_views] = np.nan
    return out


def reprojection_errors(points: np.ndarray, cameras, pixels: np.ndarray) -> np.ndarray:
    """(C, ...) pixel distances between ``cameras[c].project(points)`` and ``pixels`` (C, ..., 2)."""
    return np.stack([np.linalg.norm(cam.project(points) - px, axis=-1) for cam, px in zip(cameras, pixels)])


def triangulate_resolving_swaps(pixels: np.ndarray, projections: np.ndarray, weights: np.ndarray,
                                mirror: np.ndarray, *, outlier_px: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate (C, T, J, 2) keypoints whose detector may swap left and right in some views.

    Per frame, every combination of swapped / kept views (the first view kept) is
    triangulated, and the one with the lowest median reprojection error wins; then views
    whose reprojection error exceeds ``outlier_px`` for a joint are dropped and the joint is
    triangulated again.

    Args:
        pixels: (C, T, J, 2) undistorted pixels.
        projections: (C, 3, 4) camera matrices.
        weights: (C, T, J) confidences.
        mirror: (J,) joint permutation that swaps left and right.
    Returns:
        points (T, J, 3) and swapped (C, T) bool: which views were swapped in each frame.
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    c, t = pixels.shape[:2]
    best = np.full(t, np.inf)
    swapped = np.zeros((c, t), bool)
    for combo in range(2 ** (c - 1)):
        flip = np.array([False] + [bool(combo >> i & 1) for i in range(c - 1)])
        px = np.where(flip[:, None, None, None], pixels[:, :, mirror], pixels)
        w = np.where(flip[:, None, None], weights[:, :, mirror], weights)
        pts = triangulate_dlt(px, projections, w)
        err = _pinhole_errors(pts, projections, px)
        score = np.nanmedian(err.transpose(1, 0, 2).reshape(t, -1), axis=1)
        better = score < best
        best[better] = score[better]
        swapped[:, better] = flip[:, None]
    px = np.where(swapped[..., None, None], pixels[:, :, mirror], pixels)
    w = np.where(swapped[..., None], weights[:, :, mirror], weights)
    pts = triangulate_dlt(px, projections, w)
    w = np.where(_pinhole_errors(pts, projections, px) > outlier_px, 0.0, w)
    return triangulate_dlt(px, projections, w), swapped


def _pinhole_errors(points: np.ndarray, projections: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(C, ...) distances between the pinhole projections of (..., 3) points and (C, ..., 2) pixels."""
    h = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], -1)
    x = np.einsum("cij,...j->c...i", projections, h)
    return np.linalg.norm(x[..., :2] / x[..., 2:3] - pixels, axis=-1)
