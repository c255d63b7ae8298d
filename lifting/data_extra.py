"""More CMU training takes: the ASF/AMC and BVH takes of ``cmu_extra.tar.xz`` -> KEYPOINT_NAMES.

Sources (folders of the archive, see its README.md and MANIFEST.csv):

* ``motion-out/`` and ``gsimchoni_mocap/``: original CMU ASF/AMC (120 fps), read by our own
  :func:`read_asf` / :func:`read_amc` / :func:`asf_forward_kinematics`;
* ``leonardo-ono_*/``: cgspeed "MotionBuilder-friendly" BVH (31 joints, 120 fps, ASF units);
* ``Przestr_*/``: BVH with the native CMU bone names (ASF units; the header says 30 fps but the
  content is 120 fps, see ``CONTENT_FPS``). ``backflip`` is 60 fps content (``CONTENT_FPS_BY_TAKE``).
  Both BVH folders drop the ASF ``thorax`` bone; :func:`bvh_asf_keypoints` puts it back.

Left out: every ``dup_subj01-14`` folder and anything of CMU subjects 01-14 (they repeat the
main set, test subjects included), ``pirouette`` (subject 05), ``zombie.amc`` (the same take as
the leonardo-ono BVH 104_41; kept only for the cross-format check), ``unidentified/``.

ASF/AMC semantics (Acclaim): every bone has a rest ``direction`` (unit, world axes), a
``length`` and an ``axis`` (Euler angles in degrees, applied in the listed order about fixed
axes: ``XYZ`` gives ``Rz @ Ry @ Rx``) that defines its local frame ``C``. An AMC frame gives
each bone's ``dof`` angles (degrees, applied in the listed order the same way) ``M``; the bone's
world rotation is ``G = G_parent @ C @ M @ C^T`` and it runs from its parent's end to
``start + length * G @ direction``. The root's translation ``TX TY TZ`` and rotation
``RX RY RZ`` (``:root axis``) follow ``:root order``. Lengths are in ASF units:
``metres = value * 0.0254 / L`` with ``L`` the ``:units length`` (0.45 in every CMU file,
i.e. one unit is 1/0.45 inch); the BVH folders carry the same units. Axes: +Y up, metres;
at rest the CMU subjects face +Z with their left side at +X (as the cgspeed main set).

Keypoints (consistent with :mod:`lifting.data`): ``hip`` = femur head = start of ``lfemur``,
knee = start of ``ltibia``, ankle = start of ``lfoot``, shoulder = start of ``lhumerus``,
elbow = start of ``lradius``, wrist = start of ``lwrist``; ``foot_index`` = start of ``ltoes``
(the ball of the foot; this is where the cgspeed ``lFoot`` end site that ``lifting.data``
uses lies, ~12.5 cm from the ankle; the toe tip is ~6 cm further); heel, ears and nose are
``lifting.data``'s fixed offsets in the foot / head frames (the ``lfoot`` / ``head`` bone
frames, world-aligned at rest like the BVH joints); eyes are the cgspeed head->eye offsets
(centred); spine = mean of the ends of ``lowerback`` and ``upperback`` (the cgspeed
abdomen/chest mean sits at the same fraction of the torso); pelvis, neck and head are the mid-points that
``lifting.data`` uses. Summary: ``python -m lifting.data_extra --summary``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifting import data as base
from mocap.errors import MocapError
from mocap.rotations import axis_rotation_matrix

EXTRA_ARCHIVE = "cmu_extra.tar.xz"
EXTRA_CACHE_VERSION = 2
INCH_M = 0.0254
#: Raw frames dropped at the start of a cgspeed MotionBuilder BVH (a T-pose frame before the take).
MB_DROP_FRAMES = 1
#: Eye positions in the head frame, metres: the cgspeed head->eye OFFSETs, centred left/right.
EYE_OFFSETS = {"left_eye": (0.039, 0.0805, 0.0805), "right_eye": (-0.039, 0.0805, 0.0805)}
#: Content frame rate of every source. The Przestr BVH (16_01, 16_02) say ``Frame Time: 0.0333``
#: (30 fps), but a jump in 16_01 then stays 1.7 s in the air for 22 cm of rise and the pelvis falls
#: at -0.6 m/s^2; at 120 fps it is 0.42 s and -9.6 m/s^2: the frames are CMU's 120 fps samples.
CONTENT_FPS = 120.0
#: Takes whose content is 60 fps: in the air (every keypoint 8 cm above the floor) the body's
#: centre of mass of ``backflip`` falls at -44 m/s^2 if read at 120 fps, -11 at 60 (its ASF names
#: an "acrobat_wednesday" session; its CMU subject number is unknown).
CONTENT_FPS_BY_TAKE = {"backflip": 60.0}
#: BVH joint names of the ASF-named points (the BVH joint sits at the start of the ASF bone).
MB_NAMES = {"lfemur": "LeftUpLeg", "rfemur": "RightUpLeg", "ltibia": "LeftLeg", "rtibia": "RightLeg",
            "lfoot": "LeftFoot", "rfoot": "RightFoot", "ltoes": "LeftToeBase", "rtoes": "RightToeBase",
            "lhumerus": "LeftArm", "rhumerus": "RightArm", "lradius": "LeftForeArm", "rradius": "RightForeArm",
            "lwrist": "LeftHand", "rwrist": "RightHand", "head": "Head", "upperback": "Spine", "thorax": "Spine1"}
_STARTS = {"left_hip": "lfemur", "right_hip": "rfemur", "left_knee": "ltibia", "right_knee": "rtibia",
           "left_ankle": "lfoot", "right_ankle": "rfoot", "left_foot_index": "ltoes", "right_foot_index": "rtoes",
           "left_shoulder": "lhumerus", "right_shoulder": "rhumerus", "left_elbow": "lradius",
           "right_elbow": "rradius", "left_wrist": "lwrist", "right_wrist": "rwrist"}
_FRAMED = {"left_heel": "lfoot", "right_heel": "rfoot", "left_ear": "head", "right_ear": "head", "nose": "head",
           "left_eye": "head", "right_eye": "head"}
#: Source labels (see :func:`source_of`); `_SKIP` matches the archive paths left out.
SOURCES = ("asf_amc", "bvh_mb", "bvh_native")
_SKIP = re.compile(r"dup_subj01-14|unidentified|pirouette|zombie|(^|/)(0\d|1[0-4])_\d\d\.")


# ----------------------------------------------------------------------------- ASF / AMC
@dataclass(frozen=True)
class AsfSkeleton:
    """An Acclaim skeleton in SI units.

    Attributes:
        bone_names: (B,) bones in parent-first order (the root is not a bone).
        parents: (B,) parent bone index, -1 for the root's children.
        directions: (B, 3) unit rest directions, world axes.
        lengths: (B,) metres.
        axis_rotmats: (B, 3, 3) the bones' local frames ``C`` (from ``axis``).
        dofs: per bone its rotation dof names in file order, e.g. ``("rx", "ry", "rz")``.
        root_order: the root's AMC channels, e.g. ``("tx", "ty", "tz", "rx", "ry", "rz")``.
        root_axis_rotmat: (3, 3) the root frame ``C`` (from ``:root axis`` and ``orientation``).
        root_position: (3,) metres.
        metres_per_unit: the file's length unit in metres.
    """

    bone_names: tuple[str, ...]
    parents: tuple[int, ...]
    directions: np.ndarray
    lengths: np.ndarray
    axis_rotmats: np.ndarray
    dofs: tuple[tuple[str, ...], ...]
    root_order: tuple[str, ...]
    root_axis_rotmat: np.ndarray
    root_position: np.ndarray
    metres_per_unit: float


def euler_fixed_deg(angles_deg: np.ndarray, axes: str) -> np.ndarray:
    """(..., n) angles in degrees about ``axes`` (n letters), applied first to last about fixed
    axes -> (..., 3, 3); ``"XYZ"`` gives ``Rz @ Ry @ Rx``."""
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))
    out = np.broadcast_to(np.eye(3), a.shape[:-1] + (3, 3)).copy()
    for k, ax in enumerate(axes.upper()):
        out = axis_rotation_matrix(a[..., k], ax) @ out
    return out


def read_asf(path: str | os.PathLike) -> AsfSkeleton:
    """Read an ASF skeleton (``:units``, ``:root``, ``:bonedata``, ``:hierarchy``)."""
    path = Path(path)
    if not path.is_file():
        raise MocapError(f"ASF file not found: {path}")
    sections: dict[str, list[list[str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(":"):
            head, *rest = line.split()
            current = head[1:].lower()
            sections.setdefault(current, [])
            if rest:
                sections[current].append(rest)
        elif current is not None:
            sections[current].append(line.split())
    for need in ("root", "bonedata", "hierarchy"):
        if need not in sections:
            raise MocapError(f"{path}: no ':{need}' section; is this an Acclaim ASF file?")
    units = {r[0].lower(): r[1] for r in sections.get("units", []) if len(r) >= 2}
    if units.get("angle", "deg").lower() not in ("deg", "degree", "degrees"):
        raise MocapError(f"{path}: angle unit {units['angle']!r} not supported (only degrees)")
    scale = INCH_M / float(units.get("length", 1.0))
    root = {r[0].lower(): r[1:] for r in sections["root"]}
    root_order = tuple(s.lower() for s in root.get("order", "TX TY TZ RX RY RZ".split()))
    root_axis = root.get("axis", ["XYZ"])[0]
    root_rot = [c for c in root_order if c.startswith("r")]
    orientation = np.array([float(v) for v in root.get("orientation", [0, 0, 0])])
    c_root = euler_fixed_deg(orientation, root_axis)
    bones: dict[str, dict] = {}
    cur: dict | None = None
    for row in sections["bonedata"]:
        key = row[0].lower()
        if key == "begin":
            cur = {"dof": ()}
        elif key == "end":
            if cur is None or "name" not in cur:
                raise MocapError(f"{path}: a bone without a name in :bonedata")
            bones[cur["name"]] = cur
            cur = None
        elif cur is not None and key == "name":
            cur["name"] = row[1]
        elif cur is not None and key == "direction":
            cur["direction"] = np.array([float(v) for v in row[1:4]])
        elif cur is not None and key == "length":
            cur["length"] = float(row[1])
        elif cur is not None and key == "axis":
            cur["axis"] = (np.array([float(v) for v in row[1:4]]), row[4] if len(row) > 4 else "XYZ")
        elif cur is not None and key == "dof":
            cur["dof"] = tuple(v.lower() for v in row[1:])
    children: dict[str, list[str]] = {}
    for row in sections["hierarchy"]:
        if row[0].lower() in ("begin", "end"):
            continue
        children.setdefault(row[0], []).extend(row[1:])
    order: list[str] = []
    parents: list[int] = []
    stack = [(c, -1) for c in reversed(children.get("root", []))]
    while stack:
        name, parent = stack.pop()
        if name not in bones:
            raise MocapError(f"{path}: :hierarchy names bone {name!r} that :bonedata lacks")
        order.append(name)
        parents.append(parent)
        stack.extend((c, len(order) - 1) for c in reversed(children.get(name, [])))
    for name in order:
        for need in ("direction", "length", "axis"):
            if need not in bones[name]:
                raise MocapError(f"{path}: bone {name!r} lacks '{need}'")
    dirs = np.array([bones[n]["direction"] for n in order])
    dirs = dirs / np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-12)
    axes = np.stack([euler_fixed_deg(bones[n]["axis"][0], bones[n]["axis"][1]) for n in order])
    for name in order:
        if any(d not in ("rx", "ry", "rz") for d in bones[name]["dof"]):
            raise MocapError(f"{path}: bone {name!r} has dofs {bones[name]['dof']}; only rx/ry/rz are supported")
    if root_rot and root_axis.upper() != "".join(c[1].upper() for c in root_rot):
        raise MocapError(f"{path}: root rotation order {root_rot} differs from root axis {root_axis}")
    return AsfSkeleton(
        bone_names=tuple(order), parents=tuple(parents), directions=dirs,
        lengths=np.array([bones[n]["length"] for n in order]) * scale, axis_rotmats=axes,
        dofs=tuple(bones[n]["dof"] for n in order), root_order=root_order, root_axis_rotmat=c_root,
        root_position=np.array([float(v) for v in root.get("position", [0, 0, 0])]) * scale,
        metres_per_unit=scale,
    )


def read_amc(path: str | os.PathLike, skeleton: AsfSkeleton) -> dict[str, np.ndarray]:
    """AMC frames -> ``{"root": (T, 6) [file units / degrees in root order], bone: (T, ndof) deg}``."""
    path = Path(path)
    if not path.is_file():
        raise MocapError(f"AMC file not found: {path}")
    ndof = {n: len(d) for n, d in zip(skeleton.bone_names, skeleton.dofs)}
    ndof["root"] = len(skeleton.root_order)
    frames: list[dict[str, list[float]]] = []
    for k, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        toks = raw.split()
        if not toks or toks[0].startswith(("#", ":")):
            continue
        if len(toks) == 1 and toks[0].isdigit():
            frames.append({})
            continue
        if not frames:
            raise MocapError(f"{path}, line {k + 1}: values before the first frame number")
        name = toks[0]
        if name not in ndof:
            raise MocapError(f"{path}, line {k + 1}: bone {name!r} is not in the ASF skeleton (wrong ASF?)")
        if len(toks) - 1 != ndof[name]:
            raise MocapError(f"{path}, line {k + 1}: {name} has {len(toks) - 1} values, the ASF declares {ndof[name]}")
        frames[-1][name] = [float(v) for v in toks[1:]]
    if not frames:
        raise MocapError(f"{path}: no frames")
    complete = [all(name in f for name, n in ndof.items() if n) for f in frames]
    if not complete[-1] and all(complete[:-1]):
        frames = frames[:-1]  # a truncated last frame (golf_01.amc ends mid-frame)
    out = {}
    for name, n in ndof.items():
        if n == 0:
            continue
        rows = [f.get(name) for f in frames]
        if any(r is None for r in rows):
            bad = next(i for i, r in enumerate(rows) if r is None)
            raise MocapError(f"{path}: frame {bad + 1} lacks bone {name!r}")
        out[name] = np.array(rows, dtype=np.float64)
    return out


def asf_forward_kinematics(skeleton: AsfSkeleton, amc: dict[str, np.ndarray]
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward kinematics of AMC frames.

    Returns:
        starts: (T, B, 3) metres, where each bone begins; ends: (T, B, 3) metres;
        global_rotmats: (T, B, 3, 3) world rotation of each bone (identity at rest).
    """
    root = amc["root"]
    t = root.shape[0]
    order = skeleton.root_order
    trans = np.zeros((t, 3))
    for c, col in zip(order, root.T):
        if c.startswith("t"):
            trans[:, "xyz".index(c[1])] = col * skeleton.metres_per_unit
    rot_cols = [i for i, c in enumerate(order) if c.startswith("r")]
    c0 = skeleton.root_axis_rotmat
    g_root = c0 @ euler_fixed_deg(root[:, rot_cols], "".join(order[i][1] for i in rot_cols)) @ c0.T
    pos_root = skeleton.root_position + trans
    b = len(skeleton.bone_names)
    starts, ends = np.zeros((t, b, 3)), np.zeros((t, b, 3))
    rots = np.zeros((t, b, 3, 3))
    for j, name in enumerate(skeleton.bone_names):
        p = skeleton.parents[j]
        c = skeleton.axis_rotmats[j]
        dof = skeleton.dofs[j]
        local = c @ euler_fixed_deg(amc[name], "".join(d[1] for d in dof)) @ c.T if dof else np.eye(3)
        rots[:, j] = (g_root if p < 0 else rots[:, p]) @ local
        starts[:, j] = pos_root if p < 0 else ends[:, p]
        ends[:, j] = starts[:, j] + skeleton.lengths[j] * (rots[:, j] @ skeleton.directions[j])
    return starts, ends, rots


