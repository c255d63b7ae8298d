"""Two people in one video, one camera: does the second land in the first one's world?

    python benchmarks/bench_people_world.py [--pairs 12] [--seconds 6] [--seed 0] [--noise-px 2]

Each pair: two windows of held-out CMU test takes (``bench_fit.cmu_test_clips``; the network
never saw them), the second person scaled by a random factor 0.8-1.1 about their own floor
point (a smaller or taller person) and placed 1.2-2.5 m from the first in a random direction,
both seen by one static camera as in ``bench_fit.py`` (0.8-2.0 m high, 4-8 m away, pitched
0-30 degrees, focal 900-1800 px, 2 px noise). The first person is lifted and fitted as
``mocap capture`` does (``lift_and_fit``, the network lifter, the true focal length); the
second twice: in the first one's camera (``shared=``, what ``--all-people`` does now) and alone
(each person fitted on their own, as before).

Printed per pair and overall: the first person's motion mapped onto their truth by ONE
similarity for the clip (their path kept), the same similarity applied to the second person,
and the second person's pelvis off their truth (mean over frames, metres); the second
person's standing height over the first one's, against the truth's ratio.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def true_height(joints: np.ndarray) -> float:
    """Standing height (metres) of MOTION21 ``joints`` (T, 21, 3) from their median bone lengths."""
    from mocap import bones
    from mocap.fit.quality import standing_height
    from mocap.skeletons import MOTION21, rest_offsets

    lengths = bones.estimate_bone_lengths(joints, MOTION21.parents, left_right=MOTION21.left_right)
    return standing_height(bones.rest_offsets_with_lengths(rest_offsets(), lengths))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise-px", type=float, default=2.0)
    args = ap.parse_args(argv)

    from bench_fit import FPS, cmu_test_clips, sample_camera
    from lifting.data import ARCHIVE_NAME, cache_dir, shared_data_dir
    from lifting.evaluate import apply_similarity, similarity_fit

    archive = shared_data_dir() / "mocap" / ARCHIVE_NAME
    if not archive.exists() and not (cache_dir() / ".unpacked").exists():
        print(f"bench_people_world: needs the CMU mocap at {archive} (or MOCAP_SHARED_DATA); not found, nothing measured")
        return 1
    from mocap.fit.quality import standing_height
    from mocap.lift.lifters import get_lifter
    from mocap.pipelines.capture import lift_and_fit
    from tests.fit_synthetic import project_clip

    lifter = get_lifter("network")
    clips = cmu_test_clips(args.seed, 2 * args.pairs, args.seconds)
    print(f"{args.pairs} pairs of CMU test windows, one camera, {args.noise_px:g} px noise\n")
    print(f"{'pair':<40} {'scale':>5} {'apart m':>7} {'shared: off m':>13} {'ratio':>6} {'alone: off m':>12} "
          f"{'ratio':>6} {'truth':>6}")
    rows = []
    for k in range(args.pairs):
        (la, a, fa), (lb, b, fb) = clips[2 * k], clips[2 * k + 1]
        t = min(len(a), len(b))
        a, b, fa, fb = a[:t], b[:t], fa[:t], fb[:t]
        rng = np.random.default_rng([args.seed, k, 7])
        factor = float(rng.uniform(0.8, 1.1))
        base = np.array([b[:, 0, 0].mean(), 0.0, b[:, 0, 2].mean()])
        angle = rng.uniform(0, 2 * np.pi)
        place = np.array([a[:, 0, 0].mean(), 0.0, a[:, 0, 2].mean()]) + rng.uniform(1.2, 2.5) * np.array(
            [np.cos(angle), 0.0, np.sin(angle)])
        b, fb = (b - base) * factor + place, (fb - base) * factor + place
        cam, focal = sample_camera(rng, np.concatenate([a, b]), np.concatenate([fa, fb]))
        kp_a = project_clip(a, cam, noise_px=args.noise_px, rng=rng, fps=FPS, face=fa)
        kp_b = project_clip(b, cam, noise_px=args.noise_px, rng=rng, fps=FPS, face=fb)
        motion_a, fit_a = lift_and_fit(kp_a, lifter=lifter, focal_px=focal)
        world = similarity_fit(motion_a.joints.reshape(-1, 3), a.reshape(-1, 3))
        truth_ratio = true_height(b) / true_height(a)
        row = {"apart": float(np.linalg.norm(b[:, 0] - a[:, 0], axis=-1).mean()), "truth": truth_ratio}
        for key, shared in (("shared", fit_a), ("alone", None)):
            motion_b, fit_b = lift_and_fit(kp_b, lifter=lifter, focal_px=focal, shared=shared)
            pelvis = apply_similarity(world, motion_b.joints[:, 0])
            row[key] = float(np.linalg.norm(pelvis - b[:, 0], axis=-1).mean())
            row[key + "_ratio"] = standing_height(fit_b.motion.rest_offsets) / standing_height(fit_a.motion.rest_offsets)
        rows.append(row)
        print(f"{(la[:18] + ' + ' + lb[:18]):<40} {factor:5.2f} {row['apart']:7.2f} {row['shared']:13.2f} "
              f"{row['shared_ratio']:6.3f} {row['alone']:12.2f} {row['alone_ratio']:6.3f} {truth_ratio:6.3f}", flush=True)

    def stats(key):
        v = np.array([r[key] for r in rows])
        return f"median {np.median(v):.2f}, mean {v.mean():.2f}, worst {v.max():.2f}"

    ratio_err = {key: np.array([abs(r[key + "_ratio"] / r["truth"] - 1) for r in rows]) for key in ("shared", "alone")}
    print(f"\noverall ({len(rows)} pairs; the people {stats('apart')} m apart):")
    for key, what in (("shared", "in the first one's camera (--all-people now)"), ("alone", "each fitted alone (before)")):
        print(f"  second person {what}: pelvis off the truth {stats(key)} m; height ratio off the truth's by "
              f"median {100 * np.median(ratio_err[key]):.1f} %, worst {100 * ratio_err[key].max():.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
