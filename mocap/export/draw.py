"""Pictures for people: 2D skeletons over video, and previews of 3D motion.

Colours say the side of the body: the person's left is orange, their right is blue and
joints on the midline (nose, pelvis, spine ...) are white in 2D / dark grey in 3D. Sides
come from the skeleton table (``left_right`` pairs, or ``left_``/``right_`` joint names).

* :func:`draw_skeleton_2d` draws one frame's keypoints on a copy of an RGB image.
* :func:`render_overlay` writes the source video with the 2D skeleton drawn on every frame.
* :func:`render_preview_3d` writes a PNG with front, side and top views of a few poses.
* :func:`render_preview_video` writes an mp4 of the 3D skeleton moving (front and side).

Images are RGB ``(H, W, 3) uint8``; pixel coordinates are x right, y down. 3D joints are
metres, right-handed, +Y up, the character facing +Z with its left on +X. Videos are
written with OpenCV's writer (H.264 ``avc1`` when this OpenCV build can encode it, else
MPEG-4 Part 2 ``mp4v``); every file is written to a temporary name and renamed into place.
"""
from __future__ import annotations

import functools
import os
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from mocap.errors import MocapError
from mocap.export.bones2d import draw_bones, edge_side
from mocap.export.overlay_points import overlay_points
from mocap.formats import Keypoints2D, atomic_path
from mocap.skeletons import MOTION21, Skeleton, get_layout

#: RGB colours by side: 0 = centre, 1 = left, 2 = right.
LEFT_RGB = (255, 140, 20)
RIGHT_RGB = (40, 130, 255)
CENTRE_RGB = (240, 240, 240)
_SIDE_RGB_2D = (CENTRE_RGB, LEFT_RGB, RIGHT_RGB)
_SIDE_RGB_3D = ((70, 70, 70), LEFT_RGB, RIGHT_RGB)

#: Four-character codes tried in order for mp4 output; the first this OpenCV can encode wins.
VIDEO_CODECS = ("avc1", "mp4v")

_FRONT_SIDE_TOP = ("front (x-y)", "side (z-y)", "top (x-z)")


# --- sides and edges ----------------------------------------------------------------------
def _sides_from_pairs(num_joints: int, left_right: Sequence[tuple[int, int]]) -> np.ndarray:
    """(J,) int8: 0 centre, 1 left, 2 right."""
    side = np.zeros(num_joints, dtype=np.int8)
    for left, right in left_right:
        side[left], side[right] = 1, 2
    return side


def _sides_from_names(names: Sequence[str]) -> np.ndarray:
    """(J,) int8 from ``left_``/``right_`` prefixes and ``_left``/``_right`` suffixes."""
    side = np.zeros(len(names), dtype=np.int8)
    for j, n in enumerate(names):
        if n.startswith("left_") or n.endswith("_left"):
            side[j] = 1
        elif n.startswith("right_") or n.endswith("_right"):
            side[j] = 2
    return side


def _line_width(height: int, width: int) -> int:
    """Line thickness in pixels for an image: 2 px up to ~440 px, ~5 px on a 1080p frame."""
    return max(2, int(round(min(height, width) / 220)))


