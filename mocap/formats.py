"""The project's files: ``keypoints2d.npz``, ``motion.npz`` and ``face.npz`` / ``face.csv``, with validation.

keypoints2d.npz
    ``keypoints`` (T, J, 2) float32 pixels (x right, y down; NaN where missing),
    ``confidence`` (T, J) float32 in [0, 1] (0 where missing), ``layout`` str
    (``"mediapipe33"`` or ``"coco17"``), ``image_size`` (2,) int (width, height),
    ``fps`` float. Optional: ``world_landmarks`` (T, J, 3) float32 metres (MediaPipe's
    own 3D, camera axes: x right, y down, z away from the camera, origin between the hips);
    ``hand_keypoints`` (T, 42, 2) float32 pixels and ``hand_confidence`` (T, 42) float32 in
    [0, 1], the two hands in the ``hands42`` layout (left hand, then right; NaN and 0 where a
    hand is not seen), always together; with them, optionally, ``hand_world`` (T, 42, 3) float32
    metres: the hand network's world landmarks of each hand (its shape, camera axes, origin
    near the hand's centre; NaN where not seen); ``scene_lines`` (N, 4) float32 pixels: straight
    segments (x1, y1, x2, y2) of the static background, people left out, from which the fit
    reads gravity (mocap.fit.scene), in the reference frame's picture when the camera moved;
    ``background_homography`` (T, 3, 3) float64, only where the camera moved during the clip
    (mocap.detect2d.background): per frame, the homography that maps its picture onto the
    reference frame's (the keypoints stay as detected; the lift maps them through it);
    ``picture_box`` (4,) float64 pixels (x0, y0, x1, y1: first and last column and row), only
    where the video's frame has bars round the picture (letterbox, pillarbox): where the picture
    is; the focal length assumed without the room's lines spans the picture, not the frame.
    Readers that do not know an optional array ignore it.

motion.npz
    ``joints`` (T, J, 3) float32 metres, right-handed, +Y up; ``joint_names`` (J,) str;
    ``parents`` (J,) int; ``fps`` float. Once IK has run also ``local_quats_wxyz``
    (T, J, 4) float32, ``root_translation`` (T, 3) float32 metres and ``rest_offsets``
    (J, 3) float32 metres. Where the motion is one person's part of a video: ``start_frame``
    int, the index in the video of its first frame, and ``valid`` (T,) bool, False in frames
    where the person was not seen (gaps filled or held; see docs/formats.md). Files without
    them load with ``start_frame`` 0 and every frame valid. A motion with fingers (the ``motion61``
    skeleton, docs/hands.md) also holds ``hand_valid`` (T, 2) bool: left, right hand seen (else
    its rotations are filled or held).

face.npz
    One person's face: ``keypoints`` (T, 478, 2) float32 pixels (MediaPipe's refined face
    mesh; NaN where the face is not found), ``z`` (T, 478) float32 depth in pixels (away from
    the camera), ``score`` (T,) float32 face presence in [0, 1], ``names`` (K,) str (the
    control names, ARKit's: ``jawOpen`` ...), ``controls`` (T, K) float32 in [0, 1] (NaN without a
    face), ``head_rotmats`` (T, 3, 3) float32 (the head's axes, left, up, out of the face, in
    camera axes), ``head_ypr`` (T, 3) float32 radians, ``rest`` (M,) float64 (the calibration,
    :mod:`mocap.face.controls`), ``fps`` float, ``start_frame`` int.

face.csv
    One row per frame: ``frame`` (index in the video), ``time_s``, ``head_yaw_rad``,
    ``head_pitch_rad``, ``head_roll_rad``, then one column per control; empty cells where
    there is no face.

Every write goes to a temporary file beside the target and is renamed into place, so a
failure never leaves a half-written file. Every read checks the npz's array headers against
the limits below (:data:`MAX_FRAMES`, :mod:`mocap.npz_limits`) before it allocates.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from mocap.errors import MocapError
from mocap.npz_limits import check_npz
from mocap.skeletons import get_layout

#: layouts a keypoints2d.npz may hold: the ones the lifters read
KEYPOINT_LAYOUTS = ("mediapipe33", "coco17")
#: the per-frame arrays (T, ...) a keypoints2d.npz may hold
KEYPOINT_FRAME_ARRAYS = ("keypoints", "confidence", "world_landmarks", "hand_keypoints", "hand_confidence",
                         "hand_world", "background_homography")
#: most straight segments a keypoints file's ``scene_lines`` may hold
MAX_SCENE_LINES = 100_000
#: most frames a keypoints or motion file may hold (one hour at 60 fps); a longer clip is split
MAX_FRAMES = 216_000
#: highest frame rate a file, a video or a request may declare, frames per second
MAX_FPS = 1000.0
#: largest image side, pixels (16K video is 15,360 wide)
MAX_IMAGE_SIDE = 65_536
#: most joints a motion may hold
MAX_JOINTS = 1024


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps ``path``'s suffix (or ``suffix``) so writers that look at the
    extension (video codecs, numpy) behave. On error the temporary file is removed. The
    file gets the permissions of a plainly created file (``0o666`` less the process's
    umask), not the owner-only ``0o600`` of a temporary file.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise MocapError(f"cannot write {path}: folder {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise MocapError(f"cannot write {path}: folder {directory} is not writable")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix, dir=directory)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # some writers replace the file: set the mode on what is there
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    """The process's umask, read without changing it (Linux: /proc; elsewhere set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def _load_npz(path: str | os.PathLike, required: tuple[str, ...], what: str,
              frame_arrays: tuple[str, ...]) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise MocapError(f"{what} file not found: {path}")
    if path.is_dir():
        raise MocapError(f"{path} is a folder, expected a {what} .npz file")
    try:  # the headers first: a few MB of compressed zeros can declare gigabytes
        check_npz(path, max_frames=MAX_FRAMES, frame_arrays=frame_arrays)
    except MocapError as e:
        raise MocapError(f"{path}: {e}") from None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise MocapError(f"{path} is not a readable {what} .npz file ({e.__class__.__name__}: {e})") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise MocapError(f"{path} is not a {what} file: missing {', '.join(missing)} (has {', '.join(arrays) or 'nothing'})")
    return arrays


