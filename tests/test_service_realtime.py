"""Tests of the low-latency service's WebSocket /v1/stream (POST /v1/lift: tests/test_service_lift.py).

Ground truth: the same numbers computed offline (StreamingLifter + OneEuroFilter,
kinematics.inverse_kinematics / forward_kinematics) on synthetic keypoints of a known motion
(tests/synthetic.py).
"""
from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
fastapi = pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from mocap.lift.network import StreamingLifter, default_weights_path  # noqa: E402
from mocap.kinematics import ik as kinematics  # noqa: E402
from mocap.cleanup import world  # noqa: E402
from mocap.cleanup.filters import OneEuroFilter  # noqa: E402
from mocap.service import stream_session as ss  # noqa: E402
from mocap.skeletons import MOTION21, rest_offsets  # noqa: E402
from tests.realtime_helpers import (GOOD, HEADERS, SLOW, client, keypoints, lift_body,  # noqa: E402,F401
                                    make_app)
from tests.synthetic import synthetic_keypoints, waving_walker  # noqa: E402

PARENTS = np.array(MOTION21.parents)
MULTI_CHILD = [j for j in range(21) if len(MOTION21.children(j)) >= 2]  # pelvis, ankles, neck


def frame_message(k, i: int) -> dict:
    kp = [None if not np.isfinite(p).all() else [float(p[0]), float(p[1])] for p in k.keypoints[i]]
    return {"type": "frame", "frame": i, "t": i / k.fps, "keypoints": kp, "confidence": k.confidence[i].tolist()}


def hello(k, **extra) -> dict:
    return {"type": "hello", "layout": k.layout, "image_size": list(k.image_size), "fps": k.fps, **extra}


def offline_stream(k, smoothing=ss.Smoothing()) -> np.ndarray:
    """StreamingLifter + camera_to_world + OneEuroFilter run offline: (T, 21, 3), NaN without a person."""
    lifter = StreamingLifter(default_weights_path(causal=True))
    f = OneEuroFilter(fps=k.fps, min_cutoff=smoothing.min_cutoff, beta=smoothing.beta, d_cutoff=smoothing.d_cutoff)
    return np.stack([f(world.camera_to_world(lifter.push(k.keypoints[i], k.confidence[i])))
                     for i in range(k.num_frames)])


def nulls_to_nan(rows) -> np.ndarray:
    return np.array([np.full((21, 3), np.nan) if r is None else r for r in rows], dtype=np.float64)


