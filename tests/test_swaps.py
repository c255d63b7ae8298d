"""Undoing a 2D detector's left/right swaps in one view (mocap.detect2d.swaps), against known swaps
injected into a synthetic person seen by a known camera."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mocap.errors import MocapError
from mocap.skeletons import MEDIAPIPE33, MOTION21
from mocap.detect2d.swaps import SwapFilter, apply_swaps, body_parts, detect_swaps, resolve_swaps
from tests.synthetic import _rot, synthetic_keypoints, waving_walker

MIRROR = MEDIAPIPE33.mirror_permutation()
PARTS = body_parts(MEDIAPIPE33)  # 0 upper body, 1 lower body


def _turned(joints: np.ndarray, yaw: np.ndarray | float) -> np.ndarray:
    """(T, 21, 3) rotated about the vertical axis through each frame's pelvis by ``yaw`` radians."""
    yaw = np.broadcast_to(np.asarray(yaw, float), joints.shape[:1])
    pelvis = joints[:, MOTION21.index("pelvis")][:, None]
    return np.einsum("tij,tkj->tki", _rot("y", yaw), joints - pelvis) + pelvis


def _keypoints(yaw=0.0, t=150, noise_px=1.0, seed=0):
    return synthetic_keypoints(_turned(waving_walker(t), yaw), noise_px=noise_px, seed=seed)


def _inject(k, truth):
    """``truth`` (T,) for the whole body, or (T, 2) per part of :data:`PARTS`."""
    return dataclasses.replace(k, keypoints=apply_swaps(k.keypoints, truth, MIRROR, PARTS),
                               confidence=apply_swaps(k.confidence, truth, MIRROR, PARTS),
                               world_landmarks=apply_swaps(k.world_landmarks, truth, MIRROR, PARTS))


@pytest.mark.parametrize("yaw", [0.0, 0.6, np.pi])  # facing the camera, three-quarter, from behind
def test_injected_swaps_are_found_exactly(yaw):
    k = _keypoints(yaw)
    truth = np.zeros(k.num_frames, bool)
    truth[40:75] = True  # a stretch of 35 frames (1.2 s)
    truth[[10, 100, 101, 120]] = True  # flickers of one and two frames
    found = detect_swaps(_inject(k, truth).keypoints, k.confidence, MIRROR, fps=k.fps)
    np.testing.assert_array_equal(found, truth)


def test_swapped_from_the_first_frame():
    k = _keypoints(0.3)
    truth = np.zeros(k.num_frames, bool)
    truth[:30] = True
    found = detect_swaps(_inject(k, truth).keypoints, k.confidence, MIRROR, fps=k.fps)
    np.testing.assert_array_equal(found, truth)


@pytest.mark.parametrize("seed", range(3))
def test_no_swaps_invented_while_turning_around_or_in_profile(seed):
    """A person turning a full circle (left and right cross over in the image twice), and a
    person in profile (left and right on top of each other), with 2 px noise: nothing moves."""
    for yaw in (np.linspace(0.0, 2 * np.pi, 150), np.pi / 2):
        k = _keypoints(yaw, noise_px=2.0, seed=seed)
        assert not detect_swaps(k.keypoints, k.confidence, MIRROR, fps=k.fps).any()


def test_missing_frames_inside_a_swap_take_the_state_before_them():
    k = _keypoints(0.0)
    truth = np.zeros(k.num_frames, bool)
    truth[50:80] = True
    bad = _inject(k, truth)
    kp, conf = bad.keypoints.copy(), bad.confidence.copy()
    kp[60:64] = np.nan  # nobody detected for 4 frames
    conf[60:64] = 0.0
    conf[:, MEDIAPIPE33.index("left_wrist")] = 0.0  # and a keypoint never confident
    found = detect_swaps(kp, conf, MIRROR, fps=k.fps)
    np.testing.assert_array_equal(found, truth)


def test_a_swap_longer_than_the_rest_leaves_one_consistent_labelling():
    """When the detector is wrong most of the time the minority is mirrored: the labels come
    out continuous, mirrored everywhere (the documented limit of a one-view method)."""
    k = _keypoints(0.0)
    truth = np.zeros(k.num_frames, bool)
    truth[20:] = True  # swapped for 4.3 s of 5
    found = detect_swaps(_inject(k, truth).keypoints, k.confidence, MIRROR, fps=k.fps)
    np.testing.assert_array_equal(found, ~truth)


def test_resolve_swaps_mirrors_keypoints_confidence_and_world_landmarks():
    k = _keypoints(0.0)
    truth = np.zeros(k.num_frames, bool)
    truth[30:60] = True
    fixed, found = resolve_swaps(_inject(k, truth))
    np.testing.assert_array_equal(found, truth)
    np.testing.assert_array_equal(fixed.keypoints, k.keypoints)
    np.testing.assert_array_equal(fixed.world_landmarks, k.world_landmarks)
    same, found = resolve_swaps(k)
    assert same is k and not found.any()


