"""Reading video files: their properties, and their frames upright; the mp4 writer (:func:`open_video_writer`).

Any container and codec the installed OpenCV can decode is accepted (mp4, mov, avi, mkv
through OpenCV's FFmpeg backend). Frames come out *upright*: phone videos store their
pixels sideways plus a display rotation in the container, and we apply it.

Rotation convention
    ``VideoInfo.rotation_deg`` is the **clockwise** rotation, in degrees (0, 90, 180 or
    270), that turns the stored pixels into the upright picture a viewer shows. It is the
    value of FFmpeg's ``rotate`` tag and of OpenCV's ``CAP_PROP_ORIENTATION_META``; an
    iPhone portrait clip (display matrix ``[0 1; -1 0]`` in the track header) has 90.

A video whose rotation tag was lost (some apps and editors drop it: the picture comes out on
its side) is turned by :func:`turned` (``--rotate``): within it, every reader of that file adds
a further clockwise turn.

OpenCV 4.11's FFmpeg backend can rotate frames itself (``CAP_PROP_ORIENTATION_AUTO``),
but in the opencv-contrib-python 4.11 wheel it is *off* by default (measured: property 0,
frames sideways), and other backends lack it. So we switch it off explicitly, read the
rotation, rotate with ``cv2.rotate`` ourselves, and take ``VideoInfo``'s width and
height from the first decoded frame after rotation, so frames and ``VideoInfo`` agree.

Timing
    Frame ``n`` of a video stands for time ``n / fps``. A variable-frame-rate file (phones
    slow down in low light; edited clips join parts of different rates) breaks that, so
    :func:`iter_frames` reads each frame's timestamp from the container and refuses the
    video (MocapError, with the ffmpeg command that makes it constant) as soon as one
    frame lies more than :data:`VFR_TOLERANCE_FRAMES` frame intervals from where a constant
    rate puts it. The check costs nothing extra: the timestamps come with the decoded frames.

Limits
    :func:`probe_video` refuses videos whose frames are smaller than
    :data:`MIN_VIDEO_SIDE` pixels on a side (too small for a person to be found) or larger
    than :data:`mocap.formats.MAX_IMAGE_SIDE`, and videos longer than
    :data:`mocap.formats.MAX_FRAMES` frames, before any frame is decoded when the container
    declares its size and length.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from mocap.errors import MocapError
from mocap.formats import MAX_FPS, MAX_FRAMES, MAX_IMAGE_SIDE

DEFAULT_FPS = 30.0
"""Frame rate assumed when a video does not declare a usable one."""

#: smallest side of a frame, pixels: below it no detector finds a person (BlazePose reads 256 x 256)
MIN_VIDEO_SIDE = 64
#: a frame whose timestamp is further than this many frame intervals from ``n / fps`` makes the
#: video variable-frame-rate (a dropped frame is one interval; container rounding much less)
VFR_TOLERANCE_FRAMES = 2.0


class VideoEndsEarly(MocapError):
    """:func:`iter_frames` asked to start at a frame the video does not reach (a truncated or
    damaged file that declares more frames than it holds)."""


@dataclass(frozen=True)
class VideoInfo:
    """Properties of a video file, as the viewer sees it.

    Attributes:
        path: the file.
        width, height: size in pixels of the upright frames (after rotation).
        fps: frames per second (``DEFAULT_FPS`` if the file declares none).
        frame_count: number of frames the container declares (mp4, mov and avi store it;
            for other streams it may be an estimate from the duration). If the container
            declares none, the frames are counted by decoding.
        rotation_deg: clockwise rotation (0, 90, 180, 270) applied to the stored pixels.
    """

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int
    rotation_deg: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels of the upright frames."""
        return (self.width, self.height)

    @property
    def duration_s(self) -> float:
        """Duration in seconds (frame_count / fps)."""
        return self.frame_count / self.fps


def _cv2():
    import cv2  # light enough, but keeps `import mocap.io.video` free of OpenCV until used

    return cv2


def _check_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise MocapError(f"video file not found: {path}")
    if path.is_dir():
        raise MocapError(f"{path} is a folder; give a video file (mp4, mov, avi, mkv)")
    return path


def _open(path: Path):
    """Open ``path`` with OpenCV, auto-rotation off; MocapError if it cannot be decoded."""
    cv2 = _cv2()
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise MocapError(f"cannot read video {path}: OpenCV cannot open it as a video (not a video, "
                         f"corrupt or truncated, or an unsupported codec); convert it to H.264 mp4 and retry")
    # Off explicitly so that the frames are the stored pixels and we rotate them once.
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    return cap


