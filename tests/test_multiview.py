"""The multi-view pipeline end to end on a synthetic rig: files, accuracy, bad input."""
import json

import numpy as np
import pytest

from mocap.io.calibration_files import load_cameras_toml, save_cameras_toml
from mocap.errors import MocapError
from mocap.formats import Keypoints2D, load_keypoints, load_motion
from mocap.multiview.views import triangulate_views
from mocap.pipelines.multiview import capture_multiview
from mocap.pipelines.options import CaptureOptions, CleanupConfig, ExportOptions, LiftOptions, MultiViewOptions
from mocap.skeletons import MOTION21, rest_offsets
from tests.multiview_helpers import observe, ring_rig
from tests.synthetic import motion21_to_mediapipe33, waving_walker

SIZE = (270, 480)
T = 40


def _rig(dist=(0.02, -0.01, 0.0005, -0.0005, 0.0)):
    return ring_rig(3, size=SIZE, focal=380.0, dist=dist)


def _views(cams, x, noise_px=0.3, seed=0):
    px, conf = observe(cams, motion21_to_mediapipe33(x), noise_px=noise_px, seed=seed)
    return [Keypoints2D(keypoints=p.astype(np.float32), confidence=c.astype(np.float32), layout="mediapipe33",
                        image_size=SIZE, fps=30.0) for p, c in zip(px, conf)]


def _options(calibration, *, focal_px=None, lock_feet=True, overlay=True, **multiview):
    return CaptureOptions(lifting=LiftOptions(focal_px=focal_px), cleanup=CleanupConfig(lock_feet=lock_feet),
                          multiview=MultiViewOptions(calibration=calibration, **multiview),
                          export=ExportOptions(overlay=overlay))


def _videos(tmp_path, n, frames=T):
    import cv2

    paths = []
    for i in range(n):
        p = tmp_path / f"cam{i + 1:02d}.mp4"
        w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE)
        for f in range(frames):
            w.write(np.full((SIZE[1], SIZE[0], 3), 40 + f, np.uint8))
        w.release()
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mv")
    cams = _rig()
    x = waving_walker(T)
    calib = tmp / "rig.toml"
    save_cameras_toml(calib, cams)
    # the synthetic person slides over the floor: foot locking would (rightly) pin the feet
    report = capture_multiview(_videos(tmp, 3), tmp / "out", _options(calib, lock_feet=False), keypoints=_views(cams, x),
                               progress=False)
    return report, tmp / "out", cams, x


def test_writes_every_file(captured):
    from mocap.io.video import iter_frames, probe_video

    report, out, cams, x = captured
    names = ["cam01", "cam02", "cam03"]
    views = _views(cams, x)  # the fixture's keypoints (same seed)
    for n, view in zip(names, views):
        assert load_keypoints(out / f"keypoints2d_{n}.npz").num_frames == T
        info = probe_video(out / f"overlay_{n}.mp4")
        assert (info.width, info.height, info.frame_count) == (*SIZE, T)
        frames = list(iter_frames(out / f"overlay_{n}.mp4"))
        for f in (0, T - 1):  # the skeleton, in colour over the grey video, covers the view's keypoints
            rows, cols = np.nonzero(np.ptp(frames[f].astype(int), axis=-1) > 40)
            assert rows.size > 500, (n, f)
            kp = view.keypoints[f][np.isfinite(view.keypoints[f]).all(1)]
            for drawn, (lo, hi) in ((cols, (kp[:, 0].min(), kp[:, 0].max())), (rows, (kp[:, 1].min(), kp[:, 1].max()))):
                assert lo - 8 < drawn.min() and drawn.max() < hi + 8, (n, f)
                assert drawn.max() - drawn.min() > 0.85 * (hi - lo), (n, f)
    assert (out / "motion.bvh").read_text().startswith("HIERARCHY")
    back = load_cameras_toml(out / "calibration.toml")
    for a, b in zip(back, cams):
        np.testing.assert_allclose(a.R, b.R, atol=1e-12)
        np.testing.assert_allclose(a.t, b.t, atol=1e-12)
    rep = json.loads((out / "reprojection.json").read_text())
    assert set(rep["views"]) == set(names)
    for v in rep["views"].values():
        assert v["median_px"] < 1.0 and v["inlier_fraction"] == 1.0  # 0.3 px noise
    assert "cam02" in report.summary() and report.offsets == [0, 0, 0]


