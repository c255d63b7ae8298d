"""Accuracy of 2D keypoints against ground truth: COCO keypoint AP/AR (from OKS) and PCK.

COCO keypoint evaluation (:func:`coco_keypoint_eval`) follows the published COCO protocol
(cocodataset.org/#keypoints-eval), written here from its definition:

- Object keypoint similarity between a detection d and a ground-truth person g with
  visible keypoints V (visibility flag > 0) and segment area s (the annotation's ``area``,
  pixels^2): ``OKS = mean_{i in V} exp(-d_i^2 / (2 s (2 sigma_i)^2))`` with the 17
  per-keypoint constants ``sigma_i`` of COCO (:data:`COCO_SIGMAS`). A person without visible
  keypoints is compared through the distance of each detected keypoint to the box grown by
  its own size on every side.
- Ground truth with ``iscrowd`` or ``num_keypoints == 0`` is "ignore": a detection matched
  to it is neither a true nor a false positive. Per image, detections (best score first,
  at most ``max_dets`` = 20) are matched greedily to the unmatched person of highest OKS
  above the threshold, non-ignored people first.
- Area ranges (pixels^2): all, medium (32^2..96^2), large (> 96^2). Ground truth outside the
  range is ignored, as are unmatched detections whose keypoint box is outside it.
- For each OKS threshold 0.50:0.05:0.95, precision is made monotone and sampled at the 101
  recall points 0:0.01:1; AP is the mean over thresholds and recall points, AR the mean
  over thresholds of the final recall.

Tests compare every number with pycocotools' COCOeval to 1e-6; pycocotools is only a
test dependency and is not imported here.

PCK (:func:`pck`): a joint is correct when it lies within ``alpha`` times a reference size
of the ground truth. Torso size for COCO-17 (:func:`torso_size`): the distance from the
left shoulder to the right hip (falling back to right shoulder - left hip when either is
not labelled). Head size for MPII-16 (:func:`head_size`): the upper-neck to head-top
segment (PCKh). People are paired with :func:`match_people` (Hungarian on OKS).

Arrays: keypoints (..., J, 2) float pixels (x right, y down), NaN where missing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from mocap.skeletons import COCO17, MPII16, map_confidence, map_joints

#: COCO's per-keypoint OKS constants (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0
OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
AREA_RANGES: dict[str, tuple[float, float]] = {"all": (0.0, 1e10), "medium": (32.0 ** 2, 96.0 ** 2),
                                               "large": (96.0 ** 2, 1e10)}
MAX_DETS = 20
_EPS = np.spacing(1)


@dataclass(frozen=True)
class CocoKeypointResult:
    """COCO keypoint metrics in [0, 1]; NaN where undefined (no ground truth in that area range)."""

    ap: float
    ap50: float
    ap75: float
    ap_medium: float
    ap_large: float
    ar: float
    ar50: float
    ar75: float
    ar_medium: float
    ar_large: float
    num_images: int
    num_people: int  # ground-truth people that count (not crowd, with keypoints)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class PCKResult:
    """PCK per joint and over all joints.

    Attributes:
        per_joint: (J,) fraction of labelled joints within the threshold, NaN where no joint counted.
        mean: fraction over every labelled joint of every pair (pooled).
        counts: (J,) labelled joints that counted.
        matched: people paired with a detection; ``num_people``: people that could count.
    """

    per_joint: np.ndarray
    mean: float
    counts: np.ndarray
    matched: int = 0
    num_people: int = 0


# --- OKS --------------------------------------------------------------------------------------------

def _gt_arrays(gts: Sequence[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ground-truth annotations -> xy (G, 17, 2), visibility (G, 17), area (G,), bbox (G, 4)."""
    kp = np.array([g["keypoints"] for g in gts], np.float64).reshape(len(gts), -1, 3)
    area = np.array([g["area"] for g in gts], np.float64)
    bbox = np.array([g["bbox"] for g in gts], np.float64).reshape(len(gts), 4)
    return kp[..., :2], kp[..., 2], area, bbox


