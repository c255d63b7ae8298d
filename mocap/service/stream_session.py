"""Live lifting of one connection, frame by frame (no web framework here). The client's messages
are read in :mod:`mocap.service.stream_messages` (re-exported here: ``StreamConfig``,
``parse_hello``, ``Frame``, ``parse_frame``).

Per frame: 2D keypoints (J, 2) pixels + confidence (J,) -> the detector's left/right swaps undone
as they happen (:class:`mocap.detect2d.swaps.SwapFilter`; off with the hello's ``resolve_swaps``) -> causal network
(:class:`mocap.lift.network.StreamingLifter`, root-relative camera-frame metres) -> world axes
(gravity's up as +Y when the client gives it, else the camera's own; the person facing the camera faces +Z) ->
One-Euro smoothing (:class:`mocap.cleanup.filters.OneEuroFilter`) -> inverse kinematics
(:func:`mocap.kinematics.ik.solve_ik`, the solver of the offline pipeline, its plan built once
per process) to MOTION21 local rotations against the MOTION21 rest pose (a T-pose facing +Z,
:func:`mocap.skeletons.rest_offsets`).

The joints returned are the smoothed network output itself (root-relative, pelvis at 0);
the rotations reproduce every bone direction exactly except below the three joints with
several children (pelvis, neck, ankles), where the rigid rest geometry is fitted in the
least-squares sense (typically a few degrees off; see the tests).

Weights are read once per process (:func:`shared_causal_model`) and shared by every
session; each session holds only its own activation buffers (a slot of the model's
:class:`mocap.lift.model.CausalSteps`), filter state and the last rotations (for sign
continuity). :class:`FrameBatcher` runs the frames of all sessions in one worker thread,
taking every frame pending at that moment as one batch: one network pass and one IK call
per batch, each session's reply the same bits as if it were alone. The IK's cost per
frame: ``python benchmarks/bench_ik.py``; the server's CPU per frame under many streams:
``python benchmarks/load_stream.py``.

Gravity: a client that knows it (a phone's motion sensor: hello ``gravity``) or can send the
straight segments of one camera image (hello ``scene_lines``: the room's vertical lines,
:func:`mocap.fit.scene.vertical_up`) gets a world whose +Y is up, whatever the camera's pitch
and roll (:func:`mocap.fit.ground.world_from_camera`); otherwise the world axes are the
camera's with y and z flipped, so a pitched camera shows a leaning person. No ground contact here.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from mocap.cleanup.filters import OneEuroFilter
from mocap.detect2d.swaps import SwapFilter
from mocap.service.stream_gravity import camera_angles, picture_turn_for, world_joints
from mocap.service.stream_messages import (FACE_POINTS, HAND_POINTS, STREAM_LAYOUTS, Frame,  # noqa: F401
                                           Smoothing, StreamConfig, parse_frame, parse_hello)
from mocap.face.controls import CONTROLS as FACE_CONTROLS
from mocap.face.controls import LiveFace
from mocap.kinematics import fingers as fk
from mocap.kinematics.ik import plan_ik, solve_ik
from mocap.lift.lifters import default_focal_px
from mocap.skeletons import MOTION21, MOTION61, rest_offsets

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
_REST_OFFSETS = rest_offsets(MOTION21)
_IK_PLAN = plan_ik(MOTION21.parents, _REST_OFFSETS, skeleton=MOTION21)
_HAND_PLAN = fk.plan_hands(MOTION61, rest_offsets(MOTION61))
#: the MOTION61 joints of the hands42 points (each hand's wrist, then its 20 finger joints)
_HAND_JOINTS = _HAND_PLAN.hand_points.reshape(-1)
_LOG_INTERVAL_S = 60.0  # a session's unexpected frame failures: one log line a minute at most


_model_lock = threading.Lock()
_models: dict[str, object] = {}


def shared_causal_model(weights: str | None = None):
    """The causal :class:`mocap.lift.model.TemporalLifter`, read once per process and shared.

    Its weights are only read (eval mode, no grad), so sessions in several threads may use
    it at once; each session's :class:`StreamingLifter` keeps its own buffers.
    """
    from mocap.lift.network import default_weights_path, load_model

    path = str(weights or default_weights_path(causal=True))
    with _model_lock:
        if path not in _models:
            _models[path] = load_model(path)
        return _models[path]


def _as_list(a: np.ndarray, decimals: int | None) -> list:
    return (np.round(a, decimals) if decimals is not None else a).tolist()


class StreamSession:
    """State of one live connection; see the module docstring.

    Args:
        config: the client's settings (from its hello).
        model: a causal :class:`mocap.lift.model.TemporalLifter`; default the shared one.

    Use :meth:`process` for one frame at a time, or :func:`process_batch` for the frames of
    many sessions at once (same numbers). ``dropped`` is kept by the transport: frames it
    discarded because newer ones arrived; replies report it.
    """

    def __init__(self, config: StreamConfig, *, model=None) -> None:
        from mocap.lift.network import StreamingLifter

        self.config = config
        self._hips_px = None  # the hips' last pixel (the ray the network's axes follow)
        self.model = model if model is not None else shared_causal_model()
        self.lifter = StreamingLifter.from_model(self.model)
        self.swaps = SwapFilter(config.layout, fps=config.fps) if config.resolve_swaps else None
        self._turn = picture_turn_for(config.up)  # a rolled camera: the network sees its picture upright
        self.frames_processed = 0
        self.dropped = 0
        self.internal_errors = 0  # frames that failed unexpectedly (logged once a minute at most)
        self.last_logged = -math.inf
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new shot starts): network buffers, left/right labels, filter and
        quaternion signs."""
        self.lifter.reset()
        if self.swaps is not None:
            self.swaps.reset()
        self._hips_px = None
        s = self.config.smoothing
        self.filter = None if s is None else OneEuroFilter(fps=self.config.fps, min_cutoff=s.min_cutoff,
                                                          beta=s.beta, d_cutoff=s.d_cutoff)
        self._prev_quats = None
        self._prev_hand_quats = None
        self.face = LiveFace(self.config.fps)

    def hello(self) -> dict:
        """The server's hello: the skeleton and the conventions of every later reply."""
        c = self.config
        return {"type": "hello", "protocol": PROTOCOL_VERSION, "layout": c.layout, "image_size": list(c.image_size),
                "fps": c.fps, "coords": c.coords, "decimals": c.decimals,
                "smoothing": None if c.smoothing is None else vars(c.smoothing).copy(),
                "resolve_swaps": c.resolve_swaps,
                "receptive_field": int(self.model.receptive_field),
                "joint_names": list(MOTION21.joint_names), "parents": list(MOTION21.parents),
                "rest_offsets": _REST_OFFSETS.tolist(), "quat_order": "wxyz",
                "hand_joint_names": [MOTION61.joint_names[i] for i in _HAND_JOINTS],
                "hand_parent_names": [MOTION61.joint_names[MOTION61.parents[i]] for i in _HAND_JOINTS],
                "hand_rest_offsets": rest_offsets(MOTION61)[_HAND_JOINTS].tolist(),
                "face_control_names": list(FACE_CONTROLS),
                "gravity_from": c.gravity_from, **camera_angles(c.up),
                "axes": "metres, right-handed, +Y up, +Z towards the camera, pelvis at the origin"
                        + ("" if c.up is not None else " (+Y the camera's up: send gravity or scene_lines to level it)")}

    def unswap(self, frame: Frame) -> tuple[Frame, list[bool]]:
        """``frame`` with the parts whose left and right the detector swapped traded back (the
        hands with the upper body), and which parts those are: [upper body, lower body]."""
        if self.swaps is None:
            return frame, [False, False]
        flags = self.swaps.push(frame.keypoints, frame.confidence)
        if not flags.any() or not np.isfinite(frame.keypoints).any():  # nobody in the frame: nothing traded
            return frame, [False, False]
        changes = {"keypoints": self.swaps.apply(frame.keypoints, flags),
                   "confidence": self.swaps.apply(frame.confidence, flags)}
        for name in ("hand_keypoints", "hand_confidence", "hand_world"):  # the hands follow the arms
            value = getattr(frame, name)
            if value is not None:
                changes[name] = self.swaps.apply(value, flags, hands=True)
        return dataclasses.replace(frame, **changes), [bool(f) for f in flags]

    def lift(self, frame: Frame) -> np.ndarray:
        """Frame (its swaps already undone: :meth:`unswap`) -> smoothed world joints (21, 3) metres,
        +Y up, root-relative; all NaN if no person."""
        return self.smooth(self.world(self.pushed(frame), frame.keypoints))

    def upright(self, keypoints: np.ndarray) -> np.ndarray:
        """A frame's 2D (J, 2) as the network takes it: turned about the picture's centre by the
        camera's roll when it is over :data:`mocap.lift.trajectory.UPRIGHT_ROLL_DEG` (gravity known)."""
        if self._turn is None:
            return keypoints
        from mocap.lift.trajectory import turn_pixels

        return turn_pixels(keypoints, self._turn, self.config.image_size)

    def turned_back(self, rel_cam: np.ndarray) -> np.ndarray:
        """The network's joints (21, 3) of an :meth:`upright` frame, in the camera's own axes."""
        return rel_cam if self._turn is None else rel_cam @ self._turn

    def pushed(self, frame: Frame) -> np.ndarray:
        """The causal network's joints (21, 3) of ``frame``, camera axes (ray-centred)."""
        return self.turned_back(self.lifter.push(self.upright(frame.keypoints), frame.confidence))

    def world(self, rel_cam: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """The network's joints (21, 3) of a frame with 2D ``keypoints`` (J, 2) -> this stream's world
        (:func:`mocap.service.stream_gravity.world_joints`)."""
        c = self.config
        out, self._hips_px = world_joints(rel_cam, keypoints, c.layout, up=c.up,
                                          focal_px=c.focal_px or default_focal_px(c.image_size), size=c.image_size,
                                          last_px=self._hips_px)
        return out

    def smooth(self, joints: np.ndarray) -> np.ndarray:
        """World joints (21, 3) of the network -> this stream's One-Euro output (the raw joints without smoothing)."""
        return joints if self.filter is None else self.filter(joints)

    def finish(self, frame: Frame, joints: np.ndarray, quats: np.ndarray | None, received_at: float | None,
               swapped: Sequence[bool] = (False, False)) -> dict:
        """Reply for ``frame``: joints (21, 3) (NaN: no person) and quats (21, 4) or None;
        ``swapped``: :meth:`unswap`'s parts."""
        self.frames_processed += 1
        ok = bool(np.isfinite(joints).all())
        if ok and quats is not None:
            # signs as quat_continuous_wxyz gives over the whole stream: w >= 0 first, then dot >= 0
            ref = self._prev_quats if self._prev_quats is not None else np.array([1.0, 0.0, 0.0, 0.0])
            quats = np.where(np.sum(quats * ref, -1, keepdims=True) < 0, -quats, quats)
            self._prev_quats = quats
        d = self.config.decimals
        reply = {"type": "pose", "frame": frame.index if frame.index is not None else self.frames_processed - 1,
                 "t": frame.t, "joints": _as_list(joints, d) if ok else None,
                 "local_quats_wxyz": _as_list(quats, d) if ok and quats is not None else None,
                 "swapped": list(swapped), "dropped": self.dropped}
        if frame.hand_keypoints is not None:
            reply.update(self.hands(frame, joints if ok else None, quats if ok else None))
        if frame.face_points is not None:
            reply.update(self.face_fields(frame.face_points))
        if received_at is not None:
            reply["latency_ms"] = round(1000.0 * (time.perf_counter() - received_at), 3)
        return reply

    def hands(self, frame: Frame, joints: np.ndarray | None, quats: np.ndarray | None) -> dict:
        """The reply's hand fields for ``frame`` (which holds hands): the keypoints and confidence
        as received (pixels; the hands traded back where the arms were, :meth:`unswap`),
        ``hand_valid`` [left, right], and ``hand_quats_wxyz`` (42, 4): the
        local rotations of each hand's wrist (against the forearm) and finger joints
        (:func:`finger_quats`; the hello's ``hand_joint_names``), sign-continuous over the
        stream, or None without the body, the hands' world landmarks or any hand seen."""
        d = self.config.decimals
        kp, conf = frame.hand_keypoints, frame.hand_confidence
        present = np.isfinite(kp).all(-1)
        out = {"hand_keypoints": [p if ok else None for p, ok in zip(_as_list(kp, d), present)],
               "hand_confidence": _as_list(conf, d), "hand_quats_wxyz": None,
               "hand_valid": [bool(present[:21].all()), bool(present[21:].all())]}
        if joints is None or quats is None or frame.hand_world is None:
            return out
        hq, valid = finger_quats(joints, quats, kp, frame.hand_world, conf, self.config.image_size)
        out["hand_valid"] = valid.tolist()
        if not valid.any():
            return out
        ref = self._prev_hand_quats if self._prev_hand_quats is not None else np.array([1.0, 0.0, 0.0, 0.0])
        hq = np.where(np.sum(hq * ref, -1, keepdims=True) < 0, -hq, hq)
        self._prev_hand_quats = hq
        out["hand_quats_wxyz"] = _as_list(hq, d)
        return out

    def face_fields(self, points: np.ndarray) -> dict:
        """The reply's face fields: ``face_controls`` (the hello's ``face_control_names``, each in
        [0, 1]; :class:`mocap.face.controls.LiveFace`: the person's rest learnt from the last
        10 s of the stream) and ``face_head_ypr`` (yaw, pitch, roll radians against facing the
        camera); both null in a frame without a whole face."""
        controls, ypr = self.face.step(points)
        d = self.config.decimals
        ok = bool(np.isfinite(ypr).all())
        return {"face_controls": [None if not np.isfinite(v) else v for v in _as_list(controls, d)] if ok else None,
                "face_head_ypr": _as_list(ypr, d) if ok else None}

    def process(self, msg: dict | Frame, received_at: float | None = None) -> dict:
        """One frame message (dict from JSON, or a parsed Frame) -> reply dict (see the protocol)."""
        return process_batch([(self, msg, received_at)])[0]


def finger_quats(joints: np.ndarray, quats: np.ndarray, hand_keypoints: np.ndarray, hand_world: np.ndarray,
                 hand_confidence: np.ndarray, image_size: tuple[int, int], *,
                 focal_px: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One frame's wrist and finger rotations, by the capture's finger stage
    (:func:`mocap.cleanup.fingers.motion_with_fingers`) on this one frame, without smoothing over
    time: the hands placed at the body's wrists through a level camera of ``focal_px`` (default:
    the lifter's default for ``image_size``; the stream's world axes are that camera's, y and z
    flipped).

    Args:
        joints: (21, 3) MOTION21 world metres (the stream's pose); quats: (21, 4) wxyz, its IK.
        hand_keypoints: (42, 2) pixels, hand_world (42, 3) metres, hand_confidence (42,): hands42.
        image_size: (width, height) pixels.
    Returns:
        ((42, 4) wxyz local rotations of the hands42 joints on MOTION61 (each hand's wrist
        against the forearm, then its finger joints against their parents; rest (1, 0, 0, 0)
        for a hand not seen), (2,) bool: each hand seen).
    """
    from mocap.cleanup.fingers import FingerOptions, level_camera, motion_with_fingers
    from mocap.formats import Motion
    from mocap.lift.lifters import default_focal_px

    body = Motion(joints=joints[None], joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=30.0,
                  local_quats_wxyz=quats[None], root_translation=(joints[0] - _REST_OFFSETS[0])[None],
                  rest_offsets=_REST_OFFSETS)
    camera = level_camera(focal_px or default_focal_px(image_size), image_size)
    m = motion_with_fingers(body, hand_keypoints[None], hand_world[None], hand_confidence[None], camera,
                            options=FingerOptions(cutoff_hz=0.0, max_gap_s=0.0))  # each frame on its own
    return m.local_quats_wxyz[0, _HAND_JOINTS], m.hand_valid[0]


def _error_reply(session: StreamSession, msg, error: str) -> dict:
    index = msg.get("frame") if isinstance(msg, dict) else getattr(msg, "index", None)
    return {"type": "error", "frame": index if isinstance(index, int) and -2**63 <= index < 2**63 else None,
            "error": error}


def _internal_error(session: StreamSession, msg, e: Exception) -> dict:
    """Error reply for a frame that failed unexpectedly; one log line per session a minute at most."""
    now = time.monotonic()
    session.internal_errors += 1
    if now - session.last_logged >= _LOG_INTERVAL_S:
        log.warning("stream session %x: a frame failed (%s: %.200s); %d failed so far, at most one line a minute",
                    id(session), e.__class__.__name__, e, session.internal_errors)
        session.last_logged = now
    return _error_reply(session, msg, f"internal error on this frame ({e.__class__.__name__}); the stream goes on")


def process_batch(items: Sequence[tuple[StreamSession, dict | Frame, float | None]]) -> list[dict]:
    """Frames of distinct sessions -> replies, in order: one network pass for every frame
    (:func:`mocap.lift.network.push_frames`), each session's smoothing, then one IK call
    (:func:`mocap.kinematics.ik.solve_ik`, each frame on its own) for every frame that has a
    person. Each reply is the one the session would get alone (the same bits). A bad message
    gives an error reply to its own session only; a failure in one session's frame does not
    touch the other frames of the batch."""
    from mocap.lift.network import push_frames

    n = len(items)
    frames: list[Frame | None] = [None] * n
    swapped: list[list[bool]] = [[False, False]] * n
    joints: list[np.ndarray | None] = [None] * n
    replies: list[dict | None] = [None] * n
    for i, (session, msg, _) in enumerate(items):
        try:
            frames[i] = msg if isinstance(msg, Frame) else parse_frame(msg, session.config)
            frames[i], swapped[i] = session.unswap(frames[i])
        except ValueError as e:
            replies[i] = _error_reply(session, msg, str(e))
        except Exception as e:  # noqa: BLE001 (isolation: no frame may break the others)
            replies[i] = _internal_error(session, msg, e)
    parsed = [i for i in range(n) if replies[i] is None]
    try:
        rel_cam = dict(zip(parsed, (items[i][0].turned_back(r) for i, r in zip(parsed, push_frames(
            [items[i][0].lifter for i in parsed], [items[i][0].upright(frames[i].keypoints) for i in parsed],
            [frames[i].confidence for i in parsed])))))
    except Exception:  # noqa: BLE001 (lift frame by frame below, so only a failing frame fails)
        rel_cam = {}
        for i in parsed:
            try:
                rel_cam[i] = items[i][0].pushed(frames[i])
            except Exception as e:  # noqa: BLE001
                replies[i] = _internal_error(items[i][0], items[i][1], e)
    for i, cam in rel_cam.items():
        try:
            joints[i] = items[i][0].smooth(items[i][0].world(cam, frames[i].keypoints))
        except Exception as e:  # noqa: BLE001
            replies[i] = _internal_error(items[i][0], items[i][1], e)
    ok = [i for i, jt in enumerate(joints) if jt is not None and np.isfinite(jt).all()]
    quats: dict[int, np.ndarray] = {}
    if ok:
        try:
            quats = dict(zip(ok, solve_ik(_IK_PLAN, np.stack([joints[i] for i in ok]))))
        except Exception:  # noqa: BLE001 (solve frame by frame below, so only a failing frame fails)
            quats = {}
            for i in ok:
                try:
                    quats[i] = solve_ik(_IK_PLAN, joints[i][None])[0]
                except Exception as e:  # noqa: BLE001
                    replies[i] = _internal_error(items[i][0], items[i][1], e)
    for i, (session, msg, received_at) in enumerate(items):
        if replies[i] is None and joints[i] is not None:
            try:
                replies[i] = session.finish(frames[i], joints[i], quats.get(i), received_at, swapped[i])
            except Exception as e:  # noqa: BLE001
                replies[i] = _internal_error(session, msg, e)
    return replies


class FrameBatcher:
    """One worker thread that runs :func:`process_batch` over whatever frames are waiting.

    ``submit(session, msg, received_at, done)`` queues a frame; ``done(reply)`` is called in
    the worker thread. A session must not have two frames queued at once (its transport
    waits for each reply). The thread starts on first use, limits torch to ``torch_threads``
    (many small sessions gain nothing from intra-op threads) and takes at most ``max_batch``
    frames per batch.
    """

    def __init__(self, *, max_batch: int = 64, torch_threads: int | None = 1) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.max_batch = max_batch
        self.torch_threads = torch_threads
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.frames = 0

    def submit(self, session: StreamSession, msg: dict | Frame, received_at: float | None,
               done: Callable[[dict], None]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mocap-stream-frames", daemon=True)
                self._thread.start()
        self._queue.put((session, msg, received_at, done))

    def _run(self) -> None:
        if self.torch_threads is not None:
            import torch

            torch.set_num_threads(self.torch_threads)
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                replies = process_batch([b[:3] for b in batch])
            except Exception as e:  # a bug must not stop the worker that every session shares
                log.exception("stream frame batch failed")
                replies = [{"type": "error", "error": f"internal error: {e.__class__.__name__}"}] * len(batch)
            self.batches += 1
            self.frames += len(batch)
            for (_, _, _, done), reply in zip(batch, replies):
                try:
                    done(reply)
                except Exception:  # one connection's failure must not starve the others in the batch
                    log.exception("stream reply delivery failed")