def test_motion_matches_the_truth(captured):
    _, out, _, x = captured
    m = load_motion(out / "motion.npz")
    assert m.joint_names == MOTION21.joint_names and m.num_frames == T
    # the truth is upright, feet on y = 0 and the pelvis over the origin at frame 0: the same world
    err = np.linalg.norm(m.joints - x, axis=-1)
    assert err.mean() < 0.02, err.mean()
    true_len = np.linalg.norm(rest_offsets(), axis=-1)
    np.testing.assert_allclose(np.linalg.norm(m.rest_offsets, axis=-1), true_len, atol=0.01)


def test_overlay_has_every_frame(captured):
    import cv2

    _, out, _, _ = captured
    cap = cv2.VideoCapture(str(out / "overlay_cam01.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == T
    cap.release()


def test_calibration_from_people_end_to_end(tmp_path):
    cams = _rig(dist=(0, 0, 0, 0, 0))
    x = waving_walker(T)
    height = 1.7
    report = capture_multiview(_videos(tmp_path, 3), tmp_path / "out",
                               _options("auto", body_height_m=height, focal_px=380.0, overlay=False),
                               keypoints=_views(cams, x), progress=False)
    assert "from the person" in report.calibration
    m = load_motion(tmp_path / "out" / "motion.npz")
    from mocap.multiview.calibration import body_height

    # the scale follows the stated height: bone lengths scale by height / true height
    scale = height / body_height(x, "motion21")
    np.testing.assert_allclose(np.linalg.norm(m.rest_offsets, axis=-1), scale * np.linalg.norm(rest_offsets(), axis=-1),
                               atol=0.015)


def test_swapped_view_is_undone_and_outlier_view_dropped():
    cams = ring_rig(4, size=SIZE, focal=380.0)
    x = waving_walker(20)
    views = _views(cams, x, noise_px=0.0)
    from mocap.skeletons import MEDIAPIPE33

    kp = views[2].keypoints.copy()
    kp[5:9] = kp[5:9][:, MEDIAPIPE33.mirror_permutation()]  # left/right swapped in view 2
    kp[12, :, 0] += 60  # and one frame of view 2 shifted off
    views[2] = Keypoints2D(keypoints=kp, confidence=views[2].confidence, layout="mediapipe33", image_size=SIZE,
                           fps=30.0)
    tri = triangulate_views(views, cams, threshold_px=10.0)
    truth = motion21_to_mediapipe33(x)
    np.testing.assert_allclose(tri.points, truth, atol=1e-4)
    others = np.delete(np.arange(20), 12)  # in frame 12 view 2 is off either way
    assert tri.swapped[2, others].sum() == 4 and tri.swapped[2, 5:9].all() and not tri.swapped[[0, 1, 3]].any()
    assert not tri.inliers[2, 12].any() and tri.inliers[[0, 1, 3], 12].all()


# --- bad input -----------------------------------------------------------------------------
def test_bad_inputs(tmp_path):
    cams = _rig()
    x = waving_walker(T)
    videos = _videos(tmp_path, 3)
    calib = tmp_path / "two.toml"
    save_cameras_toml(calib, cams[:2])
    with pytest.raises(MocapError, match="has 2 cameras but 3 videos"):
        capture_multiview(videos, tmp_path / "o1", _options(calib), keypoints=_views(cams, x), progress=False)
    broken = tmp_path / "broken.toml"
    broken.write_text("[cam_0\n")
    with pytest.raises(MocapError, match="not a readable TOML"):
        capture_multiview(videos, tmp_path / "o2", _options(broken), progress=False)
    good = tmp_path / "rig.toml"
    save_cameras_toml(good, cams)
    views = _views(cams, x)
    short = Keypoints2D(keypoints=views[1].keypoints[:30], confidence=views[1].confidence[:30],
                        layout="mediapipe33", image_size=SIZE, fps=30.0)
    with pytest.raises(MocapError, match="different numbers of frames"):
        capture_multiview(videos, tmp_path / "o3", _options(good, overlay=False), keypoints=[views[0], short, views[2]],
                          progress=False)
    empty = Keypoints2D(keypoints=np.full_like(views[2].keypoints, np.nan),
                        confidence=np.zeros_like(views[2].confidence),
                        layout="mediapipe33", image_size=SIZE, fps=30.0)
    with pytest.raises(MocapError, match="no person found in any frame of cam03; every view must see"):
        capture_multiview(videos, tmp_path / "o4", _options(good, overlay=False), keypoints=[views[0], views[1], empty],
                          progress=False)
    with pytest.raises(MocapError, match="--body-height"):
        capture_multiview(videos, tmp_path / "o5", _options("auto"), keypoints=views, progress=False)
    wrong = [c.__class__(name=c.name, size=(480, 270), K=c.K, R=c.R, t=c.t, dist=c.dist) for c in cams]
    save_cameras_toml(tmp_path / "landscape.toml", wrong)
    with pytest.raises(MocapError, match="480x270 pixels but the video is 270x480"):
        capture_multiview(videos, tmp_path / "o6", _options(tmp_path / "landscape.toml", overlay=False), keypoints=views,
                          progress=False)


def test_cli_errors(tmp_path, capsys):
    from mocap.cli import main

    videos = [str(p) for p in _videos(tmp_path, 2, frames=3)]
    assert main(["capture", *videos, "-o", str(tmp_path / "o")]) == 1
    assert "need a calibration" in capsys.readouterr().err
    assert main(["capture", videos[0], "--calibration", "auto", "-o", str(tmp_path / "o")]) == 1
    assert "two or more videos" in capsys.readouterr().err
    calib = tmp_path / "rig.toml"
    save_cameras_toml(calib, _rig())
    assert main(["capture", *videos, "--calibration", str(calib), "-o", str(tmp_path / "o"), "-q"]) == 1
    assert "has 3 cameras but 2 videos" in capsys.readouterr().err
    assert main(["capture", *videos, "--calibration", "auto", "--body-height", "175", "-o", str(tmp_path / "o")]) == 1
    assert "metres" in capsys.readouterr().err


def test_check_cameras_scales_a_resized_video_and_warns_on_a_crop():
    from mocap.multiview.rig import check_cameras

    cams = _rig()
    x = waving_walker(5)
    views = _views(cams, x)
    half = [Keypoints2D(keypoints=v.keypoints / 2, confidence=v.confidence, layout=v.layout,
                        image_size=(SIZE[0] // 2, SIZE[1] // 2), fps=v.fps) for v in views]
    scaled = check_cameras(cams, half, ["a", "b", "c"])
    np.testing.assert_allclose(scaled[0].K[:2], cams[0].K[:2] / 2)
    np.testing.assert_allclose(scaled[1].project(x), cams[1].project(x) / 2, atol=1e-9)
    cropped = [Keypoints2D(keypoints=v.keypoints, confidence=v.confidence, layout=v.layout,
                           image_size=(SIZE[0] - 4, SIZE[1]), fps=v.fps) for v in views]
    with pytest.warns(UserWarning, match="270x480 pixels, the video is 266x480"):
        assert check_cameras(cams, cropped, ["a", "b", "c"])[0] is cams[0]


def test_reprojection_summary_counts_outlier_views_apart():
    from mocap.multiview.quality import reprojection_summary
    from mocap.multiview.views import Triangulated

    err = np.array([[[1.0, 2.0, 3.0, 100.0]], [[1.0, 1.0, np.nan, 5.0]]])  # (C=2, T=1, J=4) pixels
    inliers = np.array([[[True, True, True, False]], [[True, True, False, True]]])
    tri = Triangulated(points=np.zeros((1, 4, 3)), inliers=inliers, swapped=np.zeros((2, 1), bool),
                       reprojection_px=err)
    rep = reprojection_summary(tri, ["a", "b"])
    assert rep["a"]["median_px"] == 2.5 and rep["a"]["inlier_median_px"] == 2.0
    assert rep["b"]["median_px"] == 1.0 and rep["b"]["inlier_median_px"] == 1.0
    assert rep["a"]["inlier_fraction"] == 0.75 and rep["a"]["p90_px"] > 3.0


def test_a_camera_that_moved_since_calibration_is_reported(tmp_path):
    from dataclasses import replace

    from mocap.multiview.quality import MISFIT_SHARE, misfit_views, person_height_px, reprojection_summary
    from mocap.rotations import axis_rotation_matrix

    cams = ring_rig(4, size=SIZE, focal=380.0)
    x = waving_walker(T)
    views = _views(cams, x, noise_px=0.5)
    truth_px = cams[1].project(motion21_to_mediapipe33(x))
    height = np.median(truth_px[..., 1].max(1) - truth_px[..., 1].min(1))
    assert person_height_px(views[1]) == pytest.approx(height, abs=1.0)
    names = [c.name for c in cams]
    assert misfit_views(reprojection_summary(triangulate_views(views, cams), names), views) == {}
    # cam02 turned by 3 degrees about its vertical axis after the calibration was made
    turn = axis_rotation_matrix(np.radians(3.0), "Y")
    moved = [replace(c, R=turn @ c.R, t=turn @ c.t) if i == 1 else c for i, c in enumerate(cams)]
    misfit = misfit_views(reprojection_summary(triangulate_views(views, moved), names), views)
    # one view off pulls the joints, so another view can show it too
    assert "cam02" in misfit and set(misfit) <= {"cam02", "cam04"}, misfit
    for name, (err, h) in misfit.items():
        assert err > MISFIT_SHARE * h and h == person_height_px(views[names.index(name)])
    # end to end: the capture says which view and what to try
    calib = tmp_path / "moved.toml"
    save_cameras_toml(calib, moved)
    report = capture_multiview(_videos(tmp_path, 4), tmp_path / "out", _options(calib, lock_feet=False, overlay=False),
                               keypoints=views, progress=False)
    said = [n for n in report.notes if "--refine-calibration" in n]
    assert len(said) == 1 and "cam02 " in said[0] and "cam01 " not in said[0], report.notes
    report = capture_multiview(_videos(tmp_path, 4), tmp_path / "out2",
                               _options(calib, refine_calibration=True, lock_feet=False, overlay=False),
                               keypoints=views, progress=False)
    assert not any("does not fit the keypoints" in n for n in report.notes), report.notes
    assert report.reprojection["cam02"]["median_px"] < 2.0


def _leaning_in_z_up_world(lean_deg: float) -> np.ndarray:
    """(T, 21, 3) the waving walker (on the spot) bent forward at the hips by ``lean_deg`` the whole clip (legs
    vertical), in a calibration world whose up is +Z (a Qualisys rig's): (x, y, z) -> (x, -z, y)."""
    x = waving_walker(60)
    x[..., [0, 2]] -= x[:, :1, [0, 2]] - x[:1, :1, [0, 2]]  # standing on the spot: planted feet do not slide
    upper = [MOTION21.index(n) for n in MOTION21.joint_names if n != "pelvis" and not n.startswith(("left_", "right_"))
             or n.endswith(("shoulder", "elbow", "wrist"))]
    a = np.radians(lean_deg)
    r = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])  # about X: towards +Z
    pelvis = x[:, :1]
    x[:, upper] = (x[:, upper] - pelvis) @ r.T + pelvis
    return x @ np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]).T


def _lean(joints: np.ndarray) -> np.ndarray:
    axis = joints[:, MOTION21.index("neck")] - joints[:, MOTION21.index("pelvis")]
    return np.degrees(np.arccos(axis[:, 1] / np.linalg.norm(axis, axis=-1)))


def test_a_calibrated_world_keeps_a_leaning_person_leaning():
    """Gravity from the calibration's axis nearest the torso (not the torso itself), and the
    measured root kept while the feet are pinned: the person's lean survives, and the final motion
    lies on the triangulated points (before 2026-12-07: stood upright, and 11 cm too low on
    pose2sim_single)."""
    from mocap.cleanup.motion import motion_from_points
    from mocap.cleanup.world import nearest_axis_up

    points = _leaning_in_z_up_world(25.0)
    np.testing.assert_allclose(nearest_axis_up(points), [0.0, 0.0, 1.0])
    motion, rot, offset = motion_from_points(points, "motion21", fps=30.0, calibrated_up=True)
    lean = _lean(motion.joints)
    assert abs(np.median(lean) - 25.0) < 1.0, np.median(lean)
    err = np.linalg.norm(motion.joints - (points @ rot.T + offset), axis=-1)
    # the body stays on its points; only the left foot, lifted slowly, is held planted a while
    lifted = [MOTION21.index(n) for n in ("left_knee", "left_ankle", "left_heel", "left_foot_index")]
    assert np.delete(err, lifted, axis=1).max() < 0.005, np.delete(err, lifted, axis=1).max()
    # the root re-derived from the planted feet (one camera's way) moves the whole body
    from mocap.cleanup import world
    from mocap.cleanup.motion import motion_from_world_joints, smooth_points

    levelled = world.level_and_ground(smooth_points(points, "motion21", fps=30.0), up=nearest_axis_up(points))[0]
    anchored = motion_from_world_joints(levelled, fps=30.0, measured_root=False)
    assert np.linalg.norm(anchored.joints[:, 0] - motion.joints[:, 0], axis=-1).max() > 0.05
    # the torso as up (a world with no known gravity): stood upright
    stood, _, _ = motion_from_points(points, "motion21", fps=30.0, calibrated_up=False)
    assert np.median(_lean(stood.joints)) < 3.0
    # an axis further than 35 degrees from the torso is not taken for up
    assert nearest_axis_up(_leaning_in_z_up_world(50.0)) is None


def _four_views_one_altered(tmp_path, view: int, alter):
    """The capture of four exact views of the waving walker on the spot, view ``view``'s 2D
    changed in place by ``alter(keypoints)`` first."""
    cams = ring_rig(4, size=SIZE, focal=380.0)
    x = waving_walker(T)
    x[..., [0, 2]] -= x[:, :1, [0, 2]] - x[:1, :1, [0, 2]]  # on the spot
    views = _views(cams, x, noise_px=0.0)
    kp = views[view].keypoints.copy()
    alter(kp)
    views[view] = Keypoints2D(keypoints=kp, confidence=views[view].confidence, layout="mediapipe33", image_size=SIZE,
                              fps=30.0)
    calib = tmp_path / "rig.toml"
    save_cameras_toml(calib, cams)
    return capture_multiview(_videos(tmp_path, 4), tmp_path / "out", _options(calib, overlay=False), keypoints=views,
                             progress=False)


def test_quality_compares_each_view_with_its_swaps_undone(tmp_path):
    """A view whose detector swapped left and right for a third of the clip: the triangulation
    undoes it, and so does the final motion's comparison with that view (quality.json)."""
    from mocap.skeletons import MEDIAPIPE33

    def swap(kp):
        kp[10:24] = kp[10:24][:, MEDIAPIPE33.mirror_permutation()]

    report = _four_views_one_altered(tmp_path, 2, swap)
    assert report.reprojection["cam03"]["swapped_frames"] == 14
    q = report.quality["cam03"]
    assert q["reprojection_max_pct"] < 3.0 and q["reprojection_median_pct"] < 1.0, q["reprojection_max_pct"]


def test_a_views_wrong_2d_is_named_as_such(tmp_path):
    """One view's legs put 80 px off for 12 frames (the other three agree): its stretch does not
    match the final motion, and quality.json and the summary say that view's 2D was outvoted."""
    from mocap.fit.quality import quality_line
    from mocap.skeletons import MEDIAPIPE33

    legs = [MEDIAPIPE33.index(f"{s}_{j}") for s in ("left", "right") for j in ("knee", "ankle", "heel", "foot_index")]

    def shift(kp):
        kp[10:22, legs, 0] += 80.0

    report = _four_views_one_altered(tmp_path, 1, shift)
    bad = report.quality["cam02"]["mismatched_frames"]
    assert bad and all(r["outvoted"] == 1.0 and 10 <= r["first"] <= r["last"] <= 21 for r in bad), bad
    assert "this view's 2D, which the other views outvoted" in quality_line(report.quality["cam02"])
    assert not report.quality["cam01"]["mismatched_frames"]


def test_a_world_that_is_a_cameras_frame_is_not_taken_for_gravity():
    from mocap.camera import Camera
    from mocap.multiview.rig import world_holds_gravity

    cams = ring_rig(3, size=SIZE, focal=380.0)
    assert world_holds_gravity(cams) and not world_holds_gravity(cams, auto=True)
    first = Camera(name="cam01", size=SIZE, K=cams[0].K, R=np.eye(3), t=np.zeros(3), dist=cams[0].dist)
    assert not world_holds_gravity([first, *cams[1:]])
