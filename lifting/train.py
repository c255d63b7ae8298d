"""Train the lifting network on CMU mocap: ``python -m lifting.train --help``.

Reproducible: batch ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` and torch is
re-seeded with ``(seed, i)`` every step, so a run resumed from its checkpoint continues with
exactly the batches it would have seen. Every ``--val-every`` steps the model is scored on
the validation takes (clean and noisy 2D); the best model so far is written (atomically) to
``--weights-out``, and a resumable checkpoint to ``<out>/checkpoint.pt``. Losses go to stdout
and ``<out>/train.log``.

Loss: MPJPE of root-relative camera-frame MOTION21 joints (metres) plus ``--velocity-weight``
times the error of frame-to-frame joint velocities. Each sample is a chunk of consecutive
frames, so the convolution's work is shared by ``--chunk`` output frames.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lifting.train", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint.pt, train.log)")
    p.add_argument("--weights-out", type=Path, default=None, help="where the best weights go (default <out>/best.pt)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=20000, help="optimiser steps (the cosine schedule spans them)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this wall time (best weights are kept)")
    p.add_argument("--batch", type=int, default=48, help="chunks per step")
    p.add_argument("--chunk", type=int, default=32, help="output frames per chunk")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--velocity-weight", type=float, default=1.0)
    p.add_argument("--kernel-widths", default="3,3,3", help="comma-separated, e.g. 3,3,3 (27 frames) or 1,1,1 (single frame)")
    p.add_argument("--channels", type=int, default=384)
    p.add_argument("--dropout", type=float, default=0.15)
    p.add_argument("--causal", action="store_true", help="train the causal (past-frames-only) variant")
    p.add_argument("--init-from", type=Path, default=None,
                   help="start from these weights: the same kernel widths, or widths that this run extends "
                        "(a longer window; mocap.lift.model.grow); the variant (offline/causal) may differ")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this many steps in this session (to be resumed)")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 leaves the other cores free)")
    p.add_argument("--limit-takes", type=int, default=None, help="use only the first N training takes (quick tests)")
    p.add_argument("--extra-data", action="store_true",
                   help="also train on cmu_extra.tar.xz (split.json's train_extra: 51 takes, 14 min; lifting/data_extra.py)")
    p.add_argument("--pose-aug", type=float, default=0.0,
                   help="share of samples whose limbs and trunk are rotated at random (lifting.augment.PoseAugment)")
    p.add_argument("--pose-aug-scale", type=float, default=1.0,
                   help="multiply PoseAugment's rotation standard deviations by this")
    p.add_argument("--width-spread", type=float, default=None,
                   help="range of the hip and shoulder width scaling, e.g. 0.25 for 0.75-1.25 (default: that of every bone, 0.1)")
    p.add_argument("--transplant", type=float, default=0.0,
                   help="share of samples given the bone lengths of another training take's skeleton "
                        "(lifting.augment.transplant_factors; needs --extra-data, the cgspeed takes share one skeleton)")
    args = p.parse_args(argv)
    try:
        args.kernel_widths = tuple(int(k) for k in args.kernel_widths.split(","))
    except ValueError:
        p.error(f"--kernel-widths takes comma-separated integers such as 3,3,3; got {args.kernel_widths!r}")
    if not 0.0 <= args.transplant <= 1.0:
        p.error(f"--transplant is a share of samples, between 0 and 1; got {args.transplant}")
    if args.transplant > 0 and not args.extra_data:
        p.error("--transplant needs --extra-data: the cgspeed takes all share one skeleton")
    if not 0.0 <= args.pose_aug <= 1.0:
        p.error(f"--pose-aug is a share of samples, between 0 and 1; got {args.pose_aug}")
    if args.pose_aug_scale < 0:
        p.error(f"--pose-aug-scale must not be negative; got {args.pose_aug_scale}")
    if args.width_spread is not None and not 0.0 <= args.width_spread < 1.0:
        p.error(f"--width-spread must be in [0, 1) (bones scaled by 1 - s .. 1 + s); got {args.width_spread}")
    return args


def save_weights(path: Path, model, meta: dict) -> None:
    """Write a weights file (float16 tensors, config, meta) atomically."""
    import torch

    from mocap.formats import atomic_path

    state = {k: (v.half() if v.is_floating_point() else v).clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"config": model.config.to_dict(), "state_dict": state, "meta": meta}, tmp)
        os.chmod(tmp, 0o644)  # a shipped file, readable by everyone (the temporary file is private)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    import torch

    from lifting.augment import NoiseConfig, PoseAugment, WindowSampler, render, skeleton_pool
    from lifting.data import load_dataset
    from lifting.evaluate import eval_conditions, predict, summarise
    from mocap.lift.network import load_model
    from mocap.lift.model import ModelConfig, TemporalLifter, count_parameters, grow
    from mocap.errors import MocapError
    from mocap.formats import atomic_path

    torch.set_num_threads(args.threads)
    config = ModelConfig(kernel_widths=args.kernel_widths, channels=args.channels, dropout=args.dropout,
                         causal=args.causal)
    torch.manual_seed(args.seed)
    try:  # before any file is written: a wrong architecture is a one-line error
        model = TemporalLifter(config)
        if args.init_from:  # the source's layers; new blocks of a longer window start as identities
            model = grow(load_model(args.init_from), config)
    except ValueError as e:
        raise MocapError(str(e)) from None

    args.out.mkdir(parents=True, exist_ok=True)
    weights_out = args.weights_out or args.out / "best.pt"
    log_file = open(args.out / "train.log", "a", encoding="utf-8")

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    step, best, history = 0, math.inf, []
    ckpt_path = args.out / "checkpoint.pt"
    if args.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, best, history = ckpt["step"], ckpt["best"], ckpt["history"]
        log(f"resumed from {ckpt_path} at step {step} (best val {best * 1000:.1f} mm)")

    if args.extra_data:
        from lifting.data_extra import load_with_extra

        train_takes = load_with_extra("train")
    else:
        train_takes = load_dataset("train")
    if args.limit_takes:
        train_takes = train_takes[: args.limit_takes]
    sampler = WindowSampler([w.astype(np.float64) for _, w in train_takes])
    skeletons = skeleton_pool([w for _, w in train_takes]) if args.transplant > 0 else None
    val = eval_conditions(load_dataset("val"), seed=99)
    val = {k: val[k] for k in ("clean", "noisy")}
    rf = config.receptive_field
    frames_in = rf + args.chunk - 1
    out_slice = slice(config.target_offset, config.target_offset + args.chunk)
    log(f"config {json.dumps(config.to_dict())} receptive field {rf} params {count_parameters(model)} "
        f"train frames {len(sampler.data)} @120Hz, "
        f"{'no skeleton transplant' if skeletons is None else f'{len(skeletons)} skeletons to transplant'}, args {json.dumps({k: str(v) for k, v in vars(args).items()})}")

    noise = NoiseConfig()
    base = PoseAugment()
    pose = PoseAugment(prob=args.pose_aug, limb_std_rad=base.limb_std_rad * args.pose_aug_scale,
                       trunk_lean_std_rad=base.trunk_lean_std_rad * args.pose_aug_scale,
                       trunk_twist_std_rad=base.trunk_twist_std_rad * args.pose_aug_scale)
    start = time.time()
    running = []
    last_step = args.steps if args.stop_after is None else min(args.steps, step + args.stop_after)
    while step < last_step:
        if args.max_minutes is not None and time.time() - start > 60 * args.max_minutes:
            log(f"time budget of {args.max_minutes} min reached at step {step}")
            break
        rng = np.random.default_rng([args.seed, step])
        torch.manual_seed(args.seed * 1_000_003 + step)
        world = sampler.sample(rng, args.batch, frames_in)
        batch = render(rng, world, out_slice=out_slice, noise=noise, pose=pose, width_spread=args.width_spread,
                       skeletons=skeletons, transplant_prob=args.transplant)
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        pred = model(torch.from_numpy(batch.features))
        target = torch.from_numpy(batch.targets)
        pos = (pred - target).norm(dim=-1).mean()
        vel = (pred.diff(dim=1) - target.diff(dim=1)).norm(dim=-1).mean() if args.chunk > 1 else pos * 0
        loss = pos + args.velocity_weight * vel
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running.append((pos.item(), vel.item()))
        if step % 100 == 0:
            p, v = np.mean(running, axis=0)
            running = []
            log(f"step {step} lr {lr:.2e} loss mpjpe {p * 1000:.1f} mm vel {v * 1000:.2f} mm/frame "
                f"({time.time() - start:.0f} s)")
        if step % args.val_every == 0 or step == args.steps:
            scores = {c: summarise(predict(model, es.features), es.targets) for c, es in val.items()}
            score = (scores["clean"]["MPJPE"] + scores["noisy"]["MPJPE"]) / 2000
            history.append({"step": step, "seconds": time.time() - start, **{c: s for c, s in scores.items()}})
            improved = score < best
            if improved:
                best = score
                save_weights(weights_out, model, {"step": step, "val": scores, "seed": args.seed,
                                                  "command": "python -m lifting.train " + " ".join(sys.argv[1:] if argv is None else argv)})
            log("val " + " | ".join(f"{c}: MPJPE {s['MPJPE']:.1f} PA {s['PA-MPJPE']:.1f} Accel {s['Accel']:.2f}"
                                    for c, s in scores.items()) + (" *best, saved" if improved else ""))
            with atomic_path(ckpt_path, suffix=".pt") as tmp:
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "best": best,
                            "history": history, "config": config.to_dict()}, tmp)
    log(f"done at step {step}; best val {best * 1000:.1f} mm -> {weights_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
