"""The 2D skeleton over the source video: :func:`render_overlay` writes the video with the
skeleton drawn on every frame, :class:`OverlayWriter` writes such a video frame by frame (as a
detector goes), :class:`BackgroundOverlay` runs :func:`render_overlay` on a second thread.

Frames are drawn by :func:`mocap.export.draw.draw_skeleton_2d` and written by
:func:`mocap.io.video.open_video_writer`, to a temporary name renamed into place.
"""
from __future__ import annotations

import os
import threading

import cv2
import numpy as np

from mocap.errors import MocapError
from mocap.export.draw import draw_skeleton_2d
from mocap.export.overlay_points import overlay_points
from mocap.formats import Keypoints2D, atomic_path
from mocap.io.video import even_size, open_video_writer
from mocap.skeletons import Skeleton, get_layout


class OverlayWriter:
    """Writes an .mp4 of frames with their 2D skeleton drawn, one frame at a time (atomic).

    Use as a context manager: the file appears at ``out_path`` only if the block succeeds
    and exactly ``num_frames`` frames were written. With ``threaded=True`` the drawing and
    encoding run in a background thread (OpenCV releases the GIL), so a caller that detects
    keypoints on one core gets the overlay from the other.

    Args:
        out_path: the .mp4 to write.
        keypoints_size: (width, height) of the images the keypoints were detected on.
        fps: frames per second of the output.
        layout: keypoint layout name or Skeleton.
        num_frames: frames expected (None: any number).
        max_width: largest output width in pixels (None: the source width).
        min_confidence: see :func:`draw_skeleton_2d`.
        source: name of the video, for error messages.
    """

    def __init__(self, out_path: str | os.PathLike, *, keypoints_size: tuple[int, int], fps: float,
                 layout: str | Skeleton, num_frames: int | None = None, max_width: int | None = None,
                 min_confidence: float = 0.3, threaded: bool = False, source: str = "the video") -> None:
        if max_width is not None and max_width < 2:
            raise ValueError(f"max_width must be at least 2 pixels, got {max_width}")
        self._out_path, self._size, self._fps = out_path, keypoints_size, float(fps)
        self._skeleton = get_layout(layout) if isinstance(layout, str) else layout
        self._num_frames, self._max_width, self._min_conf = num_frames, max_width, min_confidence
        self._threaded, self._source = threaded, source
        self._writer = None
        self._done = 0
        self._queue = None
        self._thread = None
        self._error: BaseException | None = None

    def __enter__(self) -> "OverlayWriter":
        self._atomic = atomic_path(self._out_path, suffix=".mp4")
        self._tmp = self._atomic.__enter__()
        if self._threaded:
            import queue

            self._queue = queue.Queue(maxsize=8)
            self._thread = threading.Thread(target=self._drain, name="overlay-writer", daemon=True)
            self._thread.start()
        return self

    def write(self, frame_rgb: np.ndarray, keypoints: np.ndarray, confidence: np.ndarray | None) -> None:
        """Queue or draw one upright (H, W, 3) uint8 RGB frame with its (J, 2) keypoints."""
        if self._error is not None:
            raise self._error
        if self._queue is not None:
            self._queue.put((frame_rgb, keypoints, confidence))
        else:
            self._write(frame_rgb, keypoints, confidence)

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._write(*item)
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = e

    def _write(self, frame: np.ndarray, keypoints: np.ndarray, confidence: np.ndarray | None) -> None:
        if self._num_frames is not None and self._done >= self._num_frames:
            raise MocapError(f"{self._source} has more frames than the {self._num_frames} frames of keypoints; "
                             "use the keypoints detected on this video")
        if self._writer is None:
            h, w = frame.shape[:2]
            self._scale = _overlay_scale(self._size, (w, h), self._source)
            self._zoom = min(1.0, self._max_width / w) if self._max_width else 1.0
            self._frame_size = (int(round(w * self._zoom)), int(round(h * self._zoom)))
            self._out_w, self._out_h = even_size(self._frame_size[0]), even_size(self._frame_size[1])
            self._writer = open_video_writer(self._tmp, self._fps, self._out_w, self._out_h)
        if self._zoom != 1.0:
            # down by at most 2: bilinear (1 ms a 1080x1920 frame against 5 ms for area averaging,
            # 0.25 grey levels apart on average); further down, area averaging (bilinear would alias)
            interp = cv2.INTER_LINEAR if self._zoom >= 0.5 else cv2.INTER_AREA
            frame = cv2.resize(frame, self._frame_size, interpolation=interp)
        frame = np.ascontiguousarray(frame[:self._out_h, :self._out_w])
        drawn = draw_skeleton_2d(frame, np.asarray(keypoints) * (self._scale * self._zoom), confidence,
                                 self._skeleton, min_confidence=self._min_conf)
        self._writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        self._done += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        if self._writer is not None:
            self._writer.release()  # before atomic_path renames or removes the file
        if exc is None:
            exc = self._error
            if exc is None and self._num_frames is not None and self._done != self._num_frames:
                exc = MocapError(f"{self._source} yielded {self._done} frames but the keypoints have "
                                 f"{self._num_frames}; use the keypoints detected on this video")
            if exc is not None:
                self._atomic.__exit__(type(exc), exc, None)  # removes the temporary file
                raise exc
        self._atomic.__exit__(type(exc) if exc else None, exc, tb)


