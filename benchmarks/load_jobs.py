"""Throughput of ``mocap serve``: capture jobs completed per minute under load.

    python benchmarks/load_jobs.py [--jobs 12] [--workers 4] [--frames 60] [--budget-s 120]

Starts the real server (uvicorn, in a subprocess) on a free loopback port with a fresh
data directory, creates an API key, submits ``--jobs`` clips at once (the first
``--frames`` frames of examples/balance_cam01.mp4, resized to ``--size``, written at
30 fps) and polls until every job has finished or ``--budget-s`` seconds have passed.
Prints each job's queue wait and run time, and jobs completed per minute (completed
jobs / seconds from the first submission to the last completion x 60). Every job runs
the whole capture in its own process (child start, imports, MediaPipe, the lifter,
clean-up, files); the throughput depends on the cores: print ``os.cpu_count()`` with it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _clip(path: Path, frames: int, size: tuple[int, int]) -> int:
    import cv2

    cap = cv2.VideoCapture(str(REPO / "examples" / "balance_cam01.mp4"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    n = 0
    while n < frames:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        n += 1
    writer.release()
    cap.release()
    return n


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seconds(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


def main(argv: list[str] | None = None) -> int:
    import httpx

    from mocap.service.auth import create_key
    from mocap.service.store import Store

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=12)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--frames", type=int, default=60, help="frames per clip (30 fps)")
    p.add_argument("--size", default="270x480", help="clip size WIDTHxHEIGHT (the example is portrait)")
    p.add_argument("--lifter", default="auto", choices=["auto", "network", "mediapipe"])
    p.add_argument("--budget-s", type=float, default=120.0, help="stop waiting after this many seconds")
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))

    tmp = Path(tempfile.mkdtemp(prefix="mocap-load-"))
    data = tmp / "data"
    clip = tmp / "clip.mp4"
    frames = _clip(clip, args.frames, size)
    store = Store(data)
    key = create_key(store, "load test")
    store.close()
    port = _port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "mocap.service.server", "--port", str(port), "--data-dir",
                               str(data), "--workers", str(args.workers), "--log-level", "warning",
                               "--rate-limit", "0"], cwd=REPO)
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        options = json.dumps({"lifter": args.lifter, "overlay": False, "preview": False})
        body = clip.read_bytes()
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as c:
            t0 = time.time()
            ids = []
            for i in range(args.jobs):
                r = c.post("/v1/jobs", files=[("video", (f"clip{i}.mp4", body, "video/mp4"))], data={"options": options})
                r.raise_for_status()
                ids.append(r.json()["id"])
            submitted = time.time() - t0
            jobs: dict[str, dict] = {}
            while time.time() - t0 < args.budget_s:
                jobs = {j["id"]: j for j in c.get("/v1/jobs", params={"limit": 1000}).json() if j["id"] in ids}
                if all(j["status"] in ("done", "failed", "cancelled") for j in jobs.values()):
                    break
                time.sleep(0.5)
        done = [j for j in jobs.values() if j["status"] == "done"]
        failed = [j for j in jobs.values() if j["status"] == "failed"]
        print(f"machine: {os.cpu_count()} CPU cores; server: {args.workers} workers; {args.jobs} jobs of "
              f"{frames} frames {size[0]}x{size[1]} (lifter {args.lifter}, no overlay/preview); "
              f"submitted in {submitted:.1f} s")
        for j in sorted(jobs.values(), key=lambda j: j["created"]):
            created, started, ended = (_seconds(j[k]) for k in ("created", "started", "finished"))
            wait = f"{started - created:5.1f} s" if started else "    -  "
            run = f"{ended - started:5.1f} s" if started and ended else "    -  "
            print(f"  {j['id'][:8]}  {j['status']:<9}  waited {wait}  ran {run}  {j['message'][:70]}")
        if done:
            last = max(_seconds(j["finished"]) for j in done)
            span = last - t0
            print(f"completed {len(done)}/{args.jobs} jobs ({len(failed)} failed) in {span:.1f} s: "
                  f"{60.0 * len(done) / span:.1f} jobs/minute ({60.0 * len(done) * frames / span:.0f} frames/minute)")
        else:
            print(f"no job completed within {args.budget_s:.0f} s ({len(failed)} failed)")
        return 0 if done and not failed else 1
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
