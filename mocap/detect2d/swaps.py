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

The detector does not always swap the whole body at once: the upper body (face, arms) and the
lower body (hips, legs, feet) may turn a frame apart, or the legs alone. With ``groups`` (the
layouts' :func:`body_parts`, which :func:`resolve_swaps` passes) each part has its own labels:
four states instead of two, the costs above shared out by the parts' keypoints, and a body whose
parts are labelled differently costs ``partial_cost_per_s`` more (a real body's parts turn
together, so weak evidence in one part follows the other).

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


#: the hands42 layout's left/right permutation (the two hands traded)
_HANDS_MIRROR = get_layout("hands42").mirror_permutation()


def _check(keypoints: np.ndarray, confidence: np.ndarray, mirror: np.ndarray) -> None:
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise MocapError(f"keypoints must be (T, K, 2), got {keypoints.shape}")
    if confidence.shape != keypoints.shape[:2]:
        raise MocapError(f"confidence must be (T, K) = {keypoints.shape[:2]}, got {confidence.shape}")
    if sorted(mirror.tolist()) != list(range(keypoints.shape[1])):
        raise MocapError(f"mirror must be a permutation of the {keypoints.shape[1]} keypoints")


def _transition_costs(x: np.ndarray, mirror: np.ndarray, size: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """Capped distances from each frame of ``x`` (N, K, 2) to the next, with the labels kept
    and mirrored, summed per part; ``size`` (N - 1,) the body size of each step, ``onehot``
    (K, G) each keypoint's part.

    Returns (2, 2, N - 1, G): [sums, counts] x [kept, mirrored]: the sums of the distances (in
    units of the body size, each capped at 1) and the number of keypoints seen in both frames."""
    last = np.stack([x[:-1], x[:-1][:, mirror]])  # (2, N - 1, K, 2): labels kept, mirrored
    d = np.minimum(np.sqrt(((x[1:] - last) ** 2).sum(-1)) / size[:, None], 1.0)
    seen = np.isfinite(d)
    return np.stack([np.where(seen, d, 0.0) @ onehot, seen @ onehot.astype(np.float64)])


def body_parts(layout) -> np.ndarray:
    """(K,) int per keypoint of a layout (a :class:`~mocap.skeletons.Skeleton` or its name):
    1 for the lower body (hips, legs, feet), 0 for the rest (face, torso, arms, hands)."""
    names = (get_layout(layout) if isinstance(layout, str) else layout).joint_names
    lower = ("hip", "knee", "ankle", "heel", "foot", "toe")
    return np.array([int(any(w in n for w in lower)) for n in names], np.int64)


def _spread(x: np.ndarray) -> np.ndarray:
    """(N,) RMS spread (pixels) of each frame's keypoints ``x`` (N, K, 2), NaN ignored; the body's size."""
    seen = np.isfinite(x).all(-1)
    n = np.maximum(seen.sum(1), 1)[:, None]
    v = np.where(seen[..., None], x, 0.0)
    v = np.where(seen[..., None], v - v.sum(1, keepdims=True) / n[..., None], 0.0)
    return np.maximum(np.sqrt((v ** 2).sum((1, 2)) / n[:, 0]), 1e-6)


@dataclasses.dataclass(frozen=True)
class _SwapModel:
    """The labelling programme's states and costs (see the module docstring).

    states (S, G) bool: bit g set = part g's labels mirrored; change (S, S', G): which parts a
    transition turns; unary (S,): each frame's cost of a state; switch (S, S'): a transition's
    extra cost; parts (K,) the part of each keypoint."""

    mirror: np.ndarray
    parts: np.ndarray
    states: np.ndarray
    change: np.ndarray
    unary: np.ndarray
    switch: np.ndarray
    onehot: np.ndarray  # (K, G) float, each keypoint's part
    pick: np.ndarray  # (S, S', G) int: index of each part's kept (g) or mirrored (G + g) figure

    @property
    def n_parts(self) -> int:
        return self.states.shape[1]

    @staticmethod
    def build(mirror: np.ndarray, groups: np.ndarray | None, *, fps: float, switch_cost: float,
              swap_cost_per_s: float, partial_cost_per_s: float) -> "_SwapModel":
        if fps <= 0:
            raise MocapError(f"fps must be positive, got {fps}")
        k = len(mirror)
        parts = np.zeros(k, np.int64) if groups is None else np.asarray(groups, np.int64)
        if parts.shape != (k,) or parts.min() < 0 or (parts[mirror] != parts).any():
            raise MocapError(f"groups must give each of the {k} keypoints a part (0, 1, ...) "
                             f"that mirroring keeps, got {parts.tolist()}")
        n_parts = int(parts.max()) + 1
        states = np.array([[(s >> g) & 1 for g in range(n_parts)] for s in range(2 ** n_parts)], bool)
        share = np.bincount(parts, minlength=n_parts) / k
        change = states[:, None, :] != states[None, :, :]
        unary = swap_cost_per_s / fps * (states * share).sum(1) \
            + partial_cost_per_s / fps * (states.any(1) & ~states.all(1))
        return _SwapModel(mirror, parts, states, change, unary, switch_cost * (change * share).sum(-1),
                          onehot=np.eye(n_parts)[parts], pick=np.arange(n_parts) + n_parts * change)

    def steps(self, x: np.ndarray, size: np.ndarray) -> np.ndarray:
        """(N - 1, S, S') the cost of each state pair between consecutive frames of ``x`` (N, K, 2)
        (NaN where unused), ``size`` (N,) their body sizes: each part as labelled in its state
        (the distances kept where the part's state stays, mirrored where it changes), the mean
        over the keypoints seen in both frames, plus the switch cost."""
        costs = _transition_costs(x, self.mirror, 0.5 * (size[:-1] + size[1:]), self.onehot)  # (2, 2, N - 1, G)
        total, count = (np.concatenate(c, axis=-1)[:, self.pick].sum(-1) for c in costs)  # (N - 1, S, S')
        return np.where(count > 0, total / np.maximum(count, 1), 0.0) + self.switch


def detect_swaps(
    keypoints: np.ndarray,
    confidence: np.ndarray,
    mirror: np.ndarray,
    *,
    fps: float,
    min_confidence: float = 0.3,
    switch_cost: float = 0.05,
    swap_cost_per_s: float = 0.1,
    groups: np.ndarray | None = None,
    partial_cost_per_s: float = 0.5,
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
        groups: (K,) int, the body part of each keypoint (0, 1, ...; ``mirror`` keeps each part
            to itself), whose labels may be mirrored on their own (:func:`body_parts`); the
            switch and swap costs are shared out by the parts' keypoints. None: one part.
        partial_cost_per_s: cost of one second with the parts labelled differently, in body sizes.
    Returns:
        (T,) bool, True where the labels should be mirrored; with ``groups``, (T, G) bool, per
        part. Frames with fewer than 4 usable keypoints take the state of the frame before them.
    """
    keypoints = np.asarray(keypoints, np.float64)
    confidence = np.asarray(confidence, np.float64)
    mirror = np.asarray(mirror, np.int64)
    _check(keypoints, confidence, mirror)
    t_len = keypoints.shape[0]
    model = _SwapModel.build(mirror, groups, fps=fps, switch_cost=switch_cost, swap_cost_per_s=swap_cost_per_s,
                             partial_cost_per_s=partial_cost_per_s)
    states, unary = model.states, model.unary
    ok = np.isfinite(keypoints).all(-1) & (confidence >= min_confidence)
    usable = np.flatnonzero(ok.sum(1) >= 4)
    if usable.size < 2:
        return np.zeros(t_len, bool) if groups is None else np.zeros((t_len, model.n_parts), bool)
    xs = np.where(ok[usable, :, None], keypoints[usable], np.nan)
    steps = model.steps(xs, _spread(xs))
    n = usable.size
    back = np.zeros((n, len(states)), np.int64)
    score = unary.copy()
    to = np.arange(len(states))
    for i in range(1, n):
        cand = score[:, None] + steps[i - 1]
        back[i] = np.argmin(cand, axis=0)
        score = cand[back[i], to] + unary
    state = np.empty(n, np.int64)
    state[-1] = int(np.argmin(score))
    for i in range(n - 1, 0, -1):
        state[i - 1] = back[i, state[i]]
    # every frame takes the state of the last usable frame at or before it
    index = np.searchsorted(usable, np.arange(t_len), side="right") - 1
    flags = np.where((index >= 0)[:, None], states[state[np.maximum(index, 0)]], False)  # (T, G)
    return flags[:, 0] if groups is None else flags


class SwapFilter:
    """:func:`detect_swaps` live, one frame at a time, for a stream: the forward pass of the same
    programme over the upper and lower body (:func:`body_parts`), each frame labelled by the
    state that explains the frames so far best (no look-ahead, no lag). A detector turning the
    body for a stretch is caught at the stretch's first frame and undone until it turns back;
    like the offline repair it assumes the first frames are labelled right, and after a few
    seconds of one labelling it takes that one as right.

    Args:
        layout: the keypoints' layout (a name or :class:`~mocap.skeletons.Skeleton`) with left/right pairs.
        fps: the stream's frame rate; the other arguments as :func:`detect_swaps`.
    """

    def __init__(self, layout, *, fps: float, min_confidence: float = 0.3, switch_cost: float = 0.05,
                 swap_cost_per_s: float = 0.1, partial_cost_per_s: float = 0.5) -> None:
        layout = get_layout(layout) if isinstance(layout, str) else layout
        if not layout.left_right:
            raise MocapError(f"{layout.name} has no left and right to swap")
        self.model = _SwapModel.build(layout.mirror_permutation(), body_parts(layout), fps=fps,
                                      switch_cost=switch_cost, swap_cost_per_s=swap_cost_per_s,
                                      partial_cost_per_s=partial_cost_per_s)
        self.min_confidence = min_confidence
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new shot: its first frame is taken as labelled right)."""
        self._score: np.ndarray | None = None
        self._last: np.ndarray | None = None  # the last usable frame's keypoints (K, 2), NaN unused
        self.flags = np.zeros(self.model.n_parts, bool)

    def push(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """One frame's keypoints (K, 2) pixels and confidence (K,) -> (G,) bool, the parts whose
        labels to mirror (:func:`apply_swaps` of the frame). A frame with fewer than 4 usable
        keypoints keeps the state before it."""
        m = self.model
        kp = np.asarray(keypoints, np.float64)
        conf = np.asarray(confidence, np.float64)
        if kp.shape != (len(m.mirror), 2) or conf.shape != (len(m.mirror),):
            raise MocapError(f"a frame must hold {len(m.mirror)} keypoints (K, 2) and confidences (K,), "
                             f"got {kp.shape} and {conf.shape}")
        ok = np.isfinite(kp).all(-1) & (conf >= self.min_confidence)
        if ok.sum() < 4:
            return self.flags.copy()
        x = np.where(ok[:, None], kp, np.nan)
        spread = _spread(x[None])
        if self._score is None:  # the first frame is taken as labelled right
            self._score = np.where(m.states.any(1), np.inf, 0.0)
        else:
            step = m.steps(np.stack([self._last, x]), np.concatenate([self._spread, spread]))[0]
            self._score = (self._score[:, None] + step).min(0) + m.unary
            self._score -= self._score.min()  # bounded: only the differences count
        self._last, self._spread = x, spread
        self.flags = m.states[int(np.argmin(self._score))].copy()
        return self.flags.copy()

    def apply(self, x: np.ndarray, flags: np.ndarray, *, hands: bool = False) -> np.ndarray:
        """One frame's per-keypoint array ``x`` (K, ...) with the parts in ``flags`` (G,) mirrored;
        ``hands``: ``x`` is of the ``hands42`` layout, whose hands follow the upper body (as in
        :func:`mirror_frames`)."""
        flags = np.asarray(flags, bool)[None]
        if hands:
            return apply_swaps(np.asarray(x)[None], flags[:, 0], _HANDS_MIRROR)[0]
        return apply_swaps(np.asarray(x)[None], flags, self.model.mirror, self.model.parts)[0]


def apply_swaps(x: np.ndarray, swapped: np.ndarray, mirror: np.ndarray, parts: np.ndarray | None = None) -> np.ndarray:
    """Mirror the keypoint axis (axis 1) of ``x`` (T, K, ...) in the frames where ``swapped``:
    (T,) bool for the whole body, or (T, G) bool per part with ``parts`` (K,) the part of each
    keypoint (:func:`body_parts`)."""
    x = np.asarray(x)
    swapped = np.asarray(swapped, bool)
    mirror = np.asarray(mirror)
    if swapped.ndim == 1:
        mask = swapped.reshape((-1,) + (1,) * (x.ndim - 1))
        return np.where(mask, x[:, mirror], x)
    if parts is None or swapped.shape[1] <= int(np.max(parts)):
        raise MocapError(f"per-part swaps {swapped.shape} need the part of each of the {x.shape[1]} keypoints")
    source = np.where(swapped[:, np.asarray(parts)], mirror[None, :], np.arange(x.shape[1])[None, :])  # (T, K)
    return np.take_along_axis(x, source.reshape(source.shape + (1,) * (x.ndim - 2)), axis=1)


def resolve_swaps(keypoints: Keypoints2D, *, min_confidence: float = 0.3) -> tuple[Keypoints2D, np.ndarray]:
    """:func:`detect_swaps` on a :class:`~mocap.formats.Keypoints2D`, per body part
    (:func:`body_parts`), then mirror those frames' parts.

    The keypoints, their confidence, MediaPipe's world landmarks and the hands (when present)
    are mirrored together; the hands follow the upper body. Layouts without left/right pairs
    come back unchanged.

    Returns:
        (the keypoints with the swaps undone, (T,) bool of the frames with a part mirrored).
    """
    layout = get_layout(keypoints.layout)
    if not layout.left_right:
        return keypoints, np.zeros(keypoints.num_frames, bool)
    mirror = layout.mirror_permutation()
    swapped = detect_swaps(keypoints.keypoints, keypoints.confidence, mirror, fps=keypoints.fps,
                           min_confidence=min_confidence, groups=body_parts(layout))
    return mirror_frames(keypoints, swapped), swapped.any(1)


def mirror_frames(keypoints: Keypoints2D, swapped: np.ndarray) -> Keypoints2D:
    """``keypoints`` with left and right traded in the frames where ``swapped``: (T,) bool for
    the whole body, or (T, G) bool per part of :func:`body_parts`. The keypoints, their
    confidence, MediaPipe's world landmarks and the hands (when present, with the upper body,
    part 0) together. Layouts without left/right pairs, or nothing swapped: ``keypoints`` itself."""
    layout = get_layout(keypoints.layout)
    swapped = np.asarray(swapped, bool)
    if not layout.left_right or not swapped.any():
        return keypoints
    mirror = layout.mirror_permutation()
    parts = body_parts(layout) if swapped.ndim == 2 else None
    upper = swapped if swapped.ndim == 1 else swapped[:, 0]
    wl, hk, hc = keypoints.world_landmarks, keypoints.hand_keypoints, keypoints.hand_confidence
    hands = _HANDS_MIRROR  # the hands follow the body's sides
    return dataclasses.replace(
        keypoints,
        keypoints=apply_swaps(keypoints.keypoints, swapped, mirror, parts),
        confidence=apply_swaps(keypoints.confidence, swapped, mirror, parts),
        world_landmarks=None if wl is None else apply_swaps(wl, swapped, mirror, parts),
        hand_keypoints=None if hk is None else apply_swaps(hk, upper, hands),
        hand_confidence=None if hc is None else apply_swaps(hc, upper, hands),
        hand_world=None if keypoints.hand_world is None else apply_swaps(keypoints.hand_world, upper, hands))
