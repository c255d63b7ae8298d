"""mocap.eval.eval2d: COCO keypoint AP/AR against pycocotools' COCOeval, OKS and PCK by hand.

(a) Real ground truth (../shared/data/images/coco_mini/person_keypoints.json, 60 images,
240 people of which 154 have keypoints) with synthetic detections made by perturbing it:
noise of several sizes, dropped people, duplicates, false positives, left/right swaps,
detections on crowd / keypoint-less people, more than 20 detections in an image, random
and tied scores. Our 10 numbers must equal pycocotools' to 1e-6 for every seed.
(b) A fully synthetic case whose numbers are computed by hand.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest

from mocap.eval.eval2d import (COCO_SIGMAS, coco_keypoint_eval, detections_to_arrays, estimate_to_coco17,
                          estimate_to_detections, head_size, match_people, oks, pck, pck_coco, pckh, torso_size)
from mocap.skeletons import COCO17, MEDIAPIPE33, MPII16
from tests.conftest import shared_path

FIELDS = ["ap", "ap50", "ap75", "ap_medium", "ap_large", "ar", "ar50", "ar75", "ar_medium", "ar_large"]
SWAP = COCO17.mirror_permutation()


def _pycoco(gt: dict, dets: list[dict], image_ids=None) -> np.ndarray:
    """The 10 COCOeval keypoint stats (NaN where COCOeval says -1)."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        if image_ids is not None:
            ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.where(ev.stats == -1, np.nan, ev.stats)


def _ours(gt: dict, dets: list[dict], image_ids=None) -> np.ndarray:
    r = coco_keypoint_eval(gt, dets, image_ids=image_ids)
    return np.array([getattr(r, f) for f in FIELDS])


def _perturbed_detections(gt: dict, seed: int) -> list[dict]:
    """Synthetic detections from the ground truth (see the module docstring)."""
    rng = np.random.default_rng(seed)
    anns = gt["annotations"]
    boxes = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}
    tie_scores = seed % 2 == 1  # odd seeds: scores rounded to 0.1 (many ties across and within images)
    dets = []

    def score() -> float:
        s = float(rng.uniform(0.05, 1.0))
        return round(s, 1) if tie_scores else s

    for a in anns:
        kp = np.array(a["keypoints"], float).reshape(17, 3)
        x, y, w, h = a["bbox"]
        if a["num_keypoints"] == 0:  # crowd or keypoint-less person: sometimes a detection near it
            if rng.random() < 0.4:
                xy = np.column_stack([rng.uniform(x, x + w, 17), rng.uniform(y, y + h, 17)])
                dets.append((a["image_id"], xy, score()))
            continue
        if rng.random() < 0.15:  # missed person
            continue
        xy = kp[:, :2].copy()
        unlabelled = kp[:, 2] == 0
        n = int(unlabelled.sum())
        xy[unlabelled] = np.column_stack([rng.uniform(x, x + w, n), rng.uniform(y, y + h, n)])
        size = np.sqrt(max(a["area"], 1.0))
        xy += rng.normal(0.0, rng.choice([0.005, 0.02, 0.05, 0.15]) * size, xy.shape)
        if rng.random() < 0.15:  # left/right swapped (a mirrored pose)
            xy = xy[SWAP]
        if rng.random() < 0.1:  # one wild joint
            xy[rng.integers(17)] += rng.normal(0, size, 2)
        dets.append((a["image_id"], xy, score()))
        if rng.random() < 0.1:  # duplicate of the same person
            dets.append((a["image_id"], xy + rng.normal(0, 0.02 * size, xy.shape), score()))
    images = [im["id"] for im in gt["images"]]
    for image_id in rng.choice(images, size=25):  # false positives anywhere
        w, h = boxes[int(image_id)]
        centre = rng.uniform([0, 0], [w, h])
        xy = centre + rng.normal(0, rng.uniform(3, 80), (17, 2))
        dets.append((int(image_id), xy, score()))
    crowded = int(rng.choice(images))  # more than max_dets = 20 in one image
    w, h = boxes[crowded]
    for _ in range(24):
        dets.append((crowded, rng.uniform([0, 0], [w, h]) + rng.normal(0, 20, (17, 2)), score()))
    order = rng.permutation(len(dets))
    out = []
    for i in order:
        image_id, xy, s = dets[i]
        flat = np.column_stack([xy, np.ones(17)]).ravel()
        out.append({"image_id": int(image_id), "category_id": 1, "keypoints": [float(v) for v in flat], "score": s})
    return out


