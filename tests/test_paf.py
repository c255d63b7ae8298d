"""mocap.detect2d.estimators.paf: part-affinity-field grouping on synthetic maps drawn from known stick figures.

Heatmaps are Gaussians (sigma 2 px) at each joint; each limb's field is the limb's unit
vector on pixels within 2 px of the segment, averaged where limbs of one type overlap (as
the fields OpenPose is trained on). Grouping must give back exactly the drawn people, every
joint within 1 px (sub-pixel refinement: within 0.25 px) and the absent joints NaN.
"""
from __future__ import annotations

import numpy as np
import pytest

from mocap.detect2d.estimators.paf import (OPENPOSE18_LIMBS, OPENPOSE18_NAMES, OPENPOSE18_ORDER, OPENPOSE18_TO_COCO17, assemble_people,
                       find_peaks, group_people, limb_candidates, match_greedy, openpose18_to_coco17)
from mocap.skeletons import COCO17

# A standing figure facing the camera, ~95 px tall, origin at the pelvis (x right, y down).
TEMPLATE = np.array([
    (0, -45), (0, -35), (-10, -35), (-14, -20), (-16, -5), (10, -35), (14, -20), (16, -5),
    (-6, 0), (-7, 20), (-8, 40), (6, 0), (7, 20), (8, 40), (-3, -48), (3, -48), (-6, -46), (6, -46),
], np.float64)
J = {name: i for i, name in enumerate(OPENPOSE18_NAMES)}


def figure(x, y, scale=1.0, **moves):
    """(18, 2) joints of the template at (x, y); ``moves`` put named joints at absolute positions."""
    p = TEMPLATE * scale + (x, y)
    for name, xy in moves.items():
        p[J[name]] = xy
    return p


