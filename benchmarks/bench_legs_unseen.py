"""Captures whose legs the video does not show (out of the picture, or hidden behind a desk).

    python benchmarks/bench_legs_unseen.py [--clips 12] [--seed 0] [--real] [--keep DIR]

Synthetic (the default): windows of held-out CMU test takes (as ``bench_fit.py``), each seen by a
static camera that frames the person from the hips up: 0.6-2.2 m high, 1.2-4 m away, pitched
-15 (up) to 35 degrees (down), focal 900-1800 px, drawn again until the head and torso stay in
the picture in 97 % of the frames and the ankles in under 10 %. Points outside the picture are
missing (confidence 0), 2 px noise; ``mocap lift keypoints.npz --focal-px F`` as a user would.
No room is drawn, so gravity comes from the body alone. Printed per clip: the solved camera's
pitch error (degrees), the world error of the upper body (hips, spine, neck, head, arms) after
one yaw-only similarity per clip (mm), the torso lean's error (median over frames, degrees),
the larger of the two feet's shares of frames seen and the reprojection error quality.json gives (% of the
person's 2D height, now measured from the motion's own height where the feet are never seen).

``--real``: the example video (``examples/balance_cam01.mp4``, a Pose2Sim camera whose
calibration has it 1.86 m high, pitched 22.5 degrees down, rolled 13.4) with everything below
row 860 of 1920 painted grey (the man's legs from mid-thigh down hidden, as behind a desk),
and the same video untouched, each through ``mocap capture``: the solved camera and the
summary's quality line. About a minute on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_fit  # noqa: E402  (its CMU clips, mocap lift runner and measures)

UPPER_BODY = ("pelvis", "left_hip", "right_hip", "spine", "neck", "head", "nose", "left_shoulder", "left_elbow",
              "left_wrist", "right_shoulder", "right_elbow", "right_wrist")
#: examples/balance_cam01.mp4's camera in the Qualisys calibration (refined rig): pitch, roll, height
CALIBRATED = (22.5, 13.4, 1.86)
HIDE_FROM_ROW = 860


def framing_camera(rng: np.random.Generator, joints: np.ndarray, face: np.ndarray | None, tries: int = 20000):
    """A static camera that shows the clip's person from the hips up; (camera, focal_px) or (None, None)."""
    from mocap.skeletons import MEDIAPIPE33
    from tests.fit_synthetic import mediapipe33_from_motion21, virtual_camera

    points = mediapipe33_from_motion21(joints, face)
    upper = [MEDIAPIPE33.index(n) for n in MEDIAPIPE33.joint_names[:11]] + [
        MEDIAPIPE33.index(n) for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder")]
    ankles = [MEDIAPIPE33.index(n) for n in ("left_ankle", "right_ankle")]
    target = tuple(joints[:, 0, [0, 2]].mean(0))
    for _ in range(tries):
        size = (1920, 1080) if rng.random() < 0.5 else (1080, 1920)
        focal = float(rng.uniform(900.0, 1800.0))
        cam = virtual_camera(float(rng.uniform(-15.0, 35.0)), float(rng.uniform(0.6, 2.2)), float(rng.uniform(1.2, 4.0)),
                             focal, size=size, yaw_deg=float(rng.uniform(-180.0, 180.0)), target=target)
        px = cam.project(points)
        inside = np.isfinite(px).all(-1) & (px >= 0).all(-1) & (px <= np.array(size)).all(-1)
        if (inside[:, upper].mean() > 0.97 and inside[:, ankles].mean() < 0.1
                and cam.world_to_camera(points)[..., 2].min() > 0.8):
            return cam, focal
    return None, None


def synthetic(args) -> int:
    from mocap.formats import save_keypoints
    from mocap.skeletons import MOTION21
    from tests.fit_synthetic import camera_angles, project_clip

    clips = bench_fit.cmu_test_clips(args.seed, args.clips, 8.0)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_legs_unseen_"))
    upper = [MOTION21.index(n) for n in UPPER_BODY]
    print(f"{len(clips)} clips of CMU test takes framed from the hips up, 2 px noise, outputs in {work}\n")
    print(f"{'clip':<40} {'camera':<24} {'pitch err':>9} {'upper mm':>8} {'lean err':>8} {'a foot seen':>11} {'repro %':>7}")
    rows = []
    for k, (label, joints, face) in enumerate(clips):
        rng = np.random.default_rng([args.seed, k, 7])
        cam, focal = framing_camera(rng, joints, face)
        if cam is None:
            print(f"{label[:40]:<40} no camera frames it from the hips up")
            continue
        pitch, _, height = camera_angles(cam)
        kp = project_clip(joints, cam, noise_px=2.0, rng=rng, fps=bench_fit.FPS, face=face)
        out_dir = work / f"clip{k:02d}"
        out_dir.mkdir(parents=True, exist_ok=True)
        save_keypoints(out_dir / "keypoints.npz", kp)
        motion, _, error = bench_fit.run_lift(out_dir / "keypoints.npz", out_dir, focal)
        if motion is None:
            print(f"{label[:40]:<40} mocap lift failed: {error}")
            continue
        q = bench_fit.read_quality(out_dir)
        out = bench_fit.joints_on_input_frames(motion, len(joints))
        aligned = bench_fit.yaw_similarity(out[:, upper], joints[:, upper])
        r = {"pitch_err": float(q["camera_pitch_deg"]) - pitch,
             "upper_mm": 1000 * float(np.nanmean(np.linalg.norm(aligned - joints[:, upper], axis=-1))),
             "lean_err": float(np.nanmedian(np.abs(bench_fit.torso_lean_deg(out) - bench_fit.torso_lean_deg(joints)))),
             "feet": max((q.get("parts_seen_pct") or {}).get(f"{side} foot", float("nan")) for side in ("left", "right")),
             "repro": q.get("reprojection_median_pct")}
        rows.append(r)
        repro = "n/a" if r["repro"] is None else f"{r['repro']:.1f}"
        print(f"{label[:40]:<40} {f'{pitch:5.1f}deg {height:3.1f}m f{focal:.0f}':<24} {r['pitch_err']:+9.1f} "
              f"{r['upper_mm']:8.0f} {r['lean_err']:8.1f} {r['feet']:10.0f}% {repro:>7}", flush=True)
    if not rows:
        return 1
    pitch = np.abs([r["pitch_err"] for r in rows])
    repro = [r["repro"] for r in rows if r["repro"] is not None]
    print(f"\noverall ({len(rows)} clips): camera pitch off by mean {pitch.mean():.1f}, worst {pitch.max():.1f} deg; "
          f"upper body {np.mean([r['upper_mm'] for r in rows]):.0f} mm; torso lean off by "
          f"{np.mean([r['lean_err'] for r in rows]):.1f} deg (median over frames, mean over clips); "
          f"reprojection measured on {len(repro)} of {len(rows)} clips (median {np.median(repro) if repro else float('nan'):.1f} %)")
    return 0


def hide_legs(video: Path, out: Path) -> None:
    """``video`` with every row from :data:`HIDE_FROM_ROW` down painted grey, written to ``out``."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), cap.get(cv2.CAP_PROP_FPS), size)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frame[HIDE_FROM_ROW:] = 40
        writer.write(frame)
    writer.release()
    cap.release()


def real(args) -> int:
    video = REPO / "examples" / "balance_cam01.mp4"
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_legs_unseen_"))
    hidden = work / "balance_cam01_legs_hidden.mp4"
    hide_legs(video, hidden)
    print(f"the calibration: pitch {CALIBRATED[0]:.1f} deg, roll {CALIBRATED[1]:.1f} deg, {CALIBRATED[2]:.2f} m high; "
          f"outputs in {work}")
    for name, path in (("whole picture", video), (f"rows {HIDE_FROM_ROW}- grey", hidden)):
        out = work / path.stem
        done = subprocess.run(bench_fit.mocap_command() + ["capture", str(path), "-o", str(out), "--no-overlay"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name}: mocap capture failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
            return 1
        q = json.loads((out / "quality.json").read_text())
        line = next((s for s in done.stdout.splitlines() if s.startswith("3D ")), "")
        print(f"{name:<16} pitch {q['camera_pitch_deg']:5.1f} deg, roll {q['camera_roll_deg']:5.1f} deg, "
              f"{q['camera_height_m']:.2f} m high (gravity from {q['gravity_from']}), person {q['person_height_m']:.2f} m; "
              f"feet seen in {q['parts_seen_pct']['left foot']:.0f} / {q['parts_seen_pct']['right foot']:.0f} % of "
              f"frames (left / right)\n    {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", action="store_true", help="the example video with its lower part hidden, not CMU")
    ap.add_argument("--keep", default=None, help="write the inputs and outputs here")
    args = ap.parse_args(argv)
    return real(args) if args.real else synthetic(args)


if __name__ == "__main__":
    sys.exit(main())
