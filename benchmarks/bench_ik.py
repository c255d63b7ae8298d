"""Speed of the inverse kinematics (mocap.kinematics.ik) on MOTION21 poses.

    python benchmarks/bench_ik.py [--frames 2000] [--repeats 5]

Prints the live path's cost (:func:`mocap.kinematics.ik.solve_ik` on one frame (21, 3), as
the stream session calls it, frame after frame) in microseconds per frame, and the whole-clip
path (:func:`mocap.kinematics.ik.inverse_kinematics` on (T, 21, 3)) in frames per second.
Each figure is the best of ``--repeats`` runs (the least disturbed by other processes).

Poses: forward kinematics of random local rotations (up to 1.5 rad per joint) with 1 cm of
noise on every joint, so the bones have no rest lengths and every IK rule is exercised.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def poses(t: int, seed: int = 0) -> np.ndarray:
    """(T, 21, 3) metres: random MOTION21 poses, root at the origin, 1 cm joint noise."""
    from mocap.kinematics.ik import forward_kinematics
    from mocap.rotations import axis_angle_to_quat_wxyz
    from mocap.skeletons import MOTION21, rest_offsets

    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(t, 21, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    quats = axis_angle_to_quat_wxyz(axis * rng.uniform(0.0, 1.5, size=(t, 21, 1)))
    x = forward_kinematics(quats, np.zeros((t, 3)), rest_offsets(), MOTION21.parents)
    return x + rng.normal(scale=0.01, size=x.shape)


def us_per_frame(one_frame: Callable[[np.ndarray], np.ndarray], x: np.ndarray, repeats: int) -> float:
    """Best over ``repeats`` of the mean time of ``one_frame(x[i])`` over the frames, microseconds."""
    one_frame(x[0])  # warm up (imports, caches)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for frame in x:
            one_frame(frame)
        best = min(best, (time.perf_counter() - start) / len(x))
    return best * 1e6


def frames_per_s(clip: Callable[[np.ndarray], object], x: np.ndarray, repeats: int) -> float:
    """Best over ``repeats`` of frames solved per second by one ``clip(x)`` call."""
    clip(x[:2])
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        clip(x)
        best = min(best, time.perf_counter() - start)
    return len(x) / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames of the clip (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure, the best is kept (default 5)")
    args = parser.parse_args(argv)

    from mocap.kinematics.ik import inverse_kinematics, plan_ik, solve_ik
    from mocap.skeletons import MOTION21, rest_offsets

    x = poses(args.frames)
    plan = plan_ik(MOTION21.parents, rest_offsets(), skeleton=MOTION21)
    live = us_per_frame(lambda f: solve_ik(plan, f), x[:500], args.repeats)
    clip = frames_per_s(lambda c: inverse_kinematics(c, parents=MOTION21.parents, rest_offsets=rest_offsets()),
                        x, args.repeats)
    print(f"one-frame IK (live path): {live:.0f} us per frame")
    print(f"clip IK, {args.frames} frames: {clip:.0f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