def _no_frames(path: Path) -> MocapError:
    return MocapError(f"cannot read video {path}: it holds no decodable frames; "
                      f"check that the file plays and re-export it if not")


#: further clockwise turns (degrees) by the video's resolved path, while :func:`turned` holds them
_EXTRA_TURNS: dict[str, int] = {}


@contextlib.contextmanager
def turned(path: str | os.PathLike, degrees: int) -> Iterator[None]:
    """Within this block every reader of the video at ``path`` (:func:`probe_video`,
    :func:`iter_frames`, :func:`read_frames`, on any thread) turns its pictures a further
    ``degrees`` clockwise (0, 90, 180 or 270) after the container's own rotation: a video whose
    rotation tag was lost. MocapError for another angle."""
    if int(degrees) % 90 or isinstance(degrees, bool):
        raise MocapError(f"a video turns by 0, 90, 180 or 270 degrees, not {degrees}")
    key = str(Path(path).resolve())
    before = _EXTRA_TURNS.get(key)
    if degrees % 360:
        _EXTRA_TURNS[key] = ((before or 0) + int(degrees)) % 360
    try:
        yield
    finally:
        if before is None:
            _EXTRA_TURNS.pop(key, None)
        else:
            _EXTRA_TURNS[key] = before


def _rotation(cap, path: Path) -> int:
    """Clockwise rotation in degrees (0, 90, 180, 270): the container's display rotation, and
    any further turn :func:`turned` holds for ``path``."""
    cv2 = _cv2()
    meta = cap.get(cv2.CAP_PROP_ORIENTATION_META)
    declared = int(round(meta / 90.0)) * 90 if math.isfinite(meta) else 0
    return (declared + _EXTRA_TURNS.get(str(path.resolve()), 0)) % 360