# --- 2D ---------------------------------------------------------------------------------
def draw_skeleton_2d(
    frame: np.ndarray,
    keypoints: np.ndarray,
    confidence: np.ndarray | None,
    layout: Skeleton | str,
    *,
    min_confidence: float = 0.3,
) -> np.ndarray:
    """Return a copy of ``frame`` with the 2D skeleton drawn on it.

    Args:
        frame: (H, W, 3) uint8 RGB image; not modified.
        keypoints: (J, 2) float pixels (x right, y down), NaN where missing.
        confidence: (J,) float in [0, 1], or None to trust every finite keypoint.
        layout: keypoint layout (a :class:`Skeleton` or its name, e.g. ``"mediapipe33"``).
        min_confidence: joints below this confidence, and edges touching them, are not drawn.

    Returns:
        (H, W, 3) uint8 RGB: left side orange, right side blue, midline white, with a dark
        outline; line width scales with the image size.
    """
    skeleton = get_layout(layout) if isinstance(layout, str) else layout
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be an (H, W, 3) uint8 image, got shape {frame.shape} dtype {frame.dtype}")
    kp = np.asarray(keypoints, dtype=np.float64)
    j = skeleton.num_joints
    if kp.shape != (j, 2):
        raise ValueError(f"keypoints must have shape ({j}, 2) for layout {skeleton.name}, got {kp.shape}")
    valid = np.isfinite(kp).all(axis=1)
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64)
        if conf.shape != (j,):
            raise ValueError(f"confidence must have shape ({j},), got {conf.shape}")
        valid &= np.isfinite(conf) & (conf >= min_confidence)
    out = frame.copy()
    side = _sides_from_pairs(j, skeleton.left_right)
    width = _line_width(*frame.shape[:2])
    fine = np.isin(np.arange(j), skeleton.fine_joints)  # hands: thin lines, small next to the body
    for part, w in ((~fine, width), (fine, max(1, width // 3))):
        if part.any():
            edges = [(a, b) for a, b in skeleton.edges if part[a] and part[b]]
            draw_bones(out, kp, valid & part, edges, _SIDE_RGB_2D, side, w)
    return out


# --- video writing ------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def video_codec() -> str:
    """The first of :data:`VIDEO_CODECS` this OpenCV build can write to an .mp4 (probed once)."""
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


def _open_writer(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    code = video_codec()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*code), float(fps), (width, height))
    if not writer.isOpened():
        raise MocapError(f"OpenCV could not open a {code!r} video writer for {path} ({width}x{height} at {fps} fps)")
    return writer


def _even(n: int) -> int:
    """Round down to an even number: the mp4 encoders need even frame sizes."""
    return max(2, n - n % 2)


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
            self._out_w, self._out_h = _even(self._frame_size[0]), _even(self._frame_size[1])
            self._writer = _open_writer(self._tmp, self._fps, self._out_w, self._out_h)
        if self._zoom != 1.0:
            frame = cv2.resize(frame, self._frame_size, interpolation=cv2.INTER_AREA)
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


# --- 3D -----------------------------------------------------------------------------------
def _check_joints(
    joints: np.ndarray, parents: Sequence[int], joint_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate; return joints (T, J, 3) float64, edges (E, 2) int, sides (J,) int8."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[2] != 3 or joints.shape[0] == 0:
        raise ValueError(f"joints must have shape (T, J, 3) with T >= 1, got {joints.shape}")
    j = joints.shape[1]
    parents = [int(p) for p in parents]
    if len(parents) != j:
        raise ValueError(f"{len(parents)} parents for {j} joints")
    if not np.isfinite(joints).any():
        raise ValueError("joints are all NaN; nothing to draw")
    edges = np.array([(p, c) for c, p in enumerate(parents) if 0 <= p < j], dtype=np.int64).reshape(-1, 2)
    if joint_names is None and j == MOTION21.num_joints and tuple(parents) == MOTION21.parents:
        joint_names = MOTION21.joint_names
    if joint_names is not None and len(joint_names) != j:
        raise ValueError(f"{len(joint_names)} joint names for {j} joints")
    side = _sides_from_names(joint_names) if joint_names is not None else np.zeros(j, dtype=np.int8)
    return joints, edges, side


def _root_index(parents: Sequence[int]) -> int:
    roots = [j for j, p in enumerate(parents) if int(p) < 0]
    return roots[0] if roots else 0


def _limits(values: np.ndarray, *, include: float | None = None, margin: float = 0.15) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    lo, hi = float(v.min()), float(v.max())
    if include is not None:
        lo, hi = min(lo, include), max(hi, include)
    return lo - margin, hi + margin


def render_preview_3d(
    joints: np.ndarray,
    parents: Sequence[int],
    out_png: str | os.PathLike,
    *,
    fps: float,
    num_poses: int = 6,
    title: str | None = None,
    joint_names: Sequence[str] | None = None,
) -> None:
    """Write ``out_png``: front (x-y), side (z-y) and top (x-z) views of a few poses, 1500 x 540 px.

    ``num_poses`` evenly spaced frames are drawn, older ones lighter; the ground line y = 0
    is drawn in the front and side views, the root's trajectory (start ○, end △) in the
    top view, which looks down with +Z towards the bottom (where the front view's viewer
    stands). Each panel has equal metre scales on both axes. Written atomically.

    Args:
        joints: (T, J, 3) float metres, +Y up; NaN joints are skipped.
        parents: (J,) parent index per joint, root = -1.
        out_png: the .png to write.
        fps: frames per second of ``joints`` (for the time labels).
        num_poses: how many poses to draw (at most T).
        title: text above the panels.
        joint_names: (J,) names, used for the left/right colours; defaults to MOTION21's when
            ``parents`` is MOTION21's, else every bone is drawn in the midline colour.
    """
    joints, edges, side = _check_joints(joints, parents, joint_names)
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if num_poses < 1:
        raise ValueError(f"num_poses must be at least 1, got {num_poses}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    t = joints.shape[0]
    frames = np.unique(np.round(np.linspace(0, t - 1, min(num_poses, t))).astype(int))
    root = joints[:, _root_index(parents)]
    fig = Figure(figsize=(15.0, 5.4), dpi=100)
    FigureCanvasAgg(fig)  # attaches an Agg canvas to this figure only; pyplot's backend is untouched
    axes = fig.subplots(1, 3)
    fig.subplots_adjust(left=0.05, right=0.99, top=0.84 if title else 0.88, bottom=0.17, wspace=0.25)
    views = ((0, 1), (2, 1), (0, 2))  # (horizontal, vertical) coordinate per panel
    for k, f in enumerate(frames):
        strength = 1.0 if len(frames) == 1 else 0.3 + 0.7 * k / (len(frames) - 1)
        last = k == len(frames) - 1
        for ax, (h, v) in zip(axes, views):
            for a, b in edges:
                pa, pb = joints[f, a], joints[f, b]
                if not (np.isfinite(pa).all() and np.isfinite(pb).all()):
                    continue
                rgb = np.array(_SIDE_RGB_3D[edge_side(side, a, b)]) / 255.0
                colour = 1.0 - strength * (1.0 - rgb)  # blend towards white for older poses
                ax.plot([pa[h], pb[h]], [pa[v], pb[v]], color=colour, lw=2.6 if last else 1.6,
                        solid_capstyle="round", zorder=2 + k)
    for ax, name, (h, v) in zip(axes, _FRONT_SIDE_TOP, views):
        drawn = joints[frames]
        horiz = np.concatenate([drawn[..., h].ravel(), root[:, h]]) if v == 2 else drawn[..., h].ravel()
        vert = np.concatenate([drawn[..., v].ravel(), root[:, v]]) if v == 2 else drawn[..., v].ravel()
        (h_lo, h_hi), (v_lo, v_hi) = _limits(horiz), _limits(vert, include=0.0 if v == 1 else None)
        box = ax.get_position()
        box_ratio = (box.width * fig.get_figwidth()) / (box.height * fig.get_figheight())
        # equal metres per pixel on both axes: widen the narrower range to fill the panel,
        # horizontally about its centre, vertically upwards only when y is height
        if (h_hi - h_lo) / (v_hi - v_lo) < box_ratio:
            grow = (v_hi - v_lo) * box_ratio - (h_hi - h_lo)
            h_lo, h_hi = h_lo - grow / 2, h_hi + grow / 2
        else:
            grow = (h_hi - h_lo) / box_ratio - (v_hi - v_lo)
            v_lo, v_hi = (v_lo, v_hi + grow) if v == 1 else (v_lo - grow / 2, v_hi + grow / 2)
        ax.set_xlim(h_lo, h_hi)
        ax.set_ylim(v_lo, v_hi)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(f"{'xyz'[h]} (m)")
        ax.set_ylabel(f"{'xyz'[v]} (m)")
        ax.set_title(name)
        ax.grid(True, color="0.9", lw=0.6, zorder=0)
        if v == 1:
            ax.axhline(0.0, color="0.45", lw=1.5, zorder=1)
    top = axes[2]
    top.invert_yaxis()  # seen from above: +Z (the character's front) towards the bottom
    ok = np.isfinite(root).all(axis=1)
    top.plot(root[ok, 0], root[ok, 2], color="0.35", lw=1.2, zorder=1)
    if ok.any():
        first, final = root[ok][0], root[ok][-1]
        top.plot(first[0], first[2], "o", mfc="white", mec="0.2", ms=7, zorder=50)
        top.plot(final[0], final[2], "^", mfc="0.2", mec="0.2", ms=7, zorder=50)
    handles = [Line2D([], [], color=np.array(c) / 255.0, lw=2.6, label=n)
               for n, c in zip(("midline", "left", "right"), _SIDE_RGB_3D)]
    handles += [Line2D([], [], color="0.45", lw=1.5, label="ground y=0"),
                Line2D([], [], color="0.35", lw=1.2, marker="o", mfc="white", mec="0.2", label="root path, start"),
                Line2D([], [], color="none", marker="^", mfc="0.2", mec="0.2", label="end")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)
    times = ", ".join(f"{f / fps:.2f}" for f in frames)
    heading = f"{title}\n" if title else ""
    fig.suptitle(f"{heading}{t} frames at {fps:g} fps; poses at t = {times} s (older poses lighter)", fontsize=11)
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def render_preview_video(
    joints: np.ndarray,
    parents: Sequence[int],
    out_mp4: str | os.PathLike,
    *,
    fps: float,
    size: tuple[int, int] = (640, 360),
    joint_names: Sequence[str] | None = None,
) -> None:
    """Write ``out_mp4``: the skeleton moving, front view (x-y) left and side view (z-y) right.

    One video frame per pose (T frames at ``fps``), both views at the same metres-per-pixel
    scale. A view whose horizontal travel fits the panel keeps a fixed framing; otherwise the
    view follows the root horizontally. The ground y = 0 has ticks every 0.5 m fixed to the
    world, so travel, drift and foot sliding show. Drawn with OpenCV; written atomically.

    Args:
        joints: (T, J, 3) float metres, +Y up; NaN joints are skipped.
        parents: (J,) parent index per joint, root = -1.
        out_mp4: the .mp4 to write.
        fps: frames per second.
        size: (width, height) of the video in pixels; rounded down to even numbers.
        joint_names: see :func:`render_preview_3d`.
    """
    joints, edges, side = _check_joints(joints, parents, joint_names)
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    width, height = _even(int(size[0])), _even(int(size[1]))
    if width < 64 or height < 64:
        raise ValueError(f"size must be at least 64 x 64 pixels, got {size}")
    t = joints.shape[0]
    panel_w = width // 2
    margin = max(8, height // 16)
    label_h = max(14, height // 12)
    font_scale = height / 720
    text_w = max(1, int(round(height / 360)))
    grey = (150, 150, 150)

    root = _fill_gaps(joints[:, _root_index(parents)])  # (T, 3), NaN frames take the last known value
    y_lo, y_hi = _limits(joints[..., 1], include=0.0, margin=0.05)
    scale = (height - label_h - 2 * margin) / (y_hi - y_lo)  # pixels per metre
    centres = []  # per view: (T,) horizontal world coordinate at the panel's centre
    for h in (0, 2):
        reach = np.nanmax(np.abs(joints[..., h] - root[:, None, h])) + 0.1
        scale = min(scale, (panel_w / 2 - margin) / reach)
    for h in (0, 2):
        lo, hi = _limits(joints[..., h], margin=0.1)
        fits = (hi - lo) * scale <= panel_w - 2 * margin
        centres.append(np.full(t, (lo + hi) / 2) if fits else root[:, h])
    ground_y = int(round(height - margin + scale * y_lo))  # pixel row of y = 0
    thickness = _line_width(height, panel_w)

    background = np.full((height, width, 3), 40, dtype=np.uint8)
    cv2.line(background, (panel_w, 0), (panel_w, height), (90, 90, 90), 1)
    for k, name in enumerate(("front (x-y)", "side (z-y)")):
        cv2.line(background, (k * panel_w + margin // 2, ground_y), ((k + 1) * panel_w - margin // 2, ground_y),
                 grey, 1, cv2.LINE_AA)
        cv2.putText(background, name, (k * panel_w + margin, label_h), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, (200, 200, 200), text_w, cv2.LINE_AA)
    tick = max(3, height // 90)
    half_m = (panel_w / 2 - margin // 2) / scale  # half the panel width in metres
    edge_list = [tuple(int(i) for i in e) for e in edges]
    with atomic_path(out_mp4, suffix=".mp4") as tmp:
        writer = _open_writer(tmp, fps, width, height)
        try:
            for f in range(t):
                img = background.copy()
                for k, h in enumerate((0, 2)):
                    x_mid = k * panel_w + panel_w / 2
                    c = centres[k][f]
                    for m in np.arange(np.ceil((c - half_m) * 2) / 2, c + half_m, 0.5):
                        px = int(round(x_mid + scale * (m - c)))
                        cv2.line(img, (px, ground_y), (px, ground_y + tick), grey, 1, cv2.LINE_AA)
                    pts = np.stack([x_mid + scale * (joints[f, :, h] - c), ground_y - scale * joints[f, :, 1]], axis=1)
                    draw_bones(img, pts, np.isfinite(pts).all(axis=1), edge_list, _SIDE_RGB_2D, side, thickness)
                cv2.putText(img, f"t = {f / fps:.2f} s", (width - margin - int(170 * font_scale), label_h),
                            cv2.FONT_HERSHEY_SIMPLEX, font_scale, (200, 200, 200), text_w, cv2.LINE_AA)
                writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            writer.release()
        finally:
            writer.release()


def _fill_gaps(x: np.ndarray) -> np.ndarray:
    """(T, D) copy with NaN rows replaced by the last finite row (the first finite one at the start)."""
    x = np.array(x, dtype=np.float64)
    ok = np.isfinite(x).all(axis=1)
    if not ok.any():
        return np.zeros_like(x)
    idx = np.where(ok, np.arange(len(x)), 0)
    np.maximum.accumulate(idx, out=idx)
    idx[: np.argmax(ok)] = np.argmax(ok)
    return x[idx]
