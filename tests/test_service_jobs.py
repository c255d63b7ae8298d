"""``mocap serve`` jobs end to end: the real server (uvicorn in a subprocess) over HTTP.

A clip cut from examples/balance_cam01.mp4 goes through POST /v1/jobs; the downloaded
motion.npz must have the clip's frame count (decoded with mocap.io.video) and finite joints,
the BVH must parse with as many frames. A server killed mid-job (SIGKILL) is restarted on
the same data directory and the job finishes with complete results. Cancel kills the job's
worker process. Retention is checked on the store with timestamps set in the past.
"""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from tests.conftest import EXAMPLE_VIDEO, REPO, shared_path  # noqa: E402

# MediaPipe's own detector and its world landmarks as the 3D: no torch to load in the worker
# (the mediapipe lifter needs the mediapipe detector's world landmarks since blazepose-torch is the default)
FAST = {"overlay": False, "preview": False, "detector": "mediapipe", "lifter": "mediapipe"}


# -- helpers (also used by test_service_security.py) ----------------------------------------


def make_clip(path: Path, *, frames: int, size: tuple[int, int] = (270, 480), source: Path = EXAMPLE_VIDEO,
              fps: float = 30.0) -> int:
    """Write the first ``frames`` frames of ``source`` (the example video), resized, at ``fps``;
    return the number of frames the written file decodes to (the ground truth for the tests)."""
    import cv2

    from mocap.io.video import iter_frames

    cap = cv2.VideoCapture(str(source))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(frames):
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    writer.release()
    cap.release()
    return sum(1 for _ in iter_frames(path))


def make_key(data_dir: Path, name: str) -> str:
    from mocap.service.auth import create_key
    from mocap.service.store import Store

    store = Store(data_dir)
    try:
        return create_key(store, name)
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m mocap.service.server`` on a free loopback port, output in ``<data_dir>.log``."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.data_dir, self.args = data_dir, args
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        log = open(f"{self.data_dir}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mocap.service.server", "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--log-level", "warning", *self.args], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}): {self.log()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log()[-2000:]}")

    def log(self) -> str:
        return Path(f"{self.data_dir}.log").read_text(errors="replace")

    def client(self, key: str | None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": key} if key else {}, timeout=30)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def submit(client: httpx.Client, video: Path, options: dict | None = None, *, filename: str | None = None):
    files = [("video", (filename or video.name, video.read_bytes(), "video/mp4"))]
    data = {"options": json.dumps(options)} if options is not None else {}
    return client.post("/v1/jobs", files=files, data=data)


def wait_job(client: httpx.Client, job_id: str, until, *, timeout: float = 60, interval: float = 0.2) -> list[dict]:
    """Poll the job until ``until(job)``; every state seen, the last one satisfying ``until``."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        seen.append(r.json())
        if until(seen[-1]):
            return seen
        time.sleep(interval)
    raise AssertionError(f"job {job_id} still {seen[-1]['status']} ({seen[-1]['message']}) after {timeout} s")


def finished(job: dict) -> bool:
    return job["status"] in ("done", "failed", "cancelled")


def worker_pids(job_id: str) -> list[int]:
    """Live (not zombie) worker processes of ``job_id``, from /proc."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if b"mocap.service.worker" in cmd and job_id.encode() in cmd:
                pids.append(int(d.name))
    return pids


def wait_gone(job_id: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker_pids(job_id):
            return True
        time.sleep(0.05)
    return False


needs_proc = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    pytest.importorskip("mediapipe")
    d = tmp_path_factory.mktemp("clips")
    short, long = d / "short.mp4", d / "long.mp4"
    return {"short": (short, make_clip(short, frames=30)), "long": (long, make_clip(long, frames=100))}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("svc") / "data", "--workers", "2")
    srv.key = make_key(srv.data_dir, "tests")
    yield srv
    srv.stop()


# -- tests ----------------------------------------------------------------------------------


def test_job_end_to_end(server, clips, tmp_path):
    import cv2

    from mocap.io.bvh import read_bvh
    from mocap.kinematics.ik import bvh_joint_positions
    from mocap.formats import load_motion

    video, num_frames = clips["short"]
    assert num_frames == 30
    blank = tmp_path / "blank.mp4"  # nobody in it: the job must fail with the pipeline's message
    w = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (128, 128))
    for i in range(8):
        w.write(np.full((128, 128, 3), 40 * i, np.uint8))
    w.release()
    with server.client(server.key) as c:
        r = submit(c, video, {"overlay": False, "preview": False})  # default lifter (the network when installed)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        assert r.json()["status"] == "queued" and r.headers["location"] == f"/v1/jobs/{job_id}"
        bad = submit(c, blank, FAST)
        assert bad.status_code == 201, bad.text

        seen = wait_job(c, job_id, finished, interval=0.1)
        job = seen[-1]
        assert job["status"] == "done", job
        progress = [s["progress"] for s in seen]
        assert all(0.0 <= p <= 1.0 for p in progress) and job["progress"] == 1.0
        assert progress == sorted(progress), progress  # never goes backwards
        assert any(0.0 < p < 1.0 for p in progress), progress  # intermediate progress was reported
        assert {"keypoints2d.npz", "motion.npz", "motion.bvh"} <= set(job["files"])
        assert job["inputs"][0]["frames"] == num_frames and job["inputs"][0]["client_name"] == "short.mp4"

        r = c.get(f"/v1/jobs/{job_id}/files/motion.npz")
        assert r.status_code == 200
        (tmp_path / "motion.npz").write_bytes(r.content)
        motion = load_motion(tmp_path / "motion.npz")
        assert motion.num_frames == num_frames
        assert motion.joints.shape == (num_frames, 21, 3) and np.isfinite(motion.joints).all()
        r = c.get(f"/v1/jobs/{job_id}/files/motion.bvh")
        assert r.status_code == 200
        (tmp_path / "motion.bvh").write_bytes(r.content)
        bvh = read_bvh(tmp_path / "motion.bvh")
        assert bvh.num_frames == num_frames and bvh.joint_names == motion.joint_names
        np.testing.assert_allclose(bvh_joint_positions(bvh), motion.joints, atol=1e-4)  # same motion, in metres

        assert [j["id"] for j in c.get("/v1/jobs").json()][-1] == job_id  # newest first: the blank job is first
        failed = wait_job(c, bad.json()["id"], finished)[-1]
        assert failed["status"] == "failed" and "no person found" in failed["message"], failed
        assert str(server.data_dir) not in failed["message"]  # no server paths in client messages

        job_dir = server.data_dir / "jobs" / job_id
        assert not list(job_dir.glob(".out-*"))  # no temporary output left
        r = c.delete(f"/v1/jobs/{job_id}")
        assert r.status_code == 200 and r.json() == {"id": job_id, "deleted": True}
        assert c.get(f"/v1/jobs/{job_id}").status_code == 404
        assert not job_dir.exists()


