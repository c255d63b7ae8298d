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


def mosaic_of_people(images, clear, n=9, tile=200):
    """A 3 x 3 mosaic of crops around n clearly visible people (each scaled to fit a tile)."""
    crops = []
    for a in [a for a in clear if a["num_keypoints"] >= 12 and a["area"] >= 128 ** 2][:n]:
        im = load_rgb(images[a["image_id"]]["path"])
        x, y, w, h = a["bbox"]
        x0, y0 = int(max(0, x - 0.1 * w)), int(max(0, y - 0.1 * h))
        x1, y1 = int(min(im.shape[1], x + 1.1 * w)), int(min(im.shape[0], y + 1.1 * h))
        crop = im[y0:y1, x0:x1]
        s = tile / max(crop.shape[:2])
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))))[:tile, :tile]
        t = np.zeros((tile, tile, 3), np.uint8)
        t[:crop.shape[0], :crop.shape[1]] = crop
        crops.append(t)
    return np.concatenate([np.concatenate(crops[r * 3:r * 3 + 3], axis=1) for r in range(3)], axis=0)


def clear_people_by_image(coco) -> dict:
    """{image id: (the image (H, W, 3) uint8 RGB, its clearly visible people)} of coco_mini."""
    images, clear = coco
    by_image: dict[int, list] = {}
    for a in clear:
        by_image.setdefault(a["image_id"], []).append(a)
    return {i: (load_rgb(images[i]["path"]), anns) for i, anns in by_image.items()}