def render_overlay(
    video_path: str | os.PathLike,
    keypoints: Keypoints2D,
    out_path: str | os.PathLike,
    *,
    progress: bool = True,
    max_width: int | None = None,
    min_confidence: float = 0.3,
    frames: tuple[int, int] | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Write ``out_path`` (.mp4): the video at ``video_path`` with ``keypoints`` (and hands) drawn on each frame.

    The output has the source's frame count and fps, and its frame size (upright), scaled
    down to ``max_width`` pixels wide if given; odd widths/heights lose their last pixel
    column/row (the encoder needs even sizes). Written atomically.

    Args:
        video_path: source video; the keypoints must have been detected on it.
        keypoints: T frames of 2D keypoints in the source's pixels (``image_size``).
        out_path: the .mp4 to write.
        progress: show a tqdm progress bar.
        max_width: largest output width in pixels (None: the source width).
        min_confidence: see :func:`draw_skeleton_2d`.
        frames: (first, stop): only video frames ``first`` to ``stop - 1`` (the keypoints still
            cover the whole video); None: every frame.
        stop_event: when set (e.g. by another thread whose work failed), stop between two
            frames and leave no file (:class:`OverlayStopped`).

    Raises:
        MocapError: the video's frame count or frame shape does not match the keypoints,
            or the video cannot be read or written.
        OverlayStopped: ``stop_event`` was set before the last frame.
    """
    from tqdm import tqdm

    from mocap.io.video import iter_frames, probe_video

    info = probe_video(video_path)
    t = keypoints.num_frames
    if info.frame_count > 0 and info.frame_count != t:
        raise MocapError(f"{video_path} has {info.frame_count} frames but the keypoints have {t}; "
                         "use the keypoints detected on this video")
    first, stop = (0, t) if frames is None else frames
    layout, points, conf = overlay_points(keypoints)  # the body, and its hands when the keypoints hold them
    chosen = iter_frames(video_path, rgb=True, start=first, stop=stop)
    try:
        with OverlayWriter(out_path, keypoints_size=keypoints.image_size, fps=info.fps, layout=layout,
                           num_frames=stop - first, max_width=max_width, min_confidence=min_confidence,
                           source=str(video_path)) as writer, \
                tqdm(total=stop - first, desc="overlay", unit="frame", disable=not progress) as bar:
            for count, frame in enumerate(chosen, first):
                if count >= t:
                    raise MocapError(f"{video_path} has more frames than the {t} frames of keypoints; "
                                     "use the keypoints detected on this video")
                if stop_event is not None and stop_event.is_set():
                    raise OverlayStopped(f"{out_path}: stopped at frame {count}")
                writer.write(frame, points[count], conf[count])
                bar.update(1)
    finally:
        chosen.close()


class OverlayStopped(Exception):
    """:func:`render_overlay` was asked to stop; nothing was written."""


class BackgroundOverlay:
    """:func:`render_overlay` on a second thread, while the caller goes on with other work.

    The encoder and the decoder release the GIL, so on two cores the overlay costs little
    wall time next to the lifting and fitting. :meth:`wait` joins it and raises whatever it
    raised; :meth:`cancel` (on the caller's failure) makes it stop between frames and leave
    no file. Use as a context manager: leaving the block with an exception cancels it,
    leaving it normally waits.
    """

    def __init__(self, video_path, keypoints: Keypoints2D, out_path, **kwargs) -> None:
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(video_path, keypoints, out_path), kwargs=kwargs,
                                        name="overlay", daemon=True)

    def _run(self, *args, **kwargs) -> None:
        try:
            render_overlay(*args, stop_event=self._stop, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the caller in wait()
            self._error = e

    def __enter__(self) -> "BackgroundOverlay":
        self._thread.start()
        return self

    def wait(self) -> None:
        """Block until the overlay is written; raise its error if it failed."""
        self._thread.join()
        if self._error is not None and not isinstance(self._error, OverlayStopped):
            raise self._error

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.cancel()
        else:
            self.wait()


def _overlay_scale(image_size: tuple[int, int], frame_size: tuple[int, int], video_path) -> np.ndarray:
    """(2,) factor from keypoint pixels to frame pixels; MocapError if the aspect ratios differ."""
    kw, kh = image_size
    fw, fh = frame_size
    sx, sy = fw / kw, fh / kh
    if abs(sx / sy - 1.0) > 0.01:
        raise MocapError(f"the keypoints were detected on {kw}x{kh} images but {video_path} has "
                         f"{fw}x{fh} frames; use the keypoints detected on this video")
    return np.array([sx, sy])