@pytest.fixture(scope="module")
def coco_mini() -> dict:
    path = shared_path("images", "coco_mini", "person_keypoints.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_matches_pycocotools_on_real_ground_truth(coco_mini, seed):
    dets = _perturbed_detections(coco_mini, seed)
    ours, ref = _ours(coco_mini, dets), _pycoco(coco_mini, dets)
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)
    assert 0.15 < ours[0] < 0.95  # a meaningful mix of hits and misses, not a degenerate case


def test_matches_pycocotools_on_a_subset_of_images(coco_mini):
    dets = _perturbed_detections(coco_mini, 7)
    ids = sorted(im["id"] for im in coco_mini["images"])[5:25]
    np.testing.assert_allclose(_ours(coco_mini, dets, ids), _pycoco(coco_mini, dets, ids), atol=1e-6, rtol=0)


def test_ground_truth_as_detections_scores_one(coco_mini):
    dets = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in coco_mini["annotations"] if a["num_keypoints"] > 0]
    r = coco_keypoint_eval(coco_mini, dets)
    assert r.ap == pytest.approx(1.0) and r.ar == pytest.approx(1.0) and r.ap50 == pytest.approx(1.0)
    assert r.num_people == 154 and r.num_images == 60


# --- (b) a synthetic case with hand-checkable numbers ---------------------------------------------

def _person(cx: float, cy: float, scale: float) -> np.ndarray:
    """A plausible (17, 2) COCO pose around (cx, cy), ``scale`` pixels per unit."""
    unit = np.array([[0, -1.6], [-.1, -1.7], [.1, -1.7], [-.2, -1.65], [.2, -1.65], [-.4, -1.2], [.4, -1.2],
                     [-.5, -.7], [.5, -.7], [-.55, -.2], [.55, -.2], [-.25, 0], [.25, 0], [-.25, .8], [.25, .8],
                     [-.25, 1.6], [.25, 1.6]])
    return np.array([cx, cy]) + scale * unit


def _gt_dataset() -> dict:
    anns, images = [], [{"id": 1, "width": 640, "height": 480}, {"id": 2, "width": 640, "height": 480}]
    for k, (image_id, cx, scale) in enumerate([(1, 150, 100), (1, 450, 60), (2, 320, 80)]):
        xy = _person(cx, 240, scale)
        vis = np.full(17, 2)
        if k == 1:
            vis[[3, 4]] = 0  # ears not labelled
            xy[[3, 4]] = 0
        x0, y0 = xy[vis > 0].min(0)
        x1, y1 = xy[vis > 0].max(0)
        anns.append({"id": k + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                     "keypoints": np.column_stack([xy, vis]).ravel().tolist(), "num_keypoints": int((vis > 0).sum()),
                     "bbox": [x0, y0, x1 - x0, y1 - y0], "area": float(0.6 * (x1 - x0) * (y1 - y0))})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}


def _det(image_id: int, xy: np.ndarray, score: float) -> dict:
    return {"image_id": image_id, "category_id": 1, "score": score,
            "keypoints": np.column_stack([xy, np.ones(len(xy))]).ravel().tolist()}


