"""CMU mocap (cgspeed "Daz-friendly" BVH) -> world keypoint positions for training the lifter.

Pipeline per take: read the BVH (:func:`mocap.io.bvh.read_bvh`, centimetres -> metres), forward
kinematics, map the 43 cgspeed joints to ``KEYPOINT_NAMES`` (MOTION21 plus the eyes and ears
that COCO-17 detectors see), drop the first ``DROP_FRAMES`` raw frames (a blend from the
T-pose), resample to 120 Hz (salsa is 60 fps content although its header says 120) and cache
the result as one ``.npz`` in the cache folder.

Joint correspondence (cgspeed name -> ours): ``lThigh`` -> left_hip, ``lShin`` -> left_knee,
``lFoot`` -> left_ankle, ``lShldr`` -> left_shoulder, ``lForeArm`` -> left_elbow, ``lHand`` ->
left_wrist, ``leftEye`` -> left_eye (and mirrored for the right side). Synthesised:
pelvis = mid-hips; spine = mean of ``abdomen`` and ``chest``; neck = mid-shoulders; foot_index
= the ``lFoot`` end site; heel, ears, nose = fixed offsets in the foot / head joint frames
(see ``_LOCAL_POINTS``); head = mid-ears (as :data:`mocap.skeletons.MAPPINGS` defines it).

World axes are the BVH's: +Y up, metres. All cgspeed takes share one skeleton (one set of
bone lengths), so training varies bone lengths by augmentation.

Locations: the archive is ``<repo>/../shared/data/mocap/cmu_bvh.tar.xz`` (or
``$MOCAP_SHARED_DATA/mocap/...``); the cache is ``$MOCAP_CACHE_DIR`` or
``~/.cache/mocap-lift/cmu``. The train/val/test split is the file ``lifting/split.json``.
"""
from __future__ import annotations

import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap.errors import MocapError
from mocap.lift.features import left_right_pairs
from mocap.skeletons import COCO17, MOTION21, Skeleton

REPO_ROOT = Path(__file__).resolve().parents[1]
SPLIT_PATH = Path(__file__).resolve().parent / "split.json"
ARCHIVE_NAME = "cmu_bvh.tar.xz"
#: Raw BVH frames dropped at the start of every take (T-pose blend).
DROP_FRAMES = 12
#: Frame rate of the cached positions.
CACHE_FPS = 120.0
#: Content frame rate per archive folder where the header lies.
CONTENT_FPS = {"salsa": 60.0}
CACHE_VERSION = 1

KEYPOINT_NAMES: tuple[str, ...] = MOTION21.joint_names + ("left_eye", "right_eye", "left_ear", "right_ear")
#: Parents of KEYPOINT_NAMES (a tree rooted at the pelvis); eyes and ears hang off the head.
KEYPOINT_PARENTS: tuple[int, ...] = tuple(MOTION21.parents) + (MOTION21.index("head"),) * 4
#: KEYPOINT_NAMES as a skeleton table; its left/right pairs are those of MOTION21 and COCO-17 (eyes, ears).
KEYPOINTS = Skeleton(name="cmu_keypoints", joint_names=KEYPOINT_NAMES, edges=(), parents=KEYPOINT_PARENTS,
                     left_right=left_right_pairs(KEYPOINT_NAMES, MOTION21, COCO17))
#: (K,) permutation of KEYPOINT_NAMES that swaps left and right.
KEYPOINT_MIRROR = KEYPOINTS.mirror_permutation()

_DIRECT = {
    "left_hip": "lThigh", "right_hip": "rThigh", "left_knee": "lShin", "right_knee": "rShin",
    "left_ankle": "lFoot", "right_ankle": "rFoot", "left_shoulder": "lShldr", "right_shoulder": "rShldr",
    "left_elbow": "lForeArm", "right_elbow": "rForeArm", "left_wrist": "lHand", "right_wrist": "rHand",
    "left_eye": "leftEye", "right_eye": "rightEye",
}
#: Points fixed in a joint's frame: name -> (cgspeed joint, offset in metres in that joint's rest frame).
#: The foot tip is the cgspeed foot end site; heel, ears and nose are anatomical estimates.
_LOCAL_POINTS = {
    "left_foot_index": ("lFoot", (0.011221, -0.0369964, 0.12103)),
    "right_foot_index": ("rFoot", (-0.011221, -0.0369964, 0.12103)),
    "left_heel": ("lFoot", (0.0, -0.055, -0.045)),
    "right_heel": ("rFoot", (0.0, -0.055, -0.045)),
    "left_ear": ("head", (0.075, 0.075, -0.01)),
    "right_ear": ("head", (-0.075, 0.075, -0.01)),
    "nose": ("head", (0.0, 0.045, 0.10)),
}

