"""Foot contact, ground plane, planted-foot locking and joint limits, against
synthetic ground truth (a person who stands on the right foot and lifts the left one)."""
from __future__ import annotations

import numpy as np
import pytest

from mocap.cleanup.contact import (CONTACT_POINTS, HINGE_AXES, clamp_hinge_joints, clean_motion, fit_ground_plane,
                                   foot_contacts, foot_contacts_per_side, lock_feet)
from mocap.kinematics.ik import forward_kinematics
from mocap.eval.report import motion_report
from mocap.rotations import axis_angle_to_quat_wxyz, quat_wxyz_to_axis_angle
from mocap.skeletons import MOTION21, rest_offsets

FPS = 30.0
PARENTS = MOTION21.parents


def standing_on_right(t: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """(T, 21, 3) truth: a T-posed person waving the arms, standing on the right foot (planted
    at y = 0) and lifting the left foot (knee bent, foot kept level) during every other second;
    and (T,) bool: the left foot is down (its knee exactly straight)."""
    time = np.arange(t) / FPS
    knee = 0.8 * np.clip(np.sin(2 * np.pi * 0.5 * time), 0.0, None) ** 2
    q = np.tile([1.0, 0.0, 0.0, 0.0], (t, 21, 1))
    x_axis = np.array([1.0, 0.0, 0.0])
    q[:, MOTION21.index("left_knee")] = axis_angle_to_quat_wxyz(knee[:, None] * x_axis)
    q[:, MOTION21.index("left_ankle")] = axis_angle_to_quat_wxyz(-knee[:, None] * x_axis)
    for side in ("left", "right"):
        wave = 0.6 * np.sin(2 * np.pi * 0.7 * time)
        q[:, MOTION21.index(f"{side}_shoulder")] = axis_angle_to_quat_wxyz(wave[:, None] * np.array([0.0, 0.0, 1.0]))
    x = forward_kinematics(q, np.zeros((t, 3)), rest_offsets(), PARENTS)
    x[..., 1] -= x[0, :, 1].min()
    return x, knee == 0.0


def depth_noise(t: int, seed: int = 0, amplitude: float = 0.25) -> np.ndarray:
    """(T, 3) smooth drift along a camera ray pitched 20 degrees down (monocular depth error)."""
    rng = np.random.default_rng(seed)
    s = np.cumsum(rng.normal(size=t))
    s = np.convolve(s - s.mean(), np.ones(15) / 15, mode="same")
    s *= amplitude / np.abs(s).max()
    ray = np.array([0.0, np.sin(np.radians(20)), np.cos(np.radians(20))])
    return s[:, None] * ray + [0.0, 0.1, 0.0]


def test_fit_ground_plane_with_outliers():
    rng = np.random.default_rng(2)
    normal = np.array([0.05, 1.0, -0.1])
    normal /= np.linalg.norm(normal)
    xz = rng.uniform(-2, 2, size=(200, 2))
    pts = np.stack([xz[:, 0], np.zeros(200), xz[:, 1]], -1)
    pts[:, 1] = -(normal[0] * pts[:, 0] + normal[2] * pts[:, 2] + 0.3) / normal[1]
    pts += rng.normal(scale=0.003, size=pts.shape)
    pts[:20, 1] += rng.uniform(0.1, 0.4, 20)  # feet mislabelled as in contact
    n, d = fit_ground_plane(pts)
    assert np.degrees(np.arccos(n @ normal)) < 0.5
    assert d == pytest.approx(0.3, abs=0.005)
    with pytest.raises(ValueError, match="at least 3"):
        fit_ground_plane(np.full((5, 3), np.nan))


def test_foot_contacts_match_truth():
    x, left_down = standing_on_right()
    c = foot_contacts(x, fps=FPS, ground_height=0.0)
    side = foot_contacts_per_side(c)
    assert side[:, 1].all(), "the planted right foot is always in contact"
    # Left foot: agrees with the truth away from the lift-off / touch-down transitions.
    height = x[:, [MOTION21.index("left_heel"), MOTION21.index("left_foot_index")], 1].min(1)
    clear = (height < 0.01) | (height > 0.06)
    assert np.array_equal(side[clear, 0], left_down[clear] | (height[clear] < 0.01))
    assert 0.1 < side[:, 0].mean() < 0.9
    # The same contacts with heights relative to the lowest foot point, with the feet floating 20 cm up.
    drifted = x + np.array([0.0, 0.2, 0.0])
    assert np.array_equal(foot_contacts(drifted, fps=FPS), c)


def test_lock_feet_undoes_depth_noise():
    truth, left_down = standing_on_right()
    noisy = truth + depth_noise(len(truth))[:, None]
    detected = foot_contacts(noisy, fps=FPS)
    true_contacts = np.stack([left_down, np.ones_like(left_down)], 1)
    before = motion_report(noisy, fps=FPS, contacts=detected)
    assert before.foot_skate_mm > 5 and before.float_mm > 50
    # With the true contacts and no low-pass the root follows the planted foot exactly:
    # the noise is gone, up to one constant horizontal shift.
    res = lock_feet(noisy, true_contacts, fps=FPS, root_smooth_s=0.0)
    after = motion_report(res.joints, fps=FPS, contacts=np.repeat(true_contacts, 2, axis=1))
    assert after.foot_skate_mm < 0.1 and after.float_mm < 3.0 and after.penetration_max_mm < 0.1
    err = res.joints - truth
    err -= np.array([1.0, 0.0, 1.0]) * err[0, MOTION21.index("right_heel")]
    assert np.linalg.norm(err, axis=-1).max() < 1e-4  # 0.1 mm (a straight leg is kept 1e-9 m short of full reach)
    # With detected contacts and the default low-pass: heights off by at most the contact
    # threshold (4 cm: a foot lifting slowly is held down until it passes it).
    res = lock_feet(noisy, detected, fps=FPS)
    after = motion_report(res.joints, fps=FPS, contacts=detected)
    assert after.foot_skate_mm < 0.1 and after.float_mm < 3.0 and after.penetration_max_mm < 0.1
    err = res.joints - truth
    err -= np.array([1.0, 0.0, 1.0]) * err[0, MOTION21.index("right_heel")]
    assert np.abs(err[..., 1]).max() < 0.045 and np.abs(err[..., 1]).mean() < 0.01
    assert np.linalg.norm(err, axis=-1).mean() < 0.05
    # Leg and foot bones keep their lengths.
    p = np.array(PARENTS)
    lengths = np.linalg.norm(res.joints[:, 1:] - res.joints[:, p[1:]], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(lengths[0], lengths.shape), atol=1e-9)


def test_clean_motion_round_trip():
    """Its speed: benchmarks/bench_timings.py."""
    truth, _ = standing_on_right(t=600)
    noisy = truth + depth_noise(len(truth), seed=4)[:, None]
    quats, root, joints, contacts = clean_motion(noisy, fps=FPS, rest_offsets=rest_offsets())
    assert contacts.shape == (600, 4)
    np.testing.assert_allclose(forward_kinematics(quats, root, rest_offsets(), PARENTS), joints, atol=1e-9)
    after = motion_report(joints, fps=FPS, contacts=contacts)
    assert after.foot_skate_mm < 0.5 and after.float_mm < 2.0


def test_clamp_hinge_joints():
    t = 5
    q = np.tile([1.0, 0, 0, 0], (t, 21, 1))
    knee, elbow = MOTION21.index("left_knee"), MOTION21.index("right_elbow")
    angles = np.radians([-20.0, 0.0, 80.0, 170.0, 149.0])
    q[:, knee] = axis_angle_to_quat_wxyz(angles[:, None] * np.array(HINGE_AXES["left_knee"]))
    # An elbow with a hinge angle of 60 deg plus an off-axis swing of 10 deg.
    q[:, elbow] = axis_angle_to_quat_wxyz(np.array([np.radians(10.0), np.radians(60.0), 0.0]))
    out = clamp_hinge_joints(q)
    got = quat_wxyz_to_axis_angle(out[:, knee]) @ np.array(HINGE_AXES["left_knee"])
    np.testing.assert_allclose(np.degrees(got), [0, 0, 80, 150, 149], atol=1e-9)
    aa = quat_wxyz_to_axis_angle(out[:, elbow])
    np.testing.assert_allclose(aa[:, [0, 2]], 0, atol=1e-12)
    assert np.degrees(aa[0, 1]) == pytest.approx(60.0, abs=1.0)
    others = [j for j in range(21) if j not in (knee, elbow)]
    np.testing.assert_array_equal(out[:, others], q[:, others])
    with pytest.raises(ValueError, match="hinge"):
        clamp_hinge_joints(q, limits_deg={"spine": (0, 10)})


def test_contact_points_and_bad_input():
    assert CONTACT_POINTS == ("left_heel", "left_foot_index", "right_heel", "right_foot_index")
    with pytest.raises(ValueError, match=r"\(T, J, 3\)"):
        foot_contacts(np.zeros((4, 21)), fps=30)
    x, _ = standing_on_right(t=10)
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lock_feet(x, np.ones((10, 2), bool), fps=FPS)
    with pytest.raises(ValueError, match="fps"):
        lock_feet(np.nan_to_num(x), np.ones((10, 2), bool), fps=0.0)
