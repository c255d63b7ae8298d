"""What the tests of the low-latency service routes share (tests/test_service_realtime.py,
tests/test_service_lift.py): an app with a known API key, and synthetic keypoints of a known
motion, and the module fixtures ``client`` and ``keypoints`` (import them into the test module).
Import after ``pytest.importorskip("fastapi")``."""
from __future__ import annotations

import numpy as np
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from mocap.service.realtime import make_router
from tests.synthetic import synthetic_keypoints, waving_walker

GOOD, SLOW = "good-key", "slow-key"
HEADERS = {"X-API-Key": GOOD}


def verify_key(key: str | None) -> str:
    if not key:
        raise HTTPException(401, "missing API key")
    if key == SLOW:
        raise HTTPException(429, "rate limit exceeded", headers={"Retry-After": "7"})
    if key != GOOD:
        raise HTTPException(403, "invalid API key")
    return "key-1"


def make_app(**kwargs) -> FastAPI:
    app = FastAPI()
    app.include_router(make_router(verify_key, **kwargs))
    return app


def realtime_keypoints():
    """Synthetic MediaPipe keypoints of a known motion, 1 px noise, frame 40 without a person,
    two missing joints in frame 12."""
    k = synthetic_keypoints(waving_walker(90), noise_px=1.0, seed=3)
    kp, conf = k.keypoints.copy(), k.confidence.copy()
    kp[40], conf[40] = np.nan, 0.0
    kp[12, [13, 25]], conf[12, [13, 25]] = np.nan, 0.0
    return type(k)(keypoints=kp, confidence=conf, layout=k.layout, image_size=k.image_size, fps=k.fps)


def lift_body(k) -> dict:
    """A POST /v1/lift JSON body of keypoints ``k`` (missing points as null)."""
    kp = [[None if not np.isfinite(p).all() else [float(p[0]), float(p[1])] for p in frame] for frame in k.keypoints]
    return {"layout": k.layout, "fps": k.fps, "image_size": list(k.image_size), "keypoints": kp,
            "confidence": k.confidence.tolist()}


@pytest.fixture(scope="module")
def client():
    """A test client of :func:`make_app` (at most 500 frames a lift), for a module's tests."""
    with TestClient(make_app(max_frames=500)) as c:
        yield c


@pytest.fixture(scope="module")
def keypoints():
    """:func:`realtime_keypoints`, once per module."""
    return realtime_keypoints()
