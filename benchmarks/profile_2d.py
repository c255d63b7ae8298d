"""Where the default 2D stage spends its time: cProfile of ``detect_people_video`` on a video.

    python benchmarks/profile_2d.py [VIDEO] [--top N]

Prints the total time, frames per second and the functions with the most cumulative and own
time. Run it on an idle machine for figures; shares are meaningful under load too.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path

from mocap.detect2d.people import detect_people_video

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("video", nargs="?", default=str(REPO / "examples" / "balance_cam01.mp4"))
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--detector", default="blazepose-torch")
    args = p.parse_args()
    detect_people_video(args.video, detector=args.detector, progress=False, frames=(0, 8))  # warm up
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    tracks = detect_people_video(args.video, detector=args.detector, progress=False)
    prof.disable()
    dt = time.perf_counter() - t0
    n = tracks.keypoints.shape[0]
    print(f"{args.video}: {n} frames in {dt:.2f} s, {n / dt:.1f} frames/s (profiled: slower than plain)")
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
