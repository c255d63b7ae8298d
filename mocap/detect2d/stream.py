"""``mocap stream-2d``: 2D keypoints of a video file or a camera as JSON lines on stdout.

    mocap stream-2d SOURCE [--realtime] [--max-frames N] [--mirror] [--level] [--detector NAME] [--person WHO]
                           [--hands] [--face]

SOURCE is a video file, or a camera index (``0``, ``1`` ...; OpenCV's
``cv2.VideoCapture(index)``). Every frame goes through the 2D stage of ``mocap capture``
one frame at a time, and one JSON line per frame is written to stdout and flushed:

- by default (``--detector blazepose-torch``, no MediaPipe needed) the PyTorch BlazePose
  follows everyone from frame to frame, the people get track ids as they come
  (:class:`mocap.detect2d.people.LivePeople`: the tracker of ``mocap capture``, so over a
  file the ids are capture's), and the line holds the person ``--person`` names (``auto``:
  present longest, weighted by size, so far), or no one in a frame where that person is
  not seen (never someone else). ``--detector movenet`` or ``openpose`` go through the
  same tracker.
- ``--detector mediapipe`` (the ``detect`` extra) runs MediaPipe's
  :class:`mocap.detect2d.mediapipe_pose.PoseDetector` in VIDEO mode, which follows one
  person with its own tracking (timestamps as :func:`mocap.detect2d.mediapipe_pose.detect_frames`
  gives them for a file, so the keypoints equal :func:`mocap.detect2d.mediapipe_pose.detect_video`'s);
  ``--person`` can then only be ``auto`` or ``largest``. Without mediapipe installed it
  stops with a message saying how to install it, or to leave ``--detector`` out.

The lines are the messages of the service's stream protocol
(:mod:`mocap.service.realtime`, ``WebSocket /v1/stream``), so a client forwards them as
they are:

1. ``{"type": "hello", "layout": "mediapipe33", "image_size": [w, h], "fps": f}``:
   pixels of the upright frame, frames per second (the layout is the detector's:
   ``coco17`` for movenet and openpose); with ``--level`` also ``"scene_lines"``: the first
   frame's straight segments ([[x1, y1, x2, y2], ...] pixels), from which the service levels
   the world under a tilted camera (:mod:`mocap.service.stream_gravity`);
2. per frame ``{"type": "frame", "frame": n, "t": seconds, "keypoints": J x [x, y] pixels
   (x right, y down) or null (no person), "confidence": J numbers in [0, 1]}``: ``n``
   counts the source's frames from 0; ``t`` is ``n / fps`` for a file, the seconds since
   the first frame for a camera. With ``--hands`` also ``"hand_keypoints"``: 42 x [x, y]
   pixels (``hands42``: the person's left hand, then right; null for a hand not found),
   ``"hand_confidence"``: 42 numbers (0 where not found) and ``"hand_world"``: 42 x [x, y, z]
   metres (each hand's shape, camera axes, MediaPipe's world landmarks), found by
   :class:`mocap.detect2d.estimators.hands_torch.HandLandmarksTorch` at the body's wrists,
   each hand followed from the previous frame while it stays by its wrist (as ``mocap capture
   --hands`` does). With ``--face`` also ``"face_keypoints"``: 478 x [x, y, z] pixels
   (``face478``; z the network's depth) or null, found by
   :class:`mocap.detect2d.estimators.face_torch.FaceLandmarksTorch` at the body's face,
   followed from the previous frame; ``mocap serve`` answers with the face controls.

``--realtime`` paces a file at its frame rate like a camera: frame ``n`` is written no
earlier than ``n / fps`` seconds after frame 0 was (the clock starts then, the detector's
first frame being slow), and frames more than one frame period late when they are decoded
(detection slower than the video) are skipped, so their numbers are missing from the
output. A camera is real time anyway (the option changes nothing).
``--mirror`` flips every frame left-right first (a selfie view: the avatar then moves like
the performer's reflection). ``--max-frames N`` stops after the source's first N frames.

Errors print one line on stderr (``mocap stream-2d: error: ...``) and exit with status 1.
SIGTERM, SIGINT and a closed stdout (BrokenPipe) end the stream cleanly with status 0.
Libraries that print on file descriptor 1 (MediaPipe's native code) are sent to stderr,
so stdout holds only the JSON lines.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mocap.config import add_arguments, from_namespace
from mocap.detect2d.options import DetectionOptions
from mocap.errors import MocapError

PROG = "mocap stream-2d"
_DECIMALS_PX = 4  # 0.1 micro-pixel ... far below MediaPipe's own precision
_DECIMALS_CONF = 5
_DECIMALS_WORLD = 6  # metres: a micrometre
_CAMERA_FPS = 30.0  # when a camera does not say


@dataclass(frozen=True)
class Source:
    """An opened source: ``frames`` yields (index n, t seconds, (H, W, 3) uint8 RGB upright).

    ``image_size`` (width, height) pixels, ``fps`` frames per second, ``camera`` True for a
    camera (its ``t`` is wall-clock time since the first frame).
    """

    frames: Iterator[tuple[int, float, np.ndarray]]
    image_size: tuple[int, int]
    fps: float
    camera: bool


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description="2D keypoints of a video or camera as JSON lines on stdout "
                                "(the stream protocol of mocap serve's /v1/stream)")
    p.add_argument("source", help="a video file, or a camera index (0, 1, ...)")
    p.add_argument("--realtime", action="store_true",
                   help="pace a file at its frame rate like a camera (late frames are skipped)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after the source's first N frames")
    p.add_argument("--mirror", action="store_true", help="flip the image left-right first (selfie view)")
    p.add_argument("--level", action="store_true",
                   help="send the straight segments of the first frame in the hello (scene_lines), from which "
                        "mocap serve levels the avatar under a tilted camera (the room's vertical lines)")
    p.add_argument("--min-pose-confidence", type=float, default=0.5,
                   help="the BlazePose detection threshold, ours or MediaPipe's (0..1)")
    add_arguments(p, DetectionOptions, ("detector", "person", "device", "hands", "face"),
                  help={"person": "who to stream when several people are in view: auto (present longest so far, "
                                  "weighted by size), largest, most-present, or a track id (as mocap capture's "
                                  "people.json numbers them for a file); nobody in frames where they are not seen",
                        "hands": "also find both hands of the streamed person in each frame (MediaPipe's hand "
                                 "network in PyTorch, placed by the body's wrists; needs a BlazePose detector) "
                                 "and send them (hand_keypoints, hand_confidence, hand_world)",
                        "face": "also find the streamed person's face in each frame (478 points, MediaPipe's face "
                                "network with attention in PyTorch, placed by the body's eyes, ears and mouth; needs "
                                "a BlazePose detector) and send it (face_keypoints: x, y and depth z, pixels)"})
    return p.parse_args(argv)


def open_source(source: str, *, max_frames: int | None = None) -> Source:
    """The video file or camera (a whole number) named by ``source``; MocapError if it cannot be read."""
    if source.strip().isdigit():
        return _open_camera(int(source), max_frames=max_frames)
    from mocap.io.video import iter_frames, probe_video

    info = probe_video(source)  # MocapError: missing, a folder, not a video, no frames
    frames = iter_frames(source, rgb=True)

    def numbered():
        with contextlib.closing(frames):
            for n, frame in enumerate(frames):
                if max_frames is not None and n >= max_frames:
                    return
                yield n, n / info.fps, frame

    return Source(numbered(), info.size, info.fps, camera=False)


def _open_camera(index: int, *, max_frames: int | None) -> Source:
    import cv2

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        cap.release()
        raise MocapError(f"cannot open camera {index}: no such camera, or it is in use by another program "
                         f"(try another index: 0, 1, ...)")
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest picture, not a queue of old ones (where supported)
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        raise MocapError(f"camera {index} opened but gives no picture; check that it is not in use and try again")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if math.isfinite(fps) and 1.0 <= fps <= 1000.0 else _CAMERA_FPS
    height, width = first.shape[:2]

    def frames():
        start = time.perf_counter()
        frame, n = first, 0
        try:
            while frame is not None and (max_frames is None or n < max_frames):
                t = 0.0 if n == 0 else time.perf_counter() - start
                yield n, t, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                n += 1
                ok, frame = cap.read()
                if not ok:
                    raise MocapError(f"camera {index} stopped giving pictures after {n} frames")
        finally:
            cap.release()

    return Source(frames(), (int(width), int(height)), fps, camera=True)


def frame_message(n: int, t: float, keypoints: np.ndarray, confidence: np.ndarray, hands=None,
                  face: np.ndarray | None = None) -> dict:
    """One frame as the protocol's message: keypoints (J, 2) pixels (NaN: missing), confidence (J,);
    ``hands``: None, or (hand_keypoints (42, 2) pixels, hand_confidence (42,), hand_world (42, 3)
    metres) of the ``hands42`` layout, NaN where a hand is not found (then null in the message);
    ``face``: None, or (478, 3) x, y, z pixels of the ``face478`` points, NaN where the face is
    not found (then ``face_keypoints`` is null)."""
    kp = np.round(np.asarray(keypoints, dtype=np.float64), _DECIMALS_PX)
    present = np.isfinite(kp).all(-1)
    if not present.any():
        points = None
    else:
        points = [[float(x), float(y)] if ok else None for (x, y), ok in zip(kp.tolist(), present)]
    conf = np.where(present, np.round(np.asarray(confidence, dtype=np.float64), _DECIMALS_CONF), 0.0)
    message = {"type": "frame", "frame": int(n), "t": round(float(t), 6), "keypoints": points,
               "confidence": conf.tolist()}
    if hands is not None:
        hand_kp, hand_conf, hand_world = (np.asarray(a, dtype=np.float64) for a in hands)
        seen = np.isfinite(hand_kp).all(-1) & np.isfinite(hand_world).all(-1)
        message["hand_keypoints"] = [[float(x), float(y)] if ok else None
                                     for (x, y), ok in zip(np.round(hand_kp, _DECIMALS_PX).tolist(), seen)]
        message["hand_confidence"] = np.where(seen, np.round(hand_conf, _DECIMALS_CONF), 0.0).tolist()
        message["hand_world"] = [[float(v) for v in p] if ok else None
                                 for p, ok in zip(np.round(hand_world, _DECIMALS_WORLD).tolist(), seen)]
    if face is not None:
        f = np.asarray(face, dtype=np.float64)
        message["face_keypoints"] = (np.round(f, _DECIMALS_PX).tolist() if np.isfinite(f).all() else None)
    return message


class _Stop:
    """Set by SIGTERM / SIGINT (main thread only); the loop checks it between frames."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: dict[int, object] = {}

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, lambda *_: self.event.set())
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _protocol_stdout():
    """A text file on the original stdout; fd 1 itself goes to stderr meanwhile (native libraries
    that print would otherwise corrupt the JSON lines). Restored on exit."""
    sys.stdout.flush()
    out_fd = os.dup(1)
    saved = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(out_fd, "w", encoding="utf-8", buffering=1)
    try:
        yield out
    finally:
        try:
            out.close()
        except OSError:  # BrokenPipe on the last flush: the reader left
            pass
        os.dup2(saved, 1)
        os.close(saved)


