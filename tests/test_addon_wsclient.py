"""The add-on's standard-library WebSocket client against a real server (the websockets package)."""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import pytest

websockets_sync = pytest.importorskip("websockets.sync.server")

_spec = importlib.util.spec_from_file_location(
    "mocap_lift_wsclient", Path(__file__).parents[1] / "blender_addon" / "mocap_lift" / "wsclient.py")
ws = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ws)


def _handler(conn):
    if conn.request.headers.get("X-API-Key") != "good":
        conn.close(1008, "bad key")
        return
    for message in conn:
        if message == "ping-me":
            conn.ping()
            conn.send("after ping")
        elif message == "bye":
            conn.close(1000, "done")
            return
        else:
            conn.send(message[::-1])


@pytest.fixture(scope="module")
def server():
    srv = websockets_sync.serve(_handler, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{srv.socket.getsockname()[1]}/v1/stream"
    srv.shutdown()


def test_round_trip_sizes_ping_and_close(server):
    conn = ws.connect(server, headers={"X-API-Key": "good"})
    for n in (0, 1, 125, 126, 65535, 65536, 200_000):  # every length encoding
        text = "".join(chr(97 + i % 26) for i in range(n)) + "é"
        conn.send_text(text)
        assert conn.recv_text() == text[::-1]
    conn.send_text("ping-me")
    assert conn.recv_text() == "after ping"  # the ping was answered with a pong in between
    conn.send_text("bye")
    with pytest.raises(ws.WebSocketClosed) as e:
        conn.recv_text()
    assert e.value.code == 1000 and e.value.reason == "done"
    conn.close()


def test_refusals_are_plain_messages(server):
    conn = ws.connect(server, headers={"X-API-Key": "bad"})
    with pytest.raises(ws.WebSocketClosed) as e:
        conn.recv_text()
    assert e.value.code == 1008 and "bad key" in str(e.value)
    with pytest.raises(ws.WebSocketError, match="cannot reach"):
        ws.connect("ws://127.0.0.1:9/x", timeout_s=1)
    with pytest.raises(ws.WebSocketError, match="not a WebSocket URL"):
        ws.connect("http://127.0.0.1/x")
