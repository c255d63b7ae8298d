"""Rotation conversions: flat array functions over any leading dimensions.

Quaternions are unit quaternions in (w, x, y, z) order; the order is in every name that
takes or returns one. Rotation matrices act on column vectors (``v' = R @ v``); Euler
angles are in radians. Every function accepts float32 or float64 input and returns
float64.

Euler angles follow BVH semantics: ``order="ZXY"`` means the channels ``Zrotation
Xrotation Yrotation`` with ``angles[..., 0]`` about Z, ``[..., 1]`` about X, ``[..., 2]``
about Y, and the matrix ``Rz @ Rx @ Ry`` (intrinsic rotations in the listed order).
"""
from __future__ import annotations

import numpy as np

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
_EYE3 = np.eye(3)
_EYE3.flags.writeable = False
_AXIS = {"X": 0, "Y": 1, "Z": 2}


def _as_float(x: np.ndarray, last: tuple[int, ...], name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.shape[a.ndim - len(last):] != last or a.ndim < len(last):
        want = "(..., " + ", ".join(str(n) for n in last) + ")"
        raise ValueError(f"{name} must have shape {want}, got {np.shape(x)}")
    return a


def _norm(v: np.ndarray) -> np.ndarray:
    """|v| along the last axis, kept as a length-1 axis (as np.linalg.norm, with less overhead)."""
    return np.sqrt(np.add.reduce(v * v, axis=-1, keepdims=True))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b along the last axis (as np.cross, with less overhead on small arrays)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _safe_normalize(v: np.ndarray, eps: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """(v / |v| along the last axis, zero vectors staying zero; |v| with a length-1 axis)."""
    n = _norm(v)
    big = n > eps
    return v / np.where(big, n, 1.0) * big, n


def quat_multiply_wxyz(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``).

    Args:
        a, b: (..., 4) quaternions (w, x, y, z); leading dims broadcast.
    Returns:
        (..., 4) float64.
    """
    a = _as_float(a, (4,), "a")
    b = _as_float(b, (4,), "b")
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def quat_conjugate_wxyz(q: np.ndarray) -> np.ndarray:
    """(..., 4) -> (..., 4): the conjugate (the inverse of a unit quaternion)."""
    q = _as_float(q, (4,), "q")
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_normalize_wxyz(q: np.ndarray) -> np.ndarray:
    """(..., 4) -> (..., 4) unit quaternions; a zero quaternion becomes NaN."""
    q = _as_float(q, (4,), "q")
    n = _norm(q)
    if np.isfinite(n).all():
        return np.where(n > 0, q / np.where(n > 0, n, 1.0), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, q / np.where(n > 0, n, 1.0), np.nan)


def quat_apply_wxyz(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (..., 3) by unit quaternions ``q`` (..., 4); dims broadcast."""
    q = _as_float(q, (4,), "q")
    v = _as_float(v, (3,), "v")
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * _cross(u, v)
    return v + w * t + _cross(u, t)


def quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (normalised here) -> (..., 3, 3) rotation matrices."""
    q = quat_normalize_wxyz(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1)
    return m.reshape(q.shape[:-1] + (3, 3))


# Rows m00 m01 m02 m10 ... m22; columns the 16 candidates of matrix_to_quat_wxyz, choice by choice:
# (1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01), (m21 - m12, 1 + m00 - m11 - m22,
# m01 + m10, m02 + m20), (m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21),
# (m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22).
_QUAT_CANDIDATES = np.zeros((9, 16))
for _col, _terms in enumerate([
        "+00 +11 +22", "+21 -12", "+02 -20", "+10 -01",
        "+21 -12", "+00 -11 -22", "+01 +10", "+02 +20",
        "+02 -20", "+01 +10", "-00 +11 -22", "+12 +21",
        "+10 -01", "+02 +20", "+12 +21", "-00 -11 +22"]):
    for _term in _terms.split():
        _QUAT_CANDIDATES[3 * int(_term[1]) + int(_term[2]), _col] = 1.0 if _term[0] == "+" else -1.0
_QUAT_CANDIDATES_ONE = np.eye(4).reshape(16)  # the 1 on each diagonal
_QUAT_CANDIDATES.flags.writeable = _QUAT_CANDIDATES_ONE.flags.writeable = False


def matrix_to_quat_wxyz(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions with w >= 0.

    Uses the largest of the four diagonal combinations for each matrix, so it is
    accurate at every angle including pi.
    """
    m = _as_float(m, (3, 3), "m")
    lead = m.shape[:-2]
    # Per choice (rows), 4 w^2, 4 x^2, 4 y^2 or 4 z^2 on the diagonal, and 4 times that
    # component times the others: linear in the entries of m, so one matrix product.
    cands = (m.reshape(lead + (9,)) @ _QUAT_CANDIDATES + _QUAT_CANDIDATES_ONE).reshape(lead + (4, 4))
    diag = cands.reshape(lead + (16,))[..., ::5]
    best = np.argmax(np.where(np.isnan(diag), -1.0, diag), axis=-1)
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q = quat_normalize_wxyz(q)
    return np.where(q[..., :1] < 0, -q, q)


def axis_angle_to_quat_wxyz(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors (axis * angle, radians) -> (..., 4) unit quaternions."""
    aa = _as_float(axis_angle, (3,), "axis_angle")
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * angle
    small = angle < 1e-6
    # sin(half)/angle, with its Taylor series near zero.
    scale = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / np.where(small, 1.0, angle))
    return np.concatenate([np.cos(half), aa * scale], axis=-1)


def quat_wxyz_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions -> (..., 3) rotation vectors with angle in [0, pi]."""
    q = quat_normalize_wxyz(q)
    q = np.where(q[..., :1] < 0, -q, q)
    s = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    w = q[..., :1]
    angle = 2.0 * np.arctan2(s, w)
    small = s < 1e-6
    # angle / |xyz|, which tends to 2 / w as |xyz| -> 0.
    scale = np.where(small, 2.0 / np.where(w > 0, w, 1.0), angle / np.where(small, 1.0, s))
    return q[..., 1:] * scale


def _axis_matrix(angle: np.ndarray, axis: int) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == 0:
        rows = [one, zero, zero, zero, c, -s, zero, s, c]
    elif axis == 1:
        rows = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        rows = [c, -s, zero, s, c, zero, zero, zero, one]
    return np.stack(rows, -1).reshape(angle.shape + (3, 3))


def _check_order(order: str) -> tuple[int, int, int]:
    if not isinstance(order, str) or order.upper() not in EULER_ORDERS:
        raise ValueError(f"Euler order must be one of {', '.join(EULER_ORDERS)}, got {order!r}")
    return tuple(_AXIS[c] for c in order.upper())  # type: ignore[return-value]


def axis_rotation_matrix(angle_rad: np.ndarray, axis: str) -> np.ndarray:
    """(...) angles in radians about ``axis`` ("X", "Y" or "Z") -> (..., 3, 3)."""
    if axis not in _AXIS:
        raise ValueError(f"axis must be 'X', 'Y' or 'Z', got {axis!r}")
    return _axis_matrix(np.asarray(angle_rad, dtype=np.float64), _AXIS[axis])


def euler_to_matrix(angles_rad: np.ndarray, order: str = "ZXY") -> np.ndarray:
    """(..., 3) Euler angles in radians -> (..., 3, 3); ``order="ZXY"`` gives Rz @ Rx @ Ry.

    ``angles_rad[..., k]`` is the angle about axis ``order[k]`` (BVH channel order).
    """
    axes = _check_order(order)
    a = _as_float(angles_rad, (3,), "angles_rad")
    m0, m1, m2 = (_axis_matrix(a[..., k], axes[k]) for k in range(3))
    return m0 @ m1 @ m2


def matrix_to_euler(m: np.ndarray, order: str = "ZXY") -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) Euler angles in radians, inverse of :func:`euler_to_matrix`.

    The middle angle lies in [-pi/2, pi/2], the others in (-pi, pi]. At gimbal lock (middle
    angle +-pi/2) the last angle is set to 0.
    """
    i, j, k = _check_order(order)
    m = _as_float(m, (3, 3), "m")
    # +1 for cyclic orders (XYZ, YZX, ZXY), -1 for the others.
    s = 1.0 if (j - i) % 3 == 1 else -1.0
    cos_b = np.hypot(m[..., i, i], m[..., i, j])
    b = np.arctan2(s * m[..., i, k], cos_b)
    locked = cos_b < 1e-9
    a = np.arctan2(-s * m[..., j, k], m[..., k, k])
    c = np.arctan2(-s * m[..., i, j], m[..., i, i])
    a_locked = np.arctan2(s * m[..., k, j], m[..., j, j])
    a = np.where(locked, a_locked, a)
    c = np.where(locked, 0.0, c)
    return np.stack([a, b, c], -1)


def _bisector(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit ``a``, the unit bisector ``h`` of ``a`` and ``b``, and where ``a`` or ``b`` is zero.

    The minimal rotation taking ``a`` onto ``b`` is the reflection across the plane normal to
    ``a`` followed by the one across the plane normal to ``h``. For antiparallel ``a``, ``b``,
    ``h`` is the unit ``u x a``, with ``u`` the unit ``a x e`` and ``e`` the axis least aligned
    with ``a``: the rotation is the half turn about ``u``. Shapes (..., 3), (..., 3), (..., 1).
    """
    a, na = _safe_normalize(_as_float(a, (3,), "a"))
    b, nb = _safe_normalize(_as_float(b, (3,), "b"))
    if a.shape != b.shape:
        a, b = np.broadcast_arrays(a, b)
        na, nb = np.broadcast_arrays(na, nb)
    h = a + b
    hn = _norm(h)
    anti = hn < 1e-7
    h = h / np.where(anti, 1.0, hn)
    if anti.any():
        pick = _EYE3[np.argmin(np.abs(a), axis=-1)]
        h = np.where(anti, _safe_normalize(_cross(_cross(a, pick), a))[0], h)
    return a, h, np.minimum(na, nb) <= 1e-12  # a zero vector (not NaN)


def rotation_between_vectors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimal rotation taking the direction of ``a`` onto that of ``b``, as (w, x, y, z).

    Args:
        a, b: (..., 3) vectors of any non-zero length; leading dims broadcast.
    Returns:
        (..., 4) unit quaternions (w, x, y, z) with w >= 0. Antiparallel inputs give a
        half turn about an axis perpendicular to ``a``; a zero vector gives the identity.
    """
    a, h, zero = _bisector(a, b)
    # Half-vector form: q = (a.h, a x h); antiparallel: (0, a x h), a half turn.
    q = np.concatenate([np.maximum(np.add.reduce(a * h, -1, keepdims=True), 0.0), _cross(a, h)], -1)
    if zero.any():
        q = np.where(zero, np.array([1.0, 0.0, 0.0, 0.0]), q)
    return quat_normalize_wxyz(q)


def rotation_matrix_between_vectors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`rotation_between_vectors` as (..., 3, 3) rotation matrices: ``R @ a`` is along ``b``.

    The same rotation (to float round-off), built as the product of two reflections, across
    the plane normal to ``a`` and then across the plane normal to the unit bisector ``h`` of
    ``a`` and ``b``: ``R = (I - 2 h h^T)(I - 2 a a^T)``. Antiparallel inputs take for ``h`` the
    unit vector perpendicular to ``a`` that makes the same half turn; a zero vector gives the
    identity. A dozen array operations, so it is also quick on a single pair.

    Args:
        a, b: (..., 3) vectors of any non-zero length; leading dims broadcast.
    Returns:
        (..., 3, 3) float64.
    """
    a, h, zero = _bisector(a, b)
    # I - 2 h h^T - 2 a a^T + 4 (a.h) h a^T = I - 2 (h g^T + a a^T) with g = h - 2 (a.h) a
    g = h - (2.0 * np.add.reduce(a * h, -1, keepdims=True)) * a
    r = _EYE3 - 2.0 * (h[..., :, None] * g[..., None, :] + a[..., :, None] * a[..., None, :])
    if zero.any():
        r = np.where(zero[..., None], _EYE3, r)
    return r


def geodesic_angle(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """(..., 4), (..., 4) quaternions (w, x, y, z) -> (...) angle in radians in [0, pi].

    The angle of the rotation taking ``q1`` to ``q2``; ``q`` and ``-q`` count as equal.
    """
    d = quat_multiply_wxyz(quat_conjugate_wxyz(quat_normalize_wxyz(q1)), quat_normalize_wxyz(q2))
    return 2.0 * np.arctan2(np.linalg.norm(d[..., 1:], axis=-1), np.abs(d[..., 0]))


def quat_continuous_wxyz(q: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along ``axis`` (time) so that consecutive quaternions have dot >= 0.

    The first sample along ``axis`` gets w >= 0. NaN samples are skipped: the sample after
    them is compared with the last finite one.
    """
    q = np.moveaxis(_as_float(q, (4,), "q"), axis, 0).copy()
    if q.shape[0] == 0:
        return np.moveaxis(q, 0, axis)
    prev = np.where(q[0, ..., :1] < 0, -q[0], q[0])
    prev = np.where(np.isfinite(prev), prev, np.array([1.0, 0.0, 0.0, 0.0]))
    for t in range(q.shape[0]):
        cur = q[t]
        flip = np.sum(cur * prev, -1, keepdims=True) < 0
        q[t] = np.where(flip, -cur, cur)
        prev = np.where(np.isfinite(q[t]), q[t], prev)
    return np.moveaxis(q, 0, axis)


def nearest_axis(direction: np.ndarray) -> tuple[np.ndarray, float]:
    """(the axis +-X, +-Y or +-Z nearest the unit vector ``direction`` (3,), the angle between
    them in degrees)."""
    d = np.asarray(direction, dtype=np.float64)
    k = int(np.argmax(np.abs(d)))
    axis = np.zeros(3)
    axis[k] = np.sign(d[k])
    return axis, float(np.degrees(np.arccos(min(1.0, abs(float(d[k]))))))