@needs_proc
def test_cancel_kills_the_worker_and_delete_removes_files(server, clips):
    video, _ = clips["long"]
    with server.client(server.key) as c:
        job_id = submit(c, video, FAST).json()["id"]
        wait_job(c, job_id, lambda j: j["status"] == "running" and worker_pids(job_id), interval=0.05)
        pids = worker_pids(job_id)
        r = c.post(f"/v1/jobs/{job_id}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        assert wait_gone(job_id), f"worker {pids} still alive after cancel"
        time.sleep(0.3)
        job = c.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "cancelled" and job["files"] == []
        job_dir = server.data_dir / "jobs" / job_id
        assert not (job_dir / "out").exists() and not list(job_dir.glob(".out-*"))
        r = c.post(f"/v1/jobs/{job_id}/cancel")
        assert r.status_code == 409 and "already cancelled" in r.json()["error"]

        # DELETE of a running job: cancels it (the worker dies) and removes its files
        other = submit(c, video, FAST).json()["id"]
        wait_job(c, other, lambda j: j["status"] == "running" and worker_pids(other), interval=0.05)
        assert c.delete(f"/v1/jobs/{other}").status_code == 200
        assert wait_gone(other)
        assert not (server.data_dir / "jobs" / other).exists()
        assert c.get(f"/v1/jobs/{other}").status_code == 404
        assert c.delete(f"/v1/jobs/{job_id}").status_code == 200 and not job_dir.exists()


def test_multiview_job(server, tmp_path):
    """Four views of the Pose2Sim demo (shared data) at a quarter of their size, with their
    Qualisys calibration (intrinsics scaled to the smaller frames by the pipeline)."""
    import cv2

    from mocap.formats import load_motion

    root = shared_path("video", "pose2sim_single")
    files = []
    for i in range(1, 5):
        src = root / "videos" / f"cam0{i}.mp4"
        cap = cv2.VideoCapture(str(src))
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) // 4, int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) // 4)
        cap.release()
        clip = tmp_path / f"cam0{i}.mp4"
        assert make_clip(clip, frames=30, size=size, source=src, fps=60.0) == 30
        files.append(("video", (clip.name, clip.read_bytes(), "video/mp4")))
    calib = root / "calibration" / "Calib.qca.txt"
    files.append(("calibration", (calib.name, calib.read_bytes(), "text/plain")))
    with server.client(server.key) as c:
        r = c.post("/v1/jobs", files=files, data={"options": json.dumps({"overlay": False})})
        assert r.status_code == 201, r.text
        job = wait_job(c, r.json()["id"], finished, timeout=90)[-1]
        assert job["status"] == "done", job
        assert {"motion.npz", "motion.bvh", "calibration.toml", "reprojection.json"} <= set(job["files"])
        assert [i["kind"] for i in job["inputs"]] == ["video"] * 4 + ["calibration"]
        (tmp_path / "motion.npz").write_bytes(c.get(f"/v1/jobs/{job['id']}/files/motion.npz").content)
        reproj = c.get(f"/v1/jobs/{job['id']}/files/reprojection.json").json()
    motion = load_motion(tmp_path / "motion.npz")
    assert motion.num_frames == 30 and np.isfinite(motion.joints).all()
    medians = [v["median_px"] for v in reproj["views"].values()]
    print("reprojection medians (px):", medians)
    assert len(medians) == 4 and max(medians) < 10.0, medians  # quarter-size frames (270x480 px)


