"""Accuracy of the lifting network on held-out CMU takes: ``python -m lifting.evaluate``.

Test data: the ``test`` takes of ``lifting/split.json`` at 30 fps, cut into segments of
``SEGMENT_FRAMES`` frames, each filmed by one random virtual camera (fixed seed), with clean
2D (all 21 inputs, confidence 1), clean 2D without the foot points (what a COCO-17 detector
gives), and detector-like noisy 2D (:class:`lifting.augment.NoiseConfig`).

Metrics (millimetres; joints root-relative, camera frame):
MPJPE, PA-MPJPE (per-frame similarity Procrustes alignment: rotation, translation and
scale), N-MPJPE (scale-only alignment), MPJVE (velocity error, mm/frame) and acceleration
error (mm/frame^2), at 30 fps.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifting.augment import CLEAN, NoiseConfig, render
from lifting.data import Take
from mocap.skeletons import MOTION21

SEGMENT_FRAMES = 128
EVAL_STRIDE = 4  # 120 Hz -> 30 fps
#: The 12 limb joints (shoulders, elbows, wrists, hips, knees, ankles) reported separately.
LIMB_JOINTS = np.array([MOTION21.index(f"{s}_{j}") for s in ("left", "right")
                        for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")])


# --- metrics: predictions and targets (..., T, J, 3) metres; results in metres -----------------
def mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., T) mean per-joint position error per frame."""
    return np.linalg.norm(pred - target, axis=-1).mean(-1)


def procrustes_align(pred: np.ndarray, target: np.ndarray, *, rotation: bool = True) -> np.ndarray:
    """Align ``pred`` (..., J, 3) to ``target`` per frame by a similarity transform (metres).

    ``rotation=True``: least-squares rotation (no reflection), translation and scale.
    ``rotation=False``: only a scale about the origin (the root), as N-MPJPE uses.
    """
    if not rotation:
        num = (pred * target).sum((-1, -2), keepdims=True)
        den = (pred * pred).sum((-1, -2), keepdims=True)
        return pred * num / np.maximum(den, 1e-12)
    return apply_similarity(similarity_fit(pred, target), pred)


def similarity_fit(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The least-squares similarity (rotation without reflection, scale, translation) taking the
    points ``pred`` (..., J, 3) to ``target``, per leading index: (scale (...,), rotation
    (..., 3, 3), pred's mean (..., 1, 3), target's mean (..., 1, 3)); see :func:`apply_similarity`."""
    mu_p = pred.mean(-2, keepdims=True)
    mu_t = target.mean(-2, keepdims=True)
    p = pred - mu_p
    t = target - mu_t
    h = np.swapaxes(p, -1, -2) @ t  # (..., 3, 3)
    u, s, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    fix = np.ones(s.shape)
    fix[..., -1] = d
    r = np.swapaxes(vt, -1, -2) @ (fix[..., :, None] * np.swapaxes(u, -1, -2))  # maps p to t: t ~ r p
    scale = (s * fix).sum(-1) / np.maximum((p ** 2).sum((-1, -2)), 1e-12)
    return scale, r, mu_p, mu_t


def apply_similarity(similarity: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], points: np.ndarray) -> np.ndarray:
    """``points`` (..., N, 3) moved by :func:`similarity_fit`'s ``similarity`` (the same leading shape)."""
    scale, r, mu_p, mu_t = similarity
    return scale[..., None, None] * (points - mu_p) @ np.swapaxes(r, -1, -2) + mu_t


def pa_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., T) MPJPE after per-frame Procrustes alignment with scale."""
    return mpjpe(procrustes_align(pred, target), target)


def n_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., T) MPJPE after a per-frame least-squares scale of the root-relative prediction."""
    return mpjpe(procrustes_align(pred, target, rotation=False), target)


def mpjve(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., T-1) mean per-joint velocity error (per frame)."""
    return np.linalg.norm(np.diff(pred, axis=-3) - np.diff(target, axis=-3), axis=-1).mean(-1)


def accel_error(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., T-2) mean per-joint acceleration error (per frame^2)."""
    return np.linalg.norm(np.diff(pred, 2, axis=-3) - np.diff(target, 2, axis=-3), axis=-1).mean(-1)


# --- the evaluation set ----------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalSet:
    """Segments: ``features`` (S, T, 21, 3), ``targets`` (S, T, 21, 3) metres, ``elevation_rad`` (S,),
    ``take_ids`` and ``actions`` (S,) lists."""

    features: np.ndarray
    targets: np.ndarray
    elevation_rad: np.ndarray
    take_ids: tuple[str, ...]
    actions: tuple[str, ...]


