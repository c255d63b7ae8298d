"""A camera that turns during the clip (mocap.detect2d.background): the capture against the same
video held still, and what following the background costs.

    python benchmarks/bench_camera_motion.py [--keep DIR]

The example video (``examples/balance_cam01.mp4``, a still camera, 100 frames at 60 fps) is
cut to a window 800 px wide: held still (pixels 140-940), and swung right, left and back
(140 px each way over the clip: to a close approximation a camera turned by 4-5 degrees). Both go
through ``mocap capture``, and the swung one again with the background's motion ignored (as
before it was followed). Printed: the solved camera of each, the shift the background shows,
and how far each root path (from its first frame) lies from the still window's. Then the time
the background costs in the 2D stage on 300 frames of 1080x1920 (the example played forwards,
backwards and forwards at 30 fps): run it on an idle machine for that figure.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VIDEO = REPO / "examples" / "balance_cam01.mp4"
WIDTH, STILL_X = 800, 140


def write_windows(folder: Path) -> dict[str, Path]:
    """still.mp4 and swung.mp4 in ``folder`` (see the module docstring)."""
    import cv2

    reader = cv2.VideoCapture(str(VIDEO))
    t, fps = int(reader.get(cv2.CAP_PROP_FRAME_COUNT)), reader.get(cv2.CAP_PROP_FPS)
    xs = np.interp(np.arange(t), [0, t / 3, 0.8 * t, t - 1], [STILL_X, 2 * STILL_X, 0, STILL_X]).round().astype(int)
    paths = {name: folder / f"{name}.mp4" for name in ("still", "swung")}
    writers = {name: cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), fps, (WIDTH, 1920))
               for name, p in paths.items()}
    for i in range(t):
        ok, frame = reader.read()
        if not ok:
            break
        writers["still"].write(frame[:, STILL_X:STILL_X + WIDTH])
        writers["swung"].write(frame[:, xs[i]:xs[i] + WIDTH])
    for w in writers.values():
        w.release()
    return paths


def captures(work: Path) -> None:
    import mocap.detect2d.background as background
    from mocap.export.options import ExportOptions
    from mocap.formats import load_motion
    from mocap.pipelines.capture import capture
    from mocap.pipelines.options import CaptureOptions

    paths = write_windows(work)
    options = CaptureOptions(export=ExportOptions(overlay=False, preview=False))
    followed = background.MOVED_SHARE
    roots = {}
    for name, video, share in (("still window", paths["still"], followed), ("swung, followed", paths["swung"], followed),
                               ("swung, ignored", paths["swung"], float("inf"))):
        background.MOVED_SHARE = share  # inf: the background's motion is measured but never undone
        report = capture(video, work / name.replace(" ", "_").replace(",", ""), options, progress=False)
        q = report.quality
        root = load_motion(report.outputs["motion"]).root_translation[:, [0, 2]]
        roots[name] = root - root[0]
        print(f"{name:<16} camera pitch {q['camera_pitch_deg']:5.1f} deg, roll {q['camera_roll_deg']:5.1f} deg, "
              f"{q['camera_height_m']:.2f} m high; background shift up to {q['camera_motion']['max_shift_px']:.0f} px")
    background.MOVED_SHARE = followed
    for name in ("swung, followed", "swung, ignored"):
        d = np.linalg.norm(roots[name] - roots["still window"], axis=1)
        print(f"{name}: root path off the still window's by {100 * d.mean():.1f} cm on average, {100 * d.max():.1f} cm at most")


def cost() -> None:
    from mocap.detect2d.background import BackgroundFlow, camera_motion
    from mocap.io.video import iter_frames

    frames = list(iter_frames(VIDEO, rgb=True))
    frames = frames + frames[::-1] + frames
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for _ in range(3):
        flow = BackgroundFlow(0, len(frames), 30.0)
        t0 = time.perf_counter()
        for i, f in enumerate(frames):
            flow(i, f)
        t1 = time.perf_counter()
        camera_motion(flow.pairs, len(frames), (frames[0].shape[1], frames[0].shape[0]))
        t2 = time.perf_counter()
        print(f"{len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} at 30 fps: the background followed in "
              f"{t1 - t0:.2f} s ({len(flow.pairs)} pairs), the homographies in {t2 - t1:.3f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", default=None, help="write the videos and captures here")
    args = ap.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_camera_motion_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"outputs in {work}")
    captures(work)
    cost()
    return 0


if __name__ == "__main__":
    sys.exit(main())