# ----------------------------------------------------------------------------- keypoints
def asf_keypoints(starts: dict[str, np.ndarray], rotmats: dict[str, np.ndarray]) -> np.ndarray:
    """Map CMU ASF points to KEYPOINT_NAMES.

    Args:
        starts: ASF bone name -> (T, 3) metres, where the bone starts (see ``_STARTS``).
        rotmats: ``lfoot``, ``rfoot``, ``head`` -> (T, 3, 3) world rotations (identity at rest).
    Returns:
        (T, K, 3) float64 metres.
    """
    k = {n: i for i, n in enumerate(base.KEYPOINT_NAMES)}
    t = next(iter(starts.values())).shape[0]
    out = np.full((t, len(k), 3), np.nan)
    for ours, bone in _STARTS.items():
        out[:, k[ours]] = starts[bone]
    offsets = {n: off for n, (_, off) in base._LOCAL_POINTS.items()} | EYE_OFFSETS
    for ours, bone in _FRAMED.items():
        out[:, k[ours]] = starts[bone] + rotmats[bone] @ np.asarray(offsets[ours])
    out[:, k["pelvis"]] = 0.5 * (out[:, k["left_hip"]] + out[:, k["right_hip"]])
    out[:, k["spine"]] = 0.5 * (starts["upperback"] + starts["thorax"])
    out[:, k["neck"]] = 0.5 * (out[:, k["left_shoulder"]] + out[:, k["right_shoulder"]])
    out[:, k["head"]] = 0.5 * (out[:, k["left_ear"]] + out[:, k["right_ear"]])
    return out


