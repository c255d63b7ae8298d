"""Gravity from the scene: the straight vertical edges of the room (door frames, walls,
windows, furniture) converge on the image's vertical vanishing point, which gives the
camera's pitch and roll without looking at the person at all.

A person who leans, bends or balances on one leg says little about which way is up; a room
says it precisely. The fit (:func:`mocap.fit.fit.fit_person`) takes the vertical these lines
give when they are clear (enough of them, spread across the picture, agreeing with each
other) and near what the body suggests; otherwise it keeps the body's cue
(:func:`mocap.fit.ground.estimate_up`).

The segments come from :mod:`mocap.detect2d.lines` (the image side). Pure array functions;
camera axes x right, y down, z forward; pixels and radians:

* :func:`vertical_up`: gravity's up (camera axes) from the segments that meet at one
  vanishing point near a first guess, with its spread.
* :func:`focal_from_scene`: the focal length from the vertical vanishing point and the
  horizontal ones (a horizontal direction is at right angles to the vertical, and two walls'
  directions to each other), when several of them agree.
* :func:`rig_up`: gravity in a calibrated rig's world from its views' verticals.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class SceneUp:
    """Gravity read from the scene's vertical lines.

    Attributes:
        up: (3,) unit vector, up in camera axes (y down).
        lines: how many segments meet at the vanishing point; length_px: their total length.
        spread_rad: the vertical's uncertainty (the spread of its estimate over resampled
            segments, radians).
    """

    up: np.ndarray
    lines: int
    length_px: float
    spread_rad: float


def _angle_to(v: np.ndarray, mid: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """(N,) radians between each segment (midpoint (N, 2), unit direction (N, 2)) and the way
    from its midpoint to the homogeneous image point ``v`` (3,) (a point at infinity too);
    for points (M, 3), (M, N)."""
    v = np.asarray(v, dtype=np.float64)
    to_v = v[..., None, :2] - mid * v[..., None, 2:3]
    to_v = to_v / np.maximum(np.linalg.norm(to_v, axis=-1, keepdims=True), 1e-12)
    return np.arccos(np.clip(np.abs((to_v * direction).sum(-1)), 0.0, 1.0))


def _support(points: np.ndarray, mid: np.ndarray, direction: np.ndarray, length: np.ndarray, tolerance: float,
             allowed: np.ndarray | None = None, chunk: int = 200) -> np.ndarray:
    """(M,) for each homogeneous image point (M, 3): the total length of the segments (``length``
    (N,)) pointing at it within ``tolerance`` (only those ``allowed``, (N,) bool), worked out
    ``chunk`` points at a time."""
    out = np.zeros(len(points))
    for s in range(0, len(points), chunk):
        inl = _angle_to(points[s:s + chunk], mid, direction) < tolerance
        if allowed is not None:
            inl &= allowed
        out[s:s + chunk] = inl @ length
    return out


def _geometry(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments' ends (N, 2) each -> (length (N,), midpoint (N, 2), unit direction (N, 2))."""
    length = np.linalg.norm(q - p, axis=1)
    return length, (p + q) / 2, (q - p) / np.maximum(length, 1e-12)[:, None]


def toward(segments: np.ndarray, point: np.ndarray, tolerance: float = np.radians(0.75)) -> np.ndarray:
    """(N,) bool: the segments (N, 4) pixels that point at the homogeneous image point ``point``
    (3,) (a vanishing point; at infinity too) within ``tolerance`` radians."""
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 4)
    _, mid, direction = _geometry(seg[:, :2], seg[:, 2:])
    return _angle_to(np.asarray(point, dtype=np.float64), mid, direction) < tolerance


