"""The example video made as other people's footage is: turned, small, dark, smeared, in a wider
frame, at half the frame rate; each through ``mocap capture``, against the untouched video.

    python benchmarks/bench_footage.py [--only NAME ...] [--keep DIR]

``examples/balance_cam01.mp4`` is a Pose2Sim camera whose Qualisys calibration (refined rig) has
it 1.86 m high, pitched 22.5 degrees down, rolled 13.4, focal length 1681 px. Each variant is
written with OpenCV (mp4v) from the decoded frames:

- ``turned +20`` / ``turned -20``: every frame turned 20 degrees about its centre (a phone held
  askew); the camera's roll should move by the turn, nothing else.
- ``third size``: 360 x 640 (a small upload); the focal length is a third.
- ``half rate``: every other frame (30 fps).
- ``dark``: gamma 2.2, a third of the light, noise of 6 levels (an evening room).
- ``smeared``: 15 px of sideways motion blur on every frame.
- ``pillarbox``: the portrait picture in the middle of a black 1920 x 1080 frame (a phone clip
  shown in a landscape video); the focal length is 1080/1920 of the example's.
- ``windowbox``: the picture at 0.4 of its size in the middle of a grey frame of the full size.

Printed per variant: the solved camera (pitch, roll less the turn, height), the focal length in
the example's pixels and where it came from, where gravity came from, the person's height, and
whether the summary says the 3D matches the video. About 2 minutes on 2 cores.
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

VIDEO = REPO / "examples" / "balance_cam01.mp4"
#: the calibration's pitch, roll (degrees), height (m) and focal length (px) of the example's camera
CALIBRATED = (22.5, 13.4, 1.86, 1681.0)


def _turned(deg: float):
    def f(img):
        import cv2

        h, w = img.shape[:2]
        return cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0), (w, h), borderValue=(90, 90, 90))
    return f


def _scaled(s: float):
    def f(img):
        import cv2

        return cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return f


def _dark(img):
    x = (img.astype(np.float32) / 255.0) ** 2.2 * 0.35 * 255.0
    x += np.random.default_rng(0).normal(0.0, 6.0, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def _smeared(img):
    import cv2

    return cv2.filter2D(img, -1, np.full((1, 15), 1.0 / 15.0, np.float32))


def _pillarbox(img):
    import cv2

    h, w = img.shape[:2]
    r = cv2.resize(img, None, fx=1080 / h, fy=1080 / h, interpolation=cv2.INTER_AREA)
    out = np.zeros((1080, 1920, 3), np.uint8)
    x0 = (1920 - r.shape[1]) // 2
    out[:, x0:x0 + r.shape[1]] = r
    return out


def _windowbox(img):
    import cv2

    h, w = img.shape[:2]
    r = cv2.resize(img, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    out = np.full_like(img, 90)
    y0, x0 = (h - r.shape[0]) // 2, (w - r.shape[1]) // 2
    out[y0:y0 + r.shape[0], x0:x0 + r.shape[1]] = r
    return out


#: name -> (frame transform, keep every n-th frame, roll the turn adds (deg), focal length's scale)
VARIANTS = {
    "untouched": (None, 1, 0.0, 1.0),
    "turned +20": (_turned(20.0), 1, -20.0, 1.0),
    "turned -20": (_turned(-20.0), 1, 20.0, 1.0),
    "third size": (_scaled(1.0 / 3.0), 1, 0.0, 1.0 / 3.0),
    "half rate": (None, 2, 0.0, 1.0),
    "dark": (_dark, 1, 0.0, 1.0),
    "smeared": (_smeared, 1, 0.0, 1.0),
    "pillarbox": (_pillarbox, 1, 0.0, 1080.0 / 1920.0),
    "windowbox": (_windowbox, 1, 0.0, 0.4),
}


def write_variant(name: str, target: Path) -> Path:
    import cv2

    transform, every, _, _ = VARIANTS[name]
    if transform is None and every == 1:
        return VIDEO
    reader = cv2.VideoCapture(str(VIDEO))
    fps = reader.get(cv2.CAP_PROP_FPS)
    writer, i = None, 0
    while True:
        ok, frame = reader.read()
        if not ok:
            break
        if i % every == 0:
            out = transform(frame) if transform else frame
            if writer is None:
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps / every,
                                         (out.shape[1], out.shape[0]))
            writer.write(out)
        i += 1
    writer.release()
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=None, choices=list(VARIANTS), metavar="NAME")
    ap.add_argument("--keep", default=None, help="write the videos and the captures here")
    args = ap.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_footage_"))
    work.mkdir(parents=True, exist_ok=True)
    p, r, h, f = CALIBRATED
    print(f"the calibration: pitch {p:.1f} deg, roll {r:.1f} deg, {h:.2f} m high, focal length {f:.0f} px; "
          f"outputs in {work}")
    print(f"{'variant':<12} {'pitch':>6} {'roll-turn':>9} {'height':>6} {'focal (example px)':>19} {'gravity':>8} "
          f"{'person':>6}  summary")
    for name in args.only or list(VARIANTS):
        _, _, turn, scale = VARIANTS[name]
        slug = name.replace(" ", "_").replace("+", "p").replace("-", "m")
        video = write_variant(name, work / f"{slug}.mp4")
        out = work / slug
        done = subprocess.run([sys.executable, "-m", "mocap", "capture", str(video), "-o", str(out), "--no-overlay"],
                              capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            print(f"{name:<12} mocap capture failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
            continue
        q = json.loads((out / "quality.json").read_text())
        line = next((s for s in done.stdout.splitlines() if s.startswith("3D ")), "")
        says = "matches" if line.startswith("3D matches the video") else line[:60]
        print(f"{name:<12} {q['camera_pitch_deg']:6.1f} {q['camera_roll_deg'] - turn:9.1f} {q['camera_height_m']:6.2f} "
              f"{q['camera_focal_px'] / scale:10.0f} {q['focal_from']:>8} {q['gravity_from']:>8} "
              f"{q['person_height_m']:6.2f}  {says}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
