"""The live stream's messages from the client (:mod:`mocap.service.realtime`'s protocol): the
hello (:class:`StreamConfig`, :func:`parse_hello`) and each frame (:class:`Frame`,
:func:`parse_frame`), checked with errors that say what is wrong."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mocap.detect2d.estimators.face_torch import NUM_FACE_POINTS
from mocap.service.stream_gravity import hello_gravity
from mocap.skeletons import HAND21, get_layout

#: keypoint layouts the network reads
STREAM_LAYOUTS = ("mediapipe33", "coco17")
_MAX_COORD = 1e6  # |pixel| above this is surely a unit mistake
_MAX_HAND_M = 10.0  # |hand world landmark| above this (metres) is surely a unit mistake
HAND_POINTS = 2 * HAND21.num_joints  # the hands42 layout: left hand, then right
FACE_POINTS = NUM_FACE_POINTS  # face478: MediaPipe's face mesh (468) and the irises (10)


@dataclass(frozen=True)
class Smoothing:
    """One-Euro parameters (see :class:`mocap.cleanup.filters.OneEuroFilter`): Hz, Hz per (m/s), Hz."""

    min_cutoff: float = 1.0
    beta: float = 1.0
    d_cutoff: float = 1.0


@dataclass(frozen=True)
class StreamConfig:
    """What a client states in its ``hello``; the fields mirror the protocol's keys.

    Args:
        layout: ``"mediapipe33"`` (J = 33) or ``"coco17"`` (J = 17).
        image_size: (width, height) pixels of the camera image.
        fps: the client's frame rate in Hz (the One-Euro filter's sampling rate).
        coords: ``"pixels"``, or ``"normalized"`` (x / width, y / height in [0, 1], as
            MediaPipe reports), scaled here by ``image_size``.
        smoothing: One-Euro parameters, or None for the raw network output.
        decimals: digits kept after the point in replies (6: 1 micrometre), None for all.
        up: gravity's up in camera axes (x right, y down, z forward), unit; None: the camera
            is taken as level. gravity_from: where it came from (``"client"``, ``"scene"``,
            ``"none"``). focal_px: the camera's focal length (default: a 55 degree field of view).
        resolve_swaps: undo the client detector's left/right swaps as they happen
            (:class:`mocap.detect2d.swaps.SwapFilter`, the upper and lower body each on its own).
    """

    layout: str = "mediapipe33"
    image_size: tuple[int, int] = (1280, 720)
    fps: float = 30.0
    coords: str = "pixels"
    smoothing: Smoothing | None = Smoothing()
    decimals: int | None = 6
    up: tuple[float, float, float] | None = None
    gravity_from: str = "none"
    focal_px: float | None = None
    resolve_swaps: bool = True

    def __post_init__(self) -> None:
        if self.layout not in STREAM_LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; use one of {', '.join(STREAM_LAYOUTS)}")
        size = tuple(self.image_size)
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and 0 < v <= 100_000 for v in size):
            raise ValueError(f"image_size must be [width, height] in whole pixels > 0, got {list(size)}")
        object.__setattr__(self, "image_size", (int(size[0]), int(size[1])))
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and 0 < self.fps <= 1000):
            raise ValueError(f"fps must be a number in (0, 1000], got {self.fps!r}")
        if self.coords not in ("pixels", "normalized"):
            raise ValueError(f"coords must be 'pixels' or 'normalized', got {self.coords!r}")
        if self.decimals is not None and not (isinstance(self.decimals, int) and 0 <= self.decimals <= 17):
            raise ValueError(f"decimals must be a whole number in [0, 17] or null, got {self.decimals!r}")
        if self.up is not None:
            v = np.asarray(self.up, dtype=np.float64)
            if v.shape != (3,) or not np.isfinite(v).all() or np.linalg.norm(v) < 1e-9:
                raise ValueError(f"up must be 3 finite numbers, not all 0, got {list(np.ravel(v))[:4]}")
            object.__setattr__(self, "up", tuple(float(x) for x in v / np.linalg.norm(v)))

    @property
    def num_joints(self) -> int:
        return get_layout(self.layout).num_joints


def _number(msg: dict, key: str, default: float | None) -> float | None:
    """msg[key] as a float (default if absent); None stays None; ValueError for anything else."""
    value = msg.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key!r} must be a number, got {str(value)[:40]}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float range (10**309)
        raise ValueError(f"{key!r} is out of range, got {str(value)[:40]}...") from None


def parse_hello(msg: dict) -> StreamConfig:
    """The ``hello`` message (a dict from JSON) -> StreamConfig; ValueError saying what is wrong."""
    if not isinstance(msg, dict) or msg.get("type") != "hello":
        raise ValueError('the first message must be {"type": "hello", "layout": ..., "image_size": [w, h]}')
    unknown = set(msg) - {"type", "layout", "image_size", "fps", "coords", "smoothing", "decimals", "protocol",
                          "gravity", "scene_lines", "focal_px", "resolve_swaps"}
    if unknown:
        raise ValueError(f"unknown hello keys: {', '.join(sorted(unknown))}")
    size = msg.get("image_size")
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)):
        raise ValueError(f"hello needs image_size as [width, height] whole pixels, got {size!r}")
    smoothing = msg.get("smoothing", {})
    if smoothing is not None:
        keys = ("min_cutoff", "beta", "d_cutoff")
        if not isinstance(smoothing, dict) or set(smoothing) - set(keys):
            raise ValueError('smoothing must be null or {"min_cutoff": Hz, "beta": Hz per m/s, "d_cutoff": Hz}')
        values = {k: _number(smoothing, k, getattr(Smoothing, k)) for k in keys}
        if not all(v is not None and math.isfinite(v) for v in values.values()) or not (
                values["min_cutoff"] > 0 and values["d_cutoff"] > 0 and values["beta"] >= 0):
            raise ValueError(f"smoothing out of range: cutoffs must be > 0 Hz and beta >= 0, got {values}")
        smoothing = Smoothing(**values)
    decimals = msg.get("decimals", StreamConfig.decimals)
    if isinstance(decimals, bool) or (decimals is not None and not isinstance(decimals, int)):
        raise ValueError(f"decimals must be a whole number or null, got {decimals!r}")
    coords = msg.get("coords", "pixels")
    resolve = msg.get("resolve_swaps", True)
    if not isinstance(resolve, bool):
        raise ValueError(f"resolve_swaps must be true or false, got {str(resolve)[:40]}")
    up, source, focal = hello_gravity(msg, (size[0], size[1]), str(coords))
    return StreamConfig(layout=str(msg.get("layout", "mediapipe33")), image_size=(size[0], size[1]),
                        fps=_number(msg, "fps", 30.0), coords=str(coords), smoothing=smoothing, decimals=decimals,
                        up=up, gravity_from=source, focal_px=focal, resolve_swaps=resolve)


@dataclass(frozen=True)
class Frame:
    """One parsed input frame: keypoints (J, 2) pixels (NaN missing), confidence (J,) in [0, 1];
    the hands when the client sent them (``hands42``, left hand then right): hand_keypoints
    (42, 2) pixels (NaN missing), hand_confidence (42,), hand_world (42, 3) metres or None;
    the face when sent: face_points (478, 3) x, y, z pixels (``face478``; NaN missing) or None."""

    index: int | None
    t: float | None
    keypoints: np.ndarray
    confidence: np.ndarray
    hand_keypoints: np.ndarray | None = None
    hand_confidence: np.ndarray | None = None
    hand_world: np.ndarray | None = None
    face_points: np.ndarray | None = None


def _points(value, num_joints: int, what: str, dims: int = 2) -> np.ndarray:
    """JSON (J, dims) list with nulls -> (J, dims) float64, NaN for null; ValueError on a bad shape."""
    names = "[x, y]" if dims == 2 else "[x, y, z]"
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        arr = None
    if arr is None or arr.shape != (num_joints, dims):  # nulls for whole points, or a bad shape
        if not isinstance(value, list) or len(value) != num_joints:
            raise ValueError(f"{what} must have shape ({num_joints}, {dims}): a list of {num_joints} {names} "
                             "points, null for a missing one")
        arr = np.full((num_joints, dims), np.nan)
        for j, p in enumerate(value):
            if p is None:
                continue
            try:
                point = np.array(p, dtype=np.float64)
                if point.shape != (dims,):
                    raise ValueError(point.shape)
                arr[j] = point
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"{what}[{j}] must be {names} numbers or null, got {str(p)[:80]}") from None
    return arr


def _confidence(value, present: np.ndarray, what: str) -> np.ndarray:
    """JSON list of J numbers in [0, 1] (null: 0), or None (1 for each present point) -> (J,) float64,
    0 where the point is missing; ValueError saying what is wrong."""
    j = len(present)
    if value is None:
        return present.astype(np.float64)
    try:
        conf = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what} must be a list of {j} numbers in [0, 1] (null: 0)") from None
    if conf.shape != (j,):
        raise ValueError(f"{what} must have {j} entries, got shape {conf.shape}")
    conf[~np.isfinite(conf)] = 0.0
    if conf.min() < 0 or conf.max() > 1:
        raise ValueError(f"{what} values must lie in [0, 1]")
    conf[~present] = 0.0
    return conf


def _hands(msg: dict, config: StreamConfig) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The optional hands of a frame message -> (hand_keypoints (42, 2) pixels, hand_confidence
    (42,), hand_world (42, 3) metres or None), all None when the message has no ``hand_keypoints``."""
    kp_in = msg.get("hand_keypoints")
    if kp_in is None:
        if msg.get("hand_world") is not None or msg.get("hand_confidence") is not None:
            raise ValueError("hand_confidence and hand_world need hand_keypoints (42 [x, y] pixels, hands42)")
        return None, None, None
    kp = _points(kp_in, HAND_POINTS, "hand_keypoints")
    present = np.isfinite(kp).all(-1)
    kp[~present] = np.nan
    if (np.abs(kp) > _MAX_COORD).any():
        raise ValueError(f"hand_keypoints beyond {_MAX_COORD:g} pixels; send pixels (or hello coords 'normalized')")
    if config.coords == "normalized":
        kp *= config.image_size
    world = None
    if msg.get("hand_world") is not None:
        world = _points(msg["hand_world"], HAND_POINTS, "hand_world", dims=3)
        if (np.abs(world) > _MAX_HAND_M).any():
            raise ValueError(f"hand_world beyond {_MAX_HAND_M:g} m; send metres (MediaPipe's hand world landmarks)")
        present &= np.isfinite(world).all(-1)
    conf = _confidence(msg.get("hand_confidence"), present, "hand_confidence")
    kp[conf <= 0] = np.nan
    if world is not None:
        world[conf <= 0] = np.nan
    return kp, conf, world


