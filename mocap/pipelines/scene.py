"""The background's straight lines for a capture (the room's verticals, from which the fit reads
gravity and the focal length): a few frames of the video, the people in them left out
(:mod:`mocap.detect2d.lines`), kept as the 2D stage decodes them where it can."""
from __future__ import annotations

import os

import numpy as np


def scene_frames(span: tuple[int, int], samples: int = 3) -> list[int]:
    """The video frames :func:`scene_lines` looks at: ``samples`` spread over ``span`` (first, stop)."""
    return sorted({int(round(v)) for v in np.linspace(span[0], span[1] - 1, samples)})


class FrameKeeper:
    """A ``keep_frame`` callback of the 2D stage keeping the frames numbered ``picks`` (video
    frame numbers) as they go by, in ``frames``."""

    def __init__(self, picks: list[int]) -> None:
        self.picks, self.frames = set(picks), {}

    def __call__(self, index: int, frame: np.ndarray) -> None:
        if index in self.picks:
            self.frames[index] = frame.copy()


def scene_lines(video: str | os.PathLike, people_px: np.ndarray, span: tuple[int, int], *,
                frames: dict[int, np.ndarray] | None = None, homography: np.ndarray | None = None) -> np.ndarray:
    """(N, 4) straight segments of the static background of ``video``: :func:`scene_of`'s first part."""
    return scene_of(video, people_px, span, frames=frames, homography=homography)[0]


def scene_of(video: str | os.PathLike, people_px: np.ndarray, span: tuple[int, int], *,
             frames: dict[int, np.ndarray] | None = None, homography: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """The straight segments of the static background of ``video`` (pixels), from the frames
    :func:`scene_frames` picks in ``span`` (first, stop), each without the people in it
    (``people_px``: (T, P, J, 2) everyone's keypoints over the video's frames, NaN where
    unseen): what the fit reads gravity from (:func:`mocap.detect2d.lines.scene_segments`);
    and where the picture sits when bars surround it.
    ``frames``: those already decoded, (H, W, 3) uint8 RGB by frame number; the others are read.
    ``homography``: (T, 3, 3) per video frame, onto a reference frame's picture (a camera that
    moved: :mod:`mocap.detect2d.background`): each frame's segments are mapped into that picture.

    Returns:
        ((N, 4) float32 segments; the picture's box inside bars round it, (4,) pixels, or None
        without bars: :func:`mocap.detect2d.lines.frames_picture_box`).
    """
    from mocap.detect2d.background import apply_homography
    from mocap.detect2d.lines import frames_picture_box, people_boxes, scene_segments
    from mocap.io.video import read_frames

    have = dict(frames or {})
    picks = scene_frames(span)
    have.update(read_frames(video, [f for f in picks if f not in have]))
    kept = [(f, have[f]) for f in picks if f in have]
    parts = [scene_segments([img], [people_boxes(people_px[f]) if f < len(people_px) else None]) for f, img in kept]
    if homography is not None:
        parts = [apply_homography(homography[min(f, len(homography) - 1)], p.reshape(-1, 2, 2)).reshape(-1, 4)
                 for (f, _), p in zip(kept, parts)]
    lines = (np.concatenate(parts) if parts else np.zeros((0, 4))).astype(np.float32)
    return lines, (frames_picture_box([img for _, img in kept]) if kept else None)
