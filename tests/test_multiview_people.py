"""Several people seen by several cameras: cross-view association, 3D tracking, per-person capture."""
import json

import numpy as np
import pytest

from mocap.multiview.association import (associate_people, cluster_detections, epipolar_distance,
                                         fundamental_matrix, person_keypoints)
from mocap.multiview.views import triangulate_views
from tests.multiview_helpers import association_scores, crowd_paths, crowd_scene, ring_rig
from tests.synthetic import motion21_to_mediapipe33, waving_walker

FPS = 30.0


@pytest.fixture(scope="module")
def crowd():
    """3 people of different builds (heights x0.92, x1, x1.08) around each other for 150
    frames, the third away for frames 60-89; 4 cameras, 2 px noise, 10 % missed
    detections, 5 % left/right swaps."""
    t = 150
    cams = ring_rig(4, radius=5.0)
    motions = [motion21_to_mediapipe33(waving_walker(t, FPS) * s) for s in (0.92, 1.0, 1.08)]
    paths, present = crowd_paths(t, FPS)
    joints, px, conf, truth = crowd_scene(cams, motions, paths, present, layout="mediapipe33", seed=3)
    und = np.stack([c.undistort_pixels(p) for c, p in zip(cams, px)])
    proj = np.stack([c.projection for c in cams])
    assoc = associate_people(und, conf, proj, layout="mediapipe33", fps=FPS)
    return cams, joints, present, px, conf, truth, assoc


def test_crowd_is_associated_and_tracked_without_switches(crowd):
    cams, joints, present, px, conf, truth, assoc = crowd
    scores = association_scores(assoc.labels, truth)
    assert scores["person_frames"] > 350
    assert scores["accuracy"] >= 0.99, scores
    assert scores["switches"] == 0, scores
    assert len(assoc.ids) == 3  # the one who left and came back keeps their id
    leaver = [i for i, who in scores["owner"].items() if who == 2][0]
    assert not assoc.frames(leaver)[60:90].any() and assoc.frames(leaver)[90:].mean() > 0.95


def test_each_person_is_triangulated_within_2_cm(crowd):
    cams, joints, present, px, conf, truth, assoc = crowd
    from mocap.formats import Keypoints2D

    owner = association_scores(assoc.labels, truth)["owner"]
    for pid, who in owner.items():
        kp, cf = person_keypoints(px, conf, assoc.labels, pid)
        views = [Keypoints2D(keypoints=k.astype(np.float32), confidence=c.astype(np.float32), layout="mediapipe33",
                             image_size=cams[0].size, fps=FPS) for k, c in zip(kp, cf)]
        tri = triangulate_views(views, cams)
        err = np.linalg.norm(tri.points - joints[who], axis=-1)
        assert np.isfinite(err).any(-1).sum() >= 0.9 * present[who].sum()
        assert np.nanmean(err) < 0.02, (pid, np.nanmean(err))


def test_someone_seen_by_one_camera_is_nobody():
    cams = ring_rig(4)
    x = waving_walker(20, FPS)
    px = np.stack([c.project(x) for c in cams])[:, :, None]  # (C, T, 1, J, 2)
    bystander = cams[0].project(x + np.array([1.5, 0.0, -1.0]))
    px = np.concatenate([px, np.full_like(px, np.nan)], 2)
    px[0, :, 1] = bystander
    conf = np.where(np.isfinite(px).all(-1), 0.9, 0.0)
    und = np.stack([c.undistort_pixels(p) for c, p in zip(cams, px)])
    assoc = associate_people(und, conf, np.stack([c.projection for c in cams]), layout="motion21", fps=FPS)
    assert list(assoc.ids) == [0]
    assert (assoc.labels[:, :, 0] == 0).all() and (assoc.labels[:, :, 1] == -1).all()


def test_epipolar_distance_and_one_detection_per_view():
    cams = ring_rig(3)
    proj = [c.projection for c in cams]
    f = fundamental_matrix(proj[0], proj[1])
    pts = np.array([[0.1, 1.0, 0.2], [0.5, 1.5, -0.3]])
    pin = [c.K @ (c.R @ pts.T + c.t[:, None]) for c in cams]
    a, b = ((p[:2] / p[2]).T for p in pin[:2])
    assert np.allclose(epipolar_distance(a, b, f), 0.0, atol=1e-6)
    assert (epipolar_distance(a, b[::-1], f) > 5.0).all()
    # views 0, 1, 0: the two detections of view 0 never join, whatever their distance
    d = np.array([[np.inf, 0.01, 0.02], [0.01, np.inf, 0.01], [0.02, 0.01, np.inf]])
    labels = cluster_detections(d, np.array([0, 1, 0]), threshold=0.1)
    assert labels[0] == labels[1] != labels[2]