def render(people, size=(200, 320), sigma=2.0, width=2.0):
    """Heatmaps (18, H, W) and PAFs (38, H, W) of stick figures (18, 2), NaN joints not drawn."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    heat = np.zeros((18, h, w))
    paf = np.zeros((38, h, w))
    count = np.zeros((19, h, w))
    for p in people:
        for j in range(18):
            if np.all(np.isfinite(p[j])):
                heat[j] = np.maximum(heat[j], np.exp(-((xx - p[j, 0]) ** 2 + (yy - p[j, 1]) ** 2) / (2 * sigma ** 2)))
        for li, (a, b) in enumerate(OPENPOSE18_LIMBS):
            if not (np.all(np.isfinite(p[a])) and np.all(np.isfinite(p[b]))):
                continue
            d = p[b] - p[a]
            length = np.linalg.norm(d)
            u = d / length
            rx, ry = xx - p[a, 0], yy - p[a, 1]
            along = rx * u[0] + ry * u[1]
            across = np.abs(rx * u[1] - ry * u[0])
            on = (along >= -width) & (along <= length + width) & (across <= width)
            paf[2 * li][on] += u[0]
            paf[2 * li + 1][on] += u[1]
            count[li][on] += 1
    paf /= np.maximum(np.repeat(count, 2, axis=0), 1)
    return heat.astype(np.float32), paf.astype(np.float32)


def group(heat, paf, **kw):
    return group_people(heat, paf, limbs=OPENPOSE18_LIMBS, order=OPENPOSE18_ORDER, **kw)


def assert_same_people(truth, keypoints, tol=1.0):
    """Each true figure matches exactly one found person: same joints present, each within tol px."""
    assert len(keypoints) == len(truth), f"found {len(keypoints)} people, drew {len(truth)}"
    used = set()
    for p in truth:
        err = np.nanmean(np.linalg.norm(keypoints - p[None], axis=-1), axis=1)
        k = int(np.nanargmin(err))
        assert k not in used
        used.add(k)
        np.testing.assert_array_equal(np.isnan(keypoints[k, :, 0]), np.isnan(p[:, 0]))
        present = np.isfinite(p[:, 0])
        dist = np.linalg.norm(keypoints[k, present] - p[present], axis=-1)
        assert dist.max() <= tol, f"joint off by {dist.max():.2f} px"


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_recovers_n_separate_people(n):
    rng = np.random.default_rng(n)
    people = [figure(35 + 62 * i + rng.uniform(-4, 4), 100 + rng.uniform(-20, 20), scale=rng.uniform(0.8, 1.2))
              for i in range(n)]
    heat, paf = render(people)
    kp, conf, scores = group(heat, paf)
    assert_same_people(people, kp, tol=0.25)
    assert kp.shape == (n, 18, 2) and conf.shape == (n, 18) and scores.shape == (n,)
    assert np.all(conf > 0.9) and np.all(np.diff(scores) <= 0)  # peaks off the pixel grid: exp(-0.5 / 8) = 0.94
    assert np.all(scores > 0.9)  # every joint and limb drawn at full strength


def test_crossing_forearms_of_the_same_limb_type_are_not_swapped():
    # A's left forearm reaches right, B's left forearm reaches left; they cross mid-way.
    a = figure(100, 110, left_shoulder=(110, 75), left_elbow=(120, 95), left_wrist=(150, 115))
    b = figure(175, 110, left_shoulder=(165, 75), left_elbow=(155, 93), left_wrist=(122, 117))
    heat, paf = render([a, b])
    li = OPENPOSE18_LIMBS.index((J["left_elbow"], J["left_wrist"]))
    assert np.any(np.abs(paf[2 * li]) > 0) and np.any(np.abs(paf[2 * li][(paf[2 * li] != 0)]) < 0.99)  # they overlap
    kp, _, _ = group(heat, paf)
    assert_same_people([a, b], kp, tol=1.0)


def test_crossed_legs_and_overlapping_people():
    # C crosses its legs; D stands 30 px away so their arms' fields nearly touch.
    c = figure(90, 100, right_knee=(88, 120), right_ankle=(97, 140), left_knee=(92, 120), left_ankle=(83, 140))
    d = figure(128, 104, scale=0.9)
    heat, paf = render([c, d])
    kp, _, _ = group(heat, paf)
    assert_same_people([c, d], kp, tol=1.0)


def test_missing_joints_stay_nan_and_partial_people_survive():
    p = figure(80, 100)
    p[[J["right_ankle"], J["left_ankle"], J["right_knee"], J["left_knee"], J["right_ear"]]] = np.nan
    q = figure(200, 100)
    q[[J["nose"], J["right_eye"], J["left_eye"], J["right_ear"], J["left_ear"]]] = np.nan  # no head
    heat, paf = render([p, q])
    kp, conf, scores = group(heat, paf)
    assert_same_people([p, q], kp, tol=0.25)
    np.testing.assert_array_equal(conf == 0, np.isnan(kp[..., 0]))
    assert scores[0] > scores[1] or np.isclose(scores[0], scores[1], atol=0.05)


def test_no_people_gives_empty_arrays():
    heat, paf = render([])
    kp, conf, scores = group(heat, paf)
    assert kp.shape == (0, 18, 2) and conf.shape == (0, 18) and scores.shape == (0,)
    # noise below the peak threshold finds nothing either
    noisy = np.random.default_rng(0).uniform(0, 0.09, heat.shape).astype(np.float32)
    assert group(noisy, paf)[0].shape[0] == 0


def test_people_touching_the_image_border():
    h, w = 200, 320
    # feet on the last row, right wrist on column 0; a second figure's left wrist on the last column
    p = figure(25, h - 1 - 40, right_wrist=(0, 140))
    q = figure(290, 90, left_wrist=(w - 1, 70), nose=(290, 0.0), right_eye=(287, 0.0), left_eye=(293, 0.0))
    q[[J["right_ear"], J["left_ear"]]] = np.nan
    heat, paf = render([p, q], size=(h, w))
    peaks = find_peaks(heat)
    assert np.any(np.all(np.abs(peaks[J["right_wrist"]][:, :2] - (0, 140)) < 1e-6, axis=1))
    assert np.any(np.all(np.abs(peaks[J["left_ankle"]][:, :2] - (33, h - 1)) < 1e-6, axis=1))
    kp, _, _ = group(heat, paf)
    assert_same_people([p, q], kp, tol=0.25)


def test_find_peaks_subpixel_threshold_plateau():
    yy, xx = np.mgrid[0:40, 0:50]
    m = np.exp(-((xx - 20.3) ** 2 + (yy - 11.7) ** 2) / 8.0) + 0.5 * np.exp(-((xx - 40) ** 2 + (yy - 30) ** 2) / 8.0)
    maps = np.stack([m, np.zeros_like(m), np.zeros_like(m)]).astype(np.float32)
    maps[2, 5:7, 5:8] = 0.7  # a flat plateau: one peak, not six
    peaks = find_peaks(maps, threshold=0.1)
    assert peaks[0].shape == (2, 3) and len(peaks[1]) == 0 and len(peaks[2]) == 1
    np.testing.assert_allclose(peaks[0][0, :2], (20.3, 11.7), atol=0.1)
    np.testing.assert_allclose(peaks[0][1, :2], (40, 30), atol=1e-6)
    assert peaks[0][0, 2] > peaks[0][1, 2]  # highest first
    assert len(find_peaks(maps, threshold=0.6)[0]) == 1
    with pytest.raises(ValueError, match="K, H, W"):
        find_peaks(np.zeros((10, 10)))


def test_limb_candidates_score_and_greedy_matching():
    paf = np.zeros((2, 30, 60), np.float32)
    paf[0, 9:12, 10:41] = 1.0  # a field pointing +x along y = 10 from x = 10 to 40
    a = np.array([[10, 10, 1.0], [10, 25, 1.0]])
    b = np.array([[40, 10, 1.0], [40, 25, 1.0]])
    cand = limb_candidates(paf, a, b)
    assert cand.shape == (1, 3)
    np.testing.assert_allclose(cand[0], (0, 0, 1.0))
    assert len(limb_candidates(paf, b, a)) == 0  # against the field's direction
    np.testing.assert_allclose(limb_candidates(paf, a, b, length_prior=10.0)[0, 2], 1 + (10 / 30 - 1))  # 30 px limb
    assert len(limb_candidates(paf, a[:0], b)) == 0
    m = match_greedy(np.array([[0, 0, 0.9], [0, 1, 0.95], [1, 1, 0.8], [1, 0, 0.5]]))
    np.testing.assert_array_equal(m[:, :2], [[0, 1], [1, 0]])


def test_assemble_merges_and_refuses_conflicts():
    peaks = [np.array([[0, 0, 1.0]]), np.array([[0, 10, 1.0]]), np.array([[0, 20, 1.0], [5, 20, 1.0]])]
    limbs = [(0, 1), (1, 2), (0, 2)]
    # 0-1 and 1-2 form one person; the 0-2 limb pointing at the other candidate of part 2 is a conflict
    kp, conf, scores = assemble_people(peaks, [np.array([[0, 0, 1.0]]), np.array([[0, 0, 1.0]]),
                                               np.array([[0, 1, 1.0]])], limbs=limbs, min_parts=2)
    assert kp.shape == (1, 3, 2)
    np.testing.assert_allclose(kp[0], [[0, 0], [0, 10], [0, 20]])
    # four parts in a chain: 0-1 and 2-3 start two fragments, 1-2 then merges them (no part in common)
    peaks4 = [np.array([[0, 10.0 * k, 0.9]]) for k in range(4)]
    one = np.array([[0, 0, 0.8]])
    kp, conf, scores = assemble_people(peaks4, [one, one, one], limbs=[(0, 1), (2, 3), (1, 2)], min_parts=2)
    assert kp.shape == (1, 4, 2)
    np.testing.assert_allclose(kp[0, :, 1], [0, 10, 20, 30])
    np.testing.assert_allclose(scores, (4 * 0.9 + 3 * 0.8) / 7, rtol=1e-6)
    # ...unless both fragments hold the same part: then they stay two people
    peaks4[0] = np.array([[0, 0, 0.9], [50, 0, 0.9]])
    kp, _, _ = assemble_people(peaks4, [one, one, np.array([[1, 0, 0.8]]), one],
                               limbs=[(0, 1), (2, 3), (0, 3), (1, 2)], order=[0, 1, 3, 2], min_parts=2)
    assert len(kp) == 1  # 0-1 + 2-3 merged by 1-2 first; the 0-3 limb from the other part-0 candidate is dropped
    with pytest.raises(ValueError, match="limb"):
        assemble_people(peaks, [np.zeros((0, 3))], limbs=[(0, 5)])


def test_openpose18_to_coco17_by_name():
    names = [OPENPOSE18_NAMES[i] for i in OPENPOSE18_TO_COCO17]
    assert names == list(COCO17.joint_names)
    kp = np.arange(2 * 18 * 2, dtype=np.float32).reshape(2, 18, 2)
    out, conf = openpose18_to_coco17(kp, kp[..., 0])
    assert out.shape == (2, 17, 2) and conf.shape == (2, 17)
    np.testing.assert_array_equal(out[:, 5], kp[:, OPENPOSE18_NAMES.index("left_shoulder")])
    assert sorted(OPENPOSE18_ORDER) == list(range(len(OPENPOSE18_LIMBS)))


def test_assemble_refuses_connections_to_missing_peaks():
    peaks = [np.array([[0, 0, 1.0]]), np.array([[0, 10, 1.0]])]
    with pytest.raises(ValueError, match="do not exist"):
        assemble_people(peaks, [np.array([[0, 3, 1.0]])], limbs=[(0, 1)])