def test_oks_of_a_known_offset_by_hand():
    gt = _gt_dataset()
    a = gt["annotations"][0]
    xy = np.array(a["keypoints"], float).reshape(17, 3)[:, :2]
    # every keypoint moved 5 px right: OKS = mean_i exp(-25 / (2 * area * (2 sigma_i)^2))
    expected = np.mean(np.exp(-25.0 / (2 * a["area"] * (2 * COCO_SIGMAS) ** 2)))
    got = oks((xy + [5.0, 0.0])[None], xy[None], np.full((1, 17), 2), np.array([a["area"]]), np.array([a["bbox"]]))
    assert got.shape == (1, 1) and got[0, 0] == pytest.approx(expected, abs=1e-12)
    # only the nose off by d: with area s, OKS = (16 + exp(-d^2 / (2 s (2*0.026)^2))) / 17
    d = 10.0
    moved = xy.copy()
    moved[0, 1] += d
    got = oks(moved[None], xy[None], np.full((1, 17), 2), np.array([a["area"]]), np.array([a["bbox"]]))[0, 0]
    assert got == pytest.approx((16 + np.exp(-d ** 2 / (2 * a["area"] * 0.052 ** 2))) / 17, abs=1e-12)
    # unlabelled keypoints (person 2's ears) do not count, wherever the detection puts them
    b = gt["annotations"][1]
    bxy, bvis = np.array(b["keypoints"], float).reshape(17, 3)[:, :2], np.array(b["keypoints"]).reshape(17, 3)[:, 2]
    far = bxy.copy()
    far[[3, 4]] += 500
    got = oks(far[None], bxy[None], bvis[None], np.array([b["area"]]), np.array([b["bbox"]]))[0, 0]
    assert got == pytest.approx(1.0)


def test_hand_checkable_ap():
    gt = _gt_dataset()
    truth = [np.array(a["keypoints"], float).reshape(17, 3)[:, :2] for a in gt["annotations"]]
    perfect = [_det(a["image_id"], t, 0.9) for a, t in zip(gt["annotations"], truth)]
    r = coco_keypoint_eval(gt, perfect)
    assert (r.ap, r.ar, r.ap50, r.ap75) == (pytest.approx(1.0),) * 4

    # person 3 found with a 5 px offset: OKS = o3; a false positive scored below everything.
    a3 = gt["annotations"][2]
    o3 = float(np.mean(np.exp(-25.0 / (2 * a3["area"] * (2 * COCO_SIGMAS) ** 2))))
    assert 0.75 < o3 < 0.95
    dets = perfect[:2] + [_det(2, truth[2] + [3.0, 4.0], 0.8), _det(2, truth[2] + 300, 0.1)]
    r = coco_keypoint_eval(gt, dets)
    n_hit = int(np.sum(np.linspace(0.5, 0.95, 10) <= o3 + 1e-12))  # thresholds the offset person passes
    # passed thresholds: 3 of 3 found, precision 1 at all recalls -> AP 1; the others: recall 2/3, precision 1
    # up to recall 2/3 (recall points 0..0.66 -> 67 of 101 points).
    expected_ap = (n_hit * 1.0 + (10 - n_hit) * 67 / 101) / 10
    expected_ar = (n_hit * 1.0 + (10 - n_hit) * 2 / 3) / 10
    assert r.ap == pytest.approx(expected_ap, abs=1e-9)
    assert r.ar == pytest.approx(expected_ar, abs=1e-9)
    assert r.ap50 == pytest.approx(1.0) and r.ar50 == pytest.approx(1.0)
    np.testing.assert_allclose(_ours(gt, dets), _pycoco(gt, dets), atol=1e-6)

    # the false positive now scores highest: precision at the first hit drops to 1/2, then 2/3, 3/4.
    dets[-1]["score"] = 0.95
    r = coco_keypoint_eval(gt, dets)
    assert r.ap50 == pytest.approx(0.75, abs=1e-9)  # best precision at any recall after the FP is 3/4
    np.testing.assert_allclose(_ours(gt, dets), _pycoco(gt, dets), atol=1e-6)


