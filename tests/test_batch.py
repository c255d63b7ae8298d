"""mocap batch: finding videos, naming outputs, a 20-video run, a killed run resumed, a bad
video, a worker that dies, and the Ray path giving the same motion as the local pool."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mocap.pipelines.batch import VideoResult, batch_main, find_videos, output_names, read_marker, run_batch
from mocap.pipelines.options import CaptureOptions, ExportOptions
from mocap.errors import MocapError
from tests.conftest import EXAMPLE_VIDEO, REPO

FAST = CaptureOptions(export=ExportOptions(overlay=False, preview=False))
NUM_CLIPS = 20


def _clip_frames(i: int) -> tuple[int, int]:
    """(first frame, frame count) of clip i: 10 to 15 frames from across the 100-frame example."""
    return 4 * i, 10 + i % 6


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("torch")  # the default detector, blazepose-torch
    folder = tmp_path_factory.mktemp("clips")
    cap = cv2.VideoCapture(str(EXAMPLE_VIDEO))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, (320, 568), interpolation=cv2.INTER_AREA))  # 1080x1920 -> 320 wide
    cap.release()
    assert len(frames) == 100
    paths = []
    for i in range(NUM_CLIPS):
        start, n = _clip_frames(i)
        path = folder / f"clip{i:02d}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 60.0, (320, 568))
        for frame in frames[start:start + n]:
            writer.write(frame)
        writer.release()
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def batch20(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch20")
    start = time.perf_counter()
    summary = run_batch(clips, out, workers=2, options=FAST, progress=False)
    return summary, out, time.perf_counter() - start


def _frames(path: Path) -> int:
    return _clip_frames(int(path.stem[-2:]))[1]


# --- finding videos and naming outputs (no capture) ------------------------------------------


def test_find_videos_in_a_folder_and_a_list(tmp_path):
    for name in ("b.MP4", "a.mov", "c.webm", "notes.txt", ".hidden.mp4", "sub/d.mkv"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in find_videos(tmp_path)] == ["a.mov", "b.MP4", "c.webm"]
    assert [p.name for p in find_videos(tmp_path, recursive=True)] == ["a.mov", "b.MP4", "c.webm", "d.mkv"]

    listing = tmp_path / "sub" / "list.txt"
    listing.write_text(f"# my takes\n\nd.mkv\n../a.mov\n  {tmp_path / 'c.webm'}  \nd.mkv\n")
    assert find_videos(listing) == [tmp_path / "sub" / "d.mkv", tmp_path / "a.mov", tmp_path / "c.webm"]

    listing.write_text("d.mkv\ngone.mp4\n")
    with pytest.raises(MocapError, match=r"1 videos listed .* not found: line 2: .*gone\.mp4"):
        find_videos(listing)
    listing.write_text("# nothing\n")
    with pytest.raises(MocapError, match="lists no videos"):
        find_videos(listing)
    with pytest.raises(MocapError, match="add --recursive"):
        find_videos(_only_sub(tmp_path))
    with pytest.raises(MocapError, match="not found"):
        find_videos(tmp_path / "missing")


def _only_sub(tmp_path: Path) -> Path:
    root = tmp_path / "only_sub"
    (root / "deeper").mkdir(parents=True)
    (root / "deeper" / "x.avi").write_bytes(b"x")
    return root


def test_output_names_resolve_clashes_deterministically(tmp_path):
    videos = [Path("/data/day1/walk.mp4"), Path("/data/day2/Walk.mov"), Path("/data/run.mp4"),
              Path("/data/summary.csv.mp4")]
    names = output_names(videos, tmp_path)
    assert names[2] == "run"
    assert names[0].startswith("walk-") and names[1].startswith("Walk-") and len(names[0]) == len("walk-") + 8
    assert names[0][5:] != names[1][5:]
    assert names[3].startswith("summary.csv-")
    assert output_names(videos[::-1], tmp_path)[::-1] == names  # independent of the order
    # an output folder already holding another video's capture is not reused
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "done.json").write_text(json.dumps({"video": "/elsewhere/run.mp4", "frames": 3}))
    assert output_names([Path("/data/run.mp4")], tmp_path)[0].startswith("run-")
    assert output_names([Path("/elsewhere/run.mp4")], tmp_path) == ["run"]


# --- captures ---------------------------------------------------------------------------------


def test_batch_of_20_clips(batch20, clips):
    from mocap.formats import load_motion

    summary, out, seconds = batch20
    print(f"20 clips, 2 workers: {seconds:.1f} s")
    assert [r.status for r in summary.results] == ["done"] * NUM_CLIPS
    for clip, r in zip(clips, summary.results):
        assert r.name == clip.stem and r.frames == _frames(clip)
        motion = load_motion(out / clip.stem / "motion.npz")
        assert motion.num_frames == _frames(clip) and np.isfinite(motion.joints).all()
        marker = read_marker(out / clip.stem)
        assert marker["frames"] == _frames(clip) and marker["video"] == str(clip.resolve())
        assert marker["torch_threads"] == max(1, len(os.sched_getaffinity(0)) // 2)  # cores // workers
        assert r.detection_rate == pytest.approx(marker["detection_rate"]) and r.detection_rate > 0.8
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == NUM_CLIPS and {r["status"] for r in rows} == {"done"}
    assert [int(r["frames"]) for r in rows] == [_frames(c) for c in clips]
    assert not (out / ".partial").exists()


def _finished(out: Path) -> dict[str, int]:
    return {p.name: (p / "done.json").stat().st_mtime_ns for p in out.iterdir()
            if p.is_dir() and not p.name.startswith(".") and read_marker(p) is not None}


def test_killed_run_resumes_and_skips_exactly_the_finished(batch20, clips, tmp_path):
    videos = clips[:8]
    listing = tmp_path / "videos.txt"
    listing.write_text("".join(f"{c}\n" for c in videos))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mocap.pipelines.batch", str(listing), "-o", str(out), "--workers", "2",
           "--no-overlay", "--no-preview", "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and len(_finished(out) if out.exists() else {}) < 3:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole job: driver and its workers
        proc.wait()
    time.sleep(0.2)
    finished = _finished(out)
    assert 3 <= len(finished) < len(videos), f"kill came too late or too early: {sorted(finished)}"
    # every folder that looks like a capture is complete; unfinished work sits only in .partial
    visible = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert sorted(p.name for p in visible) == sorted(finished)
    # a half-written folder (no marker), e.g. copied by hand, must not count as finished
    half = next(c.stem for c in videos if c.stem not in finished)
    (out / half).mkdir()
    (out / half / "motion.npz").write_bytes((out / next(iter(finished)) / "motion.npz").read_bytes())

    # the same --workers, hence the same torch threads per worker (cores // workers) as both
    # earlier runs: the default detector's convolutions round differently with another thread
    # count (0.11 mm at most on the joints, measured with --workers 1), and the check below is bit for bit
    rerun_cmd = cmd[:-1]
    rerun = subprocess.run(rerun_cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(finished)} of {len(videos)} videos already finished" in rerun.stderr
    assert f"{len(videos)} videos: {len(videos) - len(finished)} done, {len(finished)} skipped, 0 failed" in rerun.stdout
    after = _finished(out)
    assert sorted(after) == sorted(c.stem for c in videos)
    assert {name: after[name] for name in finished} == finished  # finished outputs untouched
    assert read_marker(out / half) is not None
    # the pipeline is deterministic: these captures equal the 20-clip run's bit for bit
    from mocap.formats import load_motion

    _, out20, _ = batch20
    for clip in videos:
        a, b = load_motion(out / clip.stem / "motion.npz"), load_motion(out20 / clip.stem / "motion.npz")
        np.testing.assert_array_equal(a.joints, b.joints)
        np.testing.assert_array_equal(a.local_quats_wxyz, b.local_quats_wxyz)



def test_bad_video_fails_alone(clips, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for clip in clips[:2]:
        (folder / clip.name).write_bytes(clip.read_bytes())
    (folder / "broken.mp4").write_text("this is not a video\n")
    out = tmp_path / "out"
    code = batch_main([str(folder), "-o", str(out), "--workers", "1", "--no-overlay", "--no-preview", "-q"])
    assert code == 1
    text = capsys.readouterr()
    assert "3 videos: 2 done, 0 skipped, 1 failed" in text.out
    with open(out / "summary.csv", newline="") as f:
        rows = {r["output"]: r for r in csv.DictReader(f)}
    assert rows["broken"]["status"] == "failed" and "broken.mp4" in rows["broken"]["error"]
    assert rows["clip00"]["status"] == rows["clip01"]["status"] == "done"
    assert not (out / "broken").exists()
    before = (out / "clip00" / "done.json").stat().st_mtime_ns
    code = batch_main([str(folder), "-o", str(out), "--workers", "1", "--no-overlay", "--no-preview", "-q", "--force"])
    assert code == 1 and "3 videos: 2 done, 0 skipped, 1 failed" in capsys.readouterr().out
    assert (out / "clip00" / "done.json").stat().st_mtime_ns > before  # --force captured it again
    assert batch_main([str(tmp_path / "nothing"), "-o", str(out)]) == 1
    assert "not found" in capsys.readouterr().err


def test_batch_writes_bvh_in_the_units_asked(clips, tmp_path):
    """`mocap batch --units m`: each motion.bvh in metres (its root path equals motion.npz's, in
    metres); the default stays centimetres."""
    from mocap.formats import load_motion
    from mocap.io.bvh import read_bvh
    from mocap.pipelines.batch import build_parser
    from mocap.config import from_namespace

    assert from_namespace(CaptureOptions, build_parser().parse_args(["v", "-o", "o"])).export.bvh_units == "cm"
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / clips[0].name).write_bytes(clips[0].read_bytes())
    out = tmp_path / "out"
    assert batch_main([str(folder), "-o", str(out), "--workers", "1", "--no-overlay", "--no-preview", "-q",
                       "--units", "m"]) == 0
    motion = load_motion(out / clips[0].stem / "motion.npz")
    bvh = read_bvh(out / clips[0].stem / "motion.bvh", units="m")
    assert bvh.num_frames == motion.num_frames == _frames(clips[0])
    np.testing.assert_allclose(bvh.root_translation + bvh.rest_offsets[0], motion.root_translation, atol=1e-5)
    np.testing.assert_allclose(bvh.rest_offsets[1:], motion.rest_offsets[1:], atol=1e-5)


def dying_task(video, out, name, options, threads) -> VideoResult:
    """Stand-in capture for the crash test: makes its .partial folder, and dies on 'crash'."""
    (Path(out) / ".partial" / str(os.getpid()) / name).mkdir(parents=True)
    if name == "crash":
        os._exit(3)
    time.sleep(0.05)
    (Path(out) / ".partial" / str(os.getpid()) / name).rmdir()
    return VideoResult(Path(video), name, "done", frames=1)


def test_a_dying_worker_fails_only_its_video(tmp_path):
    from mocap.pipelines.batch import _run_local

    todo = [(tmp_path / f"{n}.mp4", n) for n in ("a", "b", "crash", "c", "d", "e")]
    results = []
    _run_local(todo, tmp_path, FAST, workers=2, threads=1, record=results.append, task=dying_task)
    status = {r.name: r.status for r in results}
    assert status == {"a": "done", "b": "done", "crash": "failed", "c": "done", "d": "done", "e": "done"}
    assert "worker process died" in next(r.error for r in results if r.name == "crash")
    assert len(results) == len(todo)


def test_ray_gives_the_same_motion_as_the_local_pool(batch20, clips, tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'mocap-lift[ray]')")
    from mocap.formats import load_motion

    videos = clips[:3]
    try:
        summary = run_batch(videos, tmp_path, ray_address="local", workers=2, options=FAST, progress=False)
    except MocapError as e:
        pytest.skip(f"a local Ray instance cannot start here: {e}")
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert [r.status for r in summary.results] == ["done"] * 3, [r.error for r in summary.results]
    _, out20, _ = batch20
    for clip in videos:
        a, b = load_motion(tmp_path / clip.stem / "motion.npz"), load_motion(out20 / clip.stem / "motion.npz")
        np.testing.assert_array_equal(a.joints, b.joints)  # deterministic: identical, not just close
        np.testing.assert_array_equal(a.root_translation, b.root_translation)
    again = run_batch(videos, tmp_path, ray_address="local", workers=2, options=FAST, progress=False)
    assert [r.status for r in again.results] == ["skipped"] * 3  # resumable on Ray too, without starting it


def test_missing_ray_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'mocap-lift\[ray\]'"):
        run_batch([tmp_path / "take.mp4"], tmp_path / "out", ray_address="local", progress=False)