def make_eval_set(takes: list[tuple[Take, np.ndarray]], *, noise: NoiseConfig, drop_feet_prob: float,
                  seed: int, segment_frames: int = SEGMENT_FRAMES, cameras_per_segment: int = 1,
                  noise_seed: int | None = None) -> EvalSet:
    """Cut 120 Hz takes into 30 fps segments and film each with ``cameras_per_segment`` seeded random
    cameras (``seed``); the 2D corruption draws from ``noise_seed`` (default: the camera stream)."""
    rng = np.random.default_rng(seed)
    windows, ids, actions = [], [], []
    span = (segment_frames - 1) * EVAL_STRIDE + 1
    for take, world in takes:
        starts = list(range(0, len(world) - span + 1, segment_frames * EVAL_STRIDE))
        if len(world) >= span and (not starts or len(world) - (starts[-1] + span) >= span // 4):
            starts.append(len(world) - span)
        for s in starts:
            for _ in range(cameras_per_segment):
                windows.append(world[s: s + span: EVAL_STRIDE])
                ids.append(take.take_id)
                actions.append(take.action)
    world = np.stack(windows).astype(np.float64)
    noise_rng = None if noise_seed is None else np.random.default_rng(noise_seed)
    batch = render(rng, world, out_slice=slice(None), noise=noise, mirror_prob=0.0, bone_spread=0.0,
                   drop_feet_prob=drop_feet_prob, noise_rng=noise_rng)
    return EvalSet(batch.features, batch.targets, batch.elevation_rad, tuple(ids), tuple(actions))


def eval_conditions(takes: list[tuple[Take, np.ndarray]], seed: int = 1234, cameras_per_segment: int = 1) -> dict[str, EvalSet]:
    """The three test conditions, filmed by the same cameras: clean (all 21 inputs, confidence 1),
    clean-coco17 (no foot points) and noisy (every segment corrupted, half of them without feet)."""
    kw = dict(seed=seed, cameras_per_segment=cameras_per_segment, noise_seed=seed + 1)
    return {
        "clean": make_eval_set(takes, noise=CLEAN, drop_feet_prob=0.0, **kw),
        "clean-coco17": make_eval_set(takes, noise=CLEAN, drop_feet_prob=1.0, **kw),
        "noisy": make_eval_set(takes, noise=NoiseConfig(clean_fraction=0.0), drop_feet_prob=0.5, **kw),
    }


def predict(model, features: np.ndarray, batch_segments: int = 64, *, flip: bool = False) -> np.ndarray:
    """Run a model over segments (S, T, 21, 3) -> (S, T, 21, 3) metres (edge-padded).

    ``flip``: average with the un-mirrored prediction for the mirrored input (test-time
    augmentation). The runtime's own path (:func:`mocap.lift.network.lift_normalised`, which
    :meth:`mocap.lift.network.NetworkLifter.lift_features` runs), so the figures are those
    of the code users run; the lifter also puts the pelvis back at 0, which is not done here.
    """
    from mocap.lift.network import lift_normalised

    model.eval()
    return lift_normalised(model, features, flip_average=flip, batch=batch_segments)


def summarise(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Mean metrics in mm over segments (S, T, J, 3)."""
    return {
        "MPJPE": 1000 * float(mpjpe(pred, target).mean()),
        "PA-MPJPE": 1000 * float(pa_mpjpe(pred, target).mean()),
        "N-MPJPE": 1000 * float(n_mpjpe(pred, target).mean()),
        "PA-MPJPE(12 limbs)": 1000 * float(pa_mpjpe(pred[..., LIMB_JOINTS, :], target[..., LIMB_JOINTS, :]).mean()),
        "MPJVE": 1000 * float(mpjve(pred, target).mean()),
        "Accel": 1000 * float(accel_error(pred, target).mean()),
    }


def _table(title: str, rows: list[tuple[str, dict[str, float]]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0][1])
    width = max(len(r[0]) for r in rows) + 2
    lines = [title, "".ljust(width) + "".join(c.rjust(20 if "12" in c else 10) for c in cols)]
    for name, vals in rows:
        lines.append(name.ljust(width) + "".join(f"{vals[c]:.1f}".rjust(20 if "12" in c else 10) for c in cols))
    return "\n".join(lines)


def report(models: dict[str, object], conditions: dict[str, EvalSet]) -> str:
    """Tables: overall per model and condition; per joint, per action, per elevation for
    ``temporal+flip`` when present (what ``NetworkLifter`` gives by default), else the first model."""
    out = []
    preds = {(m, c): predict(model, es.features, flip=m.endswith("+flip")) for m, model in models.items()
             for c, es in conditions.items()}
    rows = [(f"{m} / {c}", summarise(preds[(m, c)], conditions[c].targets)) for m in models for c in conditions]
    n_frames = sum(es.features.shape[0] * es.features.shape[1] for es in list(conditions.values())[:1])
    out.append(_table(f"Overall (mm; MPJVE mm/frame, Accel mm/frame^2 at 30 fps; {n_frames} frames per condition)", rows))
    main = "temporal+flip" if "temporal+flip" in models else next(iter(models))  # NetworkLifter's default
    for c in ("clean", "noisy"):
        if c not in conditions:
            continue
        es, pred = conditions[c], preds[(main, c)]
        err = np.linalg.norm(pred - es.targets, axis=-1)  # (S, T, J)
        pa = np.linalg.norm(procrustes_align(pred, es.targets) - es.targets, axis=-1)
        rows = [(name, {"MPJPE": 1000 * err[..., j].mean(), "PA-MPJPE": 1000 * pa[..., j].mean()})
                for j, name in enumerate(MOTION21.joint_names) if name != "pelvis"]
        out.append(_table(f"Per joint, {main} / {c} (mm)", rows))
        actions = sorted(set(es.actions))
        rows = []
        for a in actions:
            sel = np.array([x == a for x in es.actions])
            rows.append((f"{a} ({sel.sum()} seg)", summarise(pred[sel], es.targets[sel])))
        out.append(_table(f"Per action, {main} / {c}", rows))
        rows = []
        edges = [-0.2, 0.0, 0.2, 0.4, 0.61]
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (es.elevation_rad >= lo) & (es.elevation_rad < hi)
            if sel.any():
                rows.append((f"elev {np.degrees(lo):+.0f}..{np.degrees(hi):+.0f} deg ({sel.sum()} seg)",
                             summarise(pred[sel], es.targets[sel])))
        out.append(_table(f"By camera elevation, {main} / {c}", rows))
    return "\n\n".join(t for t in out if t)


def measure_speed(weights: Path, causal_weights: Path | None, *, frames: int = 100_000, pushes: int = 300,
                  flip: bool = False) -> str:
    """Offline throughput (frames/s, one long clip; with ``flip`` also with flip averaging)
    and causal streaming latency (ms per new frame)."""
    import time

    from mocap.lift.network import NetworkLifter, StreamingLifter

    rng = np.random.default_rng(0)
    kp = rng.uniform(200, 800, size=(frames, 33, 2))
    conf = rng.uniform(0.3, 1.0, size=(frames, 33))
    lifter = NetworkLifter(weights, flip_average=False)
    lifter.lift_arrays(kp[:1000], conf[:1000], "mediapipe33")
    t0 = time.perf_counter()
    lifter.lift_arrays(kp, conf, "mediapipe33")
    fps = frames / (time.perf_counter() - t0)
    lines = [f"offline, one pass: {fps:,.0f} frames/s ({frames} frames of mediapipe33 keypoints, end to end incl. normalisation)"]
    if flip:
        lifter.flip_average = True
        t0 = time.perf_counter()
        lifter.lift_arrays(kp, conf, "mediapipe33")
        lines.append(f"offline with flip averaging (NetworkLifter's default): {frames / (time.perf_counter() - t0):,.0f} frames/s")
    if causal_weights is not None and Path(causal_weights).exists():
        stream = StreamingLifter(causal_weights)
        for i in range(30):
            stream.push(kp[i], conf[i])
        t0 = time.perf_counter()
        for i in range(pushes):
            stream.push(kp[i], conf[i])
        lines.append(f"causal streaming: {1000 * (time.perf_counter() - t0) / pushes:.2f} ms per pushed frame")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from lifting.data import load_dataset
    from mocap.lift.network import default_weights_path, load_model

    parser = argparse.ArgumentParser(prog="python -m lifting.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="network weights (default: the shipped offline model)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="single-frame baseline weights (default: mocap/lift/weights/single_frame.pt if present)")
    parser.add_argument("--causal-weights", type=Path, default=None,
                        help="causal model weights (default: mocap/lift/weights/causal.pt if present)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--cameras", type=int, default=4, help="random cameras per test segment")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--speed", action="store_true", help="also time offline inference and causal streaming")
    parser.add_argument("--flip", action="store_true", help="also report the temporal model with flip test-time averaging (NetworkLifter's default; "
                             "the detailed tables are then for it)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    weights = args.weights or default_weights_path()
    models = {"temporal": load_model(weights)}
    if args.flip:
        models["temporal+flip"] = models["temporal"]
    wdir = Path(weights).parent
    causal = args.causal_weights or wdir / "causal.pt"
    if Path(causal).exists():
        models["causal"] = load_model(causal)
    base = args.baseline or wdir / "single_frame.pt"
    if Path(base).exists():
        models["single-frame"] = load_model(base)
    conditions = eval_conditions(load_dataset(args.split), seed=args.seed, cameras_per_segment=args.cameras)
    for name, m in models.items():
        cfg = m.config
        print(f"{name}: {weights if name.startswith('temporal') else (causal if name == 'causal' else base)} "
              f"kernel widths {cfg.kernel_widths}, receptive field {cfg.receptive_field}, causal={cfg.causal}")
    first = next(iter(conditions.values()))
    print(f"split {args.split}: {len(set(first.take_ids))} takes, {len(first.take_ids)} segments of {first.features.shape[1]} "
          f"frames at 30 fps ({args.cameras} random cameras per segment), seed {args.seed}\n")
    print(report(models, conditions))
    if args.speed:
        print("\nSpeed\n" + measure_speed(weights, causal if Path(causal).exists() else None, flip=args.flip))
    return 0


if __name__ == "__main__":
    sys.exit(main())
