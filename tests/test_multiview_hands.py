"""Hands with several cameras: the hand points triangulated from the views (the body's left/right
swaps applied to its hands), put at the body's wrists, turned into finger rotations; and a real
clip through ``mocap capture VIDEOS --calibration ... --hands``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mocap.cleanup.fingers import FingerOptions, angles_of_motion, fill_hands, hands_at_wrists, motion_with_hand_points
from mocap.formats import Keypoints2D
from mocap.kinematics import fingers as fk
from mocap.multiview.views import triangulate_hands
from mocap.rotations import geodesic_angle, matrix_to_quat_wxyz
from mocap.skeletons import HANDS42, MOTION61, rest_offsets
from tests.hand_synthetic import POSES, hand_scene, look_at

PLAN = fk.plan_hands(MOTION61, rest_offsets(MOTION61))
SINGLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "pose2sim_single"


def _scene(t: int = 20):
    """Both hands changing pose every few frames, seen by 4 cameras around the left hand."""
    names = list(POSES)
    angles = np.stack([np.stack([POSES[names[(f // 5) % len(names)]][0], POSES[names[(f // 5 + 1) % len(names)]][1]])
                       for f in range(t)])  # (T, 2, 15, 2): each hand its own pose, changing every 5 frames
    scene = hand_scene(angles, frames=t, pixel_noise=0.0, world_noise_m=0.0)
    target = scene.truth_joints[t // 2, PLAN.wrists].mean(0)
    cams = []
    for yaw in (0.0, 70.0, -70.0, 160.0):
        a, p = np.radians(yaw), np.radians(25.0)
        cams.append(look_at(target + 1.5 * np.array([np.sin(a) * np.cos(p), np.sin(p), np.cos(a) * np.cos(p)]), target))
    return scene, cams


def _views(scene, cams, *, noise_px: float, swapped: np.ndarray, seed: int = 0) -> list[Keypoints2D]:
    rng = np.random.default_rng(seed)
    t = scene.body.num_frames
    pts = scene.truth_joints[:, PLAN.hand_points.reshape(-1)]  # (T, 42, 3) hands42
    mirror = HANDS42.mirror_permutation()
    views = []
    for c, cam in enumerate(cams):
        px = cam.project(pts) + rng.normal(0.0, noise_px, (t, 42, 2))
        px = np.where(swapped[c, :, None, None], px[:, mirror], px)  # this view's body had left and right swapped
        views.append(Keypoints2D(keypoints=np.zeros((t, 33, 2), np.float32), confidence=np.ones((t, 33), np.float32),
                                 layout="mediapipe33", image_size=cam.size, fps=30.0,
                                 hand_keypoints=px.astype(np.float32), hand_confidence=np.full((t, 42), 0.9, np.float32),
                                 hand_world=np.zeros((t, 42, 3), np.float32)))
    return views


def _errors(scene, motion):
    """(flexion error (T, 2, 15) degrees, wrist orientation error (T, 2) degrees) against the truth."""
    got = angles_of_motion(motion)
    flex = np.degrees(np.abs(got[..., 0] - scene.angles[..., 0]))
    wrist = fk.palm_rotmats(PLAN, motion.joints)
    w = np.degrees(geodesic_angle(matrix_to_quat_wxyz(wrist), matrix_to_quat_wxyz(scene.wrist_global)))
    return flex, w


def _fingers(scene, cams, views, swapped):
    tri = triangulate_hands(views, cams, swapped)
    t = scene.body.num_frames
    hands = hands_at_wrists(tri.points.reshape(t, 2, 21, 3), scene.body.joints[:, PLAN.wrists])
    return tri, motion_with_hand_points(scene.body, hands, options=FingerOptions(cutoff_hz=0.0, max_gap_s=0.0))


def test_triangulated_hands_give_the_fingers_and_wrists():
    scene, cams = _scene()
    t = scene.body.num_frames
    none = np.zeros((4, t), bool)
    tri, motion = _fingers(scene, cams, _views(scene, cams, noise_px=1.0, swapped=none), none)
    truth = scene.truth_joints[:, PLAN.hand_points.reshape(-1)]
    assert np.isfinite(tri.points).all()
    assert np.linalg.norm(tri.points - truth, axis=-1).mean() < 0.002  # metres
    assert motion.hand_valid.all() and tuple(motion.joint_names) == MOTION61.joint_names
    flex, wrist = _errors(scene, motion)
    assert flex.mean() < 3.0 and wrist.mean() < 2.0, (flex.mean(), wrist.mean())
    # without noise: the hands' shape exactly
    tri, motion = _fingers(scene, cams, _views(scene, cams, noise_px=0.0, swapped=none), none)
    flex, wrist = _errors(scene, motion)
    assert flex.max() < 0.05 and wrist.max() < 0.05


def test_the_bodys_swaps_apply_to_its_hands():
    """Two of four views saw the body mirrored in frames 5-9 (their hands found at the wrong
    wrists): with the body's swaps the hands trade places back; without, those frames break."""
    scene, cams = _scene()
    t = scene.body.num_frames
    swapped = np.zeros((4, t), bool)
    swapped[:2, 5:10] = True
    views = _views(scene, cams, noise_px=1.0, swapped=swapped)
    _, motion = _fingers(scene, cams, views, swapped)
    flex, wrist = _errors(scene, motion)
    assert flex.mean() < 3.0 and wrist.mean() < 2.0
    tri, motion = _fingers(scene, cams, views, np.zeros((4, t), bool))
    bad = ~np.isfinite(tri.points[5:10]).all(-1) | (np.linalg.norm(
        tri.points[5:10] - scene.truth_joints[5:10][:, PLAN.hand_points.reshape(-1)], axis=-1) > 0.05)
    assert bad.mean() > 0.5


