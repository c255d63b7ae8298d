"""Tests for mocap.bones on synthetic MOTION21 motion with known bone lengths."""
from __future__ import annotations

import numpy as np
import pytest

from mocap.bones import bone_length_cv, bone_lengths, enforce_bone_lengths, estimate_bone_lengths
from mocap.skeletons import MOTION21, rest_offsets

PARENTS = np.array(MOTION21.parents)
TRUE = np.linalg.norm(rest_offsets(), axis=1)  # (J,) metres, pelvis 0
TRUE[0] = np.nan
BONES = PARENTS >= 0


def _random_dirs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    d = rng.normal(size=shape + (3,))
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _pose(lengths: np.ndarray, dirs: np.ndarray, root: np.ndarray) -> np.ndarray:
    """Forward kinematics: (T, J) lengths and (T, J, 3) unit directions -> (T, J, 3)."""
    joints = np.empty(dirs.shape)
    joints[:, 0] = root
    for j in range(1, len(PARENTS)):
        joints[:, j] = joints[:, PARENTS[j]] + lengths[:, j, None] * dirs[:, j]
    return joints


def _noisy_motion(rng: np.random.Generator, n_frames: int, sigma: float = 0.01, outliers: float = 0.05):
    """Bones at TRUE length + N(0, sigma), a fraction of frames with doubled bones."""
    lengths = np.nan_to_num(TRUE)[None] + rng.normal(scale=sigma, size=(n_frames, len(PARENTS)))
    wild = rng.random(size=lengths.shape) < outliers
    lengths[wild] *= 2.0
    dirs = _random_dirs(rng, (n_frames, len(PARENTS)))
    return _pose(lengths, dirs, rng.normal(size=(n_frames, 3))), lengths, dirs


def test_bone_lengths_known_values():
    joints = np.array([[[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [3.0, 4.0, 2.0], [0.0, 0.0, -1.0]]])
    out = bone_lengths(joints, [-1, 0, 1, 0])
    assert out.shape == (1, 4)
    assert np.isnan(out[0, 0])  # root: no bone
    np.testing.assert_allclose(out[0, 1:], [5.0, 2.0, 1.0])
    joints[0, 1] = np.nan
    out = bone_lengths(joints, [-1, 0, 1, 0])
    assert np.isnan(out[0, 1]) and np.isnan(out[0, 2]) and out[0, 3] == 1.0


def test_estimate_recovers_known_lengths_despite_noise_and_outliers():
    rng = np.random.default_rng(0)
    joints, lengths, _ = _noisy_motion(rng, 2000)
    est = estimate_bone_lengths(joints, PARENTS)
    assert np.isnan(est[0])
    # median of N(L, 1 cm) with 5 % outliers on one side: bias ~0.07 sigma, noise ~0.03 sigma
    np.testing.assert_allclose(est[BONES], TRUE[BONES], atol=0.002)
    mean = np.nanmean(bone_lengths(joints, PARENTS)[:, BONES], axis=0)
    assert np.max(np.abs(mean - TRUE[BONES])) > 0.01  # a mean would not be robust


def test_estimate_ignores_low_confidence_and_nan():
    rng = np.random.default_rng(1)
    joints, _, _ = _noisy_motion(rng, 500, outliers=0.0)
    conf = np.ones(joints.shape[:2])
    knee = MOTION21.index("left_knee")
    joints[:300, knee] += 3.0  # 60 % junk on the knee, marked unreliable
    conf[:300, knee] = 0.05
    joints[200:260, MOTION21.index("nose")] = np.nan
    est = estimate_bone_lengths(joints, PARENTS, confidence=conf, min_confidence=0.3)
    np.testing.assert_allclose(est[BONES], TRUE[BONES], atol=0.003)
    raw = estimate_bone_lengths(joints, PARENTS)
    assert abs(raw[knee] - TRUE[knee]) > 0.1  # without confidence the junk wins

    wrist = MOTION21.index("right_wrist")
    joints[:, wrist] = np.nan
    est = estimate_bone_lengths(joints, PARENTS, confidence=conf)
    assert np.isnan(est[wrist])  # never seen
    assert np.isnan(est[0])
    conf[:, MOTION21.index("right_elbow")] = 0.0
    est = estimate_bone_lengths(joints, PARENTS, confidence=conf)
    assert np.isnan(est[MOTION21.index("right_elbow")])  # child of a never-confident joint


def test_estimate_averages_left_right_pairs():
    rng = np.random.default_rng(2)
    n = 300
    lengths = np.tile(np.nan_to_num(TRUE), (n, 1))
    right = np.array([name.startswith("right_") for name in MOTION21.joint_names])
    lengths[:, right] *= 1.1  # right side 10 % longer
    joints = _pose(lengths, _random_dirs(rng, (n, len(PARENTS))), np.zeros(3))
    separate = estimate_bone_lengths(joints, PARENTS)
    paired = estimate_bone_lengths(joints, PARENTS, left_right=MOTION21.left_right)
    for left, r in MOTION21.left_right:
        np.testing.assert_allclose(separate[[left, r]], [TRUE[left], 1.1 * TRUE[r]], rtol=1e-12)
        np.testing.assert_allclose(paired[[left, r]], 1.05 * TRUE[left], rtol=1e-12)
    for j in ("spine", "neck", "head", "nose"):
        k = MOTION21.index(j)
        assert paired[k] == pytest.approx(TRUE[k], rel=1e-12)

    # one side never seen: the pair takes the other side's length
    joints[:, MOTION21.index("left_wrist")] = np.nan
    paired = estimate_bone_lengths(joints, PARENTS, left_right=MOTION21.left_right)
    lw, rw = MOTION21.index("left_wrist"), MOTION21.index("right_wrist")
    assert paired[lw] == paired[rw] == pytest.approx(1.1 * TRUE[rw], rel=1e-12)


def test_enforce_gives_constant_lengths_and_keeps_directions():
    rng = np.random.default_rng(3)
    joints, _, dirs = _noisy_motion(rng, 100, sigma=0.02, outliers=0.1)
    target = np.nan_to_num(TRUE)
    fixed = enforce_bone_lengths(joints, PARENTS, TRUE)
    out_lengths = bone_lengths(fixed, PARENTS)
    np.testing.assert_allclose(out_lengths[:, BONES], np.broadcast_to(target[BONES], (100, BONES.sum())), rtol=1e-12)
    offsets = fixed[:, 1:] - fixed[:, PARENTS[1:]]
    unit = offsets / np.linalg.norm(offsets, axis=-1, keepdims=True)
    np.testing.assert_allclose(unit, dirs[:, 1:], atol=1e-12)
    np.testing.assert_array_equal(fixed[:, 0], joints[:, 0])
    cv = bone_length_cv(fixed, PARENTS)
    assert np.nanmax(cv) < 1e-12
    assert np.min(bone_length_cv(joints, PARENTS)[BONES]) > 0.01


def test_enforce_nan_propagates_only_to_subtree():
    rng = np.random.default_rng(4)
    joints, _, _ = _noisy_motion(rng, 10)
    clean = enforce_bone_lengths(joints, PARENTS, TRUE)
    joints[5, MOTION21.index("left_knee")] = np.nan
    fixed = enforce_bone_lengths(joints, PARENTS, TRUE)
    subtree = {MOTION21.index(n) for n in ("left_knee", "left_ankle", "left_heel", "left_foot_index")}
    for j in range(len(PARENTS)):
        if j in subtree:
            assert np.isnan(fixed[5, j]).all()
        else:
            np.testing.assert_array_equal(fixed[5, j], clean[5, j])
    np.testing.assert_array_equal(np.delete(fixed, 5, axis=0), np.delete(clean, 5, axis=0))


def test_enforce_keeps_offsets_it_cannot_rescale():
    joints = np.array([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 2.0, 0.0]]])
    parents = [-1, 0, 1, 2]
    # bone 2 has zero length (no direction); bone 3 has an unknown (NaN) target length
    fixed = enforce_bone_lengths(joints, parents, np.array([np.nan, 0.5, 0.3, np.nan]))
    np.testing.assert_allclose(fixed[0], [[0, 0, 0], [0.5, 0, 0], [0.5, 0, 0], [0.5, 2, 0]])


