"""Round trips and known values for mocap.rotations (tolerances stated per test)."""
from __future__ import annotations

import numpy as np
import pytest

from mocap.rotations import (
    EULER_ORDERS,
    axis_angle_to_quat_wxyz,
    axis_rotation_matrix,
    euler_to_matrix,
    geodesic_angle,
    matrix_to_euler,
    matrix_to_quat_wxyz,
    quat_apply_wxyz,
    quat_conjugate_wxyz,
    quat_continuous_wxyz,
    quat_multiply_wxyz,
    quat_normalize_wxyz,
    quat_wxyz_to_axis_angle,
    quat_wxyz_to_matrix,
    rotation_between_vectors,
    rotation_matrix_between_vectors,
)

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def random_quats(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def test_quat_multiply_matches_matrix_product():
    a, b = random_quats(200, 1), random_quats(200, 2)
    lhs = quat_wxyz_to_matrix(quat_multiply_wxyz(a, b))
    rhs = quat_wxyz_to_matrix(a) @ quat_wxyz_to_matrix(b)
    np.testing.assert_allclose(lhs, rhs, atol=1e-12)


def test_known_quarter_turn_about_z():
    q = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    np.testing.assert_allclose(quat_apply_wxyz(q, [1.0, 0, 0]), [0, 1, 0], atol=1e-15)
    np.testing.assert_allclose(quat_wxyz_to_matrix(q), axis_rotation_matrix(np.pi / 2, "Z"), atol=1e-15)
    np.testing.assert_allclose(euler_to_matrix([np.pi / 2, 0, 0], "ZXY"), quat_wxyz_to_matrix(q), atol=1e-15)


def test_apply_and_conjugate_leading_dims():
    q = random_quats(24, 3).reshape(2, 3, 4, 4)
    v = np.random.default_rng(4).normal(size=(2, 3, 4, 3))
    rotated = quat_apply_wxyz(q, v)
    np.testing.assert_allclose(rotated, np.einsum("...ij,...j->...i", quat_wxyz_to_matrix(q), v), atol=1e-12)
    np.testing.assert_allclose(quat_apply_wxyz(quat_conjugate_wxyz(q), rotated), v, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quat_matrix_round_trip(dtype):
    q = random_quats(1000, 5).astype(dtype)
    back = matrix_to_quat_wxyz(quat_wxyz_to_matrix(q))
    assert back.dtype == np.float64
    assert np.all(back[:, 0] >= 0)
    assert geodesic_angle(q, back).max() < TOL[dtype] * 10
    m = quat_wxyz_to_matrix(q)
    np.testing.assert_allclose(quat_wxyz_to_matrix(matrix_to_quat_wxyz(m)), m, atol=TOL[dtype] * 10)


@pytest.mark.parametrize("axis", [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0.3, -0.8, 0.1]])
def test_angle_of_pi(axis):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    q = np.concatenate([[0.0], axis])
    m = quat_wxyz_to_matrix(q)
    np.testing.assert_allclose(m, 2 * np.outer(axis, axis) - np.eye(3), atol=1e-15)
    back = matrix_to_quat_wxyz(m)
    assert geodesic_angle(q, back) < 1e-7
    aa = quat_wxyz_to_axis_angle(q)
    assert np.linalg.norm(aa) == pytest.approx(np.pi)
    assert geodesic_angle(axis_angle_to_quat_wxyz(aa), q) < 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axis_angle_round_trip(dtype):
    rng = np.random.default_rng(6)
    axis = rng.normal(size=(500, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = rng.uniform(0, np.pi - 1e-3, size=(500, 1))
    angle[:5] = [[0.0], [1e-9], [1e-7], [1e-5], [1e-3]]
    aa = (axis * angle).astype(dtype)
    back = quat_wxyz_to_axis_angle(axis_angle_to_quat_wxyz(aa))
    np.testing.assert_allclose(back, aa, atol=TOL[dtype] * 10)
    q = axis_angle_to_quat_wxyz(aa)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("order", EULER_ORDERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_euler_round_trip_all_orders(order, dtype):
    rng = np.random.default_rng(7)
    angles = np.stack([rng.uniform(-np.pi, np.pi, 400), rng.uniform(-1.5, 1.5, 400),
                       rng.uniform(-np.pi, np.pi, 400)], -1).astype(dtype)
    m = euler_to_matrix(angles, order)
    np.testing.assert_allclose(matrix_to_euler(m, order), angles, atol=TOL[dtype] * 10)
    # And from matrices of random rotations back to the same matrices.
    r = quat_wxyz_to_matrix(random_quats(400, 8)).astype(dtype)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(r, order), order), r, atol=TOL[dtype] * 10)


@pytest.mark.parametrize("order", EULER_ORDERS)
def test_euler_is_product_in_channel_order(order):
    angles = np.array([0.3, -0.7, 1.1])
    expected = (axis_rotation_matrix(angles[0], order[0]) @ axis_rotation_matrix(angles[1], order[1])
                @ axis_rotation_matrix(angles[2], order[2]))
    np.testing.assert_allclose(euler_to_matrix(angles, order), expected, atol=1e-15)


@pytest.mark.parametrize("order", EULER_ORDERS)
@pytest.mark.parametrize("middle", [np.pi / 2, -np.pi / 2])
def test_euler_gimbal_lock(order, middle):
    angles = np.array([[0.4, middle, -0.9], [2.0, middle, 1.0]])
    m = euler_to_matrix(angles, order)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(m, order), order), m, atol=1e-9)