def _face(msg: dict, config: StreamConfig) -> np.ndarray | None:
    """The optional face of a frame message -> (478, 3) x, y, z pixels (NaN missing), or None
    without ``face_keypoints``."""
    if msg.get("face_keypoints") is None:
        return None
    pts = _points(msg["face_keypoints"], FACE_POINTS, "face_keypoints", dims=3)
    pts[~np.isfinite(pts).all(-1)] = np.nan
    if (np.abs(pts) > _MAX_COORD).any():
        raise ValueError(f"face_keypoints beyond {_MAX_COORD:g} pixels; send pixels (or hello coords 'normalized')")
    if config.coords == "normalized":  # MediaPipe's face z is in the units of x (the image's width)
        pts *= np.array([config.image_size[0], config.image_size[1], config.image_size[0]], np.float64)
    return pts


def parse_frame(msg: dict, config: StreamConfig) -> Frame:
    """A ``frame`` message -> Frame in pixels; ValueError saying what is wrong.

    ``keypoints``: J [x, y] pairs (null, or a null pair, for a missing joint) or null for a
    frame without a person; ``confidence``: J numbers in [0, 1] (null: 0), default 1 for
    every present keypoint; ``frame``: optional whole number echoed back; ``t``: optional
    timestamp echoed back; ``hand_keypoints`` (optional): 42 [x, y] pairs of the ``hands42``
    layout (the person's left hand, then right; null for a missing point), with optional
    ``hand_confidence`` (42 numbers, as ``confidence``) and ``hand_world`` (42 [x, y, z]
    metres: each hand's 3D shape, camera axes, as the hand network gives it);
    ``face_keypoints`` (optional): 478 [x, y, z] face landmarks (MediaPipe's face mesh with
    irises; x, y pixels and z the network's depth in pixels, or all normalised with hello
    coords 'normalized'; null for a missing point).
    """
    j = config.num_joints
    index = msg.get("frame")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or not -2**63 <= index < 2**63):
        raise ValueError(f"'frame' must be a whole number (64 bits), got {str(index)[:40]}")
    t = _number(msg, "t", None)
    t = t if t is not None and math.isfinite(t) else None
    kp_in = msg.get("keypoints")
    if kp_in is None:
        return Frame(index, t, np.full((j, 2), np.nan), np.zeros(j), *_hands(msg, config), _face(msg, config))
    kp = _points(kp_in, j, "keypoints")
    present = np.isfinite(kp).all(-1)
    kp[~present] = np.nan
    if (np.abs(kp) > _MAX_COORD).any():  # (NaN compares False)
        raise ValueError(f"keypoints beyond {_MAX_COORD:g} pixels; send pixels (or hello coords 'normalized')")
    if config.coords == "normalized":
        kp *= config.image_size
    conf = _confidence(msg.get("confidence"), present, f"confidence (layout {config.layout})")
    kp[conf <= 0] = np.nan
    return Frame(index, t, kp, conf, *_hands(msg, config), _face(msg, config))