@needs_proc
def test_job_survives_a_server_kill(clips, tmp_path):
    from mocap.formats import load_motion

    video, num_frames = clips["long"]
    srv = Server(tmp_path / "data", "--workers", "1")
    key = make_key(srv.data_dir, "restart")
    try:
        with srv.client(key) as c:
            job_id = submit(c, video, FAST).json()["id"]
            wait_job(c, job_id, lambda j: j["status"] == "running" and j["progress"] > 0.02 and worker_pids(job_id),
                     interval=0.05)
        job_dir = srv.data_dir / "jobs" / job_id
        assert list(job_dir.glob(".out-*")) and not (job_dir / "out").exists()  # mid-job: only the temporary folder
        srv.kill()
        assert wait_gone(job_id), "the worker outlived the killed server"
        assert not (job_dir / "out").exists()
        srv.start()
        with srv.client(key) as c:
            job = wait_job(c, job_id, finished)[-1]
            assert job["status"] == "done", job
            assert {"keypoints2d.npz", "motion.npz", "motion.bvh"} <= set(job["files"])
            assert sorted(p.name for p in (job_dir / "out").iterdir()) == sorted(job["files"] + ["result.json"])
            assert not list(job_dir.glob(".out-*"))
            r = c.get(f"/v1/jobs/{job_id}/files/motion.npz")
            (tmp_path / "motion.npz").write_bytes(r.content)
        motion = load_motion(tmp_path / "motion.npz")
        assert motion.num_frames == num_frames and np.isfinite(motion.joints).all()
    finally:
        srv.stop()


def test_store_retention_deletes_old_finished_jobs(tmp_path):
    from mocap.service.store import Store

    store = Store(tmp_path / "data")
    store.add_key("0123456789ab", "k", salt=b"s", hash=b"h")
    now = time.time()
    day = 86400.0
    cases = {"old_done": ("done", 40), "old_failed": ("failed", 31), "old_cancelled": ("cancelled", 100),
             "new_done": ("done", 1), "old_running": ("running", 40), "old_queued": ("queued", 40)}
    ids = {}
    for name, (status, age_days) in cases.items():
        job_id = os.urandom(16).hex()
        ids[name] = job_id
        (store.job_dir(job_id) / "out").mkdir(parents=True)
        (store.job_dir(job_id) / "out" / "motion.npz").write_bytes(b"x")
        store.create_job(job_id, "0123456789ab", options={}, inputs=[])
        finished_at = now - age_days * day if status in ("done", "failed", "cancelled") else None
        store.update_job(job_id, status=status, finished=finished_at)
        store._exec("UPDATE jobs SET created = ? WHERE id = ?", (now - age_days * day, job_id))
    deleted = store.purge_finished(older_than_days=30, now=now)
    assert sorted(deleted) == sorted(ids[n] for n in ("old_done", "old_failed", "old_cancelled"))
    for name, job_id in ids.items():
        gone = name in ("old_done", "old_failed", "old_cancelled")
        assert (store.get_job(job_id) is None) == gone, name
        assert store.job_dir(job_id).exists() != gone, name
    with pytest.raises(ValueError):
        store.purge_finished(older_than_days=0)
    with pytest.raises(ValueError):
        store.job_dir("../../etc")
    # a job folder without a row (an upload cut short by a crash) goes once it is old enough
    orphan = store.job_dir(os.urandom(16).hex())
    orphan.mkdir()
    assert store.remove_orphan_dirs(min_age_s=3600) == []
    assert store.remove_orphan_dirs(min_age_s=0) == [orphan.name] and not orphan.exists()
    store.close()


