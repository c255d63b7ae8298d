"""Hand keypoints: the PyTorch hand network against TFLite, and frames per second of body vs body + hands.

    python benchmarks/bench_hands.py [VIDEO] [--device cpu|cuda] [--repeat 2] [--no-tflite]

Prints, on VIDEO (default examples/balance_cam01.mp4, 1080x1920, 100 frames):

- the shipped PyTorch hand landmark network vs the TFLite interpreter on MediaPipe's own
  hand_landmark_full.tflite, fed the same crops of every 8th frame
  (:mod:`mocap.eval.hands_tflite`): landmark difference in % of the hand's size;
- frames per second of the 2D stage of ``mocap capture`` on the whole video, decoding
  included: the body alone (:func:`mocap.detect2d.people.detect_person_video`, everyone
  tracked with blazepose-torch, the main person chosen) and the body + both hands
  (then :func:`mocap.detect2d.hands.detect_hands_video`, which decodes the video again),
  and the hand stage alone; the best of ``--repeat`` runs;
- the machine's load (``uptime``) before and after, and the CPU.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def _cpu() -> str:
    import torch

    model = "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("video", nargs="?", default=str(REPO / "examples" / "balance_cam01.mp4"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--no-tflite", action="store_true", help="skip the comparison with the TFLite interpreter")
    args = p.parse_args()

    from mocap.detect2d.estimators.blazepose_torch import BlazePoseTorch
    from mocap.detect2d.estimators.hands_torch import HandLandmarksTorch
    from mocap.detect2d.hands import detect_hands_video, hand_frames
    from mocap.detect2d.people import detect_person_video
    from mocap.io.video import iter_frames, probe_video

    info = probe_video(args.video)
    print(f"{Path(args.video).name}: {info.size[0]}x{info.size[1]}, {info.frame_count} frames at {info.fps:g} fps")
    print(f"machine: {_cpu()}")
    print(f"load at start: {_uptime()}")

    if not args.no_tflite:
        from mocap.eval.hands_tflite import hand_crops, torch_vs_tflite

        frames = [f for i, f in enumerate(iter_frames(args.video)) if i % 8 == 0]
        body = BlazePoseTorch()(frames)
        r = torch_vs_tflite(hand_crops(frames, body.keypoints[:, 0], body.confidence[:, 0]))
        print(f"torch vs tflite on {r['crops']} hand crops of {len(frames)} frames ({r['hands']} with a hand): "
              f"landmarks max {r['max_pct']:.4f} %, median {r['median_pct']:.5f} % of the hand's size "
              f"(max {r['max_px']:.1e} px); presence max difference {r['presence_max_diff']:.1e}")

    hands_est = HandLandmarksTorch(args.device)
    best = {"body": float("inf"), "hands": float("inf")}
    counts = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        keypoints, _, _ = detect_person_video(args.video, detector="blazepose-torch", device=args.device,
                                              progress=False)
        t1 = time.perf_counter()
        with_hands = detect_hands_video(args.video, keypoints, estimator=hands_est, progress=False)
        t2 = time.perf_counter()
        best["body"], best["hands"] = min(best["body"], t1 - t0), min(best["hands"], t2 - t1)
        counts = hand_frames(with_hands)
    n = info.frame_count
    body_fps, hands_fps = n / best["body"], n / best["hands"]
    both = n / (best["body"] + best["hands"])
    print(f"body alone (blazepose-torch, decode + detect + track): {body_fps:.1f} frames/s")
    print(f"hand stage alone (decode + both hands): {hands_fps:.1f} frames/s; hands found: left in {counts[0]}, "
          f"right in {counts[1]} of {n} frames")
    print(f"body + both hands: {both:.1f} frames/s (target 20 frames/s on 1080p, 2 cores: "
          f"{'met' if both >= 20 else 'missed'})")
    print(f"load at end: {_uptime()}")


if __name__ == "__main__":
    main()
