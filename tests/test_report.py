"""Report metrics against hand-computed values, the PNG, and ``mocap report`` on a file."""
from __future__ import annotations

import numpy as np
import pytest

from mocap.cli import main
from mocap.cleanup.contact import CONTACT_POINTS
from mocap.formats import Motion, load_motion, save_motion
from mocap.kinematics.ik import inverse_kinematics
from mocap.eval.report import motion_report, plot_report
from mocap.fit.quality import foot_skate, jitter
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


C0_RGB, C3_RGB = (31, 119, 180), (214, 39, 40)  # matplotlib's first and fourth line colours


def _read_rgb(path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"{path} is not an image"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int)


def _mask(img: np.ndarray, rgb, tol: int = 10) -> np.ndarray:
    return (np.abs(img - rgb) <= tol).all(axis=-1)


def _curve(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns of a plotted line, its lowest pixel row in each (the legend's sample sits above
    the line), and the least-squares straight line fit (slope, intercept) through them."""
    cols = np.nonzero(mask.any(axis=0))[0]
    rows = np.array([np.nonzero(mask[:, c])[0].max() for c in cols])
    return cols, rows, np.polyfit(cols, rows, 1)


def _long_dark_lines(panel: np.ndarray, axis: int) -> list[float]:
    """Rows (axis=1) or columns (axis=0) where dark pixels run across most of the panel: the
    axes' spines and the y = 0 line; adjacent ones merged."""
    dark = panel.max(axis=-1) < 80
    idx = np.nonzero(dark.sum(axis=axis) > 0.6 * panel.shape[axis])[0]
    groups = np.split(idx, np.nonzero(np.diff(idx) > 1)[0] + 1)
    return [float(g.mean()) for g in groups if len(g)]


def _foot_panel(img: np.ndarray, lo_cm: float, hi_cm: float, end_s: float):
    """The first panel (foot heights) of a report PNG: pixel row of a height in cm, pixel
    column of a time in s (axes limits: the data range plus matplotlib's 5 % margins, found
    from the spines), and the rows of the long dark lines between the spines (y = 0)."""
    panel = img[: img.shape[0] // 4]
    y_top, *between, y_bottom = _long_dark_lines(panel, axis=1)
    x_left, *_, x_right = _long_dark_lines(panel, axis=0)
    span = hi_cm - lo_cm
    row = lambda h: y_bottom - (h - lo_cm + 0.05 * span) / (1.1 * span) * (y_bottom - y_top)  # noqa: E731
    col = lambda s: x_left + (s + 0.05 * end_s) / (1.1 * end_s) * (x_right - x_left)  # noqa: E731
    return panel, row, col, between


def test_plot_draws_the_foot_heights_to_scale(tmp_path):
    """The left heel rises 0 -> 20 cm at a constant speed: in the first panel its line is
    straight, starts on the y = 0 line at t = 0 and ends at 20 cm at the last frame."""
    t = 50
    x = rest_pose(t)
    x[:, MOTION21.index("left_heel"), 1] = np.linspace(0.0, 0.2, t)
    x[:, MOTION21.index("right_heel"), 1] = 0.1
    plot_report(tmp_path / "r.png", x, fps=FPS)
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]
    img = _read_rgb(tmp_path / "r.png")
    assert img.shape == (900, 810, 3)  # figsize 9 x 10 inches at 90 dpi
    end = (t - 1) / FPS
    top, row, col, between = _foot_panel(img, 0.0, 20.0, end)
    assert len(between) == 1 and between[0] == pytest.approx(row(0.0), abs=1.5)  # the y = 0 line
    cols, heel_rows, (slope, icpt) = _curve(_mask(top, C0_RGB))
    assert np.abs(heel_rows - (slope * cols + icpt)).max() < 2.0  # a straight line
    assert cols.max() == pytest.approx(col(end), abs=3) and col(0.0) - 3 < cols.min() < col(0.0) + 8  # its start is under y = 0
    assert slope * col(0.0) + icpt == pytest.approx(row(0.0), abs=2.5)
    assert slope * col(end) + icpt == pytest.approx(row(20.0), abs=2.5)
    # the other panels are drawn: mean acceleration (red line), skate (dots), bone lengths
    panels = np.array_split(img, 4, axis=0)
    assert _mask(panels[1], C3_RGB).sum() > 300 and _mask(panels[2], C3_RGB).sum() > 100
    assert (np.ptp(panels[3], axis=-1) > 60).sum() > 500


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
    # the plots show it: the right toe's height line (drawn last, on top) rises 29.5 cm over the
    # clip before the clean-up, and lies on y = 0 after
    clean = load_motion(tmp_path / "clean.npz")
    end = (t - 1) / FPS
    for name, joints in (("motion_report.png", x), ("clean_report.png", clean.joints)):
        heights = joints[:, [MOTION21.index(n) for n in CONTACT_POINTS], 1] * 100
        top, row, col, between = _foot_panel(_read_rgb(tmp_path / name), min(0.0, heights.min()),
                                             max(5.0, heights.max()), end)  # shading reaches 5 cm
        _, _, (slope, icpt) = _curve(_mask(top, C3_RGB))
        toe = heights[:, CONTACT_POINTS.index("right_foot_index")]
        assert slope * col(0.0) + icpt == pytest.approx(row(toe[0]), abs=2.5), name
        assert slope * col(end) + icpt == pytest.approx(row(toe[-1]), abs=2.5), name
    assert toe[-1] == pytest.approx(0.0, abs=0.5) and between[0] == pytest.approx(row(0.0), abs=1.5)
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
