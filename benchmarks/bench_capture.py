"""Per-stage time and frames/s of the monocular capture on a real video.

    python benchmarks/bench_capture.py [VIDEO] [--repeat-lift 30]

Prints: decoding; 2D detection at the video's own size and on frames letterboxed to
640x480; every stage after detection (on the real keypoints, tiled in time so the figure
is stable); and the whole `mocap capture` against the video's duration. One process, the
threads MediaPipe and numpy choose.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _letterbox(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    s = min(width / w, height / h)
    small = cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((height, width, 3), np.uint8)
    y, x = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def _detect_rate(frames: list[np.ndarray], fps: float, repeat: int) -> tuple[float, float]:
    """(frames/s, detection rate) of PoseDetector over ``frames`` played ``repeat`` times."""
    from mocap.detect2d.mediapipe_pose import PoseDetector

    found = 0
    n = 0
    with PoseDetector() as det:
        det.detect(frames[0], 0)  # warm-up: graph start
        start = time.perf_counter()
        for r in range(repeat):
            for i, f in enumerate(frames):
                n += 1
                k, _, _ = det.detect(f, int(1000 + n * 1000 / fps))
                found += bool(np.isfinite(k).all())
        dt = time.perf_counter() - start
    return n / dt, found / n


def _write_clip(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", default=str(REPO / "examples" / "balance_cam01.mp4"))
    ap.add_argument("--repeat-lift", type=int, default=30, help="tile the keypoints this many times for the lift timing")
    ap.add_argument("--realtime-seconds", type=float, default=10.0,
                    help="also capture a 30 fps clip this long made from the video's frames (0: skip)")
    ap.add_argument("--repeat-detect", type=int, default=3, help="play the frames this many times for detection timing")
    args = ap.parse_args(argv)

    import tempfile

    from mocap.io.bvh import write_bvh
    from mocap.formats import Keypoints2D
    from mocap.pipelines.capture import StageTimer, capture, lift_keypoints
    from mocap.io.video import iter_frames, probe_video

    info = probe_video(args.video)
    print(f"video: {args.video}  {info.width}x{info.height}  {info.fps:.2f} fps  {info.frame_count} frames")

    start = time.perf_counter()
    frames = list(iter_frames(args.video))
    dt = time.perf_counter() - start
    print(f"decode                      {len(frames) / dt:8.0f} frames/s  ({1000 * dt / len(frames):.1f} ms/frame)")

    rate, found = _detect_rate(frames, info.fps, args.repeat_detect)
    print(f"detect 2D, native size      {rate:8.0f} frames/s  ({1000 / rate:.1f} ms/frame, person in {100 * found:.0f} %)")
    boxed = [_letterbox(f, 640, 480) for f in frames]
    rate, found = _detect_rate(boxed, info.fps, args.repeat_detect)
    print(f"detect 2D, 640x480          {rate:8.0f} frames/s  ({1000 / rate:.1f} ms/frame, person in {100 * found:.0f} %)")

    from mocap.formats import load_keypoints

    with tempfile.TemporaryDirectory() as tmp:
        clips = [(args.video, info.duration_s)]
        if args.realtime_seconds > 0:
            # a 30 fps clip of the example's own frames played back and forth
            n = int(round(30 * args.realtime_seconds))
            order = [i % (2 * len(frames) - 2) for i in range(n)]
            order = [i if i < len(frames) else 2 * len(frames) - 2 - i for i in order]
            clip = _write_clip(Path(tmp) / "clip30.mp4", [frames[i] for i in order], 30.0)
            clips.append((str(clip), n / 30.0))
        for path, duration in clips:
            out = Path(tmp) / f"out_{Path(path).stem}"
            start = time.perf_counter()
            report = capture(path, out, progress=False)
            total = time.perf_counter() - start
            print(f"whole capture of {Path(path).name} ({report.num_frames} frames at {report.fps:.0f} fps, "
                  f"lifter {report.lifter}): {total:.2f} s for {duration:.2f} s of video = "
                  f"{duration / total:.2f}x real time, detection rate {100 * report.detection_rate:.1f} %")
            for name, s in report.seconds.items():
                print(f"    {name:<22} {s:7.3f} s  {report.num_frames / s:9.0f} frames/s")
        kp = load_keypoints(Path(tmp) / f"out_{Path(args.video).stem}" / "keypoints2d.npz")

    reps = args.repeat_lift
    tiled = Keypoints2D(keypoints=np.tile(kp.keypoints, (reps, 1, 1)), confidence=np.tile(kp.confidence, (reps, 1)),
                        layout=kp.layout, image_size=kp.image_size, fps=kp.fps,
                        world_landmarks=None if kp.world_landmarks is None else np.tile(kp.world_landmarks, (reps, 1, 1)))
    for lifter in ("mediapipe", "network"):
        try:
            lift_keypoints(tiled, lifter=lifter)  # warm-up (imports, weights)
        except Exception as e:  # noqa: BLE001 - report and go on with the other lifter
            print(f"after detection, lifter {lifter}: unavailable ({e})")
            continue
        timer = StageTimer()
        start = time.perf_counter()
        motion = lift_keypoints(tiled, lifter=lifter, timer=timer)
        with tempfile.TemporaryDirectory() as tmp, timer.stage("write BVH"):
            write_bvh(Path(tmp) / "m.bvh", joint_names=motion.joint_names, parents=motion.parents,
                      rest_offsets=motion.rest_offsets, local_quats_wxyz=motion.local_quats_wxyz,
                      root_translation=motion.root_translation, fps=motion.fps)
        dt = time.perf_counter() - start
        n = tiled.num_frames
        print(f"after detection (lift, clean-up, IK, BVH), lifter {lifter}: {n / dt:8.0f} frames/s over {n} frames")
        for name, s in timer.seconds.items():
            print(f"    {name:<22} {n / s:10.0f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