def amc_keypoints(asf_path: Path, amc_path: Path) -> tuple[np.ndarray, float]:
    """(T, K, 3) metres and fps (120, CMU's ASF/AMC rate) of one ASF/AMC take."""
    skel = read_asf(asf_path)
    starts, _, rots = asf_forward_kinematics(skel, read_amc(amc_path, skel))
    idx = {n: i for i, n in enumerate(skel.bone_names)}
    need = set(_STARTS.values()) | set(_FRAMED.values()) | {"upperback", "thorax"}
    missing = sorted(need - set(idx))
    if missing:
        raise MocapError(f"{asf_path} lacks the CMU bones {missing}")
    return asf_keypoints({n: starts[:, idx[n]] for n in need}, {n: rots[:, idx[n]] for n in need}), 120.0


def bvh_asf_keypoints(path: Path, names: dict[str, str] | None = None, *,
                      restore_thorax: bool = True) -> tuple[np.ndarray, float]:
    """(T, K, 3) metres and header fps of a BVH in ASF units (``names``: ASF bone -> BVH joint;
    ``None`` for native CMU names).

    These amc->bvh conversions drop the ASF ``thorax`` bone (its children sit at its start, the
    upper body ~12 cm too low: measured on 104_41 against its AMC). With ``restore_thorax`` the
    thorax is put back, approximated by the ``upperback`` bone (the offset of the thorax joint,
    CMU's two bones are ~2.1 units long and nearly parallel) turned by the thorax rotation.
    """
    from mocap.io.bvh import read_bvh
    from mocap.kinematics.ik import bvh_joint_positions

    motion = read_bvh(path, units="in")
    scale = 1.0 / 0.45  # the files are in CMU ASF units (1/0.45 inch)
    idx = {n: i for i, n in enumerate(motion.joint_names)}
    need = set(_STARTS.values()) | set(_FRAMED.values()) | {"upperback", "thorax"}
    names = names or {n: n for n in need}
    missing = sorted(names[n] for n in need if names[n] not in idx)
    if missing:
        raise MocapError(f"{path} lacks the joints {missing}")
    pos = bvh_joint_positions(motion) * scale
    framed = ("lfoot", "rfoot", "head", "thorax")
    rots = base._global_rotmats(motion.local_quats_wxyz, tuple(motion.parents), [idx[names[n]] for n in framed])
    if restore_thorax:
        jt = idx[names["thorax"]]
        below = np.zeros(len(motion.parents), dtype=bool)
        for j, p in enumerate(motion.parents):  # parents come first
            below[j] = p >= 0 and (p == jt or below[p])
        pos[:, below] += (rots[jt] @ (motion.rest_offsets[jt] * scale))[:, None, :]
    kp = asf_keypoints({n: pos[:, idx[names[n]]] for n in need}, {n: rots[idx[names[n]]] for n in ("lfoot", "rfoot", "head")})
    return kp, float(motion.fps)