def _write(out, message: dict) -> None:
    out.write(json.dumps(message, separators=(",", ":")) + "\n")
    out.flush()


@contextlib.contextmanager
def open_detector(detection: DetectionOptions, *, min_pose_confidence: float = 0.5):
    """``with open_detector(options) as (layout, detect):`` ``detect(frame, timestamp_ms)`` ->
    the streamed person's keypoints (J, 2) pixels (NaN: not seen) and confidence (J,) of one
    frame (H, W, 3) uint8 RGB; ``timestamp_ms`` strictly increasing (MediaPipe's VIDEO mode).

    MocapError where ``--detector mediapipe`` cannot do what is asked: MediaPipe is not
    installed (the message names the extra, and the default detector that needs none), or
    ``person`` names someone other than the main person (MediaPipe follows one person).
    """
    detector = detection.detector_for(1)
    if detector != "mediapipe":
        from mocap.detect2d.people import LivePeople

        people = LivePeople(detector=detector, person=detection.person, device=detection.device,
                            min_confidence=min_pose_confidence)
        try:
            yield people.layout, lambda frame, timestamp_ms: people.step(frame)[:2]
        finally:
            people.close()
        return
    if detection.person not in ("auto", "largest"):
        raise MocapError(f"--detector mediapipe follows one person with MediaPipe's own tracking; --person "
                         f"{detection.person} needs the default detector (leave out --detector)")
    try:
        from mocap.detect2d.mediapipe_pose import PoseDetector

        pose = PoseDetector(min_pose_confidence=min_pose_confidence)
    except ImportError as e:
        raise MocapError(f"--detector mediapipe needs MediaPipe ({e}); or leave out --detector: the default, "
                         f"blazepose-torch, needs no MediaPipe") from None
    with pose:
        yield "mediapipe33", lambda frame, timestamp_ms: pose.detect(frame, timestamp_ms)[:2]


