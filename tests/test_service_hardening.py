"""Hostile and careless input against ``mocap serve`` (issue "Hardening"): every failure here
was reproduced on the code before the fix.

- ``POST /v1/lift`` checks sizes before allocating: an npz of zeros that declares
  (4,000,000, 33, 2) float32 (1 GB once loaded) is refused from its header, quickly, with
  little memory, while ``/health`` keeps answering;
- bad numbers give 4xx, never 500; a bad stream frame gets an error for its own client only;
- an upload stopped part-way gets 408 after the body timeout and leaves no job folder;
- wrong keys are limited per client address (429 before any hash).

Loopback only; every wait is bounded.
"""
from __future__ import annotations

import io
import json
import logging
import queue
import socket
import struct
import threading
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from mocap.errors import MocapError
from mocap.io.npz_limits import check_npz, read_npz_headers

BOMB_SHAPE = (4_000_000, 33, 2)


def zeros_npz(name: str, shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """A genuine npz of zeros with one array of ``shape``, built without holding the array:
    deflate blocks of 1 MiB of zeros repeat byte for byte after a full flush."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    header = header.getvalue()
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    block = 1 << 20
    count, rest = divmod(nbytes, block)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = [c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)]
    zero = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    data += [zero] * count + [c.compress(bytes(rest)) + c.flush()]
    crc = zlib.crc32(header)
    zeros = bytes(block)
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rest), crc)
    data = b"".join(data)
    size = len(header) + nbytes
    fname = f"{name}.npy".encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), size, len(fname), 0) + fname
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data), size, len(fname),
                          0, 0, 0, 0, 0, 0) + fname
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = zeros_npz("keypoints", BOMB_SHAPE)
    assert len(data) < 2_000_000  # ~1 MB that decompresses to 1 GB
    return data


# --- mocap.io.npz_limits -------------------------------------------------------------------------

def test_npz_headers_are_read_without_the_data(bomb):
    tracemalloc.start()
    try:
        start = time.perf_counter()
        headers = read_npz_headers(bomb)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    h = headers["keypoints"]
    assert h.shape == BOMB_SHAPE and h.dtype == np.float32 and h.nbytes == 1_056_000_000
    assert h.stored_bytes == h.header_bytes + h.nbytes  # a genuine file: the data is all there
    assert peak < 5_000_000 and seconds < 1.0, (peak, seconds)
    with pytest.raises(MocapError, match=r"'keypoints' holds 4000000 frames .* limit is 18000"):
        check_npz(bomb, max_frames=18_000, frame_arrays=("keypoints",))
    with pytest.raises(MocapError, match=r"1056 MB once loaded, over the 100 MB limit"):
        check_npz(bomb, max_array_bytes=100_000_000)


def test_npz_limits_accept_a_real_file_and_refuse_lies():
    buf = io.BytesIO()
    np.savez_compressed(buf, keypoints=np.ones((5, 33, 2), np.float32), layout=np.array("mediapipe33"),
                        fps=np.array(30.0))
    headers = check_npz(buf.getvalue(), max_frames=5, frame_arrays=("keypoints", "confidence"))
    assert {k: v.shape for k, v in headers.items()} == {"keypoints": (5, 33, 2), "layout": (), "fps": ()}
    assert headers["layout"].dtype == np.dtype("<U11")
    with pytest.raises(MocapError, match="holds 5 frames"):
        check_npz(buf.getvalue(), max_frames=4, frame_arrays=("keypoints",))
    # a header that declares more than the member holds (np.load would allocate the declared size)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (99, 33, 2)})
    lie = io.BytesIO()
    with zipfile.ZipFile(lie, "w") as z:
        z.writestr("keypoints.npy", header.getvalue() + bytes(10 * 33 * 2 * 4))
    lie = lie.getvalue()
    with pytest.raises(MocapError, match=r"declares shape \(99, 33, 2\) .* truncated or corrupt"):
        check_npz(lie)
    obj = io.BytesIO()
    np.savez(obj, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(MocapError, match="unsupported dtype"):
        check_npz(obj.getvalue())
    for garbage in (b"", b"PK\x03\x04 not a zip", bytes(100)):
        with pytest.raises(MocapError, match="not a readable .npz"):
            check_npz(garbage)


# --- /v1/lift ------------------------------------------------------------------------------------

fastapi = pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from fastapi import FastAPI, HTTPException  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from mocap.service import stream_session as ss  # noqa: E402
from mocap.service.realtime import make_router  # noqa: E402
from tests.realtime_helpers import GOOD, HEADERS, lift_body  # noqa: E402
from tests.test_service_realtime import frame_message, hello, keypoints, serve  # noqa: E402,F401


def verify_key(key):
    if key != GOOD:
        raise HTTPException(403 if key else 401, "invalid API key")
    return "key-1"


def make_app(**kwargs) -> FastAPI:
    app = FastAPI()
    app.get("/health")(lambda: {"status": "ok"})
    app.include_router(make_router(verify_key, preload=False, **kwargs))
    return app


@pytest.fixture(scope="module")
def client():
    with TestClient(make_app()) as c:
        yield c


def post_while_polling_health(**post) -> tuple[httpx.Response, float, list[float]]:
    """POST /v1/lift to a real server while another thread polls /health: the reply, its
    seconds, and every /health round trip in seconds."""
    with serve(make_app()) as port:
        url = f"http://127.0.0.1:{port}"
        httpx.get(url + "/health", timeout=30)
        health: list[float] = []
        done = threading.Event()

        def poll():
            while not done.is_set():
                start = time.perf_counter()
                httpx.get(url + "/health", timeout=30)
                health.append(time.perf_counter() - start)
                time.sleep(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        start = time.perf_counter()
        r = httpx.post(url + "/v1/lift", timeout=120, **post)
        seconds = time.perf_counter() - start
        done.set()
        poller.join(30)
    print(f"/v1/lift answered {r.status_code} in {seconds:.2f} s; /health: {len(health)} replies, "
          f"slowest {max(health) * 1000:.0f} ms")
    return r, seconds, health


def test_lift_refuses_an_npz_bomb_from_its_header_while_health_answers(bomb):
    r, seconds, health = post_while_polling_health(
        headers=HEADERS, files={"file": ("keypoints2d.npz", bomb, "application/octet-stream")})
    assert r.status_code == 422 and "4000000 frames" in r.json()["error"] and "limit is 18000" in r.json()["error"]
    assert seconds < 5.0 and max(health) < 1.0


def test_a_large_json_body_is_parsed_off_the_event_loop():
    frame = json.dumps([[123.456789012345, 987.654321098765]] * 33).encode()
    body = b'{"layout": "mediapipe33", "image_size": [640, 480], "keypoints": [' + b",".join([frame] * 20_000) + b"]}"
    assert len(body) > 25_000_000
    r, _, health = post_while_polling_health(headers={**HEADERS, "content-type": "application/json"}, content=body)
    assert r.status_code == 422 and "20000 frames is more than the 18000" in r.json()["error"], r.text[:300]
    assert len(health) >= 5 and max(health) < 0.5


def test_lift_bomb_allocates_little(client, bomb):
    tracemalloc.start()
    try:
        r = client.post("/v1/lift", headers=HEADERS, files={"file": ("k.npz", bomb, "application/octet-stream")})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status_code == 422, r.text
    assert peak < 100_000_000, f"{peak / 1e6:.0f} MB allocated for a refused upload"


@pytest.mark.parametrize("patch, needle", [
    ('"decimals": 1e400', "decimals must lie in"),
    ('"decimals": Infinity', "decimals must lie in"),
    ('"decimals": NaN', "decimals must lie in"),
    ('"focal_px": 1e400', "focal_px must lie in"),
    ('"fps": ' + "9" * 400, "fps must be a number"),
    ('"fps": -' + "9" * 400, "fps must be a number"),
    ('"fps": ' + "9" * 5000, "malformed JSON"),  # over Python's 4300-digit limit
])
def test_lift_bad_numbers_give_422(client, keypoints, patch, needle):
    body = lift_body(type(keypoints)(keypoints=keypoints.keypoints[:5], confidence=keypoints.confidence[:5],
                                     layout=keypoints.layout, image_size=keypoints.image_size, fps=keypoints.fps))
    key = patch.split(":")[0].strip('"')
    body.pop(key, None)
    text = json.dumps(body)[:-1] + ", " + patch + "}"
    r = client.post("/v1/lift", content=text, headers={**HEADERS, "content-type": "application/json"})
    assert r.status_code == 422 and needle in r.json()["error"], (r.status_code, r.text[:300])


def test_lift_high_fps_clip_shorter_than_its_stride_gives_422(client, keypoints):
    k = type(keypoints)(keypoints=keypoints.keypoints[:1], confidence=keypoints.confidence[:1],
                        layout=keypoints.layout, image_size=keypoints.image_size, fps=60.0)
    r = client.post("/v1/lift", json=lift_body(k), headers=HEADERS)
    assert r.status_code == 422 and "needs at least 2 frames" in r.json()["error"], r.text
    k3 = type(keypoints)(keypoints=keypoints.keypoints[:3], confidence=keypoints.confidence[:3],
                         layout=keypoints.layout, image_size=keypoints.image_size, fps=120.0)
    r = client.post("/v1/lift", json=lift_body(k3), headers=HEADERS)
    assert r.status_code == 422 and "needs at least 4 frames" in r.json()["error"], r.text


# --- the stream: one client's garbage stays its own ---------------------------------------------

GARBAGE = [
    {"type": "frame", "keypoints": [[10 ** 309, 1.0]] * 33},
    {"type": "frame", "keypoints": [[1.0, 2.0]] * 33, "confidence": [10 ** 309] * 33},
    {"type": "frame", "t": 10 ** 309, "keypoints": None},
    {"type": "frame", "frame": 10 ** 400, "keypoints": None},
    {"type": "frame", "keypoints": {"a": 1}},
]


def test_a_bad_frame_gets_an_error_for_its_own_session_only(keypoints, caplog):
    config = ss.StreamConfig(layout=keypoints.layout, image_size=keypoints.image_size, fps=keypoints.fps)
    honest, attacker = ss.StreamSession(config), ss.StreamSession(config)
    reference = ss.StreamSession(config)
    with caplog.at_level(logging.INFO):
        for i in range(10):
            good = frame_message(keypoints, i)
            replies = ss.process_batch([(attacker, GARBAGE[i % len(GARBAGE)], None), (honest, good, None)])
            expected = reference.process(good)
            assert replies[0]["type"] == "error" and replies[1] == expected
    assert attacker.frames_processed == 0 and honest.frames_processed == 10
    assert len(caplog.records) <= 1  # no traceback per frame


def test_an_unexpected_failure_stays_in_its_session_and_logs_once_a_minute(keypoints, caplog, monkeypatch):
    config = ss.StreamConfig(layout=keypoints.layout, image_size=keypoints.image_size, fps=keypoints.fps)
    honest, broken, reference = ss.StreamSession(config), ss.StreamSession(config), ss.StreamSession(config)
    monkeypatch.setattr(broken, "smooth", lambda joints: 1 / 0)
    batcher = ss.FrameBatcher()
    with caplog.at_level(logging.INFO, logger="mocap.service.stream_session"):
        for i in range(20):
            replies: queue.SimpleQueue = queue.SimpleQueue()
            for session in (broken, honest):
                batcher.submit(session, frame_message(keypoints, i), None, replies.put)
            got = [replies.get(timeout=10), replies.get(timeout=10)]
            mine = next(r for r in got if r["type"] == "pose")
            assert mine == reference.process(frame_message(keypoints, i))
            assert sum(r["type"] == "error" and "ZeroDivisionError" in r["error"] for r in got) == 1
    lines = [r for r in caplog.records if r.name == "mocap.service.stream_session"]
    assert len(lines) == 1 and lines[0].exc_info is None and "ZeroDivisionError" in lines[0].getMessage()


def test_stream_survives_garbage_and_a_huge_number_in_hello(client, keypoints):
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect(f"/v1/stream?key={GOOD}") as ws:
        ws.send_json(hello(keypoints))
        assert ws.receive_json()["type"] == "hello"
        for msg in GARBAGE:
            ws.send_text(json.dumps(msg))
            assert ws.receive_json()["type"] == "error"
        ws.send_text('{"type": "frame", "t": ' + "1" * 5000 + "}")
        assert "not JSON" in ws.receive_json()["error"]
        ws.send_json(frame_message(keypoints, 0))
        assert ws.receive_json()["type"] == "pose"
    with client.websocket_connect(f"/v1/stream?key={GOOD}") as ws:
        ws.send_text('{"type": "hello", "image_size": [640, 480], "fps": ' + "7" * 5000 + "}")
        assert ws.receive_json()["type"] == "error"
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
    assert e.value.code == 1007
    with client.websocket_connect(f"/v1/stream?key={GOOD}") as ws:
        ws.send_text('{"type": "hello", "image_size": [640, 480], "fps": ' + "7" * 400 + "}")
        assert "out of range" in ws.receive_json()["error"]
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
    assert e.value.code == 1007


# --- the whole service: body timeouts, long boundaries, wrong keys --------------------------------

@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from mocap.service.app import ServiceConfig, create_app
    from mocap.service.auth import create_key

    data_dir = tmp_path_factory.mktemp("hardening")
    app = create_app(ServiceConfig(data_dir=data_dir, workers=1, body_timeout_s=0.5, failed_auth_per_minute=5))
    key = create_key(app.state.store, "hardening")
    with serve(app) as port:
        yield {"port": port, "key": key, "jobs": data_dir / "jobs", "url": f"http://127.0.0.1:{port}"}


def send_part(port: int, head: bytes, body: bytes, *, wait_s: float = 10.0) -> tuple[bytes, float]:
    """Send a request's head and part of its body, then nothing; the reply and its delay."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        s.sendall(head + body)
        start = time.perf_counter()
        try:
            reply = s.recv(4096)
        except socket.timeout:
            reply = b""
        return reply, time.perf_counter() - start


@pytest.mark.parametrize("path, ctype", [("/v1/jobs", "multipart/form-data; boundary=XyZ"),
                                         ("/v1/lift", "application/json")])
def test_an_upload_stopped_part_way_gets_408_and_leaves_no_job(service, path, ctype):
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {service['key']}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: 1000000\r\n\r\n").encode()
    reply, seconds = send_part(service["port"], head, b"--XyZ\r\n" + b"x" * 1000)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert 0.4 < seconds < 5.0
    deadline = time.monotonic() + 5
    while any(service["jobs"].iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(service["jobs"].iterdir())


def test_a_multipart_boundary_over_256_characters_gives_400(service):
    r = httpx.post(service["url"] + "/v1/jobs", content=b"--" + b"b" * 300 + b"\r\n",
                   headers={"X-API-Key": service["key"], "content-type": "multipart/form-data; boundary=" + "b" * 300})
    assert r.status_code == 400 and "Boundary length 300" in r.json()["error"], r.text


def test_job_routes_document_every_status_they_answer(service):
    """Found by the schema fuzz test (tests/test_service_schema.py): POST /v1/jobs answered 400 for a
    malformed multipart body (and 408, above) undocumented; an empty ``video`` list was schema-valid;
    every 422 was documented as FastAPI's ``{"detail": [...]}`` though the app answers ``{"error": ...}``."""
    url, headers = service["url"], {"X-API-Key": service["key"]}
    schema = httpx.get(url + "/openapi.json").json()
    post = schema["paths"]["/v1/jobs"]["post"]
    assert {"400", "408", "413", "415", "422"} <= set(post["responses"])
    video = post["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]["video"]
    assert (video["minItems"], video["maxItems"]) == (1, 16)
    r = httpx.post(url + "/v1/jobs", content=b"--XyZ\r\nbroken",
                   headers={**headers, "content-type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 400 and set(r.json()) == {"error"}, r.text
    r = httpx.get(url + "/v1/jobs", params={"limit": 0}, headers=headers)
    assert r.status_code == 422 and set(r.json()) == {"error"} and "limit" in r.json()["error"], r.text
    documented = [op["responses"]["422"] for ops in schema["paths"].values() for op in ops.values()
                  if "422" in op["responses"]]
    assert len(documented) >= 8
    assert all(d["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
               for d in documented)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_docs_and_openapi_are_public_by_decision(service):
    for path in ("/docs", "/openapi.json", "/health"):
        assert httpx.get(service["url"] + path).status_code == 200
    assert httpx.get(service["url"] + "/v1/jobs").status_code == 401


def test_wrong_keys_are_limited_per_address_before_any_hash(service):
    url, good = service["url"], service["key"]
    assert httpx.get(url + "/v1/jobs", headers={"X-API-Key": good}).status_code == 200  # known from now on
    wrong = good[:-4] + ("aaaa" if not good.endswith("aaaa") else "bbbb")  # right key id, wrong secret
    statuses, times = [], []
    for _ in range(12):
        start = time.perf_counter()
        r = httpx.get(url + "/v1/jobs", headers={"X-API-Key": wrong})
        times.append(time.perf_counter() - start)
        statuses.append(r.status_code)
    assert statuses[:5] == [403] * 5 and statuses[5:] == [429] * 7, statuses
    assert int(r.headers["retry-after"]) >= 1 and "too many refused API keys" in r.json()["error"]
    assert np.median(times[5:]) < np.median(times[:5])  # refused before the 40 ms scrypt
    assert httpx.get(url + "/v1/jobs", headers={"X-API-Key": good}).status_code == 200  # a known key passes
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{service['port']}/v1/stream?key={wrong}") as ws:
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
    assert e.value.rcvd.code == 1008 and e.value.rcvd.reason.startswith("429")
