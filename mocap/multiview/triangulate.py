"""Triangulation of 2D keypoints seen by several calibrated cameras.

Reprojection goes through :func:`mocap.camera.project_points` (a point at or behind a camera
has no pixel there: its error counts as infinite, so that view is an outlier).
"""
from __future__ import annotations

import warnings

import numpy as np

from mocap.camera import project_points


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
    with np.errstate(divide="ignore", invalid="ignore"):
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
    """(C, ...) distances between the pinhole projections of (..., 3) points and (C, ..., 2) pixels;
    inf where a finite point is at or behind a camera whose pixel is known, NaN where either is missing."""
    h = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], -1)
    err = np.linalg.norm(project_points(np.einsum("cij,...j->c...i", projections, h)) - pixels, axis=-1)
    behind = np.isnan(err) & np.isfinite(points).all(-1) & np.isfinite(pixels).all(-1)
    return np.where(behind, np.inf, err)


def _view_normals(uv: np.ndarray, projections: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-view normal-equation terms of the weighted inhomogeneous DLT.

    uv: (C, N, 2) finite pixels, projections (C, 3, 4), w (C, N) >= 0. The rows
    ``u P3 - P1`` and ``v P3 - P2`` are normalised to unit length and weighted by ``w``.
    Returns m (C, N, 6) (the upper triangle xx, xy, xz, yy, yz, zz of each 3x3 term) and
    b (C, N, 3), so a point from views S solves ``sum_S m X = -sum_S b``.
    """
    p = projections[:, None]  # (C, 1, 3, 4)
    m = np.zeros(uv.shape[:2] + (6,))
    b = np.zeros(uv.shape[:2] + (3,))
    for k in range(2):
        row = uv[..., k:k + 1] * p[..., 2, :] - p[..., k, :]  # (C, N, 4)
        row = row * (w / np.maximum(np.linalg.norm(row, axis=-1), 1e-12))[..., None]
        x, y, z, h = row[..., 0], row[..., 1], row[..., 2], row[..., 3]
        m += np.stack([x * x, x * y, x * z, y * y, y * z, z * z], -1)
        b += row[..., :3] * h[..., None]
    return m, b


def _solve_sym3(m: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``M X = -b`` for (N, 6) upper-triangle symmetric M and (N, 3) b (Cramer's rule);
    NaN where M is singular (fewer than two views)."""
    a, d, e, f, g, h = (m[..., i] for i in range(6))  # [[a, d, e], [d, f, g], [e, g, h]]
    c00, c01, c02 = f * h - g * g, e * g - d * h, d * g - e * f
    c11, c12, c22 = a * h - e * e, d * e - a * g, a * f - d * d
    det = a * c00 + d * c01 + e * c02
    scale = (a + f + h) ** 3
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_det = np.where(np.abs(det) > 1e-10 * scale, -1.0 / det, np.nan)
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([(c00 * bx + c01 * by + c02 * bz) * inv_det,
                     (c01 * bx + c11 * by + c12 * bz) * inv_det,
                     (c02 * bx + c12 * by + c22 * bz) * inv_det], -1)


def _dlt_normal(uv: np.ndarray, projections: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted inhomogeneous DLT: (C, N, 2) pixels, (C, 3, 4), (C, N) weights -> (N, 3), NaN if degenerate."""
    m, b = _view_normals(uv, projections, w)
    return _solve_sym3(m.sum(0), b.sum(0))


def _pinhole_project(points: np.ndarray, projections: np.ndarray) -> np.ndarray:
    """(N, 3) points -> (C, N, 2) pinhole pixels; NaN at or behind a camera."""
    return project_points(np.einsum("cij,nj->cni", projections[:, :, :3], points) + projections[:, None, :, 3])


def triangulate_robust(pixels: np.ndarray, projections: np.ndarray, weights: np.ndarray | None = None, *,
                       threshold_px: float = 20.0, min_views: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Confidence-weighted triangulation that rejects outlier views, vectorised over points.

    Every pair of usable views proposes a point (RANSAC over the C(C-1)/2 pairs, all points
    at once); the proposal that the most views agree with (reprojection error below
    ``threshold_px``; ties broken by the truncated error sum) wins, and the point is
    triangulated again from the agreeing views only, with their weights.

    Args:
        pixels: (C, ..., 2) undistorted pixels; NaN where a view misses the point.
        projections: (C, 3, 4) camera matrices ``K [R | t]``.
        weights: (C, ...) confidences; 0 or NaN drops a view. None: all 1.
        threshold_px: a view agrees when it reprojects within this many pixels.
        min_views: fewer agreeing views than this gives NaN.
    Returns:
        points (..., 3) world units of the projections, NaN where fewer than ``min_views``
        views agree; inliers (C, ...) bool, the views used for each point.
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    projections = np.asarray(projections, dtype=np.float64)
    c = pixels.shape[0]
    if pixels.ndim < 2 or pixels.shape[-1] != 2 or projections.shape != (c, 3, 4):
        raise ValueError(f"pixels (C, ..., 2) and projections (C, 3, 4) disagree: {pixels.shape}, {projections.shape}")
    if min_views < 2:
        raise ValueError(f"min_views must be at least 2, got {min_views}")
    batch = pixels.shape[1:-1]
    uv = pixels.reshape(c, -1, 2)
    w = np.ones(uv.shape[:2]) if weights is None else np.nan_to_num(
        np.asarray(weights, dtype=np.float64).reshape(c, -1))
    if w.shape != uv.shape[:2]:
        raise ValueError(f"weights must have shape {pixels.shape[:-1]}, got {np.shape(weights)}")
    usable = np.isfinite(uv).all(-1) & (w > 0)
    w = np.where(usable, w, 0.0)
    uv = np.where(usable[..., None], uv, 0.0)
    n = uv.shape[1]
    m, bvec = _view_normals(uv, projections, w)  # (C, N, 6), (C, N, 3)
    best_count = np.zeros(n)
    best_cost = np.full(n, np.inf)
    best_inl = np.zeros((c, n), bool)
    thr2 = threshold_px ** 2

    def errors2(x):
        e2 = ((_pinhole_project(x, projections) - uv) ** 2).sum(-1)
        return np.where(usable & np.isfinite(e2), e2, np.inf)

    for a in range(c):
        for b in range(a + 1, c):
            pair_ok = usable[a] & usable[b]
            if not pair_ok.any():
                continue
            e2 = errors2(_solve_sym3(m[a] + m[b], bvec[a] + bvec[b]))
            inl = e2 < thr2
            count = inl.sum(0).astype(float)
            cost = np.minimum(e2, thr2).sum(0)
            better = pair_ok & ((count > best_count) | ((count == best_count) & (cost < best_cost)))
            best_count[better], best_cost[better] = count[better], cost[better]
            best_inl[:, better] = inl[:, better]
    x = _solve_sym3(np.einsum("cn,cnk->nk", best_inl, m), np.einsum("cn,cnk->nk", best_inl, bvec))
    # one refinement: the views that agree with the refined point
    inl = errors2(x) < thr2
    redo = (inl != best_inl).any(0) & (inl.sum(0) >= min_views)
    if redo.any():
        x[redo] = _solve_sym3(np.einsum("cn,cnk->nk", inl[:, redo], m[:, redo]),
                              np.einsum("cn,cnk->nk", inl[:, redo], bvec[:, redo]))
        best_inl[:, redo] = inl[:, redo]
    bad = best_inl.sum(0) < min_views
    x[bad] = np.nan
    best_inl[:, bad] = False
    return x.reshape(batch + (3,)), best_inl.reshape((c,) + batch)


def retriangulate_off_bones(points: np.ndarray, inliers: np.ndarray, pixels: np.ndarray, projections: np.ndarray,
                            weights: np.ndarray, edges, *, threshold_px: float, tolerance: float = 0.2,
                            min_bone_m: float = 0.05, passes: int = 2, drop: float | None = 0.5
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Joints whose bones to their neighbours are far off the person's usual lengths, triangulated
    again from the set of views that fits the body best.

    The views' consensus (:func:`triangulate_robust`) cannot tell two views that agree on the
    right point from two that agree by chance on a wrong one (a foot the detector put on the
    other foot in two views): both pairs reproject within the threshold. A body can tell: of
    the view subsets (two views or more) that agree on a point, the one whose point keeps the
    joint's bones (``edges`` of length at least ``min_bone_m``, median over the clip) closest
    to their usual lengths wins, if it keeps them within ``tolerance`` (relative) and does
    better than the point there was.

    Args:
        points: (T, J, 3) triangulated points; inliers (C, T, J) their views.
        pixels: (C, T, J, 2) undistorted pixels, NaN where missing; projections (C, 3, 4);
            weights (C, T, J) >= 0 (0: the view does not vote).
        edges: (E, 2) joint index pairs of the layout.
    Returns:
        points and inliers, the changed joints replaced.
    """
    points = np.array(points, dtype=np.float64)
    inliers = np.array(inliers, dtype=bool)
    c, t, j = inliers.shape
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if c < 3 or t < 3 or not len(edges):
        return points, inliers
    uv = np.asarray(pixels, dtype=np.float64).reshape(c, t * j, 2)
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64)).reshape(c, t * j)
    usable = np.isfinite(uv).all(-1) & (w > 0)
    uv0 = np.where(usable[..., None], uv, 0.0)
    projections = np.asarray(projections, dtype=np.float64)
    for attempt in range(passes):
        lengths = np.linalg.norm(points[:, edges[:, 0]] - points[:, edges[:, 1]], axis=-1)  # (T, E)
        with np.errstate(all="ignore"):
            usual = np.nanmedian(np.where(np.isfinite(lengths), lengths, np.nan), 0)
        keep = np.isfinite(usual) & (usual >= min_bone_m)
        if not keep.any():
            break
        e, usual = edges[keep], usual[keep]
        # each joint's bones: (J, K) neighbour index (-1 none) and usual length
        nbr = [[] for _ in range(j)]
        for (a, b), length in zip(e, usual):
            nbr[a].append((b, length))
            nbr[b].append((a, length))
        k = max(len(n) for n in nbr)
        if k == 0:
            break
        other = np.full((j, k), -1)
        usual_len = np.full((j, k), np.nan)
        for a, n in enumerate(nbr):
            for i, (b, length) in enumerate(n):
                other[a, i], usual_len[a, i] = b, length

        def off(x: np.ndarray, frame: np.ndarray, joint: np.ndarray, worst: bool = True) -> np.ndarray:
            """(N,) the worst (else the best) relative bone error of points x (N, 3) as joint
            ``joint`` of ``frame``; -inf without a bone to a known neighbour (for the best: without
            two, as one bone alone cannot say which of its ends is wrong)."""
            o = other[joint]  # (N, K)
            q = points[frame[:, None], np.maximum(o, 0)]  # (N, K, 3)
            rel = np.abs(np.linalg.norm(x[:, None] - q, axis=-1) - usual_len[joint]) / usual_len[joint]
            known = (o >= 0) & np.isfinite(rel)
            if worst:
                return np.where(known, rel, -np.inf).max(1)
            return np.where(known.sum(1) >= 2, np.where(known, rel, np.inf).min(1), -np.inf)

        frame, joint = np.nonzero(np.isfinite(points).all(-1))
        score = off(points[frame, joint], frame, joint)
        bad = score > tolerance
        frame, joint, score = frame[bad], joint[bad], score[bad]
        if not len(frame):
            break
        flat = frame * j + joint
        m, bvec = _view_normals(uv0[:, flat], projections, np.where(usable[:, flat], w[:, flat], 0.0))
        best, best_x = score.copy(), np.full((len(flat), 3), np.nan)
        best_set = np.zeros((c, len(flat)), bool)
        for s, x, agree in _subset_points(uv0[:, flat], usable[:, flat], m, bvec, projections, threshold_px):
            sc = np.where(agree, off(np.nan_to_num(x), frame, joint), np.inf)
            better = (sc < best) & (sc <= tolerance)
            best[better], best_x[better] = sc[better], x[better]
            best_set[:, better] = s[:, None]
        fixed = np.isfinite(best_x).all(-1)
        if attempt == passes - 1 and drop is not None:
            # still far off the usual length of every bone it has (not just of one, which a wrong
            # neighbour explains): no set of views fits it to the body
            gone = ~fixed & (off(points[frame, joint], frame, joint, worst=False) > drop)
            points[frame[gone], joint[gone]] = np.nan
            inliers[:, frame[gone], joint[gone]] = False
        if not fixed.any():
            continue
        points[frame[fixed], joint[fixed]] = best_x[fixed]
        inliers[:, frame[fixed], joint[fixed]] = best_set[:, fixed]
    return points, inliers