def test_parse_options():
    from mocap.service.worker import DEFAULT_OPTIONS, parse_options

    assert parse_options(None) == DEFAULT_OPTIONS
    o = parse_options('{"lifter": "mediapipe", "formats": ["glb", "bvh", "fbx"], "cutoff_hz": 4}')
    assert o["lifter"] == "mediapipe" and o["formats"] == ["fbx", "glb"] and o["cutoff_hz"] == 4.0
    for bad, words in (("{", "not valid JSON"), ("[1]", "JSON object"), ('{"colour": 1}', "unknown option"),
                       ('{"lifter": "magic"}', "lifter"), ('{"cutoff_hz": true}', "cutoff_hz"),
                       ('{"formats": ["exe"]}', "formats"), ('{"body_height_m": 9}', "body_height_m"),
                       ('{"calibration": "auto"}', "body_height_m"), ('{"overlay": "yes"}', "overlay")):
        with pytest.raises(ValueError, match=words):
            parse_options(bad)


def test_parse_options_reaches_every_capture_option():
    """The service's options are the capture's: the swap repair can be turned off, a person picked;
    a server path (target) or the server's device cannot be set by a client."""
    from mocap.config import from_json
    from mocap.pipelines.options import CaptureOptions
    from mocap.service.worker import parse_options

    o = parse_options('{"resolve_swaps": false, "person": "most-present", "level": false, "avatar": "anny", '
                      '"refine_calibration": true, "sync": "auto"}')
    options = from_json(CaptureOptions, o)
    assert options.cleanup.resolve_swaps is False and options.cleanup.level is False
    assert options.detection.person == "most-present" and options.export.avatar == "anny"
    assert options.multiview.refine_calibration and options.multiview.sync == "auto"
    assert from_json(CaptureOptions, parse_options(None)) == CaptureOptions()
    for bad, words in (('{"target": "/etc/passwd"}', "unknown option"), ('{"device": "cuda"}', "unknown option"),
                       ('{"cutoff_hz": 0}', "cutoff_hz"), ('{"person": "tallest"}', "person"),
                       ('{"calibration": "/etc/rig.toml"}', "calibration"), ('{"focal_px": "wide"}', "focal_px")):
        with pytest.raises(ValueError, match=words):
            parse_options(bad)


def test_parse_options_takes_part_of_a_video():
    """start_s / end_s (``mocap capture --start/--end``) reach the capture's detection options."""
    from mocap.config import from_json
    from mocap.pipelines.options import CaptureOptions
    from mocap.service.worker import parse_options

    options = from_json(CaptureOptions, parse_options('{"start_s": 0.5, "end_s": 1.0}'))
    assert (options.detection.start_s, options.detection.end_s) == (0.5, 1.0)
    assert options.detection.frame_range(60.0, 100) == (30, 60)
    for bad, words in (('{"start_s": 1, "end_s": 0.5}', "before the end"), ('{"start_s": -1}', "start_s"),
                       ('{"end_s": "soon"}', "end_s")):
        with pytest.raises(ValueError, match=words):
            parse_options(bad)


def test_worker_reads_tqdm_progress():
    from mocap.service.worker import _TqdmTee

    seen = []
    sink = io.StringIO()
    tee = _TqdmTee(sink, lambda desc, n, total: seen.append((desc, n, total)))
    tee.write("\rvideo_1.mp4:  45%|####5     | 27/60 [00:01<00:01, 25.0frame/s]")
    tee.write("some library log line\n")
    assert seen == [("video_1.mp4", 27, 60)] and sink.getvalue().startswith("\rvideo_1.mp4")
