"""Faithfulness measures (mocap.fit.quality) against known answers: cameras built from known
pitch, roll and height; synthetic motion projected through a known camera (0 error, then
known pixel offsets); a motion deliberately wrong in known frames; quality.json; the summary
line; ``mocap report`` with a quality.json."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from mocap.camera import Camera, intrinsic_matrix
from mocap.cli import main
from mocap.fit.quality import (HEAD_TOP_M, MISMATCH_PCT, camera_angles, mismatched_ranges, model_height_px,
                               motion_quality, parts_seen, person_height_px, quality_line, read_quality_json,
                               reprojection_error, standing_height, write_quality_json)
from mocap.formats import Keypoints2D, Motion, save_motion
from mocap.kinematics.ik import forward_kinematics
from mocap.skeletons import MOTION21, rest_offsets
from tests.synthetic import motion21_to_mediapipe33, waving_walker
from tests.test_report import _long_dark_lines, _mask, _read_rgb

FPS = 30.0
SIZE = (1280, 720)
FOCAL = 1000.0


def _rot(axis: int, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i] = r[j, j] = c
    r[i, j], r[j, i] = -s, s
    return r


def make_camera(pitch_deg: float, roll_deg: float, height_m: float, *, yaw_deg: float = 0.0,
                x_m: float = 0.0, z_m: float = -5.0) -> Camera:
    """A camera at (x, height, z) facing +Z world when yaw is 0 (yaw turns it about +Y), then
    pitched down by ``pitch_deg`` about its x axis, then rolled by ``roll_deg`` about its
    optical axis (camera axes x right, y down, z forward)."""
    level = np.diag([-1.0, -1.0, 1.0])  # camera axes of a level camera looking along +Z world
    r = _rot(2, roll_deg) @ _rot(0, pitch_deg) @ level @ _rot(1, yaw_deg)
    pos = np.array([x_m, height_m, z_m])
    return Camera(name="cam", size=SIZE, K=intrinsic_matrix(FOCAL, (SIZE[0] / 2, SIZE[1] / 2)), R=r, t=-r @ pos,
                  dist=np.zeros(5))


# --- camera angles ------------------------------------------------------------------------------

@pytest.mark.parametrize("pitch, roll, height, yaw", [
    (0.0, 0.0, 1.0, 0.0), (12.0, 0.0, 1.5, 0.0), (25.0, -7.0, 0.8, 40.0), (-10.0, 15.0, 2.0, -130.0),
    (60.0, 3.0, 3.0, 180.0), (30.0, 90.0, 1.2, 10.0),
])
def test_camera_angles_round_trip(pitch, roll, height, yaw):
    cam = make_camera(pitch, roll, height, yaw_deg=yaw, x_m=0.7, z_m=-3.0)
    got = camera_angles(cam)
    assert got == pytest.approx((pitch, roll, height), abs=1e-9)


def test_camera_angles_mean_what_they_say():
    # Pitched 30 degrees down from 2 m: the ground point 2 / tan(30 deg) ahead is at the image centre.
    cam = make_camera(30.0, 0.0, 2.0, z_m=0.0)
    centre = cam.project(np.array([0.0, 0.0, 2.0 / math.tan(math.radians(30.0))]))
    np.testing.assert_allclose(centre, [SIZE[0] / 2, SIZE[1] / 2], atol=1e-9)
    assert camera_angles(cam)[0] == pytest.approx(30.0)
    # Rolled +10 degrees: a vertical post at the image centre appears turned clockwise by 10 degrees.
    cam = make_camera(0.0, 10.0, 1.0, z_m=0.0)
    a, b = cam.project(np.array([[0.0, 1.0, 4.0], [0.0, 1.5, 4.0]]))
    dx, dy = b - a
    assert math.degrees(math.atan2(dx, -dy)) == pytest.approx(10.0, abs=1e-9)
    assert camera_angles(cam)[1] == pytest.approx(10.0)
    assert camera_angles(make_camera(90.0, 0.0, 3.0))[0] == pytest.approx(90.0)


# --- 2D height and reprojection error -------------------------------------------------------------

def _frame(head, foot, conf=1.0) -> tuple[np.ndarray, np.ndarray]:
    kp = np.full((21, 2), np.nan)
    c = np.zeros(21)
    if head is not None:
        kp[MOTION21.index("head")] = head
        c[MOTION21.index("head")] = conf
    if foot is not None:
        kp[MOTION21.index("left_ankle")] = np.add(foot, (0.0, -40.0))
        kp[MOTION21.index("right_heel")] = foot
        c[[MOTION21.index("left_ankle"), MOTION21.index("right_heel")]] = conf
    kp[MOTION21.index("pelvis")] = (500.0, 300.0)
    c[MOTION21.index("pelvis")] = conf
    return kp, c


def test_person_height_px_per_frame_and_its_fallbacks():
    frames = [
        _frame((100.0, 100.0), (100.0, 400.0)),  # 300 px: head to the lowest foot point (the heel)
        _frame((0.0, 0.0), (240.0, 320.0)),  # 400 px, diagonal
        _frame((0.0, 0.0), (0.0, 350.0)),  # 350 px
        _frame((0.0, 0.0), None),  # feet not seen: the clip's median
        _frame((0.0, 0.0), (0.0, 150.0)),  # crouching (under 0.6 of the median): the median
        _frame((0.0, 0.0), (0.0, 400.0), conf=0.2),  # nothing confident: not seen
    ]
    kp = np.stack([f[0] for f in frames])
    conf = np.stack([f[1] for f in frames])
    h = person_height_px(kp, conf, min_confidence=0.3)
    median = np.median([300.0, 400.0, 350.0, 150.0])  # 325: the frames that have a head and a foot
    np.testing.assert_allclose(h[:5], [300.0, 400.0, 350.0, median, median])
    assert np.isnan(h[5])
    # no frame with both the head and a foot point: nothing to measure
    assert np.isnan(person_height_px(kp[3:4], conf[3:4])).all()


def _walker_2d(t: int = 60):
    joints = waving_walker(t, FPS)
    cam = make_camera(10.0, 0.0, 1.2, z_m=-5.0)
    return joints, cam, cam.project(joints)


def test_reprojection_error_is_zero_then_offset_over_height():
    joints, cam, kp = _walker_2d()
    conf = np.full(kp.shape[:2], 0.9)
    assert np.isfinite(kp).all()
    np.testing.assert_allclose(reprojection_error(joints, kp, conf, cam), 0.0, atol=1e-12)
    height = person_height_px(kp, conf)
    assert 250 < height.min() and height.max() < 400  # a 1.7 m person 4.4-5 m away at f = 1000 px
    for shift in ((3.0, 0.0), (0.0, -4.0)):  # every keypoint moved: the height stays, the error is k px
        k = math.hypot(*shift)
        np.testing.assert_allclose(reprojection_error(joints, kp + shift, conf, cam), k / height, rtol=1e-12)
    # one joint off by 20 px with confidence 0.5 among 20 at 1: a weighted mean of 0.5 * 20 / 20.5 px
    moved, weights = kp.copy(), np.ones(kp.shape[:2])
    moved[:, MOTION21.index("left_wrist"), 0] += 20.0
    weights[:, MOTION21.index("left_wrist")] = 0.5
    np.testing.assert_allclose(reprojection_error(joints, moved, weights, cam), 10.0 / 20.5 / height, rtol=1e-12)
    weights[:, MOTION21.index("left_wrist")] = 0.2  # under min_confidence: left out
    np.testing.assert_allclose(reprojection_error(joints, moved, weights, cam), 0.0, atol=1e-12)
    # a frame where the person is not seen: NaN
    moved[7] = np.nan
    err = reprojection_error(joints, moved, weights, cam)
    assert np.isnan(err[7]) and np.isfinite(np.delete(err, 7)).all()
    with pytest.raises(ValueError, match="MOTION21"):
        reprojection_error(joints, kp[:, :17], conf[:, :17], cam)


def test_mismatched_ranges_bridge_short_gaps_and_drop_short_runs():
    e = np.zeros(120)
    e[10:21] = 9.0  # 11 frames (0.37 s): named
    e[40:43] = 30.0  # 3 frames (0.1 s): noise, not named
    e[50:56] = 6.0  # 50-55 and 58-64: a 2-frame gap is bridged
    e[58:65] = 7.0
    e[80:84] = 6.0  # 80-83 and 89-92: a 5-frame gap is not; each run is too short
    e[89:93] = 6.0
    e[100:107] = np.nan  # not seen
    e[110:] = 5.0  # at the threshold is not over it
    assert mismatched_ranges(e, fps=FPS) == [(10, 20), (50, 64)]
    assert mismatched_ranges(e, fps=FPS, threshold_pct=8.0) == [(10, 20)]
    assert mismatched_ranges(e, fps=FPS, min_s=0.0) == [(10, 20), (40, 42), (50, 64), (80, 83), (89, 92)]
    assert mismatched_ranges(np.full(5, np.nan), fps=FPS) == []


# --- motion_quality -------------------------------------------------------------------------------

START = 25


def _video_keypoints(truth: np.ndarray, cam: Camera, *, frames: int) -> Keypoints2D:
    """MediaPipe-33 keypoints of a video of ``frames`` frames in which ``truth`` (T, 21, 3)
    world metres is seen from video frame START on."""
    kp = np.full((frames, 33, 2), np.nan)
    conf = np.zeros((frames, 33))
    n = min(len(truth), frames - START)
    kp[START:START + n] = cam.project(motion21_to_mediapipe33(truth[:n]))
    conf[START:START + n] = 1.0
    return Keypoints2D(keypoints=kp.astype(np.float32), confidence=conf.astype(np.float32), layout="mediapipe33",
                       image_size=SIZE, fps=FPS)


def test_motion_quality_names_the_frames_that_do_not_match():
    truth, cam, _ = _walker_2d(120)
    wrong = truth.copy()
    wrong[40:61, MOTION21.index("left_shoulder"):] += (0.0, 0.4, 0.0)  # arms 40 cm too high in frames 40-60
    valid = np.ones(120, bool)
    valid[100:104] = False
    motion = Motion(joints=wrong, joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=FPS,
                    rest_offsets=rest_offsets(), start_frame=START, valid=valid)
    q = motion_quality(motion, _video_keypoints(truth, cam, frames=START + 140), cam)
    err = np.array(q["reprojection_error_pct"], dtype=float)
    assert err.shape == (120,) and q["num_frames"] == 120 and q["start_frame"] == START
    assert np.isnan(err[100:104]).all() and q["frames_seen"] == 116
    assert (err[40:61] > MISMATCH_PCT).all()
    assert np.nanmax(np.delete(err, np.r_[40:61])) < 0.05  # elsewhere only the keypoint mapping's rounding
    assert q["reprojection_median_pct"] < 0.05
    assert [(r["first"], r["last"]) for r in q["mismatched_frames"]] == [(40 + START, 60 + START)]
    assert q["mismatched_frames"][0]["max_pct"] == pytest.approx(np.nanmax(err), abs=1e-3)
    assert q["reprojection_p95_pct"] == pytest.approx(np.nanpercentile(err, 95), abs=1e-3)
    assert (q["camera_pitch_deg"], q["camera_roll_deg"], q["camera_height_m"]) == pytest.approx((10.0, 0.0, 1.2))
    assert q["camera_focal_px"] == FOCAL
    assert q["person_height_m"] == pytest.approx(1.55 + HEAD_TOP_M)
    line = quality_line(q)
    assert f"frames {40 + START}-{60 + START} do not match" in line and line.startswith("3D matches the video")
    # the video ends before the motion does: the frames without keypoints are not seen
    q = motion_quality(motion, _video_keypoints(truth, cam, frames=START + 90), cam)
    assert q["frames_seen"] == 90 and all(e != e for e in q["reprojection_error_pct"][90:])


def _standing(t: int) -> np.ndarray:
    """(T, 21, 3): the rest pose with its lowest point on y = 0, 5 m in front of the camera."""
    x = forward_kinematics(np.tile([1.0, 0, 0, 0], (t, 21, 1)), np.zeros((t, 3)), rest_offsets(), MOTION21.parents)
    x[..., 1] -= x[0, :, 1].min()
    return x


def _quality_of(joints: np.ndarray, **kw) -> dict:
    cam = make_camera(5.0, 0.0, 1.0, z_m=-5.0)
    motion = Motion(joints=joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=FPS,
                    start_frame=START, **kw)
    return motion_quality(motion, _video_keypoints(joints, cam, frames=START + len(joints)), cam,
                          contacts=np.ones((len(joints), 4), bool))


def test_motion_quality_skate_jitter_floor_and_height():
    t = 40
    x = _standing(t) + (0.002 * np.arange(t))[:, None, None] * np.array([0.6, 0.0, 0.8])  # 2 mm per frame
    q = _quality_of(x)
    assert q["foot_skate_mean_mm"] == pytest.approx(2.0) and q["foot_skate_max_mm"] == pytest.approx(2.0)
    assert q["jitter_mm"] == pytest.approx(0.0, abs=1e-9)
    assert q["lowest_joint_m"] == pytest.approx(0.0, abs=1e-12) and q["frames_below_floor"] == 0
    # without rest offsets the height comes from the median bone lengths: the same rest pose
    assert q["person_height_m"] == pytest.approx(1.55 + HEAD_TOP_M)
    # a constant acceleration of 3 mm/frame^2 (upwards: the feet leave the floor)
    x = _standing(t) + (0.5 * 0.003 * np.arange(t) ** 2)[:, None, None] * np.array([0.0, 1.0, 0.0])
    assert _quality_of(x)["jitter_mm"] == pytest.approx(3.0)
    # frames 0-9 sunk 5 cm, 10-19 2 cm (within the tolerance)
    x = _standing(t)
    x[:10, :, 1] -= 0.05
    x[10:20, :, 1] -= 0.02
    q = _quality_of(x)
    assert q["lowest_joint_m"] == pytest.approx(-0.05) and q["frames_below_floor"] == 10
    # a taller person: rest offsets scaled by 1.1
    q = _quality_of(_standing(t) * 1.1, rest_offsets=rest_offsets() * 1.1)
    assert q["person_height_m"] == pytest.approx(1.1 * (1.55 + HEAD_TOP_M))  # the head top scales with the head
    assert standing_height(rest_offsets()) == pytest.approx(1.55 + HEAD_TOP_M)


def test_legs_out_of_the_picture_are_measured_and_named():
    """A close camera that shows the person from the hips up: the error is still measured (the
    person's 2D height from the motion's own size at its depth), and the summary says the legs
    and feet are seldom seen."""
    t = 40
    x = _standing(t)
    cam = make_camera(0.0, 0.0, 1.2, z_m=-2.0)  # level, 2 m away: the knees fall out of the picture
    keypoints = _video_keypoints(x, cam, frames=START + t)
    px = keypoints.keypoints.astype(np.float64)
    inside = (px >= 0).all(-1) & (px < SIZE).all(-1)
    keypoints = Keypoints2D(keypoints=np.where(inside[..., None], px, np.nan).astype(np.float32),
                            confidence=np.where(inside, keypoints.confidence, 0.0).astype(np.float32),
                            layout="mediapipe33", image_size=SIZE, fps=FPS)
    motion = Motion(joints=x, joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=FPS,
                    rest_offsets=rest_offsets(), start_frame=START)
    wrong = x.copy()
    wrong[:, MOTION21.index("left_shoulder"):] += (0.0, 0.05, 0.0)  # arms 5 cm too high
    q0, q = (motion_quality(dataclasses.replace(motion, joints=j), keypoints, cam,
                            contacts=np.ones((t, 4), bool)) for j in (x, wrong))
    height_px = FOCAL * (1.55 + HEAD_TOP_M) / 2.0  # 1.67 m standing 2 m away (the pelvis at z = 0)
    assert q["person_height_px_from"] == "motion" and q["person_height_px"] == pytest.approx(height_px)
    assert q0["reprojection_median_pct"] < 0.05 and q["frames_seen"] == t
    arms = [MOTION21.index(n) for n in MOTION21.joint_names[MOTION21.index("left_shoulder"):]]
    kp21 = cam.project(x[0])
    seen = [i for i in range(21) if (kp21[i] >= 0).all() and (kp21[i] < SIZE).all()]
    shifted = len(set(arms) & set(seen)) / len(seen)  # the share of the seen joints 5 cm off
    expected = 100 * shifted * FOCAL * 0.05 / 2.0 / height_px  # ... each 25 px at 2 m
    assert q["reprojection_median_pct"] == pytest.approx(expected, rel=0.02)
    assert q["parts_seen_pct"] == {"head": 100.0, "torso": 100.0, "left arm": 100.0, "right arm": 100.0,
                                   "left leg": 0.0, "right leg": 0.0, "left foot": 0.0, "right foot": 0.0}
    line = quality_line(q)
    assert line.endswith("seen in few frames (out of the picture or hidden): the legs (0 %, 0 %), the feet (0 %, 0 %): "
                         "where unseen, their motion is the network's guess, and so are the floor and the camera's "
                         "height"), line
    assert quality_line(q, one_camera=False).endswith(
        "seen in few of this view's frames: the legs (0 %, 0 %), the feet (0 %, 0 %)")
    # one side out of the picture: that arm named alone, and with one foot seen the floor is not a guess
    side = dict(q, parts_seen_pct={**q["parts_seen_pct"], "left leg": 100.0, "left foot": 80.0, "right arm": 12.0})
    assert quality_line(side).endswith("the right arm (12 %), the right leg (0 %), the right foot (0 %): where "
                                       "unseen, their motion is the network's guess"), quality_line(side)
    # the whole body in the picture: the keypoints' height, every part seen, nothing named
    far = motion_quality(motion, _video_keypoints(x, make_camera(0.0, 0.0, 1.0, z_m=-5.0), frames=START + t),
                         make_camera(0.0, 0.0, 1.0, z_m=-5.0), contacts=np.ones((t, 4), bool))
    assert far["person_height_px_from"] == "keypoints" and set(far["parts_seen_pct"].values()) == {100.0}
    assert "seen in few" not in quality_line(far)
    np.testing.assert_allclose(model_height_px(x, cam, 1.0), FOCAL / 2.0)
    assert all(math.isnan(v) for v in parts_seen(np.full((3, 21, 2), np.nan), np.zeros((3, 21))).values())


# --- the file and the line ------------------------------------------------------------------------

def _made_up_quality(**kw) -> dict:
    q = {"version": 1, "num_frames": 6, "start_frame": 100, "fps": 30.0, "frames_seen": 5,
         "reprojection_error_pct": [1.0, float("nan"), 1.4, 9.8, 2.0, 1.2],
         "reprojection_median_pct": 1.4, "reprojection_p95_pct": 3.2, "reprojection_max_pct": 9.8,
         "reprojection_median_px": 4.2, "person_height_px": 300.0, "mismatch_threshold_pct": 5.0,
         "mismatch_min_s": 0.2, "mismatched_frames": [{"first": 120, "last": 160, "max_pct": 9.8}],
         "foot_skate_mean_mm": 1.5, "foot_skate_max_mm": 7.0, "jitter_mm": 2.0, "camera_pitch_deg": 12.0,
         "camera_roll_deg": float("nan"), "camera_height_m": 1.3, "camera_focal_px": 1400.0, "person_height_m": 1.8,
         "lowest_joint_m": -0.01, "frames_below_floor": 0}
    q.update(kw)
    return q


def test_quality_json_writes_nan_as_null_and_reads_back(tmp_path):
    q = _made_up_quality()
    path = tmp_path / "quality.json"
    write_quality_json(path, q)
    assert [p.name for p in tmp_path.iterdir()] == ["quality.json"]  # no temporary file left
    text = path.read_text()
    assert "NaN" not in text
    raw = json.loads(text)
    assert raw["reprojection_error_pct"][1] is None and raw["camera_roll_deg"] is None
    back = read_quality_json(path)
    assert back == {**q, "reprojection_error_pct": [1.0, None, 1.4, 9.8, 2.0, 1.2], "camera_roll_deg": None}
    assert quality_line(back) == quality_line(q)
    (tmp_path / "bad.json").write_text('{"fps": 30}')
    from mocap.errors import MocapError
    with pytest.raises(MocapError, match="not a quality.json"):
        read_quality_json(tmp_path / "bad.json")


def test_quality_line():
    assert quality_line(_made_up_quality()) == (
        "3D matches the video: median reprojection error 1.4 % of the person's height (95th pct 3.2 %); "
        "frames 120-160 do not match (up to 9.8 %)")
    many = [{"first": 10 * k, "last": 10 * k + 6, "max_pct": 6.0 + k} for k in range(6)]
    assert quality_line(_made_up_quality(reprojection_median_pct=3.0, mismatched_frames=many,
                                         frames_below_floor=12)) == (
        "3D roughly matches the video: median reprojection error 3.0 % of the person's height (95th pct 3.2 %); "
        "frames 20-26, 30-36, 40-46, 50-56 and 2 more do not match (up to 11.0 %); "
        "12 frames have a joint more than 3 cm under the floor")
    assert quality_line(_made_up_quality(reprojection_median_pct=7.0, mismatched_frames=[])).startswith(
        "3D does not match the video: median reprojection error 7.0 %")
    assert quality_line(_made_up_quality(mismatched_frames=[])).endswith("no stretch of frames off by more than 5 %")
    assert "not measured" in quality_line(_made_up_quality(reprojection_median_pct=None))
    assert quality_line(_made_up_quality(mismatched_frames=[], camera_height_m=-0.07)).endswith(
        "; the solved camera is 0.07 m under the floor, which cannot be: gravity and the floor are likely wrong "
        "(check preview.png)")
    assert "under the floor, which" not in quality_line(_made_up_quality(camera_height_m=0.02))


def test_a_person_across_the_picture_is_measured_and_named():
    """A walker seen by a level camera stands up in the picture; the same camera turned on its side
    (a phone clip without its rotation tag) shows them across it, in every frame. With gravity
    from the body, the summary says it cannot tell a person lying down from a turned picture; with
    the room's lines it can."""
    from mocap.fit.quality import across_picture

    joints, _, kp = _walker_2d()
    conf = np.full(kp.shape[:2], 0.9)
    assert across_picture(kp, conf) == 0.0
    sideways = make_camera(10.0, 90.0, 1.2, z_m=-5.0).project(joints)
    assert across_picture(sideways, conf) == 100.0
    upside_down = make_camera(10.0, 180.0, 1.2, z_m=-5.0).project(joints)
    assert across_picture(upside_down, conf) == 100.0
    half = np.concatenate([kp[:30], sideways[30:]])
    assert across_picture(half, conf) == pytest.approx(50.0)
    gone = conf.copy()
    gone[:, MOTION21.index("left_hip")] = 0.0
    assert math.isnan(across_picture(kp, gone))
    said = "the person lies across the picture in 100 % of the frames and gravity comes from the body"
    assert said in quality_line(_made_up_quality(torso_across_pct=100.0, gravity_from="balance"))
    assert said not in quality_line(_made_up_quality(torso_across_pct=100.0, gravity_from="scene"))
    assert "lies across" not in quality_line(_made_up_quality(torso_across_pct=20.0, gravity_from="balance"))
    assert "lies across" not in quality_line(_made_up_quality(torso_across_pct=100.0, gravity_from="balance"),
                                             one_camera=False)


