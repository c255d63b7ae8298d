"""Load test of the low-latency routes: many live WebSocket streams, then /v1/lift throughput.

    .venv/bin/python benchmarks/load_stream.py [--clients 16] [--fps 30] [--seconds 20]
        [--minimal-app] [--deflate on|off] [--lift-requests 6] [--skip-lift] [--profile FILE]

Loopback only. Starts a server in a child process (uvicorn with
``mocap.service.app.create_app``, a fresh data folder in /tmp and a new API key, rate limit
off; ``--minimal-app``: only the realtime router with a fixed key), then runs ``--clients``
WebSocket clients in this process, each sending real MediaPipe keypoints
(examples/balance_cam01.mp4, detected once and cached in /tmp) at ``--fps`` with a random
phase for ``--seconds`` after ``--warmup`` seconds. Prints per-frame latency (client send
-> reply) p50 / p90 / p99 / max and p99 per 5 s window, replies, frames the server dropped,
the server's own latency, its CPU per reply (event-loop thread and frame worker apart) and
``server CPU per frame`` (the figure to compare on a loaded machine),
then ``POST /v1/lift`` with a 300-frame JSON body: one request at a time, then
``--lift-requests`` at once. Every wait is bounded; the server is stopped at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VIDEO = REPO / "examples" / "balance_cam01.mp4"
CACHE = Path(tempfile.gettempdir()) / "mocap_load_stream_balance_cam01.npz"
BENCH_KEY = "bench-key"


def cached_keypoints():
    """Keypoints2D of the example video, detected once and cached in /tmp."""
    from mocap.formats import load_keypoints, save_keypoints

    if not CACHE.exists():
        from mocap.detect2d.mediapipe_pose import detect_video

        print(f"detecting {VIDEO.name} once (cached in {CACHE}) ...", flush=True)
        save_keypoints(CACHE, detect_video(VIDEO, progress=False))
    return load_keypoints(CACHE)


# --- server (child process) -------------------------------------------------------------------

def minimal_app():
    """Only the realtime router, accepting the key ``bench-key``."""
    from fastapi import FastAPI, HTTPException

    from mocap.service.realtime import make_router

    def verify_key(key):
        if key != BENCH_KEY:
            raise HTTPException(403 if key else 401, "invalid API key")
        return "bench"

    app = FastAPI()
    app.include_router(make_router(verify_key))
    return app


def serve(port: int, data_dir: str | None, profile: str | None = None, deflate: bool = False) -> None:
    import uvicorn

    if data_dir:
        from mocap.service.app import ServiceConfig, create_app

        app = create_app(ServiceConfig(data_dir=Path(data_dir), rate_limit_per_minute=0))
    else:
        app = minimal_app()
    options = dict(host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=deflate)
    if not profile:
        uvicorn.run(app, **options)
        return
    import cProfile
    import pstats

    prof = cProfile.Profile()  # the event loop thread only (the frame worker thread is not seen)
    prof.enable()
    try:
        uvicorn.run(app, **options)
    finally:  # uvicorn re-raises the stopping signal after its shutdown
        prof.disable()
        with open(profile, "w") as f:
            pstats.Stats(prof, stream=f).sort_stats("tottime").print_stats(40)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(all threads, main thread) user + system CPU seconds of a process (Linux /proc); NaN elsewhere."""
    def read(path: str) -> float:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    try:
        return read(f"/proc/{pid}/stat"), read(f"/proc/{pid}/task/{pid}/stat")
    except (OSError, IndexError, ValueError):
        return float("nan"), float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(real_app: bool, profile: str | None = None,
                 deflate: bool = False) -> tuple[subprocess.Popen, int, str, str, str]:
    """Child process running the server; returns (process, port, key, description, data folder or "")."""
    port = free_port()
    key, data_dir, what = BENCH_KEY, "", "minimal app (realtime router only)"
    if real_app:
        from mocap.service.auth import create_key
        from mocap.service.store import Store

        data_dir = tempfile.mkdtemp(prefix="mocap-load-stream-")
        key = create_key(Store(Path(data_dir)), "load test")
        what = "mocap.service.app.create_app (real key check)"
    extra = (["--profile", profile] if profile else []) + ["--deflate", "on" if deflate else "off"]
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--data-dir", data_dir, *extra], cwd=REPO)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port, key, what, data_dir
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


# --- clients ---------------------------------------------------------------------------------

def frame_payloads(k) -> list[str]:
    """JSON fragments (keypoints and confidence) per frame, played forwards then backwards."""
    order = list(range(k.num_frames)) + list(range(k.num_frames - 2, 0, -1))
    out = []
    for i in order:
        kp = [None if not np.isfinite(p).all() else [round(float(p[0]), 2), round(float(p[1]), 2)] for p in k.keypoints[i]]
        out.append(f'"keypoints":{json.dumps(kp)},"confidence":{json.dumps(np.round(k.confidence[i], 3).tolist())}')
    return out


