"""2D detection of everyone in a video with any registered estimator, then tracking.

:func:`detect_people_video` runs an estimator of :mod:`mocap.detect2d.estimators` over a video in
batches (decoding overlaps detection), tracks the people across frames
(:func:`mocap.detect2d.tracking.track_people`) and returns :class:`PeopleTracks`. From it,
:meth:`PeopleTracks.person` gives one person as :class:`mocap.formats.Keypoints2D` for the
single-person pipeline, :meth:`PeopleTracks.people` every tracked person, and
:meth:`PeopleTracks.summary` who is there (``people.json``).

The tracker's appearance cue is the colour histogram of each detection's torso
(:func:`torso_histograms`), taken from the frames as they are detected. The PyTorch
BlazePose estimators run in their tracking mode with several people
(:meth:`~mocap.detect2d.estimators.blazepose_torch.BlazePoseTorch.track`: each person's
region of interest from the previous frame, the detector at a cadence and when a track
weakens); other estimators see every frame on its own.

MediaPipe's VIDEO mode (:mod:`mocap.detect2d.mediapipe_pose`) follows one person with its
own region of interest; :meth:`PeopleTracks.from_person` wraps its result so that the
capture reports it the same way.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from mocap.detect2d.tracking import place_frames
from mocap.errors import MocapError
from mocap.formats import Keypoints2D
from mocap.skeletons import get_layout

#: most people the PyTorch BlazePose looks for in a frame
MAX_PEOPLE = 6
#: colour histogram bins per channel (RGB): the descriptor has HIST_BINS ** 3 values
HIST_BINS = 4
_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


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

    @classmethod
    def from_person(cls, keypoints: Keypoints2D) -> PeopleTracks:
        """One person's keypoints (e.g. MediaPipe's VIDEO mode) as tracks: one slot, id 0 where seen."""
        seen = np.isfinite(keypoints.keypoints).all(-1).any(-1)
        return cls(keypoints=keypoints.keypoints[:, None], confidence=keypoints.confidence[:, None],
                   scores=seen[:, None].astype(np.float32), track_ids=np.where(seen, 0, -1)[:, None],
                   layout=keypoints.layout, image_size=keypoints.image_size, fps=keypoints.fps)

    def in_video(self, first: int, num_frames: int) -> PeopleTracks:
        """These tracks, detected in frames ``first`` onwards, placed in a video of
        ``num_frames`` frames: empty slots (NaN, id -1) in the frames outside."""
        return PeopleTracks(keypoints=place_frames(self.keypoints, first, num_frames, np.nan),
                            confidence=place_frames(self.confidence, first, num_frames, 0.0),
                            scores=place_frames(self.scores, first, num_frames, 0.0),
                            track_ids=place_frames(self.track_ids, first, num_frames, -1),
                            layout=self.layout, image_size=self.image_size, fps=self.fps)

    def choose(self, person: str | int = "auto") -> int:
        """The track id ``person`` names (:func:`mocap.detect2d.tracking.choose_track`)."""
        from mocap.detect2d.tracking import choose_track

        if not self.track_list():
            raise MocapError("no person was detected in any frame")
        if isinstance(person, int) and person not in self.track_list():
            raise MocapError(f"no person with id {person}; the video has ids {sorted(self.track_list())}")
        return choose_track(self.keypoints, self.confidence, self.track_ids, person=person)

    def person(self, person: str | int = "auto") -> Keypoints2D:
        """One person's keypoints, every frame of the video: NaN (confidence 0) where that
        person is not seen, never someone else. ``person``: ``"auto"``, ``"largest"``,
        ``"most-present"`` or a track id."""
        from mocap.detect2d.tracking import split_tracks

        tid = self.choose(person)
        kp, conf = split_tracks(self.keypoints, self.confidence, np.where(self.track_ids == tid, tid, -1))[tid]
        return self._wrap(kp, conf)

    def people(self, *, min_seconds: float = 1.0) -> dict[int, Keypoints2D]:
        """Every person seen in frames adding up to at least ``min_seconds``, by track id."""
        from mocap.detect2d.tracking import split_tracks

        min_frames = max(1, int(np.ceil(min_seconds * self.fps - 1e-9)))
        tracks = split_tracks(self.keypoints, self.confidence, self.track_ids)
        keep = set(self.track_list(min_frames=min_frames))
        return {tid: self._wrap(kp, conf) for tid, (kp, conf) in sorted(tracks.items()) if tid in keep}

    def summary(self) -> list[dict]:
        """Per track, most frames first: ``id``, ``first_frame``, ``last_frame``,
        ``frames_visible``, ``median_box`` [x0, y0, x1, y1] pixels (of the confident keypoints),
        ``best_frame`` and ``best_box`` (a frame where the person is seen whole and at about
        their median size, and their box there: for a picture of them)."""
        out = []
        for tid in self.track_list():
            frames, slots = np.nonzero(self.track_ids == tid)
            kp = self.keypoints[frames, slots]
            ok = np.isfinite(kp).all(-1) & (self.confidence[frames, slots] >= 0.3)
            rows = ok.sum(-1) >= 2
            big = np.where(ok[..., None], kp, np.nan)
            boxes = np.concatenate([np.nanmin(big[rows], 1), np.nanmax(big[rows], 1)], -1) if rows.any() \
                else np.full((1, 4), np.nan)
            median = np.median(boxes, 0)
            best, best_box = int(frames[0]), median
            if rows.any():
                size = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], -1))
                near = np.abs(np.log(np.maximum(size, 1) / max(np.median(size), 1))) < 0.2
                k = int(np.argmax(ok[rows].sum(-1) + ok.shape[1] * near))
                best, best_box = int(frames[rows][k]), boxes[k]
            out.append({"id": int(tid), "first_frame": int(frames.min()), "last_frame": int(frames.max()),
                        "frames_visible": int(len(np.unique(frames))),
                        "median_box": [round(float(v), 1) for v in median], "best_frame": best,
                        "best_box": [round(float(v), 1) for v in best_box]})
        return out


def torso_histograms(frame: np.ndarray, keypoints: np.ndarray, confidence: np.ndarray, layout: str, *,
                     min_confidence: float = 0.3, samples: int = 24) -> np.ndarray:
    """Colour histogram of each person's torso, the tracker's appearance cue.

    The torso is the box of the confident shoulders and hips, shrunk by a sixth on each side
    (so the background and the arms count less); ``samples`` x ``samples`` pixels on a grid
    in it are binned in RGB (:data:`HIST_BINS` per channel).

    Args:
        frame: (H, W, 3) uint8 RGB.
        keypoints: (P, J, 2) pixels of the people in it; confidence: (P, J).
        layout: the keypoints' layout (it must name the shoulders and hips).

    Returns:
        (P, HIST_BINS ** 3) float32 histograms summing to 1; NaN rows where fewer than three
        torso points are confident or the torso has no area.
    """
    skel = get_layout(layout)
    idx = [skel.index(n) for n in _TORSO]
    h, w = frame.shape[:2]
    out = np.full((len(keypoints), HIST_BINS ** 3), np.nan, np.float32)
    grid = (np.arange(samples) + 0.5) / samples
    for p in range(len(keypoints)):
        pts = keypoints[p, idx]
        ok = np.isfinite(pts).all(-1) & (confidence[p, idx] >= min_confidence)
        if ok.sum() < 3:
            continue
        lo, hi = pts[ok].min(0), pts[ok].max(0)
        pad = (hi - lo) / 6
        lo, hi = np.maximum(lo + pad, 0), np.minimum(hi - pad, [w - 1, h - 1])
        if (hi - lo).min() < 2:
            continue
        xs = (lo[0] + grid * (hi[0] - lo[0])).astype(int)
        ys = (lo[1] + grid * (hi[1] - lo[1])).astype(int)
        pixels = frame[ys[:, None], xs[None, :]].reshape(-1, 3).astype(np.int64) * HIST_BINS // 256
        codes = (pixels[:, 0] * HIST_BINS + pixels[:, 1]) * HIST_BINS + pixels[:, 2]
        out[p] = np.bincount(codes, minlength=HIST_BINS ** 3) / len(codes)
    return out


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
        batch_size: frames per estimator call. An estimator that tracks (``track`` and
            ``tracker`` methods: the PyTorch BlazePose) follows the people through the video.
        on_batch: called with each batch and its :class:`Estimate` (e.g. to draw overlays).
    """
    from tqdm import tqdm

    from mocap.detect2d.tracking import track_people

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    width, height = (int(v) for v in size)
    if callable(getattr(estimator, "track", None)) and callable(getattr(estimator, "tracker", None)):
        tracker = estimator.tracker(1, refine=True)  # follows the people from block to block
        run = lambda batch: estimator.track(batch, tracker=tracker)  # noqa: E731
    else:
        run = lambda batch: estimator(np.stack(batch))  # noqa: E731
    parts, looks = [], []
    with tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, disable=not progress) as bar:
        for batch in _batches(frames, batch_size):
            for i, f in enumerate(batch):
                if f.shape[:2] != (height, width):
                    raise MocapError(f"a frame is {f.shape[1]}x{f.shape[0]} pixels, expected {width}x{height}")
            est = run(batch)
            if on_batch is not None:
                on_batch(batch, est)
            looks.append(np.stack([torso_histograms(f, k, c, est.layout)
                                   for f, k, c in zip(batch, est.keypoints, est.confidence)]))
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
    look = np.concatenate([pad(x, np.nan) for x in looks]) if p else None
    t = sum(e.scores.shape[0] for e in parts)
    if p == 0:
        kp, conf, scores = np.full((t, 0, j, 2), np.nan, np.float32), np.zeros((t, 0, j), np.float32), np.zeros((t, 0), np.float32)
        ids = np.zeros((t, 0), np.int64)
    else:
        ids = track_people(kp, conf, scores, layout=parts[0].layout, appearance=look)
    return PeopleTracks(keypoints=kp.astype(np.float32), confidence=conf.astype(np.float32),
                        scores=scores.astype(np.float32), track_ids=np.asarray(ids), layout=parts[0].layout,
                        image_size=(width, height), fps=float(fps))


