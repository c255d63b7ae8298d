"""2D pose estimators on real photos with keypoint ground truth: COCO AP/AR, PCK@0.2, speed.

    python benchmarks/eval_2d.py [--estimator NAME ...] [--images DIR] [--limit N] [--out results.json]

Runs every registered estimator (mocap.detect2d.estimators.ESTIMATORS) that loads on the COCO images
in ../shared/data/images/coco_mini (60 images, 154 people with keypoints) and prints one
table: estimator, AP, AP50, AP75, AR, PCK@0.2 (torso), frames/s (estimator calls only, on
this machine's CPU). Estimators that cannot load are listed with the reason. The same code
serves ``mocap eval-2d`` (mocap/eval/eval2d_cli.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mocap.errors import MocapError  # noqa: E402
from mocap.eval.eval2d_cli import eval2d_main  # noqa: E402

if __name__ == "__main__":
    try:
        sys.exit(eval2d_main(sys.argv[1:]))
    except MocapError as err:
        print(f"eval_2d: error: {err}", file=sys.stderr)
        sys.exit(1)