# ----------------------------------------------------------------------------- takes
def extra_dir() -> Path:
    """``$MOCAP_EXTRA_DIR`` or ``<cache_dir>_extra`` (a sibling of :func:`lifting.data.cache_dir`,
    not inside it: ``lifting.data.list_takes`` globs every ``*.bvh`` under the cache folder)."""
    env = os.environ.get("MOCAP_EXTRA_DIR")
    if env:
        return Path(env)
    c = base.cache_dir()
    return c.with_name(c.name + "_extra")


def ensure_extra_unpacked(archive: Path | None = None, dest: Path | None = None) -> Path:
    """Unpack ``cmu_extra.tar.xz`` into ``dest`` once; return ``dest``."""
    archive = archive or base.shared_data_dir() / "mocap" / EXTRA_ARCHIVE
    dest = dest or extra_dir()
    if (dest / ".unpacked").exists():
        return dest
    if not archive.exists():
        raise MocapError(f"{archive} not found; put the shared data at <repo>/../shared/data or set MOCAP_SHARED_DATA")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(dest, filter="data")
    (dest / ".unpacked").write_text(str(archive) + "\n")
    return dest


def _asf_for(amc: Path) -> Path:
    asfs = sorted(amc.parent.glob("*.asf"))
    if len(asfs) == 1:
        return asfs[0]
    guess = amc.parent / (re.sub(r"\d+$", "", amc.stem) + ".asf")
    if guess.exists():
        return guess
    raise MocapError(f"no ASF skeleton found for {amc}")