def detect_people_video(path: str | os.PathLike, *, detector: str, device: str = "cpu", batch_size: int = 8,
                        max_people: int = MAX_PEOPLE, progress: bool = True,
                        frames: tuple[int, int] | None = None) -> PeopleTracks:
    """Everyone in the video at ``path`` with the estimator called ``detector``, tracked.

    The PyTorch BlazePose looks for up to ``max_people`` people and follows each from frame to
    frame. ``batch_size``: frames decoded per call (default 8). ``frames``: (first, stop),
    detect only in video frames ``first`` to ``stop - 1`` (the others are not decoded); the
    tracks still cover every frame of the video, empty outside.
    """
    from mocap.detect2d.mediapipe_pose import _prefetch
    from mocap.detect2d.estimators import BLAZEPOSE_TORCH, get_estimator
    from mocap.io.video import iter_frames, probe_video

    info = probe_video(path)
    kwargs = {"device": device, "max_people": max_people} if detector in BLAZEPOSE_TORCH else {}
    estimator = get_estimator(detector, **kwargs)
    first, stop = (0, info.frame_count) if frames is None else frames
    try:
        with contextlib.closing(_prefetch(iter_frames(path, rgb=True, start=first, stop=stop))) as chosen:
            tracks = detect_people_frames(chosen, info.fps, info.size, estimator=estimator, batch_size=batch_size,
                                          progress=progress, total=stop - first, desc=f"{Path(path).name} ({detector})")
        return tracks if frames is None else tracks.in_video(first, info.frame_count)
    finally:
        close = getattr(estimator, "close", None)
        if callable(close):
            close()
