# SPDX-License-Identifier: GPL-3.0-or-later
"""Live: drive an armature in real time from the mocap-lift service's ``/v1/stream``.

A :class:`LiveSession` runs the 2D keypoint source outside Blender's process
(``<mocap executable> stream-2d SOURCE --realtime --level``: the 2D stage of ``mocap capture`` on a
camera or a video file, one JSON line per frame, see ``mocap/detect2d/stream.py``) and talks to the service's
WebSocket (``ws(s)://<service host>/v1/stream``, key in ``X-API-Key``; protocol in the
docstring of ``mocap/service/realtime.py``) with the standard-library client of
:mod:`.wsclient`, so Blender needs neither torch, MediaPipe nor a websocket package.

Threads (none of them touches ``bpy``):

* *source*: reads the source's lines and forwards them unchanged to the service (its
  ``hello`` first, then its ``frame`` messages);
* *receiver*: reads the service's replies and keeps only the newest ``pose`` (no queue:
  a slow Blender skips poses, it never falls behind);
* *stderr*: keeps the source's last error lines (for the message when it fails).

Blender's main thread calls :meth:`LiveSession.apply_latest` (from a timer, ~30 Hz), which
puts the newest pose on an armature: on one with our motion21 bone names (the armature a
Live start or an import creates) the local rotations of the reply become pose-bone
rotations directly (:func:`.importer.pose_quats_wxyz`); any other rig gets the single frame
retargeted with :func:`core.retarget.retarget` (bones mapped by name and by the Mocap
panel's mapping editor). The stream is pelvis-relative, so the avatar stays where it
stands: no root translation, the pelvis rotation applied.

Failures end the session with one sentence in :attr:`LiveSession.error` (service down, key
refused, executable missing, source failing); :meth:`LiveSession.stop` terminates the
source, closes the socket and joins the threads.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Mapping

import numpy as np

from . import wsclient
from .core.errors import MocapError

STREAM_PATH = "/v1/stream"
_SETTINGS = "Preferences > Add-ons > Mocap Lift"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_WINDOW = 60  # replies the latency and rate figures are taken over
_NOISE = ("I0000", "W0000", "E0000", "INFO:", "WARNING: All log messages", "[ WARN:", "[ INFO:")


def service_urls(service_url: str, *, online_access: bool = True) -> tuple[str, str]:
    """(HTTP base URL, WebSocket stream URL) of the service at ``service_url``
    (``http(s)://host:port[/prefix]``, or ``ws(s)://...``); MocapError in plain words."""
    url = (service_url or "").strip()
    if not url:
        raise MocapError(f"no service URL set: enter the address 'mocap serve' prints (e.g. http://127.0.0.1:8000) "
                         f"in {_SETTINGS}")
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise MocapError(f"service URL {service_url!r} must look like http://host:port (fix it in {_SETTINGS})")
    if parts.hostname not in _LOCAL_HOSTS and not online_access:
        raise MocapError("Blender's online access is off (Preferences > System > Network); allow it to reach a "
                         "service that is not on this machine")
    secure = parts.scheme in ("https", "wss")
    prefix = parts.path.rstrip("/")
    if prefix.endswith(STREAM_PATH):
        prefix = prefix[: -len(STREAM_PATH)]
    netloc = parts.netloc.rpartition("@")[2]
    http, ws = ("https", "wss") if secure else ("http", "ws")
    return f"{http}://{netloc}{prefix}", f"{ws}://{netloc}{prefix}{STREAM_PATH}"


def _headers(api_key: str) -> dict[str, str]:
    return {"X-API-Key": api_key.strip()} if api_key and api_key.strip() else {}


def _connect(stream_url: str, api_key: str, timeout_s: float) -> wsclient.WebSocket:
    """Open the stream socket; MocapError saying what to do when the service is down or refuses."""
    try:
        return wsclient.connect(stream_url, headers=_headers(api_key), timeout_s=timeout_s)
    except wsclient.WebSocketError as e:
        if str(e).startswith("cannot reach"):
            raise MocapError(f"{e}: start the service ('mocap serve') or fix the Service URL in {_SETTINGS}") from None
        raise MocapError(f"{e}; is this a mocap-lift service with streaming ('mocap serve')?") from None


def _closed_message(code: int | None, reason: str) -> str:
    """A close frame of the service (see the protocol's close codes) in plain words."""
    if code == 1008:
        if reason.startswith("429"):
            return f"the service turned the stream away: too many requests with this key ({reason}); wait a minute"
        if reason.startswith("no hello"):
            return f"the video source took too long to start ({reason}); try again"
        return (f"key refused by the service ({reason or 'no reason given'}): set a valid API key in {_SETTINGS} "
                "(create one where the service runs with: mocap serve keys create NAME)")
    if code == 1007:
        return f"the service refused the stream's settings ({reason})"
    if code == 1011:
        return f"the service cannot lift poses ({reason}); install mocap-lift's lifting network where it runs"
    if code == 1013:
        return f"the service is busy ({reason}); try again later"
    if code is None:
        return "the connection to the service was lost"
    return f"the service ended the stream ({code}: {reason})" if reason else f"the service ended the stream ({code})"


def check_service(service_url: str, api_key: str = "", *, online_access: bool = True, timeout_s: float = 10.0) -> str:
    """Test connection: ``/health`` answers, and ``/v1/stream`` takes the key and a hello.

    Returns one line for the report ("mocap-lift service 0.1.0 at ...: live stream ready");
    MocapError in plain words when the service is down, the key is refused or the
    service cannot stream.
    """
    base, stream_url = service_urls(service_url, online_access=online_access)
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout_s) as response:
            health = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        raise MocapError(f"{base} answers HTTP {e.code} on /health: is it a mocap-lift service "
                         "('mocap serve')?") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise MocapError(f"cannot reach the service: {base} is not reachable ({reason}); start it ('mocap serve') "
                         f"or fix the Service URL in {_SETTINGS}") from None
    except ValueError:
        raise MocapError(f"{base}/health does not answer JSON: is it a mocap-lift service ('mocap serve')?") from None
    conn = _connect(stream_url, api_key, timeout_s)
    try:
        conn.sock.settimeout(timeout_s)
        conn.send_text(json.dumps({"type": "hello", "layout": "mediapipe33", "image_size": [640, 480], "fps": 30}))
        reply = json.loads(conn.recv_text())
    except wsclient.WebSocketClosed as e:
        raise MocapError(_closed_message(e.code, e.reason)) from None
    except (OSError, ValueError, wsclient.WebSocketError) as e:
        raise MocapError(f"the service's stream did not answer a hello ({e})") from None
    finally:
        conn.close()
    if reply.get("type") != "hello":
        raise MocapError(f"the service's stream answered {reply.get('error') or reply!r} to a hello")
    return (f"mocap-lift service {health.get('version', '?')} at {base}: live stream ready "
            f"(key accepted, protocol {reply.get('protocol')})")


