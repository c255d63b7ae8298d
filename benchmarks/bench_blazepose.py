"""Frames per second of BlazePose: MediaPipe (Tasks API, one frame at a time) vs BlazePoseTorch.

    python benchmarks/bench_blazepose.py [VIDEO] [--device cpu|cuda] [--threads N] [--repeat 3]
                                         [--frames 64] [--compile] [--no-mediapipe]

Self-contained: needs torch, mediapipe 0.10.21, tflite (and opencv); reads real frames of
VIDEO (default examples/balance_cam01.mp4) and prints one line per measurement:

- MediaPipe Tasks PoseLandmarker per frame, IMAGE mode (detector + landmarks every frame)
  and VIDEO mode (tracking: landmarks only, detector when lost);
- BlazePoseTorch whole pipeline on independent images, frames per call = network batch
  = 1, 8, 32; ``video()`` with its defaults (CPU: 8 segments of 8 frames, tracked inside,
  detector + second landmark pass at segment starts; CUDA: 256 segments of 1 frame, i.e.
  detector + two landmark passes on every frame) and ``track()`` (serial, MediaPipe's logic);
- the networks alone: landmark network at batch 8 and 256, detector at batch 32;
- on CUDA: the same plus the landmark network in float16 at batch 256.

Each figure is the best of ``--repeat`` runs after a warm-up (first calls at a new batch
size build oneDNN/cuDNN kernels); the median is printed too. The measurements take turns,
round after round, so all see the same machine load; on a shared machine the best run is
the fairer figure, and the load average printed at the start and end says how shared it was.

On CUDA pass ``--frames 512`` or more so that ``video()`` fills its batches of 256.

CPU batches above ~8 frames slow down per frame with glibc's default malloc: activations
over its mmap threshold (at most 32 MB) are mapped and zeroed afresh on every call. Started
with ``MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296`` (or with
jemalloc/tcmalloc) batch 32 runs as fast per frame as batch 8.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from pathlib import Path
from statistics import median

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))} (CUDA {torch.version.cuda})"
    model = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}"


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


class _Bench:
    """Runs every measurement once per round, round after round, so that all of them see the
    same mix of machine load; reports the best and the median run of each."""

    def __init__(self, repeat: int, sync=None) -> None:
        self.repeat, self.sync, self.items = repeat, sync, []

    def add(self, label: str, fn, n_items: int) -> None:
        fn()  # warm-up: first calls at a new batch size build oneDNN / cuDNN kernels
        if self.sync:
            self.sync()
        self.items.append((label, fn, n_items, []))

    def run(self) -> None:
        for _ in range(self.repeat):
            for label, fn, n, times in self.items:
                t0 = time.perf_counter()
                fn()
                if self.sync:
                    self.sync()
                times.append(time.perf_counter() - t0)
        for label, _, n, times in self.items:
            best, med = n / min(times), n / median(times)
            print(f"{label:<64} {best:8.1f} frames/s  (median {med:7.1f}; best {1000 / best:7.2f} ms/frame)",
                  flush=True)


def _mediapipe(frames: list[np.ndarray], bench: _Bench, stack) -> None:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from mocap.detect2d.mediapipe_pose import pose_landmarker_bundle

    bundle = str(pose_landmarker_bundle())
    images = [mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(f)) for f in frames]
    for mode in ("IMAGE", "VIDEO"):
        options = vision.PoseLandmarkerOptions(base_options=BaseOptions(model_asset_path=bundle),
                                               running_mode=getattr(vision.RunningMode, mode), num_poses=1)
        landmarker = stack.enter_context(vision.PoseLandmarker.create_from_options(options))
        clock = [0]

        def run(landmarker=landmarker, mode=mode, clock=clock):
            for im in images:
                if mode == "IMAGE":
                    landmarker.detect(im)
                else:
                    clock[0] += 17
                    landmarker.detect_for_video(im, clock[0])

        bench.add(f"MediaPipe Tasks {mode} mode, one frame per call", run, len(images))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(REPO / "examples" / "balance_cam01.mp4"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=64, help="frames read from the video (repeated if short)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the landmark network")
    parser.add_argument("--no-mediapipe", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from mocap.detect2d.estimators.blazepose_torch import BlazePoseTorch
    from mocap.io.video import iter_frames

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    frames = list(iter_frames(args.video))
    frames = (frames * (args.frames // max(len(frames), 1) + 1))[:args.frames]
    h, w = frames[0].shape[:2]
    print(f"device: {_device_name(args.device)}")
    print(f"torch {torch.__version__}; {len(frames)} frames {w}x{h} of {Path(args.video).name}; "
          f"load average at start: {_load()}", flush=True)

    bench = _Bench(args.repeat, sync)
    with contextlib.ExitStack() as stack:
        if not args.no_mediapipe:
            _mediapipe(frames, bench, stack)
        t0 = time.perf_counter()
        est = BlazePoseTorch(device=args.device)
        print(f"BlazePoseTorch built in {time.perf_counter() - t0:.1f} s (reads mediapipe's graph and tflite files)")
        for batch in (1, 8, 32):
            sized = BlazePoseTorch(device=args.device, batch_size=batch)

            def run(batch=batch, sized=sized):
                for s in range(0, len(frames), batch):
                    sized(frames[s:s + batch])

            bench.add(f"BlazePoseTorch images (detector + landmarks), batch {batch}", run, len(frames))
        span = 1 if cuda else 8
        bench.add(f"BlazePoseTorch video(): {est.batch_size} segments x span {span}, refine",
                  lambda: est.video(frames), len(frames))
        bench.add("BlazePoseTorch track() (serial: one frame per call)", lambda: est.track(frames), len(frames))
        nets = [("landmark network", est.landmarker, 256, (8, 256)), ("detector network", est.detector, 224, (8, 32))]
        for label, net, size, batches in nets:
            for batch in batches:
                x = torch.rand(batch, size, size, 3, device=est.device)

                def run_net(net=net, x=x):
                    with torch.inference_mode():
                        net(x)

                bench.add(f"{label} alone, batch {batch}, float32", run_net, batch)
        if cuda:
            half = BlazePoseTorch(device=args.device, half=True)
            x = torch.rand(256, 256, 256, 3, device=est.device)

            def run_half():
                with torch.inference_mode():
                    half.landmarker(x)

            bench.add("landmark network alone, batch 256, float16", run_half, 256)
            bench.add(f"BlazePoseTorch video(), float16: {half.batch_size} segments x span 1, refine",
                      lambda: half.video(frames), len(frames))
        if args.compile:
            x = torch.rand(8, 256, 256, 3, device=est.device)
            t0 = time.perf_counter()
            compiled = torch.compile(est.landmarker, dynamic=False)
            with torch.inference_mode():
                compiled(x)
            if sync:
                sync()
            print(f"torch.compile of the landmark network: {time.perf_counter() - t0:.0f} s to compile")

            def run_compiled():
                with torch.inference_mode():
                    compiled(x)

            bench.add("landmark network alone, batch 8, torch.compile", run_compiled, 8)
        bench.run()
    print(f"load average at end: {_load()}")


if __name__ == "__main__":
    main()
