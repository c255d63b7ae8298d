import numpy as np
import pytest

from mocap.camera import Camera, load_qualisys
from mocap.errors import MocapError
from mocap.multiview.triangulate import reprojection_errors, triangulate_dlt
from tests.conftest import shared_path


def _look_at(position, target=(0.0, 1.0, 0.0)):
    """World (+Y up) -> camera (x right, y down, z forward) rotation for a camera at ``position``."""
    z = np.asarray(target, float) - position
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def _rig(n=4, dist=(0.05, -0.02, 0.001, -0.001, 0.0)):
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n + 0.3
        pos = np.array([4 * np.cos(a), 1.5 + 0.3 * i, 4 * np.sin(a)])
        r = _look_at(pos)
        k = np.array([[1400.0, 0, 540 + 10 * i], [0, 1410.0, 960 - 5 * i], [0, 0, 1]])
        cams.append(Camera(name=f"c{i}", size=(1080, 1920), K=k, R=r, t=-r @ pos, dist=np.array(dist)))
    return cams


def test_projection_and_undistortion_round_trip():
    cam = _rig()[0]
    pts = np.random.default_rng(0).uniform([-1, 0, -1], [1, 2, 1], (50, 3))
    px = cam.project(pts)
    ideal = cam.projection @ np.c_[pts, np.ones(len(pts))].T
    ideal = (ideal[:2] / ideal[2]).T
    assert np.abs(px - ideal).max() > 1.0  # distortion really moved the points
    np.testing.assert_allclose(cam.undistort_pixels(px), ideal, atol=1e-6)
    np.testing.assert_allclose(cam.position, cam.position)  # property is consistent
    np.testing.assert_allclose(cam.world_to_camera(cam.position[None])[0], 0, atol=1e-12)


def test_project_points_known_camera_and_points_behind():
    """u = f x / z + s y / z + c_x, v = f y / z + c_y (hand-computed); at or behind the camera -> NaN."""
    from mocap.camera import intrinsic_matrix, project_points

    k = intrinsic_matrix(1000.0, (640.0, 360.0))
    np.testing.assert_array_equal(k, [[1000, 0, 640], [0, 1000, 360], [0, 0, 1]])
    pts = np.array([[0.5, -0.25, 2.0], [0.0, 0.0, 4.0], [0.5, 0.0, -2.0], [0.1, 0.1, 0.0], [np.nan, 0.0, 1.0]])
    px = project_points(pts, k)
    np.testing.assert_allclose(px[:2], [[890.0, 235.0], [640.0, 360.0]], atol=1e-12)
    assert np.isnan(px[2:]).all()
    skewed = project_points(pts[:1], intrinsic_matrix(1000.0, (640.0, 360.0), skew_px=10.0))
    np.testing.assert_allclose(skewed, [[888.75, 235.0]], atol=1e-12)
    # k1 = 0.1: r^2 = 0.078125, x and y scaled by 1.0078125
    np.testing.assert_allclose(project_points(pts[:1], k, np.array([0.1, 0, 0, 0, 0])),
                               [[640 + 250 * 1.0078125, 360 - 125 * 1.0078125]], atol=1e-9)
    # finite for a solver: behind the camera divides by the negative depth
    np.testing.assert_allclose(project_points(pts[2:3], k, nan_behind=False), [[390.0, 360.0]], atol=1e-12)
    assert np.isfinite(project_points(pts[3:4], k, nan_behind=False)).all()
    # K broadcast over leading dimensions: two cameras (2, 1, 3, 3), points (2, 5, 3)
    ks = intrinsic_matrix(np.array([1000.0, 500.0]), np.array([[640.0, 360.0], [0.0, 0.0]]))[:, None]
    both = project_points(np.stack([pts, pts]), ks)
    np.testing.assert_allclose(both[1, :2], [[125.0, -62.5], [0.0, 0.0]], atol=1e-12)
    assert np.isnan(both[:, 2:]).all()
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        project_points(pts[:, :2], k)


def test_every_projection_gives_nan_behind_the_camera():
    """Camera.project, the lifter's training cameras and the triangulation's reprojection agree."""
    from lifting.augment import project as project_training
    from mocap.multiview.triangulate import _pinhole_project

    from mocap.camera import intrinsic_matrix

    r = _look_at(np.array([3.0, 1.5, 2.0]))
    cam = Camera(name="c", size=(1080, 1920), K=intrinsic_matrix(1400.0, (540.0, 960.0)), R=r,
                 t=-r @ np.array([3.0, 1.5, 2.0]), dist=np.zeros(5))
    world = np.stack([cam.position + 2.0 * cam.R[2], cam.position - 2.0 * cam.R[2]])  # in front, behind
    px = cam.project(world)
    assert np.isfinite(px[0]).all() and np.isnan(px[1]).all()
    np.testing.assert_allclose(_pinhole_project(world, cam.projection[None])[0], px, atol=1e-9)
    cam_pts = cam.world_to_camera(world)[None]  # (B=1, 2, 3)
    np.testing.assert_allclose(project_training(cam_pts, np.array([cam.K[0, 0]]), cam.K[None, :2, 2])[0], px,
                               atol=1e-9)
    err = reprojection_errors(world, [cam], px[None])
    assert err[0, 0] < 1e-9 and np.isnan(err[0, 1])