def test_capture_writes_every_person(tmp_path):
    from mocap.detect2d.people import PeopleTracks
    from mocap.formats import load_motion
    from mocap.io.calibration_files import save_cameras_toml
    from mocap.pipelines.multiview import capture_multiview
    from tests.test_multiview import SIZE, _options, _rig, _videos

    t = 60  # 2 s: everyone seen for a second or more is written
    cams = _rig()
    a = waving_walker(t, FPS)
    b = a * 1.08 + np.array([0.9, 0.0, 0.5])  # a taller person who arrives in frame 15
    people = []
    for cam in cams:
        pa, pb = (cam.project(motion21_to_mediapipe33(x)) for x in (a, b))
        pb[:15] = np.nan
        kp = np.stack([pb, pa], 1)  # the second person takes slot 0: slots are not identities
        conf = np.where(np.isfinite(kp).all(-1), 0.9, 0.0)
        ids = np.where(np.isfinite(kp).all(-1).any(-1), [5, 7], -1)
        people.append(PeopleTracks(keypoints=kp.astype(np.float32), confidence=conf.astype(np.float32),
                                   scores=(conf.max(-1) > 0).astype(np.float32), track_ids=ids, layout="mediapipe33",
                                   image_size=SIZE, fps=FPS))
    calib = tmp_path / "rig.toml"
    save_cameras_toml(calib, cams)
    options = _options(calib, lock_feet=False, overlay=False)
    import dataclasses

    options = dataclasses.replace(options, detection=dataclasses.replace(options.detection, all_people=True))
    videos = _videos(tmp_path, 3, frames=t)
    report = capture_multiview(videos, tmp_path / "out", options, keypoints=people, progress=False)
    out = tmp_path / "out"
    listing = json.loads((out / "people.json").read_text())
    assert [p["id"] for p in listing["people"]] == [0, 1] and listing["main"] == 0
    assert [(p["first_frame"], p["last_frame"]) for p in listing["people"]] == [(0, t - 1), (15, t - 1)]
    for pid, truth, first in ((0, a, 0), (1, b, 15)):
        rep = json.loads((out / f"person_{pid}" / "reprojection.json").read_text())
        assert rep["start_frame"] == first and rep["person"] == pid
        assert all(v["median_px"] < 1.0 for v in rep["views"].values())
        assert rep["bone_length_cv_median"] < 0.01
        motion = load_motion(out / f"person_{pid}" / "motion.npz")
        assert motion.num_frames == t - first
        assert (out / f"person_{pid}" / "motion.bvh").exists()
    # one capture, one world: the people stand as far apart as they did (each in a world of
    # their own, both started over the origin)
    pelvis = [load_motion(out / f"person_{pid}" / "motion.npz").joints[:, 0] for pid in (0, 1)]
    apart = np.linalg.norm(pelvis[1] - pelvis[0][15:], axis=-1)
    np.testing.assert_allclose(apart, np.linalg.norm(b[15:, 0] - a[15:, 0], axis=-1), atol=0.03)
    # the main person at the top, as with one person
    top = json.loads((out / "reprojection.json").read_text())
    assert top["person"] == 0 and load_motion(out / "motion.npz").num_frames == t
    assert "2 people were found" not in report.summary() and "1:" in report.summary()
    # --person ID picks a person of people.json as the main one
    chosen = dataclasses.replace(options, detection=dataclasses.replace(options.detection, person=1, all_people=False))
    capture_multiview(videos, tmp_path / "out2", chosen, keypoints=people, progress=False)
    assert json.loads((tmp_path / "out2" / "reprojection.json").read_text())["person"] == 1
    assert load_motion(tmp_path / "out2" / "motion.npz").num_frames == t - 15
    from mocap.errors import MocapError

    with pytest.raises(MocapError, match=r"no person with id 7.*\[0, 1\]"):
        capture_multiview(videos, tmp_path / "out3",
                          dataclasses.replace(chosen, detection=dataclasses.replace(chosen.detection, person=7)),
                          keypoints=people, progress=False)


def test_a_frame_whose_first_view_is_swapped_is_not_mirrored():
    from mocap.formats import Keypoints2D
    from mocap.skeletons import MEDIAPIPE33

    cams = ring_rig(4)
    x = motion21_to_mediapipe33(waving_walker(12, FPS))
    x[..., MEDIAPIPE33.index("left_wrist"), 1] += 0.3  # an asymmetric pose: mirrored, it is wrong
    mirror = MEDIAPIPE33.mirror_permutation()
    views = []
    for c, cam in enumerate(cams):
        px = cam.project(x)
        if c == 0:
            px[5] = px[5][mirror]  # the reference view swapped in frame 5
        views.append(Keypoints2D(keypoints=px.astype(np.float32), confidence=np.ones(px.shape[:2], np.float32),
                                 layout="mediapipe33", image_size=cam.size, fps=FPS))
    tri = triangulate_views(views, cams)
    assert tri.swapped[:, 5].tolist() == [True, False, False, False]
    assert np.nanmax(np.linalg.norm(tri.points - x, axis=-1)) < 1e-3


