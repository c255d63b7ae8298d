"""``mocap serve`` against bad and hostile input: every error has the right status and the
``{"error": ...}`` shape, nothing leaves the job folder, keys stay secret, jobs stay private.

One real server (uvicorn subprocess) with a 300 kB upload limit and 60 requests a minute
per key; the rate limit is exhausted with a key of its own.
"""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from tests.conftest import REPO  # noqa: E402
from tests.test_service_jobs import Server, finished, make_clip, make_key, submit, wait_job  # noqa: E402

LIMIT = 300_000
FAST = {"overlay": False, "preview": False, "lifter": "mediapipe"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("sec") / "data", "--workers", "1", "--max-upload-bytes", str(LIMIT),
                 "--rate-limit", "60", "--max-video-seconds", "1.0")
    srv.keys = {name: make_key(srv.data_dir, name) for name in ("alice", "bob", "mallory", "spammer")}
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    make_clip(path, frames=12, size=(180, 320))
    assert path.stat().st_size < LIMIT
    return path


def error_of(r: httpx.Response, status: int) -> str:
    """The response's error message, after checking its status and JSON shape."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return body["error"]


def raw_get(server, path: str, key: str) -> tuple[int, bytes]:
    """GET ``path`` sent byte for byte (httpx would resolve ``..`` segments before sending)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path, headers={"X-API-Key": key})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def job_dirs(server) -> set[str]:
    return {p.name for p in (server.data_dir / "jobs").iterdir()}


