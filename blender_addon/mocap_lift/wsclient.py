# SPDX-License-Identifier: GPL-3.0-or-later
"""A small WebSocket client (RFC 6455) on the standard library only.

Blender's Python has no websocket package, and the add-on must not depend on one, so the
Live panel talks to the service's ``/v1/stream`` with this: text frames in and out,
client-side masking, ping answered with pong, close handshake, fragmented messages
reassembled. No extensions (no compression); ``ws://`` and ``wss://``.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import threading
import urllib.parse

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocketError(Exception):
    """The connection failed or was refused; the message says why in plain words."""


class WebSocketClosed(WebSocketError):
    """The server closed the connection (``code`` and ``reason`` from its close frame)."""

    def __init__(self, code: int | None, reason: str):
        super().__init__(f"the service closed the stream ({code}: {reason})" if code else "the service closed the stream")
        self.code, self.reason = code, reason


class WebSocket:
    """One client connection; use :func:`connect`."""

    def __init__(self, sock: socket.socket, leftover: bytes = b""):
        self.sock = sock
        self._buf = bytearray(leftover)
        self.closed = False
        self._send_lock = threading.Lock()  # a reader thread answers pings while another thread sends

    # --- sending ---------------------------------------------------------------------------
    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header.append(0x80 | 126)
            header += struct.pack("!H", n)
        else:
            header.append(0x80 | 127)
            header += struct.pack("!Q", n)
        mask = os.urandom(4)
        header += mask
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 512 else _mask_fast(payload, mask)
        with self._send_lock:
            self.sock.sendall(bytes(header) + masked)

    def send_text(self, text: str) -> None:
        if self.closed:
            raise WebSocketClosed(None, "already closed")
        self._send_frame(OP_TEXT, text.encode("utf-8"))

    # --- receiving -------------------------------------------------------------------------
    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                self.closed = True
                raise WebSocketClosed(None, "connection lost")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _read_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read_exact(2)
        fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        mask = self._read_exact(4) if masked else None
        payload = self._read_exact(n)
        if mask:
            payload = _mask_fast(payload, mask)
        return fin, opcode, payload

    def recv_text(self) -> str:
        """The next text message (blocks; the socket's timeout applies)."""
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_PING:
                self._send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                if not self.closed:
                    try:
                        self._send_frame(OP_CLOSE, payload[:2])
                    except OSError:
                        pass
                self.closed = True
                try:
                    self.sock.close()
                except OSError:
                    pass
                raise WebSocketClosed(code, reason)
            parts.append(payload)
            if fin:
                return b"".join(parts).decode("utf-8")

    def close(self, code: int = 1000) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._send_frame(OP_CLOSE, struct.pack("!H", code))
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass


def _mask_fast(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def connect(url: str, *, headers: dict[str, str] | None = None, timeout_s: float = 5.0) -> WebSocket:
    """Open ``ws://host:port/path?query`` (or ``wss://``) and do the opening handshake.

    Raises WebSocketError with a plain message when the server is down, the URL is wrong or
    the server refuses the upgrade (its HTTP status and body are quoted).
    """
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("ws", "wss") or not u.hostname:
        raise WebSocketError(f"not a WebSocket URL: {url!r} (expected ws://host:port/path)")
    port = u.port or (443 if u.scheme == "wss" else 80)
    try:
        sock = socket.create_connection((u.hostname, port), timeout=timeout_s)
    except OSError as e:
        raise WebSocketError(f"cannot reach the service at {u.hostname}:{port} ({e.strerror or e})") from None
    if u.scheme == "wss":
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=u.hostname)
    key = base64.b64encode(os.urandom(16)).decode()
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {u.hostname}:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            if len(data) > 65536:
                break
    except OSError as e:
        sock.close()
        raise WebSocketError(f"the service did not answer the handshake ({e})") from None
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if " 101 " not in status_line + " ":
        sock.close()
        body = rest[:300].decode("utf-8", "replace").strip()
        raise WebSocketError(f"the service refused the stream: {status_line.strip()} {body}".strip())
    accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
    if fields.get("sec-websocket-accept") != accept:
        sock.close()
        raise WebSocketError("the server's handshake is not a valid WebSocket upgrade")
    return WebSocket(sock, rest)
