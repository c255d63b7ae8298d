"""The one-view left/right swap repair (mocap.detect2d.swaps) on held-out CMU motion.

    python benchmarks/bench_swaps.py [--split test] [--cameras 2] [--seed 7]

The test takes are cut into 128-frame segments at 30 fps and filmed by random cameras
(any azimuth, so people are seen from the front, the side and behind), as in
``python -m lifting.evaluate``, with clean 2D and with detector-like noise (which already
holds single-limb swaps). Into each segment swaps are injected: 0 to 3 stretches of 1 to 40
frames, at most 40 % of the segment's frames in all (one view cannot tell which labelling is
right; the repair assumes the detector is right most of the time, and mirrors the minority),
of two kinds:

- ``whole``: every left keypoint takes the right one's place;
- ``parts``: as a real detector also does, the upper body (face, arms) and the lower body
  (hips, legs, feet) turn up to 3 frames apart, and a third of the stretches swap the lower
  body alone.

The repair runs per body part (``mocap.detect2d.swaps.body_parts``, as ``mocap capture`` does),
on the whole body at once (the model before, for comparison), and live (``SwapFilter``: frame by
frame, no look-ahead, as the live stream does). Prints:

- frame accuracy of the detected swaps (per part and frame), the share of the injected
  swapped part-frames found, and the part-frames flagged in segments with nothing injected
  (false alarms);
- the lifting network's MPJPE / PA-MPJPE with the swaps left in, repaired, and without any.

Needs ../shared/data (the CMU takes).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def inject(rng: np.random.Generator, t_len: int, *, parts: bool = False, events_max: int = 3, length_max: int = 40,
           max_share: float = 0.4, stagger_max: int = 3) -> np.ndarray:
    """(T, 2) bool, the upper and lower body's swapped frames: 0..events_max stretches of
    1..length_max frames (XOR-combined), drawn again until at most ``max_share`` of the
    part-frames are swapped (the detector right most of the time). With ``parts``, each
    stretch's lower body starts and ends up to ``stagger_max`` frames off the upper body's, and
    a third of the stretches swap the lower body alone."""
    while True:
        truth = np.zeros((t_len, 2), bool)
        for _ in range(rng.integers(0, events_max + 1)):
            n = int(rng.integers(1, length_max + 1))
            s = int(rng.integers(0, t_len - n + 1))
            if not parts:
                truth[s: s + n] ^= True
                continue
            a, b = (int(v) for v in rng.integers(-stagger_max, stagger_max + 1, size=2))
            lo, hi = min(max(s + a, 0), t_len - 1), min(max(s + n + b, s + a + 1), t_len)
            truth[lo:hi, 1] ^= True
            if rng.random() >= 1 / 3:
                truth[s: s + n, 0] ^= True
        if truth.mean() <= max_share:
            return truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", choices=("val", "test"))
    ap.add_argument("--cameras", type=int, default=2, help="random cameras per segment")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    import torch

    from lifting.data import load_dataset
    from lifting.evaluate import eval_conditions, mpjpe, pa_mpjpe, predict
    from mocap.lift.features import INPUT21, INPUT_MIRROR
    from mocap.lift.network import default_weights_path, load_model
    from mocap.detect2d.swaps import SwapFilter, apply_swaps, body_parts, detect_swaps

    torch.set_num_threads(1)
    model = load_model(default_weights_path())
    conditions = eval_conditions(load_dataset(args.split), seed=args.seed, cameras_per_segment=args.cameras)
    conditions.pop("clean-coco17")
    parts = body_parts(INPUT21)
    print(f"split {args.split}: {len(conditions['clean'].features)} segments of 128 frames at 30 fps, "
          f"{args.cameras} random cameras each, seed {args.seed}\n")
    print(f"{'condition':<8} {'swaps':<6} {'repair':<11} {'frame accuracy':>15} {'swapped found':>14} "
          f"{'false alarms':>13} {'MPJPE / PA-MPJPE mm:':>22} {'no swaps':>13} {'swaps left':>13} {'repaired':>13}")
    for name, ev in conditions.items():
        feats = ev.features  # (S, T, 21, 3): normalised x, y and confidence
        for kind in ("whole", "parts"):
            rng = np.random.default_rng(args.seed)  # the same draws for each condition
            truth = np.stack([inject(rng, feats.shape[1], parts=kind == "parts") for _ in range(len(feats))])
            swapped_in = np.stack([apply_swaps(f, s, INPUT_MIRROR, parts) for f, s in zip(feats, truth)])
            clean_pred = predict(model, feats.astype(np.float32))
            left_pred = predict(model, swapped_in.astype(np.float32))
            for repair in ("whole body", "per part", "live"):
                if repair == "live":
                    live = SwapFilter(INPUT21, fps=30.0)
                    found = []
                    for f in swapped_in:
                        live.reset()
                        found.append([live.push(np.where(p[:, 2:] > 0, p[:, :2], np.nan), p[:, 2]) for p in f])
                    found = np.array(found)
                else:
                    found = np.stack([
                        detect_swaps(np.where(f[..., 2:] > 0, f[..., :2], np.nan), f[..., 2], INPUT_MIRROR, fps=30.0,
                                     groups=parts if repair == "per part" else None) for f in swapped_in])
                if found.ndim == 2:
                    found = np.repeat(found[..., None], 2, axis=-1)
                repaired = np.stack([apply_swaps(f, s, INPUT_MIRROR, parts) for f, s in zip(swapped_in, found)])
                seen = (feats[..., 2] > 0).sum(-1) >= 4  # frames with keypoints (empty frames' labels do not matter)
                none = np.broadcast_to(~truth.any((1, 2))[:, None, None], truth.shape)[seen]
                f_seen, t_seen = found[seen], truth[seen]
                figures = []
                for pred in (clean_pred, left_pred, predict(model, repaired.astype(np.float32))):
                    figures.append((1000 * mpjpe(pred, ev.targets).mean(), 1000 * pa_mpjpe(pred, ev.targets).mean()))
                print(f"{name:<8} {kind:<6} {repair:<11} {100 * np.mean(f_seen == t_seen):14.2f}% "
                      f"{100 * f_seen[t_seen].mean():13.1f}% {100 * f_seen[none].mean():12.2f}% {'':>22} "
                      + " ".join(f"{a:6.1f} /{b:5.1f}" for a, b in figures))
    print("\n(frame accuracy over the part-frames of the frames with at least 4 keypoints; 'swapped found': share of the "
          "injected swapped part-frames detected; 'false alarms': flagged part-frames in the segments with nothing injected)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