def bone_angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 21) angle between the bones (parent -> joint) of two joint sets; column 0 (root) is 0."""
    def unit(x):
        v = x - x[:, np.maximum(PARENTS, 0)]
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    return np.degrees(np.arccos(np.clip((unit(a) * unit(b)).sum(-1), -1.0, 1.0)))


# --- WebSocket /v1/stream ---------------------------------------------------------------------

def test_stream_adds_no_error_to_the_offline_streaming_lifter(client, keypoints):
    k = keypoints
    with client.websocket_connect("/v1/stream", headers=HEADERS) as ws:
        ws.send_json(hello(k))
        h = ws.receive_json()
        assert h["type"] == "hello" and h["joint_names"] == list(MOTION21.joint_names)
        assert h["parents"] == list(MOTION21.parents) and h["quat_order"] == "wxyz"
        np.testing.assert_allclose(h["rest_offsets"], rest_offsets())
        replies = []
        for i in range(k.num_frames):  # lock-step: nothing is dropped
            ws.send_json(frame_message(k, i))
            replies.append(ws.receive_json())
    assert [r["frame"] for r in replies] == list(range(k.num_frames))
    assert all(r["type"] == "pose" and r["dropped"] == 0 and r["latency_ms"] >= 0 for r in replies)
    assert replies[40]["joints"] is None and replies[40]["local_quats_wxyz"] is None
    assert replies[7]["t"] == pytest.approx(7 / k.fps)

    expected = offline_stream(k)
    got = nulls_to_nan([r["joints"] for r in replies])
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)  # 6 decimals in the replies
    # +Y up: the head is above the pelvis and the feet below it, 1.3 to 2.2 m apart
    ok = np.isfinite(got).all((1, 2))
    assert (got[ok, MOTION21.index("head"), 1] > 0.4).all() and (got[ok, MOTION21.index("left_ankle"), 1] < -0.6).all()

    # the rotations equal the offline IK of the same joints (up to the quaternion sign)
    quats = np.array([r["local_quats_wxyz"] for i, r in enumerate(replies) if ok[i]])
    ref, _ = kinematics.inverse_kinematics(expected[ok], parents=PARENTS, rest_offsets=rest_offsets())
    assert np.minimum(np.abs(quats - ref).max(-1), np.abs(quats + ref).max(-1)).max() < 2e-6
    assert (np.sum(quats[1:] * quats[:-1], -1) >= 0).all() and (quats[0, :, 0] >= 0).all()  # sign-continuous


def test_stream_quaternions_reproduce_the_bone_directions(client, keypoints):
    k = keypoints
    with client.websocket_connect(f"/v1/stream?key={GOOD}") as ws:
        ws.send_json(hello(k, decimals=None))
        rest = np.array(ws.receive_json()["rest_offsets"])
        replies = []
        for i in range(0, k.num_frames, 2):
            ws.send_json(frame_message(k, i))
            replies.append(ws.receive_json())
    replies = [r for r in replies if r["joints"] is not None]
    joints = np.array([r["joints"] for r in replies])
    quats = np.array([r["local_quats_wxyz"] for r in replies])
    assert np.allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-9)
    fk = kinematics.forward_kinematics(quats, np.zeros((len(quats), 3)), rest, PARENTS)
    ang = bone_angles_deg(fk, joints)
    fitted = [j for j in range(1, 21) if PARENTS[j] in MULTI_CHILD]  # below pelvis, neck, ankles: least squares
    exact = [j for j in range(1, 21) if j not in fitted]
    assert ang[:, exact].max() < 1e-3  # single-child joints: the bone direction is matched exactly
    # the residual is how far the lifted heel-toe, hip-hip-spine and shoulder-head shapes stray from the rigid
    # rest pose, so it depends on the weights: measured median 1.3, max 7.1 (left heel; 0.9 / 4.0 with the
    # weights before 2026-11-24); a wrong rotation order or parent gives tens of degrees
    assert np.median(ang[:, fitted]) < 2.0 and ang[:, fitted].max() < 12.0


def test_stream_coco17_normalized_coords_and_no_smoothing(client, keypoints):
    from mocap.skeletons import map_joints

    k = keypoints
    coco = map_joints(k.keypoints[:20].astype(np.float64), "mediapipe33", "coco17")
    size = np.array(k.image_size, dtype=np.float64)
    with client.websocket_connect("/v1/stream", headers={"Authorization": f"Bearer {GOOD}"}) as ws:
        ws.send_json(hello(k, layout="coco17", coords="normalized", smoothing=None, decimals=None))
        assert ws.receive_json()["smoothing"] is None
        got = []
        for i in range(20):
            ws.send_json({"keypoints": (coco[i] / size).tolist()})
            got.append(ws.receive_json())
    assert [r["frame"] for r in got] == list(range(20))  # default numbering: frames received
    lifter = StreamingLifter(default_weights_path(causal=True))
    expected = [world.camera_to_world(lifter.push(coco[i], np.ones(17))) for i in range(20)]
    np.testing.assert_allclose([r["joints"] for r in got], expected, atol=1e-9)


def test_sessions_share_the_model_but_not_their_history(keypoints):
    k = keypoints
    config = ss.StreamConfig(layout=k.layout, image_size=k.image_size, fps=k.fps, decimals=None)
    a, b, alone = ss.StreamSession(config), ss.StreamSession(config), ss.StreamSession(config)
    assert a.model is b.model is ss.shared_causal_model()
    other = synthetic_keypoints(waving_walker(30)[::-1].copy(), noise_px=2.0, seed=9)
    for i in range(30):  # a and b interleaved in batches, alone by itself
        ra, rb = ss.process_batch([(a, frame_message(k, i), None), (b, frame_message(other, i), None)])
        ralone = alone.process(frame_message(k, i))
        assert ra["joints"] == ralone["joints"] and ra["local_quats_wxyz"] == ralone["local_quats_wxyz"]
        assert rb["joints"] != ra["joints"]
    a.reset()
    fresh = ss.StreamSession(config)
    assert a.process(frame_message(k, 5))["joints"] == fresh.process(frame_message(k, 5))["joints"]


def test_stream_undoes_the_detector_s_left_right_swaps(keypoints):
    """The detector mirrors the person's labels for a stretch, the upper body a frame before the
    lower (as on pose2sim_two_people cam02, which the whole-body repair missed): the stream trades
    them back as they come, says so in ``swapped``, and answers exactly as for the clean frames;
    with ``resolve_swaps`` off it lifts the mirrored body, decimetres off."""
    from mocap.detect2d.swaps import apply_swaps, body_parts
    from mocap.skeletons import MEDIAPIPE33

    k = keypoints
    truth = np.zeros((k.num_frames, 2), bool)
    truth[50:70, 0] = True  # the upper body mirrored from frame 50, the lower from 51
    truth[51:73, 1] = True
    parts, mirror = body_parts(MEDIAPIPE33), MEDIAPIPE33.mirror_permutation()
    bad = type(k)(keypoints=apply_swaps(k.keypoints, truth, mirror, parts),
                  confidence=apply_swaps(k.confidence, truth, mirror, parts),
                  layout=k.layout, image_size=k.image_size, fps=k.fps)

    hands = np.random.default_rng(0).uniform(100, 500, (k.num_frames, 42, 2))  # the left hand, then the right
    bad_hands = np.where(truth[:, :1, None], np.concatenate([hands[:, 21:], hands[:, :21]], 1), hands)

    def run(kp, hand_points, **options):
        session = ss.StreamSession(ss.StreamConfig(layout=k.layout, image_size=k.image_size, fps=k.fps,
                                                   decimals=None, **options))
        return [session.process({**frame_message(kp, i), "hand_keypoints": hand_points[i].tolist(),
                                 "hand_confidence": [1.0] * 42}) for i in range(kp.num_frames)]

    clean, fixed, kept = run(k, hands), run(bad, bad_hands), run(bad, bad_hands, resolve_swaps=False)
    assert [r["swapped"] for r in fixed] == truth.tolist()
    assert [r["hand_keypoints"] for r in fixed] == [r["hand_keypoints"] for r in clean]  # the hands follow the arms
    assert [r["hand_keypoints"] for r in kept] == bad_hands.tolist()
    assert not any(any(r["swapped"]) for r in clean + kept)
    assert [r["joints"] for r in fixed] == [r["joints"] for r in clean]
    assert [r["local_quats_wxyz"] for r in fixed] == [r["local_quats_wxyz"] for r in clean]
    off = np.linalg.norm(nulls_to_nan([r["joints"] for r in kept]) - nulls_to_nan([r["joints"] for r in clean]), axis=-1)
    assert np.nanmax(off[50:73]) > 0.2 and np.nanmax(off[:50]) == 0.0
    assert ss.StreamSession(ss.StreamConfig(image_size=(640, 480))).hello()["resolve_swaps"] is True
    session = ss.StreamSession(ss.StreamConfig(layout=k.layout, image_size=k.image_size, fps=k.fps))
    replies = [session.process(frame_message(bad, i)) for i in range(56)]
    nobody = session.process({"keypoints": None})  # inside the stretch, nobody seen: nothing traded back
    assert replies[-1]["swapped"] == [True, True] and nobody["swapped"] == [False, False]
    assert session.process(frame_message(bad, 56))["swapped"] == [True, True]  # the state is kept across it


def test_batched_and_per_frame_ik_give_the_same_replies(keypoints):
    k = keypoints
    config = ss.StreamConfig(layout=k.layout, image_size=k.image_size, fps=k.fps, decimals=None)
    many = [ss.StreamSession(config) for _ in range(12)]  # one IK call for the frames of 12 sessions
    one = ss.StreamSession(config)
    for i in range(0, 30, 3):
        batch = ss.process_batch([(s, frame_message(k, i + n % 3), None) for n, s in enumerate(many)])
        alone = one.process(frame_message(k, i))
        np.testing.assert_allclose(batch[0]["local_quats_wxyz"], alone["local_quats_wxyz"], atol=1e-9)
        assert batch[0]["joints"] == alone["joints"]



@pytest.mark.parametrize("decimals", [6, None])
def test_four_clients_at_once_get_exactly_the_single_client_replies(keypoints, decimals):
    """Known answer: the frames of one client, sent by 4 clients at once (one network pass, one
    IK call per tick), give each of them the replies of that client alone, to the last bit; so
    do a coco17 client and one that joins late in the same batches (a fresh history beside
    running ones)."""
    from mocap.skeletons import map_joints

    k = keypoints
    config = ss.StreamConfig(layout=k.layout, image_size=k.image_size, fps=k.fps, decimals=decimals)
    coco_config = ss.StreamConfig(layout="coco17", image_size=k.image_size, fps=k.fps, decimals=decimals,
                                  smoothing=None)
    coco = map_joints(k.keypoints.astype(np.float64), "mediapipe33", "coco17")

    def coco_message(i):
        return {"frame": i, "keypoints": [None if not np.isfinite(p).all() else p.tolist() for p in coco[i]]}

    alone, coco_alone, late_alone = ss.StreamSession(config), ss.StreamSession(coco_config), ss.StreamSession(config)
    four = [ss.StreamSession(config) for _ in range(4)]
    coco_in_batch, late = ss.StreamSession(coco_config), ss.StreamSession(config)
    for i in range(k.num_frames):
        items = [(s, frame_message(k, i), None) for s in four] + [(coco_in_batch, coco_message(i), None)]
        if i >= 25:
            items.append((late, frame_message(k, i), None))
        batch = ss.process_batch(items)
        expected = alone.process(frame_message(k, i))
        assert expected["type"] == "pose" and all(r == expected for r in batch[:4]), f"frame {i}"
        assert batch[4] == coco_alone.process(coco_message(i)), f"coco17 frame {i}"
        if i >= 25:
            assert batch[5] == late_alone.process(frame_message(k, i)), f"late client, frame {i}"
    assert expected["joints"] is not None and batch[4]["joints"] != expected["joints"]

def test_stream_bad_frames_get_errors_and_the_stream_goes_on(client, keypoints):
    k = keypoints
    with client.websocket_connect("/v1/stream", headers=HEADERS) as ws:
        ws.send_json(hello(k))
        ws.receive_json()
        ws.send_text("not json")
        assert "not JSON" in ws.receive_json()["error"]
        ws.send_json({"type": "frame", "frame": 1, "keypoints": [[1.0, 2.0]] * 17})  # a coco17 frame
        bad = ws.receive_json()
        assert bad["type"] == "error" and bad["frame"] == 1 and "(33, 2)" in bad["error"]
        ws.send_json({"frame": 2, "keypoints": k.keypoints[2].tolist(), "confidence": [2.0] * 33})
        assert "[0, 1]" in ws.receive_json()["error"]
        ws.send_json({"type": "dance"})
        assert "unknown message type" in ws.receive_json()["error"]
        ws.send_json(frame_message(k, 3))
        good = ws.receive_json()
        assert good["type"] == "pose" and good["frame"] == 3 and len(good["joints"]) == 21
        ws.send_json({"type": "reset"})
        ws.send_json(frame_message(k, 3))
        assert ws.receive_json()["joints"] == good["joints"]  # a reset starts the history afresh


@pytest.mark.parametrize("headers,query,code", [({}, "", "401"), ({"X-API-Key": "nope"}, "", "403"),
                                                ({}, "?key=nope", "403"), ({}, f"?key={SLOW}", "429")])
def test_stream_refuses_keys_with_1008(client, headers, query, code):
    with client.websocket_connect("/v1/stream" + query, headers=headers) as ws:
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
    assert e.value.code == 1008 and e.value.reason.startswith(code)


@pytest.mark.parametrize("message,needle", [({"type": "hello", "layout": "coco17"}, "image_size"),
                                            ({"type": "hello", "layout": "mpii16", "image_size": [640, 480]}, "layout"),
                                            ({"type": "frame", "keypoints": []}, "first message"),
                                            ({"type": "hello", "image_size": [640, 480], "fps": -3}, "fps"),
                                            ({"type": "hello", "image_size": [640, 480], "smoothing": {"beta": -1}}, "beta"),
                                            ({"type": "hello", "image_size": [640, 480], "resolve_swaps": 1}, "resolve_swaps")])
def test_stream_bad_hello_closes_with_1007(client, message, needle):
    with client.websocket_connect("/v1/stream", headers=HEADERS) as ws:
        ws.send_json(message)
        assert needle in ws.receive_json()["error"]
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
    assert e.value.code == 1007


# --- a real server: back-pressure -----------------------------------------------------------------

@contextlib.contextmanager
def serve(app):
    """Run ``app`` with uvicorn on a free loopback port in a thread; yield the port."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_per_message_deflate=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_back_pressure_newest_frame_wins_over_real_uvicorn(keypoints):
    from websockets.sync.client import connect

    k = keypoints
    messages = [json.dumps({**frame_message(k, i % k.num_frames), "frame": i}) for i in range(300)]
    with serve(make_app()) as port, connect(f"ws://127.0.0.1:{port}/v1/stream?key={GOOD}") as ws:
        ws.send(json.dumps(hello(k)))
        assert json.loads(ws.recv(timeout=30))["type"] == "hello"
        for m in messages:  # all at once, far faster than they can be lifted
            ws.send(m)
        replies = []
        while not replies or replies[-1]["frame"] != 299:
            replies.append(json.loads(ws.recv(timeout=30)))
        with pytest.raises(TimeoutError):  # nothing stale follows the newest frame
            ws.recv(timeout=0.5)
    frames = [r["frame"] for r in replies]
    print(f"300 frames sent at once: {len(replies)} replies, frames {frames[:3]} ... {frames[-3:]}, "
          f"{replies[-1]['dropped']} dropped")
    assert all(r["type"] == "pose" for r in replies)
    assert len(replies) < 100 and frames == sorted(frames) and frames[-1] == 299
    assert replies[-1]["dropped"] == 300 - len(replies) > 0  # every frame is either answered or counted