def test_bone_length_cv_known_value():
    # lengths alternate L (1 + e) and L (1 - e): mean L, population std e L, cv = e
    e, n = 0.05, 40
    lengths = np.tile(np.nan_to_num(TRUE), (n, 1)) * (1 + e * (-1.0) ** np.arange(n))[:, None]
    joints = _pose(lengths, _random_dirs(np.random.default_rng(5), (n, len(PARENTS))), np.zeros(3))
    joints[3, MOTION21.index("head")] = np.nan  # an odd number of frames left for head/neck bones
    joints[4, MOTION21.index("head")] = np.nan
    cv = bone_length_cv(joints, PARENTS)
    assert np.isnan(cv[0])
    np.testing.assert_allclose(cv[BONES], e, rtol=1e-9)
    joints[1:, MOTION21.index("nose")] = np.nan
    assert np.isnan(bone_length_cv(joints, PARENTS)[MOTION21.index("nose")])  # one frame only


def test_bad_input_raises():
    joints = np.zeros((5, 4, 3))
    with pytest.raises(ValueError, match="parents"):
        bone_lengths(joints, [-1, 2, 0, 1])  # child before parent
    with pytest.raises(ValueError, match="joints must have shape"):
        bone_lengths(joints, [-1, 0, 1])
    with pytest.raises(ValueError, match="confidence"):
        estimate_bone_lengths(joints, [-1, 0, 1, 2], confidence=np.ones((5, 3)))
    with pytest.raises(ValueError, match="left_right"):
        estimate_bone_lengths(joints, [-1, 0, 1, 2], left_right=[(1, 9)])
    with pytest.raises(ValueError, match="lengths"):
        enforce_bone_lengths(joints, [-1, 0, 1, 2], np.ones(3))
    with pytest.raises(ValueError, match="lengths"):
        enforce_bone_lengths(joints, [-1, 0, 1, 2], np.array([0.0, 1.0, -1.0, 1.0]))


def test_rest_offsets_with_lengths_keeps_directions():
    from mocap.bones import rest_offsets_with_lengths

    rest = np.array([[0.0, 0, 0], [0, 2.0, 0], [3.0, 4.0, 0]])
    out = rest_offsets_with_lengths(rest, np.array([np.nan, 0.5, np.nan]))
    np.testing.assert_allclose(out, [[0, 0, 0], [0, 0.5, 0], [3.0, 4.0, 0]])  # NaN keeps the rest length
    with pytest.raises(ValueError):
        rest_offsets_with_lengths(rest, np.ones(2))
