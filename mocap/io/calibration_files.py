"""Camera-set files: our TOML (Pose2Sim/anipose compatible), Qualisys, OpenCV YAML.

Our camera-set TOML is the layout Pose2Sim and anipose use, so their files load here and
ours load there::

    [cam_0]
    name = "cam01"
    size = [1088, 1920]                 # (width, height) pixels
    matrix = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]
    distortions = [k1, k2, p1, p2, k3]  # OpenCV order; 4 values (Pose2Sim) also read
    rotation = [rx, ry, rz]             # world -> camera, axis-angle (Rodrigues), radians
    translation = [tx, ty, tz]          # world -> camera, metres
    fisheye = false

    [metadata]
    units = "m"

Everything inside is metres; a file whose ``[metadata] units`` says ``mm`` or ``cm``
(anipose boards measured in millimetres) is converted once on reading.
"""
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Sequence

import numpy as np

from mocap.camera import Camera, load_qualisys
from mocap.errors import MocapError
from mocap.formats import MAX_IMAGE_SIDE, atomic_path

_UNITS = {"m": 1.0, "metres": 1.0, "meters": 1.0, "cm": 0.01, "mm": 0.001}


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle (radians) -> (..., 3, 3) rotation matrices (Rodrigues)."""
    from scipy.spatial.transform import Rotation

    rotvec = np.asarray(rotvec, dtype=np.float64)
    return Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(rotvec.shape[:-1] + (3, 3))


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle, radians."""
    from scipy.spatial.transform import Rotation

    matrix = np.asarray(matrix, dtype=np.float64)
    return Rotation.from_matrix(matrix.reshape(-1, 3, 3)).as_rotvec().reshape(matrix.shape[:-2] + (3,))


def _dist5(values: Sequence[float], where: str) -> np.ndarray:
    d = np.asarray(values, dtype=np.float64).reshape(-1)
    if d.size not in (4, 5, 8, 12, 14):
        raise MocapError(f"{where}: expected 4 or 5 distortion coefficients (k1, k2, p1, p2[, k3]), got {d.size}")
    if d.size > 5 and np.any(d[5:] != 0):
        raise MocapError(f"{where}: the rational/thin-prism distortion terms are not supported; "
                         "recalibrate with the 5-coefficient OpenCV model")
    return np.concatenate([d[:5], np.zeros(5 - min(d.size, 5))])


def _check_camera(cam: Camera, where: str) -> Camera:
    k, r, t = cam.K, cam.R, cam.t
    if k.shape != (3, 3) or r.shape != (3, 3) or t.shape != (3,):
        raise MocapError(f"{where}: matrix must be 3x3, rotation 3 values or 3x3, translation 3 values")
    if not (np.isfinite(k).all() and np.isfinite(r).all() and np.isfinite(t).all()):
        raise MocapError(f"{where}: non-finite values in the camera")
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise MocapError(f"{where}: focal lengths must be positive, got {k[0, 0]}, {k[1, 1]}")
    if abs(np.linalg.det(r) - 1.0) > 1e-3 or np.abs(r @ r.T - np.eye(3)).max() > 1e-3:
        raise MocapError(f"{where}: the rotation is not a rotation (determinant {np.linalg.det(r):.4f}, "
                         f"or its rows are not orthonormal)")
    if np.shape(cam.dist) != (5,) or not np.isfinite(cam.dist).all():
        raise MocapError(f"{where}: distortion must be 5 finite numbers (k1, k2, p1, p2, k3)")
    if len(cam.size) != 2 or not all(0 < v <= MAX_IMAGE_SIDE for v in cam.size):
        raise MocapError(f"{where}: size must be [width, height] in pixels, each in [1, {MAX_IMAGE_SIDE}], "
                         f"got {str(cam.size)[:60]}")
    return cam


# --- TOML -----------------------------------------------------------------------------------
def _fmt(x) -> str:
    if isinstance(x, str):
        return '"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    return "[" + ", ".join(_fmt(v) for v in x) + "]"