def test_real_uvicorn_refuses_a_key_with_1008():
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with serve(make_app()) as port, connect(f"ws://127.0.0.1:{port}/v1/stream?key=wrong") as ws:
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
    assert e.value.rcvd.code == 1008 and e.value.rcvd.reason.startswith("403")


# --- through the service's own application (mocap.service.app), when it is there ------------------

def test_routes_through_the_service_app(tmp_path, keypoints):
    app_module = pytest.importorskip("mocap.service.app")
    from mocap.service.auth import create_key

    app = app_module.create_app(app_module.ServiceConfig(data_dir=tmp_path, workers=1))
    key = create_key(app.state.store, "realtime test")
    k = type(keypoints)(keypoints=keypoints.keypoints[:30], confidence=keypoints.confidence[:30],
                        layout=keypoints.layout, image_size=keypoints.image_size, fps=keypoints.fps)
    with TestClient(app) as c:
        r = c.post("/v1/lift", json=lift_body(k), headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        assert np.array(r.json()["joints"]).shape == (30, 21, 3)
        assert c.post("/v1/lift", json=lift_body(k)).status_code == 401
        assert c.post("/v1/lift", json=lift_body(k), headers={"X-API-Key": key + "x"}).status_code == 403
        with c.websocket_connect(f"/v1/stream?key={key}") as ws:
            ws.send_json(hello(k))
            assert ws.receive_json()["type"] == "hello"
            ws.send_json(frame_message(k, 0))
            assert len(ws.receive_json()["local_quats_wxyz"]) == 21
        with c.websocket_connect("/v1/stream", headers={"X-API-Key": "mk_000000000000_" + "a" * 43}) as ws:
            with pytest.raises(WebSocketDisconnect) as e:
                ws.receive_json()
        assert e.value.code == 1008 and e.value.reason.startswith("403")


# --- hands through the stream -----------------------------------------------------------------

def _hand_fields(scene, i: int, world: bool = True) -> dict:
    kp = scene.hand_keypoints[i].astype(np.float64)
    out = {"hand_keypoints": kp.tolist(), "hand_confidence": scene.hand_confidence[i].tolist()}
    if world:
        out["hand_world"] = scene.hand_world[i].astype(np.float64).tolist()
    return out


def test_stream_finger_rotations_are_the_capture_s_on_a_known_hand():
    """finger_quats on one frame of a synthetic body whose hands are in a known pose (no noise),
    seen by a level camera: the wrists' and fingers' local rotations are the truth (1e-4)."""
    from mocap.rotations import geodesic_angle
    from tests.hand_synthetic import POSES, hand_scene

    scene = hand_scene(POSES["pinch"], view_deg=(0.0, 0.0), pixel_noise=0.0, world_noise_m=0.0, frames=5)
    for i in (0, 4):
        got, valid = ss.finger_quats(scene.body.joints[i], scene.body.local_quats_wxyz[i], scene.hand_keypoints[i],
                                     scene.hand_world[i], scene.hand_confidence[i], scene.camera.size,
                                     focal_px=float(scene.camera.K[0, 0]))
        assert valid.tolist() == [True, True]
        truth = scene.truth_quats[i, ss._HAND_JOINTS]
        assert np.degrees(geodesic_angle(got, truth)).max() < 1e-2  # degrees


def test_stream_passes_hands_through_with_finger_rotations(client, keypoints):
    from tests.hand_synthetic import POSES, hand_scene

    k = keypoints
    scene = hand_scene(POSES["fist"], pixel_noise=1.0, world_noise_m=0.002, frames=4, seed=1)
    with client.websocket_connect("/v1/stream", headers=HEADERS) as ws:
        ws.send_json(hello(k))
        h = ws.receive_json()
        assert len(h["hand_joint_names"]) == 42 and h["hand_joint_names"][0] == "left_wrist"
        assert h["hand_joint_names"][21] == "right_wrist" and h["hand_parent_names"][0] == "left_elbow"
        assert np.array(h["hand_rest_offsets"]).shape == (42, 3)
        # a frame without hands: the reply has no hand fields (older clients see no change)
        ws.send_json(frame_message(k, 0))
        plain = ws.receive_json()
        assert plain["type"] == "pose" and "hand_keypoints" not in plain
        for i in range(1, 4):
            ws.send_json({**frame_message(k, i), **_hand_fields(scene, i)})
            r = ws.receive_json()
            assert r["type"] == "pose", r
            np.testing.assert_allclose(np.array(r["hand_keypoints"]), scene.hand_keypoints[i], atol=1e-5)
            assert r["hand_valid"] == [True, True]
            q = np.array(r["hand_quats_wxyz"])
            assert q.shape == (42, 4) and np.allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-5)
            assert not np.allclose(q[1:21], [1.0, 0.0, 0.0, 0.0], atol=0.05)  # a fist: the fingers bend
        # keypoints only (no world landmarks): passed through, no rotations; a hand missing: null
        fields = _hand_fields(scene, 1, world=False)
        fields["hand_keypoints"][21:] = [None] * 21
        ws.send_json({**frame_message(k, 5), **fields})
        r = ws.receive_json()
        assert r["hand_quats_wxyz"] is None and r["hand_valid"] == [True, False]
        assert r["hand_keypoints"][21] is None and r["hand_confidence"][21] == 0.0
        # no person: the hands still come back, without rotations
        ws.send_json({"type": "frame", "frame": 6, "keypoints": None, **_hand_fields(scene, 2)})
        r = ws.receive_json()
        assert r["joints"] is None and r["hand_quats_wxyz"] is None and r["hand_keypoints"][0] is not None
        # bad hands: an error for that frame, the stream goes on
        ws.send_json({**frame_message(k, 7), "hand_keypoints": [[1.0, 2.0]] * 21})
        assert "(42, 2)" in ws.receive_json()["error"]
        ws.send_json({**frame_message(k, 8), "hand_world": scene.hand_world[1].tolist()})
        assert "need hand_keypoints" in ws.receive_json()["error"]
        ws.send_json({**frame_message(k, 9), **_hand_fields(scene, 1), "hand_world": [[0.0, 0.0, 50.0]] * 42})
        assert "metres" in ws.receive_json()["error"]
        ws.send_json(frame_message(k, 10))
        assert ws.receive_json()["type"] == "pose"