def test_crowd_and_empty_people_are_ignored():
    gt = _gt_dataset()
    gt["annotations"].append({"id": 9, "image_id": 2, "category_id": 1, "iscrowd": 1, "keypoints": [0] * 51,
                              "num_keypoints": 0, "bbox": [500, 300, 100, 100], "area": 8000.0})
    truth = [np.array(a["keypoints"], float).reshape(17, 3)[:, :2] for a in gt["annotations"][:3]]
    crowd_det = _det(2, np.random.default_rng(0).uniform([520, 320], [580, 380], (17, 2)), 0.99)
    dets = [_det(a["image_id"], t, 0.9) for a, t in zip(gt["annotations"], truth)] + [crowd_det]
    r = coco_keypoint_eval(gt, dets)
    assert r.ap == pytest.approx(1.0) and r.num_people == 3  # the detection on the crowd is not a false positive
    np.testing.assert_allclose(_ours(gt, dets), _pycoco(gt, dets), atol=1e-6)


def test_bad_input_raises():
    gt = _gt_dataset()
    with pytest.raises(ValueError, match="does not have"):
        coco_keypoint_eval(gt, [_det(99, np.zeros((17, 2)), 1.0)])
    with pytest.raises(ValueError, match="COCO json"):
        coco_keypoint_eval({"annotations": []}, [])
    r = coco_keypoint_eval(gt, [])
    assert r.ap == 0.0 and r.ar == 0.0


# --- PCK -------------------------------------------------------------------------------------------

def test_pck_by_hand():
    gt = np.zeros((2, 3, 2))
    gt[:, 1] = [10.0, 0.0]
    gt[:, 2] = [0.0, 10.0]
    pred = gt.copy()
    pred[0, 0] += [1.9, 0.0]  # ref 10, alpha 0.2 -> radius 2: correct
    pred[0, 1] += [0.0, 2.1]  # wrong
    pred[0, 2] = np.nan  # not detected: wrong
    pred[1] += [3.0, 4.0]  # 5 px off; ref 30 -> radius 6: all correct
    visible = np.array([[True, True, True], [True, False, True]])
    r = pck(pred, gt, visible, np.array([10.0, 30.0]), alpha=0.2)
    np.testing.assert_allclose(r.per_joint, [1.0, 0.0, 0.5])
    np.testing.assert_array_equal(r.counts, [2, 1, 2])
    assert r.mean == pytest.approx(3 / 5)
    r = pck(pred, gt, visible, np.array([np.nan, 30.0]), alpha=0.2)  # person without a size does not count
    np.testing.assert_allclose(r.per_joint, [1.0, np.nan, 1.0])
    with pytest.raises(ValueError, match="expected pred"):
        pck(pred[:, :2], gt, visible, np.ones(2), alpha=0.2)


def test_torso_and_head_sizes():
    xy = np.zeros((17, 2))
    j = COCO17.index
    xy[j("left_shoulder")] = [0, 0]
    xy[j("right_hip")] = [30, 40]
    xy[j("right_shoulder")] = [0, 0]
    xy[j("left_hip")] = [6, 8]
    vis = np.ones(17, bool)
    assert torso_size(xy, vis) == pytest.approx(50.0)  # left shoulder - right hip
    vis[j("right_hip")] = False
    assert torso_size(xy, vis) == pytest.approx(10.0)  # falls back to right shoulder - left hip
    vis[j("left_hip")] = False
    assert np.isnan(torso_size(xy, vis))

    m = MPII16.index
    gt = np.zeros((1, 16, 2))
    gt[0, m("upper_neck")] = [100, 100]
    gt[0, m("head_top")] = [100, 60]  # head size 40 -> PCKh@0.5 radius 20
    gt[0, :, 0] += np.arange(16) * 50
    gt[0, m("head_top"), 0] = gt[0, m("upper_neck"), 0]
    assert head_size(gt, np.ones((1, 16), bool))[0] == pytest.approx(40.0)
    pred = gt.copy()
    pred[0, :8] += [0, 19.0]
    pred[0, 8:] += [0, 21.0]
    r = pckh(pred, gt, np.ones((1, 16), bool))
    np.testing.assert_allclose(r.per_joint, [1.0] * 8 + [0.0] * 8)
    assert r.mean == pytest.approx(0.5)