def stream(source: Source, out, *, realtime: bool, mirror: bool, min_pose_confidence: float,
           stop: threading.Event, detection: DetectionOptions = DetectionOptions(), level: bool = False) -> int:
    """Detect and write every frame of ``source`` (hello first; with ``level`` it holds the first
    frame's straight segments, :func:`mocap.detect2d.lines.line_segments`); returns the frames written."""
    pace = realtime and not source.camera
    written, last_ms, start = 0, -1, None
    hands = faces = hand_rois = face_roi = None
    if detection.hands:
        from mocap.detect2d.estimators.hands_torch import HandLandmarksTorch

        hands = HandLandmarksTorch(detection.device)
    if detection.face:
        from mocap.detect2d.estimators.face_torch import FaceLandmarksTorch

        faces = FaceLandmarksTorch(detection.device)
    with open_detector(detection, min_pose_confidence=min_pose_confidence) as (layout, detect):
        hello = {"type": "hello", "layout": layout, "image_size": list(source.image_size), "fps": source.fps}
        frames = iter(source.frames)
        # --level: the room's lines in the first frame (as the performer sees it). The person is not
        # left out: one frame has too few lines then (on the example the focal length is no longer
        # found and the pitch comes out 2 deg steeper), and the limbs of someone standing agree
        # with the room's verticals
        if level:
            from mocap.detect2d.lines import line_segments

            first = next(frames, None)
            if first is not None:
                frames = itertools.chain([first], frames)
                image = np.ascontiguousarray(first[2][:, ::-1]) if mirror else first[2]
                hello["scene_lines"] = np.round(line_segments(image), 1).tolist()
        _write(out, hello)
        for n, t, frame in frames:
            if stop.is_set():
                break
            if pace and start is not None:
                late = time.perf_counter() - (start + t)
                if late > 1.0 / source.fps:
                    continue  # a camera would have dropped it: detection is slower than the video
                if late < 0 and stop.wait(-late):
                    break
            if mirror:
                frame = np.ascontiguousarray(frame[:, ::-1])
            if source.camera:
                timestamp_ms = max(int(round(t * 1000.0)), last_ms + 1)
            else:  # as detect_frames: from the frame number, made strictly increasing
                timestamp_ms = max(int(round(n * 1000.0 / source.fps)), last_ms + 1)
            last_ms = timestamp_ms
            keypoints, confidence = detect(frame, timestamp_ms)
            found = None
            if hands is not None:  # each hand followed from the previous frame, else found from this frame's body
                h = hands.hands([frame], np.asarray(keypoints)[None], np.asarray(confidence)[None], track=True,
                                start_roi=hand_rois)
                hand_rois = h.next_roi
                found = (h.keypoints[0], h.confidence[0], h.world[0])
            face = None
            if faces is not None:  # the face followed from the previous frame, else found from this frame's body
                f = faces.faces([frame], np.asarray(keypoints)[None], np.asarray(confidence)[None], track=True,
                                start_roi=face_roi)
                face_roi = f.next_roi
                face = np.concatenate([f.keypoints[0], f.z[0][:, None]], -1)
            _write(out, frame_message(n, t, keypoints, confidence, found, face))
            written += 1
            if start is None:  # the clock starts once the first frame is out (the detector warms up on it)
                start = time.perf_counter() - t
    return written


def stream2d_main(argv: list[str]) -> int:
    """``mocap stream-2d SOURCE [--realtime] [--max-frames N] [--mirror] [--detector NAME] [--person WHO]``;
    returns the exit status."""
    args = parse_args(argv)
    try:
        if args.max_frames is not None and args.max_frames < 1:
            raise MocapError(f"--max-frames must be at least 1, got {args.max_frames}")
        if not 0.0 <= args.min_pose_confidence <= 1.0:
            raise MocapError(f"--min-pose-confidence must lie in [0, 1], got {args.min_pose_confidence}")
        detection = from_namespace(DetectionOptions, args)
        with _Stop() as stop, _protocol_stdout() as out:
            source = open_source(args.source, max_frames=args.max_frames)
            try:
                stream(source, out, realtime=args.realtime, mirror=args.mirror,
                       min_pose_confidence=args.min_pose_confidence, stop=stop.event, detection=detection,
                       level=args.level)
            except BrokenPipeError:  # the reader closed our stdout: the normal way to stop us
                pass
            finally:
                source.frames.close()
    except (MocapError, ValueError, ImportError) as e:
        if os.environ.get("MOCAP_DEBUG"):
            raise
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(stream2d_main(sys.argv[1:]))