# --- a face through the stream ------------------------------------------------------------------

def test_stream_face_controls_follow_a_known_face(client, keypoints):
    """Synthetic faces (tests/face_synthetic.py: known jaw opening and blinks under head turns,
    1 % noise) sent with the frames: the reply's controls, computed causally (the rest learnt as
    the stream goes), follow the truth after the first two seconds (r >= 0.9),
    and the head angles follow the head; frames without a face have no face fields; a face
    with its rigid points missing gives nulls; bad faces are an error for that frame."""
    from mocap.face.controls import CONTROLS
    from tests.face_synthetic import blinks, express, neutral_face, observe, smooth_random

    k = keypoints
    rng = np.random.default_rng(3)
    t = 240
    truth = {"jawOpen": smooth_random(t, rng, hz=1.0), "eyeBlinkLeft": blinks(t, rng, every_s=0.7)}
    ypr = np.stack([0.3 * np.sin(np.arange(t) / 9), 0.1 * np.sin(np.arange(t) / 7), np.zeros(t)], -1)
    faces = observe(express(neutral_face(), truth), ypr, rng)
    got, head = [], []
    with client.websocket_connect("/v1/stream", headers=HEADERS) as ws:
        ws.send_json(hello(k))
        assert ws.receive_json()["face_control_names"] == list(CONTROLS)
        ws.send_json(frame_message(k, 0))
        assert "face_controls" not in ws.receive_json()
        for i in range(t):
            ws.send_json({**frame_message(k, i % len(k.keypoints)), "face_keypoints": faces[i].tolist()})
            r = ws.receive_json()
            assert r["type"] == "pose", r
            got.append(r["face_controls"])
            head.append(r["face_head_ypr"])
        got, head = np.array(got, dtype=np.float64), np.array(head, dtype=np.float64)
        assert got.shape == (t, 10) and np.nanmin(got) >= 0.0 and np.nanmax(got) <= 1.0
        for name in truth:
            r = np.corrcoef(got[60:, CONTROLS.index(name)], truth[name][60:])[0, 1]
            assert r >= 0.9, (name, r)
        assert np.degrees(np.abs(head[:, 0] - ypr[:, 0])).max() < 5.0
        broken = faces[0].copy()
        broken[33] = np.nan  # an eye corner: no head frame
        ws.send_json({**frame_message(k, 1), "face_keypoints": [None if np.isnan(p).any() else p.tolist()
                                                                 for p in broken]})
        r = ws.receive_json()
        assert r["face_controls"] is None and r["face_head_ypr"] is None
        ws.send_json({**frame_message(k, 2), "face_keypoints": [[1.0, 2.0, 3.0]] * 468})
        assert "(478, 3)" in ws.receive_json()["error"]
        ws.send_json({**frame_message(k, 3), "face_keypoints": [[1.0, 2.0]] * 478})
        assert "face_keypoints" in ws.receive_json()["error"]
        ws.send_json(frame_message(k, 4))
        assert ws.receive_json()["type"] == "pose"