_SUBJECTS = {"backflip": "acrobat", "charleston1": "93", "charleston2": "93", "lambada": "55", "golf_01": "golf"}


def source_of(path: Path) -> str:
    """``asf_amc``, ``bvh_mb`` (cgspeed MotionBuilder) or ``bvh_native`` (Przestr, CMU names)."""
    if path.suffix == ".amc":
        return "asf_amc"
    return "bvh_native" if "Przestr" in str(path) else "bvh_mb"


def list_extra_takes(root: Path | None = None) -> list[base.Take]:
    """The new takes of the extra archive (duplicates and subjects 01-14 left out), sorted by id."""
    root = root or ensure_extra_unpacked()
    descriptions = base._cmu_descriptions()
    takes = []
    for path in sorted([*root.rglob("*.amc"), *root.rglob("*.bvh")]):
        rel = path.relative_to(root).as_posix()
        if _SKIP.search(rel):
            continue
        take_id = path.stem
        m = re.fullmatch(r"(\d+)_\d\d", take_id)
        subject = m.group(1) if m else _SUBJECTS.get(take_id, "unknown")
        if subject == "unknown" or (subject.isdigit() and int(subject) <= 14):
            continue
        desc = descriptions.get(take_id, take_id.rstrip("0123456789_"))
        takes.append(base.Take(take_id, path, subject, CONTENT_FPS_BY_TAKE.get(take_id, CONTENT_FPS),
                               base.action_category(desc), desc))
    return sorted(takes, key=lambda t: t.take_id)


