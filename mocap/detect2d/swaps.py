"""Undo a 2D detector's left/right swaps in one view, from the continuity of the motion.

Single-view 2D detectors sometimes decide, for a few frames, that the person faces the
other way: every left keypoint is then reported at the right one's place and back. In the
image the labelled points jump by the width of the body from one frame to the next, while a
real body moves continuously. :func:`detect_swaps` finds the labelling that keeps the motion
continuous, with a two-state dynamic programme over the frames (labels as detected, or
mirrored):

- a transition between consecutive frames costs the mean image distance of the keypoints
  from one frame to the next, in units of the body's size, capped at 1 per keypoint (an
  outlier cannot dominate);
- changing state costs ``switch_cost`` more (noise in a side view, where left and right
  project onto each other, cannot make the labels flicker);
- each mirrored frame costs ``swap_cost_per_s / fps``: the detector is assumed to be right
  most of the time, so of two equally continuous labellings the one that mirrors fewer
  frames wins, and a stretch longer than a few seconds is left as detected.

Limits: one view cannot tell which of two continuous labellings is right, so if the detector
is wrong most of the time the right frames get mirrored; and where the detector flickers
while the body is side-on (left and right nearly on top of each other) a weak boundary can
put a stretch on the wrong side. The defaults were chosen on CMU validation segments with
injected swaps and on the real Pose2Sim video (``benchmarks/bench_swaps.py``,
``benchmarks/eval_real_video.py``).

Multi-view capture resolves swaps geometrically instead (:func:`mocap.multiview.triangulate.triangulate_resolving_swaps`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from mocap.errors import MocapError
from mocap.formats import Keypoints2D
from mocap.skeletons import get_layout


def _check(keypoints: np.ndarray, confidence: np.ndarray, mirror: np.ndarray) -> None:
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise MocapError(f"keypoints must be (T, K, 2), got {keypoints.shape}")
    if confidence.shape != keypoints.shape[:2]:
        raise MocapError(f"confidence must be (T, K) = {keypoints.shape[:2]}, got {confidence.shape}")
    if sorted(mirror.tolist()) != list(range(keypoints.shape[1])):
        raise MocapError(f"mirror must be a permutation of the {keypoints.shape[1]} keypoints")


def _transition_costs(x: np.ndarray, mirror: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean capped distance from each frame of ``x`` (N, K, 2) to the next, with the labels
    kept and mirrored; ``size`` (N - 1,) the body size of each step.

    Returns two (N - 1,) arrays (in units of the body size); 0 where no keypoint is in both."""
    def cost(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
        d = np.minimum(np.linalg.norm(pb - pa, axis=-1) / size[:, None], 1.0)
        both = np.isfinite(d)
        n = both.sum(1)
        return np.where(n > 0, np.where(both, d, 0.0).sum(1) / np.maximum(n, 1), 0.0)

    return cost(x[:-1], x[1:]), cost(x[:-1][:, mirror], x[1:])


def detect_swaps(
    keypoints: np.ndarray,
    confidence: np.ndarray,
    mirror: np.ndarray,
    *,
    fps: float,
    min_confidence: float = 0.3,
    switch_cost: float = 0.05,
    swap_cost_per_s: float = 0.1,
) -> np.ndarray:
    """Frames whose left/right labels should be mirrored to keep the motion continuous.

    Args:
        keypoints: (T, K, 2) pixels; NaN where missing.
        confidence: (T, K) in [0, 1]; points below ``min_confidence`` are ignored.
        mirror: (K,) int, the keypoint index that each keypoint becomes when left and right
            are exchanged (``Skeleton.mirror_permutation()``).
        fps: frames per second (the cost of a mirrored frame is per second).
        switch_cost: extra cost of a change of labelling, in body sizes.
        swap_cost_per_s: cost of keeping the labels mirrored for one second, in body sizes.
    Returns:
        (T,) bool, True where the labels should be mirrored. Frames with fewer than 4 usable
        keypoints take the state of the frame before them.
    """
    keypoints = np.asarray(keypoints, np.float64)
    confidence = np.asarray(confidence, np.float64)
    mirror = np.asarray(mirror, np.int64)
    _check(keypoints, confidence, mirror)
    if fps <= 0:
        raise MocapError(f"fps must be positive, got {fps}")
    t_len = keypoints.shape[0]
    ok = np.isfinite(keypoints).all(-1) & (confidence >= min_confidence)
    usable = np.flatnonzero(ok.sum(1) >= 4)
    if usable.size < 2:
        return np.zeros(t_len, bool)
    xs = np.where(ok[usable, :, None], keypoints[usable], np.nan)
    centre = np.nanmean(xs, axis=1, keepdims=True)
    size = np.maximum(np.sqrt(np.nanmean(((xs - centre) ** 2).sum(-1), axis=1)), 1e-6)  # RMS spread, pixels
    same, cross = _transition_costs(xs, mirror, 0.5 * (size[:-1] + size[1:]))
    unary = np.array([0.0, swap_cost_per_s / fps])

    # Viterbi over two states: 0 = labels as detected, 1 = mirrored. cross-state transitions
    # (0->1 or 1->0) compare one frame with the other's mirror: their cost is ``cross``.
    n = usable.size
    back = np.zeros((n, 2), np.int8)
    score = unary.copy()
    for i in range(1, n):
        stay = score + same[i - 1]
        move = score[::-1] + cross[i - 1] + switch_cost
        back[i] = np.where(stay <= move, [0, 1], [1, 0])
        score = np.minimum(stay, move) + unary
    state = np.empty(n, np.int8)
    state[-1] = int(np.argmin(score))
    for i in range(n - 1, 0, -1):
        state[i - 1] = back[i, state[i]]
    # every frame takes the state of the last usable frame at or before it
    index = np.searchsorted(usable, np.arange(t_len), side="right") - 1
    return np.where(index >= 0, state[np.maximum(index, 0)] == 1, False)


def apply_swaps(x: np.ndarray, swapped: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Mirror the keypoint axis (axis 1) of ``x`` (T, K, ...) in the frames where ``swapped``."""
    x = np.asarray(x)
    mask = np.asarray(swapped, bool).reshape((-1,) + (1,) * (x.ndim - 1))
    return np.where(mask, x[:, np.asarray(mirror)], x)


def resolve_swaps(keypoints: Keypoints2D, *, min_confidence: float = 0.3) -> tuple[Keypoints2D, np.ndarray]:
    """:func:`detect_swaps` on a :class:`~mocap.formats.Keypoints2D`, then mirror those frames.

    The keypoints, their confidence, MediaPipe's world landmarks and the hands (when present)
    are mirrored together. Layouts without left/right pairs come back unchanged.

    Returns:
        (the keypoints with the swaps undone, (T,) bool of the mirrored frames).
    """
    layout = get_layout(keypoints.layout)
    if not layout.left_right:
        return keypoints, np.zeros(keypoints.num_frames, bool)
    mirror = layout.mirror_permutation()
    swapped = detect_swaps(keypoints.keypoints, keypoints.confidence, mirror, fps=keypoints.fps,
                           min_confidence=min_confidence)
    return mirror_frames(keypoints, swapped), swapped


def mirror_frames(keypoints: Keypoints2D, swapped: np.ndarray) -> Keypoints2D:
    """``keypoints`` with left and right traded in the frames where ``swapped`` (T,) bool: the
    keypoints, their confidence, MediaPipe's world landmarks and the hands (when present)
    together. Layouts without left/right pairs, or no frame swapped: ``keypoints`` itself."""
    layout = get_layout(keypoints.layout)
    swapped = np.asarray(swapped, bool)
    if not layout.left_right or not swapped.any():
        return keypoints
    mirror = layout.mirror_permutation()
    wl, hk, hc = keypoints.world_landmarks, keypoints.hand_keypoints, keypoints.hand_confidence
    hands = get_layout("hands42").mirror_permutation()  # the hands follow the body's sides
    return dataclasses.replace(
        keypoints,
        keypoints=apply_swaps(keypoints.keypoints, swapped, mirror),
        confidence=apply_swaps(keypoints.confidence, swapped, mirror),
        world_landmarks=None if wl is None else apply_swaps(wl, swapped, mirror),
        hand_keypoints=None if hk is None else apply_swaps(hk, swapped, hands),
        hand_confidence=None if hc is None else apply_swaps(hc, swapped, hands),
        hand_world=None if keypoints.hand_world is None else apply_swaps(keypoints.hand_world, swapped, hands))
