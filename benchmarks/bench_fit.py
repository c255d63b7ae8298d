"""Issue 21's synthetic targets: held-out CMU takes seen by static virtual cameras, run through ``mocap lift``.

    python benchmarks/bench_fit.py [--clips 16] [--seconds 8] [--seed 0] [--noise-px 2] [--keep DIR]
                                   [--lift-args "--no-fit"] [--synthetic]

Each clip: a window of a CMU *test* take (``lifting/split.json``; the network never saw it),
MOTION21 world joints at 30 fps with the floor moved to y = 0 (the 2nd percentile of the
lowest heel/toe height), seen by one static camera 0.8-2.0 m high, 4-8 m from the subject's
mean position, pitched 0-30 degrees down, any side, focal 900-1800 px, a 1920x1080 or
1080x1920 image (drawn again until the whole clip stays in the image), 2 px Gaussian noise
(:mod:`tests.fit_synthetic`). The keypoints are written as ``keypoints.npz`` and lifted by the
command line, as a user would: ``mocap lift keypoints.npz -o OUT/motion.npz --focal-px F``.

Printed per clip and overall, against issue 21's targets:

- camera pitch error, degrees (the fit writes ``camera: {pitch_deg, roll_deg, height_m}`` into
  ``OUT/motion.quality.json`` or ``OUT/quality.json``; ``n/a`` when there is none). Pitch is
  positive when the camera looks down. Target: within 2 degrees.
- world MPJPE, mm, after ONE similarity per clip that may only turn about +Y (plus a
  translation and a scale): the output's up, floor and trajectory must be right. Target <= 80 mm.
- foot sliding, mm/frame: the output ankle's travel per frame (after that alignment) in the
  frames where the true ankle moves less than ``--still-mm`` (the truth's own travel there is
  shown in brackets). Target < 3 mm/frame.
- under floor, cm: the deepest joint below y = 0 in the output. Target <= 3 cm.
- lean err, degrees: the torso's lean (pelvis -> neck against +Y, each in its own world) of
  the output minus the truth's, in the middle seen frame (no target here; the real-video one
  is 5 degrees).
- PA-MPJPE, mm (per-frame Procrustes with scale) of the output, and of the network's own lift
  (``get_lifter("network").lift(keypoints)``) on the same keypoints. Target: no worse.

``--synthetic`` runs issue 21's failure cases instead, as known motions of
:mod:`tests.fit_synthetic` (a person leaning 20 degrees the whole clip, the same with the first
20 frames unseen, jumps in place, a jump and a step down from a 0.4 m box, walking) through
the same cameras and figures.

Timings printed are of this machine at the time (not figures when it is shared).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FPS = 30.0
ANKLES = ("left_ankle", "right_ankle")
FOOT_POINTS = ("left_heel", "right_heel", "left_foot_index", "right_foot_index")


def cmu_test_clips(seed: int, n: int, seconds: float, action: str | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``n`` random windows of CMU test takes (with ``action``: of every take of that action,
    whichever split it is in): (label, MOTION21 world joints (T, 21, 3), eyes and ears (T, 4,
    3)), metres at 30 fps, +Y up, the floor at y = 0. Clip k depends only on ``seed`` and k
    (fewer clips are a prefix of more)."""
    from lifting.data import CACHE_FPS, KEYPOINT_NAMES, list_takes, load_split, load_take
    from mocap.skeletons import MOTION21

    stride = int(round(CACHE_FPS / FPS))
    by_id = {t.take_id: t for t in list_takes()}
    test = load_split()["test"] if action is None else sorted(t.take_id for t in by_id.values() if t.action == action)
    order = np.random.default_rng(seed).permutation(len(test))
    feet = [KEYPOINT_NAMES.index(n) for n in FOOT_POINTS]
    clips = []
    for k in range(n):
        take = by_id[test[order[k % len(test)]]]
        x = load_take(take).astype(np.float64)[::stride]
        x[..., 1] -= np.percentile(x[:, feet, 1].min(1), 2.0)  # the floor of the whole take at y = 0
        length = min(len(x), int(round(seconds * FPS)))
        start = int(np.random.default_rng([seed, k, 0]).integers(0, len(x) - length + 1))
        x = x[start:start + length]
        clips.append((f"{take.take_id} [{start / FPS:.1f}-{(start + length) / FPS:.1f} s] {take.action}",
                      x[:, :MOTION21.num_joints], x[:, MOTION21.num_joints:]))
    return clips


