"""Shared by the 2D estimator tests: the clearly visible people of coco_mini and OKS to them."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tests.conftest import shared_path

COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10


@pytest.fixture(scope="module")
def coco():
    """(images by id, clearly visible annotations sorted by file name) of coco_mini."""
    root = shared_path("images", "coco_mini")
    data = json.loads((root / "person_keypoints.json").read_text())
    images = {im["id"]: dict(im, path=root / im["file_name"]) for im in data["images"]}
    clear = [a for a in data["annotations"]
             if a["num_keypoints"] >= 10 and a["area"] >= 96 ** 2 and not a["iscrowd"]]
    clear.sort(key=lambda a: (images[a["image_id"]]["file_name"], a["id"]))
    return images, clear


def load_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def best_oks(keypoints, ann):
    """Highest OKS between one ground-truth person and predictions (P, 17, 2); 0 if P = 0."""
    gt = np.asarray(ann["keypoints"], float).reshape(17, 3)
    labelled = gt[:, 2] > 0
    d2 = np.sum((keypoints - gt[None, :, :2]) ** 2, axis=-1)
    oks = np.nan_to_num(np.exp(-d2 / (2 * ann["area"] * (2 * COCO_SIGMAS) ** 2)))
    return float(oks[:, labelled].mean(axis=1).max()) if len(keypoints) else 0.0


