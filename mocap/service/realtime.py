"""Low-latency routes of ``mocap serve``: ``POST /v1/lift`` and ``WebSocket /v1/stream``.

``make_router(verify_key)`` returns a FastAPI ``APIRouter``. ``verify_key(key)`` returns a
key id or raises ``fastapi.HTTPException`` (401 no key, 403 wrong key, 429 rate limited).
Errors are JSON ``{"error": "message"}`` with a 4xx status (503: the lifting network is
not installed).

POST /v1/lift
-------------
2D keypoints of a whole clip -> clean 3D motion, by the offline pipeline's
:func:`mocap.pipelines.capture.lift_keypoints` (the symmetric network, gap filling, root trajectory,
levelling, smoothing, bone lengths, IK, foot locking): the same numbers as ``mocap capture``
after detection. Key in ``X-API-Key`` or ``Authorization: Bearer <key>``. Body either

* JSON ``{"layout": "mediapipe33" | "coco17", "fps": 30, "image_size": [w, h],
  "keypoints": T x J x 2 pixels (null for a missing point or frame), "confidence": T x J
  (optional; null = 0), "focal_px": optional, "decimals": optional}``, or
* multipart/form-data with a ``file`` field holding a ``keypoints2d.npz``
  (:func:`mocap.formats.load_keypoints`), optional fields ``focal_px`` and ``decimals``.

Reply 200: ``{"fps", "num_frames", "joint_names" (21), "parents" (21), "rest_offsets"
(21 x 3 m), "joints" (T x 21 x 3 m, +Y up, feet on y = 0), "local_quats_wxyz" (T x 21 x 4),
"root_translation" (T x 3 m), "seconds"}``. 422: malformed JSON, wrong shapes, unknown
layout, numbers out of range, more than ``max_frames`` frames (for an npz: read from its
array headers before any data is decompressed, :mod:`mocap.io.npz_limits`), a clip at
45 fps or more shorter than ``round(fps / 30)`` frames, no person in any frame; 413: body
too large; 408: no body byte for ``body_timeout_s``; 415: another content type; 503: the
network lifter (torch, weights) is not installed. The body is parsed in a child process
(:class:`mocap.service.lift_request.BodyParser`), so a large one never stalls the streams.

WebSocket /v1/stream
--------------------
Key in the ``X-API-Key`` / ``Authorization`` header or a ``?key=`` query parameter
(browsers cannot set WebSocket headers). A refused key: the server accepts, then closes
with code 1008 and the reason (``"401: missing API key ..."``). Text (or UTF-8 binary)
JSON messages:

1. client ``{"type": "hello", "layout": "mediapipe33" | "coco17", "image_size": [w, h],
   "fps": 30, "coords": "pixels" | "normalized", "smoothing": {"min_cutoff": 1.0,
   "beta": 1.0, "d_cutoff": 1.0} | null, "decimals": 6 | null, "gravity": [x, y, z] | null,
   "scene_lines": [[x1, y1, x2, y2], ...] | null, "focal_px": pixels | null,
   "resolve_swaps": true | false}`` (only ``image_size`` is required; defaults shown;
   ``gravity``, the direction things fall in camera axes, or ``scene_lines`` of one camera
   image level the world: :mod:`mocap.service.stream_gravity`; ``resolve_swaps`` (default
   true) undoes the client detector's left/right swaps as they happen,
   :class:`mocap.detect2d.swaps.SwapFilter`). Within ``hello_timeout_s``; a bad hello gets
   ``{"type": "error", "error": ...}`` and close code 1007.
2. server ``{"type": "hello", "protocol": 1, "joint_names", "parents", "rest_offsets",
   "quat_order": "wxyz", "axes", "receptive_field", "hand_joint_names" (42),
   "hand_parent_names" (42), "hand_rest_offsets" (42 x 3 m), "face_control_names" (10),
   "gravity_from" ("client" | "scene" | "none"), "camera_pitch_deg" and "camera_roll_deg"
   (with gravity), ...the settings in effect}``.
3. client, per frame: ``{"type": "frame", "frame": n, "t": seconds, "keypoints": J x
   [x, y] (null for a missing point; null for no person), "confidence": J}`` (``type``,
   ``frame``, ``t`` and ``confidence`` optional; ``frame`` defaults to the count of
   frames received, ``t`` is echoed back). Optional hands (as ``mocap stream-2d --hands``
   sends them): ``"hand_keypoints": 42 x [x, y]`` (the ``hands42`` layout: the person's left
   hand's 21 points, then the right's; null for a missing point; pixels, or normalized as the
   hello says), ``"hand_confidence": 42`` (as ``confidence``) and ``"hand_world": 42 x [x, y,
   z]`` metres (each hand's 3D shape in camera axes, the hand network's world landmarks;
   needed for the finger rotations). Optional face: ``"face_keypoints": 478 x [x, y, z]``
   (MediaPipe's face mesh with irises, ``face478``; x, y pixels and z the network's depth in
   pixels, or all normalized as the hello says; null for a missing point).
4. server, per processed frame: ``{"type": "pose", "frame": n, "t": t, "joints": 21 x 3
   | null, "local_quats_wxyz": 21 x 4 | null, "swapped": [upper body, lower body] (the
   parts whose left and right were traded back before lifting), "dropped": frames dropped so far,
   "latency_ms": server time from receiving the frame to its reply}``. ``joints``: the
   causal network's MOTION21 joints after One-Euro smoothing, metres, +Y up, +Z towards
   the camera, pelvis at 0. ``local_quats_wxyz``: each joint's rotation relative to its
   parent (joint 0: the pelvis in the world axes) against the MOTION21 rest pose (a T-pose
   facing +Z, ``rest_offsets`` of the hello), sign-continuous over the stream. Both null
   when the frame has no person. A frame sent with hands also gets ``"hand_keypoints"`` and
   ``"hand_confidence"`` (as received, pixels; left and right traded back with the upper body's
   ``swapped``), ``"hand_valid"``: [left, right] (each hand
   seen) and ``"hand_quats_wxyz"``: 42 x 4 | null, the local rotations of the hello's
   ``hand_joint_names`` (each hand's wrist against its forearm, then the 20 finger joints
   against their parents, MOTION61 of ``mocap capture --hands``; ``hand_parent_names`` and
   ``hand_rest_offsets`` in the hello; the wrist's rotation replaces the body's, a leaf in
   MOTION21), by the capture's finger stage on that frame alone (no smoothing over time; about
   12 ms a frame on a 2-core machine); null without a person, without ``hand_world`` or
   when no hand is seen. A frame sent with a face also gets ``"face_controls"``: 10 numbers
   in [0, 1] (the hello's ``face_control_names``: ARKit's ``jawOpen``, ``eyeBlinkLeft`` ...),
   and ``"face_head_ypr"``: yaw, pitch, roll radians against facing the camera, both null
   without a whole face; causal (:class:`mocap.face.controls.LiveFace`: the person's rest from
   the last 10 s, a one-pole 8 Hz low-pass). A bad frame: ``{"type": "error", "frame": n, "error":
   ...}`` and the stream goes on (so does an unknown ``type`` or a message that is not JSON).
   A bad frame only ever affects its own client: other clients' frames processed in the
   same batch are answered as if it were not there; an unexpected failure is logged at most
   once a minute per client, without a traceback.
5. client ``{"type": "reset"}``: a new shot; history and smoothing restart (frames
   waiting are discarded, not counted as dropped). Close the socket to end.

Close codes: 1000 normal, 1007 bad hello, 1008 key refused or no hello in time, 1011 the
lifting network is not installed, 1013 too many streams. Messages over
``MAX_MESSAGE_BYTES`` get an error reply. A ``?key=`` appears in access logs that print
query strings: prefer the header where the client can send one.

Back-pressure: one task receives and keeps only the newest frame not yet processed (a
newer frame replaces it and counts as dropped); another sends it to the shared frame
worker (:class:`mocap.service.stream_session.FrameBatcher`, a thread, torch limited to
one thread) and awaits the reply. A slow client thus sees the newest pose, never a
queue of stale ones. More than ``max_sessions`` streams at once: close code 1013.
"""
import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable

from mocap.errors import MocapError
from mocap.formats import Keypoints2D
from mocap.service.lift_request import BodyParser, lift_openapi, motion_reply_json
from mocap.service.stream_session import (FrameBatcher, StreamSession, parse_hello, shared_causal_model)

log = logging.getLogger(__name__)

MAX_FRAMES = 18_000  # 10 minutes at 30 fps per /v1/lift request
MAX_BODY_BYTES = 64 * 1024 * 1024
BODY_TIMEOUT_S = 10.0  # a /v1/lift upload that sends nothing for this long is dropped (408)
_REASON_BYTES = 120  # a WebSocket close reason holds at most 123 bytes
MAX_MESSAGE_BYTES = 256 * 1024  # one stream message (a frame is ~1.5 kB)


# --- /v1/lift: the offline lifter, shared ----------------------------------------------------

class _OfflineLifter:
    """The offline network lifter, built once per process (weights read once) and shared."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lifter = None

    def get(self):
        with self._lock:
            if self._lifter is None:
                try:
                    from mocap.lift.network import NetworkLifter
                except ImportError as e:
                    raise MocapError(f"the network lifter needs torch ({e}); install mocap-lift[lift]") from None
                self._lifter = NetworkLifter(causal=False)
            return self._lifter


_offline = _OfflineLifter()
_parsers = BodyParser()  # one child process per server process, shared by every router


def _preload() -> None:
    _parsers.start()
    try:
        shared_causal_model()
        _offline.get()
    except (MocapError, ImportError) as e:  # the routes answer 503 / close 1011 with the reason
        log.warning("realtime routes: the lifting networks are not available: %s", e)


def lift_clip(keypoints: Keypoints2D, *, lifter, focal_px: float | None = None, torch_threads: int | None = 1):
    """The offline pipeline's lift (:func:`mocap.pipelines.capture.lift_keypoints`) -> Motion.

    ``torch_threads`` pins torch's CPU threads in the calling thread (None leaves them):
    requests and streams run side by side, and a fixed count gives the same float32 sums
    (to the last bit) as a lift run offline with that count.
    """
    from mocap.pipelines.capture import lift_keypoints

    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    return lift_keypoints(keypoints, lifter=lifter, focal_px=focal_px)


# --- the router ------------------------------------------------------------------------------

def make_router(verify_key: Callable[[str | None], str], *, max_frames: int = MAX_FRAMES,
                max_body_bytes: int = MAX_BODY_BYTES, max_sessions: int = 64, max_concurrent_lifts: int = 2,
                hello_timeout_s: float = 10.0, batcher: FrameBatcher | None = None, preload: bool = True,
                body_timeout_s: float = BODY_TIMEOUT_S):
    """The FastAPI router with ``POST /v1/lift`` and ``WebSocket /v1/stream`` (see the module docstring).

    Args:
        verify_key: key (or None) -> key id; raises fastapi.HTTPException 401 / 403 / 429.
        max_frames: most frames one /v1/lift request may hold.
        max_body_bytes: largest /v1/lift body.
        max_sessions: most streams at once; more are closed with code 1013.
        max_concurrent_lifts: /v1/lift requests computed at once (others wait).
        hello_timeout_s: seconds a stream may take to send its hello.
        batcher: the frame worker shared by the streams (default: a new one).
        preload: import torch and read both networks in a background thread now (~2 s of
            CPU once), so the first stream or request does not wait for them.
        body_timeout_s: a /v1/lift upload that sends no byte for this long gets 408.
    """
    from fastapi import APIRouter, Request, Security, WebSocket
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    from mocap.service.api_docs import error_responses, key_schemes
    from mocap.service.bodies import read_body
    from starlette.exceptions import HTTPException  # fastapi's HTTPException is a subclass
    from starlette.websockets import WebSocketDisconnect, WebSocketState

    router = APIRouter()
    frames = batcher or FrameBatcher()
    active = {"streams": 0}
    lift_slots = asyncio.Semaphore(max_concurrent_lifts)
    parsers = _parsers
    if preload:
        threading.Thread(target=_preload, name="mocap-realtime-preload", daemon=True).start()

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def key_from(headers, query=None) -> str | None:
        from mocap.service.auth import key_from_headers

        return key_from_headers(headers) or (query or {}).get("key") or None

    async def check_key(key: str | None) -> HTTPException | None:
        try:
            await run_in_threadpool(verify_key, key)
        except HTTPException as e:
            return e
        return None

    lift_doc = lift_openapi(max_frames=max_frames)
    key_security = [Security(scheme) for scheme in key_schemes()]  # described only: check_key reads the key

    @router.post("/v1/lift", dependencies=key_security, openapi_extra={"requestBody": lift_doc["requestBody"]},
                 responses={200: {"content": {"application/json": {"schema": lift_doc["reply"]}}},
                            **error_responses(401, 403, 408, 413, 415, 422, 429, 503)})
    async def lift(request: Request):
        """2D keypoints of a clip (JSON, or a keypoints2d.npz in a form) -> its 3D motion, by the
        offline pipeline; see the module mocap.service.realtime for the fields."""
        refused = await check_key(key_from(request.headers))
        if refused is not None:
            return error(refused.status_code, str(refused.detail), refused.headers)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("multipart/form-data", "application/json", ""):
            return error(415, f"content type {ctype[:60]!r} not supported: send application/json or "
                              "multipart/form-data with a keypoints2d.npz in the 'file' field")
        try:
            body = await read_body(request, limit=max_body_bytes, idle_timeout_s=body_timeout_s,
                                   too_large=f"body larger than {max_body_bytes // (1024 * 1024)} MiB; split the clip")
            # parsed in a child process: json.loads of a large body would hold the GIL for seconds
            keypoints, focal_px, decimals = await parsers.parse(body, request.headers.get("content-type", ""),
                                                                max_frames=max_frames)
        except HTTPException as e:
            return error(e.status_code, str(e.detail))
        except ValueError as e:
            return error(422, str(e))
        del body
        try:
            lifter = await run_in_threadpool(_offline.get)
        except (MocapError, ImportError) as e:
            return error(503, str(e))
        async with lift_slots:
            start = time.perf_counter()
            try:
                motion = await run_in_threadpool(lift_clip, keypoints, lifter=lifter, focal_px=focal_px)
            except (MocapError, ValueError) as e:
                return error(422, str(e))
            text = await run_in_threadpool(motion_reply_json, motion, decimals=decimals,
                                           seconds=time.perf_counter() - start)
        return Response(text, media_type="application/json")

    async def close(ws: WebSocket, code: int, reason: str) -> None:
        if WebSocketState.DISCONNECTED not in (ws.application_state, ws.client_state):
            try:
                await ws.close(code=code, reason=reason.encode()[:_REASON_BYTES].decode(errors="ignore"))
            except (RuntimeError, WebSocketDisconnect, OSError):
                pass  # the client is already gone

    async def receive_json(ws: WebSocket) -> tuple[object, float] | None:
        """Next message as (decoded JSON or a ValueError, receive time); None when the client left."""
        message = await ws.receive()
        received = time.perf_counter()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None:
            text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
        if len(text) > MAX_MESSAGE_BYTES:
            return ValueError(f"message of {len(text)} characters; the limit is {MAX_MESSAGE_BYTES}"), received
        try:
            return json.loads(text), received
        except (ValueError, RecursionError) as e:  # JSONDecodeError, or an int over 4300 digits
            return ValueError(f"message is not JSON: {str(e)[:200]}"), received

    @router.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        await ws.accept()
        refused = await check_key(key_from(ws.headers, ws.query_params))
        if refused is not None:
            await close(ws, 1008, f"{refused.status_code}: {refused.detail}")
            return
        if active["streams"] >= max_sessions:
            await close(ws, 1013, f"server busy: {max_sessions} streams already open; retry later")
            return
        active["streams"] += 1
        try:
            await run_stream(ws)
        except WebSocketDisconnect:
            pass
        finally:
            active["streams"] -= 1

    async def run_stream(ws: WebSocket) -> None:
        try:
            first = await asyncio.wait_for(receive_json(ws), hello_timeout_s)
        except asyncio.TimeoutError:
            await close(ws, 1008, f"no hello within {hello_timeout_s:g} s")
            return
        if first is None:
            return
        try:
            if isinstance(first[0], ValueError):
                raise first[0]
            config = parse_hello(first[0])
        except ValueError as e:
            await ws.send_text(json.dumps({"type": "error", "error": str(e)}))
            await close(ws, 1007, f"bad hello: {e}")
            return
        try:
            model = await run_in_threadpool(shared_causal_model)
        except (MocapError, ImportError) as e:
            await ws.send_text(json.dumps({"type": "error", "error": str(e)}))
            await close(ws, 1011, "the streaming lifter is not available on this server")
            return
        session = StreamSession(config, model=model)
        await ws.send_text(json.dumps(session.hello(), separators=(",", ":")))

        loop = asyncio.get_running_loop()
        state = {"pending": None, "reset": False, "closed": False, "received": 0}
        wake = asyncio.Event()
        send_lock = asyncio.Lock()

        async def send(text: str) -> None:
            async with send_lock:
                await ws.send_text(text)

        async def receiver() -> None:
            while True:
                got = await receive_json(ws)
                if got is None:
                    break
                msg, received = got
                if isinstance(msg, ValueError) or not isinstance(msg, dict):
                    await send(json.dumps({"type": "error", "error": str(msg) if isinstance(msg, ValueError)
                                           else "each message must be a JSON object"}))
                    continue
                kind = msg.get("type", "frame")
                if kind == "frame":
                    msg.setdefault("frame", state["received"])
                    state["received"] += 1
                    if state["pending"] is not None:
                        session.dropped += 1
                    state["pending"] = (msg, received)
                elif kind == "reset":
                    state["pending"] = None
                    state["reset"] = True
                else:
                    await send(json.dumps({"type": "error", "error": f"unknown message type {kind!r}; "
                                                                    "send frame or reset"}))
                    continue
                wake.set()

        async def processor() -> None:
            while True:
                await wake.wait()
                wake.clear()
                if state["reset"]:
                    state["reset"] = False
                    session.reset()
                item, state["pending"] = state["pending"], None
                if item is None:
                    continue
                done = loop.create_future()

                def deliver(reply: dict, done=done) -> None:  # in the worker thread
                    try:
                        text = json.dumps(reply, separators=(",", ":"))
                    except (TypeError, ValueError) as e:  # never leave the processor waiting
                        text = json.dumps({"type": "error", "frame": None, "error": f"reply not encodable: {e}"})
                    try:
                        loop.call_soon_threadsafe(lambda: done.done() or done.set_result(text))
                    except RuntimeError:  # the event loop has closed
                        pass

                frames.submit(session, item[0], item[1], deliver)
                await send(await done)

        tasks = [asyncio.create_task(receiver()), asyncio.create_task(processor())]
        try:
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:  # a client that left is normal; anything else is a bug to report
                if task.exception() is not None and not isinstance(task.exception(), (WebSocketDisconnect, OSError)):
                    raise task.exception()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)  # (gather would turn their cancellation into this task's)
        await close(ws, 1000, "bye")

    return router
