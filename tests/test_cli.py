"""The command line: bad input gives one line and a non-zero exit, and leaves no partial files."""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mocap.cli import main
from mocap.formats import load_motion, save_keypoints
from tests.synthetic import FOCAL_PX, synthetic_keypoints, waving_walker


def _run(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_one_line_error(rc, err, match):
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mocap: error: "), err
    assert match in lines[0], lines[0]
    assert "Traceback" not in err


def test_missing_video(tmp_path, capsys):
    rc, _, err = _run(["capture", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "out")], capsys)
    _assert_one_line_error(rc, err, "nope.mp4")
    assert not (tmp_path / "out").exists()


def test_not_a_video(tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n")
    rc, _, err = _run(["detect", str(bad), "-o", str(tmp_path / "k.npz")], capsys)
    _assert_one_line_error(rc, err, "notes.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]


def _blank_video(path, frames=12, size=(160, 120)):
    cv2 = pytest.importorskip("cv2")
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for i in range(frames):
        w.write(np.full((size[1], size[0], 3), 40 + i, np.uint8))
    w.release()


def test_video_without_person(tmp_path, capsys):
    pytest.importorskip("torch")  # the default detector, blazepose-torch
    video = tmp_path / "empty.mp4"
    _blank_video(video)
    out = tmp_path / "out"
    rc, _, err = _run(["capture", str(video), "-o", str(out), "-q"], capsys)
    _assert_one_line_error(rc, err, "no person found")
    assert not out.exists() or list(out.iterdir()) == []


def test_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    kp = tmp_path / "k.npz"
    save_keypoints(kp, synthetic_keypoints(waving_walker(t=10)))
    rc, _, err = _run(["lift", str(kp), "-o", str(blocker / "motion.npz"), "--lifter", "mediapipe", "--focal-px", str(FOCAL_PX)], capsys)
    _assert_one_line_error(rc, err, "cannot write")
    rc, _, err = _run(["capture", __file__, "-o", str(blocker / "sub")], capsys)
    assert rc == 1 and "Traceback" not in err


@pytest.mark.parametrize("content", [b"", b"garbage", None])
def test_bad_keypoints_file(tmp_path, capsys, content):
    p = tmp_path / "k.npz"
    if content is None:
        np.savez(p, keypoints=np.zeros((0, 33, 2)), confidence=np.zeros((0, 33)), layout="mediapipe33",
                 image_size=[10, 10], fps=30.0)
    else:
        p.write_bytes(content)
    rc, _, err = _run(["lift", str(p), "-o", str(tmp_path / "m.npz")], capsys)
    _assert_one_line_error(rc, err, "k.npz")
    assert not (tmp_path / "m.npz").exists()


def test_lift_command_writes_motion_and_bvh(tmp_path, capsys):
    truth = waving_walker(t=30)
    kp = tmp_path / "k.npz"
    save_keypoints(kp, synthetic_keypoints(truth))
    rc, out, err = _run(["lift", str(kp), "-o", str(tmp_path / "m.npz"), "--bvh", str(tmp_path / "m.bvh"),
                         "--lifter", "mediapipe", "--focal-px", str(FOCAL_PX), "--no-foot-lock", "--no-fit",
                         "--units", "m"], capsys)  # the walker cannot balance: no fit (tests/test_fit.py)
    assert rc == 0, err
    assert not (tmp_path / "m.quality.json").exists() and "quality" not in out
    m = load_motion(tmp_path / "m.npz")
    assert m.num_frames == 30 and np.linalg.norm(m.joints - truth, axis=-1).mean() < 0.01
    from mocap.io.bvh import read_bvh

    b = read_bvh(tmp_path / "m.bvh", units="m")
    assert b.local_quats_wxyz.shape == (30, 21, 4)
    np.testing.assert_allclose(b.rest_offsets, m.rest_offsets, atol=1e-6)  # written in metres
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.npz", "m.bvh", "m.npz"]


def test_console_entry_point_one_line_error(tmp_path):
    """The installed `python -m mocap` path prints no traceback either."""
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    r = subprocess.run([sys.executable, "-m", "mocap", "lift", str(tmp_path / "missing.npz"), "-o",
                        str(tmp_path / "m.npz")], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("mocap: error:") and "Traceback" not in r.stderr


def test_import_mocap_is_light():
    code = ("import sys, mocap, mocap.pipelines.capture, mocap.formats, mocap.cli; "
            "heavy = [m for m in ('torch', 'mediapipe', 'bpy', 'cv2') if m in sys.modules]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_flags_build_the_capture_options():
    """Every flag of capture and batch lands in its stage's option; no flag gives the defaults."""
    from mocap.cli import build_parser
    from mocap.config import from_namespace
    from mocap.pipelines import batch
    from mocap.pipelines.options import (CaptureOptions, CleanupConfig, DetectionOptions, ExportOptions, LiftOptions,
                                         MultiViewOptions)

    parse = build_parser().parse_args
    assert from_namespace(CaptureOptions, parse(["capture", "v.mp4", "-o", "out"])) == CaptureOptions()
    assert from_namespace(CaptureOptions, batch.build_parser().parse_args(["dir", "-o", "out"])) == CaptureOptions()
    args = parse(["capture", "a.mp4", "b.mp4", "-o", "o", "--calibration", "auto", "--body-height", "1.8",
                  "--sync", "auto", "--refine-calibration", "--lifter", "mediapipe", "--focal-px", "900",
                  "--cutoff-hz", "4", "--no-foot-lock", "--no-level", "--keep-swaps", "--avatar", "anny",
                  "--detector", "movenet", "--person", "2", "--all-people", "--device", "cuda", "--no-overlay",
                  "--no-preview"])
    assert from_namespace(CaptureOptions, args) == CaptureOptions(
        detection=DetectionOptions(detector="movenet", person=2, all_people=True, device="cuda"),
        lifting=LiftOptions(lifter="mediapipe", focal_px=900.0),
        cleanup=CleanupConfig(cutoff_hz=4.0, lock_feet=False, level=False, resolve_swaps=False),
        multiview=MultiViewOptions(calibration="auto", sync="auto", body_height_m=1.8, refine_calibration=True),
        export=ExportOptions(avatar="anny", overlay=False, preview=False))
    assert from_namespace(CaptureOptions, parse(["capture", "v.mp4", "-o", "o", "--units", "m"])).export == \
        ExportOptions(bvh_units="m")
    assert parse(["lift", "k.npz", "-o", "m.npz", "--bvh", "m.bvh", "--units", "m"]).units == "m"
    assert parse(["lift", "k.npz", "-o", "m.npz"]).units == "cm"
    args = batch.build_parser().parse_args(["dir", "-o", "o", "--keep-swaps", "--no-overlay", "--target", "c.fbx"])
    o = from_namespace(CaptureOptions, args)
    assert not o.cleanup.resolve_swaps and not o.export.overlay and o.export.target == "c.fbx"


def test_detect_runs_the_capture_2d_stage_with_its_options(tmp_path, capsys, monkeypatch):
    """``mocap detect`` takes capture's --detector/--person/--device (DetectionOptions) to the
    same 2D stage (detect_person_video) and writes the person it returns, NaN frames kept."""
    from mocap.cli import build_parser
    from mocap.config import from_namespace
    from mocap.detect2d import people
    from mocap.detect2d.options import DetectionOptions
    from mocap.formats import Keypoints2D, load_keypoints

    parse = build_parser().parse_args
    assert from_namespace(DetectionOptions, parse(["detect", "v.mp4", "-o", "k.npz"])) == DetectionOptions()
    assert from_namespace(DetectionOptions, parse(["detect", "v.mp4", "-o", "k.npz", "--detector", "movenet",
                                                   "--person", "3", "--device", "cuda"])) == \
        DetectionOptions(detector="movenet", person=3, device="cuda")
    kp = np.arange(4 * 33 * 2, dtype=np.float32).reshape(4, 33, 2)
    kp[1] = np.nan
    conf = np.where(np.isfinite(kp[..., 0]), 0.9, 0.0).astype(np.float32)
    person = Keypoints2D(keypoints=kp, confidence=conf, layout="mediapipe33", image_size=(640, 480), fps=30.0)
    calls = []

    def fake(video, **kwargs):
        assert callable(kwargs.pop("keep_frame"))  # the camera's own motion and the cuts, followed as it decodes
        calls.append((video, kwargs))
        return person, people.PeopleTracks.from_person(person), 0

    monkeypatch.setattr(people, "detect_person_video", fake)
    import types

    from mocap.io import video as video_io
    from mocap.pipelines import scene

    monkeypatch.setattr(video_io, "probe_video", lambda path: types.SimpleNamespace(frame_count=4, fps=30.0,
                                                                                    size=(640, 480)))
    lines = np.array([[10.0, 20.0, 12.0, 300.0], [500.0, 40.0, 498.0, 410.0]], np.float32)
    seen = []
    box = np.array([80.0, 0.0, 559.0, 479.0])  # the picture between pillarbox bars
    monkeypatch.setattr(scene, "scene_of", lambda video, people_px, span, homography: seen.append(
        (video, span, homography)) or (lines, box))
    out = tmp_path / "k.npz"
    rc, printed, _ = _run(["detect", "v.mp4", "-o", str(out), "--person", "most-present", "-q"], capsys)
    assert rc == 0 and "4 frames, person detected in 75.0 %" in printed
    assert calls == [("v.mp4", dict(detector="blazepose-torch", person="most-present", track_everyone=True,
                                    device="cpu", progress=False))]
    got = load_keypoints(out)
    np.testing.assert_array_equal(got.keypoints, kp)  # NaN where the person is not seen
    np.testing.assert_array_equal(got.confidence, conf)
    # the background's straight lines, as mocap capture writes them (the fit of `mocap lift` reads them)
    np.testing.assert_array_equal(got.scene_lines, lines)
    np.testing.assert_array_equal(got.picture_box, box)
    assert seen == [("v.mp4", (0, 4), None)]  # no frames decoded here: no camera motion
    assert got.background_homography is None
    calls.clear()
    _run(["detect", "v.mp4", "-o", str(out), "--detector", "mediapipe", "-q"], capsys)
    assert calls[0][1]["detector"] == "mediapipe" and calls[0][1]["track_everyone"] is False  # MediaPipe's own tracking


@pytest.mark.parametrize("flags, words", [(["--cutoff-hz", "0"], "--cutoff-hz"), (["--focal-px", "-5"], "--focal-px"),
                                          (["--person", "tallest"], "--person")])
def test_bad_option_values_give_one_line(tmp_path, capsys, flags, words):
    kp = tmp_path / "k.npz"
    save_keypoints(kp, synthetic_keypoints(waving_walker(t=10)))
    command = ["capture", str(tmp_path / "v.mp4")] if "--person" in flags else ["lift", str(kp)]
    rc, _, err = _run([*command, "-o", str(tmp_path / "out"), *flags], capsys)
    _assert_one_line_error(rc, err, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.npz"]


def test_help_lists_user_commands_first_and_developer_commands_apart(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    head, sep, tail = text.partition("developer commands:")
    assert sep, "mocap --help should have a 'developer commands' section"
    listed = lambda part, name: re.search(rf"^\s+{re.escape(name)}\b", part, re.M) is not None  # noqa: E731
    for name in ("capture", "detect", "lift", "report", "retarget", "smpl", "calibrate", "batch", "stream-2d", "serve"):
        assert listed(head, name) and not listed(tail, name), name
    for name in ("train-lifter", "eval-lifter", "eval-2d"):
        assert listed(tail, name) and not listed(head, name), name
    assert head.index("capture") < head.index("retarget")  # the animator's path first


_LIBRARY_LINES = ("absl::InitializeLog", "I0000 ", "W0000 ", "TensorFlow Lite", "inference_feedback_manager")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None or importlib.util.find_spec("cv2") is None,
                    reason="needs mediapipe (pip install 'mocap-lift[detect]')")
def test_quiet_capture_prints_no_library_log_lines(tmp_path):
    """``mocap capture -q``: none of MediaPipe's absl/glog/TFLite lines on stderr (without
    -q they are there), the summary still on stdout, and an error still one line; with
    ``--units m`` motion.bvh is in metres."""
    import cv2

    from tests.conftest import EXAMPLE_VIDEO

    if not EXAMPLE_VIDEO.is_file():
        pytest.skip("the example video is absent")
    src, clip = cv2.VideoCapture(str(EXAMPLE_VIDEO)), tmp_path / "clip.mp4"
    size = (int(src.get(cv2.CAP_PROP_FRAME_WIDTH)), int(src.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), src.get(cv2.CAP_PROP_FPS), size)
    for _ in range(12):
        out.write(src.read()[1])
    out.release()
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    runs = {}
    for quiet in (False, True):
        command = [sys.executable, "-m", "mocap", "capture", str(clip), "-o", str(tmp_path / f"out{quiet}"),
                   "--no-overlay", "--no-preview", "--lifter", "mediapipe"] + ["-q", "--units", "m"] * quiet
        runs[quiet] = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert runs[quiet].returncode == 0, runs[quiet].stderr
    assert any(w in runs[False].stderr for w in _LIBRARY_LINES), "the libraries no longer log: the test checks nothing"
    assert not any(w in runs[True].stderr for w in _LIBRARY_LINES), runs[True].stderr
    assert "frames: 12" in runs[True].stdout
    from mocap.io.bvh import read_bvh  # --units m reached the pipeline's BVH

    np.testing.assert_allclose(read_bvh(tmp_path / "outTrue" / "motion.bvh", units="m").rest_offsets,
                               load_motion(tmp_path / "outTrue" / "motion.npz").rest_offsets, atol=1e-6)
    r = subprocess.run([sys.executable, "-m", "mocap", "capture", str(tmp_path / "missing.mp4"), "-o",
                        str(tmp_path / "o"), "-q"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and r.stderr.strip().startswith("mocap: error: video file not found"), r.stderr


def test_mediapipe_lifter_picks_the_mediapipe_detector():
    from mocap.pipelines.options import CaptureOptions, DetectionOptions, LiftOptions

    assert CaptureOptions(lifting=LiftOptions(lifter="mediapipe")).detection.detector == "mediapipe"
    assert CaptureOptions().detection.detector is None  # the default stays the shipped PyTorch BlazePose
    chosen = CaptureOptions(lifting=LiftOptions(lifter="mediapipe"), detection=DetectionOptions(detector="movenet"))
    assert chosen.detection.detector == "movenet"  # an explicit choice is kept
