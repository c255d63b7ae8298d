"""Robust multi-view triangulation against known 3D motion seen by known cameras."""
import numpy as np
import pytest

from mocap.io.bvh import read_bvh
from mocap.kinematics.ik import bvh_joint_positions
from mocap.multiview.triangulate import triangulate_robust
from tests.conftest import shared_path
from tests.multiview_helpers import observe, ring_rig
from tests.synthetic import waving_walker


def _undistorted(cams, px):
    return np.stack([c.undistort_pixels(p) for c, p in zip(cams, px)])


def _corrupt(px, rng, *, drop=0.2, outliers=0.1):
    """Drop a share of the observations (NaN) and move another share by 60-300 px."""
    px = px.copy()
    u = rng.random(px.shape[:-1])
    px[u < drop] = np.nan
    bad = (u >= drop) & (u < drop + outliers)
    angle = rng.uniform(0, 2 * np.pi, bad.sum())
    px[bad] += rng.uniform(60, 300, bad.sum())[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    return px, bad


def test_exact_without_noise_and_nan_below_two_views():
    cams = ring_rig()
    x = waving_walker(20)
    px, conf = observe(cams, x)
    proj = np.stack([c.projection for c in cams])
    pts, inl = triangulate_robust(_undistorted(cams, px), proj, conf)
    np.testing.assert_allclose(pts, x, atol=1e-7)
    assert inl.all()
    px[1:, 3, 4] = np.nan  # only one view left for that joint
    conf[0, 5, 6] = 0.0
    conf[1:, 5, 6] = 0.0  # zero weight counts as missing
    pts, inl = triangulate_robust(_undistorted(cams, px), proj, conf)
    assert np.isnan(pts[3, 4]).all() and not inl[:, 3, 4].any()
    assert np.isnan(pts[5, 6]).all()
    assert np.isfinite(pts).all(-1).sum() == pts.shape[0] * pts.shape[1] - 2


def test_one_px_noise_dropped_views_and_outliers_under_1cm():
    cams = ring_rig()
    x = waving_walker(60)
    px, conf = observe(cams, x, noise_px=1.0, seed=3)
    bad_px, bad = _corrupt(px, np.random.default_rng(4))
    proj = np.stack([c.projection for c in cams])
    pts, inl = triangulate_robust(_undistorted(cams, bad_px), proj, conf, threshold_px=10.0)
    err = np.linalg.norm(pts - x, axis=-1)
    seen = (np.isfinite(bad_px).all(-1) & ~bad).sum(0) >= 2  # at least two good views
    assert np.nanmean(err[seen]) < 0.01  # the target: under 1 cm at 1 px noise
    assert np.nanpercentile(err[seen], 99) < 0.03
    assert inl[bad].mean() < 0.05  # the gross outliers were rejected (bar a few along an epipolar line) ...
    good = np.isfinite(bad_px).all(-1) & ~bad & seen[None]
    assert inl[good].mean() > 0.98  # ... and nearly no good view of a point that has two
    # plain weighted DLT over the same views is ruined by the outliers
    from mocap.multiview.triangulate import triangulate_dlt

    plain = np.linalg.norm(triangulate_dlt(_undistorted(cams, bad_px), proj, conf) - x, axis=-1)
    assert np.nanmean(plain[seen]) > 5 * np.nanmean(err[seen])


def test_two_disagreeing_views_give_nan():
    cams = ring_rig(4)[:2]  # 90 degrees apart: epipolar lines run across the image
    x = waving_walker(5)
    px, conf = observe(cams, x)
    px[1, 2, 3] += (0.0, 80.0)  # off its epipolar line: the two views do not agree
    pts, _ = triangulate_robust(_undistorted(cams, px), np.stack([c.projection for c in cams]), conf,
                                threshold_px=10.0)
    assert np.isnan(pts[2, 3]).all()
    assert np.isfinite(pts).all(-1).sum() == 5 * 21 - 1


def test_shapes_and_bad_input():
    cams = ring_rig(3)
    proj = np.stack([c.projection for c in cams])
    pts, inl = triangulate_robust(np.zeros((3, 2)), proj)  # a single point
    assert pts.shape == (3,) and inl.shape == (3,)
    with pytest.raises(ValueError, match="disagree"):
        triangulate_robust(np.zeros((2, 5, 2)), proj)
    with pytest.raises(ValueError, match="min_views"):
        triangulate_robust(np.zeros((3, 5, 2)), proj, min_views=1)


def test_real_cmu_motion_under_1cm():
    bvh = read_bvh(shared_path("mocap", "samples", "cmu_02_01_walk.bvh"))
    x = bvh_joint_positions(bvh)[::8]  # (T, J, 3) metres, +Y up
    x = x - np.nanmean(x[:, :1], axis=0) * np.array([1, 0, 1])  # walk centred on the rig
    cams = ring_rig(4, radius=6.0, focal=1200.0)
    px, conf = observe(cams, x, noise_px=1.0, seed=5)
    bad_px, _ = _corrupt(px, np.random.default_rng(6), drop=0.15, outliers=0.05)
    pts, _ = triangulate_robust(_undistorted(cams, bad_px), np.stack([c.projection for c in cams]), conf,
                                threshold_px=10.0)
    err = np.linalg.norm(pts - x, axis=-1)
    assert np.nanmedian(err) < 0.01 and np.isfinite(err).mean() > 0.9


def test_views_that_agree_on_a_wrong_point_lose_to_the_views_that_fit_the_body():
    """Two views put the left ankle on a wrong spot that they agree on (as a detector that takes
    one foot for the other in two views does), the other two see it right: the views' consensus
    is a tie, the body decides (its shin keeps its length). Where every view but one is wrong
    the same way, nothing fits the body and the point is dropped, not kept."""
    from mocap.multiview.triangulate import retriangulate_off_bones
    from mocap.skeletons import MOTION21

    cams = ring_rig()
    x = waving_walker(30)
    proj = np.stack([c.projection for c in cams])
    ankle, knee = MOTION21.index("left_ankle"), MOTION21.index("left_knee")
    wrong = x.copy()
    wrong[10, ankle] += [0.5, 0.0, 0.4]  # 64 cm off: the 0.4 m shin would be 0.75 m long
    wrong[20, ankle] += [0.5, 0.0, 0.4]
    px = np.stack([c.project(x) for c in cams])
    bad = np.stack([c.project(wrong) for c in cams])
    px[:2, 10] = bad[:2, 10]  # frame 10: views 0 and 1 wrong, 2 and 3 right
    px[:3, 20] = bad[:3, 20]  # frame 20: three views wrong, one right
    conf = np.ones(px.shape[:-1])
    und = _undistorted(cams, px)
    pts, inl = triangulate_robust(und, proj, conf, threshold_px=40.0)
    edges = np.array([(c, p) for c, p in enumerate(MOTION21.parents) if p >= 0])
    fixed, inl2 = retriangulate_off_bones(pts, inl, und, proj, conf, edges, threshold_px=40.0)
    np.testing.assert_allclose(fixed[10, ankle], x[10, ankle], atol=1e-6)
    assert inl2[:, 10, ankle].tolist() == [False, False, True, True]
    assert np.isnan(fixed[20, ankle]).all() and not inl2[:, 20, ankle].any()
    assert np.linalg.norm(pts[20, ankle] - wrong[20, ankle]) < 1e-6  # the consensus alone keeps the wrong one
    # everything else is left as it was
    other = np.ones(fixed.shape[:2], bool)
    other[[10, 20], ankle] = False
    np.testing.assert_allclose(fixed[other], pts[other])
    assert np.abs(np.linalg.norm(fixed[10, ankle] - fixed[10, knee]) - np.linalg.norm(x[10, ankle] - x[10, knee])) < 1e-6


def test_a_point_that_jumps_off_its_trajectory_for_a_frame_is_put_back_or_dropped():
    """The wrist seen right by two views and on a wrong spot (that they agree on) by the two
    others in one frame: the views that keep it on its path win; three views wrong: dropped.
    A clean clip, fast arms and all, is left exactly as it was."""
    from mocap.multiview.triangulate import retriangulate_jumps
    from mocap.skeletons import MOTION21

    cams = ring_rig()
    x = waving_walker(30)
    proj = np.stack([c.projection for c in cams])
    wrist = MOTION21.index("right_wrist")
    wrong = x.copy()
    wrong[[12, 22], wrist] += [0.0, 0.4, 0.3]
    px = np.stack([c.project(x) for c in cams])
    bad = np.stack([c.project(wrong) for c in cams])
    px[2:, 12] = bad[2:, 12]
    px[1:, 22] = bad[1:, 22]
    conf = np.ones(px.shape[:-1])
    und = _undistorted(cams, px)
    pts, inl = triangulate_robust(und, proj, conf, threshold_px=40.0)
    fixed, inl2 = retriangulate_jumps(pts, inl, und, proj, conf, threshold_px=40.0)
    np.testing.assert_allclose(fixed[12, wrist], x[12, wrist], atol=1e-6)
    assert inl2[:, 12, wrist].tolist() == [True, True, False, False]
    assert np.isnan(fixed[22, wrist]).all() and not inl2[:, 22, wrist].any()
    other = np.ones(fixed.shape[:2], bool)
    other[[12, 22], wrist] = False
    np.testing.assert_allclose(fixed[other], pts[other])
    clean = _undistorted(cams, np.stack([c.project(x) for c in cams]))
    p0, i0 = triangulate_robust(clean, proj, conf, threshold_px=40.0)
    p1, i1 = retriangulate_jumps(p0, i0, clean, proj, conf, threshold_px=40.0)
    np.testing.assert_array_equal(p1, p0)
    np.testing.assert_array_equal(i1, i0)
