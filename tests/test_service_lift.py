"""Tests of the low-latency service's POST /v1/lift (WebSocket /v1/stream: tests/test_service_realtime.py).

Ground truth: the offline pipeline's lift_keypoints on the same synthetic keypoints of a known
motion (tests/synthetic.py), computed directly.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
fastapi = pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from mocap.formats import save_keypoints  # noqa: E402
from mocap.lift.network import NetworkLifter  # noqa: E402
from mocap.pipelines.capture import lift_keypoints  # noqa: E402
from mocap.skeletons import rest_offsets  # noqa: E402
from tests.realtime_helpers import (GOOD, HEADERS, SLOW, client, keypoints, lift_body,  # noqa: E402,F401
                                    make_app)


@pytest.fixture(scope="module")
def offline_motion(keypoints):
    """lift_keypoints run directly, with torch on one thread like the service (float32 sums
    in another order differ by ~1e-7 m)."""
    out = {}

    def run():
        torch.set_num_threads(1)
        out["motion"] = lift_keypoints(keypoints, lifter=NetworkLifter(causal=False))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out["motion"]


def check_motion(reply: dict, motion) -> None:
    assert reply["joint_names"] == list(motion.joint_names) and reply["parents"] == list(motion.parents)
    assert reply["fps"] == motion.fps and reply["num_frames"] == motion.num_frames
    for name in ("joints", "local_quats_wxyz", "root_translation", "rest_offsets"):
        np.testing.assert_array_equal(np.array(reply[name]), getattr(motion, name), err_msg=name)  # exact


def test_lift_json_equals_the_offline_lift(client, keypoints, offline_motion):
    r = client.post("/v1/lift", json=lift_body(keypoints), headers=HEADERS)
    assert r.status_code == 200, r.text
    reply = r.json()
    check_motion(reply, offline_motion)
    assert np.array(reply["joints"]).shape == (90, 21, 3) and np.array(reply["local_quats_wxyz"]).shape == (90, 21, 4)
    # sanity against the known motion: bone lengths near the synthetic person's (rest offsets)
    lengths = np.linalg.norm(np.array(reply["rest_offsets"])[1:], axis=-1)
    assert np.allclose(lengths, np.linalg.norm(rest_offsets()[1:], axis=-1), rtol=0.25, atol=0.03)


def test_lift_npz_upload_equals_the_offline_lift(client, keypoints, offline_motion, tmp_path):
    save_keypoints(tmp_path / "keypoints2d.npz", keypoints)
    data = (tmp_path / "keypoints2d.npz").read_bytes()
    r = client.post("/v1/lift", files={"file": ("keypoints2d.npz", data, "application/octet-stream")},
                    data={"decimals": "4"}, headers={"Authorization": f"Bearer {GOOD}"})
    assert r.status_code == 200, r.text
    reply = r.json()
    np.testing.assert_allclose(reply["joints"], offline_motion.joints, atol=5.1e-5, rtol=0)
    np.testing.assert_allclose(reply["local_quats_wxyz"], offline_motion.local_quats_wxyz, atol=5.1e-5, rtol=0)


def test_lift_is_described_in_the_openapi_schema(client, keypoints):
    """Found by the schema fuzz test (tests/test_service_schema.py): /v1/lift had no body, no key and
    only 200 in its description, so each 4xx it answered was undocumented. A real body and reply
    must fit the schemas it now documents."""
    jsonschema = pytest.importorskip("jsonschema")
    op = client.app.openapi()["paths"]["/v1/lift"]["post"]
    assert {"200", "401", "403", "408", "413", "415", "422", "429", "503"} <= set(op["responses"])
    assert op["security"] == [{"APIKeyHeader": []}, {"HTTPBearer": []}]
    content = op["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    k = type(keypoints)(keypoints=keypoints.keypoints[:20], confidence=keypoints.confidence[:20],
                        layout=keypoints.layout, image_size=keypoints.image_size, fps=keypoints.fps)
    body = {**lift_body(k), "decimals": 5}
    jsonschema.validate(body, content["application/json"]["schema"])  # with its null point and null frame
    r = client.post("/v1/lift", json=body, headers=HEADERS)
    assert r.status_code == 200, r.text
    jsonschema.validate(r.json(), op["responses"]["200"]["content"]["application/json"]["schema"])
    with pytest.raises(jsonschema.ValidationError):  # the schema states the rules it can
        jsonschema.validate({**body, "layout": "smpl24"}, content["application/json"]["schema"])


def test_lift_auth_errors(client, keypoints):
    body = lift_body(keypoints)
    for headers, status in (({}, 401), ({"X-API-Key": "nope"}, 403), ({"Authorization": "Bearer nope"}, 403),
                            ({"X-API-Key": SLOW}, 429)):
        r = client.post("/v1/lift", json=body, headers=headers)
        assert r.status_code == status and "error" in r.json()
    assert r.headers["retry-after"] == "7"


def _bad_bodies(k):
    body = lift_body(k)
    yield "malformed JSON", b'{"layout": "coco17",'
    yield "layout must be", {**body, "layout": "smpl24"}
    yield "shape (T, 33, 2)", {**body, "keypoints": [[[1.0, 2.0]] * 17] * 3}
    yield "confidence must have shape", {**body, "confidence": body["confidence"][:5]}
    yield "image_size", {**body, "image_size": [640]}
    yield "fps", {**body, "fps": 0}
    yield "more than the 500", {**body, "keypoints": body["keypoints"] * 6, "confidence": None}
    yield "no frames", {**body, "keypoints": [], "confidence": None}
    yield "unknown keys", {**body, "extra": 1}
    yield "never fully detected", {**body, "keypoints": [None] * 10, "confidence": None}
    yield "keypoints[0][2]", {**body, "keypoints": [[[1.0, 2.0], None, "x"] + [[1.0, 2.0]] * 30]}


@pytest.mark.parametrize("case", range(11))
def test_lift_bad_inputs_give_422(client, keypoints, case):
    needle, body = list(_bad_bodies(keypoints))[case]
    if isinstance(body, bytes):
        r = client.post("/v1/lift", content=body, headers={**HEADERS, "content-type": "application/json"})
    else:
        r = client.post("/v1/lift", json=body, headers=HEADERS)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]


def test_lift_bad_upload_and_content_type(client):
    r = client.post("/v1/lift", files={"file": ("k.npz", b"not a zip", "application/octet-stream")}, headers=HEADERS)
    assert r.status_code == 422 and "not a readable" in r.json()["error"] and "/tmp" not in r.json()["error"]
    r = client.post("/v1/lift", files={"other": ("k.npz", b"x", "application/octet-stream")}, headers=HEADERS)
    assert r.status_code == 422 and "'file' field" in r.json()["error"]
    r = client.post("/v1/lift", files=[("file", ("a.npz", b"1")), ("file", ("b.npz", b"2"))], headers=HEADERS)
    assert r.status_code == 422 and "malformed multipart" in r.json()["error"]
    r = client.post("/v1/lift", content=b"abc", headers={**HEADERS, "content-type": "multipart/form-data"})
    assert r.status_code == 422 and "boundary" in r.json()["error"]
    r = client.post("/v1/lift", content=b"abc", headers={**HEADERS, "content-type": "text/plain"})
    assert r.status_code == 415


def test_lift_body_limit():
    with TestClient(make_app(max_body_bytes=1000)) as c:
        r = c.post("/v1/lift", content=b"{" + b" " * 2000 + b"}", headers={**HEADERS, "content-type": "application/json"})
    assert r.status_code == 413 and "error" in r.json()
