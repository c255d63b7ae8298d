"""Convert MediaPipe's BlazePose, hand and face landmark models into the files shipped in mocap/detect2d/estimators/weights/.

Run by a developer, with mediapipe 0.10.21, the tflite schema package and torch installed
(``pip install -e '.[detect,estimators,lift]'``), never at install or run time:

    python scripts/convert_blazepose.py            # writes the package's weights/ folder
    python scripts/convert_blazepose.py --check    # and compares the shipped networks with the .tflite path
                                                   # (the hand network: with the TFLite interpreter)

See mocap/detect2d/estimators/blazepose_models.py for what is written.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def check(frames: int = 30) -> None:
    """Landmarks from the shipped files vs the .tflite path on frames of examples/balance_cam01.mp4."""
    from mocap.detect2d.estimators.blazepose_torch import BlazePoseTorch
    from mocap.io.video import iter_frames

    video = Path(__file__).resolve().parents[1] / "examples" / "balance_cam01.mp4"
    clip = [f for i, f in enumerate(iter_frames(video)) if i % 3 == 0][:frames]
    a = BlazePoseTorch(models="package")(clip)
    b = BlazePoseTorch(models="mediapipe")(clip)
    d = np.linalg.norm(a.keypoints - b.keypoints, axis=-1)
    print(f"shipped vs tflite, {len(clip)} frames of {video.name}: people {a.num_people.tolist() == b.num_people.tolist()}"
          f" same; landmark difference max {d.max():.2e} px, median {np.median(d):.2e} px; "
          f"visibility max difference {np.abs(a.confidence - b.confidence).max():.2e}")


def check_hands(frames: int = 12) -> None:
    """The shipped hand network vs the TFLite interpreter on hand crops of examples/balance_cam01.mp4."""
    from mocap.detect2d.estimators.blazepose_torch import BlazePoseTorch
    from mocap.eval.hands_tflite import hand_crops, torch_vs_tflite
    from mocap.io.video import iter_frames

    video = Path(__file__).resolve().parents[1] / "examples" / "balance_cam01.mp4"
    clip = [f for i, f in enumerate(iter_frames(video)) if i % 8 == 0][:frames]
    body = BlazePoseTorch()(clip)
    r = torch_vs_tflite(hand_crops(clip, body.keypoints[:, 0], body.confidence[:, 0]))
    print(f"hand network, shipped vs tflite interpreter, {r['hands']} hands in {len(clip)} frames: landmark "
          f"difference max {r['max_pct']:.2e} %, median {r['median_pct']:.2e} % of the hand's size; presence "
          f"max difference {r['presence_max_diff']:.2e}")


def main() -> None:
    from mocap.detect2d.estimators.blazepose_anchors import WEIGHTS
    from mocap.detect2d.estimators.blazepose_models import convert

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(WEIGHTS), help="folder to write (default: the package's weights/)")
    p.add_argument("--check", action="store_true", help="then compare the shipped networks with the .tflite path")
    args = p.parse_args()
    paths = convert(args.out)
    for path in paths:
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    print(f"total {sum(p.stat().st_size for p in paths) / 1e6:.2f} MB")
    if args.check:
        check()
        check_hands()


if __name__ == "__main__":
    main()
