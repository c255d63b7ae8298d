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
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

from mocap.detect2d.tracking import keypoint_boxes, place_frames
from mocap.errors import MocapError
from mocap.formats import Keypoints2D
from mocap.skeletons import get_layout

#: most people the PyTorch BlazePose looks for in a frame
MAX_PEOPLE = 6
#: colour histogram bins per channel (RGB): the descriptor has HIST_BINS ** 3 values
HIST_BINS = 4
#: people.json lists the tracks seen for at least this long (seconds; shorter ones are mostly
#: the detector's mistakes, a few frames each), and any captured
LISTED_MIN_S = 0.25
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

    def within(self, first: int, stop: int) -> PeopleTracks:
        """These tracks in video frames ``first`` to ``stop - 1`` only: empty slots (NaN, id -1) in
        the other frames (one shot of a video that cuts: :mod:`mocap.detect2d.shots`)."""
        keep = np.zeros(self.num_frames, bool)
        keep[max(0, first):max(0, stop)] = True
        where = keep[:, None]
        return PeopleTracks(keypoints=np.where(where[..., None, None], self.keypoints, np.nan).astype(np.float32),
                            confidence=np.where(where[..., None], self.confidence, 0.0).astype(np.float32),
                            scores=np.where(where, self.scores, 0.0).astype(np.float32),
                            track_ids=np.where(where, self.track_ids, -1),
                            layout=self.layout, image_size=self.image_size, fps=self.fps)

    def choose(self, person: str | int = "auto") -> int:
        """The track id ``person`` names (:func:`mocap.detect2d.choose.choose_track`)."""
        from mocap.detect2d.choose import choose_track

        if not self.track_list():
            raise MocapError("no person was detected in any frame")
        if isinstance(person, int) and person not in self.track_list():
            raise MocapError(f"no person with id {person}; the video has ids {sorted(self.track_list())}")
        return choose_track(self.keypoints, self.confidence, self.track_ids, person=person)

    def person(self, person: str | int = "auto") -> Keypoints2D:
        """One person's keypoints, every frame of the video: NaN (confidence 0) where that
        person is not seen, never someone else. ``person``: ``"auto"``, ``"largest"``,
        ``"most-present"`` or a track id."""
        from mocap.detect2d.choose import split_tracks

        tid = self.choose(person)
        kp, conf = split_tracks(self.keypoints, self.confidence, np.where(self.track_ids == tid, tid, -1))[tid]
        return self._wrap(kp, conf)

    def people(self, *, min_seconds: float = 1.0) -> dict[int, Keypoints2D]:
        """Every person seen in frames adding up to at least ``min_seconds``, by track id."""
        from mocap.detect2d.choose import split_tracks

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
            boxes = keypoint_boxes(np.where(ok[..., None], kp, np.nan)[rows]) if rows.any() else np.full((1, 4), np.nan)
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

    def listing(self, captured: Mapping[int, str | None], chosen: int, *,
                min_seconds: float = LISTED_MIN_S) -> dict:
        """The people.json document: who is in the video and who was captured.

        Args:
            captured: {track id: its output folder name, or None for the main output} of
                the people captured.
            chosen: the track id of the main output (motion.npz).
            min_seconds: tracks seen in fewer frames than this many seconds (at least one
                frame) are left out, unless captured.

        Returns:
            {"num_frames", "fps", "captured": chosen, "short_tracks_not_listed": count,
            "people": the :meth:`summary` entries listed, each with "captured" (bool) and
            "folder" (str or None) added}.
        """
        listed = max(1, int(round(min_seconds * self.fps)))
        people = [p for p in self.summary() if p["frames_visible"] >= listed or p["id"] in captured]
        for p in people:
            p["captured"] = p["id"] in captured
            p["folder"] = captured.get(p["id"])
        return {"num_frames": self.num_frames, "fps": self.fps, "captured": chosen,
                "short_tracks_not_listed": len(self.track_list()) - len(people), "people": people}


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


def _runner(estimator) -> Callable[[list[np.ndarray]], object]:
    """``run(frames)`` -> the estimator's :class:`Estimate` of consecutive frames. An estimator
    that tracks (``track`` and ``tracker`` methods: the PyTorch BlazePose) follows the people
    from call to call (each person's region of interest from the previous frame); others see
    each frame on its own."""
    if callable(getattr(estimator, "track", None)) and callable(getattr(estimator, "tracker", None)):
        tracker = estimator.tracker(1, refine=True)
        return lambda batch: estimator.track(batch, tracker=tracker)
    return lambda batch: estimator(np.stack(batch))