async def client(port: int, key: str, k, payloads: list[str], *, fps: float, seconds: float, warmup: float,
                 stats: dict) -> None:
    import websockets

    period = 1.0 / fps
    sent: dict[int, float] = {}
    latencies, server_ms, replies = [], [], [0]
    last = {"dropped": 0}
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/stream?key={key}", max_size=2 ** 22) as ws:
        await ws.send(json.dumps({"type": "hello", "layout": k.layout, "image_size": list(k.image_size), "fps": fps}))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if hello.get("type") != "hello":
            raise RuntimeError(f"no hello: {hello}")

        async def receive():
            async for text in ws:
                now = time.perf_counter()
                r = json.loads(text)
                if r.get("type") != "pose":
                    raise RuntimeError(f"server error: {r}")
                replies[0] += 1
                last["dropped"] = r["dropped"]
                if r["frame"] in sent and sent[r["frame"]] >= stats["measure_from"]:
                    t_sent = sent.pop(r["frame"])
                    latencies.append((t_sent - stats["measure_from"], now - t_sent))
                    server_ms.append(r["latency_ms"])

        receiver = asyncio.create_task(receive())
        offset = random.randrange(len(payloads))
        start = time.perf_counter() + random.uniform(0, period)  # random phase
        n = 0
        while True:
            due = start + n * period
            if due > stats["end"]:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent[n] = time.perf_counter()
            await ws.send(f'{{"type":"frame","frame":{n},"t":{n * period:.4f},{payloads[(offset + n) % len(payloads)]}}}')
            n += 1
        await asyncio.sleep(0.5)  # the last replies
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    measured = sum(1 for i in range(n) if start + i * period >= stats["measure_from"])
    stats["clients"].append({"sent": n, "measured_sent": measured, "replies": replies[0], "dropped": last["dropped"],
                             "latency": latencies, "server_ms": server_ms})


async def run_clients(port: int, key: str, k, *, clients: int, fps: float, seconds: float, warmup: float) -> dict:
    payloads = frame_payloads(k)
    now = time.perf_counter()
    stats = {"clients": [], "measure_from": now + warmup, "end": now + warmup + seconds}
    await asyncio.wait_for(asyncio.gather(*(client(port, key, k, payloads, fps=fps, seconds=seconds, warmup=warmup,
                                                   stats=stats) for _ in range(clients))),
                           timeout=warmup + seconds + 90)
    return stats


