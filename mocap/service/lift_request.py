"""``POST /v1/lift`` request bodies -> keypoints, and motion -> reply (no web framework here).

:func:`parse_lift_body` turns the raw body (JSON, or multipart with a ``keypoints2d.npz``)
into :class:`mocap.formats.Keypoints2D` plus the request's options, checking every size
that comes from the client before anything of that size is allocated: the frame count of
JSON lists before they become arrays, and an npz's declared array shapes
(:func:`mocap.io.npz_limits.check_npz`) before a byte of array data is decompressed. Every
refusal is a ``ValueError`` whose message says what is wrong (the route answers 422).

:class:`BodyParser` runs :func:`parse_lift_body` in a child process: ``json.loads`` of a
large body holds the interpreter lock for seconds, which in a thread would stall the event
loop and the stream worker alike; a child process keeps both running.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from mocap.errors import MocapError
from mocap.formats import Keypoints2D, load_keypoints
from mocap.io.npz_limits import check_npz

LAYOUTS = ("mediapipe33", "coco17")
_NPZ_FRAME_ARRAYS = ("keypoints", "confidence", "world_landmarks")
_MAX_FORM_PARTS = 8
_MAX_FIELD_BYTES = 1024


def _frames_array(value, num_joints: int, dims: int, what: str) -> np.ndarray:
    """JSON T x J x dims (or T x J for dims == 0) with nulls anywhere -> float64 array, NaN for null."""
    shape_tail = (num_joints, dims) if dims else (num_joints,)
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list of frames")
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        arr = None
    if arr is None or arr.shape[1:] != shape_tail:  # nulls for whole points or frames, or a bad shape
        arr = np.full((len(value),) + shape_tail, np.nan)
        for t, frame in enumerate(value):
            if frame is None:
                continue
            if not isinstance(frame, list) or len(frame) != num_joints:
                raise ValueError(f"{what} must have shape (T, {', '.join(map(str, shape_tail))}) for this layout: "
                                 f"{what}[{t}] is not a list of {num_joints} entries or null")
            for j, item in enumerate(frame):
                if item is None:
                    continue
                try:
                    value_tj = np.array(item, dtype=np.float64)
                    if value_tj.shape != shape_tail[1:]:
                        raise ValueError(value_tj.shape)
                    arr[t, j] = value_tj
                except (TypeError, ValueError, OverflowError):
                    raise ValueError(f"{what}[{t}][{j}] must be {'[x, y] numbers' if dims else 'a number'} or null, "
                                     f"got {str(item)[:80]}") from None
    return arr


def keypoints_from_json(body: dict, *, max_frames: int) -> Keypoints2D:
    """A /v1/lift JSON body -> Keypoints2D (NaN + confidence 0 for missing); ValueError saying what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object with layout, fps, image_size, keypoints and confidence")
    unknown = set(body) - {"layout", "fps", "image_size", "keypoints", "confidence", "focal_px", "decimals"}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))[:200]}")
    layout = body.get("layout")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {str(layout)[:40]!r}")
    num_joints = 33 if layout == "mediapipe33" else 17
    fps = body.get("fps", 30.0)
    # comparisons first: they hold for ints of any size (math.isfinite(10**400) would overflow)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000:
        raise ValueError(f"fps must be a number in (0, 1000], got {str(fps)[:40]}")
    size = body.get("image_size")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 100_000 for v in size)):
        raise ValueError(f"image_size must be [width, height] in whole pixels > 0, got {str(size)[:80]}")
    if "keypoints" not in body:
        raise ValueError("keypoints missing: T x J x 2 pixels, null for a missing point")
    frames = body["keypoints"]
    if isinstance(frames, list) and len(frames) > max_frames:
        raise ValueError(f"{len(frames)} frames is more than the {max_frames} a request may hold; split the clip")
    kp = _frames_array(frames, num_joints, 2, "keypoints")
    if kp.shape[0] == 0:
        raise ValueError("keypoints hold no frames")
    present = np.isfinite(kp).all(-1)
    if body.get("confidence") is None:
        conf = present.astype(np.float64)
    else:
        conf = _frames_array(body["confidence"], num_joints, 0, "confidence")
        if conf.shape != present.shape:
            raise ValueError(f"confidence must have shape {present.shape} like the keypoints, got {conf.shape}")
        conf = np.nan_to_num(conf, nan=0.0, posinf=0.0, neginf=0.0)
        if conf.min() < 0 or conf.max() > 1:
            raise ValueError("confidence values must lie in [0, 1]")
        conf = np.where(present, conf, 0.0)
    kp[~present] = np.nan
    try:
        return Keypoints2D(keypoints=kp.astype(np.float32), confidence=conf.astype(np.float32), layout=layout,
                           image_size=(size[0], size[1]), fps=float(fps))
    except MocapError as e:
        raise ValueError(str(e)) from None