def test_a_hand_missing_in_the_views_comes_from_the_surest_single_view():
    rng = np.random.default_rng(0)
    t = 5
    hands = rng.normal(size=(t, 2, 21, 3))
    hands[1, 0] = np.nan
    hands[2, 1, 4] = np.nan
    hands[3] = np.nan
    cand = rng.normal(size=(3, t, 2, 21, 3))
    cand[2, 3, 0] = np.nan  # the surest view lacks frame 3's left hand
    cand[:, 3, 1] = np.nan  # no view has frame 3's right hand
    scores = np.tile(np.array([0.5, 0.7, 0.9])[:, None, None], (1, t, 2))
    out, filled = fill_hands(hands, cand, scores)
    np.testing.assert_array_equal(filled, [[0, 0], [1, 0], [0, 1], [1, 0], [0, 0]])
    np.testing.assert_array_equal(out[1, 0], cand[2, 1, 0])
    np.testing.assert_array_equal(out[2, 1], cand[2, 2, 1])
    np.testing.assert_array_equal(out[3, 0], cand[1, 3, 0])
    assert np.isnan(out[3, 1]).all()
    np.testing.assert_array_equal(out[0], hands[0])


def test_triangulate_hands_checks_its_input():
    scene, cams = _scene(6)
    views = _views(scene, cams, noise_px=0.0, swapped=np.zeros((4, 6), bool))
    with pytest.raises(ValueError, match="swapped"):
        triangulate_hands(views, cams, np.zeros((3, 6), bool))
    import dataclasses
    with pytest.raises(ValueError, match="hand_keypoints"):
        triangulate_hands([dataclasses.replace(views[0], hand_keypoints=None, hand_confidence=None, hand_world=None),
                           *views[1:]], cams, np.zeros((4, 6), bool))


@pytest.mark.skipif(not SINGLE.is_dir(), reason="needs ../shared/data/video/pose2sim_single")
def test_real_views_with_hands_and_face(tmp_path):
    """The first 24 frames of pose2sim_single's four cameras, the Qualisys file as given: the
    hands are found and triangulated, their points reproject onto what each view saw, the
    captured fingers have a hand's proportions, and the files carry them; face.npz holds the
    motion's frames (the face is small here: the numbers are checked on synthetic views in
    tests/test_face.py)."""
    import cv2

    from mocap.formats import load_face, load_keypoints, load_motion
    from mocap.io.calibration_files import load_calibration
    from mocap.pipelines.multiview import capture_multiview
    from mocap.pipelines.options import CaptureOptions, DetectionOptions, ExportOptions, MultiViewOptions

    clips = []
    for c in range(1, 5):
        src = cv2.VideoCapture(str(SINGLE / "videos" / f"cam0{c}.mp4"))
        fps = src.get(cv2.CAP_PROP_FPS)
        out, writer = tmp_path / f"cam0{c}.mp4", None
        for _ in range(24):
            ok, frame = src.read()
            assert ok
            if writer is None:
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
            writer.write(frame)
        writer.release()
        clips.append(out)
    calib = SINGLE / "calibration" / "Calib.qca.txt"
    options = CaptureOptions(detection=DetectionOptions(hands=True, face=True), multiview=MultiViewOptions(calibration=calib),
                             export=ExportOptions(overlay=False))
    report = capture_multiview(clips, tmp_path / "out", options, progress=False)
    left, right, left1, right1 = report.hands
    assert min(left, right) >= 12 and left1 <= left and right1 <= right, report.hands
    motion = load_motion(report.outputs["motion"])
    assert tuple(motion.joint_names) == MOTION61.joint_names and motion.hand_valid.sum(0).min() >= 12
    # the captured hands' proportions: knuckles 6-12 cm from the wrist, finger bones 1.5-6 cm
    knuckles = [MOTION61.index(f"{side}_hand_{f}_mcp") for side in ("left", "right")
                for f in ("index_finger", "middle_finger", "ring_finger", "pinky")]
    d = np.linalg.norm(motion.rest_offsets[knuckles], axis=-1)
    assert ((d > 0.06) & (d < 0.12)).all(), d
    # the triangulated hands reproject onto each view's hand points (the views agree)
    cams = load_calibration(calib)
    views = [load_keypoints(report.outputs[f"keypoints_cam0{c}"]) for c in range(1, 5)]
    assert all(v.hand_keypoints is not None for v in views)
    tri = triangulate_hands(views, cams, np.zeros((4, views[0].num_frames), bool))
    seen = np.isfinite(tri.points).all(-1)
    assert seen.mean() > 0.5
    err = [np.linalg.norm(cam.project(tri.points[seen]) - v.hand_keypoints[seen], axis=-1) for cam, v in zip(cams, views)]
    med = [float(np.nanmedian(e)) for e in err]
    assert max(med) < 15.0, med
    assert json.loads(report.outputs["reprojection"].read_text())["bone_length_cv_median"] < 0.1
    face = load_face(report.outputs["face"])
    assert face.num_frames == motion.num_frames and face.start_frame == 0 and report.face is not None
    with_controls = np.isfinite(face.controls).all(-1)
    assert with_controls.sum() == report.face and np.isfinite(face.head_ypr[with_controls]).all()
    assert (report.outputs["face_csv"]).is_file()
