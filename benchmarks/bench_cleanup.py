"""Clean-up against ground truth: how much jitter smoothing, bone lengths, IK and foot locking
remove, and what they cost in accuracy (issue 5's targets), on mocap seen by a synthetic
camera through the real lifting network.

    python benchmarks/bench_cleanup.py [--noise-px 3]

Motions: the held-out CMU test takes 02_01..02_04 (walk, walk, run, jump/balance) from
../shared/data when present (real feet that plant), else the synthetic waving walker of the
tests (which slides sideways without stepping, so foot locking is *expected* to move it
away from that truth).

"raw" is the same pipeline with the low-pass filters at 0.95 x Nyquist (no smoothing) and no
foot locking. Jitter is the mean joint acceleration (m/s^2); its excess is jitter minus the
ground truth's own. MPJPE is root-relative, after one rigid + scale alignment per clip.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _jitter(j: np.ndarray, fps: float) -> float:
    return float(np.linalg.norm(np.diff(j, 2, axis=0), axis=-1).mean() * fps * fps)


def _mpjpe_clip(pred: np.ndarray, gt: np.ndarray) -> float:
    p = pred - pred[:, :1]
    q = gt - gt[:, :1]
    a, b = p.reshape(-1, 3), q.reshape(-1, 3)
    u, s, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    s[-1] *= d
    u[:, -1] *= d
    aligned = (s.sum() / (a ** 2).sum()) * p @ (u @ vt)
    return float(np.linalg.norm(aligned - q, axis=-1).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise-px", type=float, default=3.0, help="2D detector noise, pixels (1080p frame)")
    ap.add_argument("--fps", type=float, default=30.0)
    args = ap.parse_args(argv)

    from mocap.cleanup.options import CleanupConfig
    from mocap.pipelines.capture import lift_keypoints
    from tests.synthetic import synthetic_keypoints, waving_walker

    motions = []
    try:
        import lifting.data as data

        by_id = {t.take_id: x for t, x in data.load_dataset("test")}
        step = int(round(data.CACHE_FPS / args.fps))
        motions = [(tid, by_id[tid][::step, :21].astype(np.float64)) for tid in ("02_01", "02_02", "02_03", "02_04")]
    except Exception as e:  # no shared data: the synthetic walker
        print(f"(CMU test takes not available: {e}; using the synthetic waving walker)")
        motions = [("waving walker", waving_walker(300, args.fps))]
    print(f"{args.noise_px:g} px 2D noise (1920x1080 camera 5 m away), {args.fps:g} fps, network lifter")
    print(f"{'motion':14s} {'frames':>6s} {'jitter gt/raw/clean (m/s^2)':>28s} {'excess cut':>10s} "
          f"{'MPJPE raw/clean (mm)':>21s}")
    rows = []
    nyq = 0.95 * args.fps / 2
    for name, gt in motions:
        gt = gt - [gt[0, 0, 0], 0.0, gt[0, 0, 2]]  # start over the origin, facing the camera as recorded
        kp = synthetic_keypoints(gt, fps=args.fps, noise_px=args.noise_px, seed=0)
        raw = lift_keypoints(kp, lifter="network", cleanup=CleanupConfig(cutoff_hz=nyq, root_cutoff_hz=nyq, lock_feet=False))
        clean = lift_keypoints(kp, lifter="network")
        jg, jr, jc = (_jitter(m, args.fps) for m in (gt, raw.joints, clean.joints))
        er, ec = _mpjpe_clip(raw.joints, gt), _mpjpe_clip(clean.joints, gt)
        cut = 1 - (jc - jg) / (jr - jg)
        rows.append((cut, er, ec))
        print(f"{name:14s} {len(gt):6d} {jg:8.2f} / {jr:7.2f} / {jc:6.2f} {100 * cut:9.0f}% "
              f"{1000 * er:9.1f} / {1000 * ec:6.1f}")
    cut, er, ec = np.mean(rows, axis=0)
    print(f"mean: excess jitter reduced by {100 * cut:.0f} % (target >= 70 %); MPJPE {1000 * er:.1f} -> "
          f"{1000 * ec:.1f} mm ({1000 * (ec - er):+.1f} mm; target: rises by at most 2 mm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