def synthetic_clips() -> list[tuple[str, np.ndarray, None, int]]:
    """Issue 21's failure cases as known motions (:mod:`tests.fit_synthetic`): (label, MOTION21
    world joints (T, 21, 3), no face, frames without detection at the start)."""
    from tests import fit_synthetic as fs

    return [("lean 20 deg, standing", fs.leaning_stand(20.0, seconds=4.0).joints, None, 0),
            ("lean 20 deg, first 20 frames unseen", fs.leaning_stand(20.0, seconds=4.0).joints, None, 20),
            ("jumping in place 0.25 m", fs.jumping_in_place(jumps=3).joints, None, 0),
            ("jump down from a 0.4 m box", fs.jump_down_from_box(0.4).joints, None, 0),
            ("step down from a 0.4 m box", fs.step_down_from_box(0.4).joints, None, 0),
            ("walking, turned 30 deg", fs.place(fs.walking(seconds=5.0), yaw_deg=30.0).joints, None, 0)]


def sample_camera(rng: np.random.Generator, joints: np.ndarray, face: np.ndarray | None, tries: int = 500,
                  roll_deg: float = 0.0):
    """A random static camera (see the module docstring) that keeps every keypoint of the clip in
    the image with a 2 % margin and at least 1.5 m away; (camera, focal_px). ``roll_deg``: rolled
    by up to this either way (drawn only when given, so that the other cameras stay the same)."""
    from tests.fit_synthetic import mediapipe33_from_motion21, virtual_camera

    points = mediapipe33_from_motion21(joints, face)
    target = tuple(joints[:, 0, [0, 2]].mean(0))
    for _ in range(tries):
        size = (1920, 1080) if rng.random() < 0.5 else (1080, 1920)
        focal = float(rng.uniform(900.0, 1800.0))
        cam = virtual_camera(float(rng.uniform(0.0, 30.0)), float(rng.uniform(0.8, 2.0)), float(rng.uniform(4.0, 8.0)),
                             focal, size=size, yaw_deg=float(rng.uniform(-180.0, 180.0)), target=target,
                             roll_deg=float(rng.uniform(-roll_deg, roll_deg)) if roll_deg else 0.0)
        depth = cam.world_to_camera(points)[..., 2]
        px = cam.project(points)
        margin = 0.02 * np.array(size)
        inside = np.isfinite(px).all(-1) & (px >= margin).all(-1) & (px <= np.array(size) - margin).all(-1)
        if inside.all() and depth.min() > 1.5:
            return cam, focal
    raise RuntimeError("no camera keeps this clip in view; try other --seconds")