def _solve(normals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The direction (3,) closest to lying in every segment's plane through the camera
    (unit normals (N, 3)), weighted least squares."""
    return np.linalg.svd(normals * np.sqrt(weights)[:, None], full_matrices=False)[2][-1]


def vertical_up(segments: np.ndarray, K: np.ndarray, prior_up: np.ndarray, *, max_turn: float = np.radians(20.0),
                tolerance: float = np.radians(0.75), min_lines: int = 8, max_spread: float = np.radians(1.5),
                iterations: int = 1000, candidates: int = 20, seed: int = 0) -> SceneUp | None:
    """Up in camera axes from the segments that converge on the vertical vanishing point.

    Candidate points come from pairs of segments (RANSAC, longer segments drawn more often);
    only a point whose direction lies within ``max_turn`` of ``prior_up`` (or its opposite)
    counts, so the floor's receding edges (which meet on the horizon) and the edges across
    the picture are never taken for verticals. The point with the longest total of segments
    pointing at it (within ``tolerance``) is refined by least squares over the segments'
    planes through the camera centre; when it does not hold up (too few segments, or too
    wide a spread), the next best of up to ``candidates`` distinct points is tried.

    Args:
        segments: (N, 4) pixels (:func:`mocap.detect2d.lines.line_segments`), lens distortion negligible or removed.
        K: (3, 3) intrinsics. prior_up: (3,) up in camera axes, the first guess.
        min_lines: fewer converging segments give None; max_spread: so does a vertical that
            moves more than this (radians) when the segments are resampled (all the lines on
            one object, nearly parallel in the image, fix the roll but not the pitch).
    Returns:
        :class:`SceneUp`, or None when the scene gives no clear vertical.
    """
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 4)
    seg = seg[np.isfinite(seg).all(1)]
    K = np.asarray(K, dtype=np.float64)
    u0 = np.asarray(prior_up, dtype=np.float64)
    u0 = u0 / np.linalg.norm(u0)
    if len(seg) < min_lines:
        return None
    p, q = seg[:, :2], seg[:, 2:]
    length, mid, direction = _geometry(p, q)
    keep = _angle_to(K @ u0, mid, direction) < max_turn  # pointing roughly at the guessed vanishing point
    if keep.sum() < min_lines:
        return None
    p, q, length, mid, direction = p[keep], q[keep], length[keep], mid[keep], direction[keep]
    k_inv = np.linalg.inv(K)
    rays_p = np.c_[p, np.ones(len(p))] @ k_inv.T
    rays_q = np.c_[q, np.ones(len(q))] @ k_inv.T
    normals = np.cross(rays_p, rays_q)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    cos_max = np.cos(max_turn)

    def inliers(d: np.ndarray) -> np.ndarray:
        return _angle_to(K @ d, mid, direction) < tolerance

    rng = np.random.default_rng(seed)
    n = len(length)
    pairs = rng.choice(n, size=(iterations, 2), p=length / length.sum())
    meet = np.cross(normals[pairs[:, 0]], normals[pairs[:, 1]])  # each pair's vanishing direction
    norm = np.linalg.norm(meet, axis=1)
    ok = (pairs[:, 0] != pairs[:, 1]) & (norm >= 1e-9)
    ok[ok] = np.abs(meet[ok] @ u0) / norm[ok] >= cos_max
    meet = meet[ok] / norm[ok, None]
    score = _support(meet @ K.T, mid, direction, length, tolerance)
    tried: list[np.ndarray] = []
    for d in meet[np.argsort(-score, kind="stable")]:  # the best-supported first; one that does not hold up gives way
        if len(tried) == candidates:
            break
        if any(abs(d @ e) > np.cos(np.radians(2.0)) for e in tried):
            continue
        tried.append(d)
        found = _refined(d, inliers, normals, length, u0, cos_max, min_lines, max_spread, rng)
        if found is not None:
            return found
    return None


def _refined(d: np.ndarray, inliers, normals: np.ndarray, length: np.ndarray, u0: np.ndarray, cos_max: float,
             min_lines: int, max_spread: float, rng) -> SceneUp | None:
    """:func:`vertical_up`'s candidate direction ``d`` refined over its segments, or None."""
    for _ in range(3):
        inl = inliers(d)
        if inl.sum() < min_lines:
            return None
        d = _solve(normals[inl], length[inl])
    d = d if d @ u0 > 0 else -d
    inl = inliers(d)
    if inl.sum() < min_lines or d @ u0 < cos_max:
        return None
    # the spread: the vertical of resampled segments (a vertical resting on a few nearly
    # parallel lines moves a lot)
    idx = np.nonzero(inl)[0]
    turns = []
    for _ in range(30):
        pick = rng.choice(idx, size=len(idx))
        e = _solve(normals[pick], length[pick])
        turns.append(np.arccos(np.clip(abs(e @ d), 0.0, 1.0)))
    spread = float(np.sqrt(np.mean(np.square(turns))))
    if spread > max_spread:
        return None
    return SceneUp(up=d, lines=int(inl.sum()), length_px=float(length[inl].sum()), spread_rad=spread)


def horizontal_points(segments: np.ndarray, vertical_point: np.ndarray, *, tolerance: float = np.radians(0.75),
                      min_lines: int = 6, count: int = 3, iterations: int = 1000, seed: int = 0
                      ) -> list[tuple[np.ndarray, int, float]]:
    """The strongest vanishing points of the segments that do not point at ``vertical_point``
    (homogeneous (3,), pixels): up to ``count``, each met by at least ``min_lines`` segments
    (within ``tolerance``) not taken by a stronger one; RANSAC over pairs, then least squares.

    Returns:
        [(point (3,) homogeneous, w = 1 unless at infinity; segments; their total length px)],
        strongest first.
    """
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 4)
    p, q = seg[:, :2], seg[:, 2:]
    length, mid, direction = _geometry(p, q)
    lines = np.cross(np.c_[p, np.ones(len(p))], np.c_[q, np.ones(len(q))])
    lines /= np.maximum(np.linalg.norm(lines[:, :2], axis=1, keepdims=True), 1e-12)
    free = _angle_to(np.asarray(vertical_point, dtype=np.float64), mid, direction) >= 2.0 * tolerance
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(count):
        idx = np.nonzero(free)[0]
        if len(idx) < min_lines:
            break
        pairs = rng.choice(idx, size=(iterations, 2), p=length[idx] / length[idx].sum())
        v = np.cross(lines[pairs[:, 0]], lines[pairs[:, 1]])
        norm = np.linalg.norm(v, axis=1)
        v = v[(pairs[:, 0] != pairs[:, 1]) & (norm >= 1e-12)]
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        score = _support(v, mid, direction, length, tolerance, free)
        if not len(v) or score.max() <= 0:
            break
        best = free & (_angle_to(v[np.argmax(score)], mid, direction) < tolerance)
        if best.sum() < min_lines:
            break
        v = np.linalg.svd(lines[best] * np.sqrt(length[best])[:, None], full_matrices=False)[2][-1]
        v = v / v[2] if abs(v[2]) > 1e-12 else v
        found.append((v, int(best.sum()), float(length[best].sum())))
        free &= ~best
    return found