_ACTIONS = (  # (category, keywords): the category whose keyword occurs first in the description wins
    ("walk", ("walk", "stroll", "march")), ("run", ("run", "jog")), ("jump", ("jump", "hop", "leap")),
    ("dance", ("dance", "salsa", "indian")), ("martial", ("martial", "kung", "karate", "tai chi")),
    ("box", ("box", "punch", "strike")), ("basketball", ("basketball", "dribble", "shoot")),
    ("kick", ("kick", "soccer")), ("climb", ("climb", "playground", "swing", "hang", "ladder", "steps")),
    ("sit/stand", ("sit", "stand", "stool")),
)


@dataclass(frozen=True)
class Take:
    """One BVH take: ``take_id`` like ``"02_01"`` (CMU subject_trial) or ``"salsa/01"``."""

    take_id: str
    path: Path
    subject: str
    content_fps: float
    action: str
    description: str


def shared_data_dir() -> Path:
    """``$MOCAP_SHARED_DATA`` or ``<repo>/../shared/data`` (may not exist)."""
    env = os.environ.get("MOCAP_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def cache_dir() -> Path:
    """``$MOCAP_CACHE_DIR`` or ``~/.cache/mocap-lift/cmu``."""
    env = os.environ.get("MOCAP_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "mocap-lift" / "cmu"


def ensure_unpacked(archive: Path | None = None, dest: Path | None = None) -> Path:
    """Unpack the CMU BVH archive into ``dest`` once; return ``dest``."""
    archive = archive or shared_data_dir() / "mocap" / ARCHIVE_NAME
    dest = dest or cache_dir()
    marker = dest / ".unpacked"
    if marker.exists():
        return dest
    if not archive.exists():
        raise MocapError(f"CMU archive not found at {archive}; put the shared data at <repo>/../shared/data "
                         "or set MOCAP_SHARED_DATA to the folder that holds mocap/cmu_bvh.tar.xz")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(dest, filter="data")
    marker.write_text(str(archive) + "\n")
    return dest


def _cmu_descriptions() -> dict[str, str]:
    index = shared_data_dir() / "mocap" / "CMU-INDEX.md"
    if not index.exists():
        return {}
    out = {}
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"^(\d\d_\d\d)\s+(.*\S)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def action_category(description: str) -> str:
    """Coarse action label from a CMU description (``"other"`` when no keyword matches)."""
    text = description.lower()
    best, best_pos = "other", len(text) + 1
    for category, keywords in _ACTIONS:
        for kw in keywords:
            pos = text.find(kw)
            if 0 <= pos < best_pos:
                best, best_pos = category, pos
    return best


def list_takes(root: Path | None = None) -> list[Take]:
    """All BVH takes under the unpacked archive, sorted by id."""
    root = root or ensure_unpacked()
    descriptions = _cmu_descriptions()
    takes = []
    for path in sorted(root.rglob("*.bvh")):
        folder = path.parent.name
        if re.fullmatch(r"\d\d_\d\d", path.stem):
            take_id, subject = path.stem, path.stem[:2]
            description = descriptions.get(take_id, "unknown")
        elif folder in ("salsa", "indian", "martial"):
            take_id = f"{folder}/{path.stem}"
            # the salsa takes are couples: 01-15 one partner, 16-30 the other (CMU subjects 60/61)
            subject = folder if folder != "salsa" else f"salsa{'A' if int(path.stem) <= 15 else 'B'}"
            description = f"{folder} dance" if folder != "martial" else "martial arts"
        else:
            continue  # e.g. the papagina "standard.bvh" rest pose
        takes.append(Take(take_id, path, subject, CONTENT_FPS.get(folder, 0.0) or 0.0, action_category(description), description))
    return takes


def _global_rotmats(local_quats_wxyz: np.ndarray, parents: tuple[int, ...], joints: list[int]) -> dict[int, np.ndarray]:
    """Global rotation matrices (T, 3, 3) of the requested joints by chaining local rotations."""
    from mocap.rotations import quat_wxyz_to_matrix

    cache: dict[int, np.ndarray] = {}

    def get(j: int) -> np.ndarray:
        if j not in cache:
            local = quat_wxyz_to_matrix(local_quats_wxyz[:, j])
            cache[j] = local if parents[j] < 0 else get(parents[j]) @ local
        return cache[j]

    return {j: get(j) for j in joints}


def cmu_keypoints(positions: np.ndarray, local_quats_wxyz: np.ndarray, joint_names: tuple[str, ...],
                  parents: tuple[int, ...]) -> np.ndarray:
    """Map cgspeed joints to KEYPOINT_NAMES.

    Args:
        positions: (T, J, 3) metres, world frame of the BVH joints.
        local_quats_wxyz: (T, J, 4) local joint rotations.
        joint_names, parents: the BVH hierarchy.
    Returns:
        (T, K, 3) float64 metres, K = len(KEYPOINT_NAMES).
    """
    idx = {n: i for i, n in enumerate(joint_names)}
    missing = [n for n in list(_DIRECT.values()) + ["abdomen", "chest", "head"] if n not in idx]
    if missing:
        raise MocapError(f"BVH lacks the cgspeed joints {missing}; the lifter's data loader reads the "
                         "cgspeed Daz-friendly CMU conversions only")
    t = positions.shape[0]
    out = np.full((t, len(KEYPOINT_NAMES), 3), np.nan)
    k = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
    for ours, theirs in _DIRECT.items():
        out[:, k[ours]] = positions[:, idx[theirs]]
    rots = _global_rotmats(local_quats_wxyz, parents, sorted({idx[j] for j, _ in _LOCAL_POINTS.values()}))
    for ours, (theirs, offset) in _LOCAL_POINTS.items():
        j = idx[theirs]
        out[:, k[ours]] = positions[:, j] + rots[j] @ np.asarray(offset)
    out[:, k["pelvis"]] = 0.5 * (out[:, k["left_hip"]] + out[:, k["right_hip"]])
    out[:, k["spine"]] = 0.5 * (positions[:, idx["abdomen"]] + positions[:, idx["chest"]])
    out[:, k["neck"]] = 0.5 * (out[:, k["left_shoulder"]] + out[:, k["right_shoulder"]])
    out[:, k["head"]] = 0.5 * (out[:, k["left_ear"]] + out[:, k["right_ear"]])
    return out


def resample(x: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear resampling of (T, ...) along time from ``fps_in`` to ``fps_out``."""
    if abs(fps_in - fps_out) < 1e-6:
        return x
    t_in = np.arange(x.shape[0]) / fps_in
    t_out = np.arange(0.0, t_in[-1] + 1e-9, 1.0 / fps_out)
    flat = x.reshape(x.shape[0], -1)
    cols = [np.interp(t_out, t_in, flat[:, c]) for c in range(flat.shape[1])]
    return np.stack(cols, axis=1).reshape((len(t_out),) + x.shape[1:])


def load_take(take: Take) -> np.ndarray:
    """(T, K, 3) float32 metres at CACHE_FPS, world frame (+Y up)."""
    from mocap.io.bvh import read_bvh
    from mocap.kinematics.ik import bvh_joint_positions

    motion = read_bvh(take.path)
    positions = bvh_joint_positions(motion)
    kp = cmu_keypoints(positions, motion.local_quats_wxyz, tuple(motion.joint_names), tuple(motion.parents))
    kp = kp[DROP_FRAMES:]
    fps = take.content_fps or float(motion.fps)
    return resample(kp, fps, CACHE_FPS).astype(np.float32)


def load_split(path: Path = SPLIT_PATH) -> dict[str, list[str]]:
    """The written-down split: ``{"train": [take ids], "val": [...], "test": [...]}``."""
    with open(path, encoding="utf-8") as f:
        split = json.load(f)
    for name in ("train", "val", "test"):
        if name not in split:
            raise MocapError(f"{path} lacks the {name!r} list")
    return {k: list(split[k]) for k in ("train", "val", "test")}


def load_dataset(part: str, *, takes: list[Take] | None = None) -> list[tuple[Take, np.ndarray]]:
    """Takes of split ``part`` (``train``, ``val``, ``test``) with their (T, K, 3) positions, cached.

    The takes of ``cmu_extra.tar.xz`` come from :func:`lifting.data_extra.load_with_extra`
    (which calls this and appends them).
    """
    split = load_split()
    if part not in split:
        raise ValueError(f"unknown split part {part!r}; choose train, val or test")
    takes = takes if takes is not None else list_takes()
    by_id = {t.take_id: t for t in takes}
    unknown = [i for i in split[part] if i not in by_id]
    if unknown:
        raise MocapError(f"split.json names takes not in the archive: {unknown[:5]}")
    cache_file = cache_dir() / f"keypoints_v{CACHE_VERSION}.npz"
    arrays: dict[str, np.ndarray] = {}
    if cache_file.exists():
        with np.load(cache_file) as data:
            arrays = {k: data[k] for k in data.files}
    todo = [i for i in split[part] if i.replace("/", "__") not in arrays]
    if todo:
        for take_id in todo:
            arrays[take_id.replace("/", "__")] = load_take(by_id[take_id])
        from mocap.formats import atomic_path

        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_file, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    return [(by_id[i], arrays[i.replace("/", "__")]) for i in split[part]]