def test_lift_with_swaps_undone_matches_the_clean_lift():
    """The whole monocular path: with 45 swapped frames the motion strays by decimetres,
    with the swaps undone it is the clean lift again."""
    from mocap.pipelines.capture import CleanupConfig, lift_keypoints

    k = _keypoints(0.5)
    truth = np.zeros(k.num_frames, bool)
    truth[50:95] = True
    clean = lift_keypoints(k, lifter="network").joints
    fixed = lift_keypoints(_inject(k, truth), lifter="network").joints
    kept = lift_keypoints(_inject(k, truth), lifter="network", cleanup=CleanupConfig(resolve_swaps=False)).joints
    err_fixed = np.linalg.norm(fixed - clean, axis=-1).mean()
    err_kept = np.linalg.norm(kept - clean, axis=-1).mean()
    assert err_fixed < 1e-4, err_fixed
    assert err_kept > 0.05, err_kept


def test_body_parts():
    lower = [n for n, p in zip(MEDIAPIPE33.joint_names, PARTS) if p]
    assert lower == [f"{s}_{j}" for j in ("hip", "knee", "ankle", "heel", "foot_index") for s in ("left", "right")]
    assert (PARTS[MIRROR] == PARTS).all()
    assert body_parts("coco17").tolist() == [0] * 11 + [1] * 6


@pytest.mark.parametrize("yaw", [0.0, 0.6, np.pi])
def test_upper_and_lower_body_turning_a_frame_apart(yaw):
    """The detector turns the upper body at frame 40 and the lower body at 41, and back at 70
    and 72 (as on pose2sim_two_people cam02, where the whole-body model left 51 frames mirrored):
    per part, every part-frame is found; a whole-body labelling gets the three frames with one
    part turned wrong at best."""
    k = _keypoints(yaw)
    truth = np.zeros((k.num_frames, 2), bool)
    truth[40:70, 0] = True
    truth[41:72, 1] = True
    bad = _inject(k, truth)
    found = detect_swaps(bad.keypoints, bad.confidence, MIRROR, fps=k.fps, groups=PARTS)
    np.testing.assert_array_equal(found, truth)
    fixed, flags = resolve_swaps(bad)
    np.testing.assert_array_equal(flags, truth.any(1))
    np.testing.assert_array_equal(fixed.keypoints, k.keypoints)
    np.testing.assert_array_equal(fixed.world_landmarks, k.world_landmarks)
    whole = detect_swaps(bad.keypoints, bad.confidence, MIRROR, fps=k.fps)
    assert (whole[:, None] != truth).any(1).sum() >= 3


def test_legs_alone_swapped_for_a_moment():
    k = _keypoints(0.4)
    truth = np.zeros((k.num_frames, 2), bool)
    truth[60:66, 1] = True  # the legs' labels crossed for 0.2 s, the arms right
    truth[100, 1] = True
    bad = _inject(k, truth)
    np.testing.assert_array_equal(detect_swaps(bad.keypoints, bad.confidence, MIRROR, fps=k.fps, groups=PARTS), truth)


@pytest.mark.parametrize("seed", range(3))
def test_no_parts_turned_while_turning_around_or_in_profile(seed):
    for yaw in (np.linspace(0.0, 2 * np.pi, 150), np.pi / 2):
        k = _keypoints(yaw, noise_px=2.0, seed=seed)
        assert not detect_swaps(k.keypoints, k.confidence, MIRROR, fps=k.fps, groups=PARTS).any()


def test_per_part_swaps_of_the_hands_follow_the_upper_body():
    from mocap.detect2d.swaps import mirror_frames
    from mocap.skeletons import get_layout

    k = _keypoints(0.0, t=10)
    hands = np.arange(10 * 42 * 2, dtype=float).reshape(10, 42, 2)
    k = dataclasses.replace(k, hand_keypoints=hands, hand_confidence=np.ones((10, 42)))
    flags = np.zeros((10, 2), bool)
    flags[2, 0] = True  # the upper body of frame 2
    flags[5, 1] = True  # the lower body of frame 5
    out = mirror_frames(k, flags)
    hand_mirror = get_layout("hands42").mirror_permutation()
    np.testing.assert_array_equal(out.hand_keypoints[2], hands[2, hand_mirror])
    np.testing.assert_array_equal(out.hand_keypoints[5], hands[5])
    np.testing.assert_array_equal(out.keypoints[2, PARTS == 0], k.keypoints[2, MIRROR][PARTS == 0])
    np.testing.assert_array_equal(out.keypoints[2, PARTS == 1], k.keypoints[2, PARTS == 1])
    np.testing.assert_array_equal(out.keypoints[5, PARTS == 1], k.keypoints[5, MIRROR][PARTS == 1])
    live = SwapFilter(MEDIAPIPE33, fps=k.fps)  # the stream's frames: the same rules
    for t in (2, 5):
        np.testing.assert_array_equal(live.apply(hands[t], flags[t], hands=True), out.hand_keypoints[t])
        np.testing.assert_array_equal(live.apply(k.keypoints[t], flags[t]), out.keypoints[t])


