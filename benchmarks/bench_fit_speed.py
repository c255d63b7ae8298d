"""How fast the fit to the video runs: frames per second of `mocap.fit` on a 10 s clip.

A synthetic walk of ``--seconds`` at ``--fps`` (tests/fit_synthetic.py: a person walking,
seen by a static camera with 2 px noise) is lifted by the network once (warm-up: imports,
weights), then lifted and fitted ``--repeat`` times; the script prints the fit's time (wall
and CPU) and frames per second per run, and the other stages of ``lift_and_fit`` for scale.

    python benchmarks/bench_fit_speed.py [--seconds 10] [--fps 30] [--repeat 3]

Run it on an idle machine: a timing taken beside other work is not a figure.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))

    from mocap.lift.lifters import get_lifter
    from mocap.pipelines.capture import StageTimer, lift_and_fit
    from tests.fit_synthetic import view_clip, walking

    clip = walking(seconds=args.seconds, fps=args.fps)
    keypoints, _ = view_clip(clip, pitch_deg=15, height_m=1.5, distance_m=6, focal_px=1400, noise_px=2)
    lifter = get_lifter("network")
    lift_and_fit(keypoints, lifter=lifter, focal_px=1400)  # warm-up
    print(f"{keypoints.num_frames} frames ({args.seconds:g} s at {args.fps:g} fps), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    rates = []
    for run in range(args.repeat):
        timer = StageTimer()
        cpu = time.process_time()
        _, fitted = lift_and_fit(keypoints, lifter=lifter, focal_px=1400, timer=timer)
        cpu = time.process_time() - cpu
        fit_s = timer.seconds["fit to the video"]
        rates.append(keypoints.num_frames / fit_s)
        others = sum(s for k, s in timer.seconds.items() if k != "fit to the video")
        print(f"run {run + 1}: fit {fit_s:.3f} s ({rates[-1]:.0f} frames/s, {fitted.iterations} iterations); "
              f"the other stages {others:.3f} s; CPU time of the whole lift {cpu:.2f} s")
    rates.sort()
    print(f"fit: median {rates[len(rates) // 2]:.0f} frames/s (target >= 500 on this 2-core machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