def test_bones_that_vary_are_reported_in_plain_words():
    from mocap.multiview import quality

    x = motion21_to_mediapipe33(waving_walker(30, FPS))
    assert quality.bone_note("person 1", 0.04, x, "mediapipe33") is None
    bent = x.copy()
    bent[10:13] = 1.3 * (bent[10:13] - bent[10:13, :1]) + bent[10:13, :1]  # three frames 30 % larger
    note = quality.bone_note("person 1", 0.15, bent, "mediapipe33", first_frame=100)
    assert note.startswith("person 1: the triangulated bones vary in length by 15 %") and "frames 110-112" in note
    assert quality.frame_ranges(np.array([0, 1, 1, 0, 1], bool)) == "1-2, 4"


def test_calibration_from_people_uses_one_person(tmp_path, monkeypatch):
    """With two people in every view, --calibration auto is fitted again to the main person's
    associated keypoints alone: every correspondence it gets is of that person."""
    from mocap.detect2d.people import PeopleTracks
    from mocap.multiview import rig
    from mocap.pipelines.multiview import capture_multiview
    from tests.test_multiview import SIZE, _options, _rig, _videos

    t = 40
    cams = _rig(dist=(0, 0, 0, 0, 0))
    a = motion21_to_mediapipe33(waving_walker(t, FPS))
    # someone else: shorter, beside the first, moving otherwise (backwards in time)
    b = motion21_to_mediapipe33(waving_walker(t, FPS)[::-1] * 0.9 + np.array([1.0, 0.0, 0.6]))
    people = []
    for cam in cams:
        kp = np.stack([cam.project(a), cam.project(b)], 1)
        if cam is cams[1]:
            kp = kp[:, ::-1]  # slots are not people
        conf = np.full(kp.shape[:3], 0.9)
        people.append(PeopleTracks(keypoints=kp.astype(np.float32), confidence=conf.astype(np.float32),
                                   scores=np.ones(kp.shape[:2], np.float32), track_ids=np.tile([0, 1], (t, 1)),
                                   layout="mediapipe33", image_size=SIZE, fps=FPS))
    fitted = []
    fit_rig = rig.fit_rig

    def spy(views, *args, **kwargs):
        fitted.append(np.stack([v.keypoints for v in views]))
        return fit_rig(views, *args, **kwargs)

    monkeypatch.setattr(rig, "fit_rig", spy)
    options = _options("auto", body_height_m=1.7, focal_px=380.0, overlay=False)
    report = capture_multiview(_videos(tmp_path, 3, frames=t), tmp_path / "out", options, keypoints=people,
                               progress=False)
    assert len(fitted) == 2 and "from the person" in report.calibration
    seen = np.isfinite(fitted[-1]).all(-1)
    assert seen.mean() > 0.9
    # the main person's keypoints only, one person in every view
    same = [np.allclose(fitted[-1][seen], np.stack([cam.project(x) for cam in cams])[seen], atol=1e-3) for x in (a, b)]
    assert sum(same) == 1
    assert max(v["median_px"] for v in report.reprojection.values()) < 1.0


def test_main_person_is_present_longest_weighted_by_size():
    """Known answer: person 4 is seen in 40 frames at 100 px (prominence 4000), person 7 in 60
    frames at 50 px (3000), person 9 in 1 frame (not found with min_frames 2)."""
    from mocap.errors import MocapError
    from mocap.multiview.main_person import main_person

    ids = np.array([4, 7, 9])
    observed = np.zeros((3, 80), bool)
    observed[0, :40] = observed[1, 20:80] = observed[2, 5] = True
    score = observed.sum(1) * np.array([100.0, 50.0, 300.0])
    assert main_person(ids, observed, score) == ([4, 7], 4)
    assert main_person(ids, observed, score, person="largest") == ([4, 7], 4)
    assert main_person(ids, observed, score, person="most-present") == ([4, 7], 7)
    assert main_person(ids, observed, score, person=7) == ([4, 7], 7)
    with pytest.raises(MocapError, match=r"no person with id 9 .* the ids are \[4, 7\]"):
        main_person(ids, observed, score, person=9)
    # a clip shorter than min_frames: seen in every frame is enough
    assert main_person(ids, observed[:, 20:22], score, min_frames=30) == ([4, 7], 4)
    with pytest.raises(MocapError, match="no person was seen by two views or more"):
        main_person(ids, observed, score, min_frames=61)
    with pytest.raises(ValueError, match="expected ids"):
        main_person(ids, observed[:2], score)