def optional_number(value, name: str, *, whole: bool = False, low: float, high: float):
    """A JSON or form value -> float (int if ``whole``) in [low, high], None for null / "";
    ValueError for anything else (text, NaN, infinities, ints of any size out of range)."""
    if value is None or value == "":
        return None
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {str(value)[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {str(value)[:40]}")
    if not low <= value <= high:  # false for NaN; exact for ints of any size
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got {str(value)[:40]}")
    if whole:
        if value != int(value):
            raise ValueError(f"{name} must be a whole number, got {value}")
        return int(value)
    return float(value)


def _check_clip(keypoints: Keypoints2D, max_frames: int) -> None:
    from mocap.lift.network import frame_stride  # the lifter's own rule (numpy only)

    if keypoints.num_frames > max_frames:
        raise ValueError(f"{keypoints.num_frames} frames is more than the {max_frames} a request may hold")
    stride = frame_stride(keypoints.fps)
    if keypoints.num_frames < stride:
        raise ValueError(f"a clip at {keypoints.fps:g} fps is lifted as {stride} interleaved sub-clips near 30 fps, "
                         f"so it needs at least {stride} frames; got {keypoints.num_frames}")


def _form_parts(body: bytes, content_type: str) -> dict[str, tuple[bytes | None, bytes]]:
    """A multipart/form-data body -> {field: (file name or None, value)}; ValueError if malformed."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ValueError("malformed multipart body: no boundary in the content type")
    parts: dict[str, tuple[bytes | None, bytes]] = {}
    state = {"headers": {}, "field": b"", "value": b"", "data": [], "ended": False}

    def header_end() -> None:
        state["headers"][state["field"].strip().lower()] = state["value"].strip()
        state["field"], state["value"] = b"", b""

    def part_end() -> None:
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", errors="replace")
        if len(parts) >= _MAX_FORM_PARTS or name in parts:
            raise ValueError(f"malformed multipart body: more than {_MAX_FORM_PARTS} parts, or {name[:40]!r} twice")
        parts[name] = (disposition.get(b"filename"), b"".join(state["data"]))
        state["headers"], state["data"] = {}, []

    callbacks = {
        "on_header_field": lambda d, s, e: state.__setitem__("field", state["field"] + d[s:e]),
        "on_header_value": lambda d, s, e: state.__setitem__("value", state["value"] + d[s:e]),
        "on_header_end": header_end, "on_part_data": lambda d, s, e: state["data"].append(d[s:e]),
        "on_part_end": part_end, "on_end": lambda: state.__setitem__("ended", True)}
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as e:
        raise ValueError(f"malformed multipart body: {e}") from None
    if not state["ended"]:
        raise ValueError("malformed multipart body: it ends before its closing boundary")
    return parts


def _keypoints_from_npz(data: bytes, max_frames: int) -> Keypoints2D:
    try:
        check_npz(data, max_frames=max_frames, frame_arrays=_NPZ_FRAME_ARRAYS,
                  max_total_bytes=max_frames * 33 * 6 * 8 + 1024 * 1024)  # float64 keypoints, confidence, world
    except MocapError as e:
        raise ValueError(f"the uploaded file: {e}") from None
    with tempfile.TemporaryDirectory(prefix="mocap-lift-") as tmp:
        path = Path(tmp) / "keypoints2d.npz"
        path.write_bytes(data)
        try:
            return load_keypoints(path)
        except MocapError as e:
            raise ValueError(str(e).replace(str(path), "the uploaded file")) from None


def parse_lift_body(body: bytes, content_type: str, *, max_frames: int) -> tuple[Keypoints2D, float | None, int | None]:
    """A /v1/lift body -> (keypoints, focal_px or None, decimals or None); ValueError saying what is wrong.

    ``content_type``: the request's header, ``application/json`` (or empty) or
    ``multipart/form-data; boundary=...``; the route answers 415 for any other type.
    """
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        parts = _form_parts(body, content_type)
        filename, data = parts.get("file", (None, b""))
        if filename is None:
            raise ValueError("multipart body needs a 'file' field holding a keypoints2d.npz")
        fields = {}
        for name in ("focal_px", "decimals"):
            raw = parts.get(name, (None, b""))[1]
            if len(raw) > _MAX_FIELD_BYTES:
                raise ValueError(f"field {name} is over {_MAX_FIELD_BYTES} bytes")
            fields[name] = raw.decode("utf-8", errors="replace").strip()
        keypoints = _keypoints_from_npz(data, max_frames)
    else:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, too many digits
            raise ValueError(f"malformed JSON: {str(e)[:200]}") from None
        keypoints = keypoints_from_json(payload, max_frames=max_frames)
        fields = payload
    focal_px = optional_number(fields.get("focal_px"), "focal_px", low=1e-6, high=1e7)
    decimals = optional_number(fields.get("decimals"), "decimals", whole=True, low=0, high=17)
    _check_clip(keypoints, max_frames)
    return keypoints, focal_px, decimals


def motion_reply(motion, *, decimals: int | None = None, seconds: float | None = None) -> dict:
    """Motion -> the /v1/lift reply dict (full float64 precision unless ``decimals``)."""
    def out(a):
        a = np.asarray(a, dtype=np.float64)
        a = np.round(a, decimals) if decimals is not None else a
        return a.tolist() if np.isfinite(a).all() else np.where(np.isfinite(a), a, None).tolist()

    reply = {"fps": motion.fps, "num_frames": motion.num_frames, "joint_names": list(motion.joint_names),
             "parents": list(motion.parents), "rest_offsets": out(motion.rest_offsets), "joints": out(motion.joints),
             "local_quats_wxyz": out(motion.local_quats_wxyz), "root_translation": out(motion.root_translation)}
    if seconds is not None:
        reply["seconds"] = round(seconds, 4)
    return reply


def lift_openapi(*, max_frames: int) -> dict:
    """The OpenAPI ``requestBody`` of ``POST /v1/lift`` and its 200 reply's JSON schema, as
    ``{"requestBody": ..., "reply": ...}``: the rules :func:`parse_lift_body` checks that a
    schema can state (the joint count per layout and the frame stride it cannot), and
    :func:`motion_reply`'s fields (``None`` where a value is not finite)."""
    number_or_null = {"type": ["number", "null"]}
    point = {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
    json_body = {
        "type": "object", "required": ["layout", "image_size", "keypoints"], "additionalProperties": False,
        "properties": {
            "layout": {"type": "string", "enum": list(LAYOUTS)},
            "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000, "default": 30},
            "image_size": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 100_000},
                           "minItems": 2, "maxItems": 2, "description": "[width, height] pixels"},
            "keypoints": {"type": "array", "minItems": 1, "maxItems": max_frames,
                          "items": {"type": ["array", "null"], "items": point},
                          "description": "T x J x 2 pixels (J = 33 for mediapipe33, 17 for coco17); "
                                         "null for a missing point or frame"},
            "confidence": {"type": ["array", "null"], "items": {"type": ["array", "null"], "items": {
                "type": ["number", "null"], "minimum": 0, "maximum": 1}}, "description": "T x J in [0, 1]"},
            "focal_px": {"type": ["number", "null"], "minimum": 1e-6, "maximum": 1e7},
            "decimals": {"type": ["integer", "null"], "minimum": 0, "maximum": 17},
        }}
    form_body = {
        "type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary", "description": "a keypoints2d.npz"},
            "focal_px": {"type": "string", "maxLength": _MAX_FIELD_BYTES, "description": "a number, pixels"},
            "decimals": {"type": "string", "maxLength": _MAX_FIELD_BYTES, "description": "a whole number, 0..17"},
        }}
    arrays = {"type": "array", "items": {"type": "array", "items": number_or_null}}
    frames = {"type": "array", "items": arrays}
    reply = {
        "type": "object", "required": ["fps", "num_frames", "joint_names", "parents", "rest_offsets", "joints",
                                       "local_quats_wxyz", "root_translation"],
        "properties": {
            "fps": {"type": "number"}, "num_frames": {"type": "integer"},
            "joint_names": {"type": "array", "items": {"type": "string"}},
            "parents": {"type": "array", "items": {"type": "integer"}},
            "rest_offsets": arrays, "joints": frames, "local_quats_wxyz": frames, "root_translation": arrays,
            "seconds": {"type": "number"},
        }}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": json_body},
                                                           "multipart/form-data": {"schema": form_body}}},
            "reply": reply}