def _stream_lean(k, hello_msg: dict) -> tuple[float, dict]:
    """The median torso lean (degrees from +Y) of a stream's replies to keypoints ``k``, and its hello reply."""
    session = ss.StreamSession(ss.parse_hello(hello_msg))
    leans = []
    for i in range(k.num_frames):
        joints = session.process(frame_message(k, i))["joints"]
        if joints is not None:
            j = np.array(joints)
            v = j[MOTION21.index("neck")] - j[MOTION21.index("pelvis")]
            leans.append(np.degrees(np.arccos(v[1] / np.linalg.norm(v))))
    return float(np.median(leans[10:])), session.hello()


def test_stream_levels_a_pitched_camera_with_gravity_or_the_rooms_lines():
    """An upright person seen by a camera pitched 25 deg down and rolled 6 deg: without gravity
    the stream's person leans (by the angle of the ray to them: about 11 deg here); with the
    client's gravity (a phone's motion sensor) or the room's vertical lines in one of its images,
    and the focal length (given, or from the lines), they stand upright."""
    from tests.test_fit import look_camera, seen_by
    from tests.test_scene import room_image
    from mocap.detect2d.lines import line_segments

    camera = look_camera(25.0, 1.6, 4.5, roll_deg=6.0)
    k = seen_by(waving_walker(60), camera, 30.0, noise_px=0.5)
    focal = float(camera.K[0, 0])
    level, plain = _stream_lean(k, hello(k))
    gravity = camera.R @ np.array([0.0, -1.0, 0.0])  # the direction things fall, in camera axes
    with_gravity, told = _stream_lean(k, hello(k, gravity=[float(v) for v in 9.81 * gravity], focal_px=focal))
    lines = line_segments(room_image(camera, yaw_deg=25.0)).round(1).tolist()
    with_room, seen = _stream_lean(k, hello(k, scene_lines=lines, focal_px=focal))
    from_lines, guessed = _stream_lean(k, hello(k, scene_lines=lines))  # the focal length from the lines too
    assert plain["gravity_from"] == "none" and "camera_pitch_deg" not in plain
    assert told["gravity_from"] == "client" and seen["gravity_from"] == guessed["gravity_from"] == "scene"
    for reply in (told, seen, guessed):
        assert reply["camera_pitch_deg"] == pytest.approx(25.0, abs=0.5)
        assert reply["camera_roll_deg"] == pytest.approx(6.0, abs=0.5)
    assert level > 8.0  # leaning with the ray
    assert max(with_gravity, with_room, from_lines) < 4.0, (level, with_gravity, with_room, from_lines)
    for bad in ({"gravity": [0, 0, 0]}, {"gravity": [1, 2]}, {"scene_lines": [[1, 2, 3]]},
                {"scene_lines": lines, "focal_px": -3}):
        with pytest.raises(ValueError):
            ss.parse_hello(hello(k, **bad))


