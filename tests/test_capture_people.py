"""mocap capture with several people (one video): who is captured, over which frames, and
what people.json / people.png / the summary say. The 2D stage is replaced by tracks with
known truth (two synthetic people), the rest of the pipeline runs as it is."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic import IMAGE_SIZE, synthetic_keypoints, waving_walker

pytest.importorskip("torch", reason="the network lifter needs torch")

T = 60  # 2 s at 30 fps


def _tracks():
    from mocap.detect2d.people import PeopleTracks

    main = synthetic_keypoints(waving_walker(T)).keypoints  # (T, 33, 2), about 500 px tall
    other = main * 0.6 + np.array([500.0, 300.0], np.float32)  # smaller, to the right
    kp = np.full((T, 3, 33, 2), np.nan, np.float32)
    kp[:, 0], kp[:, 1] = other, main  # slot order does not say who is who
    kp[20:23, 2] = main[20:23] * 0.3  # a detector's mistake, three frames long
    kp[:8, 1] = np.nan  # the main person walks in at frame 8 ...
    kp[30:36, 1] = np.nan  # ... is hidden for 6 frames ...
    kp[:, 0][50:] = np.nan  # ... and the other leaves at frame 50
    conf = np.where(np.isfinite(kp).all(-1), 0.9, 0.0).astype(np.float32)
    ids = np.where(np.isfinite(kp).all(-1).any(-1), [[1, 0, 2]], -1)  # the main person is id 0
    return PeopleTracks(keypoints=kp, confidence=conf, scores=(conf.max(-1) > 0).astype(np.float32), track_ids=ids,
                        layout="mediapipe33", image_size=IMAGE_SIZE, fps=30.0), main, other


def _video(path):
    import cv2

    w, h = IMAGE_SIZE
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for t in range(T):
        frame = np.full((h, w, 3), 60 + t, np.uint8)
        out.write(frame)
    out.release()


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    import mocap.detect2d.people as people
    from mocap.pipelines.capture import capture
    from mocap.pipelines.options import CaptureOptions, DetectionOptions, ExportOptions

    tmp = tmp_path_factory.mktemp("people")
    _video(tmp / "two.mp4")
    tracks, main, other = _tracks()
    patch = pytest.MonkeyPatch()
    patch.setattr(people, "detect_people_video", lambda *a, **k: tracks)
    try:
        options = CaptureOptions(detection=DetectionOptions(detector="movenet", all_people=True),
                                 export=ExportOptions(overlay=False, preview=False))
        report = capture(tmp / "two.mp4", tmp / "out", options, progress=False)
    finally:
        patch.undo()
    return report, tmp / "out", main, other


def test_auto_captures_the_main_person_and_nan_where_absent(captured):
    from mocap.formats import load_keypoints

    report, out, main, _ = captured
    assert report.captured == 0
    kp = load_keypoints(out / "keypoints2d.npz")
    assert kp.num_frames == T
    assert np.isnan(kp.keypoints[:8]).all() and np.isnan(kp.keypoints[30:36]).all()  # not the other person
    assert (kp.confidence[:8] == 0).all()
    np.testing.assert_allclose(kp.keypoints[8:30], main[8:30], atol=1e-3)


def test_motion_spans_the_seen_frames_with_valid_and_start_frame(captured):
    from mocap.formats import load_motion

    _, out, _, _ = captured
    m = load_motion(out / "motion.npz")
    assert m.start_frame == 8 and m.num_frames == T - 8
    expected = np.ones(T - 8, bool)
    expected[30 - 8:36 - 8] = False
    np.testing.assert_array_equal(m.valid, expected)
    assert np.isfinite(m.joints).all()
    other = load_motion(out / "person_1" / "motion.npz")
    assert other.start_frame == 0 and other.num_frames == 50 and other.valid.all()


def test_everyone_shares_the_captured_person_s_camera_and_has_a_quality_file(captured):
    """--all-people: one camera, one world. Each person's quality.json names the same camera
    (the captured person's fit), and each motion reprojects onto that person's own 2D through it."""
    _, out, _, _ = captured
    main = json.loads((out / "quality.json").read_text())
    assert json.loads((out / "person_0" / "quality.json").read_text()) == main  # the captured person, fitted once
    other = json.loads((out / "person_1" / "quality.json").read_text())
    for key in ("camera_pitch_deg", "camera_roll_deg", "camera_height_m", "camera_focal_px"):
        assert other[key] == pytest.approx(main[key], abs=1e-6), key
    assert main["gravity_from"] != "shared camera" and other["gravity_from"] == "shared camera"
    assert other["num_frames"] == 50 and other["reprojection_median_pct"] < 3.0


def test_people_json_png_and_summary(captured):
    import cv2

    report, out, main, other = captured
    doc = json.loads((out / "people.json").read_text())
    assert doc["num_frames"] == T and doc["captured"] == 0 and doc["fps"] == pytest.approx(30.0)
    by_id = {p["id"]: p for p in doc["people"]}
    assert sorted(by_id) == [0, 1] and doc["short_tracks_not_listed"] == 1  # track 2: 3 frames < 0.25 s
    assert (by_id[0]["first_frame"], by_id[0]["last_frame"], by_id[0]["frames_visible"]) == (8, T - 1, T - 8 - 6)
    assert (by_id[1]["first_frame"], by_id[1]["last_frame"], by_id[1]["frames_visible"]) == (0, 49, 50)
    assert by_id[0]["captured"] and by_id[1]["captured"] and by_id[1]["folder"] == "person_1"
    box = np.array(by_id[1]["median_box"])
    truth = np.concatenate([np.median(other[:50].min(1), 0), np.median(other[:50].max(1), 0)])
    np.testing.assert_allclose(box, truth, atol=3.0)
    sheet = cv2.imread(str(out / "people.png"))
    assert sheet is not None and sheet.shape[0] > 300 and sheet.shape[1] > 2 * 160
    text = report.summary()
    assert "people found: 2" in text and "captured: id 0" in text and "frames 8-59" in text
    assert "1 track under 0.25 s, not listed" in text
    assert "everyone written: person_0/, person_1/ (in one world: the captured person's camera and floor)" in text
    assert "person_1/: " in text and "m tall; 3D matches the video" in text.split("person_1/: ")[1].splitlines()[0]
    assert "person_0/: " not in text  # the captured person's lines are the ones above
    assert "WARNING" not in text  # no impossible jump in these tracks


def test_all_people_puts_everyone_on_the_target_character(tmp_path, monkeypatch):
    """--all-people --target: each person_<id>/ gets its character.<ext>, made from that folder's
    motion (the captured person's is the one at the top, copied). The Blender export itself is
    replaced here by a stand-in that writes the motion it was given."""
    import mocap.detect2d.people as people
    import mocap.pipelines.capture as capture_module
    from mocap.pipelines.capture import capture
    from mocap.pipelines.options import CaptureOptions, DetectionOptions, ExportOptions

    _video(tmp_path / "two.mp4")
    rig = tmp_path / "rig.fbx"
    rig.write_bytes(b"a rig")
    tracks, _, _ = _tracks()
    monkeypatch.setattr(people, "detect_people_video", lambda *a, **k: tracks)

    def export(motion_path, outdir, options):
        out = Path(outdir) / "character.fbx"
        out.write_text(str(Path(motion_path).resolve()))
        return out

    monkeypatch.setattr(capture_module, "export_character", export)
    options = CaptureOptions(detection=DetectionOptions(detector="movenet", all_people=True),
                             export=ExportOptions(overlay=False, preview=False, target=str(rig)))
    report = capture(tmp_path / "two.mp4", tmp_path / "out", options, progress=False)
    out = tmp_path / "out"
    assert (out / "character.fbx").read_text() == str((out / "motion.npz").resolve())
    assert (out / "person_0" / "character.fbx").read_text() == str((out / "motion.npz").resolve())  # the captured one
    assert (out / "person_1" / "character.fbx").read_text() == str((out / "person_1" / "motion.npz").resolve())
    assert {report.outputs["character_0"], report.outputs["character_1"]} == {out / "person_0" / "character.fbx",
                                                                             out / "person_1" / "character.fbx"}


def test_person_option_accepts_auto_and_the_old_choices():
    from mocap.config import OptionError
    from mocap.detect2d.options import DetectionOptions

    assert DetectionOptions().person == "auto"
    for p in ("auto", "largest", "most-present"):
        assert DetectionOptions(person=p).person == p
    assert DetectionOptions(person="2").person == 2
    with pytest.raises(OptionError, match="auto"):
        DetectionOptions(person="tallest")


def test_contact_sheet_captions_are_not_cut():
    cv2 = pytest.importorskip("cv2")
    from mocap.export.contact_sheet import contact_sheet

    narrow = np.full((300, 60, 3), 200, np.uint8)  # a thin crop under a long caption
    sheet = contact_sheet([narrow, narrow], ["id 0 (captured)", "id 1"], highlight=[True, False])
    text_w = cv2.getTextSize("id 0 (captured)", cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2)[0][0]
    first = sheet[:, : sheet.shape[1] - (max(60, 160) + 8)]  # the first tile (the second is 168 px wide)
    caption = first[300 + 8:-5, 5:-5]  # inside the frame drawn around the tile
    green = np.nonzero((caption[..., 1] > 150) & (caption[..., 0] < 120))[1] + 5
    # the text starts at x = 8: its last stroke lies about text_w further, inside the tile
    assert green.size and green.max() >= 8 + text_w - 6, (green.max(), text_w)
    assert first.shape[1] >= 8 + text_w + 4


# ------------------------------------------------------------------ --all-people --hands

class _KnownHands:
    """The hand network replaced by known hands (:mod:`tests.hand_synthetic`): wherever a body's
    wrist is seen, that hand with its wrist exactly on the body's wrist, scaled to the body; an
    open hand on the main (larger) person, a fist on the smaller one. Stands in for
    :class:`mocap.detect2d.estimators.hands_torch.HandLandmarksTorch`."""

    shoulders_px = None  # set by the test: the main person's shoulder width, pixels

    def __init__(self, device="cpu", **_):
        from tests.hand_synthetic import POSES, hand_scene

        self.scenes = {name: hand_scene(POSES[name], pixel_noise=0.0, world_noise_m=0.0, frames=2)
                       for name in ("open", "fist")}

    def hands(self, frames, body_kp, body_conf, *, track=True):
        from mocap.detect2d.estimators.hands_torch import Hands

        t = len(frames)
        kp = np.full((t, 2, 21, 2), np.nan, np.float32)
        world = np.full((t, 2, 21, 3), np.nan, np.float32)
        for f in range(t):
            shoulders = np.linalg.norm(body_kp[f, 11] - body_kp[f, 12])
            scene = self.scenes["open" if shoulders > 0.8 * self.shoulders_px else "fist"]
            for side, wrist in ((0, 15), (1, 16)):
                if not (np.isfinite(body_kp[f, wrist]).all() and body_conf[f, wrist] >= 0.5):
                    continue
                hand = scene.hand_keypoints[0].reshape(2, 21, 2)[side].astype(np.float64)
                scale = 0.5 * shoulders / np.linalg.norm(hand[9] - hand[0])  # wrist to middle knuckle
                kp[f, side] = (hand - hand[0]) * scale + body_kp[f, wrist]
                world[f, side] = scene.hand_world[0].reshape(2, 21, 3)[side]
        seen = np.isfinite(kp).all((-1, -2))
        conf = np.where(seen, 0.9, 0.0)[..., None].repeat(21, -1)
        return Hands(kp.reshape(t, 42, 2), conf.reshape(t, 42).astype(np.float32), seen.astype(np.float32),
                     np.full((t, 2, 5), np.nan), world.reshape(t, 42, 3))


@pytest.fixture(scope="module")
def captured_hands(tmp_path_factory):
    import mocap.detect2d.estimators.hands_torch as hands_torch
    import mocap.detect2d.people as people
    from mocap.pipelines.capture import capture
    from mocap.pipelines.options import CaptureOptions, DetectionOptions, ExportOptions

    tmp = tmp_path_factory.mktemp("people_hands")
    _video(tmp / "two.mp4")
    tracks, main, other = _tracks()
    patch = pytest.MonkeyPatch()
    patch.setattr(people, "detect_people_video", lambda *a, **k: tracks)
    patch.setattr(hands_torch, "HandLandmarksTorch", _KnownHands)
    patch.setattr(_KnownHands, "shoulders_px", float(np.median(np.linalg.norm(main[:, 11] - main[:, 12], axis=-1))))
    try:
        options = CaptureOptions(detection=DetectionOptions(all_people=True, hands=True),
                                 export=ExportOptions(overlay=False, preview=False))
        report = capture(tmp / "two.mp4", tmp / "out", options, progress=False)
    finally:
        patch.undo()
    return report, tmp / "out"


def test_every_person_gets_their_own_hands_and_fingers(captured_hands):
    """Each person_<id>/ has hands at that person's wrists (exactly: the stand-in network puts
    them there) and a MOTION61 motion whose fingers are that person's: the main person's hands
    open (true flexion 0), the other's fists (true flexion 45-100 degrees, mean 73).
    Measured: mean flexion 0.3 and 72.5 degrees."""
    from mocap.cleanup.fingers import angles_of_motion
    from mocap.formats import load_keypoints, load_motion
    from mocap.io.bvh import read_bvh
    from mocap.skeletons import MOTION61
    from tests.hand_synthetic import POSES

    report, out = captured_hands
    main_kp = load_keypoints(out / "keypoints2d.npz")
    flexion = {}
    for tid in (0, 1):
        k = load_keypoints(out / f"person_{tid}" / "keypoints2d.npz")
        assert k.hand_keypoints is not None and k.hand_world is not None
        hands = k.hand_keypoints.reshape(k.num_frames, 2, 21, 2)
        for side, wrist in ((0, 15), (1, 16)):
            body_seen = np.isfinite(k.keypoints[:, wrist]).all(-1) & (k.confidence[:, wrist] >= 0.5)
            hand_seen = np.isfinite(hands[:, side]).all((-1, -2))
            np.testing.assert_array_equal(hand_seen, body_seen)
            np.testing.assert_allclose(hands[body_seen, side, 0], k.keypoints[body_seen, wrist], atol=1e-3)
        m = load_motion(out / f"person_{tid}" / "motion.npz")
        assert m.joint_names == MOTION61.joint_names and np.isfinite(m.local_quats_wxyz).all()
        seen = np.isfinite(hands).all((-1, -2))
        np.testing.assert_array_equal(m.hand_valid, seen[m.start_frame:m.start_frame + m.num_frames])
        assert "right_hand_pinky_tip" in read_bvh(out / f"person_{tid}" / "motion.bvh").joint_names
        a = angles_of_motion(m)[m.hand_valid][..., 0]  # (N, 15) flexion, radians
        flexion[tid] = float(np.degrees(a.mean()))
        if tid == 0:  # the captured person: the same hands as the main keypoints2d.npz
            np.testing.assert_array_equal(k.hand_keypoints, main_kp.hand_keypoints)
    print("mean flexion", flexion)
    fist = float(np.degrees(POSES["fist"][..., 0].mean()))
    assert abs(flexion[0]) < 8.0 and abs(flexion[1] - fist) < 12.0, (flexion, fist)
    assert load_motion(out / "motion.npz").joint_names == MOTION61.joint_names
    assert report.hands is not None and min(report.hands) > 0


def test_side_by_side_puts_people_of_one_world_in_one_skeleton_each():
    from mocap.formats import Motion
    from mocap.pipelines.capture import side_by_side
    from mocap.skeletons import MOTION21

    j = MOTION21.num_joints
    rng = np.random.default_rng(0)
    a = Motion(joints=rng.normal(size=(5, j, 3)), joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=30.0,
               start_frame=2)
    b = Motion(joints=rng.normal(size=(4, j, 3)), joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=30.0,
               start_frame=5)
    joints, parents, names = side_by_side([a, b])
    assert joints.shape == (7, 2 * j, 3)  # video frames 2-8
    np.testing.assert_array_equal(joints[:5, :j], a.joints)
    assert np.isnan(joints[5:, :j]).all() and np.isnan(joints[:3, j:]).all()
    np.testing.assert_array_equal(joints[3:, j:], b.joints)
    assert [i for i, p in enumerate(parents) if p < 0] == [0, j]
    assert parents[j + 1:] == [p + j for p in MOTION21.parents[1:]] and names[j:] == list(MOTION21.joint_names)
    with pytest.raises(ValueError, match="MOTION21"):
        side_by_side([Motion(joints=np.zeros((2, 3, 3)), joint_names=("a", "b", "c"), parents=(-1, 0, 1), fps=30.0)])