def yaw_similarity(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``pred`` (T, J, 3) aligned to ``target`` by one similarity for the whole clip whose rotation
    is about +Y only: ``s R_y(a) p + t`` minimising the squared error over all finite frames."""
    ok = np.isfinite(pred).all(-1) & np.isfinite(target).all(-1)
    p, q = pred[ok], target[ok]
    mp, mq = p.mean(0), q.mean(0)
    p0, q0 = p - mp, q - mq
    # rotation about y: maximise sum of q . R p over the (x, z) plane
    c = np.sum(p0[:, 0] * q0[:, 0] + p0[:, 2] * q0[:, 2])
    s = np.sum(p0[:, 2] * q0[:, 0] - p0[:, 0] * q0[:, 2])
    a = np.arctan2(s, c)
    r = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    rp = p0 @ r.T
    scale = np.sum(rp * q0) / max(np.sum(rp * rp), 1e-12)
    return scale * (pred - mp) @ r.T + mq


def torso_lean_deg(joints: np.ndarray) -> np.ndarray:
    """(T,) angle in degrees between pelvis -> neck of MOTION21 ``joints`` (T, 21, 3) and +Y."""
    from mocap.skeletons import MOTION21

    axis = joints[:, MOTION21.index("neck")] - joints[:, MOTION21.index("pelvis")]
    return np.degrees(np.arccos(np.clip(axis[:, 1] / np.linalg.norm(axis, axis=-1), -1.0, 1.0)))


def foot_sliding(pred: np.ndarray, truth: np.ndarray, still_m: float) -> tuple[float, float, int]:
    """Mean per-frame travel (metres) of the predicted ankles where the true ankle travels less
    than ``still_m``, the truth's own mean travel there, and how many (frame, ankle) pairs."""
    from mocap.skeletons import MOTION21

    idx = [MOTION21.index(n) for n in ANKLES]
    step_true = np.linalg.norm(np.diff(truth[:, idx], axis=0), axis=-1)
    step_pred = np.linalg.norm(np.diff(pred[:, idx], axis=0), axis=-1)
    still = (step_true < still_m) & np.isfinite(step_pred)
    if not still.any():
        return float("nan"), float("nan"), 0
    return float(step_pred[still].mean()), float(step_true[still].mean()), int(still.sum())


def mocap_command() -> list[str]:
    """The ``mocap`` console script beside this Python, else ``python -m mocap``."""
    script = Path(sys.executable).parent / "mocap"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mocap"]


def read_quality(out_dir: Path) -> dict:
    """``OUT/motion.quality.json`` or ``OUT/quality.json`` as a dict ({} when neither exists)."""
    for name in ("motion.quality.json", "quality.json"):
        path = out_dir / name
        if path.exists():
            return json.loads(path.read_text())
    return {}


def read_fit_camera(out_dir: Path) -> dict | None:
    """The solved camera the fit wrote (quality.json's ``camera_pitch_deg``, ``camera_roll_deg``,
    ``camera_height_m``: docs/formats.md) as ``{pitch_deg, roll_deg, height_m}``, if any."""
    quality = read_quality(out_dir)
    if not isinstance(quality.get("camera_pitch_deg"), (int, float)):
        return None
    return {"pitch_deg": quality["camera_pitch_deg"], "roll_deg": quality.get("camera_roll_deg"),
            "height_m": quality.get("camera_height_m")}


def read_fit_height(out_dir: Path) -> float | None:
    """The person's height quality.json states (``person_height_m``), if any."""
    value = read_quality(out_dir).get("person_height_m")
    return float(value) if isinstance(value, (int, float)) else None


def run_lift(keypoints_path: Path, out_dir: Path, focal_px: float | None, *extra: str):
    """``mocap lift KEYPOINTS -o OUT_DIR/motion.npz [--focal-px F] [EXTRA...]`` in a subprocess,
    with this repository first on PYTHONPATH; (Motion or None, seconds, error text)."""
    from mocap.formats import load_motion

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    cmd = mocap_command() + ["lift", str(keypoints_path), "-o", str(out_dir / "motion.npz"), *extra]
    if focal_px is not None:
        cmd += ["--focal-px", f"{focal_px:.1f}"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        return None, seconds, (done.stderr or done.stdout).strip().splitlines()[-1:]
    return load_motion(out_dir / "motion.npz"), seconds, ""


def joints_on_input_frames(motion, num_frames: int) -> np.ndarray:
    """(num_frames, 21, 3) MOTION21 joints of ``motion`` on the frames of its input (its
    ``start_frame`` and ``valid`` applied), NaN where it has none."""
    from mocap.skeletons import MOTION21

    order = [motion.joint_names.index(n) for n in MOTION21.joint_names]
    frames = motion.start_frame + np.arange(motion.num_frames)
    keep = motion.valid_frames & (frames < num_frames) & np.isfinite(motion.joints).all((1, 2))
    out = np.full((num_frames, MOTION21.num_joints, 3), np.nan)
    out[frames[keep]] = motion.joints[keep][:, order]
    return out


def evaluate_clip(motion, truth: np.ndarray, network_cam: np.ndarray, camera: dict | None, true_pitch: float,
                  still_m: float) -> dict[str, float]:
    """The figures of one clip (see the module docstring); ``truth`` (T, 21, 3) world metres."""
    from lifting.evaluate import pa_mpjpe

    out = joints_on_input_frames(motion, len(truth))
    seen = np.isfinite(out).all((1, 2))
    aligned = yaw_similarity(out, truth)
    world = 1000 * float(np.nanmean(np.linalg.norm(aligned - truth, axis=-1)[seen]))
    slide, slide_true, n_still = foot_sliding(aligned, truth, still_m)
    net_ok = np.isfinite(network_cam).all((1, 2))
    mid = np.flatnonzero(seen)[int(seen.sum()) // 2]
    return {
        "lean_err": float(torso_lean_deg(out[mid:mid + 1])[0] - torso_lean_deg(truth[mid:mid + 1])[0]),
        "pitch_err": float("nan") if camera is None else float(camera["pitch_deg"]) - true_pitch,
        "world_mm": world,
        "slide_mm": 1000 * slide, "slide_true_mm": 1000 * slide_true, "n_still": n_still,
        "under_cm": 100 * max(0.0, -float(np.nanmin(out[seen][..., 1]))),
        "pa_mm": 1000 * float(pa_mpjpe(out[seen], truth[seen]).mean()),
        "net_pa_mm": 1000 * float(pa_mpjpe(network_cam[net_ok], truth[net_ok]).mean()),
        "seen": float(seen.mean()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=16, help="clips to run (default 16: 1.5-3 minutes on 2 cores)")
    ap.add_argument("--seconds", type=float, default=8.0, help="longest window of a take, seconds (default 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", action="store_true",
                    help="instead of CMU takes, issue 21's failure cases as known motions (tests/fit_synthetic.py): a "
                         "standing lean (also with the first 20 frames unseen), jumps, jumping and stepping down from a "
                         "box, walking")
    ap.add_argument("--sitting", action="store_true",
                    help="instead of test takes, CMU's sit/stand takes (a person seated on a stool or a chair who "
                         "stands up and sits down; all are in the network's training split)")
    ap.add_argument("--noise-px", type=float, default=2.0, help="2D noise, pixels (default 2)")
    ap.add_argument("--roll-deg", type=float, default=0.0,
                    help="cameras rolled by up to this either way (a phone held askew; default 0: level)")
    ap.add_argument("--still-mm", type=float, default=2.0,
                    help="the true ankle counts as still below this travel per frame, mm (default 2)")
    ap.add_argument("--keep", default=None, help="write each clip's keypoints.npz and mocap lift output here")
    ap.add_argument("--lift-args", default="", help="more flags for mocap lift, e.g. '--no-fit' for the figures without the fit")
    args = ap.parse_args(argv)

    from lifting.data import ARCHIVE_NAME, cache_dir, shared_data_dir

    archive = shared_data_dir() / "mocap" / ARCHIVE_NAME
    if not args.synthetic and not archive.exists() and not (cache_dir() / ".unpacked").exists():
        print(f"bench_fit: needs the CMU mocap at {archive} (or MOCAP_SHARED_DATA); not found, nothing measured")
        return 1
    from mocap.formats import save_keypoints
    from mocap.lift.lifters import get_lifter
    from tests.fit_synthetic import camera_angles, project_clip

    if args.synthetic:
        clips, what = synthetic_clips(), "synthetic clips"
    elif args.sitting:
        clips = [c + (0,) for c in cmu_test_clips(args.seed, args.clips, args.seconds, action="sit/stand")]
        what = "clips of CMU sit/stand takes (training split)"
    else:
        clips, what = [c + (0,) for c in cmu_test_clips(args.seed, args.clips, args.seconds)], "clips of CMU test takes"
    network = get_lifter("network")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_fit_"))
    print(f"{len(clips)} {what}, {args.noise_px:g} px noise, mocap lift {args.lift_args or '(defaults)'}, "
          f"outputs in {work}\n")
    head = (f"{'clip':<44} {'camera':<28} {'pitch err':>9} {'world mm':>9} {'slide mm/f':>15} {'under cm':>8} "
            f"{'lean err':>8} {'PA mm':>6} {'net PA':>6} {'lift s':>6}")
    print(head)
    rows = []
    for k, (label, joints, face, unseen) in enumerate(clips):
        rng = np.random.default_rng([args.seed, k, 1])
        cam, focal = sample_camera(rng, joints, face, roll_deg=args.roll_deg)
        pitch, roll, height = camera_angles(cam)
        distance = float(np.hypot(*(cam.position - joints[:, 0].mean(0))[[0, 2]]))
        kp = project_clip(joints, cam, noise_px=args.noise_px, rng=rng, fps=FPS, face=face, blank_first=unseen)
        out_dir = work / f"clip{k:02d}"
        out_dir.mkdir(parents=True, exist_ok=True)
        save_keypoints(out_dir / "keypoints.npz", kp)
        motion, seconds, error = run_lift(out_dir / "keypoints.npz", out_dir, focal, *shlex.split(args.lift_args))
        camera_text = f"{pitch:4.1f}deg {height:3.1f}m {distance:3.1f}m f{focal:.0f}" + (
            f" r{roll:+.0f}" if args.roll_deg else "")
        if motion is None:
            print(f"{label[:44]:<44} {camera_text:<28} mocap lift failed: {error}")
            continue
        fit_camera = read_fit_camera(out_dir)
        r = evaluate_clip(motion, joints, network.lift(kp).joints_cam, fit_camera, pitch, args.still_mm / 1000)
        rows.append(r)
        pitch_text = "n/a" if np.isnan(r["pitch_err"]) else f"{r['pitch_err']:+.1f}"
        slide_text = f"{r['slide_mm']:.1f} ({r['slide_true_mm']:.1f})" if r["n_still"] else "no still"
        print(f"{label[:44]:<44} {camera_text:<28} {pitch_text:>9} {r['world_mm']:9.0f} {slide_text:>15} "
              f"{r['under_cm']:8.1f} {r['lean_err']:+8.1f} {r['pa_mm']:6.1f} {r['net_pa_mm']:6.1f} {seconds:6.1f}")
    if not rows:
        print("no clip was lifted")
        return 1

    def mean(key):
        v = np.array([r[key] for r in rows], dtype=np.float64)
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    pitch_errs = np.abs([r["pitch_err"] for r in rows])
    still = np.array([r["n_still"] for r in rows])
    slide = float(np.sum([r["slide_mm"] * n for r, n in zip(rows, still) if n]) / max(still.sum(), 1))
    slide_true = float(np.sum([r["slide_true_mm"] * n for r, n in zip(rows, still) if n]) / max(still.sum(), 1))
    under = max(r["under_cm"] for r in rows)
    lean = np.abs([r["lean_err"] for r in rows])
    print(f"\noverall ({len(rows)} clips):")
    if np.isfinite(pitch_errs).any():
        worst = float(np.nanmax(pitch_errs))
        print(f"  camera pitch error: mean {np.nanmean(pitch_errs):.2f}, max {worst:.2f} deg "
              f"(target within 2 deg: {'met' if worst <= 2 else 'NOT met'})")
    else:
        print("  camera pitch error: n/a (no solved camera in motion.quality.json / quality.json)")
    print(f"  world MPJPE after one yaw-only similarity per clip: mean {mean('world_mm'):.0f} mm, worst clip "
          f"{max(r['world_mm'] for r in rows):.0f} mm (target <= 80 mm: {'met' if mean('world_mm') <= 80 else 'NOT met'})")
    print(f"  foot sliding while the true ankle is still: {slide:.1f} mm/frame over {int(still.sum())} ankle-frames "
          f"(the truth's own {slide_true:.1f}) (target < 3: {'met' if slide < 3 else 'NOT met'})")
    print(f"  torso lean in the middle frame off by: mean {lean.mean():.1f}, max {lean.max():.1f} deg")
    print(f"  deepest joint under the floor: {under:.1f} cm (target <= 3 cm: {'met' if under <= 3 else 'NOT met'})")
    print(f"  PA-MPJPE: output {mean('pa_mm'):.1f} mm, the network's own {mean('net_pa_mm'):.1f} mm "
          f"(target no worse: {'met' if mean('pa_mm') <= mean('net_pa_mm') else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
