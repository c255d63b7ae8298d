"""2D pose detection with MediaPipe's PoseLandmarker (BlazePose, full model), offline.

The Tasks API wants a ``.task`` bundle; mediapipe 0.10.21 ships only the two raw tflite
models (pose detector and landmark model). :func:`pose_landmarker_bundle` gives each the
metadata MediaPipe needs with mediapipe's own metadata writer, zips them into a bundle
once, and caches it in ``$MOCAP_CACHE_DIR`` (default ``~/.cache/mocap-lift/``).

Output: :class:`mocap.formats.Keypoints2D` in the ``mediapipe33`` layout, pixels of the
upright frame (x right, y down), NaN and confidence 0 where no person was found.

Confidence is the landmark's ``visibility``. In mediapipe 0.10.21 the Tasks API already
returns it as a probability (sigmoid applied; measured on a real clip: 0.66 to 1.0, never
outside [0, 1]); some older releases returned raw logits, so values outside [0, 1] are
taken for logits and passed through a sigmoid, then everything is clipped to [0, 1].

MediaPipe is imported inside the functions that need it (``pip install 'mocap-lift[detect]'``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import sys
import threading
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Self, TypeVar

import numpy as np

from mocap.io.model_files import cache_dir
from mocap.errors import MocapError, missing_extra
from mocap.formats import Keypoints2D, atomic_path
from mocap.skeletons import MEDIAPIPE33

NUM_LANDMARKS = 33
_DETECTOR_TFLITE = ("modules", "pose_detection", "pose_detection.tflite")
_LANDMARKS_TFLITE = ("modules", "pose_landmark", "pose_landmark_full.tflite")

#: Value ranges the networks take pixels 0..255 to, as MediaPipe's own pose graph feeds them
#: (tests check these against the graph's ImageToTensor options).
DETECTOR_INPUT_RANGE = (-1.0, 1.0)
LANDMARKS_INPUT_RANGE = (0.0, 1.0)

T = TypeVar("T")


def _mediapipe():
    try:
        import mediapipe
    except ImportError:
        raise missing_extra("mediapipe", "detect") from None
    return mediapipe


def _with_metadata(tflite: Path, *, norm_mean: float, norm_std: float) -> bytes:
    """The tflite model with image-input / feature-output metadata added (what Tasks reads):
    pixels p in 0..255 reach the network as (p - norm_mean) / norm_std."""
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, writer_utils

    buffer = bytearray(tflite.read_bytes())
    writer = metadata_writer.MetadataWriter.create(buffer)
    writer.add_image_input(norm_mean=[norm_mean], norm_std=[norm_std])
    for _ in writer_utils.get_output_tensor_types(buffer):
        writer.add_feature_output()
    model, _ = writer.populate()
    return bytes(model)


def pose_landmarker_bundle() -> Path:
    """Path of the PoseLandmarker ``.task`` bundle, built from the installed mediapipe once.

    The bundle is named after the mediapipe version, written to a temporary file and
    renamed into place, so concurrent first calls cannot leave a broken file.
    """
    mp = _mediapipe()
    from mediapipe.tasks.python.metadata.metadata_writers import model_asset_bundle_utils

    root = Path(mp.__file__).parent
    sources = [root.joinpath(*_DETECTOR_TFLITE), root.joinpath(*_LANDMARKS_TFLITE)]
    for src in sources:
        if not src.is_file():
            raise MocapError(f"mediapipe {mp.__version__} has no {src.name} (only releases up to 0.10.21 "
                             f"ship the pose models); install it with: pip install 'mocap-lift[detect]'")
    # v2: the detector's input range fixed to MediaPipe's own [-1, 1] (v1 gave it [0, 1],
    # which lowered its scores and shifted the crops by ~30 px)
    target = cache_dir() / f"pose_landmarker_full-mediapipe{mp.__version__}-v2.task"
    if target.is_file() and zipfile.is_zipfile(target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MocapError(f"cannot create the cache folder {target.parent} ({e.strerror}); "
                         f"set MOCAP_CACHE_DIR to a writable folder") from None
    models = {name: _with_metadata(src, norm_mean=-lo * 255.0 / (hi - lo), norm_std=255.0 / (hi - lo))
              for (name, (lo, hi)), src in zip((("pose_detector.tflite", DETECTOR_INPUT_RANGE),
                                                ("pose_landmarks_detector.tflite", LANDMARKS_INPUT_RANGE)), sources)}
    with atomic_path(target) as tmp:
        model_asset_bundle_utils.create_model_asset_bundle(models, str(tmp))
    return target


def _visibility_to_confidence(v: np.ndarray) -> np.ndarray:
    """(..., J) visibility -> confidence in [0, 1] (logits from old releases get a sigmoid)."""
    v = np.asarray(v, dtype=np.float32)
    if v.size and (v.min() < 0.0 or v.max() > 1.0):
        from scipy.special import expit

        v = expit(v)
    return np.clip(v, 0.0, 1.0)


class LandmarkerOwner:
    """Holds a MediaPipe PoseLandmarker built by :func:`open_pose_landmarker` (in
    ``self._landmarker``; None once closed): a context manager, and :meth:`close`."""

    _landmarker = None

    def _open_landmarker(self, *, video: bool, num_poses: int, min_pose_confidence: float,
                         min_tracking_confidence: float | None = None) -> None:
        """MediaPipe's PoseLandmarker on the :func:`pose_landmarker_bundle`, in VIDEO mode
        (tracked between frames) or IMAGE mode (each frame alone), no segmentation masks;
        the mediapipe module goes to ``self._mp``."""
        self._mp = _mediapipe()
        from mediapipe.tasks.python import BaseOptions, vision

        tracking = {} if min_tracking_confidence is None else {"min_tracking_confidence": min_tracking_confidence}
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(pose_landmarker_bundle())),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_poses=num_poses,
            min_pose_detection_confidence=min_pose_confidence,
            min_pose_presence_confidence=min_pose_confidence,
            output_segmentation_masks=False,
            **tracking,
        )
        self._landmarker = vision.PoseLandmarker.create_from_options(options)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free MediaPipe's graph; the object cannot be used afterwards."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None


class PoseDetector(LandmarkerOwner):
    """One person's 33 BlazePose landmarks per frame, tracked over a video stream.

    Use as a context manager (or call :meth:`close`). Frames must come in time order with
    strictly increasing ``timestamp_ms`` (MediaPipe's VIDEO mode tracks between frames).

    Args:
        min_pose_confidence: minimum score for the person detector and for the landmark
            model's presence score; below it the frame counts as "no person".
        min_tracking_confidence: below it the detector runs again instead of tracking.
    """

    def __init__(self, *, min_pose_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> None:
        for name, value in (("min_pose_confidence", min_pose_confidence),
                            ("min_tracking_confidence", min_tracking_confidence)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        self._open_landmarker(video=True, num_poses=1, min_pose_confidence=min_pose_confidence,
                              min_tracking_confidence=min_tracking_confidence)
        self._last_ms: int | None = None

    def detect(self, frame_rgb: np.ndarray, timestamp_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Landmarks of the most prominent person in one frame.

        Args:
            frame_rgb: (H, W, 3) uint8 RGB image, upright.
            timestamp_ms: integer milliseconds, strictly greater than the previous call's.

        Returns:
            keypoints: (33, 2) float32 pixels (x right, y down), NaN if no person.
            confidence: (33,) float32 in [0, 1] (landmark visibility), 0 if no person.
            world: (33, 3) float32 metres, MediaPipe's world landmarks (origin between
                the hips, camera axes), NaN if no person.
        """
        if self._landmarker is None:
            raise ValueError("this PoseDetector is closed")
        frame = np.asarray(frame_rgb)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame_rgb must be an (H, W, 3) uint8 RGB image, got {frame.shape} {frame.dtype}")
        timestamp_ms = int(timestamp_ms)
        if self._last_ms is not None and timestamp_ms <= self._last_ms:
            raise ValueError(f"timestamp_ms must increase strictly: {timestamp_ms} after {self._last_ms}")
        self._last_ms = timestamp_ms
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        result = self._landmarker.detect_for_video(image, timestamp_ms)

        keypoints = np.full((NUM_LANDMARKS, 2), np.nan, np.float32)
        confidence = np.zeros(NUM_LANDMARKS, np.float32)
        world = np.full((NUM_LANDMARKS, 3), np.nan, np.float32)
        if result.pose_landmarks:
            height, width = frame.shape[:2]
            lms = result.pose_landmarks[0]
            keypoints[:] = [(lm.x * width, lm.y * height) for lm in lms]
            confidence[:] = _visibility_to_confidence([lm.visibility or 0.0 for lm in lms])
            if result.pose_world_landmarks:
                world[:] = [(lm.x, lm.y, lm.z) for lm in result.pose_world_landmarks[0]]
        return keypoints, confidence, world


def _prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Iterate ``items`` in a background thread, ``depth`` ahead (overlaps decoding with detection).

    Exceptions raised by ``items`` re-raise here; stopping early stops the thread.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(("error", e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="mocap-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        thread.join(timeout=5.0)


def detect_frames(frames: Iterable[np.ndarray], fps: float, size: tuple[int, int], *,
                  min_pose_confidence: float = 0.5, progress: bool = True,
                  total: int | None = None, desc: str = "detect 2D",
                  on_frame: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None) -> Keypoints2D:
    """Run :class:`PoseDetector` over ``frames`` (time order) and collect the results.

    Args:
        frames: iterable of (H, W, 3) uint8 RGB upright frames, all of ``size``.
        fps: frames per second; timestamps are ``round(i * 1000 / fps)`` ms (made strictly
            increasing).
        size: (width, height) in pixels of every frame.
        min_pose_confidence: see :class:`PoseDetector`.
        progress: show a tqdm bar on stderr.
        total: number of frames expected, for the bar only.
        on_frame: called as ``on_frame(frame, keypoints (33, 2), confidence (33,))`` after
            each frame's detection (e.g. to write an overlay video in the same pass).

    Returns:
        Keypoints2D, layout ``mediapipe33``: keypoints (T, 33, 2) pixels, confidence (T, 33),
        world_landmarks (T, 33, 3) metres; NaN / 0 in frames without a person.
    """
    from tqdm import tqdm

    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    width, height = (int(v) for v in size)
    keypoints, confidence, world = [], [], []
    last_ms = -1
    with PoseDetector(min_pose_confidence=min_pose_confidence) as detector, \
            tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, disable=not progress) as bar:
        for i, frame in enumerate(frames):
            if frame.shape[:2] != (height, width):
                raise MocapError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]} pixels, expected {width}x{height}")
            timestamp_ms = max(int(round(i * 1000.0 / fps)), last_ms + 1)
            last_ms = timestamp_ms
            k, c, w = detector.detect(frame, timestamp_ms)
            if on_frame is not None:
                on_frame(frame, k, c)
            keypoints.append(k)
            confidence.append(c)
            world.append(w)
            bar.update(1)
    if not keypoints:
        raise MocapError("no frames to detect a person in")
    return Keypoints2D(keypoints=np.stack(keypoints), confidence=np.stack(confidence),
                       layout=MEDIAPIPE33.name, image_size=(width, height), fps=float(fps),
                       world_landmarks=np.stack(world))


