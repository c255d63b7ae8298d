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

from mocap.detect2d.estimators.base import Estimate, stack_people

class PoseTracker:
    """People followed over time in V synchronised views (MediaPipe's VIDEO-mode logic).

    Each :meth:`step` takes one frame per view; views tracking nobody run the detector
    (batched over those views), and with ``max_people`` > 1 so do views with room for more
    people every ``detect_every`` frames and after a track weakened or ended; detections
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
        self.since = [0] * self.views  # frames since the detector last ran, per view

    def step(self, frames: np.ndarray | Sequence[np.ndarray]) -> Estimate:
        """One frame per view, (V, H, W, 3) or a list of V images -> :class:`Estimate` (V, P, 33, ...)."""
        images = self.model._images(frames)
        if len(images) != self.views:
            raise ValueError(f"this tracker follows {self.views} view(s), got {len(images)} frame(s)")
        m = self.model
        detect = [m._needs_detector(r, w, n) for r, w, n in zip(self.rois, self.weak, self.since)]
        lm, self.rois, self.weak = m._step(images, list(range(self.views)), self.rois, self.refine, detect)
        self.since = [0 if d else n + 1 for d, n in zip(detect, self.since)]
        return m._to_estimate(self.views, lm)


def distinct_rois(rois: np.ndarray, score: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """(N,) bool: False for a ROI that overlaps (IoU > 0.5) a better-scored ROI of the same
    slot: two tracks that converged on one person (after a crossing) become one."""
    keep = np.ones(len(rois), bool)
    for i in np.argsort(-score, kind="stable"):
        if keep[i]:
            for j in np.nonzero(keep & (slot == slot[i]))[0]:
                if j != i and score[j] <= score[i] and roi_overlap(rois[i], rois[j]) > 0.5:
                    keep[j] = False
    return keep


def roi_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the axis-aligned squares of two ROIs (rotation ignored)."""
    ra, rb = max(a[2], a[3]) / 2, max(b[2], b[3]) / 2
    ix = max(0.0, min(a[0] + ra, b[0] + rb) - max(a[0] - ra, b[0] - rb))
    iy = max(0.0, min(a[1] + ra, b[1] + rb) - max(a[1] - ra, b[1] - rb))
    inter = ix * iy
    return inter / (4 * ra * ra + 4 * rb * rb - inter) if inter > 0 else 0.0


def concat_estimates(parts: list[Estimate], num_joints: int, layout: str) -> Estimate:
    per_frame = []
    for e in parts:
        for b in range(e.scores.shape[0]):
            m = e.scores[b] > 0
            per_frame.append((e.keypoints[b, m], e.confidence[b, m], e.scores[b, m]))
    return stack_people(per_frame, num_joints, layout)