class LiveSession:
    """One live run: the source subprocess, the stream socket and their threads.

    Args:
        executable: the ``mocap`` command (:func:`.capture.find_executable`).
        source: a camera index (``"0"``, ``"1"`` ...) or a video file (played in real time).
        service_url: ``http(s)://host:port`` of ``mocap serve``.
        api_key: sent in ``X-API-Key``.
        mirror: flip the image left-right (selfie view).
        online_access: Blender's ``bpy.app.online_access`` (False: local services only).
        command: the source command line instead of ``[executable, "stream-2d", ...]`` (tests).

    After :meth:`start`, :meth:`poll` gives ``state``: ``"starting"`` (until the service's
    hello), ``"running"``, ``"ended"`` (the video file is over), ``"failed"`` (``error``
    says why) or ``"stopped"``. Counters: ``frames_sent``, ``poses`` (replies with a pose),
    ``dropped`` (frames the service skipped to stay current + frames the source skipped),
    ``latency_ms`` (median round trip, frame sent -> its pose back, over the last 60),
    ``server_latency_ms`` (the service's own share), ``fps`` (poses a second).
    """

    def __init__(self, *, executable: str, source: str, service_url: str, api_key: str = "", mirror: bool = False,
                 online_access: bool = True, connect_timeout_s: float = 5.0, command: list[str] | None = None):
        self.source = str(source).strip()
        if not self.source:
            raise MocapError("choose a Live source: a camera number (0, 1, ...) or a video file")
        if not self.source.isdigit() and not os.path.isfile(self.source):
            raise MocapError(f"video not found: {self.source} (the Live source is a camera number or a video file)")
        self.base_url, self.stream_url = service_urls(service_url, online_access=online_access)
        self.api_key = api_key
        self.connect_timeout_s = connect_timeout_s
        self.command = list(command) if command is not None else (
            # --level: the first frame's straight lines in the hello, so the service stands the avatar
            # upright under a tilted camera (a webcam on a monitor looking down)
            [executable, "stream-2d", self.source, "--realtime", "--level"] + (["--mirror"] if mirror else []))
        self.state = "new"
        self.error = ""
        self.warning = ""  # the service's last non-fatal error reply
        self.source_hello: dict | None = None
        self.server_hello: dict | None = None
        self.frames_sent = 0
        self.poses = 0
        self.server_dropped = 0
        self.source_skipped = 0
        self._lock = threading.Lock()
        self._latest: dict | None = None
        self._seq = 0
        self._sent_at: dict[int, float] = {}
        self._rtt: deque[float] = deque(maxlen=_WINDOW)
        self._server_ms: deque[float] = deque(maxlen=_WINDOW)
        self._arrivals: deque[float] = deque(maxlen=_WINDOW)
        self._stderr: deque[str] = deque(maxlen=40)
        self._proc: subprocess.Popen | None = None
        self._conn: wsclient.WebSocket | None = None
        self._threads: list[threading.Thread] = []
        self._applied: dict[str, int] = {}
        self._targets: dict[str, tuple] = {}

    # --- life cycle (main thread) ----------------------------------------------------------
    def start(self) -> None:
        """Connect to the service, then start the source; MocapError in plain words."""
        from .capture import _env

        if self.state != "new":
            raise MocapError("this live session was already started; start a new one")
        self.state = "starting"
        try:
            self._conn = _connect(self.stream_url, self.api_key, self.connect_timeout_s)
            self._conn.sock.settimeout(None)  # blocking reads; stop() shuts the socket down to wake them
            try:
                self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, env=_env())
            except OSError as e:
                raise MocapError(f"cannot run {self.command[0]}: {e.strerror or e}; set the mocap executable in "
                                 f"{_SETTINGS}") from None
        except MocapError:
            self.state = "failed"
            self._halt()
            raise
        for target, name in ((self._pump_source, "source"), (self._receive, "receiver"), (self._read_stderr, "stderr")):
            thread = threading.Thread(target=target, name=f"mocap-live-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def poll(self) -> str:
        """The current ``state`` (threads update it; cheap)."""
        return self.state

    @property
    def running(self) -> bool:
        return self.state in ("starting", "running")

    def stop(self, timeout_s: float = 3.0) -> None:
        """Terminate the source, close the socket and join the threads (idempotent)."""
        with self._lock:
            if self.state in ("new", "starting", "running"):
                self.state = "stopped"
        self._halt()
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(timeout_s)
        for pipe in (self._proc.stdout, self._proc.stderr) if self._proc is not None else ():
            try:
                pipe.close()
            except OSError:
                pass

    def threads_alive(self) -> list[str]:
        return [t.name for t in self._threads if t.is_alive()]

    def _halt(self) -> None:
        """Stop the source and wake the blocked threads; no waiting (any thread may call it)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.terminate()
            except OSError:
                pass
        conn = self._conn
        if conn is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RD)  # wakes the receiver
            except OSError:
                pass
            conn.close()

    def _end(self, state: str, error: str = "") -> None:
        with self._lock:
            if self.state not in ("new", "starting", "running"):
                return
            self.state, self.error = state, error
        self._halt()

    # --- threads ---------------------------------------------------------------------------
    def _send(self, line: str) -> bool:
        try:
            self._conn.send_text(line)
            return True
        except (OSError, wsclient.WebSocketError):
            if self.running:  # the receiver usually knows why (a close frame): give it a moment
                for thread in self._threads:
                    if thread.name == "mocap-live-receiver" and thread is not threading.current_thread():
                        thread.join(2.0)
                self._end("failed", "the connection to the service was lost")
            return False

    def _pump_source(self) -> None:
        last_frame = None
        for raw in self._proc.stdout:
            if not self.running:
                break
            line = raw.decode("utf-8", "replace").strip()
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours: stream2d keeps stdout clean, an old or foreign command may not
            if not isinstance(message, dict):
                continue
            if message.get("type") == "hello":
                self.source_hello = message
            elif message.get("type") == "frame":
                n = message.get("frame")
                if isinstance(n, int):
                    if last_frame is not None and n > last_frame + 1:
                        self.source_skipped += n - last_frame - 1
                    last_frame = n
                    with self._lock:
                        self._sent_at[n] = time.perf_counter()
                        if len(self._sent_at) > 4 * _WINDOW:
                            for old in sorted(self._sent_at)[: 2 * _WINDOW]:
                                del self._sent_at[old]
            else:
                continue
            if not self._send(line):
                return
            if message.get("type") == "frame":
                self.frames_sent += 1
        rc = self._proc.wait()
        if not self.running:
            return
        if rc != 0:
            self._end("failed", self._source_error(rc))
            return
        deadline = time.perf_counter() + 2.0  # the file is over: let the last replies arrive
        while self.running and time.perf_counter() < deadline and self._sent_at and last_frame in self._sent_at:
            time.sleep(0.02)
        self._end("ended")

    def _source_error(self, rc: int) -> str:
        time.sleep(0.1)  # the stderr thread reads the last lines
        lines = [ln for ln in list(self._stderr) if not ln.startswith(_NOISE)]
        last = lines[-1] if lines else f"exit status {rc}"
        for prefix in ("mocap stream-2d: error:", "mocap: error:"):
            if last.startswith(prefix):
                return f"the video source failed: {last[len(prefix):].strip()}"
        if "invalid choice: 'stream-2d'" in last:
            return (f"{self.command[0]} has no stream-2d command: update mocap-lift there "
                    "(pip install -U 'mocap-lift[all]')")
        return f"the video source stopped (exit status {rc}): {last}"

    def _read_stderr(self) -> None:
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._stderr.append(line)

    def _receive(self) -> None:
        conn = self._conn
        while True:
            try:
                text = conn.recv_text()
            except wsclient.WebSocketClosed as e:
                if self.running:
                    self._end("failed", _closed_message(e.code, e.reason))
                return
            except (OSError, wsclient.WebSocketError, UnicodeDecodeError) as e:
                if self.running:
                    self._end("failed", f"the connection to the service was lost ({e})")
                return
            try:
                message = json.loads(text)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            kind = message.get("type")
            if kind == "pose":
                self._take_pose(message)
            elif kind == "hello":
                self.server_hello = message
                with self._lock:
                    if self.state == "starting":
                        self.state = "running"
            elif kind == "error":
                self.warning = str(message.get("error", ""))

    def _take_pose(self, pose: dict) -> None:
        now = time.perf_counter()
        with self._lock:
            sent = self._sent_at.pop(pose.get("frame"), None)
            if sent is not None:
                self._rtt.append(1000.0 * (now - sent))
            if isinstance(pose.get("latency_ms"), (int, float)):
                self._server_ms.append(float(pose["latency_ms"]))
            self.server_dropped = int(pose.get("dropped") or 0)
            self._arrivals.append(now)
            if pose.get("local_quats_wxyz") is not None:
                self.poses += 1
            self._latest = pose
            self._seq += 1

    # --- figures ---------------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        return self.server_dropped + self.source_skipped

    @property
    def latency_ms(self) -> float:
        with self._lock:
            return float(np.median(self._rtt)) if self._rtt else float("nan")

    @property
    def server_latency_ms(self) -> float:
        with self._lock:
            return float(np.median(self._server_ms)) if self._server_ms else float("nan")

    @property
    def fps(self) -> float:
        with self._lock:
            times = [t for t in self._arrivals if t > time.perf_counter() - 2.0]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else 0.0

    def status_line(self) -> str:
        """One line for the panel."""
        if self.state == "failed":
            return f"failed: {self.error}"
        if self.state == "starting":
            return "connecting, starting the camera..." if self.source.isdigit() else "connecting, opening the video..."
        latency = self.latency_ms
        text = (f"{self.poses} poses, {self.dropped} dropped, "
                f"{'-' if latency != latency else f'{latency:.0f}'} ms, {self.fps:.1f} fps")
        return {"ended": f"video ended: {text}", "stopped": f"stopped: {text}"}.get(self.state, text)

    def latest(self) -> tuple[int, dict | None]:
        """(sequence number, the newest reply) — the number grows with every reply."""
        with self._lock:
            return self._seq, self._latest

    # --- Blender side (main thread) --------------------------------------------------------
    def apply_latest(self, arm, *, bone_map: Mapping[str, str] | None = None) -> dict | None:
        """Put the newest pose on the armature object ``arm``; returns that pose reply, or None
        when there is nothing new (no reply since the last call for ``arm``, or no person)."""
        seq, pose = self.latest()
        if pose is None or self.server_hello is None or self._applied.get(arm.name) == seq:
            return None
        self._applied[arm.name] = seq
        if pose.get("local_quats_wxyz") is None:
            return None
        apply_pose(arm, np.asarray(pose["local_quats_wxyz"], dtype=np.float64), self.server_hello,
                   bone_map=bone_map, cache=self._targets)
        return pose


def is_motion21(arm, joint_names) -> bool:
    """Whether ``arm`` has a bone for every joint of the stream (our motion21 armature)."""
    bones = arm.pose.bones
    return all(name in bones for name in joint_names)


def apply_pose(arm, local_quats_wxyz: np.ndarray, hello: Mapping, *, bone_map: Mapping[str, str] | None = None,
               cache: dict | None = None) -> None:
    """One pose of the stream on the armature object ``arm`` (main thread, bpy).

    Args:
        local_quats_wxyz: (J, 4) the reply's local rotations (J = the hello's joint_names),
            rest-relative, our +Y-up axes.
        hello: the service's hello (``joint_names``, ``parents``, ``rest_offsets`` (J, 3) m).
        bone_map: the mapping editor's entries (canonical joint -> bone) for other rigs.
        cache: a dict kept between calls (the rig read once, not per frame).
    The root bone keeps its rest position (no translation); every bone is set.
    """
    from . import importer

    names = list(hello["joint_names"])
    q = np.asarray(local_quats_wxyz, dtype=np.float64)
    if q.shape != (len(names), 4):
        raise MocapError(f"a pose has rotations of shape {q.shape}; expected ({len(names)}, 4)")
    cache = {} if cache is None else cache
    key = (arm.name, len(arm.data.bones), tuple(np.round(np.array(arm.matrix_world)[:3, :3], 6).ravel()),
           tuple(sorted((bone_map or {}).items())))
    target = cache.get(arm.name)
    if target is None or target[0] != key:
        target = (key, _plan(arm, hello, bone_map))
        cache[arm.name] = target
        importer.reset_pose(arm)
    plan = target[1]
    if plan is None:  # our motion21 armature: the rotations as they are
        bones, quats = names, q
    else:
        from .core.retarget import motion_to_source, retarget

        src_rig, source_map, rig, target_map = plan
        _, gs, ps = motion_to_source(names, hello["parents"], np.asarray(hello["rest_offsets"], dtype=np.float64),
                                     q[None], np.zeros((1, 3)))
        res = retarget(src_rig, source_map, gs, ps, rig, target_map, pin_feet=False, pin_hands=False)
        bones, quats = res.bone_names, res.local_quats_wxyz[0]
    pose_q = importer.pose_quats_wxyz(arm, bones, quats[None])[0]
    pose_bones = arm.pose.bones
    for name, value in zip(bones, pose_q):
        pose_bones[name].rotation_quaternion = value


def _plan(arm, hello: Mapping, bone_map: Mapping[str, str] | None):
    """None for a motion21 armature, else what the retarget needs (read once per rig)."""
    from . import importer
    from .core.blender import read_rig
    from .core.retarget import auto_bone_map, motion_to_source

    names = list(hello["joint_names"])
    if is_motion21(arm, names):
        return None
    q0 = np.tile([1.0, 0.0, 0.0, 0.0], (1, len(names), 1))
    src_rig, _, _ = motion_to_source(names, hello["parents"], np.asarray(hello["rest_offsets"], dtype=np.float64),
                                     q0, np.zeros((1, 3)))
    source_map = auto_bone_map(src_rig.bone_names, where="the live stream")
    rig = read_rig(arm)
    target_map = importer.complete_bone_map(rig.bone_names, bone_map, arm.name)
    return src_rig, source_map, rig, target_map


def new_live_armature(context, name: str = "live_avatar"):
    """A new motion21 armature standing on the 3D cursor (the stream's pelvis is its origin)."""
    from . import importer
    from .core.skeletons import MOTION21, rest_offsets

    off = rest_offsets(MOTION21)
    arm = importer.new_armature(context, joint_names=MOTION21.joint_names, parents=MOTION21.parents,
                                rest_offsets=off, name=name)
    rest = np.zeros_like(off)
    for j, p in enumerate(MOTION21.parents):
        rest[j] = off[j] + (rest[p] if p >= 0 else 0.0)
    hip_height = -float(rest[:, 1].min())  # pelvis above the lowest rest joint (the toes)
    arm.location = tuple(np.array(context.scene.cursor.location) + np.array([0.0, 0.0, hip_height]))
    return arm


_ACTIVE: LiveSession | None = None  # the Live panel's session (one at a time)


def active_session() -> LiveSession | None:
    return _ACTIVE


def set_active_session(session: LiveSession | None) -> None:
    global _ACTIVE
    _ACTIVE = session


def stop_active() -> None:
    """Stop the Live panel's session (Stop button, file load, add-on disabled)."""
    if _ACTIVE is not None:
        _ACTIVE.stop()
