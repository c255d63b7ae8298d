"""Following people over frames with :class:`~mocap.detect2d.estimators.blazepose_torch.BlazePoseTorch`:
the tracker of synchronised views, and the ROI bookkeeping it shares with the offline path.

Each person's region of interest comes from their landmarks in the previous frame; the pose
detector runs when a stream tracks nobody, and (with ``max_people`` > 1) every
``detect_every`` frames and after a track weakened or ended, so that people who walk in are
found. ROIs that converge on one person (after two people crossed) are merged.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mocap.detect2d.estimators import blazepose_anchors as bp
from mocap.detect2d.estimators.base import Estimate, stack_people

class PoseTracker:
    """People followed over time in V synchronised views (MediaPipe's VIDEO-mode logic).

    Each :meth:`step` takes one frame per view; views tracking nobody run the detector
    (batched over those views), and with ``max_people`` > 1 so do views with room for more
    people every ``detect_every`` frames and after a track weakened or ended (then in the
    whole image and one of its closer windows, in turn: a small newcomer in a tall frame is
    found within three looks, and each look costs two detector windows rather than four);
    detections
    that overlap a tracked ROI are dropped, every ROI of every view goes through the
    landmark network in one batch, and tracks whose presence falls below
    ``min_tracking_confidence`` end. With ``refine``, new detections get a second landmark
    pass (see :meth:`BlazePoseTorch.video`).
    """

    def __init__(self, model, views: int, *, refine: bool = False) -> None:
        """``model``: the :class:`~mocap.detect2d.estimators.blazepose_torch.BlazePoseTorch` that runs the networks."""
        if int(views) < 1:
            raise ValueError(f"views must be at least 1, got {views}")
        self.model = model
        self.views = int(views)
        self.refine = bool(refine)
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (next step detects again)."""
        self.rois = [np.zeros((0, 5)) for _ in range(self.views)]
        self.weak = [False] * self.views
        self.since = [0] * self.views  # frames since the detector last ran (1: on the previous frame), per view
        self.wait = [1] * self.views  # frames between detections while a track stays weak, per view
        self.turn = [0] * self.views  # which of the detector's closer windows a view looks in next

    def step(self, frames: np.ndarray | Sequence[np.ndarray], views: Sequence[int] | None = None) -> Estimate:
        """One frame per view, (V, H, W, 3) or a list of V images -> :class:`Estimate` (V, P, 33, ...).

        ``views``: the views these frames are of, when only some go on (the segments of one
        video that have not ended yet: :func:`mocap.detect2d.people.detect_people_video`);
        default all, in order."""
        images = self.model._images(frames)
        if views is None:
            if len(images) != self.views:
                raise ValueError(f"this tracker follows {self.views} view(s), got {len(images)} frame(s)")
            views = range(self.views)
        views = [int(v) for v in views]
        if len(images) != len(views) or len(set(views)) != len(views) or not all(0 <= v < self.views for v in views):
            raise ValueError(f"{len(images)} frame(s) for views {views}: want one frame per view, "
                             f"distinct views below {self.views}")
        m = self.model
        detect = [m._needs_detector(self.rois[v], self.weak[v], self.since[v], self.wait[v]) for v in views]
        # a view tracking nobody looks everywhere; one looking for newcomers takes the closer windows in turn
        turns = [None if len(self.rois[v]) == 0 else self.turn[v] for v in views]
        lm, rois, weak = m._step(images, list(range(len(views))), [self.rois[v] for v in views], self.refine, detect,
                                 turns)
        for v, r, w, d in zip(views, rois, weak, detect):
            self.turn[v] += int(d and len(self.rois[v]) > 0)
            self.rois[v] = r
            # a view waiting to look again (see next_wait) stays weak until the detector has run
            self.weak[v] = w or (self.weak[v] and not d)
            self.since[v] = 1 if d else self.since[v] + 1
            self.wait[v] = m.next_wait(self.wait[v], self.weak[v], d)
        return m._to_estimate(len(views), lm)


def distinct_rois(rois: np.ndarray, score: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """(N,) bool: False for a ROI on the same person (:func:`same_roi`) as a better-scored ROI
    of the same slot (one person found in two of the detector's windows)."""
    return _distinct(score, slot, lambda i, j: same_roi(rois[i], rois[j]))


def distinct_poses(keypoints: np.ndarray, rois: np.ndarray, score: np.ndarray, slot: np.ndarray, *,
                   tolerance: float = 0.08, mirror: np.ndarray | None = None,
                   visibility: np.ndarray | None = None, min_visibility: float = 0.5,
                   fresh: np.ndarray | None = None, torso: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: False for a pose that repeats a better-scored pose of the same slot: two
    tracks that converged on one person (after a crossing), or a fresh detection of someone
    already tracked.

    Two poses (N, J, 2 pixels) are one person when their landmarks lie closer than
    ``tolerance`` times the larger ROI side (rois (N, 5)), on average. (Two people side by
    side, even overlapping, differ by far more: their hips and feet are elsewhere. Not the
    face alone: on pose2sim_two_people cam03 the man's head passes 25 px from the woman's.)
    With ``mirror`` (the layout's left/right permutation, (J,) indices) a pose is also
    compared with the other's left and right swapped: a fresh detection of someone tracked
    whom the landmark network reads facing the other way (pose2sim_two_people cam02 frame 82:
    187 px apart on average as given, 18 px swapped) is the same person.
    With ``visibility`` (N, J), where both poses see at least 6 of the same landmarks
    (``min_visibility``), the median distance over those is judged instead of the mean over
    all: a pose of someone's upper body (found in a close window) whose legs the landmark
    network made up is that person.
    With ``fresh`` (N,) bool (poses from the detector this frame) and ``torso`` (the layout's
    shoulder and hip indices), two *tracked* poses (neither fresh) are one person only if their
    torsos agree too (the median over the torso points both see, at least 3 of them, within
    the same tolerance): two people whose images overlap, one behind the other, can give
    poses that share a face and hands (the landmark network puts the visible face of the one
    behind on the body of the one seen from behind: pose2sim_two_people cam03, frame 63,
    shoulders 75-158 px and hips 215-269 px apart, the face within 50 px), but never a torso.
    A fresh pose is judged as before: one that shares someone's face and shoulders but not
    their hips (its hips made up) is that person again.
    """
    side = np.maximum(rois[:, 2], rois[:, 3])
    seen = None if visibility is None else np.asarray(visibility) >= min_visibility

    def apart(a: np.ndarray, b: np.ndarray, both: np.ndarray | None) -> float:
        d = np.linalg.norm(a - b, axis=-1)
        if both is not None and both.sum() >= 6:
            return float(np.nanmedian(d[both]))
        return float(np.nanmean(d))

    def torsos_apart(i: int, j: int, b: np.ndarray, both: np.ndarray | None, limit: float) -> bool:
        """Whether tracked poses i and j (``b``: j's landmarks in i's order) hold their torsos apart."""
        if torso is None or fresh is None or fresh[i] or fresh[j]:
            return False
        on = np.ones(len(torso), bool) if both is None else both[torso]
        return bool(on.sum() >= 3 and np.median(np.linalg.norm(keypoints[i][torso] - b[torso], axis=-1)[on]) >= limit)

    orders = [np.arange(keypoints.shape[1])] + ([np.asarray(mirror)] if mirror is not None else [])

    def same(i: int, j: int) -> bool:
        limit = tolerance * max(side[i], side[j])
        for order in orders:
            b = keypoints[j][order]
            both = None if seen is None else seen[i] & seen[j][order]
            if apart(keypoints[i], b, both) < limit and not torsos_apart(i, j, b, both, limit):
                return True
        return False

    return _distinct(score, slot, same)


def limb_edges(skeleton) -> np.ndarray:
    """(E, 2) the joint pairs on which a part of a person lies (:func:`on_limbs`): the layout's
    edges and, where it names the shoulders and hips, the torso's two diagonals."""
    edges = list(skeleton.edges)
    try:
        ls, rs, lh, rh = (skeleton.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
        edges += [(ls, rh), (rs, lh)]
    except ValueError:  # a layout without them
        pass
    return np.asarray(edges, np.int64)


def on_limbs(points: np.ndarray, ok: np.ndarray, skeleton: np.ndarray, seen: np.ndarray,
             edges: np.ndarray) -> np.ndarray | None:
    """(J,) bool: which of ``points`` (J, 2 pixels; ``ok`` (J,) bool: those judged) lie on the
    limbs of ``skeleton`` (J, 2 pixels; ``seen`` (J,) bool): within ``LIMB_WIDTH`` of its
    height or width (the larger) from one of its ``edges`` (E, 2 joint indices) whose ends are
    both seen. None when the skeleton has fewer than 5 limbs to go by."""
    e = edges[seen[edges[:, 0]] & seen[edges[:, 1]]]
    if len(e) < 5:
        return None
    size = float(np.ptp(skeleton[seen], axis=0).max())
    p, a, b = points[:, None], skeleton[e[:, 0]][None], skeleton[e[:, 1]][None]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-9), 0.0, 1.0)
    d = np.linalg.norm(p - (a + t[..., None] * ab), axis=-1).min(axis=1)
    return ok & (d < LIMB_WIDTH * max(size, 1e-6))


#: a point this close to a limb (times the person's larger side in the image) lies on that limb
LIMB_WIDTH = 0.05
#: :func:`part_of_another`: a pose with at least this share of its points on another's limbs ...
ON_ANOTHER = 0.5
#: ... while none of the other's head and shoulders (nose, left and right shoulder in the
#: BlazePose layout) lie on its own limbs, is a part of the other
HEAD_SHOULDERS = (0, 11, 12)


def part_of_another(keypoints: np.ndarray, visibility: np.ndarray, slot: np.ndarray, fresh: np.ndarray,
                    edges: np.ndarray, *, min_visibility: float = 0.3,
                    head_shoulders: tuple[int, ...] = HEAD_SHOULDERS) -> np.ndarray:
    """(N,) bool: True for a fresh pose (``fresh`` (N,) bool: just found by the detector) that
    is only a part of another pose of the same slot: the pose detector, which keys on faces,
    sometimes proposes a second "person" in a window showing one person's legs, and the
    landmark network then draws a whole body along those legs. Such a pose has most of its
    points (visibility >= ``min_visibility``; at least :data:`ON_ANOTHER` of them) on the
    other's limbs (:func:`on_limbs`), and the other's head and shoulders lie off its own.
    Two real people crossing lie on each other head and shoulders too (measured on
    pose2sim_two_people: no frame of the two taken for one), and one behind the other shows
    a head and shoulders of their own. Only fresh poses are judged: a tracked person who
    passes behind someone keeps their track.

    Args:
        keypoints: (N, J, 2) pixels. visibility: (N, J). slot: (N,) stream of each pose.
        edges: (E, 2) joint index pairs: the limbs (and torso) of the layout.
    """
    n = len(keypoints)
    ok = np.isfinite(keypoints).all(-1) & (np.asarray(visibility) >= min_visibility)
    top = np.zeros(keypoints.shape[1], bool)
    top[list(head_shoulders)] = True
    out = np.zeros(n, bool)
    for i in np.nonzero(fresh)[0]:
        for j in range(n):
            if j == i or slot[j] != slot[i] or out[j]:
                continue
            mine = on_limbs(keypoints[i], ok[i], keypoints[j], ok[j], edges)
            theirs = on_limbs(keypoints[j], ok[j] & top, keypoints[i], ok[i], edges)
            if (ok[i].sum() >= 5 and mine is not None and mine.sum() >= ON_ANOTHER * ok[i].sum()
                    and not (theirs is not None and theirs.any())):
                out[i] = True
                break
    return out


def _distinct(score: np.ndarray, slot: np.ndarray, same) -> np.ndarray:
    keep = np.ones(len(score), bool)
    for i in np.argsort(-score, kind="stable"):
        if keep[i]:
            for j in np.nonzero(keep & (slot == slot[i]))[0]:
                if j != i and score[j] <= score[i] and same(i, j):
                    keep[j] = False
    return keep


def same_roi(a: np.ndarray, b: np.ndarray, tolerance: float = 0.1) -> bool:
    """Whether two ROIs (cx, cy, w, h, rotation) frame the same person: centres closer than
    ``tolerance`` times the larger side and sides within a factor of 1.3. (ROIs are large
    squares around the whole body, so people side by side overlap a lot; the centres, between
    the hips, differ more.)"""
    side_a, side_b = max(a[2], a[3]), max(b[2], b[3])
    near = np.hypot(a[0] - b[0], a[1] - b[1]) < tolerance * max(side_a, side_b)
    return bool(near and max(side_a, side_b) < 1.3 * max(min(side_a, side_b), 1e-6))


def concat_estimates(parts: list[Estimate], num_joints: int, layout: str) -> Estimate:
    per_frame = []
    for e in parts:
        for b in range(e.scores.shape[0]):
            m = e.scores[b] > 0
            per_frame.append((e.keypoints[b, m], e.confidence[b, m], e.scores[b, m]))
    return stack_people(per_frame, num_joints, layout)


def detector_windows(w: int, h: int, detector_size: tuple[int, int], several: bool, *, turn: int | None = None
                     ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Where the pose detector looks in a w x h image: (roi (5,), padding (4,), origin (2,),
    size (2,)) each, pixels. The whole image, letterboxed to ``detector_size``; when looking
    for ``several`` people also closer squares (the detector sees 224 x 224 and keys on faces,
    so people who are small in the frame are found only in a closer window): squares of the
    short side along the long side (all of them when ``turn`` is None), and with ``turn`` = n
    the (n mod count)-th of those and the (n mod count)-th of a grid of squares of half the
    short side over the whole frame (a tracker looking for newcomers takes them in turn: a
    far-off bystander, 450 px tall in a 1080 x 1920 frame and masked, is found only there).
    A detection's keypoints map back as ``normalised * size + origin`` after the padding is
    removed."""
    roi, pad = bp.letterbox(w, h, *detector_size)
    out = [(roi, pad, np.zeros(2), np.array([w, h], np.float64))]
    if not several:
        return out
    side, long = min(w, h), max(w, h)
    along = _squares(w, h, side) if long > 1.2 * side else []
    if turn is None:
        return out + along
    fine = _squares(w, h, side / 2)
    return out + ([along[int(turn) % len(along)]] if along else []) + [fine[int(turn) % len(fine)]]


def fine_window(size: np.ndarray, w: int, h: int) -> bool:
    """Whether a window of :func:`detector_windows` (its ``size`` (2,)) is one of the grid's
    half-side squares."""
    return bool(size[0] < 0.75 * min(w, h))


def _squares(w: int, h: int, side: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Squares of ``side`` pixels covering a w x h image, overlapping by at least a quarter of a
    side, row by row (as :func:`detector_windows` gives its windows)."""
    def starts(length: float) -> np.ndarray:
        return np.linspace(0, length - side, int(np.ceil((length - side) / (0.75 * side))) + 1 if length > side else 1)

    return [(np.array([x + side / 2, y + side / 2, side, side, 0.0]), np.zeros(4), np.array([x, y]),
             np.array([side, side], np.float64)) for y in starts(h) for x in starts(w)]