def test_triangulation_exact_then_noisy_then_missing_views():
    cams = _rig()
    rng = np.random.default_rng(1)
    pts = rng.uniform([-0.8, 0, -0.8], [0.8, 1.9, 0.8], (30, 17, 3))  # (T, J, 3)
    px = np.stack([c.undistort_pixels(c.project(pts)) for c in cams])  # (C, T, J, 2)
    proj = np.stack([c.projection for c in cams])
    np.testing.assert_allclose(triangulate_dlt(px, proj), pts, atol=1e-6)
    noisy = px + rng.normal(0, 1.0, px.shape)
    err = np.linalg.norm(triangulate_dlt(noisy, proj) - pts, axis=-1)
    assert np.median(err) < 0.005  # 1 px at ~4 m with f = 1400 px: a few mm
    # a view missing (NaN) or weighted 0 is ignored; fewer than 2 views -> NaN
    px2 = px.copy()
    px2[0, 0, 0] = np.nan
    w = np.ones(px.shape[:-1])
    w[1, 0, 1] = 0.0
    out = triangulate_dlt(px2, proj, w)
    np.testing.assert_allclose(out[0, :2], pts[0, :2], atol=1e-6)
    px2[1:3, 0, 0] = np.nan
    assert np.isnan(triangulate_dlt(px2, proj)[0, 0]).all()
    errs = reprojection_errors(pts, cams, np.stack([c.project(pts) for c in cams]))
    assert errs.shape == (4, 30, 17) and errs.max() < 1e-9


def test_qualisys_calibration_of_the_real_rig():
    path = shared_path("video", "pose2sim_single", "calibration", "Calib.qca.txt")
    cams = load_qualisys(path)
    assert [c.name for c in cams] == ["cam01", "cam02", "cam03", "cam04"]
    for c in cams:
        assert c.size == (1088, 1920)
        np.testing.assert_allclose(c.R @ c.R.T, np.eye(3), atol=1e-6)
        assert 2.0 < np.linalg.norm(c.position[:2]) < 5.0 and 1.5 < c.position[2] < 2.5  # lab, Z up, mm -> m
        assert 1600 < c.K[0, 0] < 1700
        assert c.world_to_camera(np.zeros((1, 3)))[0, 2] > 2.0  # the origin is in front of every camera
        u, v = c.project(np.array([[0.0, 0.0, 1.0]]))[0]  # a point 1 m above the origin is in view
        assert 0 < u < 1088 and 0 < v < 1920


def test_bad_calibration_file(tmp_path):
    with pytest.raises(MocapError, match="not found"):
        load_qualisys(tmp_path / "none.qca.txt")
    bad = tmp_path / "bad.qca.txt"
    bad.write_text("<calibration><cameras><camera/></cameras></calibration>")
    with pytest.raises(MocapError, match="not a readable Qualisys"):
        load_qualisys(bad)


def test_left_right_swaps_in_one_view_are_resolved():
    from mocap.skeletons import COCO17
    from mocap.multiview.triangulate import triangulate_resolving_swaps

    cams = _rig()
    rng = np.random.default_rng(2)
    pts = rng.uniform([-0.5, 0, -0.5], [0.5, 1.8, 0.5], (20, 17, 3))
    px = np.stack([c.undistort_pixels(c.project(pts)) for c in cams])
    proj = np.stack([c.projection for c in cams])
    mirror = COCO17.mirror_permutation()
    bad = px.copy()
    bad[2, 5:12] = bad[2, 5:12][:, mirror]  # view 2 swaps left and right in frames 5-11
    plain = triangulate_dlt(bad, proj)
    assert np.linalg.norm(plain[5:12] - pts[5:12], axis=-1).max() > 0.05
    fixed, swapped = triangulate_resolving_swaps(bad, proj, np.ones(bad.shape[:-1]), mirror)
    np.testing.assert_allclose(fixed, pts, atol=1e-6)
    assert swapped[2].sum() == 7 and swapped[2, 5:12].all() and swapped[[0, 1, 3]].sum() == 0
