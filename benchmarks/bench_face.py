"""Face: the PyTorch face network against MediaPipe's interpreter, the controls on synthetic faces, speed, and a real-video plot.

    python benchmarks/bench_face.py [VIDEO] [--device cpu|cuda] [--repeat 2] [--no-mediapipe] [--plot docs/face.png]
    python benchmarks/bench_face.py --repeat 0 --no-mediapipe      # only the plot

Prints, on VIDEO (default examples/balance_cam01.mp4, 1080x1920, 100 frames):

- the shipped PyTorch face network (with attention) vs MediaPipe's own TFLite interpreter
  (:mod:`mocap.eval.face_tflite`) on the face crops of every 8th frame of VIDEO, on random
  images and, when ../shared/data is there, on the faces in its COCO photos (where MediaPipe's
  whole face subgraph also checks our merge into 478 points): landmark difference in % of the
  face's size;
- the controls on synthetic faces with known expressions, random head rotations and landmark
  noise of 1 % of the eye distance (tests/face_synthetic.py): correlation with the truth per
  control, head angle error;
- frames per second of the 2D stage of ``mocap capture`` on VIDEO, decoding included: the
  body alone (:func:`mocap.detect2d.people.detect_person_video`), the face stage
  (:func:`mocap.detect2d.face.detect_face_video`), the hand stage, and their sums; the face
  network's time per crop; the best of ``--repeat`` runs;
- the controls over VIDEO (face presence, jawOpen, the blinks) plotted into ``--plot``;
- the machine's load (``uptime``) before and after, and the CPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_hands import _cpu, _uptime  # noqa: E402


def network_check(video: str) -> None:
    from mocap.detect2d.estimators.blazepose_torch import BlazePoseTorch
    from mocap.eval.face_tflite import FaceCrops, face_crops, photo_face_crops, torch_vs_tflite
    from mocap.io.video import iter_frames

    frames = [f for i, f in enumerate(iter_frames(video)) if i % 8 == 0]
    body = BlazePoseTorch()(frames)
    real = face_crops(frames, body.keypoints[:, 0], body.confidence[:, 0], refine=False)
    noise = np.random.default_rng(0).random((4, 192, 192, 3)).astype(np.float32)
    sets = {f"{Path(video).name} (every 8th frame)": real,
            "random images": FaceCrops(noise, np.tile([[96.0, 96.0, 192.0, 192.0, 0.0]], (4, 1)), np.zeros(4, int))}
    coco = REPO.parent / "shared" / "data" / "images" / "coco_mini"
    if coco.is_dir():
        import cv2

        images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(coco.glob("*.jpg"))]
        sets[f"faces in {len(images)} COCO photos"] = photo_face_crops(images)
    for name, crops in sets.items():
        r = torch_vs_tflite(crops)
        refined = (f"; MediaPipe finds a face in {r['faces']}, our 478 points within {r['refined_max_px']:.1e} px of "
                   f"its FaceLandmarkCpu" if r["faces"] else "; MediaPipe finds no face in them")
        print(f"torch vs MediaPipe's interpreter, {name}: {r['crops']} crops, landmarks max {r['max_pct']:.5f} %, "
              f"median {r['median_pct']:.6f} % of the face's size (median face {r['face_px']:.0f} px; max "
              f"{r['max_px']:.1e} px; raw outputs within {r['max_raw']:.1e} crop px; presence within "
              f"{r['presence_max_diff']:.1e}){refined}")


def synthetic_check(seeds=(0, 1, 2)) -> None:
    from mocap.face.controls import CONTROLS, face_controls
    from tests.face_synthetic import blinks, express, neutral_face, observe, smooth_random

    t, fps = 300, 30.0
    r = {n: [] for n in CONTROLS}
    err = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        truth = {"jawOpen": smooth_random(t, rng), "eyeBlinkLeft": blinks(t, rng), "eyeBlinkRight": blinks(t, rng),
                 "browInnerUp": smooth_random(t, rng), "browOuterUpLeft": smooth_random(t, rng),
                 "browOuterUpRight": smooth_random(t, rng), "mouthSmileLeft": smooth_random(t, rng),
                 "mouthSmileRight": smooth_random(t, rng)}
        ypr = np.stack([rng.uniform(-0.7, 0.7, t), rng.uniform(-0.4, 0.4, t), rng.uniform(-0.35, 0.35, t)], -1)
        points = observe(express(neutral_face(seed), truth), ypr, rng)
        out = face_controls(points, fps=fps)
        for n, v in truth.items():
            r[n].append(np.corrcoef(out.values[:, CONTROLS.index(n)], v)[0, 1])
        err.append(np.degrees(np.abs(out.head_ypr - ypr)).max())
    print(f"synthetic faces ({len(seeds)} clips of {t} frames, head turned at random up to 40/23/20 deg yaw/pitch/"
          f"roll, noise 1 % of the eye distance, 8 Hz smoothing): correlation with the truth, worst clip:")
    print("  " + ", ".join(f"{n} {min(v):.3f}" for n, v in r.items() if v))
    print(f"  head angles: max error {max(err):.2f} deg")


def speed(video: str, device: str, repeat: int):
    from mocap.detect2d.estimators.face_torch import FaceLandmarksTorch
    from mocap.detect2d.estimators.hands_torch import HandLandmarksTorch
    from mocap.detect2d.face import detect_face_video
    from mocap.detect2d.hands import detect_hands_video
    from mocap.detect2d.people import detect_person_video
    from mocap.io.video import probe_video

    n = probe_video(video).frame_count
    face_est, hands_est = FaceLandmarksTorch(device), HandLandmarksTorch(device)
    best = {"body": float("inf"), "face": float("inf"), "hands": float("inf")}
    face = keypoints = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        keypoints, _, _ = detect_person_video(video, detector="blazepose-torch", device=device, progress=False)
        t1 = time.perf_counter()
        face = detect_face_video(video, keypoints, estimator=face_est, progress=False)
        t2 = time.perf_counter()
        detect_hands_video(video, keypoints, estimator=hands_est, progress=False)
        t3 = time.perf_counter()
        for k, s in zip(best, (t1 - t0, t2 - t1, t3 - t2)):
            best[k] = min(best[k], s)
    import torch

    x = torch.rand(16, 192, 192, 3)
    face_est.run_crops(x[:8])
    t0 = time.perf_counter()
    face_est.run_crops(x)
    per_crop = (time.perf_counter() - t0) / len(x)
    found = int(np.isfinite(face.keypoints).all((1, 2)).sum())
    print(f"face network: {1000 * per_crop:.1f} ms a crop (batch {face_est.batch_size}, {device})")
    print(f"body alone (blazepose-torch, decode + detect + track): {n / best['body']:.1f} frames/s")
    print(f"face stage alone (decode + face): {n / best['face']:.1f} frames/s; face found in {found} of {n} frames"
          + (" (each frame without a face costs two crops: from the body, then from its landmarks; a tracked face "
             "one)" if found < n else ""))
    print(f"hand stage alone: {n / best['hands']:.1f} frames/s")
    both = n / (best["body"] + best["face"])
    all3 = n / (best["body"] + best["face"] + best["hands"])
    print(f"body + face: {both:.1f} frames/s; body + hands + face: {all3:.1f} frames/s (target 12 frames/s on "
          f"2 cores: {'met' if all3 >= 12 else 'missed'})")
    return keypoints, face


def plot(video: str, keypoints, face, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mocap.face.controls import CONTROLS, face_data
    from tests.face_synthetic import blinks, express, neutral_face, observe, smooth_random

    d = face_data(face.keypoints, face.z, face.score, fps=keypoints.fps)
    t_video = np.arange(d.num_frames) / d.fps
    rng = np.random.default_rng(0)
    t, fps = 240, 30.0
    truth = {"jawOpen": smooth_random(t, rng), "eyeBlinkLeft": blinks(t, rng), "eyeBlinkRight": blinks(t, rng)}
    ypr = np.stack([rng.uniform(-0.7, 0.7, t), rng.uniform(-0.4, 0.4, t), rng.uniform(-0.35, 0.35, t)], -1)
    pts = observe(express(neutral_face(0), truth), ypr, rng)
    synth = face_data(pts[..., :2], pts[..., 2], np.ones(t), fps=fps)
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), constrained_layout=True)
    ax = axes[0]
    for k, (name, color) in enumerate((("jawOpen", "C0"), ("eyeBlinkLeft", "C1"), ("eyeBlinkRight", "C2"))):
        ax.plot(np.arange(t) / fps, truth[name] + 1.2 * k, color=color, lw=3, alpha=0.35)
        ax.plot(np.arange(t) / fps, synth.controls[:, CONTROLS.index(name)] + 1.2 * k, color=color, lw=1.2,
                label=name)
    ax.set_title("synthetic face, head turned at random every frame, 1 % landmark noise: truth (thick) vs controls")
    ax.set_yticks([]), ax.set_xlabel("s"), ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    ax.plot(t_video, d.score, "k", lw=1, label="face presence")
    for name, color in (("jawOpen", "C0"), ("eyeBlinkLeft", "C1"), ("eyeBlinkRight", "C2")):
        ax.plot(t_video, d.controls[:, CONTROLS.index(name)], ".-", color=color, label=name)
    ax.set_ylim(-0.05, 1.05), ax.set_xlabel("s"), ax.legend(loc="upper left", fontsize=8)
    found = int(np.isfinite(d.controls).all(-1).sum())
    ax.set_title(f"{Path(video).name}: the face is pixelated in this clip; presence >= 0.5 in {found} of "
                 f"{d.num_frames} frames (on the mosaic): no blink or mouth to see here", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    print(f"plot: {path} (face found in {int(np.isfinite(d.controls).all(-1).sum())} of {d.num_frames} frames of "
          f"{Path(video).name})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("video", nargs="?", default=str(REPO / "examples" / "balance_cam01.mp4"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeat", type=int, default=2, help="timed runs (0: none, only the detection for the plot)")
    p.add_argument("--no-mediapipe", action="store_true", help="skip the comparison with MediaPipe's interpreter")
    p.add_argument("--plot", default=str(REPO / "docs" / "face.png"), help="where to write the plot ('' for none)")
    args = p.parse_args()

    from mocap.io.video import probe_video

    info = probe_video(args.video)
    print(f"{Path(args.video).name}: {info.size[0]}x{info.size[1]}, {info.frame_count} frames at {info.fps:g} fps")
    print(f"machine: {_cpu()}")
    print(f"load at start: {_uptime()}")
    if not args.no_mediapipe:
        network_check(args.video)
    synthetic_check()
    if args.repeat > 0:
        keypoints, face = speed(args.video, args.device, args.repeat)
    else:
        from mocap.detect2d.face import detect_face_video
        from mocap.detect2d.people import detect_person_video

        keypoints, _, _ = detect_person_video(args.video, detector="blazepose-torch", device=args.device,
                                              progress=False)
        face = detect_face_video(args.video, keypoints, device=args.device, progress=False)
    if args.plot:
        plot(args.video, keypoints, face, Path(args.plot))
    print(f"load at end: {_uptime()}")


if __name__ == "__main__":
    main()