def detect_video(path: str | os.PathLike, *, min_pose_confidence: float = 0.5,
                 progress: bool = True,
                 on_frame: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None,
                 frames: tuple[int, int] | None = None) -> Keypoints2D:
    """2D keypoints of one person in every frame of the video at ``path``.

    ``frames``: (first, stop), detect only in video frames ``first`` to ``stop - 1`` (the
    others are not decoded, nor passed to ``on_frame``); the keypoints still cover every
    frame of the video, NaN (confidence 0) outside.

    Frames are decoded upright (rotation metadata applied) in a background thread while
    MediaPipe runs. If no person is found anywhere the result is all NaN; callers decide
    whether that is an error (see ``Keypoints2D.detection_rate``).

    Returns:
        Keypoints2D (layout ``mediapipe33``, pixels of the upright frame, fps and
        image_size of the video).
    """
    from mocap.io.video import iter_frames, probe_video

    info = probe_video(path)
    first, stop = (0, info.frame_count) if frames is None else frames
    with contextlib.closing(_prefetch(iter_frames(path, rgb=True, start=first, stop=stop))) as chosen:
        found = detect_frames(chosen, info.fps, info.size, min_pose_confidence=min_pose_confidence,
                              progress=progress, total=stop - first, desc=Path(path).name, on_frame=on_frame)
    if frames is None:
        return found
    from mocap.detect2d.tracking import place_frames

    t = info.frame_count
    return dataclasses.replace(found, keypoints=place_frames(found.keypoints, first, t, np.nan),
                               confidence=place_frames(found.confidence, first, t, 0.0),
                               world_landmarks=place_frames(found.world_landmarks, first, t, np.nan))
