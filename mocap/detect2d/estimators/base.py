"""The one interface every 2D pose estimator implements.

An estimator takes a batch of frames and returns every person it finds in each:

- frames: (B, H, W, 3) uint8 RGB (also accepted: a list of (H, W, 3) images of
  different sizes, (B, H, W) or (B, H, W, 1) grey, (B, H, W, 4) RGBA; see
  :func:`as_rgb_batch`).
- :class:`Estimate`: keypoints (B, P, J, 2) float32 pixels of each input frame (x right,
  y down), NaN where a joint or a person slot is missing; confidence (B, P, J) float32 in
  [0, 1], 0 where missing; scores (B, P) float32 person scores, 0 for empty slots. P is
  the largest number of people found in any frame of the batch (P may be 0), people in
  each frame sorted by score, best first.

Estimators are registered by name in :mod:`mocap.detect2d.estimators` and built with
:func:`mocap.detect2d.estimators.get_estimator`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

MIN_SIDE_PX = 16  # smaller images are refused: no estimator can find a person in them


@dataclass(frozen=True)
class Estimate:
    """People found in a batch of frames (shapes in the module docstring)."""

    keypoints: np.ndarray  # (B, P, J, 2) float32 pixels, NaN where missing
    confidence: np.ndarray  # (B, P, J) float32 in [0, 1]
    scores: np.ndarray  # (B, P) float32 person scores in [0, 1], 0 for empty slots
    layout: str  # "mediapipe33" or "coco17"

    def __post_init__(self) -> None:
        b, p, j = self.confidence.shape if self.confidence.ndim == 3 else (None, None, None)
        if b is None or self.keypoints.shape != (b, p, j, 2) or self.scores.shape != (b, p):
            raise ValueError(f"inconsistent Estimate shapes: keypoints {self.keypoints.shape}, "
                             f"confidence {self.confidence.shape}, scores {self.scores.shape}")

    @property
    def num_people(self) -> np.ndarray:
        """(B,) int: people found per frame."""
        return (self.scores > 0).sum(axis=1)


def empty_estimate(batch: int, num_joints: int, layout: str) -> Estimate:
    """An :class:`Estimate` of ``batch`` frames with no one in them (P = 0)."""
    return Estimate(np.zeros((batch, 0, num_joints, 2), np.float32), np.zeros((batch, 0, num_joints), np.float32),
                    np.zeros((batch, 0), np.float32), layout)


def stack_people(per_frame: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], num_joints: int,
                 layout: str) -> Estimate:
    """Pad per-frame results to one :class:`Estimate`.

    Args:
        per_frame: for each frame, (keypoints (P_b, J, 2), confidence (P_b, J), scores (P_b,)).
    """
    p = max((len(s) for _, _, s in per_frame), default=0)
    b = len(per_frame)
    kp = np.full((b, p, num_joints, 2), np.nan, np.float32)
    conf = np.zeros((b, p, num_joints), np.float32)
    scores = np.zeros((b, p), np.float32)
    for i, (k, c, s) in enumerate(per_frame):
        order = np.argsort(-np.asarray(s, np.float64), kind="stable")
        n = len(order)
        if n:
            kp[i, :n] = np.asarray(k, np.float32)[order]
            conf[i, :n] = np.asarray(c, np.float32)[order]
            scores[i, :n] = np.asarray(s, np.float32)[order]
    return Estimate(kp, conf, scores, layout)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """One image -> (H, W, 3) uint8 RGB. Grey (H, W) or (H, W, 1) is repeated, RGBA drops alpha.

    Raises ValueError for other shapes, non-uint8 data that is not in [0, 1] floats, or
    images smaller than 16 pixels on a side.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.size and np.nanmin(a) >= 0.0 and np.nanmax(a) <= 1.0:
            a = np.round(np.nan_to_num(a) * 255.0).astype(np.uint8)
        else:
            raise ValueError(f"images must be uint8 (0-255) or floats in [0, 1], got {a.dtype}")
    if min(a.shape[:2]) < MIN_SIDE_PX:
        raise ValueError(f"image of {a.shape[1]}x{a.shape[0]} pixels is too small (at least {MIN_SIDE_PX} a side)")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a)


def as_rgb_batch(frames: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """(B, H, W[, C]) array or a list of images -> list of (H, W, 3) uint8 RGB images (may be empty)."""
    if isinstance(frames, np.ndarray):
        if frames.ndim not in (3, 4):
            if frames.size == 0:
                return []
            raise ValueError(f"frames must be (B, H, W, C) or (B, H, W), got shape {frames.shape}")
        if frames.shape[0] == 0:
            return []
    return [as_rgb(f) for f in frames]


class Estimator(Protocol):
    """What :func:`mocap.detect2d.estimators.get_estimator` returns."""

    name: str
    layout: str  # "mediapipe33" or "coco17"
    num_joints: int

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray]) -> Estimate:
        """Batch of independent images -> :class:`Estimate` (no tracking between them)."""
        ...


def replace_rows(rows_of, rows: np.ndarray, other):
    """A copy of ``rows_of`` (a dataclass of arrays with N rows each: the landmarks of N ROIs)
    with its rows ``rows`` (a (N,) bool mask or indices) replaced by ``other``'s rows, in order."""
    out = {}
    for f in dataclasses.fields(rows_of):
        a = getattr(rows_of, f.name).copy()
        a[rows] = getattr(other, f.name)
        out[f.name] = a
    return type(rows_of)(**out)
