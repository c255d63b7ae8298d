"""``mocap stream-2d`` (mocap/detect2d/stream.py) run as a subprocess on the example video.

Ground truth: the 2D stage of ``mocap capture`` (:func:`mocap.detect2d.people.detect_people_frames`:
the PyTorch BlazePose following everyone, the same tracker and choice of person) for the
default detector; :func:`mocap.detect2d.mediapipe_pose.detect_video` on the same file (same MediaPipe
VIDEO mode, same timestamps) for ``--detector mediapipe``; the video's own size and frame
rate, and the wall clock for --realtime.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mocap.skeletons import MEDIAPIPE33
from tests.conftest import EXAMPLE_VIDEO, REPO

pytest.importorskip("torch")  # the default detector, blazepose-torch
pytestmark = pytest.mark.skipif(not EXAMPLE_VIDEO.is_file(), reason=f"needs {EXAMPLE_VIDEO}")


def start(*args: str, threads: int | None = 1) -> subprocess.Popen:
    # one torch thread, as the in-process references use: sums split over other thread counts
    # differ by ~1e-5 px, enough to tip a tracking decision over several frames
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    return subprocess.Popen([sys.executable, "-m", "mocap.detect2d.stream", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def run(*args: str, timeout: float = 60.0) -> tuple[int, list[dict], str]:
    """(exit status, the stdout lines as JSON, stderr)."""
    proc = start(*args)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, [json.loads(line) for line in out.splitlines()], err


@pytest.fixture(scope="module")
def reference():
    pytest.importorskip("mediapipe")
    from mocap.detect2d.mediapipe_pose import detect_video

    return detect_video(EXAMPLE_VIDEO, progress=False)


def _arrays(frames: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """keypoints (N, 33, 2) (NaN for null) and confidence (N, 33) of frame messages."""
    kp = np.array([np.full((33, 2), np.nan) if f["keypoints"] is None else
                   [[np.nan, np.nan] if p is None else p for p in f["keypoints"]] for f in frames], dtype=np.float64)
    return kp, np.array([f["confidence"] for f in frames], dtype=np.float64)


def test_default_lines_follow_the_capture_2d_stage():
    """The default stream is capture's 2D stage one frame at a time: the same people, ids
    and keypoints as :func:`detect_people_frames` on the same frames; ``--person ID`` streams
    that person and nobody in the frames where they are not seen."""
    from mocap.detect2d.people import build_estimator, detect_people_frames
    from mocap.io.video import iter_frames

    import torch

    n = 12
    frames = [f for _, f in zip(range(n), iter_frames(EXAMPLE_VIDEO, rgb=True))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the stream's subprocess (start)
    try:
        tracks = detect_people_frames(frames, 60.0, (1080, 1920), estimator=build_estimator("blazepose-torch"),
                                      progress=False)
    finally:
        torch.set_num_threads(threads)
    others = [i for i in tracks.track_list() if i != tracks.choose("auto")]
    print(f"tracks in the first {n} frames: {tracks.summary()}")
    for person in ["auto", *others[:1]]:
        rc, lines, err = run(EXAMPLE_VIDEO, "--max-frames", str(n), "--person", str(person))
        assert rc == 0, err
        assert lines[0] == {"type": "hello", "layout": "mediapipe33", "image_size": [1080, 1920], "fps": 60.0}
        assert [f["frame"] for f in lines[1:]] == list(range(n))
        kp, conf = _arrays(lines[1:])
        want = tracks.person(person)
        np.testing.assert_array_equal(np.isnan(kp), np.isnan(want.keypoints))  # nobody where they are not seen
        # (torch may split its sums over another number of threads in the subprocess: ~0.03 px)
        err_px = np.nanmax(np.abs(kp - want.keypoints)) if np.isfinite(kp).any() else 0.0
        print(f"--person {person}: {int(np.isfinite(kp[:, 0, 0]).sum())} of {n} frames with the person, "
              f"max |stream-2d - capture's 2D stage| {err_px:.2e} px")
        assert err_px < 0.5
        np.testing.assert_allclose(conf, want.confidence, atol=1e-3)


def test_lines_equal_detect_video(reference):
    rc, lines, err = run(EXAMPLE_VIDEO, "--max-frames", "12", "--detector", "mediapipe")
    assert rc == 0, err
    hello, frames = lines[0], lines[1:]
    assert hello == {"type": "hello", "layout": "mediapipe33", "image_size": [1080, 1920], "fps": 60.0}
    assert list(reference.image_size) == hello["image_size"] and reference.fps == hello["fps"]
    assert [f["frame"] for f in frames] == list(range(12))
    assert all(f["type"] == "frame" for f in frames)
    np.testing.assert_allclose([f["t"] for f in frames], np.arange(12) / 60.0, atol=1e-6)
    kp = np.array([f["keypoints"] for f in frames], dtype=np.float64)
    conf = np.array([f["confidence"] for f in frames], dtype=np.float64)
    assert kp.shape == (12, 33, 2) and conf.shape == (12, 33)
    err_px = np.abs(kp - reference.keypoints[:12]).max()
    print(f"max |stream-2d - detect_video| over 12 frames: {err_px:.2e} px")
    assert err_px < 1e-3
    np.testing.assert_allclose(conf, reference.confidence[:12], atol=1e-4)


def test_realtime_paces_the_file_at_its_frame_rate():
    proc = start(EXAMPLE_VIDEO, "--realtime", "--max-frames", "60", threads=None)
    arrivals = []
    for line in proc.stdout:
        message = json.loads(line)
        if message["type"] == "frame":
            arrivals.append((message["frame"], time.perf_counter()))
    assert proc.wait(timeout=30) == 0
    n = np.array([a[0] for a in arrivals])
    t = np.array([a[1] for a in arrivals])
    lateness = t - t[0] - n / 60.0  # seconds behind the video's clock, which starts with frame 0
    print(f"--realtime: {len(n)} of 60 frames written in {t[-1] - t[0]:.3f} s (video: {(n[-1] - n[0]) / 60:.3f} s), "
          f"lateness {1000 * lateness.min():.1f} to {1000 * lateness.max():.1f} ms")
    # how many frames keep up depends on the machine and its load (benchmarks measure speed);
    # the pacing does not: late frames are skipped, in order, never written early
    assert n[0] == 0 and len(n) >= 2 and np.all(np.diff(n) > 0)
    # the last frames are skipped only when the stream is behind the video (a loaded machine)
    assert n[-1] >= 55 or lateness[-1] > 1.0 / 60.0, "frames skipped at the end while on time"
    assert lateness.min() > -0.005, "a frame was written before its time"
    # a written frame was at most one frame period late when it was decoded, so its lateness is
    # that plus its own detection, which began after the previous frame was written
    assert np.all(lateness[1:] < 1.0 / 60.0 + np.diff(t) + 0.05), "a late frame was not skipped"


def test_mirror_swaps_sides():
    _, plain, _ = run(EXAMPLE_VIDEO, "--max-frames", "2")
    _, mirrored, _ = run(EXAMPLE_VIDEO, "--max-frames", "2", "--mirror")
    a, b = np.array(plain[2]["keypoints"]), np.array(mirrored[2]["keypoints"])
    names = MEDIAPIPE33.joint_names
    swap = [names.index(n.replace("left", "#").replace("right", "left").replace("#", "right")) for n in names]
    same_side = np.median(np.abs(1080.0 - b[swap, 0] - a[:, 0]))  # the performer's left -> the avatar's right
    print(f"mirror: median {same_side:.1f} px between x and the mirrored other side")
    assert same_side < 10.0
    assert np.median(np.abs(1080.0 - b[:, 0] - a[:, 0])) > 50.0


def test_level_sends_the_first_frames_lines_that_level_the_service():
    """``--level``: the hello holds the first frame's straight segments; the service's stream reads
    the camera from them (the Pose2Sim calibration of the example's camera: 22.5 deg down, 13.4 deg
    of roll; the focal length from the lines, within 3 % of its 1681 px); mirrored, the roll turns."""
    from mocap.service.stream_session import parse_hello
    from mocap.service.stream_gravity import camera_angles

    rc, lines, _ = run(EXAMPLE_VIDEO, "--max-frames", "2", "--level")
    assert rc == 0 and lines[0]["type"] == "hello" and len(lines) == 3
    assert len(lines[0]["scene_lines"]) > 50 and "scene_lines" not in run(EXAMPLE_VIDEO, "--max-frames", "1")[1][0]
    config = parse_hello(lines[0])
    angles = camera_angles(config.up)
    assert config.gravity_from == "scene" and config.focal_px == pytest.approx(1681, rel=0.03)
    assert angles["camera_pitch_deg"] == pytest.approx(22.5, abs=2.0)
    assert angles["camera_roll_deg"] == pytest.approx(13.4, abs=1.5)
    mirrored = camera_angles(parse_hello(run(EXAMPLE_VIDEO, "--max-frames", "1", "--level", "--mirror")[1][0]).up)
    assert mirrored["camera_roll_deg"] == pytest.approx(-angles["camera_roll_deg"], abs=0.5)


def test_errors_are_one_line_with_status_1(tmp_path):
    rc, lines, err = run(tmp_path / "gone.mp4")
    assert rc == 1 and lines == []
    assert err.strip().splitlines()[-1] == f"mocap stream-2d: error: video file not found: {tmp_path / 'gone.mp4'}"
    assert "Traceback" not in err
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    rc, lines, err = run(text)
    assert rc == 1 and lines == [] and "cannot read video" in err and "Traceback" not in err
    rc, _, err = run(EXAMPLE_VIDEO, "--max-frames", "0")
    assert rc == 1 and "--max-frames must be at least 1" in err


@pytest.mark.parametrize("how", ["sigterm", "closed-stdout"])
def test_ends_cleanly(how):
    proc = start(EXAMPLE_VIDEO, "--realtime")
    got = [json.loads(proc.stdout.readline()) for _ in range(3)]
    assert got[0]["type"] == "hello" and got[2]["type"] == "frame"
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        proc.stdout.close()
    start_wait = time.perf_counter()
    assert proc.wait(timeout=10) == 0
    err = proc.stderr.read()
    proc.stderr.close()
    if how == "sigterm":
        proc.stdout.close()
    print(f"{how}: exited with 0 after {time.perf_counter() - start_wait:.2f} s")
    assert "Traceback" not in err and "stream-2d: error" not in err, err


def test_hands_are_the_hand_stage_s_at_the_body_s_wrists():
    """``--hands`` adds the hand network's output for each frame's body, each hand followed from
    frame to frame: the same as :meth:`HandLandmarksTorch.hands` tracking through those frames
    and body keypoints in one go, each hand's wrist near the body's wrist."""
    import torch

    from mocap.detect2d.estimators.hands_torch import HandLandmarksTorch
    from mocap.io.video import iter_frames

    n = 8
    rc, lines, err = run(EXAMPLE_VIDEO, "--max-frames", str(n), "--hands", timeout=120.0)
    assert rc == 0, err
    frames_msg = lines[1:]
    assert len(frames_msg) == n and all(len(f["hand_keypoints"]) == 42 for f in frames_msg)
    kp, conf = _arrays(frames_msg)
    hand_kp = np.array([[[np.nan, np.nan] if p is None else p for p in f["hand_keypoints"]] for f in frames_msg])
    hand_world = np.array([[[np.nan] * 3 if p is None else p for p in f["hand_world"]] for f in frames_msg])
    hand_conf = np.array([f["hand_confidence"] for f in frames_msg])
    frames = [f for _, f in zip(range(n), iter_frames(EXAMPLE_VIDEO, rgb=True))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the stream's subprocess
    try:
        est = HandLandmarksTorch()
        want = [est.hands(frames, kp, conf, track=True, span=n)]
        alone = est.hands(frames, kp, conf, track=False)
    finally:
        torch.set_num_threads(threads)
    want_kp = np.concatenate([w.keypoints for w in want])
    tracked_rois = np.isfinite(want[0].roi).all(-1) & np.isfinite(alone.roi).all(-1)
    assert (np.abs(want[0].roi - alone.roi).max(-1)[tracked_rois] > 1e-6).any()  # the tracking did something
    np.testing.assert_array_equal(np.isnan(hand_kp), np.isnan(want_kp))
    seen = np.isfinite(hand_kp).all(-1)
    print(f"hands in {seen.reshape(n, 2, 21).all(-1).sum(0).tolist()} of {n} frames (left, right)")
    assert seen.any()
    np.testing.assert_allclose(hand_kp[seen], want_kp[seen], atol=0.5)
    # (the body keypoints read back here are the message's, rounded: a tracked ROI carries that
    # rounding from frame to frame, so the network's outputs agree to float noise, not exactly)
    np.testing.assert_allclose(hand_world[seen], np.concatenate([w.world for w in want])[seen], atol=3e-3)  # metres
    np.testing.assert_allclose(hand_conf, np.concatenate([w.confidence for w in want]), atol=5e-3)
    for side, wrist in ((0, MEDIAPIPE33.index("left_wrist")), (1, MEDIAPIPE33.index("right_wrist"))):
        h = hand_kp[:, 21 * side:21 * side + 21]
        ok = np.isfinite(h).all((-1, -2))
        size = (h[ok].max(1) - h[ok].min(1)).max(-1)
        assert (np.linalg.norm(h[ok, 0] - kp[ok, wrist], axis=-1) < 0.5 * size).all()


def test_face_is_the_face_stage_s_at_the_body_s_face(tmp_path):
    """``--face`` adds the face network's 478 points (x, y, depth) for each frame's body, the face
    followed from frame to frame: the same as :meth:`FaceLandmarksTorch.faces` tracking through
    those frames and body keypoints in one go, the face's nose tip near the body's nose. (The example's face is pixelated: a short
    video of a COCO photo with a face, from ../shared/data.)"""
    import cv2
    import torch

    from mocap.detect2d.estimators.face_torch import FaceLandmarksTorch
    from mocap.eval.face_tflite import photo_face_crops
    from mocap.io.video import iter_frames
    from tests.conftest import shared_path

    from mocap.detect2d.people import LivePeople

    folder = shared_path("images", "coco_mini")
    photos = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("*.jpg"))[:20]]
    est = FaceLandmarksTorch()

    def streamed_face(photo) -> bool:  # the stream's person (not just anyone in the photo) shows a face
        kp, conf, _ = LivePeople().step(photo)
        return bool(np.isfinite(est.faces([photo], kp[None], conf[None], track=False).keypoints).all())

    faces = [photos[i] for i in sorted(set(photo_face_crops(photos).frame.tolist()))]
    photo = next((f for f in faces if streamed_face(f)), None)
    assert photo is not None, "no COCO photo among the first 20 whose main person's face is found"
    h, w = (photo.shape[0] // 2) * 2, (photo.shape[1] // 2) * 2
    video = tmp_path / "face.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for _ in range(4):
        writer.write(cv2.cvtColor(np.ascontiguousarray(photo[:h, :w]), cv2.COLOR_RGB2BGR))
    writer.release()
    n = 4
    rc, lines, err = run(video, "--max-frames", str(n), "--face", timeout=120.0)
    assert rc == 0, err
    frames_msg = lines[1:]
    assert len(frames_msg) == n and all("face_keypoints" in f for f in frames_msg)
    kp, conf = _arrays(frames_msg)
    got = np.array([np.full((478, 3), np.nan) if f["face_keypoints"] is None else f["face_keypoints"]
                    for f in frames_msg], dtype=np.float64)
    frames = [f for _, f in zip(range(n), iter_frames(video, rgb=True))]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the stream's subprocess
    try:
        tracked = est.faces(frames, kp, conf, track=True, span=n)
    finally:
        torch.set_num_threads(threads)
    want = np.concatenate([tracked.keypoints, tracked.z[..., None]], -1)
    assert np.isfinite(tracked.next_roi).all()  # the track goes on
    found = np.isfinite(want).all((1, 2))
    np.testing.assert_array_equal(np.isfinite(got).all((1, 2)), found)
    print(f"face in {found.sum()} of {n} frames")
    assert found.all()
    np.testing.assert_allclose(got, want, atol=0.5)
    nose = kp[:, MEDIAPIPE33.index("nose")]
    size = np.ptp(got[:, :, :2], axis=1).max(-1)
    assert (np.linalg.norm(got[:, 1, :2] - nose, axis=-1) < 0.5 * size).all()  # face point 1: the nose tip
