"""2D detection of everyone in a video with any registered estimator, then tracking.

:func:`detect_people_video` runs an estimator of :mod:`mocap.detect2d.estimators` over a video in
batches (decoding overlaps detection), tracks the people across frames
(:func:`mocap.detect2d.tracking.track_people`) and returns :class:`PeopleTracks`. From it,
:meth:`PeopleTracks.person` gives one person as :class:`mocap.formats.Keypoints2D` for the
single-person pipeline, and :meth:`PeopleTracks.people` every tracked person.

The default capture path keeps MediaPipe's VIDEO mode (:mod:`mocap.detect2d.mediapipe_pose`), which tracks
one person with its own region of interest; this module is what ``--detector NAME`` and
``--person`` use.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from mocap.errors import MocapError
from mocap.formats import Keypoints2D


@dataclass(frozen=True)
class PeopleTracks:
    """Everyone an estimator found in a video, with track ids.

    keypoints (T, P, J, 2) float32 pixels (NaN where missing), confidence (T, P, J),
    scores (T, P), track_ids (T, P) int (-1 for empty slots), plus the layout, image size
    (width, height) and fps of the video.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray
    layout: str
    image_size: tuple[int, int]
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    def track_list(self, *, min_frames: int = 1) -> list[int]:
        """Track ids seen in at least ``min_frames`` frames, most frames first."""
        ids, counts = np.unique(self.track_ids[self.track_ids >= 0], return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return [int(ids[i]) for i in order if counts[i] >= min_frames]

    def _wrap(self, kp: np.ndarray, conf: np.ndarray) -> Keypoints2D:
        return Keypoints2D(keypoints=kp.astype(np.float32), confidence=conf.astype(np.float32), layout=self.layout,
                           image_size=self.image_size, fps=self.fps)

    def person(self, person: str | int = "largest") -> Keypoints2D:
        """One person's keypoints: ``"largest"``, ``"most-present"`` or a track id."""
        from mocap.detect2d.tracking import select_person

        if isinstance(person, int) and person not in self.track_list():
            raise MocapError(f"no person with id {person}; the video has ids {self.track_list() or 'none'}")
        kp, conf = select_person(self.keypoints, self.confidence, self.track_ids, person=person)
        return self._wrap(kp, conf)

    def people(self, *, min_fraction: float = 0.2) -> dict[int, Keypoints2D]:
        """Every person seen in at least ``min_fraction`` of the frames, by track id."""
        from mocap.detect2d.tracking import split_tracks

        min_frames = max(1, int(np.ceil(min_fraction * self.num_frames)))
        tracks = split_tracks(self.keypoints, self.confidence, self.track_ids)
        keep = set(self.track_list(min_frames=min_frames))
        return {tid: self._wrap(kp, conf) for tid, (kp, conf) in sorted(tracks.items()) if tid in keep}


def _batches(frames: Iterable[np.ndarray], size: int) -> Iterable[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for f in frames:
        batch.append(f)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def detect_people_frames(frames: Iterable[np.ndarray], fps: float, size: tuple[int, int], *, estimator,
                         batch_size: int = 8, progress: bool = True, total: int | None = None,
                         desc: str = "detect 2D",
                         on_batch: Callable[[list[np.ndarray], object], None] | None = None) -> PeopleTracks:
    """Run ``estimator`` (see :mod:`mocap.detect2d.estimators.base`) over frames and track the people.

    Args:
        frames: (H, W, 3) uint8 RGB frames in time order, all of ``size`` (width, height).
        fps: frames per second.
        estimator: an object implementing the estimator interface.
        batch_size: frames per estimator call.
        on_batch: called with each batch and its :class:`Estimate` (e.g. to draw overlays).
    """
    from tqdm import tqdm

    from mocap.detect2d.tracking import track_people

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    width, height = (int(v) for v in size)
    parts = []
    with tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, disable=not progress) as bar:
        for batch in _batches(frames, batch_size):
            for i, f in enumerate(batch):
                if f.shape[:2] != (height, width):
                    raise MocapError(f"a frame is {f.shape[1]}x{f.shape[0]} pixels, expected {width}x{height}")
            est = estimator(np.stack(batch))
            if on_batch is not None:
                on_batch(batch, est)
            parts.append(est)
            bar.update(len(batch))
    if not parts:
        raise MocapError("no frames to detect people in")
    p = max(e.scores.shape[1] for e in parts)
    j = parts[0].confidence.shape[2]

    def pad(a: np.ndarray, fill: float) -> np.ndarray:
        widths = [(0, 0), (0, p - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
        return np.pad(a, widths, constant_values=fill)

    kp = np.concatenate([pad(e.keypoints, np.nan) for e in parts]) if p else np.full((0, 0, j, 2), np.nan)
    conf = np.concatenate([pad(e.confidence, 0.0) for e in parts]) if p else np.zeros((0, 0, j))
    scores = np.concatenate([pad(e.scores, 0.0) for e in parts]) if p else np.zeros((0, 0))
    t = sum(e.scores.shape[0] for e in parts)
    if p == 0:
        kp, conf, scores = np.full((t, 0, j, 2), np.nan, np.float32), np.zeros((t, 0, j), np.float32), np.zeros((t, 0), np.float32)
        ids = np.zeros((t, 0), np.int64)
    else:
        ids = track_people(kp, conf, scores, layout=parts[0].layout)
    return PeopleTracks(keypoints=kp.astype(np.float32), confidence=conf.astype(np.float32),
                        scores=scores.astype(np.float32), track_ids=np.asarray(ids), layout=parts[0].layout,
                        image_size=(width, height), fps=float(fps))


def detect_people_video(path: str | os.PathLike, *, detector: str, device: str = "cpu", batch_size: int = 8,
                        progress: bool = True) -> PeopleTracks:
    """Everyone in the video at ``path`` with the estimator called ``detector``, tracked."""
    from mocap.detect2d.mediapipe_pose import _prefetch
    from mocap.detect2d.estimators import BLAZEPOSE_TORCH, get_estimator
    from mocap.io.video import iter_frames, probe_video

    info = probe_video(path)
    kwargs = {"device": device} if detector in BLAZEPOSE_TORCH else {}
    estimator = get_estimator(detector, **kwargs)
    try:
        with contextlib.closing(_prefetch(iter_frames(path, rgb=True))) as frames:
            return detect_people_frames(frames, info.fps, info.size, estimator=estimator, batch_size=batch_size,
                                        progress=progress, total=info.frame_count, desc=f"{Path(path).name} ({detector})")
    finally:
        close = getattr(estimator, "close", None)
        if callable(close):
            close()