def oks(det_xy: np.ndarray, gt_xy: np.ndarray, gt_visibility: np.ndarray, gt_area: np.ndarray,
        gt_bbox: np.ndarray, *, sigmas: np.ndarray = COCO_SIGMAS) -> np.ndarray:
    """Object keypoint similarity of every detection with every ground-truth person.

    Args:
        det_xy: (D, K, 2) pixels (all K used, as in COCO).
        gt_xy: (G, K, 2) pixels; gt_visibility (G, K) COCO flags (0 = not labelled).
        gt_area: (G,) segment areas, pixels^2; gt_bbox (G, 4) boxes (x, y, w, h) pixels.
        sigmas: (K,) per-keypoint constants.

    Returns:
        (D, G) float64 in [0, 1].
    """
    det_xy = np.asarray(det_xy, np.float64)
    gt_xy = np.asarray(gt_xy, np.float64)
    var = (np.asarray(sigmas, np.float64) * 2) ** 2
    visible = np.asarray(gt_visibility) > 0  # (G, K)
    dx = det_xy[:, None, :, 0] - gt_xy[None, :, :, 0]  # (D, G, K)
    dy = det_xy[:, None, :, 1] - gt_xy[None, :, :, 1]
    none = ~visible.any(axis=1)  # people without labelled keypoints: distance outside the grown box
    if none.any():
        x, y, w, h = (np.asarray(gt_bbox, np.float64)[:, i][None, :, None] for i in range(4))
        xd, yd = det_xy[:, None, :, 0], det_xy[:, None, :, 1]
        bx = np.maximum(0.0, (x - w) - xd) + np.maximum(0.0, xd - (x + 2 * w))
        by = np.maximum(0.0, (y - h) - yd) + np.maximum(0.0, yd - (y + 2 * h))
        dx = np.where(none[None, :, None], bx, dx)
        dy = np.where(none[None, :, None], by, dy)
    e = (dx ** 2 + dy ** 2) / var / (np.asarray(gt_area, np.float64)[None, :, None] + _EPS) / 2
    used = np.where(none[:, None], True, visible)[None]  # (1, G, K)
    return np.where(used, np.exp(-e), 0.0).sum(-1) / used.sum(-1)


# --- COCO evaluation ------------------------------------------------------------------------------

def _group(items: Sequence[dict], key: str = "image_id") -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for it in items:
        out.setdefault(int(it[key]), []).append(it)
    return out


def _match_image(gts: list[dict], dets: list[dict], ious: np.ndarray, area_range: tuple[float, float],
                 thresholds: np.ndarray) -> dict | None:
    """COCO's greedy matching in one image for one area range (``dets`` sorted, ``ious`` (D, G))."""
    if not gts and not dets:
        return None
    lo, hi = area_range
    ignore = np.array([bool(g["_ignore"]) or g["area"] < lo or g["area"] > hi for g in gts], bool)
    order = np.argsort(ignore, kind="mergesort")  # non-ignored people first
    ignore = ignore[order]
    crowd = np.array([bool(gts[i].get("iscrowd", 0)) for i in order], bool)
    t, d, g = len(thresholds), len(dets), len(gts)
    gt_matched = np.zeros((t, g), bool)
    dt_matched = np.zeros((t, d), bool)
    dt_ignore = np.zeros((t, d), bool)
    if d and g:
        ious = ious[:, order]
        for ti, thr in enumerate(thresholds):
            for di in range(d):
                best, m = min(thr, 1 - 1e-10), -1
                for gi in range(g):
                    if gt_matched[ti, gi] and not crowd[gi]:
                        continue
                    if m > -1 and not ignore[m] and ignore[gi]:
                        break
                    if ious[di, gi] < best:
                        continue
                    best, m = ious[di, gi], gi
                if m == -1:
                    continue
                dt_ignore[ti, di] = ignore[m]
                dt_matched[ti, di] = True
                gt_matched[ti, m] = True
    det_area = np.array([dt["_area"] for dt in dets], np.float64)
    outside = (det_area < lo) | (det_area > hi)
    dt_ignore |= ~dt_matched & outside[None, :]
    return {"scores": np.array([dt["score"] for dt in dets], np.float64), "matched": dt_matched,
            "dt_ignore": dt_ignore, "gt_ignore": ignore}