def report_stream(stats: dict, clients: int, fps: float, seconds: float) -> None:
    timed = np.array([x for c in stats["clients"] for x in c["latency"]]).reshape(-1, 2)
    lat = timed[:, 1] * 1000.0
    srv = np.array([x for c in stats["clients"] for x in c["server_ms"]])
    sent = sum(c["sent"] for c in stats["clients"])
    replies = sum(c["replies"] for c in stats["clients"])
    dropped = sum(c["dropped"] for c in stats["clients"])
    print(f"\nstream: {clients} clients x {fps:g} fps, {seconds:g} s measured "
          f"({len(lat)} frames timed, {sent} sent in all, {replies} replies, {dropped} dropped by the server, "
          f"{sent - replies - dropped} unanswered at the end)")
    if len(lat):
        p = np.percentile(lat, [50, 90, 99])
        print(f"  latency client send -> reply, ms: p50 {p[0]:.1f}  p90 {p[1]:.1f}  p99 {p[2]:.1f}  max {lat.max():.1f}")
        q = np.percentile(srv, [50, 99])
        print(f"  server latency_ms (receive -> reply ready): p50 {q[0]:.1f}  p99 {q[1]:.1f}")
        windows = np.minimum((timed[:, 0] // 5).astype(int), max(int(seconds // 5) - 1, 0))
        per = [f"{np.percentile(lat[windows == w], 99):.0f}" for w in np.unique(windows)]
        print(f"  p99 per 5 s window, ms: {' '.join(per)} (a burst of load from other processes shows here)")
        print(f"  p99 goal < 20 ms: {'met' if p[2] < 20 else 'MISSED'}")


def bench_lift(port: int, key: str, k, *, frames: int, requests: int) -> None:
    import httpx

    reps = int(np.ceil(frames / k.num_frames))
    kp = np.concatenate([k.keypoints] * reps)[:frames]
    conf = np.concatenate([k.confidence] * reps)[:frames]
    body = json.dumps({"layout": k.layout, "fps": k.fps, "image_size": list(k.image_size),
                       "keypoints": np.where(np.isfinite(kp), np.round(kp, 2), None).tolist(),
                       "confidence": np.round(conf, 3).tolist()}).encode()
    headers = {"X-API-Key": key, "content-type": "application/json"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        r = http.post("/v1/lift", content=body, headers=headers)  # warm-up: loads the offline network
        r.raise_for_status()
        times, server = [], []
        for _ in range(requests):
            t = time.perf_counter()
            r = http.post("/v1/lift", content=body, headers=headers)
            r.raise_for_status()
            times.append(time.perf_counter() - t)
            server.append(r.json()["seconds"])
    times = np.array(times)
    print(f"\n/v1/lift, {frames}-frame JSON body ({len(body) / 1e6:.2f} MB in, "
          f"{len(r.content) / 1e6:.2f} MB out), {requests} requests one at a time:")
    print(f"  {np.median(times) * 1000:.0f} ms per request (median; min {times.min() * 1000:.0f}, max "
          f"{times.max() * 1000:.0f}); lift itself {np.median(server) * 1000:.0f} ms")
    print(f"  {1 / np.median(times):.2f} requests/s, {frames / np.median(times):.0f} frames/s")

    async def two_at_once():
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            t = time.perf_counter()
            rs = await asyncio.gather(*(http.post("/v1/lift", content=body, headers=headers) for _ in range(requests)))
            for r in rs:
                r.raise_for_status()
            return time.perf_counter() - t

    total = asyncio.run(two_at_once())
    print(f"  {requests} requests sent at once (the server computes 2 at a time): {total:.2f} s, "
          f"{requests / total:.2f} requests/s, {requests * frames / total:.0f} frames/s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds streamed before timing starts")
    ap.add_argument("--lift-frames", type=int, default=300)
    ap.add_argument("--lift-requests", type=int, default=6)
    ap.add_argument("--minimal-app", action="store_true", help="serve only the realtime router")
    ap.add_argument("--profile", help="write the server's cProfile statistics (event loop thread) to this file")
    from mocap.service.server import WS_PER_MESSAGE_DEFLATE

    ap.add_argument("--deflate", choices=["on", "off"], default="on" if WS_PER_MESSAGE_DEFLATE else "off",
                    help="uvicorn's WebSocket compression (permessage-deflate); default as in mocap serve "
                         f"({'on' if WS_PER_MESSAGE_DEFLATE else 'off'})")
    ap.add_argument("--skip-lift", action="store_true", help="stream only, no /v1/lift requests")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve, args.data_dir or None, args.profile, args.deflate == "on")
        return 0

    import importlib.util

    real = not args.minimal_app and importlib.util.find_spec("mocap.service.app") is not None
    k = cached_keypoints()
    proc, port, key, what, data_dir = start_server(real, args.profile, args.deflate == "on")
    try:
        print(f"server: {what} on 127.0.0.1:{port} (pid {proc.pid}), WebSocket compression "
              f"{args.deflate}; cpus: {os.cpu_count()}; "
              f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"keypoints: {VIDEO.name}, {k.num_frames} frames {k.layout} {k.image_size[0]}x{k.image_size[1]}, "
              "played back and forth")
        asyncio.run(run_clients(port, key, k, clients=1, fps=args.fps, seconds=1.0, warmup=0.0))  # warm-up
        cpu0, own0, t0 = cpu_seconds(proc.pid), time.process_time(), time.perf_counter()
        stats = asyncio.run(run_clients(port, key, k, clients=args.clients, fps=args.fps, seconds=args.seconds,
                                        warmup=args.warmup))
        cpu1, own1, t1 = cpu_seconds(proc.pid), time.process_time(), time.perf_counter()
        report_stream(stats, args.clients, args.fps, args.seconds)
        replies = sum(c["replies"] for c in stats["clients"])
        received = sum(c["sent"] for c in stats["clients"])
        server, loop = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        print(f"  CPU while streaming ({t1 - t0:.1f} s): server {server:.1f} s ({server / (t1 - t0):.2f} cores) = "
              f"{1000 * server / max(replies, 1):.2f} ms per reply; its event-loop thread "
              f"{1000 * loop / max(received, 1):.2f} ms per frame received, other threads (frame worker) "
              f"{1000 * (server - loop) / max(replies, 1):.2f} ms per reply; "
              f"these clients {own1 - own0:.1f} s ({(own1 - own0) / (t1 - t0):.2f} cores)")
        print(f"  server CPU per frame: {1000 * server / max(replies, 1):.2f} ms (user + system CPU of every server "
              f"thread / replies; other processes' load changes it far less than the latencies: compare this "
              f"figure between runs on a busy machine)")
        if not args.skip_lift:
            bench_lift(port, key, k, frames=args.lift_frames, requests=args.lift_requests)
        print(f"\nload average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
              "(other processes on this machine count too)")
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn re-raises it after shutdown: the profile is written
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