def _stream_joints(k, hello_msg: dict) -> np.ndarray:
    """(T, 21, 3) a stream's world joints for keypoints ``k`` (NaN where none came back)."""
    session = ss.StreamSession(ss.parse_hello(hello_msg))
    out = []
    for i in range(k.num_frames):
        joints = session.process(frame_message(k, i))["joints"]
        out.append(np.full((21, 3), np.nan) if joints is None else np.array(joints, dtype=np.float64))
    return np.stack(out)


def test_a_rolled_camera_s_picture_is_stood_upright_for_the_network(monkeypatch):
    """A phone held 30 deg askew, its gravity known: the network gets the picture turned upright
    (it was trained near level), so the stream gives what the same camera held level gives; as
    before (no turn), the person came out otherwise."""
    import mocap.lift.trajectory as trajectory_module
    from tests.test_fit import look_camera, seen_by

    walker = waving_walker(40)
    streams = {}
    for roll in (30.0, 0.0):
        camera = look_camera(25.0, 1.6, 4.5, roll_deg=roll)
        k = seen_by(walker, camera, 30.0, noise_px=0.0)
        gravity = camera.R @ np.array([0.0, -1.0, 0.0])
        streams[roll] = (k, hello(k, gravity=[float(v) for v in gravity], focal_px=float(camera.K[0, 0])))
    rolled, level = (_stream_joints(*streams[r]) for r in (30.0, 0.0))
    assert np.isfinite(level).all()
    np.testing.assert_allclose(rolled, level, atol=2e-3)
    monkeypatch.setattr(trajectory_module, "UPRIGHT_ROLL_DEG", 1e9)  # as before: the rolled picture as it comes
    as_is = _stream_joints(*streams[30.0])
    assert np.nanmax(np.abs(as_is - level)) > 0.02