def build_estimator(detector: str, *, device: str = "cpu", max_people: int = MAX_PEOPLE, **kwargs):
    """The estimator called ``detector`` for finding everyone (the PyTorch BlazePose looking for
    up to ``max_people`` people on ``device``; ``kwargs`` go to it too)."""
    from mocap.detect2d.estimators import BLAZEPOSE_TORCH, get_estimator

    if detector in BLAZEPOSE_TORCH:
        return get_estimator(detector, device=device, max_people=max_people, **kwargs)
    return get_estimator(detector)


def _batches(frames: Iterable[np.ndarray], size: int) -> Iterable[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for f in frames:
        batch.append(f)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def video_batches(path: str | os.PathLike, *, size: int, start: int, stop: int, desc: str,
                  progress: bool = True) -> Iterator[list[np.ndarray]]:
    """Frames ``start`` to ``stop - 1`` of the video at ``path``, (H, W, 3) uint8 RGB decoded
    ahead in a thread, in lists of ``size`` consecutive frames, with a progress bar ``desc``
    (the second passes over a video: hands, face)."""
    from tqdm import tqdm

    from mocap.detect2d.mediapipe_pose import _prefetch
    from mocap.io.video import iter_frames

    with contextlib.closing(_prefetch(iter_frames(path, rgb=True, start=start, stop=stop))) as video, \
            tqdm(total=stop - start, desc=desc, unit="frame", file=sys.stderr, disable=not progress) as bar:
        for batch in _batches(video, size):
            yield batch
            bar.update(len(batch))


def detect_people_frames(frames: Iterable[np.ndarray], fps: float, size: tuple[int, int], *, estimator,
                         batch_size: int = 8, progress: bool = True, total: int | None = None,
                         desc: str = "detect 2D", first: int = 0,
                         keep_frame: Callable[[int, np.ndarray], None] | None = None) -> PeopleTracks:
    """Run ``estimator`` (see :mod:`mocap.detect2d.estimators.base`) over frames and track the people.

    Args:
        frames: (H, W, 3) uint8 RGB frames in time order, all of ``size`` (width, height).
        fps: frames per second.
        estimator: an object implementing the estimator interface.
        batch_size: frames per estimator call. An estimator that tracks (``track`` and
            ``tracker`` methods: the PyTorch BlazePose) follows the people through the video
            (:func:`_runner`).
        keep_frame: called with each frame's number (``first`` for the first) and the frame,
            as they go by (e.g. to keep a few of them).
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    run = _runner(estimator)
    parts, looks = [], []
    with tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, disable=not progress) as bar:
        for batch in _batches(frames, batch_size):
            _check_frames(batch, size)
            est = run(batch)
            if keep_frame is not None:
                for f in batch:
                    keep_frame(first, f)
                    first += 1
            looks.append(_looks(batch, est))
            parts.append(est)
            bar.update(len(batch))
    return _tracked(parts, looks, fps, size)


def _check_frames(frames: list[np.ndarray], size: tuple[int, int]) -> None:
    width, height = (int(v) for v in size)
    for f in frames:
        if f.shape[:2] != (height, width):
            raise MocapError(f"a frame is {f.shape[1]}x{f.shape[0]} pixels, expected {width}x{height}")


def _looks(frames: list[np.ndarray], est) -> np.ndarray:
    """(B, P, HIST_BINS ** 3) the torso colour histograms of everyone in ``est`` (an :class:`Estimate` of ``frames``)."""
    return np.stack([torso_histograms(f, k, c, est.layout) for f, k, c in zip(frames, est.keypoints, est.confidence)])


def _tracked(parts: list, looks: list[np.ndarray], fps: float, size: tuple[int, int]) -> PeopleTracks:
    """The :class:`PeopleTracks` of consecutive :class:`Estimate` ``parts`` (with the torso
    histograms ``looks`` of each): everyone given track ids (:func:`mocap.detect2d.tracking.track_people`),
    less the tracks that are only a part of another person (:func:`mocap.detect2d.parts.drop_parts`)."""
    from mocap.detect2d.parts import drop_parts
    from mocap.detect2d.tracking import track_people

    width, height = (int(v) for v in size)
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
        ids = drop_parts(kp, conf, track_people(kp, conf, scores, layout=parts[0].layout, appearance=look),
                         layout=parts[0].layout)
    return PeopleTracks(keypoints=kp.astype(np.float32), confidence=conf.astype(np.float32),
                        scores=scores.astype(np.float32), track_ids=np.asarray(ids), layout=parts[0].layout,
                        image_size=(width, height), fps=float(fps))


#: :func:`detect_people_video` cuts a video into this many segments, tracked side by side ...
SEGMENTS = 4
#: ... each at least this many frames long; ...
SEGMENT_MIN_FRAMES = 50
#: ... and each but the first starts tracking this many frames early (the previous segment's
#: last frames, whose results it drops), so that at its seam it follows the people the
#: previous segment followed rather than only those the detector finds in that one frame
#: (someone half hidden behind another person)
SEGMENT_WARMUP = 8


def segment_bounds(first: int, stop: int, segments: int | None = None,
                   min_frames: int | None = None) -> list[tuple[int, int]]:
    """Frames ``first`` to ``stop - 1`` cut into at most ``segments`` (default
    :data:`SEGMENTS`) runs of consecutive frames, (first, stop) each, of near-equal length and
    at least ``min_frames`` (default :data:`SEGMENT_MIN_FRAMES`; one run when the span is
    shorter than two)."""
    segments = SEGMENTS if segments is None else segments
    min_frames = SEGMENT_MIN_FRAMES if min_frames is None else min_frames
    if segments < 1 or min_frames < 1:
        raise ValueError(f"segments and min_frames must be at least 1, got {segments} and {min_frames}")
    k = max(1, min(int(segments), (stop - first) // int(min_frames)))
    edges = np.linspace(first, stop, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def detect_people_video(path: str | os.PathLike, *, detector: str, device: str = "cpu", batch_size: int = 8,
                        max_people: int = MAX_PEOPLE, progress: bool = True,
                        frames: tuple[int, int] | None = None, segments: int | None = None,
                        keep_frame: Callable[[int, np.ndarray], None] | None = None) -> PeopleTracks:
    """Everyone in the video at ``path`` with the estimator called ``detector``, tracked.

    The PyTorch BlazePose looks for up to ``max_people`` people and follows each from frame to
    frame. Tracking is serial in time, one network call per frame holding that frame's people,
    and small batches are what the landmark network runs slowest per crop on a CPU: so the
    video is cut into ``segments`` (default :data:`SEGMENTS`; :func:`segment_bounds`), each decoded by its own reader
    and followed by its own stream of one tracker (a segment's first frame goes through the
    detector), and the segments advance side by side, every call holding the people of one
    frame of each. The ids are given afterwards over the whole video, across the segments'
    seams as between any two frames (:func:`mocap.detect2d.tracking.track_people`).
    ``segments=1``: one stream from the first frame to the last. Other estimators see each
    frame on its own, ``batch_size`` frames per call (default 8).

    ``frames``: (first, stop), detect only in video frames ``first`` to ``stop - 1`` (the
    others are not decoded); the tracks still cover every frame of the video, empty outside.
    ``keep_frame``: called with each frame's video number and the frame as they are decoded
    (in segments, not in order).
    """
    from mocap.detect2d.mediapipe_pose import _prefetch
    from mocap.io.video import iter_frames, probe_video

    info = probe_video(path)
    estimator = build_estimator(detector, device=device, max_people=max_people)
    first, stop = (0, info.frame_count) if frames is None else frames
    bounds = segment_bounds(first, stop, segments) if callable(getattr(estimator, "tracker", None)) else [(first, stop)]
    desc = f"{Path(path).name} ({detector})"
    try:
        if len(bounds) > 1:
            tracks = _detect_segments(path, bounds, estimator, info.fps, info.size, progress=progress, desc=desc,
                                      keep_frame=keep_frame)
        else:
            with contextlib.closing(_prefetch(iter_frames(path, rgb=True, start=first, stop=stop))) as chosen:
                tracks = detect_people_frames(chosen, info.fps, info.size, estimator=estimator, batch_size=batch_size,
                                              progress=progress, total=stop - first, desc=desc, first=first,
                                              keep_frame=keep_frame)
        return tracks if frames is None else tracks.in_video(first, info.frame_count)
    finally:
        close = getattr(estimator, "close", None)
        if callable(close):
            close()


def _detect_segments(path: str | os.PathLike, bounds: list[tuple[int, int]], estimator, fps: float,
                     size: tuple[int, int], *, progress: bool, desc: str,
                     keep_frame: Callable[[int, np.ndarray], None] | None) -> PeopleTracks:
    """:func:`detect_people_video` over the segments ``bounds`` side by side (see there): the
    :class:`PeopleTracks` of frames ``bounds[0][0]`` onwards, up to where the video stopped
    if it ended before a segment did."""
    from tqdm import tqdm

    from mocap.detect2d.estimators.base import Estimate
    from mocap.detect2d.mediapipe_pose import _prefetch
    from mocap.io.video import VideoEndsEarly, iter_frames

    tracker = estimator.tracker(len(bounds), refine=True)
    found: list[list[tuple[Estimate, np.ndarray]]] = [[] for _ in bounds]
    starts = [a if k == 0 else max(bounds[0][0], a - SEGMENT_WARMUP) for k, (a, _) in enumerate(bounds)]
    ahead = [a - s for s, (a, _) in zip(starts, bounds)]  # frames each segment tracks before its own
    def reader(k: int) -> Iterator[np.ndarray]:
        try:
            return _prefetch(iter_frames(path, rgb=True, start=starts[k], stop=bounds[k][1]))
        except VideoEndsEarly:  # a cut file declaring more frames than it holds: the segment is empty
            if k == 0:
                raise
            return (f for f in ())

    with contextlib.ExitStack() as stack:
        readers = [stack.enter_context(contextlib.closing(reader(k))) for k in range(len(bounds))]
        bar = stack.enter_context(tqdm(total=bounds[-1][1] - bounds[0][0], desc=desc, unit="frame",
                                       file=sys.stderr, disable=not progress))
        active = list(range(len(bounds)))
        while active:
            step = [(k, f) for k in active for f in (next(readers[k], None),) if f is not None]
            active = [k for k, _ in step]
            if not step:
                break
            batch = [f for _, f in step]
            _check_frames(batch, size)
            est = tracker.step(batch, views=active)
            looks = _looks(batch, est)
            for i, (k, f) in enumerate(step):
                if ahead[k] > 0:  # warming up on the previous segment's last frames
                    ahead[k] -= 1
                    continue
                if keep_frame is not None:
                    keep_frame(bounds[k][0] + len(found[k]), f)
                found[k].append((Estimate(est.keypoints[i:i + 1], est.confidence[i:i + 1], est.scores[i:i + 1],
                                          est.layout), looks[i:i + 1]))
                bar.update(1)
    parts: list[tuple[Estimate, np.ndarray]] = []
    for (a, b), got in zip(bounds, found):
        parts += got
        if len(got) < b - a:  # the video stopped early: nothing after this
            break
    return _tracked([e for e, _ in parts], [x for _, x in parts], fps, size)


def detect_person_video(path: str | os.PathLike, *, detector: str, person: str | int = "auto",
                        track_everyone: bool = True, device: str = "cpu", progress: bool = True,
                        on_frame: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None,
                        frames: tuple[int, int] | None = None,
                        keep_frame: Callable[[int, np.ndarray], None] | None = None
                        ) -> tuple[Keypoints2D | None, PeopleTracks, int]:
    """The 2D stage of a one-view capture: the chosen person's keypoints, everyone's tracks.

    With ``track_everyone`` (:attr:`mocap.detect2d.options.DetectionOptions.tracks_people`)
    everyone is detected with ``detector`` and tracked (:func:`detect_people_video`) and
    ``person`` picks the track (:meth:`PeopleTracks.choose`); else MediaPipe's VIDEO mode
    follows one person (:func:`mocap.detect2d.mediapipe_pose.detect_video`, which calls
    ``on_frame`` with each frame as it goes, e.g. to draw an overlay), wrapped as one track,
    id 0 (:meth:`PeopleTracks.from_person`). ``frames``: (first, stop), detect only in video
    frames ``first`` to ``stop - 1``; the keypoints still cover every frame, NaN outside.
    ``keep_frame``: with ``track_everyone``, called with each frame's video number and the
    frame as they are decoded (:func:`detect_people_video`).

    Returns:
        (the person's keypoints, every frame of the video: (T, J, 2) pixels, NaN (confidence
        0) where that person is not seen, never someone else; None when nobody was tracked
        in any frame. The tracks. The chosen track id.)
    """
    if not track_everyone:
        from mocap.detect2d.mediapipe_pose import detect_video

        keypoints = detect_video(path, progress=progress, on_frame=on_frame, frames=frames)
        return keypoints, PeopleTracks.from_person(keypoints), 0
    tracks = detect_people_video(path, detector=detector, device=device, progress=progress, frames=frames,
                                 keep_frame=keep_frame)
    if not tracks.track_list():
        return None, tracks, 0
    chosen = tracks.choose(person)
    return tracks.person(chosen), tracks, chosen


class LivePeople:
    """Everyone in a live stream (a camera), tracked frame by frame, and the main person.

    Each :meth:`step` runs the estimator on one frame (the PyTorch BlazePose following every
    person from the previous frame, as :func:`detect_people_frames` does), gives the people
    track ids at once (:class:`mocap.detect2d.tracking.PeopleTracker`, with the torso colour
    histograms) and returns the chosen person: ``person`` as in :meth:`PeopleTracks.choose`,
    judged on the frames so far (``"auto"``: present longest, weighted by size, until now).
    Over the frames of a file the ids are those :func:`detect_people_frames` gives, and
    after the last frame the choice is the offline one. Where the chosen person is not in a
    frame, the keypoints are NaN (confidence 0): never someone else.

    Args:
        detector: an estimator name (:data:`mocap.detect2d.estimators.ESTIMATORS`, not "mediapipe").
        person: ``"auto"``, ``"largest"``, ``"most-present"`` or a track id.
        device: torch device of the PyTorch BlazePose.
        min_confidence: the PyTorch BlazePose's detection and presence threshold, in [0, 1].
    """

    def __init__(self, *, detector: str = "blazepose-torch", person: str | int = "auto", device: str = "cpu",
                 min_confidence: float = 0.5, max_people: int = MAX_PEOPLE) -> None:
        from mocap.detect2d.estimators import BLAZEPOSE_TORCH

        if detector == "mediapipe":
            raise ValueError("MediaPipe follows one person with its own tracking: use mocap.detect2d.mediapipe_pose")
        extra = {"min_confidence": min_confidence} if detector in BLAZEPOSE_TORCH else {}
        self.estimator = build_estimator(detector, device=device, max_people=max_people, **extra)
        self.layout = self.estimator.layout
        self.person = person
        self._run = _runner(self.estimator)
        self._tracker = None
        self._sizes: dict[int, list[float]] = {}
        self._frames: dict[int, int] = {}

    def step(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, int | None]:
        """One frame (H, W, 3) uint8 RGB -> the chosen person's keypoints (J, 2) pixels (NaN
        where not seen), confidence (J,) (0 there) and track id (None before anyone is seen)."""
        from mocap.detect2d.choose import person_size, pick_track, track_stats
        from mocap.detect2d.tracking import PeopleTracker

        est = self._run([frame])
        kp, conf, scores = est.keypoints[0], np.nan_to_num(est.confidence[0]), est.scores[0]
        if self._tracker is None:
            self._tracker = PeopleTracker(kp.shape[-2], layout=est.layout, appearance=True)
        ids = self._tracker.step(kp, conf, scores, torso_histograms(frame, kp, conf, est.layout))
        for p in np.nonzero(ids >= 0)[0]:
            tid = int(ids[p])
            self._frames[tid] = self._frames.get(tid, 0) + 1
            size = person_size(kp[p], conf[p])
            self._sizes.setdefault(tid, [])
            if size is not None:
                self._sizes[tid].append(size)
        chosen = None
        if isinstance(self.person, int) and not isinstance(self.person, bool):
            chosen = self.person  # not seen yet: nobody, until they are
        elif self._frames:
            chosen = pick_track({t: track_stats(self._sizes[t], n) for t, n in self._frames.items()}, self.person)
        j = kp.shape[-2]
        here = np.nonzero(ids == chosen)[0] if chosen is not None else []
        if not len(here):
            return np.full((j, 2), np.nan, np.float32), np.zeros(j, np.float32), chosen
        p = here[0]
        seen = np.isfinite(kp[p]).all(-1)
        return kp[p].astype(np.float32), np.where(seen, conf[p], 0.0).astype(np.float32), chosen

    def close(self) -> None:
        close = getattr(self.estimator, "close", None)
        if callable(close):
            close()