#: :func:`focal_from_scene`: two horizontal vanishing points whose directions (through the first
#: guess's focal length) are closer than this are one
SAME_POINT_DEG = 3.0


def focal_from_scene(segments: np.ndarray, image_size: tuple[int, int], *, agree: float = 0.06,
                     fov_range_deg: tuple[float, float] = (20.0, 110.0), min_lines: int = 8) -> float | None:
    """The focal length (pixels, square pixels, principal point at the image centre) from the
    room's vanishing points, or None when the scene does not say it clearly.

    The vertical vanishing point (:func:`vertical_up` from a level camera's guess, up to 45
    degrees off with a 67 degree field of view) and each horizontal one (:func:`horizontal_points`) give ``f^2 = -(v1 - c) .
    (v2 - c)`` (a horizontal direction is at right angles to the vertical); two horizontal
    ones do too when they are two walls' directions (at right angles). A horizontal point found
    twice (within :data:`SAME_POINT_DEG`) counts once. The estimates whose field of view lies in
    ``fov_range_deg`` (across the long side) are weighed by the segments behind their horizontal
    point (the weaker one of two horizontal points); the estimate with the most weight within
    ``agree`` of it wins, and needs another to agree with it; their weighted mean is the answer.
    (A weighted median let a weak family of stray segments, whose pairs with the vertical and
    with the strongest horizontal point happened to agree, outvote that point: 0.57 of the true
    focal length on the example darkened.)

    Args:
        segments: (N, 4) pixels (:func:`mocap.detect2d.lines.line_segments`). image_size: (width, height) pixels.
    """
    w, h = (float(v) for v in image_size)
    c = np.array([w / 2, h / 2])
    long_side = max(w, h)
    guess = 0.75 * long_side  # 67 degrees across: the middle of phones' and action cameras' range
    k0 = np.array([[guess, 0.0, c[0]], [0.0, guess, c[1]], [0.0, 0.0, 1.0]])
    vertical = vertical_up(segments, k0, np.array([0.0, -1.0, 0.0]), max_turn=np.radians(45.0), min_lines=min_lines)
    if vertical is None:
        return None
    vv = k0 @ vertical.up
    if abs(vv[2]) < 1e-9:  # verticals parallel in the picture (a level camera): no focal length in them
        vv = None
    points = []  # the horizontal ones, a point found twice (its segments split in two families) once
    for p, _, length in horizontal_points(segments, k0 @ vertical.up):
        d = np.linalg.solve(k0, p)
        d = d / np.linalg.norm(d)
        if all(abs(float(d @ e)) < np.cos(np.radians(SAME_POINT_DEG)) for _, _, e in points):
            points.append((p, length, d))
    points = [(p, length) for p, length, _ in points if abs(p[2]) > 1e-9]
    if vv is not None:
        points.insert(0, (vv / vv[2], vertical.length_px))
    f_lo, f_hi = (long_side / (2 * np.tan(np.radians(a) / 2)) for a in fov_range_deg[::-1])
    values, weights = [], []
    for a in range(len(points)):
        for b in range(a + 1, len(points)):
            f2 = -float(np.dot(points[a][0][:2] - c, points[b][0][:2] - c))
            if f2 > 0 and f_lo <= np.sqrt(f2) <= f_hi:
                values.append(np.sqrt(f2))
                # the vertical and a horizontal point: as sure as the horizontal one (the vertical
                # is in every such pair); two horizontal ones: as the weaker of the two
                weights.append(points[b][1] if vv is not None and a == 0 else min(points[a][1], points[b][1]))
    if len(values) < 2:
        return None
    values, weights = np.array(values), np.array(weights)
    near = np.abs(values[:, None] / values[None, :] - 1) < agree
    close = near[:, int(np.argmax(weights @ near))]  # the estimate with the most weight agreeing
    if close.sum() < 2:
        return None
    return float(np.average(values[close], weights=weights[close]))