def _accumulate(evals: list[dict], thresholds: np.ndarray, max_dets: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image matches -> precision (T, R) and recall (T,); NaN when no person counts."""
    t, r = len(thresholds), len(RECALL_POINTS)
    if not evals:
        return np.full((t, r), np.nan), np.full(t, np.nan)
    scores = np.concatenate([e["scores"][:max_dets] for e in evals])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e["matched"][:, :max_dets] for e in evals], axis=1)[:, order]
    dt_ignore = np.concatenate([e["dt_ignore"][:, :max_dets] for e in evals], axis=1)[:, order]
    num_gt = int(np.count_nonzero(np.concatenate([e["gt_ignore"] for e in evals]) == 0))
    if num_gt == 0:
        return np.full((t, r), np.nan), np.full(t, np.nan)
    tp = np.cumsum(matched & ~dt_ignore, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~dt_ignore, axis=1).astype(np.float64)
    precision = np.zeros((t, r))
    recall = np.zeros(t)
    for ti in range(t):
        n = tp.shape[1]
        rc = tp[ti] / num_gt
        pr = tp[ti] / (fp[ti] + tp[ti] + _EPS)
        if n:
            recall[ti] = rc[-1]
            pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision made non-increasing in recall
            idx = np.searchsorted(rc, RECALL_POINTS, side="left")
            ok = idx < n
            precision[ti, ok] = pr[idx[ok]]
    return precision, recall


def coco_keypoint_eval(ground_truth: dict, detections: Sequence[dict], *, image_ids: Sequence[int] | None = None,
                       sigmas: np.ndarray = COCO_SIGMAS, max_dets: int = MAX_DETS) -> CocoKeypointResult:
    """COCO keypoint AP/AR of ``detections`` against ``ground_truth`` (the protocol in the module docstring).

    Args:
        ground_truth: COCO keypoint json as a dict (``images``, ``annotations`` with
            ``keypoints`` [x, y, v] * 17, ``area``, ``bbox``, ``iscrowd``, ``num_keypoints``).
        detections: [{"image_id", "category_id": 1, "keypoints": [x, y, c] * 17, "score"}];
            the third value of each keypoint is not used (COCO uses every keypoint).
        image_ids: evaluate these images only (default: every image of ``ground_truth``).
        sigmas: (17,) OKS constants; max_dets: detections kept per image (best scores).

    Returns:
        CocoKeypointResult (AP, AP50, AP75, AP medium/large, AR, AR50, AR75, AR medium/large).
    """
    if "images" not in ground_truth or "annotations" not in ground_truth:
        raise ValueError("ground_truth must be a COCO json dict with 'images' and 'annotations'")
    known = {int(im["id"]) for im in ground_truth["images"]}
    ids = sorted(known if image_ids is None else {int(i) for i in image_ids})
    if unknown := sorted(set(ids) - known):
        raise ValueError(f"image ids {unknown[:5]} are not in the ground truth")
    strangers = sorted({int(d["image_id"]) for d in detections} - known)
    if strangers:
        raise ValueError(f"detections for image ids {strangers[:5]} that the ground truth does not have; "
                         "pass the annotations these detections were made for")
    cats = [1] if "categories" not in ground_truth else sorted(int(c["id"]) for c in ground_truth["categories"])
    gts = _group([dict(a, _ignore=bool(a.get("iscrowd", 0)) or a.get("num_keypoints", 0) == 0)
                  for a in ground_truth["annotations"] if a.get("category_id", 1) in cats])
    dets = []
    for d in detections:
        if d.get("category_id", 1) not in cats:
            continue
        xy = np.asarray(d["keypoints"], np.float64).reshape(-1, 3)[:, :2]
        if xy.shape[0] != len(sigmas):
            raise ValueError(f"a detection has {xy.shape[0]} keypoints; COCO needs {len(sigmas)} as [x, y, v] * 17")
        span = xy.max(0) - xy.min(0)
        dets.append(dict(d, _xy=xy, _area=float(span[0] * span[1])))
    dets_by_image = _group(dets)

    evals: dict[str, list[dict]] = {name: [] for name in AREA_RANGES}
    for image_id in ids:
        g = gts.get(image_id, [])
        dt = dets_by_image.get(image_id, [])
        order = np.argsort([-x["score"] for x in dt], kind="mergesort")[:max_dets]
        dt = [dt[i] for i in order]
        if g and dt:
            gxy, gvis, garea, gbox = _gt_arrays(g)
            ious = oks(np.stack([x["_xy"] for x in dt]), gxy, gvis, garea, gbox, sigmas=sigmas)
        else:
            ious = np.zeros((len(dt), len(g)))
        for name, rng in AREA_RANGES.items():
            e = _match_image(g, dt, ious, rng, OKS_THRESHOLDS)
            if e is not None:
                evals[name].append(e)

    stats = {name: _accumulate(ev, OKS_THRESHOLDS, max_dets) for name, ev in evals.items()}
    t50, t75 = int(np.argmin(np.abs(OKS_THRESHOLDS - 0.5))), int(np.argmin(np.abs(OKS_THRESHOLDS - 0.75)))
    p, r = stats["all"]
    num_people = sum(1 for i in ids for a in gts.get(i, []) if not a["_ignore"])
    return CocoKeypointResult(
        ap=float(p.mean()), ap50=float(p[t50].mean()), ap75=float(p[t75].mean()),
        ap_medium=float(stats["medium"][0].mean()), ap_large=float(stats["large"][0].mean()),
        ar=float(r.mean()), ar50=float(r[t50]), ar75=float(r[t75]),
        ar_medium=float(stats["medium"][1].mean()), ar_large=float(stats["large"][1].mean()),
        num_images=len(ids), num_people=num_people)


# --- PCK ------------------------------------------------------------------------------------------

def _segment(xy: np.ndarray, visible: np.ndarray, a: int, b: int) -> np.ndarray:
    length = np.linalg.norm(xy[..., a, :] - xy[..., b, :], axis=-1)
    return np.where(visible[..., a] & visible[..., b], length, np.nan)


def torso_size(gt_xy: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Torso size of COCO-17 people: |left shoulder - right hip|, else |right shoulder - left hip|.

    Args:
        gt_xy: (..., 17, 2) pixels; visible: (..., 17) bool (labelled joints).

    Returns:
        (...) float64 pixels, NaN where neither diagonal is labelled.
    """
    gt_xy, visible = np.asarray(gt_xy, np.float64), np.asarray(visible, bool)
    j = COCO17.index
    first = _segment(gt_xy, visible, j("left_shoulder"), j("right_hip"))
    second = _segment(gt_xy, visible, j("right_shoulder"), j("left_hip"))
    return np.where(np.isfinite(first), first, second)


def head_size(gt_xy: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Head segment of MPII-16 people: |upper neck - head top|, (...) pixels, NaN where unlabelled.

    Args:
        gt_xy: (..., 16, 2) pixels; visible: (..., 16) bool.
    """
    j = MPII16.index
    return _segment(np.asarray(gt_xy, np.float64), np.asarray(visible, bool), j("upper_neck"), j("head_top"))


def pck(pred_xy: np.ndarray, gt_xy: np.ndarray, visible: np.ndarray, ref_size: np.ndarray, *,
        alpha: float) -> PCKResult:
    """Percentage of correct keypoints: |pred - gt| <= alpha * ref_size, per joint and pooled.

    Args:
        pred_xy: (N, J, 2) pixels of N paired people, NaN where not detected (counts as wrong).
        gt_xy: (N, J, 2) pixels; visible: (N, J) bool, joints that are labelled (only they count).
        ref_size: (N,) pixels per person (torso or head size); people with NaN or 0 do not count.
        alpha: threshold as a fraction of ``ref_size`` (0.2 for PCK@0.2 of the torso, 0.5 for PCKh).
    """
    pred_xy, gt_xy = np.asarray(pred_xy, np.float64), np.asarray(gt_xy, np.float64)
    visible, ref = np.asarray(visible, bool), np.asarray(ref_size, np.float64)
    if (pred_xy.shape != gt_xy.shape or pred_xy.ndim != 3 or visible.shape != gt_xy.shape[:2]
            or ref.shape != gt_xy.shape[:1]):
        raise ValueError(f"expected pred (N, J, 2), gt (N, J, 2), visible (N, J), ref_size (N,); got "
                         f"{pred_xy.shape}, {gt_xy.shape}, {visible.shape}, {ref.shape}")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    counts = visible & (np.isfinite(ref) & (ref > 0))[:, None]
    dist = np.linalg.norm(pred_xy - gt_xy, axis=-1)
    with np.errstate(invalid="ignore"):
        correct = counts & np.isfinite(dist) & (dist <= alpha * ref[:, None])
    n = counts.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(n > 0, correct.sum(0) / np.maximum(n, 1), np.nan)
    total = int(counts.sum())
    return PCKResult(per_joint=per_joint, mean=float(correct.sum() / total) if total else float("nan"), counts=n)


def pckh(pred_xy: np.ndarray, gt_xy: np.ndarray, visible: np.ndarray, *, alpha: float = 0.5) -> PCKResult:
    """PCKh@alpha for MPII-16 people: (N, 16, 2) pixels, visible (N, 16); reference = :func:`head_size`."""
    return pck(pred_xy, gt_xy, visible, head_size(gt_xy, visible), alpha=alpha)


def detections_to_arrays(detections: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """COCO detection dicts -> keypoints (D, 17, 2) pixels (NaN where the third value is 0), scores (D,)."""
    kp = np.array([d["keypoints"] for d in detections], np.float64).reshape(len(detections), -1, 3)
    xy = np.where(kp[..., 2:3] > 0, kp[..., :2], np.nan)
    return xy, np.array([d["score"] for d in detections], np.float64)


def match_people(ground_truth: dict, detections: Sequence[dict], *, image_ids: Sequence[int] | None = None,
                 min_oks: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pair detections with ground-truth people per image (Hungarian on OKS, pairs with OKS >= ``min_oks``).

    Only people that count in COCO (not crowd, with labelled keypoints) are paired.

    Returns:
        pred_xy (N, 17, 2) pixels (NaN where a joint was not detected), gt_xy (N, 17, 2),
        visible (N, 17) bool, and the number of people that could be paired.
    """
    from scipy.optimize import linear_sum_assignment

    ids = sorted({int(im["id"]) for im in ground_truth["images"]} if image_ids is None else set(map(int, image_ids)))
    gts = _group([a for a in ground_truth["annotations"]
                  if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0 and a.get("category_id", 1) == 1])
    dets = _group([d for d in detections if d.get("category_id", 1) == 1])
    pred, gt, vis, total = [], [], [], 0
    for image_id in ids:
        g, dt = gts.get(image_id, []), dets.get(image_id, [])
        total += len(g)
        if not g or not dt:
            continue
        gxy, gvis, garea, gbox = _gt_arrays(g)
        dxy, _ = detections_to_arrays(dt)
        raw = np.array([x["keypoints"] for x in dt], np.float64).reshape(len(dt), -1, 3)[..., :2]
        sim = oks(raw, gxy, gvis, garea, gbox)
        rows, cols = linear_sum_assignment(-sim)
        for r, c in zip(rows, cols):
            if sim[r, c] >= min_oks:
                pred.append(dxy[r])
                gt.append(gxy[c])
                vis.append(gvis[c] > 0)
    k = len(COCO_SIGMAS)
    if not pred:
        return np.zeros((0, k, 2)), np.zeros((0, k, 2)), np.zeros((0, k), bool), total
    return np.stack(pred), np.stack(gt), np.stack(vis), total


def pck_coco(ground_truth: dict, detections: Sequence[dict], *, alpha: float = 0.2,
             image_ids: Sequence[int] | None = None, min_oks: float = 0.1) -> PCKResult:
    """PCK@alpha of the torso (:func:`torso_size`) over people paired by :func:`match_people`."""
    pred, gt, vis, total = match_people(ground_truth, detections, image_ids=image_ids, min_oks=min_oks)
    res = pck(pred, gt, vis, torso_size(gt, vis), alpha=alpha)
    return PCKResult(res.per_joint, res.mean, res.counts, matched=len(pred), num_people=total)


# --- Estimates -> COCO ------------------------------------------------------------------------------

def estimate_to_coco17(estimate) -> tuple[np.ndarray, np.ndarray]:
    """An :class:`mocap.detect2d.estimators.Estimate` (mediapipe33 or coco17) -> COCO-17 arrays.

    Returns:
        keypoints (B, P, 17, 2) float64 pixels (NaN where missing), confidence (B, P, 17) in [0, 1].
    """
    kp = map_joints(estimate.keypoints, estimate.layout, COCO17)
    conf = map_confidence(estimate.confidence, estimate.layout, COCO17)
    return kp, np.where(np.isnan(kp).any(-1), 0.0, conf)


def estimate_to_detections(estimate, image_ids: Sequence[int], *, category_id: int = 1) -> list[dict]:
    """An Estimate of B images -> COCO keypoint detections (one dict per person found).

    Each keypoint is [x, y, c] with c the joint's confidence (at least 0.001 so that a
    detected joint is never read back as missing). A joint the estimator did not give is
    placed at the mean of the person's detected joints with c = 0 (COCO scores every
    keypoint; this keeps the detection's box, used for the area ranges, unchanged). The
    detection's ``score`` is the estimator's person score.

    Args:
        estimate: Estimate with B frames; image_ids: (B,) COCO image id of each frame.
    """
    if len(image_ids) != estimate.scores.shape[0]:
        raise ValueError(f"{len(image_ids)} image ids for an estimate of {estimate.scores.shape[0]} images")
    kp, conf = estimate_to_coco17(estimate)
    out = []
    for b, image_id in enumerate(image_ids):
        for p in range(kp.shape[1]):
            present = np.isfinite(kp[b, p]).all(-1)
            if estimate.scores[b, p] <= 0 or not present.any():
                continue
            xy = np.where(present[:, None], kp[b, p], kp[b, p][present].mean(0))
            c = np.where(present, np.maximum(conf[b, p], 1e-3), 0.0)
            flat = np.concatenate([xy, c[:, None]], axis=1).ravel()
            out.append({"image_id": int(image_id), "category_id": int(category_id),
                        "keypoints": [round(float(v), 3) for v in flat], "score": float(estimate.scores[b, p])})
    return out