def test_euler_order_errors():
    with pytest.raises(ValueError, match="Euler order"):
        euler_to_matrix(np.zeros(3), "XYX")
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        euler_to_matrix(np.zeros((2, 4)), "XYZ")


def test_shape_errors_name_the_bad_shape():
    with pytest.raises(ValueError, match=r"\(5, 3\)"):
        quat_wxyz_to_matrix(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        matrix_to_quat_wxyz(np.zeros((2, 2)))


def test_rotation_between_vectors():
    rng = np.random.default_rng(9)
    a = rng.normal(size=(300, 3))
    b = rng.normal(size=(300, 3)) * 3.0
    q = rotation_between_vectors(a, b)
    out = quat_apply_wxyz(q, a / np.linalg.norm(a, axis=-1, keepdims=True))
    np.testing.assert_allclose(out, b / np.linalg.norm(b, axis=-1, keepdims=True), atol=1e-12)
    # Minimal: the angle equals the angle between the vectors.
    cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    np.testing.assert_allclose(geodesic_angle(q, [1.0, 0, 0, 0]), np.arccos(np.clip(cos, -1, 1)), atol=1e-7)


@pytest.mark.parametrize("v", [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 2.0], [0.2, -0.5, 0.9]])
def test_rotation_between_parallel_and_antiparallel(v):
    v = np.asarray(v)
    same = rotation_between_vectors(v, 2 * v)
    np.testing.assert_allclose(same, [1, 0, 0, 0], atol=1e-15)
    anti = rotation_between_vectors(v, -v)
    assert np.all(np.isfinite(anti))
    assert geodesic_angle(anti, [1.0, 0, 0, 0]) == pytest.approx(np.pi)
    np.testing.assert_allclose(quat_apply_wxyz(anti, v), -v, atol=1e-12)


def test_rotation_matrix_between_vectors_is_the_same_rotation():
    """The matrix form (two reflections) against the quaternion form, including parallel,
    antiparallel (along the axes and elsewhere), zero, NaN and broadcast inputs."""
    rng = np.random.default_rng(12)
    a = rng.normal(size=(400, 3))
    b = rng.normal(size=(400, 3)) * 2.0
    b[:40] = -a[:40] * rng.uniform(0.1, 3.0, (40, 1))
    b[40:60] = 3.0 * a[40:60]
    a[60:90] = np.eye(3)[rng.integers(0, 3, 30)] * rng.choice([-1.0, 1.0], (30, 1))
    b[60:90] = -a[60:90]
    a[90:95] = 0.0
    b[95:100] = 0.0
    a[100:105] = np.nan
    r = rotation_matrix_between_vectors(a, b)
    np.testing.assert_allclose(r, quat_wxyz_to_matrix(rotation_between_vectors(a, b)), atol=1e-14)
    np.testing.assert_allclose(r[90:100], np.broadcast_to(np.eye(3), (10, 3, 3)), atol=0)
    assert np.isnan(r[100:105]).all() and np.isfinite(np.delete(r, np.s_[100:105], 0)).all()
    ok = np.r_[0:90, 105:400]
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(np.einsum("nij,nj->ni", r[ok], unit(a[ok])), unit(b[ok]), atol=1e-12)
    np.testing.assert_allclose(r[ok] @ np.swapaxes(r[ok], 1, 2), np.tile(np.eye(3), (len(ok), 1, 1)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r[ok]), 1.0, atol=1e-12)
    one = rotation_matrix_between_vectors([0.0, 1.0, 0.0], a[105:110])  # broadcasting
    np.testing.assert_array_equal(one, rotation_matrix_between_vectors(np.tile([0.0, 1.0, 0.0], (5, 1)), a[105:110]))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        rotation_matrix_between_vectors(np.zeros((2, 2)), np.zeros((2, 3)))


def test_geodesic_angle_sign_invariant():
    q1, q2 = random_quats(100, 10), random_quats(100, 11)
    ang = geodesic_angle(q1, q2)
    np.testing.assert_allclose(geodesic_angle(-q1, q2), ang, atol=1e-12)
    np.testing.assert_allclose(geodesic_angle(q1, -q2), ang, atol=1e-12)
    np.testing.assert_allclose(geodesic_angle(q1, q1), 0.0, atol=1e-7)
    assert np.all((ang >= 0) & (ang <= np.pi))
    # Against the matrix formula.
    rel = np.swapaxes(quat_wxyz_to_matrix(q1), -1, -2) @ quat_wxyz_to_matrix(q2)
    tr = np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1)
    np.testing.assert_allclose(ang, np.arccos(tr), atol=1e-6)


def test_normalize_and_continuity():
    q = quat_normalize_wxyz([[2.0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(q[0], [1, 0, 0, 0])
    assert np.all(np.isnan(q[1]))
    angles = np.linspace(0, 4 * np.pi, 50)
    seq = np.stack([np.cos(angles / 2), np.zeros(50), np.sin(angles / 2), np.zeros(50)], -1)
    seq *= np.where(np.arange(50) % 3 == 0, -1.0, 1.0)[:, None]
    seq[10] = np.nan
    cont = quat_continuous_wxyz(seq)
    finite = np.isfinite(cont).all(-1)
    dots = np.sum(cont[1:] * cont[:-1], -1)
    assert np.all(dots[finite[1:] & finite[:-1]] > 0)
    assert np.sum(cont[11] * cont[9]) > 0
    np.testing.assert_allclose(geodesic_angle(cont[finite], seq[finite]), 0, atol=1e-7)
