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