# --- mocap report ---------------------------------------------------------------------------------

def test_report_plots_and_prints_the_quality_beside_the_motion(tmp_path, capsys):
    t = 60
    x = _standing(t)
    save_motion(tmp_path / "motion.npz", Motion(joints=x, joint_names=MOTION21.joint_names, parents=MOTION21.parents,
                                                fps=FPS, start_frame=100))
    error = [1.0] * 30 + [8.0] * 30
    q = _made_up_quality(num_frames=t, reprojection_error_pct=error,
                         mismatched_frames=[{"first": 130, "last": 159, "max_pct": 8.0}])
    write_quality_json(tmp_path / "quality.json", q)
    assert main(["report", str(tmp_path / "motion.npz")]) == 0
    out = capsys.readouterr().out
    assert quality_line(q) in out and "frames 130-159 do not match" in out
    img = _read_rgb(tmp_path / "motion_report.png")
    assert img.shape == (1125, 810, 3)  # five panels of 2.5 inches at 90 dpi
    *_, top, bottom = _long_dark_lines(img, axis=1)  # the spines of the last panel
    panel = img[int(top) - 5:]
    top, bottom = top - int(top) + 5, bottom - int(top) + 5
    row = lambda pct: bottom - pct / 10.0 * (bottom - top)  # noqa: E731  y axis 0 .. 2 x threshold
    curve = _mask(panel, (31, 119, 180))  # C0: the error per frame
    rows = np.nonzero(curve.any(1))[0]
    assert rows.min() == pytest.approx(row(8.0), abs=2) and rows.max() == pytest.approx(row(1.0), abs=2)
    dashed = np.nonzero(_mask(panel, (214, 39, 40)).sum(1) > 100)[0]  # C3: the threshold line
    assert dashed.size and np.abs(dashed - row(5.0)).max() <= 2
    # given elsewhere with --quality; one that does not cover the motion is an error
    (tmp_path / "quality.json").rename(tmp_path / "q.json")
    assert main(["report", str(tmp_path / "motion.npz"), "--quality", str(tmp_path / "q.json")]) == 0
    assert quality_line(q) in capsys.readouterr().out
    write_quality_json(tmp_path / "short.json", _made_up_quality())
    assert main(["report", str(tmp_path / "motion.npz"), "--quality", str(tmp_path / "short.json")]) == 1
    assert "covers 6 frames" in capsys.readouterr().err
    # without a quality.json: four panels as before, no line
    assert main(["report", str(tmp_path / "motion.npz")]) == 0
    assert "reprojection" not in capsys.readouterr().out
    assert _read_rgb(tmp_path / "motion_report.png").shape == (900, 810, 3)
