"""Tests of mocap.service.viewer: the skeleton JSON, the routes, and the page in headless Chromium."""
from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi")
pytest.importorskip("httpx")  # fastapi.testclient needs it
from fastapi import FastAPI, HTTPException  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from mocap.formats import Motion, save_motion  # noqa: E402
from mocap.service.viewer import SKELETON_SCHEMA, STATIC_DIR, make_router, skeleton_payload  # noqa: E402
from mocap.skeletons import MOTION21  # noqa: E402
from tests.synthetic import waving_walker  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
FPS = 30.0
FRAMES = 90
LEFT_RGB = np.array((255, 140, 20))
RIGHT_RGB = np.array((40, 130, 255))


def _motion(frames: int = FRAMES) -> Motion:
    return Motion(joints=waving_walker(frames, FPS), joint_names=MOTION21.joint_names,
                  parents=MOTION21.parents, fps=FPS)


# --- skeleton_payload --------------------------------------------------------------------------
def test_payload_matches_motion():
    m = _motion()
    p = skeleton_payload(m, has_overlay=True)
    pos = np.array(p["positions"], dtype=np.float64)
    assert pos.shape == (FRAMES, 21, 3)
    assert np.abs(pos - m.joints).max() <= 0.0005  # rounded to the millimetre
    assert p["fps"] == FPS and p["frames"] == FRAMES and p["has_overlay"] is True
    assert p["parents"] == list(MOTION21.parents) and p["joint_names"] == list(MOTION21.joint_names)
    json.dumps(p, allow_nan=False)  # valid JSON for a browser (no NaN)
    assert skeleton_payload(m)["has_overlay"] is False


def test_payload_rounds_to_mm_and_nulls_missing_joints():
    joints = np.zeros((3, 21, 3))
    joints[0, 0] = (0.12345, -1.00049, 2.0006)
    joints[2, 5] = np.nan
    p = skeleton_payload(Motion(joints=joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=FPS))
    assert p["positions"][0][0] == [0.123, -1.0, 2.001]
    assert p["positions"][2][5] == [None, None, None]
    assert p["positions"][2][4] == [0.0, 0.0, 0.0]
    json.dumps(p, allow_nan=False)