def _numbers(a: dict[str, np.ndarray], key: str, dtype=np.float64) -> np.ndarray:
    """``a[key]`` as ``dtype``; MocapError unless it holds real numbers (not text, not complex)."""
    arr = np.asarray(a[key])
    if arr.dtype.kind not in "biuf":
        raise MocapError(f"{key} must hold real numbers, got {arr.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become inf: refused later
        return arr.astype(dtype)


def _number(a: dict[str, np.ndarray], key: str, *, whole: bool = False) -> float | int:
    """The single real number ``a[key]``; MocapError otherwise."""
    arr = _numbers(a, key)
    if arr.size != 1:
        raise MocapError(f"{key} must be one number, got shape {arr.shape}")
    value = float(arr.reshape(-1)[0])
    if whole:
        if not (np.isfinite(value) and value == round(value) and abs(value) < 2 ** 62):
            raise MocapError(f"{key} must be a whole number, got {value}")
        return int(value)
    return value


@dataclass(frozen=True)
class Keypoints2D:
    """2D keypoints of one person over time; see the module docstring for shapes and units."""

    keypoints: np.ndarray  # (T, J, 2) float32 pixels, NaN where missing
    confidence: np.ndarray  # (T, J) float32 in [0, 1]
    layout: str
    image_size: tuple[int, int]  # (width, height) pixels
    fps: float
    world_landmarks: np.ndarray | None = None  # (T, J, 3) float32 metres, optional
    hand_keypoints: np.ndarray | None = None  # (T, 42, 2) float32 pixels, hands42 layout, optional
    hand_confidence: np.ndarray | None = None  # (T, 42) float32 in [0, 1], with hand_keypoints
    hand_world: np.ndarray | None = None  # (T, 42, 3) float32 metres, camera axes, optional with hand_keypoints
    scene_lines: np.ndarray | None = None  # (N, 4) float32 pixels: the background's straight segments, optional
    background_homography: np.ndarray | None = None  # (T, 3, 3) float64: each frame's picture onto the reference's, optional
    picture_box: np.ndarray | None = None  # (4,) float64 pixels x0, y0, x1, y1: the picture inside bars, optional

    def __post_init__(self) -> None:
        validate_keypoints(self)

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    def frames(self, first: int, stop: int) -> Keypoints2D:
        """Frames ``first`` to ``stop - 1``, every per-frame array cut alike."""
        sl = slice(first, stop)
        cut = lambda a: None if a is None else a[sl]  # noqa: E731
        return Keypoints2D(keypoints=self.keypoints[sl], confidence=self.confidence[sl], layout=self.layout,
                           image_size=self.image_size, fps=self.fps, world_landmarks=cut(self.world_landmarks),
                           hand_keypoints=cut(self.hand_keypoints), hand_confidence=cut(self.hand_confidence),
                           hand_world=cut(self.hand_world), scene_lines=self.scene_lines,
                           background_homography=cut(self.background_homography), picture_box=self.picture_box)

    @property
    def picture_size(self) -> tuple[int, int]:
        """(width, height) pixels of the picture: the frame's, or the part inside its bars (``picture_box``)."""
        if self.picture_box is None:
            return self.image_size
        x0, y0, x1, y1 = (float(v) for v in self.picture_box)
        return int(round(x1 - x0 + 1)), int(round(y1 - y0 + 1))

    def detection_rate(self) -> float:
        """Fraction of frames where any keypoint was found."""
        if self.num_frames == 0:
            return 0.0
        return float(np.mean(np.isfinite(self.keypoints).all(-1).any(-1)))


def validate_keypoints(k: Keypoints2D) -> None:
    """Raise MocapError with the offending field if ``k`` breaks the documented format."""
    if k.layout not in KEYPOINT_LAYOUTS:
        raise MocapError(f"keypoints layout {k.layout[:40]!r} is not one of {', '.join(KEYPOINT_LAYOUTS)} "
                         f"(the layouts the lifters read)")
    j = get_layout(k.layout).num_joints
    kp, conf = k.keypoints, k.confidence
    if kp.ndim != 3 or kp.shape[1:] != (j, 2):
        raise MocapError(f"keypoints must have shape (T, {j}, 2) for layout {k.layout}, got {kp.shape}")
    if conf.shape != kp.shape[:2]:
        raise MocapError(f"confidence must have shape {kp.shape[:2]}, got {conf.shape}")
    if kp.shape[0] == 0:
        raise MocapError("keypoints file holds no frames")
    if kp.shape[0] > MAX_FRAMES:
        raise MocapError(f"keypoints hold {kp.shape[0]} frames, over the limit of {MAX_FRAMES}: split the clip")
    finite_conf = conf[np.isfinite(conf)]
    if finite_conf.size and (finite_conf.min() < 0 or finite_conf.max() > 1):
        raise MocapError("confidence values must lie in [0, 1]")
    check_fps(k.fps)
    try:
        sides = [float(v) for v in k.image_size]
    except (TypeError, ValueError, OverflowError):
        sides = []
    if len(sides) != 2 or not all(0 < v <= MAX_IMAGE_SIDE for v in sides):
        raise MocapError(f"image_size must be (width, height), each in [1, {MAX_IMAGE_SIDE}] pixels, "
                         f"got {str(k.image_size)[:60]}")
    if k.world_landmarks is not None and k.world_landmarks.shape != (kp.shape[0], j, 3):
        raise MocapError(f"world_landmarks must have shape {(kp.shape[0], j, 3)}, got {k.world_landmarks.shape}")
    if (k.hand_keypoints is None) != (k.hand_confidence is None):
        raise MocapError("hand_keypoints and hand_confidence go together: give both or neither")
    if k.hand_keypoints is not None:
        h = get_layout("hands42").num_joints
        if k.hand_keypoints.shape != (kp.shape[0], h, 2) or k.hand_confidence.shape != (kp.shape[0], h):
            raise MocapError(f"hand_keypoints must have shape {(kp.shape[0], h, 2)} and hand_confidence "
                             f"{(kp.shape[0], h)}, got {k.hand_keypoints.shape} and {k.hand_confidence.shape}")
        if np.isinf(k.hand_keypoints).any():
            raise MocapError("hand_keypoints must be finite pixel positions (NaN where missing), not infinite")
        hc = k.hand_confidence[np.isfinite(k.hand_confidence)]
        if hc.size and (hc.min() < 0 or hc.max() > 1):
            raise MocapError("hand_confidence values must lie in [0, 1]")
    if k.hand_world is not None:
        if k.hand_keypoints is None or k.hand_world.shape != k.hand_keypoints.shape[:2] + (3,):
            raise MocapError(f"hand_world goes with hand_keypoints and must have shape (T, 42, 3), got "
                             f"{k.hand_world.shape}")
        if np.isinf(k.hand_world).any():
            raise MocapError("hand_world must be finite (NaN where missing), not infinite")
    if k.scene_lines is not None:
        lines = k.scene_lines
        if lines.ndim != 2 or lines.shape[1] != 4 or len(lines) > MAX_SCENE_LINES:
            raise MocapError(f"scene_lines must have shape (N, 4) with N at most {MAX_SCENE_LINES}, got {lines.shape}")
        if not np.isfinite(lines).all():
            raise MocapError("scene_lines must be finite pixel positions")
    if k.background_homography is not None:
        h = k.background_homography
        if h.shape != (kp.shape[0], 3, 3):
            raise MocapError(f"background_homography must have shape {(kp.shape[0], 3, 3)}, got {h.shape}")
        if not np.isfinite(h).all():
            raise MocapError("background_homography must be finite")
    if k.picture_box is not None:
        b = np.asarray(k.picture_box, dtype=np.float64)
        if (b.shape != (4,) or not np.isfinite(b).all() or b[0] < 0 or b[1] < 0 or b[2] <= b[0] or b[3] <= b[1]
                or b[2] > sides[0] - 1 or b[3] > sides[1] - 1):
            raise MocapError(f"picture_box must be (x0, y0, x1, y1) pixels inside the {k.image_size} frame with "
                             f"x0 < x1 and y0 < y1, got {str(b)[:60]}")


def check_keypoint_values(k: Keypoints2D) -> None:
    """MocapError if keypoints read from outside cannot be a detected person: infinite
    positions, or every frame's keypoints within one pixel of each other."""
    kp = k.keypoints
    if np.isinf(kp).any():
        raise MocapError("keypoints must be finite pixel positions (NaN where missing), not infinite")
    found = np.isfinite(kp).all(-1, keepdims=True)  # (T, J, 1)
    if found.any():
        extent = np.where(found, kp, -np.inf).max(axis=1) - np.where(found, kp, np.inf).min(axis=1)  # (T, 2)
        if not (extent >= 1.0).any():  # -inf in frames where nothing is found
            raise MocapError("the keypoints lie at one point (less than 1 pixel apart) in every frame: not a "
                             "detected person")


def check_fps(fps: float) -> float:
    """``fps`` as a float; MocapError unless it is a number in (0, :data:`MAX_FPS`]."""
    try:
        value = float(fps)
    except (TypeError, ValueError, OverflowError):
        raise MocapError(f"fps must be a number, got {str(fps)[:40]}") from None
    if not 0 < value <= MAX_FPS:  # false for NaN
        raise MocapError(f"fps must lie in (0, {MAX_FPS:g}], got {str(fps)[:40]}")
    return value


def save_keypoints(path: str | os.PathLike, k: Keypoints2D) -> None:
    """Write ``k`` to ``path`` (keypoints2d.npz format), atomically."""
    arrays = {
        "keypoints": k.keypoints.astype(np.float32),
        "confidence": k.confidence.astype(np.float32),
        "layout": np.array(k.layout),
        "image_size": np.array(k.image_size, dtype=np.int64),
        "fps": np.array(float(k.fps)),
    }
    if k.world_landmarks is not None:
        arrays["world_landmarks"] = k.world_landmarks.astype(np.float32)
    if k.hand_keypoints is not None:
        arrays["hand_keypoints"] = k.hand_keypoints.astype(np.float32)
        arrays["hand_confidence"] = k.hand_confidence.astype(np.float32)
    if k.hand_world is not None:
        arrays["hand_world"] = k.hand_world.astype(np.float32)
    if k.scene_lines is not None:
        arrays["scene_lines"] = k.scene_lines.astype(np.float32)
    if k.background_homography is not None:
        arrays["background_homography"] = k.background_homography.astype(np.float64)
    if k.picture_box is not None:
        arrays["picture_box"] = np.asarray(k.picture_box, dtype=np.float64)
    _save_npz(path, arrays)


def load_keypoints(path: str | os.PathLike) -> Keypoints2D:
    """Read a keypoints2d.npz file; MocapError if it is missing, unreadable or malformed."""
    a = _load_npz(path, ("keypoints", "confidence", "layout", "image_size", "fps"), "keypoints2d",
                  frame_arrays=KEYPOINT_FRAME_ARRAYS)
    try:
        raw_size = _numbers(a, "image_size").reshape(-1)
        if not np.isfinite(raw_size).all() or (raw_size != np.round(raw_size)).any() or (raw_size > 2 ** 62).any():
            raise MocapError(f"image_size must be (width, height) in whole pixels, got {str(raw_size)[:60]}")
        size = tuple(int(v) for v in raw_size)
        layout = a["layout"]
        if layout.dtype.kind != "U" or layout.size != 1:
            raise MocapError(f"layout must be one string, got {layout.dtype} of shape {layout.shape}")
        keypoints = Keypoints2D(
            keypoints=_numbers(a, "keypoints", np.float32),
            confidence=_numbers(a, "confidence", np.float32),
            layout=str(layout.reshape(-1)[0]),
            image_size=size,  # type: ignore[arg-type]
            fps=_number(a, "fps"),
            world_landmarks=_numbers(a, "world_landmarks", np.float32) if "world_landmarks" in a else None,
            hand_keypoints=_numbers(a, "hand_keypoints", np.float32) if "hand_keypoints" in a else None,
            hand_confidence=_numbers(a, "hand_confidence", np.float32) if "hand_confidence" in a else None,
            hand_world=_numbers(a, "hand_world", np.float32) if "hand_world" in a else None,
            scene_lines=_numbers(a, "scene_lines", np.float32) if "scene_lines" in a else None,
            background_homography=(_numbers(a, "background_homography", np.float64)
                                   if "background_homography" in a else None),
            picture_box=_numbers(a, "picture_box", np.float64) if "picture_box" in a else None,
        )
        check_keypoint_values(keypoints)
        return keypoints
    except MocapError as e:
        raise MocapError(f"{path}: {e}") from None
    except (TypeError, ValueError) as e:
        raise MocapError(f"{path} is not a valid keypoints2d file: {e}") from None


@dataclass(frozen=True)
class Motion:
    """3D motion of one skeleton; see the module docstring for shapes and units."""

    joints: np.ndarray  # (T, J, 3) metres, +Y up
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    fps: float
    local_quats_wxyz: np.ndarray | None = None  # (T, J, 4)
    root_translation: np.ndarray | None = None  # (T, 3) metres
    rest_offsets: np.ndarray | None = None  # (J, 3) metres
    start_frame: int = 0  # index in the video of frame 0
    valid: np.ndarray | None = None  # (T,) bool, False where the person was not seen; None: all valid
    hand_valid: np.ndarray | None = None  # (T, 2) bool, left / right hand seen (motions with fingers)

    def __post_init__(self) -> None:
        t, j = self.joints.shape[:2] if self.joints.ndim == 3 else (0, 0)
        if self.joints.ndim != 3 or self.joints.shape[2] != 3:
            raise MocapError(f"joints must have shape (T, J, 3), got {self.joints.shape}")
        if t == 0:
            raise MocapError("motion holds no frames")
        if len(self.joint_names) != j or len(self.parents) != j:
            raise MocapError(f"{j} joints but {len(self.joint_names)} names and {len(self.parents)} parents")
        check_fps(self.fps)
        for name, arr, shape in (("local_quats_wxyz", self.local_quats_wxyz, (t, j, 4)),
                                 ("root_translation", self.root_translation, (t, 3)),
                                 ("rest_offsets", self.rest_offsets, (j, 3))):
            if arr is not None and arr.shape != shape:
                raise MocapError(f"{name} must have shape {shape}, got {arr.shape}")
        if self.hand_valid is not None and (self.hand_valid.shape != (t, 2) or self.hand_valid.dtype != bool):
            raise MocapError(f"hand_valid must be a bool array of shape {(t, 2)}, got {self.hand_valid.dtype} "
                             f"{self.hand_valid.shape}")
        if self.valid is not None and (self.valid.shape != (t,) or self.valid.dtype != bool):
            raise MocapError(f"valid must be a bool array of shape {(t,)}, got {self.valid.dtype} {self.valid.shape}")
        if isinstance(self.start_frame, bool) or int(self.start_frame) != self.start_frame or self.start_frame < 0:
            raise MocapError(f"start_frame must be a frame index >= 0, got {self.start_frame!r}")

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def valid_frames(self) -> np.ndarray:
        """(T,) bool: ``valid``, or all True when the motion does not say."""
        return np.ones(self.num_frames, bool) if self.valid is None else self.valid


def save_motion(path: str | os.PathLike, m: Motion) -> None:
    """Write ``m`` to ``path`` (motion.npz format), atomically."""
    arrays = {
        "joints": m.joints.astype(np.float32),
        "joint_names": np.array(m.joint_names),
        "parents": np.array(m.parents, dtype=np.int64),
        "fps": np.array(float(m.fps)),
    }
    for name in ("local_quats_wxyz", "root_translation", "rest_offsets"):
        value = getattr(m, name)
        if value is not None:
            arrays[name] = value.astype(np.float32)
    arrays["start_frame"] = np.array(int(m.start_frame), dtype=np.int64)
    arrays["valid"] = m.valid_frames.astype(bool)
    if m.hand_valid is not None:
        arrays["hand_valid"] = m.hand_valid.astype(bool)
    _save_npz(path, arrays)


def load_motion(path: str | os.PathLike) -> Motion:
    """Read a motion.npz file; MocapError if it is missing, unreadable or malformed."""
    a = _load_npz(path, ("joints", "joint_names", "parents", "fps"), "motion",
                  frame_arrays=("joints", "local_quats_wxyz", "root_translation", "valid", "hand_valid"))
    try:
        parents = _numbers(a, "parents").reshape(-1)
        if not (np.isfinite(parents).all() and (parents == np.round(parents)).all()):
            raise MocapError("parents must be whole joint indices (root -1)")
        names = a["joint_names"]
        if names.dtype.kind != "U" or names.ndim != 1:
            raise MocapError(f"joint_names must be a list of strings, got {names.dtype} of shape {names.shape}")
        motion = Motion(
            joints=_numbers(a, "joints"),
            joint_names=tuple(str(n) for n in names),
            parents=tuple(int(p) for p in np.clip(parents, -2, 2 ** 31)),
            fps=_number(a, "fps"),
            **{k: _numbers(a, k) for k in ("local_quats_wxyz", "root_translation", "rest_offsets") if k in a},
            start_frame=_number(a, "start_frame", whole=True) if "start_frame" in a else 0,
            valid=_numbers(a, "valid", bool) if "valid" in a else np.ones(len(a["joints"]), bool),
            hand_valid=_numbers(a, "hand_valid", bool) if "hand_valid" in a else None,
        )
        validate_motion(motion)
        return motion
    except MocapError as e:
        raise MocapError(f"{path}: {e}") from None
    except (TypeError, ValueError, OverflowError) as e:
        raise MocapError(f"{path} is not a valid motion file: {e}") from None


def validate_motion(m: Motion) -> None:
    """Raise MocapError if a motion read from outside could not be exported: a joint tree
    that is not one (a parent out of range, after its child, or a cycle), too many frames
    or joints, or NaN/inf in the rotations, the root translation or the rest offsets.

    Joint positions may hold NaN (gaps); the IK results may not.
    """
    j = len(m.parents)
    if m.num_frames > MAX_FRAMES or j > MAX_JOINTS:
        raise MocapError(f"motion of {m.num_frames} frames and {j} joints is over the limit of {MAX_FRAMES} frames "
                         f"and {MAX_JOINTS} joints")
    parents = np.asarray(m.parents, dtype=np.int64)
    bad = np.nonzero((parents < -1) | (parents >= np.arange(j)))[0]
    if j and parents[0] != -1:
        bad = np.concatenate([[0], bad])
    if bad.size:
        k = int(bad[0])
        raise MocapError(f"parents must list each joint's parent before the joint (root -1 first); joint {k} "
                         f"({m.joint_names[k][:40]!r}) has parent {int(parents[k])}: out of range or a cycle")
    for name in ("local_quats_wxyz", "root_translation", "rest_offsets"):
        value = getattr(m, name)
        if value is not None and not np.isfinite(value).all():
            raise MocapError(f"{name} holds NaN or infinite values; re-run mocap lift (it runs IK and fills gaps)")
    if m.local_quats_wxyz is not None:
        norms = np.linalg.norm(m.local_quats_wxyz, axis=-1)
        if (np.abs(norms - 1.0) > 1e-2).any():
            raise MocapError("local_quats_wxyz must be unit quaternions (w, x, y, z)")


#: the per-frame arrays of face.npz
FACE_FRAME_ARRAYS = ("keypoints", "z", "score", "controls", "head_rotmats", "head_ypr")


@dataclass(frozen=True)
class FaceData:
    """One person's face landmarks and controls over T frames; see the module docstring."""

    keypoints: np.ndarray  # (T, 478, 2) float32 pixels, NaN where not found
    z: np.ndarray  # (T, 478) float32 pixels
    score: np.ndarray  # (T,) float32 in [0, 1]
    names: tuple[str, ...]  # K control names
    controls: np.ndarray  # (T, K) float32 in [0, 1], NaN without a face
    head_rotmats: np.ndarray  # (T, 3, 3) float32
    head_ypr: np.ndarray  # (T, 3) float32 radians
    rest: np.ndarray  # (M,) float64
    fps: float
    start_frame: int = 0

    def __post_init__(self) -> None:
        t = len(self.keypoints)
        shapes = {"keypoints": (t, self.keypoints.shape[1] if self.keypoints.ndim == 3 else -1, 2),
                  "z": (t, self.keypoints.shape[1] if self.keypoints.ndim == 3 else -1), "score": (t,),
                  "controls": (t, len(self.names)), "head_rotmats": (t, 3, 3), "head_ypr": (t, 3)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise MocapError(f"face {name} must have shape {shape}, got {getattr(self, name).shape}")
        check_fps(self.fps)

    @property
    def num_frames(self) -> int:
        return len(self.keypoints)


def save_face(path: str | os.PathLike, f: FaceData) -> None:
    """Write ``f`` to ``path`` (face.npz format), atomically."""
    _save_npz(path, {
        "keypoints": f.keypoints.astype(np.float32), "z": f.z.astype(np.float32),
        "score": f.score.astype(np.float32), "names": np.array(f.names, dtype=str),
        "controls": f.controls.astype(np.float32), "head_rotmats": f.head_rotmats.astype(np.float32),
        "head_ypr": f.head_ypr.astype(np.float32), "rest": np.asarray(f.rest, np.float64),
        "fps": np.array(float(f.fps)), "start_frame": np.array(int(f.start_frame), np.int64)})


def load_face(path: str | os.PathLike) -> FaceData:
    """Read a face.npz file; MocapError if it is missing, unreadable or malformed."""
    a = _load_npz(path, ("keypoints", "z", "score", "names", "controls", "head_rotmats", "head_ypr", "rest", "fps"),
                  "face", frame_arrays=FACE_FRAME_ARRAYS)
    try:
        names = a["names"]
        if names.dtype.kind != "U" or names.ndim != 1:
            raise MocapError(f"names must be a list of strings, got {names.dtype} of shape {names.shape}")
        return FaceData(keypoints=_numbers(a, "keypoints", np.float32), z=_numbers(a, "z", np.float32),
                        score=_numbers(a, "score", np.float32), names=tuple(str(n) for n in names),
                        controls=_numbers(a, "controls", np.float32),
                        head_rotmats=_numbers(a, "head_rotmats", np.float32),
                        head_ypr=_numbers(a, "head_ypr", np.float32), rest=_numbers(a, "rest"),
                        fps=_number(a, "fps"),
                        start_frame=_number(a, "start_frame", whole=True) if "start_frame" in a else 0)
    except MocapError as e:
        raise MocapError(f"{path}: {e}") from None


def write_face_csv(path: str | os.PathLike, f: FaceData) -> None:
    """Write ``f``'s head angles and controls as face.csv (see the module docstring), atomically."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["frame", "time_s", "head_yaw_rad", "head_pitch_rad", "head_roll_rad", *f.names])
    cell = lambda v: "" if not np.isfinite(v) else f"{v:.5g}"  # noqa: E731
    for t in range(f.num_frames):
        frame = f.start_frame + t
        w.writerow([frame, f"{frame / f.fps:.6g}", *(cell(v) for v in f.head_ypr[t]), *(cell(v) for v in f.controls[t])])
    with atomic_path(path, suffix=".csv") as tmp:
        Path(tmp).write_text(buf.getvalue())
