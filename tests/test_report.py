"""Report metrics against hand-computed values, the PNG, and ``mocap report`` on a file."""
from __future__ import annotations

import numpy as np
import pytest

from mocap.cli import main
from mocap.cleanup.contact import CONTACT_POINTS
from mocap.formats import Motion, load_motion, save_motion
from mocap.kinematics.ik import inverse_kinematics
from mocap.eval.report import foot_skate, jitter, motion_report, plot_report
from mocap.skeletons import MOTION21, rest_offsets
from mocap.kinematics.ik import forward_kinematics

FPS = 50.0
PARENTS = MOTION21.parents


def rest_pose(t: int) -> np.ndarray:
    """(T, 21, 3): the rest pose standing still with its lowest point on y = 0."""
    x = forward_kinematics(np.tile([1.0, 0, 0, 0], (t, 21, 1)), np.zeros((t, 3)), rest_offsets(), PARENTS)
    x[..., 1] -= x[0, :, 1].min()
    return x


def test_jitter_of_constant_acceleration():
    t = np.arange(30) / FPS
    x = rest_pose(30) + (0.5 * 3.0 * t ** 2)[:, None, None] * np.array([0.6, 0.0, 0.8])  # 3 m/s^2
    acc = jitter(x, fps=FPS)
    np.testing.assert_allclose(acc, 3.0, rtol=1e-9)
    assert motion_report(x, fps=FPS).jitter_m_s2 == pytest.approx(3.0, rel=1e-9)


def test_skate_penetration_float_and_bone_lengths():
    t = 40
    x = rest_pose(t)
    heel = MOTION21.index("left_heel")
    # The whole body slides along +X at 2 mm per frame with every foot point in contact.
    x += (0.002 * np.arange(t))[:, None, None] * np.array([1.0, 0.0, 0.0])
    contacts = np.ones((t, 4), bool)
    contacts[:, 1] = False
    skate = foot_skate(x, contacts)
    np.testing.assert_allclose(skate[:, [0, 2, 3]], 0.002, atol=1e-12)
    assert np.isnan(skate[:, 1]).all()
    rep = motion_report(x, fps=FPS, contacts=contacts)
    assert rep.foot_skate_mm == pytest.approx(2.0, abs=1e-9)
    assert rep.contact_fraction == pytest.approx(0.75)
    assert rep.penetration_max_mm == pytest.approx(0.0, abs=1e-9) and rep.float_mm == pytest.approx(0.0, abs=1e-9)
    # Sink the body 1 cm for half the clip, lift it 3 cm for the other half.
    y = np.where(np.arange(t) < 20, -0.01, 0.03)
    sunk = x + y[:, None, None] * np.array([0.0, 1.0, 0.0])
    rep = motion_report(sunk, fps=FPS, contacts=contacts)
    assert rep.penetration_max_mm == pytest.approx(10.0, abs=1e-6)  # the toes are the lowest points
    assert rep.float_mm == pytest.approx(15.0, abs=1e-6)  # mean of 0 (sunk frames) and 30 mm
    # One bone stretched by +-10 % in alternate frames: CV 10 % for it.
    stretched = x.copy()
    scale = np.where(np.arange(t) % 2 == 0, 1.1, 0.9)
    stretched[:, heel] = x[:, MOTION21.index("left_ankle")] + scale[:, None] * (x[:, heel] - x[:, MOTION21.index("left_ankle")])
    rep = motion_report(stretched, fps=FPS, contacts=contacts)
    assert rep.bone_length_cv_max_pct == pytest.approx(10.0, rel=1e-6)
    assert rep.bone_length_cv_mean_pct == pytest.approx(10.0 / 20, rel=1e-6)


def test_plot_writes_png(tmp_path):
    x = rest_pose(20)
    plot_report(tmp_path / "r.png", x, fps=FPS)
    data = (tmp_path / "r.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]


def test_report_command_locks_feet(tmp_path, capsys):
    # A person standing on both feet whose root drifts 1 cm/frame forward and up: skating, floating feet.
    t = 60
    x = rest_pose(t) + (0.01 * np.arange(t))[:, None, None] * np.array([0.0, 0.5, 1.0])
    off = rest_offsets()
    q, root = inverse_kinematics(x, parents=PARENTS, rest_offsets=off)
    path = tmp_path / "motion.npz"
    save_motion(path, Motion(joints=x, joint_names=MOTION21.joint_names, parents=PARENTS, fps=FPS,
                             local_quats_wxyz=q, root_translation=root, rest_offsets=off))
    rc = main(["report", str(path), "--cleaned", str(tmp_path / "clean.npz")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "foot skate: 10.00 mm per contact frame" in out  # the horizontal 1 cm per frame
    assert "feet above the ground: 147.5 mm" in out  # 5 mm per frame over 60 frames: mean 147.5 mm
    assert (tmp_path / "motion_report.png").is_file() and (tmp_path / "clean_report.png").is_file()
    clean = load_motion(tmp_path / "clean.npz")
    rep = motion_report(clean.joints, fps=FPS, contacts=np.ones((t, 4), bool))
    assert rep.foot_skate_mm < 0.01 and rep.float_mm < 0.01 and rep.penetration_max_mm < 0.01
    # The pose itself is kept: joints relative to the root unchanged up to the legs' IK,
    # which takes up what the low-passed root shift leaves (a few mm at the clip's ends).
    rel = clean.joints - clean.joints[:, :1]
    assert np.abs(rel - (x - x[:, :1])).max() < 0.003
    assert len(CONTACT_POINTS) == 4


def test_smoothing_meets_the_jitter_target():
    """The offline Butterworth (6 Hz) on a synthetic person with 1 cm of per-frame noise:
    jitter down by at least 70 %, MPJPE against the truth up by at most 2 mm (here it falls)."""
    from mocap.cleanup.filters import butterworth

    from tests.synthetic import waving_walker

    truth = waving_walker(300, 30.0)
    noisy = truth + np.random.default_rng(0).normal(0.0, 0.01, truth.shape)
    smooth = butterworth(noisy, fps=30.0, cutoff_hz=6.0)
    raw_j, smooth_j = jitter(noisy, fps=30.0).mean(), jitter(smooth, fps=30.0).mean()
    assert smooth_j < 0.3 * raw_j
    mpjpe = lambda x: np.linalg.norm(x - truth, axis=-1).mean()  # noqa: E731
    assert mpjpe(smooth) <= mpjpe(noisy) + 0.002