# --- the app under test: fake keys, fake jobs ------------------------------------------------------
def _write_overlay(path: Path, frames: int = FRAMES, fps: float = FPS) -> str:
    """A small overlay video, each frame a different grey; returns the codec used. VP9 in MP4
    plays in Chromium (OpenCV's mp4v does not); falls back to mp4v if VP9 cannot be written."""
    cv2 = pytest.importorskip("cv2")
    for code in ("vp09", "mp4v"):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*code), fps, (160, 120))
        if writer.isOpened():
            for t in range(frames):
                img = np.full((120, 160, 3), 40 + 2 * t, np.uint8)
                cv2.putText(img, str(t), (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
                writer.write(img)
            writer.release()
            return code
    pytest.skip("this OpenCV build writes neither vp09 nor mp4v video")


class FakeService:
    """verify_key and job_outdir as the real service gives them, over folders in ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.calls: list[tuple[str, str | None]] = []  # (job id, key) per verified request

    def verify_key(self, key: str | None) -> str:
        if key is None:
            raise HTTPException(401, "API key needed: send it in the X-API-Key header")
        if key == "slow-down":
            raise HTTPException(429, "too many requests", headers={"Retry-After": "7"})
        if key != "good-key":
            raise HTTPException(403, "unknown API key")
        return "key-1"

    def job_outdir(self, job_id: str, key_id: str) -> Path:
        self.calls.append((job_id, key_id))
        if job_id == "running":
            raise HTTPException(409, "job running is not finished (state: running, 40%)")
        folder = self.root / job_id
        if not folder.is_dir():
            raise HTTPException(404, f"no job {job_id}")
        return folder


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    for job in ("done", "novideo", "broken"):
        (root / job).mkdir()
    save_motion(root / "done" / "motion.npz", _motion())
    codec = _write_overlay(root / "done" / "overlay.mp4")
    save_motion(root / "novideo" / "motion.npz", _motion())
    (root / "broken" / "motion.npz").write_bytes(b"not a zip file")
    fake = FakeService(root)
    app = FastAPI()
    app.include_router(make_router(fake.verify_key, fake.job_outdir))
    return app, fake, root, codec


@pytest.fixture(scope="module")
def client(service):
    return TestClient(service[0])


# --- routes ----------------------------------------------------------------------------------------
def test_routes_are_described_in_the_openapi_schema(client):
    """Found by the schema fuzz test (tests/test_service_schema.py): the routes answered 404 (and
    401 / 403 / 409 / 429) undocumented, without the key in their security, the overlay described
    as JSON; the skeleton's reply is checked against its documented schema."""
    jsonschema = pytest.importorskip("jsonschema")
    paths = client.app.openapi()["paths"]
    for what in ("skeleton", "overlay"):
        op = paths[f"/v1/jobs/{{job_id}}/{what}"]["get"]
        assert {"200", "401", "403", "404", "409", "429"} <= set(op["responses"]), what
        assert op["security"] == [{"APIKeyHeader": []}, {"HTTPBearer": []}]
    overlay = paths["/v1/jobs/{job_id}/overlay"]["get"]["responses"]["200"]["content"]
    assert set(overlay) == {"video/webm", "video/mp4"}
    skeleton = paths["/v1/jobs/{job_id}/skeleton"]["get"]["responses"]["200"]["content"]["application/json"]
    assert skeleton["schema"] == SKELETON_SCHEMA
    r = client.get("/v1/jobs/done/skeleton", headers={"X-API-Key": "good-key"})
    assert r.status_code == 200
    jsonschema.validate(r.json(), SKELETON_SCHEMA)
    joints = np.zeros((2, 21, 3))
    joints[1, 3] = np.nan  # null in the reply
    jsonschema.validate(skeleton_payload(Motion(joints=joints, joint_names=MOTION21.joint_names,
                                                parents=MOTION21.parents, fps=FPS)), SKELETON_SCHEMA)


@pytest.mark.parametrize("what", ["skeleton", "overlay"])
@pytest.mark.parametrize("key,status", [(None, 401), ("wrong", 403), ("slow-down", 429)])
def test_key_required(client, what, key, status):
    r = client.get(f"/v1/jobs/done/{what}", headers={"X-API-Key": key} if key else {})
    assert r.status_code == status
    assert set(r.json()) == {"error"} and r.json()["error"]
    if status == 429:
        assert r.headers["retry-after"] == "7"


@pytest.mark.parametrize("headers,status", [({"Authorization": "Bearer good-key"}, 200),
                                             ({"Authorization": "Bearer wrong"}, 403),
                                             ({"Authorization": "Basic good-key"}, 401),
                                             ({"X-API-Key": "  "}, 401)])
def test_key_headers(client, headers, status):
    assert client.get("/v1/jobs/done/skeleton", headers=headers).status_code == status


def test_skeleton_route(client, service):
    r = client.get("/v1/jobs/done/skeleton", headers={"X-API-Key": "good-key"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert "no-store" in r.headers["cache-control"]
    p = r.json()
    assert np.abs(np.array(p["positions"]) - _motion().joints).max() <= 0.0005
    assert p["fps"] == FPS and p["frames"] == FRAMES and p["has_overlay"] is True
    assert ("done", "key-1") in service[1].calls
    r = client.get("/v1/jobs/novideo/skeleton", headers={"X-API-Key": "good-key"})
    assert r.status_code == 200 and r.json()["has_overlay"] is False


def test_overlay_route(client, service):
    r = client.get("/v1/jobs/done/overlay", headers={"X-API-Key": "good-key"})
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.content == (service[2] / "done" / "overlay.mp4").read_bytes()
    r = client.get("/v1/jobs/novideo/overlay", headers={"X-API-Key": "good-key"})
    assert r.status_code == 404 and "overlay.mp4" in r.json()["error"]


@pytest.mark.parametrize("job,status,words", [("running", 409, "not finished"), ("nosuchjob", 404, "no job"),
                                              ("broken", 500, "cannot read its motion")])
def test_job_errors(client, job, status, words):
    for what in ("skeleton", "overlay") if status != 500 else ("skeleton",):
        r = client.get(f"/v1/jobs/{job}/{what}", headers={"X-API-Key": "good-key"})
        assert r.status_code == status and words in r.json()["error"]


def test_page_and_static_files(client):
    r = client.get("/viewer/anyjob")  # no key: the page itself is public
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.content == (STATIC_DIR / "viewer.html").read_bytes()
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert 'src="static/viewer.js"' in r.text
    for name, kind in (("viewer.js", "text/javascript"), ("viewer.css", "text/css")):
        r = client.get(f"/viewer/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert r.content == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize("name", ["viewer.html", "viewer.py", "..%2Fviewer.py", "%2e%2e", "VIEWER.JS"])
def test_unknown_static_name(client, name):
    r = client.get(f"/viewer/static/{name}")
    assert r.status_code == 404


def test_unknown_static_name_says_what_exists(client):
    r = client.get("/viewer/static/app.py")
    assert r.status_code == 404 and "viewer.js" in r.json()["error"]


# --- the page in headless Chromium -------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM} (absent)")


@pytest.fixture(scope="module")
def server(service):
    """The test app served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(service[0], log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(5)
    sock.close()


def _chromium(tmp_path: Path, *args: str) -> str:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
           "--window-size=1200,700", "--virtual-time-budget=5000", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _dom(tmp_path: Path, url: str) -> str:
    return _chromium(tmp_path, "--dump-dom", url)


def _body_data(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))


def _message(dom: str) -> tuple[bool, str]:
    """(whether the error card is shown, its title and text)."""
    shown = re.search(r'<div id="message" class="([^"]*)"', dom).group(1)
    title = re.search(r'<h2 id="messageTitle">([^<]*)</h2>', dom).group(1)
    text = re.search(r'<p id="messageText">([^<]*)</p>', dom).group(1)
    return "hidden" not in shown.split(), f"{title}: {text}"


@needs_chromium
def test_browser_draws_skeleton(server, service, tmp_path):
    url = f"{server}/viewer/done#key=good-key"
    dom = _dom(tmp_path, url)
    assert f"<title>viewer: ok ({FRAMES} frames)</title>" in dom
    data = _body_data(dom)
    assert data["state"] == "ok" and _message(dom)[0] is False
    assert 0 <= int(data["frame"]) < FRAMES
    # The page fetched the video with the key header (from the #key fragment) and is decoding it.
    expected = {"vp09": {"decoding", "ready"}, "mp4v": {"decoding", "unsupported"}}[service[3]]
    assert data["video"] in expected
    shot = tmp_path / "viewer.png"
    _chromium(tmp_path, f"--screenshot={shot}", url)
    cv2 = pytest.importorskip("cv2")
    img = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB).astype(np.int32)
    assert img.shape[:2] == (700, 1200)
    stage = img[70:620, 20:640]  # inside the canvas (the video panel takes at most the right 45%)
    background = np.median(stage.reshape(-1, 3), axis=0)
    assert (np.abs(stage - background).sum(-1) > 60).sum() > 3000  # skeleton and grid drawn
    # Bones in the side colours (depth fading dims them by at most 40 %): left orange, right blue.
    orange = (stage[..., 0] > 140) & (stage[..., 0] - stage[..., 2] > 100) & (stage[..., 1] > 60)
    blue = (stage[..., 2] > 140) & (stage[..., 2] - stage[..., 0] > 80)
    assert orange.sum() > 300 and blue.sum() > 300, (orange.sum(), blue.sum())
    # The person faces the camera: their left (orange) is on the screen's right.
    assert np.nonzero(orange)[1].mean() > np.nonzero(blue)[1].mean()


@needs_chromium
@pytest.mark.parametrize("job,key,title,state,words", [
    ("done", "wrong", "viewer: error (403)", "error", "Key not accepted: unknown API key. Enter a key"),
    ("running", "good-key", "viewer: error (409)", None, "Job not finished yet: job running is not finished"),
    ("done", None, "viewer: key needed", None, "API key needed: Enter the API key"),
])
def test_browser_shows_errors(server, tmp_path, job, key, title, state, words):
    dom = _dom(tmp_path, f"{server}/viewer/{job}" + (f"#key={key}" if key else ""))
    assert f"<title>{title}</title>" in dom
    shown, message = _message(dom)
    assert shown and message.startswith(words), message
    if state:
        assert _body_data(dom)["state"] == state
    assert ('<form id="keyForm" class="hidden">' in dom) == (job == "running")


# --- real-time playback through the DevTools protocol -------------------------------------------------
class DevTools:
    """A headless Chromium driven over its DevTools websocket (real time, not virtual time)."""

    def __init__(self, profile: Path):
        import contextlib

        import httpx
        from websockets.sync.client import connect
        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "--window-size=1200,700", "--autoplay-policy=no-user-gesture-required",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.stack = contextlib.ExitStack()
        self.stack.callback(self._stop)
        try:
            port_file = profile / "DevToolsActivePort"  # Chromium writes the port it picked here
            deadline = time.monotonic() + 20
            while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < deadline:
                time.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page = next(t for t in targets if t["type"] == "page")
            self.ws = self.stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None))
        except BaseException:
            self.stack.close()
            raise
        self.next_id = 0

    def _stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=20))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                return msg["result"]

    def eval(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expression}")

    def close(self):
        self.stack.close()


STATE_JS = ("JSON.stringify({frame: +document.body.dataset.frame, t: document.getElementById('video').currentTime,"
            " paused: document.getElementById('video').paused, slider: +document.getElementById('slider').value})")


@needs_chromium
def test_browser_skeleton_follows_video(server, service, tmp_path):
    if service[3] != "vp09":
        pytest.skip("needs a VP9 overlay that Chromium can play; this OpenCV build cannot write one")
    pytest.importorskip("websockets")
    chrome = DevTools(tmp_path / "profile")
    try:
        # A wrong key in the fragment: the page says so, drops the fragment, and asks for a key.
        chrome.call("Page.navigate", url=f"{server}/viewer/done#key=wrong")
        chrome.wait_for("document.title === 'viewer: error (403)'")
        assert chrome.eval("location.hash") == ""
        chrome.eval("document.getElementById('keyInput').value = 'good-key';"
                    " document.getElementById('keyForm').requestSubmit()")
        chrome.wait_for(f"document.title === 'viewer: ok ({FRAMES} frames)'")
        assert chrome.eval("sessionStorage.getItem('mocap-lift-key')") == "good-key"
        assert chrome.eval("document.getElementById('message').classList.contains('hidden')")
        chrome.wait_for("document.body.dataset.video === 'ready'")
        # Playing: after ~1 s of real time the video clock and the skeleton have both moved on.
        chrome.wait_for("document.getElementById('video').currentTime > 0.8", timeout=5)
        # Paused: the skeleton shows exactly the video's frame.
        chrome.eval("document.getElementById('play').click()")
        time.sleep(0.3)
        s = json.loads(chrome.eval(STATE_JS))
        assert s["paused"] and s["frame"] == min(FRAMES - 1, math.floor(s["t"] * FPS + 1e-3)), s
        assert s["slider"] == s["frame"]
        # Moving the slider seeks the video to that frame.
        chrome.eval("const s = document.getElementById('slider'); s.value = '61';"
                    " s.dispatchEvent(new Event('input'))")
        time.sleep(0.3)
        s = json.loads(chrome.eval(STATE_JS))
        assert s["paused"] and s["frame"] == 61 and abs(s["t"] - 61.25 / FPS) < 1e-3, s
        # Playing again: the frame keeps following the video's clock.
        chrome.eval("document.getElementById('play').click()")
        chrome.wait_for("document.getElementById('video').currentTime > 2.4 || document.getElementById('video').currentTime < 1", timeout=5)
        chrome.eval("document.getElementById('play').click()")
        time.sleep(0.3)
        s = json.loads(chrome.eval(STATE_JS))
        assert s["paused"] and s["frame"] == min(FRAMES - 1, math.floor(s["t"] * FPS + 1e-3)), s
    finally:
        chrome.close()


def test_web_copy_of_overlay_is_vp8_webm_with_every_frame(tmp_path):
    """The service's browser copy keeps every frame, the rate and the picture (within JPEG-like loss)."""
    import cv2

    from mocap.io.webvideo import transcode_for_web

    src = tmp_path / "overlay.mp4"
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 360))
    for i in range(20):
        frame = np.zeros((360, 640, 3), np.uint8)
        cv2.rectangle(frame, (20 + 20 * i, 100), (120 + 20 * i, 200), (0, 200, 255), -1)
        w.write(frame)
    w.release()
    out = transcode_for_web(src, tmp_path / "overlay.webm", max_width=320)
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(frames) == 20 and frames[0].shape == (180, 320, 3)
    # the orange box moved 10 px per frame at this scale: its centre follows
    xs = [np.nonzero(f[..., 2] > 128)[1].mean() for f in (frames[0], frames[-1])]
    assert xs[1] - xs[0] == pytest.approx(19 * 10, abs=4)