def _subset_points(uv: np.ndarray, usable: np.ndarray, m: np.ndarray, b: np.ndarray, projections: np.ndarray,
                   threshold_px: float):
    """For every set of two views or more: (views (C,) bool, the (N, 3) points those views give,
    (N,) whether all of them see the point and reproject it within ``threshold_px``).
    uv (C, N, 2) finite pixels, usable (C, N), m and b the views' :func:`_view_normals`."""
    c = uv.shape[0]
    for code in range(1, 2 ** c):
        s = np.array([(code >> v) & 1 for v in range(c)], bool)
        if s.sum() < 2:
            continue
        ok = usable[s].all(0)
        if not ok.any():
            continue
        x = _solve_sym3(m[s].sum(0), b[s].sum(0))
        err2 = ((_pinhole_project(np.nan_to_num(x), projections) - uv) ** 2).sum(-1)
        yield s, x, ok & np.isfinite(x).all(-1) & (np.where(s[:, None], err2, 0.0) < threshold_px ** 2).all(0)


def retriangulate_jumps(points: np.ndarray, inliers: np.ndarray, pixels: np.ndarray, projections: np.ndarray,
                        weights: np.ndarray, *, threshold_px: float, jump_m: float = 0.15,
                        window: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Points that jump away from their own trajectory for a frame, triangulated again from the
    set of views that puts them back on it, or dropped.

    A joint's expected place in a frame is the median of its places in the ``window`` frames
    before and after. Where the point lies over ``jump_m`` from it, the set of views (two or
    more, agreeing within ``threshold_px``) whose point lies nearest the expected place is
    used if that point lies within ``jump_m``; else, when the neighbouring frames agree among
    themselves (all four known, within ``jump_m`` of their median), the point is dropped. A
    fast limb moves smoothly through its neighbours' median; two views agreeing on the other
    foot for a frame do not.

    Args and returns: as :func:`retriangulate_off_bones`, without the bones.
    """
    points = np.array(points, dtype=np.float64)
    inliers = np.array(inliers, dtype=bool)
    c, t, j = inliers.shape
    if c < 3 or t < 2 * window + 1:
        return points, inliers
    pad = np.pad(points, ((window, window), (0, 0), (0, 0)), constant_values=np.nan)
    around = np.stack([pad[window + d:window + d + t] for d in range(-window, window + 1) if d], 0)  # (2w, T, J, 3)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: no neighbour known
        expected = np.nanmedian(around, 0)
    gap = np.linalg.norm(points - expected, axis=-1)
    frame, joint = np.nonzero(np.isfinite(gap) & (gap > jump_m))
    if not len(frame):
        return points, inliers
    uv = np.asarray(pixels, dtype=np.float64).reshape(c, t * j, 2)
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64)).reshape(c, t * j)
    usable = np.isfinite(uv).all(-1) & (w > 0)
    flat = frame * j + joint
    uvf = np.where(usable[:, flat, None], uv[:, flat], 0.0)
    m, b = _view_normals(uvf, np.asarray(projections, dtype=np.float64), np.where(usable[:, flat], w[:, flat], 0.0))
    ref = expected[frame, joint]
    best, best_x = np.full(len(flat), np.inf), np.full((len(flat), 3), np.nan)
    best_set = np.zeros((c, len(flat)), bool)
    for s, x, agree in _subset_points(uvf, usable[:, flat], m, b, np.asarray(projections, dtype=np.float64),
                                      threshold_px):
        d = np.where(agree, np.linalg.norm(np.nan_to_num(x) - ref, axis=-1), np.inf)
        better = (d < best) & (d <= jump_m)
        best[better], best_x[better] = d[better], x[better]
        best_set[:, better] = s[:, None]
    fixed = np.isfinite(best_x).all(-1)
    points[frame[fixed], joint[fixed]] = best_x[fixed]
    inliers[:, frame[fixed], joint[fixed]] = best_set[:, fixed]
    # no set of views fits: drop it where its neighbours agree on where it should be
    nb = around[:, frame, joint]  # (2w, N, 3)
    steady = np.isfinite(nb).all((0, 2)) & (np.linalg.norm(nb - ref, axis=-1) <= jump_m).all(0)
    gone = ~fixed & steady
    points[frame[gone], joint[gone]] = np.nan
    inliers[:, frame[gone], joint[gone]] = False
    return points, inliers
