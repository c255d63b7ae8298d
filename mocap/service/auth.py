"""API keys: creation, verification and a per-key rate limit.

A key reads ``mk_<key id>_<secret>``: the key id (12 hex digits) is public and names the
row; the secret (43 URL-safe characters, 256 random bits) is stored only as a salted
scrypt hash. Verification compares hashes with :func:`hmac.compare_digest`. Since scrypt
costs ~40 ms, a key that verified once is remembered in memory as a SHA-256 digest for
later requests (the revoked flag is still read from the database every time).

Clients send the key in the ``X-API-Key`` header or as ``Authorization: Bearer <key>``.
Errors: 401 without a key, 403 for a wrong or revoked key, 429 when the key's token
bucket (``rate_limit_per_minute`` requests a minute, bursts up to the same number) is
empty, with a ``Retry-After`` header in seconds.

Wrong keys are limited per client address by :class:`FailedAuthGate` (ASGI middleware):
after ``per_minute`` refused keys (403) in a burst, that address gets 429 at once, before
any hash is computed, until its budget refills (``per_minute`` a minute); a key that has
verified before still passes. Behind a proxy every client shares the proxy's address.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
import threading
import time
from typing import Mapping

from mocap.service.store import Store

_KEY = re.compile(r"mk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}


def _http_error(status: int, message: str, headers: dict[str, str] | None = None) -> Exception:
    from fastapi import HTTPException

    return HTTPException(status_code=status, detail=message, headers=headers)


def hash_secret(secret: str, salt: bytes) -> bytes:
    """scrypt(secret, salt) with n = 2^14, r = 8, p = 1 (32 bytes)."""
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


def create_key(store: Store, name: str) -> str:
    """Make a new API key called ``name``; return the plaintext key (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValueError("a key name must be 1 to 100 characters (e.g. the user or machine it is for)")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = os.urandom(16)
    store.add_key(key_id, name, salt=salt, hash=hash_secret(secret, salt))
    return f"mk_{key_id}_{secret}"


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer ...``; None if neither is there."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, value = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


class TokenBucket:
    """Per-key token buckets: ``per_minute`` requests a minute on average, bursts up to ``per_minute``."""

    def __init__(self, per_minute: float) -> None:
        self.capacity = float(per_minute)
        self.rate = float(per_minute) / 60.0  # tokens per second
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, time)
        self._lock = threading.Lock()

    def peek(self, key_id: str, now: float | None = None) -> float:
        """0.0 if a token is available now, else the seconds until one is (nothing is taken)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def prune(self, now: float | None = None) -> None:
        """Forget buckets that have refilled (they equal a new one)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._buckets = {k: (t, last) for k, (t, last) in self._buckets.items()
                             if t + (now - last) * self.rate < self.capacity}

    def take(self, key_id: str, now: float | None = None) -> float:
        """Take one token; 0.0 if allowed, else the seconds until a token is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / self.rate


class KeyVerifier:
    """``verify(key) -> key id``, raising fastapi.HTTPException 401 / 403 / 429.

    ``rate_limit_per_minute`` <= 0 turns the rate limit off.
    """

    def __init__(self, store: Store, *, rate_limit_per_minute: float = 600) -> None:
        self.store = store
        self.limiter = TokenBucket(rate_limit_per_minute) if rate_limit_per_minute > 0 else None
        self._verified: dict[str, bytes] = {}  # key id -> sha256(secret) of a key that passed scrypt
        self._lock = threading.Lock()

    def __call__(self, key: str | None) -> str:
        if not key:
            raise _http_error(401, "missing API key: send it in the X-API-Key header "
                                   "(create one with: mocap serve keys create NAME)", {"WWW-Authenticate": "Bearer"})
        match = _KEY.fullmatch(key)
        record = self.store.get_key(match.group(1)) if match else None
        if record is None or record.revoked is not None or not self._secret_ok(record.id, match.group(2),
                                                                                 record.salt, record.hash):
            raise _http_error(403, "invalid or revoked API key")
        if self.limiter is not None:
            wait = self.limiter.take(record.id)
            if wait > 0:
                raise _http_error(429, f"rate limit exceeded ({self.limiter.capacity:g} requests a minute); "
                                       f"retry in {math.ceil(wait)} s", {"Retry-After": str(math.ceil(wait))})
        return record.id

    def known(self, key: str | None) -> bool:
        """True if ``key`` verified before (a dictionary look-up and one SHA-256, no scrypt)."""
        match = _KEY.fullmatch(key or "")
        if match is None:
            return False
        with self._lock:
            digest = self._verified.get(match.group(1))
        return digest is not None and hmac.compare_digest(digest, hashlib.sha256(match.group(2).encode()).digest())

    def _secret_ok(self, key_id: str, secret: str, salt: bytes, stored: bytes) -> bool:
        digest = hashlib.sha256(secret.encode()).digest()
        with self._lock:
            known = self._verified.get(key_id)
        if known is not None and hmac.compare_digest(known, digest):
            return True
        if not hmac.compare_digest(hash_secret(secret, salt), stored):
            return False
        with self._lock:
            self._verified[key_id] = digest
        return True


def _scope_key(scope) -> str | None:
    """The API key of an ASGI request: headers, else a ``?key=`` query parameter (WebSockets)."""
    from urllib.parse import parse_qs

    headers = {k.decode("latin1").lower(): v.decode("latin1") for k, v in scope.get("headers", ())}
    key = key_from_headers(headers)
    if key is None and scope["type"] == "websocket":
        key = (parse_qs(scope.get("query_string", b"").decode("latin1")).get("key") or [None])[0]
    return key


class FailedAuthGate:
    """ASGI middleware limiting refused keys per client address (see the module docstring).

    Args:
        app: the ASGI application.
        verifier: the service's :class:`KeyVerifier` (keys it knows pass a blocked address).
        per_minute: refused keys an address may send a minute (also the burst); <= 0: no limit.
    """

    def __init__(self, app, *, verifier: KeyVerifier, per_minute: float = 20.0) -> None:
        self.app = app
        self.verifier = verifier
        self.failures = TokenBucket(per_minute) if per_minute > 0 else None
        self._checked = 0

    async def __call__(self, scope, receive, send) -> None:
        if self.failures is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        address = (scope.get("client") or ("unknown",))[0]
        wait = self.failures.peek(address)
        if wait > 0 and not self.verifier.known(_scope_key(scope)):
            await self._refuse(scope, receive, send, math.ceil(wait))
            return
        self._checked += 1
        if self._checked % 1024 == 0:
            self.failures.prune()

        async def watch(message) -> None:  # a 403 reply (or a 1008 close "403: ...") costs a token
            refused = (message["type"] == "http.response.start" and message.get("status") == 403) or (
                message["type"] == "websocket.close" and message.get("code") == 1008
                and str(message.get("reason") or "").startswith("403"))
            if refused:
                self.failures.take(address)
            await send(message)

        await self.app(scope, receive, watch)

    async def _refuse(self, scope, receive, send, retry_after: int) -> None:
        message = (f"too many refused API keys from this address; retry in {retry_after} s")
        if scope["type"] == "http":
            body = ('{"error": "%s"}' % message).encode()
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode())]})
            await send({"type": "http.response.body", "body": body})
        else:  # the stream's protocol: accept, then close 1008 with the reason
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": 1008, "reason": f"429: {message}"})