def rig_up(lines: Sequence[np.ndarray | None], cameras: Sequence, *, agree: float = np.radians(3.0),
           max_turn: float = np.radians(45.0)) -> np.ndarray | None:
    """Gravity's up in a calibrated rig's world from each view's vertical lines, or None.

    Each view's segments (pixels, lens distortion undone with its camera's) give up in its
    camera's axes (:func:`vertical_up`, first guess that camera held level, up to ``max_turn``
    off), turned into the world by the camera's rotation. At least two views must agree within
    ``agree`` (radians) of the best-supported; their length-weighted mean is the answer. For
    a rig whose world is not level: one calibrated from people (its world is the first
    camera's), or a file whose world is a camera's own frame.

    Args:
        lines: per view, (N, 4) segments (:func:`mocap.detect2d.lines.line_segments`) or None.
        cameras: the rig's :class:`~mocap.camera.Camera` objects (``K``, ``R``, ``undistort_pixels``).
    """
    if len(lines) != len(cameras):
        raise ValueError(f"{len(lines)} sets of lines for {len(cameras)} cameras")
    ups, weights = [], []
    for seg, cam in zip(lines, cameras):
        if seg is None or len(seg) == 0:
            continue
        ideal = cam.undistort_pixels(np.asarray(seg, dtype=np.float64).reshape(-1, 2, 2)).reshape(-1, 4)
        found = vertical_up(ideal, cam.K, np.array([0.0, -1.0, 0.0]), max_turn=max_turn)
        if found is not None:
            ups.append(np.asarray(cam.R, dtype=np.float64).T @ found.up)
            weights.append(found.length_px)
    if len(ups) < 2:
        return None
    ups, weights = np.array(ups), np.array(weights)
    support = [(weights * (ups @ u > np.cos(agree))).sum() for u in ups]
    best = ups[int(np.argmax(support))]
    close = ups @ best > np.cos(agree)
    if close.sum() < 2:
        return None
    mean = (weights[close, None] * ups[close]).sum(0)
    return mean / np.linalg.norm(mean)