def save_cameras_toml(path: str | os.PathLike, cameras: Sequence[Camera], *, metadata: dict | None = None) -> None:
    """Write ``cameras`` to a camera-set TOML (see the module docstring), atomically.

    Args:
        cameras: C cameras; translations in metres.
        metadata: extra ``[metadata]`` keys (str, int, float, bool or lists of them).
    """
    lines = []
    for i, cam in enumerate(cameras):
        lines += [f"[cam_{i}]", f"name = {_fmt(cam.name)}", f"size = {_fmt([int(s) for s in cam.size])}",
                  f"matrix = {_fmt(np.asarray(cam.K).tolist())}",
                  f"distortions = {_fmt(np.asarray(cam.dist).tolist())}",
                  f"rotation = {_fmt(matrix_to_rotvec(cam.R).tolist())}",
                  f"translation = {_fmt(np.asarray(cam.t).tolist())}", "fisheye = false", ""]
    meta = {"units": "m", "written_by": "mocap-lift"} | dict(metadata or {})
    lines += ["[metadata]"] + [f"{k} = {_fmt(v)}" for k, v in meta.items()]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def load_cameras_toml(path: str | os.PathLike) -> list[Camera]:
    """Cameras of a camera-set TOML (ours, Pose2Sim's or anipose's); MocapError if malformed."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise MocapError(f"{path} is not a readable TOML calibration ({e})") from None
    meta = data.get("metadata", {})
    unit = str(meta.get("units", "m")).lower() if isinstance(meta, dict) else "m"
    if unit not in _UNITS:
        raise MocapError(f"{path}: unknown units {unit!r} in [metadata]; use one of {', '.join(_UNITS)}")
    scale = _UNITS[unit]
    cameras = []
    for key, sec in data.items():
        if key == "metadata" or not isinstance(sec, dict):
            continue
        where = f"{path} [{key}]"
        try:
            if sec.get("fisheye", False):
                raise MocapError(f"{where}: fisheye cameras are not supported; recalibrate with the pinhole model")
            rot = np.asarray(sec["rotation"], dtype=np.float64)
            r = rotvec_to_matrix(rot.reshape(3)) if rot.size == 3 else rot.reshape(3, 3)
            size = tuple(int(round(float(v))) for v in sec["size"])
            cam = Camera(name=str(sec.get("name", key)), size=size,  # type: ignore[arg-type]
                         K=np.asarray(sec["matrix"], dtype=np.float64).reshape(3, 3), R=r,
                         t=np.asarray(sec["translation"], dtype=np.float64).reshape(3) * scale,
                         dist=_dist5(sec.get("distortions", [0.0] * 5), where))
        except KeyError as e:
            raise MocapError(f"{where}: missing key {e.args[0]!r} "
                             "(needs name, size, matrix, rotation, translation)") from None
        except (TypeError, ValueError) as e:
            raise MocapError(f"{where}: malformed camera ({e})") from None
        cameras.append(_check_camera(cam, where))
    if not cameras:
        raise MocapError(f"{path} holds no cameras (expected [cam_1], [cam_2], ... sections)")
    return cameras


# --- OpenCV YAML / XML ------------------------------------------------------------------------
def _fs_mat(fs, key: str):
    node = fs.getNode(key)
    if node.empty():
        return None
    if node.isSeq():
        return np.array([node.at(i).real() for i in range(node.size())], dtype=np.float64)
    if node.isReal() or node.isInt():
        return np.array(node.real())
    m = node.mat()
    return None if m is None else np.asarray(m, dtype=np.float64)


def _fs_names(fs) -> list[str]:
    node = fs.getNode("names")
    if node.empty():
        return []
    return [node.at(i).string() for i in range(node.size())]


#: largest OpenCV calibration file read, bytes (one camera takes well under 1 kB)
_MAX_OPENCV_BYTES = 1 << 20
_MATRIX_SIZE = re.compile(r"(?:\b(rows|cols)\s*:\s*|<(rows|cols)>\s*)([^\s<,}]*)")


def _check_opencv_sizes(path: Path) -> None:
    """MocapError if the file is large or declares a matrix larger than 64 x 64: OpenCV's
    parser allocates what ``rows`` and ``cols`` declare (a mangled value asked for 32 GB)."""
    if path.stat().st_size > _MAX_OPENCV_BYTES:
        raise MocapError(f"{path} is {path.stat().st_size} bytes; a camera calibration is a few kB")
    text = path.read_text(encoding="utf-8", errors="replace")
    for m in _MATRIX_SIZE.finditer(text):
        value = m.group(3)
        if not (value.isdigit() and int(value) <= 64):
            raise MocapError(f"{path}: a matrix declares {m.group(1) or m.group(2)} {value[:20]!r}; "
                             f"calibration matrices are at most 64 x 64")


def load_opencv_yaml(path: str | os.PathLike, extrinsics: str | os.PathLike | None = None) -> list[Camera]:
    """Cameras of OpenCV ``FileStorage`` files (YAML or XML).

    Two layouts are read: the multi-camera one (``names: [...]`` with ``K_<name>``,
    ``dist_<name>``, ``R_<name>`` (3x1 Rodrigues) or ``Rot_<name>`` (3x3), ``T_<name>``
    metres, optional ``size_<name>`` or ``image_width``/``image_height``), intrinsics and
    extrinsics in one file or in two (``extrinsics``); and the single-camera output of
    OpenCV's calibration sample (``camera_matrix``, ``distortion_coefficients``,
    ``image_width``, ``image_height``; optional ``rvec``/``tvec``), which gives one camera.
    """
    import cv2

    files = [Path(path)] + ([Path(extrinsics)] if extrinsics is not None else [])
    stores = []
    for p in files:
        if not p.is_file():
            raise MocapError(f"calibration file not found: {p}")
        _check_opencv_sizes(p)
        try:
            fs = cv2.FileStorage(str(p), cv2.FILE_STORAGE_READ)
        except (cv2.error, SystemError) as e:  # OpenCV raises from its parser on malformed text
            raise MocapError(f"{p} is not a readable OpenCV YAML/XML calibration ({str(e).strip()[:120]})") from None
        if not fs.isOpened():
            raise MocapError(f"{p} is not a readable OpenCV YAML/XML calibration")
        stores.append(fs)

    def get(key):
        for fs in stores:
            v = _fs_mat(fs, key)
            if v is not None:
                return v
        return None

    def size_of(name):
        s = get(f"size_{name}") if name else None
        if s is not None:
            return tuple(int(v) for v in np.asarray(s).reshape(-1)[:2])
        w, h = get("image_width"), get("image_height")
        if w is None or h is None:
            raise MocapError(f"{path}: no image size for camera {name or 0} (size_<name> or image_width/image_height)")
        return int(w), int(h)

    cameras = []
    try:
        names = next((n for n in (_fs_names(fs) for fs in stores) if n), [])
        if names:
            for name in names:
                k = get(f"K_{name}")
                if k is None:
                    raise MocapError(f"{path}: no K_{name} for camera {name}")
                rot = get(f"Rot_{name}")
                rvec = get(f"R_{name}")
                r = rot.reshape(3, 3) if rot is not None else (
                    rotvec_to_matrix(rvec.reshape(3)) if rvec is not None and rvec.size == 3 else
                    rvec.reshape(3, 3) if rvec is not None else np.eye(3))
                t = get(f"T_{name}")
                dist = get(f"dist_{name}")
                cameras.append(_check_camera(Camera(
                    name=name, size=size_of(name), K=k.reshape(3, 3), R=r,
                    t=np.zeros(3) if t is None else t.reshape(3),
                    dist=np.zeros(5) if dist is None else _dist5(dist, f"{path} dist_{name}")),
                    f"{path} camera {name}"))
        else:
            k = get("camera_matrix")
            if k is None:
                raise MocapError(f"{path}: neither 'names' (multi-camera) nor 'camera_matrix' (single camera) found")
            dist = get("distortion_coefficients")
            rvec, tvec = get("rvec"), get("tvec")
            cameras.append(_check_camera(Camera(
                name=Path(path).stem, size=size_of(""), K=k.reshape(3, 3),
                R=np.eye(3) if rvec is None else rotvec_to_matrix(rvec.reshape(3)),
                t=np.zeros(3) if tvec is None else tvec.reshape(3),
                dist=np.zeros(5) if dist is None else _dist5(dist, f"{path} distortion_coefficients")), str(path)))
    except (ValueError, AttributeError, TypeError, OverflowError, cv2.error) as e:
        raise MocapError(f"{path}: malformed OpenCV calibration ({str(e).strip()[:160]})") from None
    finally:
        for fs in stores:
            fs.release()
    return cameras


def save_opencv_yaml(path: str | os.PathLike, cameras: Sequence[Camera]) -> None:
    """Write ``cameras`` in the multi-camera OpenCV YAML layout :func:`load_opencv_yaml` reads."""
    import cv2

    with atomic_path(path, suffix=".yml") as tmp:
        fs = cv2.FileStorage(str(tmp), cv2.FILE_STORAGE_WRITE)
        fs.startWriteStruct("names", cv2.FILE_NODE_SEQ)
        for cam in cameras:
            fs.write("", cam.name)
        fs.endWriteStruct()
        for cam in cameras:
            fs.write(f"K_{cam.name}", np.asarray(cam.K, np.float64))
            fs.write(f"dist_{cam.name}", np.asarray(cam.dist, np.float64).reshape(1, 5))
            fs.write(f"Rot_{cam.name}", np.asarray(cam.R, np.float64))
            fs.write(f"T_{cam.name}", np.asarray(cam.t, np.float64).reshape(3, 1))
            fs.write(f"size_{cam.name}", np.asarray(cam.size, np.float64).reshape(1, 2))
        fs.release()


# --- any file ----------------------------------------------------------------------------------
def _checked_qualisys(path: Path) -> list[Camera]:
    return [_check_camera(c, f"{path} camera {c.name}") for c in load_qualisys(path)]


def load_calibration(path: str | os.PathLike) -> list[Camera]:
    """Cameras from any supported calibration file, chosen by its name and content.

    ``.toml`` (ours, Pose2Sim, anipose), ``.qca.txt`` / Qualisys XML, ``.yml``/``.yaml``/
    ``.xml`` (OpenCV ``FileStorage``). MocapError if missing, unknown or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise MocapError(f"calibration file not found: {path}")
    name = path.name.lower()
    if name.endswith(".toml"):
        return load_cameras_toml(path)
    if name.endswith(".qca.txt") or name.endswith(".qca"):
        return _checked_qualisys(path)
    if name.endswith((".yml", ".yaml")):
        return load_opencv_yaml(path)
    if name.endswith(".xml") or name.endswith(".txt"):
        head = path.read_text(errors="replace")[:2000]
        if "<calibration" in head:
            return _checked_qualisys(path)
        if "opencv_storage" in head:
            return load_opencv_yaml(path)
    raise MocapError(f"{path}: unknown calibration format; use a camera-set .toml (Pose2Sim/anipose layout), "
                     "a Qualisys .qca.txt or an OpenCV .yml")