def test_health_and_openapi_need_no_key(server):
    r = httpx.get(server.url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    spec = httpx.get(server.url + "/openapi.json").json()
    assert spec["info"]["title"] == "mocap-lift service" and spec["info"]["version"] == r.json()["version"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/files/{name}"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]


def test_missing_and_wrong_keys(server, clip):
    alice = server.keys["alice"]
    with server.client(None) as c:
        assert "missing API key" in error_of(c.get("/v1/jobs"), 401)
        assert "missing API key" in error_of(submit(c, clip), 401)
    before = job_dirs(server)
    wrong_secret = alice[:-4] + ("AAAA" if not alice.endswith("AAAA") else "BBBB")  # right key id, wrong secret
    for key in (wrong_secret, "mk_000000000000_" + "A" * 43, "hello", alice + "x"):
        with server.client(key) as c:
            error_of(c.get("/v1/jobs"), 403)
            error_of(submit(c, clip), 403)
    assert job_dirs(server) == before
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {alice}"}) as c:
        assert c.get("/v1/jobs").status_code == 200  # the bearer form works too


def test_bad_uploads(server, clip, tmp_path):
    before = job_dirs(server)
    with server.client(server.keys["alice"]) as c:
        text = tmp_path / "notes.mp4"
        text.write_text("this is not a video\n" * 50)
        assert "not a video" in error_of(submit(c, text), 415)

        big = tmp_path / "big.mp4"
        big.write_bytes(os.urandom(LIMIT + 50_000))
        assert "too large" in error_of(submit(c, big), 413)

        # without a Content-Length (chunked), the stream is cut off once it passes the limit
        boundary = "x" * 16
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"big.mp4\"\r\n"
                f"Content-Type: video/mp4\r\n\r\n").encode()
        chunks = [head] + [os.urandom(50_000) for _ in range(8)] + [f"\r\n--{boundary}--\r\n".encode()]
        r = c.post("/v1/jobs", content=iter(chunks),
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert "too large" in error_of(r, 413)

        long = tmp_path / "long.mp4"  # 40 frames at 30 fps: 1.3 s, over the 1 s limit
        make_clip(long, frames=40, size=(180, 320))
        assert long.stat().st_size < LIMIT
        assert "cut it shorter" in error_of(submit(c, long), 413)

        # several views: a calibration that is not one, and one with the wrong number of cameras
        two = [("video", ("a.mp4", clip.read_bytes())), ("video", ("b.mp4", clip.read_bytes()))]
        r = c.post("/v1/jobs", files=two + [("calibration", ("cal.toml", b"[[not toml"))])
        message = error_of(r, 422)
        assert "cannot be read" in message and str(server.data_dir) not in message
        toml = b"".join(f'[cam_{i}]\nname = "cam{i}"\nsize = [180, 320]\nmatrix = [[200.0, 0.0, 90.0], '
                        f'[0.0, 200.0, 160.0], [0.0, 0.0, 1.0]]\ndistortions = [0.0, 0.0, 0.0, 0.0]\n'
                        f'rotation = [0.0, 0.0, 0.0]\ntranslation = [{i}.0, 0.0, 0.0]\n\n'.encode() for i in range(3))
        r = c.post("/v1/jobs", files=two + [("calibration", ("cal.toml", toml))])
        assert "3 cameras but 2 videos" in error_of(r, 422)
        assert "several views" in error_of(c.post("/v1/jobs", files=two[:1] + [("calibration", ("c.toml", toml))]), 422)

        assert "not valid JSON" in error_of(c.post("/v1/jobs", files=[("video", ("a.mp4", clip.read_bytes()))],
                                                   data={"options": "{lifter: mediapipe"}), 422)
        assert "unknown option" in error_of(submit(c, clip, {"rm -rf": True}), 422)
        assert "calibration" in error_of(c.post("/v1/jobs", files=[("video", ("a.mp4", clip.read_bytes())),
                                                                    ("video", ("b.mp4", clip.read_bytes()))]), 422)
        assert "at least one" in error_of(c.post("/v1/jobs", files={"options": (None, "{}")}), 422)
        assert "unexpected form field" in error_of(c.post("/v1/jobs", files=[("script", ("x.sh", b"echo"))]), 422)
        assert "multipart" in error_of(c.post("/v1/jobs", json={"video": "x"}), 415)
        assert "supported video" in error_of(submit(c, clip, filename="../../etc/passwd"), 415)
        # FastAPI's own errors come out in the same shape
        error_of(c.get("/v1/jobs", params={"limit": "many"}), 422)
        error_of(c.get("/v1/nothing-here"), 404)
        error_of(c.put("/v1/jobs"), 405)
    assert job_dirs(server) == before  # every rejected upload was removed


def test_path_traversal_names_stay_inside_the_job(server, clip):
    with server.client(server.keys["alice"]) as c:
        r = submit(c, clip, FAST, filename="../../../evil.mp4")
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        job_dir = server.data_dir / "jobs" / job_id
        assert sorted(p.name for p in (job_dir / "input").iterdir()) == ["video_0.mp4"]
        assert not (server.data_dir / "evil.mp4").exists() and not (server.data_dir.parent / "evil.mp4").exists()
        assert not (REPO / "evil.mp4").exists()
        assert "/" not in c.get(f"/v1/jobs/{job_id}").json()["inputs"][0]["client_name"]
        assert "not done" in error_of(c.get(f"/v1/jobs/{job_id}/files/motion.npz"), 409)
        job = wait_job(c, job_id, finished)[-1]
        assert job["status"] == "done", job
        assert c.get(f"/v1/jobs/{job_id}/files/motion.bvh").status_code == 200
        for name in ("../mocap.db", "../../mocap.db", "..%2Fmocap.db", "%2E%2E%2F%2E%2E%2Fmocap.db", "..",
                     "mocap.db", "result.json", "..%2Fjob.json", "%2Fetc%2Fpasswd", "motion.bvh%00.db",
                     "../input/video_0.mp4"):
            status, body = raw_get(server, f"/v1/jobs/{job_id}/files/{name}", server.keys["alice"])
            assert status == 404, (name, status, body[:80])
            assert set(json.loads(body)) == {"error"}
        status, body = raw_get(server, "/v1/jobs/../../mocap.db", server.keys["alice"])
        assert status == 404 and not body.startswith(b"SQLite format 3")


def test_jobs_are_private_to_their_key(server, clip):
    with server.client(server.keys["bob"]) as c:
        r = submit(c, clip, FAST)
        assert r.status_code == 201
        job_id = r.json()["id"]
    with server.client(server.keys["mallory"]) as m:
        assert "no job" in error_of(m.get(f"/v1/jobs/{job_id}"), 404)
        error_of(m.post(f"/v1/jobs/{job_id}/cancel"), 404)
        error_of(m.delete(f"/v1/jobs/{job_id}"), 404)
        error_of(m.get(f"/v1/jobs/{job_id}/files/motion.npz"), 404)
        assert job_id not in [j["id"] for j in m.get("/v1/jobs").json()]
    with server.client(server.keys["bob"]) as c:
        assert c.get(f"/v1/jobs/{job_id}").json()["status"] in ("queued", "running", "done")


def test_rate_limit(server):
    with server.client(server.keys["spammer"]) as c:
        codes = [c.get("/v1/jobs").status_code for _ in range(75)]
        assert codes[:55] == [200] * 55 and 429 in codes, codes
        r = c.get("/v1/jobs")
        assert "rate limit" in error_of(r, 429) and int(r.headers["retry-after"]) >= 1
    with server.client(server.keys["alice"]) as c:  # buckets are per key
        assert c.get("/v1/jobs").status_code == 200


def test_keys_cli_prints_the_key_once_and_stores_only_a_hash(tmp_path):
    data = tmp_path / "data"
    run = [sys.executable, "-m", "mocap.service.server", "keys"]
    out = subprocess.run(run + ["create", "render farm", "--data-dir", str(data)], capture_output=True, text=True,
                         cwd=REPO, check=True)
    key = out.stdout.strip()
    key_id, secret = key.split("_")[1], key.split("_", 2)[2]
    listing = subprocess.run(run + ["list", "--data-dir", str(data)], capture_output=True, text=True, cwd=REPO,
                             check=True).stdout
    assert key_id in listing and "render farm" in listing and secret not in listing
    for f in (p for p in data.iterdir() if p.is_file()):  # the database (and its WAL) never hold the secret
        assert secret.encode() not in f.read_bytes()

    from fastapi import HTTPException

    from mocap.service.auth import KeyVerifier
    from mocap.service.store import Store

    store = Store(data)
    verify = KeyVerifier(store, rate_limit_per_minute=0)
    assert verify(key) == key_id and verify(key) == key_id  # second time from the in-memory digest
    for bad, status in ((None, 401), ("", 401), (key[:-1] + ("a" if key[-1] != "a" else "b"), 403)):
        with pytest.raises(HTTPException) as e:
            verify(bad)
        assert e.value.status_code == status
    assert subprocess.run(run + ["revoke", key_id, "--data-dir", str(data)], cwd=REPO, capture_output=True).returncode == 0
    with pytest.raises(HTTPException) as e:
        verify(key)  # revocation is read from the database, not the cache
    assert e.value.status_code == 403
    store.close()


def test_token_bucket():
    from mocap.service.auth import TokenBucket

    b = TokenBucket(per_minute=3)
    assert [b.take("k", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("k", now=100.0) == pytest.approx(20.0)  # 3 a minute: one token every 20 s
    assert b.take("other", now=100.0) == 0.0
    assert b.take("k", now=110.0) == pytest.approx(10.0)
    assert b.take("k", now=120.0) == 0.0


def test_access_log_hides_keys_in_query_strings():
    """WebSocket clients may send ?key=...; uvicorn's access log line must not show it."""
    import logging

    from mocap.service.server import RedactKeys

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/v1/stream?layout=x&key=mk_ab_SECRET&b=1", "1.1", 101), None)
    assert RedactKeys().filter(record)
    line = record.getMessage()
    assert "SECRET" not in line and "key=***&b=1" in line and "layout=x" in line