def load_extra_take(take: base.Take) -> np.ndarray:
    """(T, K, 3) float32 metres at CACHE_FPS, +Y up."""
    src = source_of(take.path)
    if src == "asf_amc":
        kp, fps = amc_keypoints(_asf_for(take.path), take.path)
    elif src == "bvh_mb":
        kp, fps = bvh_asf_keypoints(take.path, MB_NAMES)
        kp = kp[MB_DROP_FRAMES:]
    else:
        kp, fps = bvh_asf_keypoints(take.path)
    return base.resample(kp, take.content_fps or fps, base.CACHE_FPS).astype(np.float32)


def load_extra(part: str, *, takes: list[base.Take] | None = None) -> list[tuple[base.Take, np.ndarray]]:
    """Takes listed under ``"<part>_extra"`` in split.json (none if the key is absent), cached."""
    with open(base.SPLIT_PATH, encoding="utf-8") as f:
        ids = json.load(f).get(f"{part}_extra", [])
    if not ids:
        return []
    takes = takes if takes is not None else list_extra_takes()
    by_id = {t.take_id: t for t in takes}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise MocapError(f"split.json {part}_extra names takes not in cmu_extra: {unknown[:5]}")
    cache_file = base.cache_dir() / f"keypoints_extra_v{EXTRA_CACHE_VERSION}.npz"
    arrays: dict[str, np.ndarray] = {}
    if cache_file.exists():
        with np.load(cache_file) as data:
            arrays = {k: data[k] for k in data.files}
    todo = [i for i in ids if i not in arrays]
    if todo:
        for i in todo:
            arrays[i] = load_extra_take(by_id[i])
        from mocap.formats import atomic_path

        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_file, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    return [(by_id[i], arrays[i]) for i in ids]


def load_with_extra(part: str, *, takes: list[base.Take] | None = None) -> list[tuple[base.Take, np.ndarray]]:
    """:func:`lifting.data.load_dataset` of ``part`` followed by :func:`load_extra` of ``part``."""
    return base.load_dataset(part, takes=takes) + load_extra(part)


def summary(parts: tuple[str, ...] = ("train", "val")) -> str:
    """Takes and minutes per source and split part (loads and caches the takes)."""
    lines = [f"{'part':<12}{'source':<12}{'takes':>6}{'minutes':>9}  subjects"]
    for part in parts:
        rows: dict[str, list] = {}
        for take, kp in load_extra(part):
            r = rows.setdefault(source_of(take.path), [0, 0.0, set()])
            r[0] += 1
            r[1] += kp.shape[0] / base.CACHE_FPS / 60.0
            r[2].add(take.subject)
        for src in SOURCES:
            if src in rows:
                n, minutes, subj = rows[src]
                lines.append(f"{part + '_extra':<12}{src:<12}{n:>6}{minutes:>9.2f}  {','.join(sorted(subj))}")
        total = sum(r[1] for r in rows.values())
        lines.append(f"{part + '_extra':<12}{'all':<12}{sum(r[0] for r in rows.values()):>6}{total:>9.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lifting.data_extra", description=__doc__.split("\n")[0])
    parser.add_argument("--summary", action="store_true", help="print takes and minutes per source")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary())
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