def _rotate(frame: np.ndarray, rotation_deg: int) -> np.ndarray:
    """(H, W, 3) stored pixels -> upright pixels, turning clockwise by ``rotation_deg``."""
    cv2 = _cv2()
    if rotation_deg == 90:
        return cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE)
    if rotation_deg == 180:
        return cv2.rotate(frame, cv2.ROTATE_180)
    if rotation_deg == 270:
        return cv2.rotate(frame, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return frame


def _fps(value: float, path: Path) -> float:
    """The declared frame rate, or ``DEFAULT_FPS`` with a warning if it is missing or absurd."""
    if math.isfinite(value) and 0 < value <= MAX_FPS:  # above: a time base, not a frame rate
        return float(value)
    warnings.warn(f"{path} declares no usable frame rate ({value}); assuming {DEFAULT_FPS:g} fps",
                  stacklevel=3)
    return DEFAULT_FPS


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read the properties of the video at ``path``, decoding its first frame.

    Raises MocapError if the file is missing, a folder, not a decodable video, or holds
    no frames. Warns (``UserWarning``) and assumes 30 fps if no frame rate is declared.
    """
    path = _check_path(path)
    cv2 = _cv2()
    cap = _open(path)
    try:
        rotation = _rotation(cap, path)
        _check_size(path, cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT), declared=True)
        declared = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        if math.isfinite(declared) and declared > MAX_FRAMES:
            raise _too_long(path, f"{declared:.0f}")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise _no_frames(path)
        height, width = _rotate(frame, rotation).shape[:2]
        _check_size(path, width, height)
        fps = _fps(cap.get(cv2.CAP_PROP_FPS), path)
        if math.isfinite(declared) and declared > 0:
            count = int(round(declared))
        else:
            count = 1
            while cap.grab():
                count += 1
                if count > MAX_FRAMES:
                    raise _too_long(path, f"more than {MAX_FRAMES}")
    finally:
        cap.release()
    return VideoInfo(path=path, width=int(width), height=int(height), fps=fps,
                     frame_count=count, rotation_deg=rotation)


def _check_size(path: Path, width: float, height: float, *, declared: bool = False) -> None:
    """MocapError if a frame of ``width`` x ``height`` pixels is too small for a person or too large.

    ``declared``: the container's size before decoding; 0 or unknown is left to the decoded frame.
    """
    if declared and not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
        return
    if max(width, height) > MAX_IMAGE_SIDE:
        raise MocapError(f"video {path} is {width:.0f} x {height:.0f} pixels, over the limit of {MAX_IMAGE_SIDE} "
                         f"pixels a side; scale it down")
    if min(width, height) < MIN_VIDEO_SIDE:
        raise MocapError(f"video {path} is {width:.0f} x {height:.0f} pixels: too small to find a person in "
                         f"(at least {MIN_VIDEO_SIDE} pixels a side)")


def _too_long(path: Path, frames: str) -> MocapError:
    return MocapError(f"video {path} holds {frames} frames, over the limit of {MAX_FRAMES}; cut it into parts "
                      f"(e.g. ffmpeg -i in.mp4 -c copy -f segment -segment_time 1800 part%02d.mp4)")


def iter_frames(path: str | os.PathLike, *, rgb: bool = True, start: int = 0,
                stop: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of the video at ``path``, upright, in order.

    Args:
        path: a video file.
        rgb: RGB channel order if True (what detectors expect), else OpenCV's BGR.
        start, stop: yield only frames ``start`` to ``stop - 1`` (video frame numbers, 0-based;
            ``stop`` None: to the end). The frames before ``start`` are skipped by a seek
            (checked against the frame's timestamp; where the container's seek misses, by
            reading on without converting them), those after ``stop`` are never decoded.

    Yields:
        frame: (H, W, 3) uint8, H and W as in ``probe_video(path)``.

    The file is opened (and MocapError raised for a missing, unreadable or empty video)
    when this is called, not at the first ``next``. If decoding stops before the declared
    number of frames, a ``UserWarning`` says so (a truncated or damaged file).
    """
    if start < 0 or (stop is not None and stop <= start):
        raise ValueError(f"frames {start} to {stop}: want 0 <= start < stop")
    path = _check_path(path)
    cv2 = _cv2()
    cap = _open(path)
    try:
        rotation = _rotation(cap, path)
        declared = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        fps = cap.get(cv2.CAP_PROP_FPS)
        ok, first = cap.read()
        clock = _Clock(path, fps) if math.isfinite(fps) and 0 < fps <= MAX_FPS else None
        if ok and first is not None and start > 0:
            if clock is not None:
                clock.check(0, cap.get(cv2.CAP_PROP_POS_MSEC))
            cap, first = _skip_to(cap, path, start, clock)
            ok = first is not None
    except BaseException:
        cap.release()
        raise
    if not ok or first is None:
        cap.release()
        if start > 0:
            raise VideoEndsEarly(f"video {path} has no frame {start}: it ends before (truncated or damaged file?)")
        raise _no_frames(path)
    return _frames(cap, first, path, rotation=rotation, declared=declared, rgb=rgb, clock=clock, start=start,
                   stop=stop)


def read_frames(path: str | os.PathLike, wanted, *, rgb: bool = True, gap: int = 30) -> dict[int, np.ndarray]:
    """The frames numbered ``wanted`` (an iterable of video frame numbers) of the video at
    ``path``, upright, by number: frames less than ``gap`` apart are read in one run (the ones
    between decoded and dropped), farther ones each after a seek (:func:`iter_frames`), so
    that three frames of an hour's video do not decode the hour. A frame past the video's end
    is left out."""
    import contextlib

    picks = sorted({int(f) for f in wanted})
    out: dict[int, np.ndarray] = {}
    runs: list[list[int]] = []
    for f in picks:
        if runs and f - runs[-1][-1] < gap:
            runs[-1].append(f)
        else:
            runs.append([f])
    for run in runs:
        try:
            frames = iter_frames(path, rgb=rgb, start=run[0], stop=run[-1] + 1)
        except VideoEndsEarly:
            break
        with contextlib.closing(frames):
            for i, frame in enumerate(frames, run[0]):
                if i in run:
                    out[i] = frame
    return out


def _skip_to(cap, path: Path, start: int, clock: _Clock | None):
    """(the capture, frame ``start`` as stored, or None past the end), frames 1 to ``start - 1``
    left undecoded where the container can seek. The seek is kept when the frame it lands on
    has the timestamp of frame ``start``; otherwise the video is read again from its first
    frame, the frames in between grabbed and not converted."""
    cv2 = _cv2()
    if clock is not None and clock.start is not None and cap.set(cv2.CAP_PROP_POS_FRAMES, start):
        ok, frame = cap.read()
        msec = cap.get(cv2.CAP_PROP_POS_MSEC)
        if ok and frame is not None and math.isfinite(msec) \
                and abs((msec / 1000.0 - clock.start) * clock.fps - start) < 0.5:
            return cap, frame
    cap.release()
    cap = _open(path)
    for n in range(start):
        if not cap.grab():
            return cap, None
        if clock is not None:
            clock.check(n, cap.get(cv2.CAP_PROP_POS_MSEC))
    ok, frame = cap.read()
    return cap, frame if ok else None


class _Clock:
    """Checks that frame ``n``'s container timestamp is ``n / fps`` (constant frame rate)."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps, self.start = path, float(fps), None

    def check(self, n: int, msec: float) -> None:
        """MocapError if frame ``n`` (0-based), shown at ``msec`` ms, is off the constant-rate clock."""
        if not math.isfinite(msec):
            return
        t = msec / 1000.0
        if self.start is None:
            self.start = t
            return
        late = (t - self.start) - n / self.fps
        if abs(late) > VFR_TOLERANCE_FRAMES / self.fps:
            raise MocapError(
                f"video {self.path} has a variable frame rate: frame {n} is shown at {t - self.start:.3f} s, "
                f"{abs(late):.3f} s {'later' if late > 0 else 'earlier'} than a constant {self.fps:g} fps puts it, "
                f"so its motion would be mistimed; convert it to a constant rate first, e.g. "
                f"ffmpeg -i in.mp4 -fps_mode cfr -r 30 out.mp4")


def _frames(cap, first: np.ndarray, path: Path, *, rotation: int, declared: float,
            rgb: bool, clock: _Clock | None, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    cv2 = _cv2()
    try:
        frame, n = first, start
        while frame is not None and (stop is None or n < stop):
            if n >= MAX_FRAMES:
                raise _too_long(path, f"more than {MAX_FRAMES}")
            if clock is not None:
                clock.check(n, cap.get(cv2.CAP_PROP_POS_MSEC))
            frame = _rotate(frame, rotation)
            if rgb:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            n += 1
            yield frame
            ok, frame = cap.read()
            if not ok:
                frame = None
        if math.isfinite(declared) and n < min(int(round(declared)), stop if stop is not None else MAX_FRAMES):
            warnings.warn(f"{path}: decoding stopped after {n} of {int(round(declared))} frames "
                          f"(truncated or damaged file?)", stacklevel=2)
    finally:
        cap.release()


# ---------------------------------------------------------------- writing

#: Four-character codes tried in order for mp4 output; the first this OpenCV can encode wins
#: (H.264 ``avc1`` when this OpenCV build can encode it, else MPEG-4 Part 2 ``mp4v``).
VIDEO_CODECS = ("avc1", "mp4v")


@functools.lru_cache(maxsize=None)
def video_codec() -> str:
    """The first of :data:`VIDEO_CODECS` this OpenCV build can write to an .mp4 (probed once)."""
    import tempfile

    cv2 = _cv2()
    log = getattr(getattr(cv2, "utils", None), "logging", cv2)  # OpenCV >= 4.12 moved these into cv2.utils.logging
    old_level = log.getLogLevel()
    log.setLogLevel(0)  # probing a missing encoder makes FFmpeg print errors
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for code in VIDEO_CODECS:
                path = os.path.join(tmp, f"probe_{code}.mp4")
                writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*code), 10.0, (32, 32))
                try:
                    if writer.isOpened():
                        writer.write(np.zeros((32, 32, 3), np.uint8))
                        return code
                finally:
                    writer.release()
    finally:
        log.setLogLevel(old_level)
    raise MocapError(f"this OpenCV build cannot write mp4 video with any of {', '.join(VIDEO_CODECS)}; "
                     "reinstall opencv-python (its wheels include FFmpeg)")


def open_video_writer(path: Path, fps: float, width: int, height: int):
    """An OpenCV writer (``cv2.VideoWriter``) of an .mp4 at ``path`` with :func:`video_codec`;
    MocapError if it cannot open."""
    cv2 = _cv2()
    code = video_codec()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*code), float(fps), (width, height))
    if not writer.isOpened():
        raise MocapError(f"OpenCV could not open a {code!r} video writer for {path} ({width}x{height} at {fps} fps)")
    return writer


def even_size(n: int) -> int:
    """Round down to an even number: the mp4 encoders need even frame sizes."""
    return max(2, n - n % 2)
