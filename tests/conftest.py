"""Shared test helpers: where the shared real data lives, and skip markers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MOCAP_SHARED_DATA", REPO.parent / "shared" / "data"))
EXAMPLE_VIDEO = REPO / "examples" / "balance_cam01.mp4"


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with the reason if it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the shared data at {p} (absent on this machine)")
    return p