def test_pck_on_matched_people():
    gt = _gt_dataset()
    truth = [np.array(a["keypoints"], float).reshape(17, 3)[:, :2] for a in gt["annotations"]]
    wrist = COCO17.index("left_wrist")
    moved = truth[0].copy()
    moved[wrist] += [1000.0, 0.0]  # one joint far off
    dets = [_det(1, truth[1], 0.5), _det(1, moved, 0.9), _det(2, truth[2] + 1000, 0.3)]  # person 3 missed
    pred, gtxy, vis, total = match_people(gt, dets)
    assert len(pred) == 2 and total == 3
    r = pck_coco(gt, dets)
    assert r.matched == 2 and r.num_people == 3
    n_joints = 17 + 15  # person 2 has unlabelled ears
    assert r.mean == pytest.approx((n_joints - 1) / n_joints)
    assert r.per_joint[wrist] == pytest.approx(0.5)


# --- Estimate -> COCO -------------------------------------------------------------------------------

def test_estimate_to_detections_round_trip():
    from mocap.detect2d.estimators.base import Estimate

    rng = np.random.default_rng(3)
    kp = rng.uniform(0, 400, (2, 2, 33, 2)).astype(np.float32)
    conf = rng.uniform(0.2, 1.0, (2, 2, 33)).astype(np.float32)
    scores = np.array([[0.9, 0.4], [0.8, 0.0]], np.float32)  # frame 2 has one person
    kp[1, 1] = np.nan
    conf[1, 1] = 0
    left_ankle = MEDIAPIPE33.index("left_ankle")
    kp[0, 0, left_ankle] = np.nan  # a missing joint
    est = Estimate(kp, conf, scores, "mediapipe33")
    coco_kp, coco_conf = estimate_to_coco17(est)
    assert coco_kp.shape == (2, 2, 17, 2)
    np.testing.assert_allclose(coco_kp[0, 1], kp[0, 1, [MEDIAPIPE33.index(n) for n in COCO17.joint_names]], atol=1e-4)
    dets = estimate_to_detections(est, [11, 12])
    assert [(d["image_id"], d["score"]) for d in dets] == [(11, pytest.approx(0.9)), (11, pytest.approx(0.4)),
                                                            (12, pytest.approx(0.8))]
    xy, s = detections_to_arrays(dets)
    ca = COCO17.index("left_ankle")
    assert np.isnan(xy[0, ca]).all() and np.isfinite(np.delete(xy[0], ca, 0)).all()
    np.testing.assert_allclose(xy[1], coco_kp[0, 1], atol=1e-3)
    # the missing joint sits inside the person's box (at the mean of its joints)
    raw = np.array(dets[0]["keypoints"]).reshape(17, 3)
    np.testing.assert_allclose(raw[ca, :2], np.nanmean(np.delete(coco_kp[0, 0], ca, 0), 0), atol=1e-3)
    with pytest.raises(ValueError, match="image ids"):
        estimate_to_detections(est, [1])


# --- mocap eval-2d ----------------------------------------------------------------------------------

def test_eval2d_cli_table_and_failed_estimator(monkeypatch, capsys, tmp_path):
    """Runs MediaPipe on 4 real images; an estimator that cannot load gets a row saying so."""
    pytest.importorskip("mediapipe")
    images = shared_path("images", "coco_mini")
    import mocap.detect2d.estimators as registry
    from mocap.eval.eval2d_cli import eval2d_main

    monkeypatch.setenv("MOCAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(registry.ESTIMATORS, "broken", ("mocap.no_such_module", "Nothing", "cannot load"))
    out = tmp_path / "results.json"
    rc = eval2d_main(["--estimator", "mediapipe", "--estimator", "broken", "--images", str(images),
                      "--limit", "4", "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "4 images" in text and "broken" in text and "failed to load: ModuleNotFoundError" in text
    rows = {r["estimator"]: r for r in json.loads(out.read_text())["results"]}
    mp = rows["mediapipe"]
    assert mp["status"] == "ok" and mp["images"] == 4 and mp["fps"] > 0
    assert 0.0 <= mp["ap"] <= 1.0 and mp["people_found"] >= 1
    assert rows["broken"]["status"].startswith("failed to load")
    assert eval2d_main(["--estimator", "broken", "--images", str(images), "--limit", "1", "--quiet"]) == 1