def _live(k):
    live = SwapFilter(MEDIAPIPE33, fps=k.fps)
    return np.array([live.push(p, c) for p, c in zip(k.keypoints, k.confidence)])


@pytest.mark.parametrize("yaw", [0.0, 0.6, np.pi])
def test_live_repair_frame_by_frame(yaw):
    """The stream's repair sees no frame ahead: a whole-body stretch, a flicker, and the upper and
    lower body turning a frame apart are each undone from their first frame on (at the end of
    the stagger, the legs alone turned for three frames, it may be a frame late); then the same
    after a reset, and a frame without a person keeps the state before it."""
    k = _keypoints(yaw, noise_px=2.0)
    truth = np.zeros((k.num_frames, 2), bool)
    truth[20:45] = True
    truth[60] = True
    truth[80:100, 0] = True
    truth[81:103, 1] = True
    bad = _inject(k, truth)
    flags = _live(bad)
    np.testing.assert_array_equal(flags[:100], truth[:100])
    assert (flags != truth).any(1).sum() <= 1
    kp, conf = bad.keypoints.copy(), bad.confidence.copy()
    kp[30], conf[30] = np.nan, 0.0  # nobody in frame 30, inside the first stretch
    live = SwapFilter("mediapipe33", fps=k.fps)
    live.push(kp[25], conf[25])  # a mirrored frame first: after the reset it is forgotten
    live.reset()
    again = np.array([live.push(p, c) for p, c in zip(kp, conf)])
    np.testing.assert_array_equal(again, flags)
    np.testing.assert_array_equal(live.apply(kp[25], again[25]), k.keypoints[25])


def test_live_repair_takes_the_first_frame_as_right():
    """Its documented limit: mirrored from the first frame, the stretch is taken as right and the
    frames after it as mirrored, until about 3 s of them make the detector's labels right again
    (the offline repair, seeing it all, gets it right)."""
    k = _keypoints(0.3)
    truth = np.zeros(k.num_frames, bool)
    truth[:30] = True
    bad = _inject(k, truth)
    flags = _live(bad).any(1)
    assert not flags[:30].any() and flags[30:110].all() and not flags[-10:].any()
    np.testing.assert_array_equal(detect_swaps(bad.keypoints, bad.confidence, MIRROR, fps=k.fps), truth)


def test_bad_input():
    k = _keypoints(0.0, t=20)
    with pytest.raises(MocapError, match="permutation"):
        detect_swaps(k.keypoints, k.confidence, MIRROR[:-1], fps=30.0)
    with pytest.raises(MocapError, match="confidence"):
        detect_swaps(k.keypoints, k.confidence[:, :5], MIRROR, fps=30.0)
    with pytest.raises(MocapError, match="fps"):
        detect_swaps(k.keypoints, k.confidence, MIRROR, fps=0.0)
    none = detect_swaps(np.full((5, 33, 2), np.nan), np.zeros((5, 33)), MIRROR, fps=30.0)
    assert none.shape == (5,) and not none.any()
    none = detect_swaps(np.full((5, 33, 2), np.nan), np.zeros((5, 33)), MIRROR, fps=30.0, groups=PARTS)
    assert none.shape == (5, 2) and not none.any()
    with pytest.raises(MocapError, match="groups"):  # a left hip in the upper body, its right one in the lower
        detect_swaps(k.keypoints, k.confidence, MIRROR, fps=30.0,
                     groups=np.where(np.arange(33) == MEDIAPIPE33.index("left_hip"), 0, PARTS))
    with pytest.raises(MocapError, match="part"):
        apply_swaps(k.keypoints, np.zeros((20, 2), bool), MIRROR)
    with pytest.raises(MocapError, match="no left and right"):
        SwapFilter("hand21", fps=30.0)
    with pytest.raises(MocapError, match="fps"):
        SwapFilter("coco17", fps=0.0)
    with pytest.raises(MocapError, match="33 keypoints"):
        SwapFilter("mediapipe33", fps=30.0).push(k.keypoints[0, :17], k.confidence[0, :17])