def _exit_with_parent(parent_pid: int) -> None:
    """In the child: exit when the server process is gone (killed with -9 it cannot say so)."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="mocap-exit-with-parent", daemon=True).start()


class BodyParser:
    """Runs :func:`parse_lift_body` in one child process (started on first use, restarted if it dies).

    ``await parse(body, content_type, max_frames=...)`` returns its result or raises its
    ValueError; a child killed while parsing (out of memory) is a ValueError too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn: a fresh interpreter, without the server's threads (fork would copy their
                # locks) and a direct child, so it can tell when the server is gone
                context = multiprocessing.get_context("spawn")
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),))
            return self._pool

    def start(self) -> None:
        """Start the child now (numpy and the readers imported, ~1 s of CPU once), not on the first request."""
        self._executor().submit(int)

    async def parse(self, body: bytes, content_type: str, *, max_frames: int):
        pool = self._executor()
        try:
            return await asyncio.wrap_future(pool.submit(parse_lift_body, body, content_type, max_frames=max_frames))
        except concurrent.futures.process.BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False)
            raise ValueError("the body could not be parsed within the server's memory; send a smaller clip") from None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _json_chunks(value, block: int = 64):
    """JSON text of ``value`` in pieces (lists longer than ``block`` dumped ``block`` items at a
    time), equal to ``json.dumps(value, separators=(",", ":"), allow_nan=False)`` once joined.
    Many short dumps instead of one long one let other threads take the GIL in between."""
    if isinstance(value, dict):
        yield "{"
        for i, (k, v) in enumerate(value.items()):
            yield ("," if i else "") + json.dumps(k) + ":"
            yield from _json_chunks(v, block)
        yield "}"
    elif isinstance(value, list) and len(value) > block:
        yield "["
        for i in range(0, len(value), block):
            yield ("," if i else "") + json.dumps(value[i:i + block], separators=(",", ":"), allow_nan=False)[1:-1]
        yield "]"
    else:
        yield json.dumps(value, separators=(",", ":"), allow_nan=False)


def motion_reply_json(motion, *, decimals: int | None = None, seconds: float | None = None) -> bytes:
    """:func:`motion_reply` as UTF-8 JSON text, rendered in short pieces (see :func:`_json_chunks`)."""
    return "".join(_json_chunks(motion_reply(motion, decimals=decimals, seconds=seconds))).encode()
