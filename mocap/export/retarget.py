"""Retargeting: motion of one skeleton onto another rig (pure numpy; Blender I/O lives in
:mod:`mocap.export.blender`).

Both skeletons are mapped by bone name onto *canonical joints* (the MOTION21 names) with
the tables in :data:`NAMING` (our BVH/motion21, Mixamo, Rigify, Unreal, VRM, SMPL, CMU) or a
JSON mapping file ``{"left_knee": "MyRig_L_Calf", ...}``. Fingers (:data:`FINGERS`, MOTION61's
finger joints) are mapped the same way where both skeletons have them (Mixamo, Rigify, Unreal,
VRM 1.0, VRoid, SMPL-X, anny name theirs); a rig without finger bones, or a motion without
fingers, leaves the hands as before.

Rotations are world-axis, rest-relative (as in :mod:`mocap.kinematics.ik`): the identity
everywhere is the rest pose. A target bone mapped to canonical joint ``c`` gets the global
rotation ``G_t = D G_s A``: ``G_s`` the source joint's global rotation, ``A`` the minimal
rotation that turns the target's rest direction towards the next canonical joint (its
"main child") onto the source's rest direction (so an A-pose rig is first put in the
source's rest pose, without twisting the limb about its own axis), and ``D`` the minimal
rotation that makes the bone point exactly where the source points now (absorbs what the
two hierarchies do differently between mapped joints). Unmapped bones (twist bones,
clavicles, unmapped fingers) keep their rest pose relative to their parent.

Root motion is scaled by the ratio of hip heights (leg length). With ``pin_feet`` (the
default) planted feet (:func:`planted_feet`) stay where the scaled capture puts them: first
the root moves (:func:`_root_correction`: the planted foot's miss, averaged over both feet in
double support), then what is left (the two feet disagree) is taken up by the smallest
change of each leg (two-bone IK towards the goal, faded in and out). Limbs are otherwise
exactly the capture's directions. ``pin_hands`` (off by default) bends the arms so that the
wrist keeps its place relative to the shoulder, scaled by arm length: it moves the arms
only as much as their upper arm / forearm proportions differ from the capture's.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap.errors import MocapError
from mocap.kinematics.limbs import two_bone_ik
from mocap.rotations import (matrix_to_quat_wxyz, quat_continuous_wxyz, quat_wxyz_to_matrix,
                             rotation_matrix_between_vectors)
from mocap.skeletons import rest_positions

#: the finger joints of one hand, per finger from the palm out (MOTION61's ``<side>_hand_<joint>``)
_FINGER_CHAINS = {"thumb": ("cmc", "mcp", "ip", "tip"),
                  **{f: ("mcp", "pip", "dip", "tip") for f in ("index_finger", "middle_finger", "ring_finger", "pinky")}}
FINGERS = tuple(f"{s}_hand_{f}_{j}" for s in ("left", "right") for f, chain in _FINGER_CHAINS.items() for j in chain)
CANONICAL = ("pelvis", "left_hip", "left_knee", "left_ankle", "left_foot_index", "right_hip", "right_knee",
             "right_ankle", "right_foot_index", "spine", "neck", "head", "left_shoulder", "left_elbow",
             "left_wrist", "right_shoulder", "right_elbow", "right_wrist") + FINGERS
#: Canonical joints a rig must have to be retargeted.
REQUIRED = ("pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle",
            "spine", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
            "right_elbow", "right_wrist")
#: The canonical joint each canonical joint points at (its rest direction is aligned): along the
#: limbs, the wrist at its middle knuckle (where both skeletons have fingers), along each finger.
MAIN_CHILD = {"pelvis": "spine", "spine": "neck", "neck": "head",
              **{f"{s}_{a}": f"{s}_{b}" for s in ("left", "right") for a, b in
                 (("hip", "knee"), ("knee", "ankle"), ("ankle", "foot_index"), ("shoulder", "elbow"),
                  ("elbow", "wrist"), ("wrist", "hand_middle_finger_mcp"))},
              **{f"{s}_hand_{f}_{a}": f"{s}_hand_{f}_{b}" for s in ("left", "right")
                 for f, chain in _FINGER_CHAINS.items() for a, b in zip(chain[:-1], chain[1:])}}


#: Rounds of root correction for planted feet: the root first takes the planted feet's miss,
#: then whatever a leg could not reach.
_ROOT_ROUNDS = 3

_LIMB = "{s}_hip {s}_knee {s}_ankle {s}_foot_index {s}_shoulder {s}_elbow {s}_wrist".split()


def _naming(trunk: str, limbs: str, left: str, right: str) -> dict[str, str]:
    """One naming convention: canonical joint -> bone name.

    ``trunk``: the bones of pelvis, spine, neck and head; ``limbs``: those of the joints of
    :data:`_LIMB`, with ``{S}`` where the rig spells the side (``left`` / ``right``) and
    ``{s}`` for plain "left" / "right"; ``-``: no such bone.
    """
    out = dict(zip(("pelvis", "spine", "neck", "head"), trunk.split()))
    for canon, bone in zip(_LIMB, limbs.split()):
        for side, spelled in (("left", left), ("right", right)):
            out[canon.replace("{s}", side)] = bone.replace("{S}", spelled).replace("{s}", side)
    return out


def _finger_naming(thumb: str, finger: str, spelled: tuple[str, str, str, str], left: str, right: str) -> dict[str, str]:
    """One naming convention's finger bones: canonical finger joint -> bone name.

    ``thumb``: the bones of the thumb's cmc, mcp, ip, tip; ``finger``: those of a finger's mcp,
    pip, dip, tip with ``{F}`` for the finger as the rig spells it (``spelled``: index, middle,
    ring, pinky); ``{S}``: the side as the rig spells it, ``{s}`` plain; ``-``: no such bone.
    """
    out = {}
    for side, sp in (("left", left), ("right", right)):
        rows = [("thumb", thumb)] + [(f, finger.replace("{F}", name)) for f, name in
                                     zip(("index_finger", "middle_finger", "ring_finger", "pinky"), spelled)]
        for f, bones in rows:
            for j, bone in zip(_FINGER_CHAINS[f], bones.split()):
                if bone != "-":
                    out[f"{side}_hand_{f}_{j}"] = bone.replace("{S}", sp).replace("{s}", side)
    return out


#: Canonical joint -> bone name, per naming convention (names compared case-insensitively,
#: after removing prefixes such as ``mixamorig:``, ``DEF-``, ``ORG-``, ``m_avg_``).
NAMING: dict[str, dict[str, str]] = {
    "motion21": {n: n for n in CANONICAL},
    "mixamo": {**_naming("Hips Spine1 Neck Head", "{S}UpLeg {S}Leg {S}Foot {S}ToeBase {S}Arm {S}ForeArm {S}Hand",
                         "Left", "Right"),
               **_finger_naming("{S}HandThumb1 {S}HandThumb2 {S}HandThumb3 {S}HandThumb4",
                                "{S}Hand{F}1 {S}Hand{F}2 {S}Hand{F}3 {S}Hand{F}4", ("Index", "Middle", "Ring", "Pinky"),
                                "Left", "Right")},
    "rigify": {**_naming("spine spine.002 spine.004 spine.006",
                         "thigh.{S} shin.{S} foot.{S} toe.{S} upper_arm.{S} forearm.{S} hand.{S}", "L", "R"),
               **_finger_naming("thumb.01.{S} thumb.02.{S} thumb.03.{S} -", "f_{F}.01.{S} f_{F}.02.{S} f_{F}.03.{S} -",
                                ("index", "middle", "ring", "pinky"), "L", "R")},
    "unreal": {**_naming("pelvis spine_02 neck_01 head",
                         "thigh_{S} calf_{S} foot_{S} ball_{S} upperarm_{S} lowerarm_{S} hand_{S}", "l", "r"),
               **_finger_naming("thumb_01_{S} thumb_02_{S} thumb_03_{S} -", "{F}_01_{S} {F}_02_{S} {F}_03_{S} -",
                                ("index", "middle", "ring", "pinky"), "l", "r")},
    "vrm": {**_naming("hips spine neck head",
                      "{S}UpperLeg {S}LowerLeg {S}Foot {S}Toes {S}UpperArm {S}LowerArm {S}Hand", "left", "right"),
            **_finger_naming("{S}ThumbMetacarpal {S}ThumbProximal {S}ThumbDistal -",
                             "{S}{F}Proximal {S}{F}Intermediate {S}{F}Distal -", ("Index", "Middle", "Ring", "Little"),
                             "left", "right")},
    "vroid": {**_naming("C_Hips C_Spine C_Neck C_Head",
                        "{S}_UpperLeg {S}_LowerLeg {S}_Foot {S}_ToeBase {S}_UpperArm {S}_LowerArm {S}_Hand", "L", "R"),
              **_finger_naming("{S}_Thumb1 {S}_Thumb2 {S}_Thumb3 -", "{S}_{F}1 {S}_{F}2 {S}_{F}3 -",
                               ("Index", "Middle", "Ring", "Little"), "L", "R")},
    "smpl": {**_naming("pelvis spine2 neck head",
                       "{s}_hip {s}_knee {s}_ankle {s}_foot {s}_shoulder {s}_elbow {s}_wrist", "left", "right"),
             **_finger_naming("{s}_thumb1 {s}_thumb2 {s}_thumb3 -", "{s}_{F}1 {s}_{F}2 {s}_{F}3 -",
                              ("index", "middle", "ring", "pinky"), "left", "right")},
    "smpl_fbx": _naming("Pelvis Spine2 Neck Head",
                        "{S}_Hip {S}_Knee {S}_Ankle {S}_Foot {S}_Shoulder {S}_Elbow {S}_Wrist", "L", "R"),
    "anny": {**_naming("root spine02 neck01 head",
                       "upperleg01.{S} lowerleg01.{S} foot.{S} toe2-1.{S} upperarm01.{S} lowerarm01.{S} wrist.{S}",
                       "L", "R"),
             **_finger_naming("finger1-1.{S} finger1-2.{S} finger1-3.{S} -", "finger{F}-1.{S} finger{F}-2.{S} finger{F}-3.{S} -",
                              ("2", "3", "4", "5"), "L", "R")},
    "cmu": _naming("hip chest neck head", "{S}Thigh {S}Shin {S}Foot - {S}Shldr {S}ForeArm {S}Hand", "l", "r"),
}
_PREFIX = re.compile(r"^(mixamorig\d*[:_]|def[-_]|org[-_]|j_bip_|m_avg_|bip01[ _]|armature[|:])", re.IGNORECASE)


def _norm(name: str) -> str:
    return _PREFIX.sub("", name.rsplit("|", 1)[-1]).lower()


def best_name_match(bone_names: Sequence[str]) -> tuple[dict[str, str], str]:
    """The naming convention of :data:`NAMING` that matches most of ``bone_names``: its
    mapping canonical joint -> bone (possibly incomplete) and its name ("" if none matches)."""
    by_norm = {}
    for b in bone_names:
        by_norm.setdefault(_norm(b), b)
    best: dict[str, str] = {}
    best_name = ""
    for convention, table in NAMING.items():
        found = {c: by_norm[_norm(b)] for c, b in table.items() if _norm(b) in by_norm}
        if len(found) > len(best):
            best, best_name = found, convention
    return best, best_name


def auto_bone_map(bone_names: Sequence[str], *, override: Mapping[str, str] | None = None,
                  where: str = "the rig") -> dict[str, str]:
    """Canonical joint -> bone name for a rig, by the naming convention that matches most bones.

    ``override`` entries (canonical -> bone) win. Raises MocapError naming the canonical
    joints that could not be mapped and how to supply a mapping file.
    """
    best, best_name = best_name_match(bone_names)
    mapping = override_bone_map(best, override, bone_names, where=where)
    missing = [c for c in REQUIRED if c not in mapping]
    if missing:
        example = json.dumps({c: f"<bone of {where} for {c}>" for c in missing[:2]})
        raise MocapError(
            f"could not map {len(missing)} joint(s) of {where} by bone name (closest naming: {best_name or 'none'}): "
            f"{', '.join(missing)}. Write a JSON mapping file such as {example} and pass it with --mapping "
            f"(its bones: {', '.join(list(bone_names)[:12])}{', ...' if len(bone_names) > 12 else ''})")
    return mapping


def override_bone_map(mapping: Mapping[str, str], override: Mapping[str, str] | None, bone_names: Sequence[str], *,
                      where: str = "the rig", what: str = "mapping file") -> dict[str, str]:
    """``mapping`` (canonical joint -> bone) with the entries of ``override`` on top.

    Raises MocapError, naming ``what`` (where the entries come from), for an entry whose
    joint is not one of :data:`CANONICAL` or whose bone is not in ``bone_names``.
    """
    out, names = dict(mapping), set(bone_names)
    for canon, bone in (override or {}).items():
        if canon not in CANONICAL:
            raise MocapError(f"{what} names {canon!r}, which is not a joint we map; use: {', '.join(CANONICAL)}")
        if bone not in names:
            raise MocapError(f"{what} maps {canon} to {bone!r}, which is not a bone of {where}")
        out[canon] = bone
    return out


def load_bone_map(path: str | os.PathLike) -> dict[str, str]:
    """Read a JSON mapping file ``{canonical joint: bone name}``."""
    path = Path(path)
    if not path.is_file():
        raise MocapError(f"mapping file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise MocapError(f"mapping file {path} is not JSON: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise MocapError(f'mapping file {path} must be a JSON object {{"left_knee": "BoneName", ...}}')
    return data


@dataclass(frozen=True)
class Rig:
    """A skeleton in its rest pose: bone names, parents (root -1, parents first), bone head
    positions (B, 3) in metres, +Y up, the character facing +Z."""

    bone_names: tuple[str, ...]
    parents: tuple[int, ...]
    rest_positions: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.bone_names)
        if len(self.parents) != n or np.shape(self.rest_positions) != (n, 3):
            raise ValueError(f"{n} bones, {len(self.parents)} parents, rest positions {np.shape(self.rest_positions)}")
        for j, p in enumerate(self.parents):
            if p >= j:
                raise ValueError(f"bone {self.bone_names[j]}: parents must come before children")

    def index(self, name: str) -> int:
        return self.bone_names.index(name)


@dataclass(frozen=True)
class RetargetResult:
    """Target motion: ``local_quats_wxyz`` (T, B, 4) rest-relative, world axes;
    ``root_translation`` (T, 3) metres: displacement of ``root_bone`` (the root bone above
    the hips, or the hips) from its rest position;
    ``positions`` (T, B, 3) bone heads; ``scale`` target / source leg length; ``planted``
    (T, 2) the source's planted feet (:func:`planted_feet`; None for a rig without legs);
    ``fidelity`` how closely it follows the source (:mod:`mocap.export.fidelity`), where measured."""

    bone_names: tuple[str, ...]
    local_quats_wxyz: np.ndarray
    root_translation: np.ndarray
    positions: np.ndarray
    root_bone: str
    scale: float
    planted: np.ndarray | None = None  # (T, 2) bool, left and right: the source's feet planted
    fidelity: object | None = None  # a mocap.export.fidelity.Fidelity, set by mocap.export.blender.retarget_to_file


def _hip_height(rest: np.ndarray, pelvis: int, feet: Sequence[int]) -> float:
    return float(rest[pelvis, 1] - rest[list(feet), 1].min())


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a (T,) bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def planted_feet(ankles: np.ndarray, *, fps: float, speed_m_s: float = 0.3, height_m: float = 0.08,
                 min_frames: int = 3) -> np.ndarray:
    """Which feet are planted, per frame: the rule retargeting and its fidelity line share.

    A foot is planted where its ankle moves horizontally slower than ``speed_m_s`` and is
    within ``height_m`` of the lowest ankle height of the clip, for ``min_frames`` frames or
    more (captures come with planted feet already locked by :mod:`mocap.cleanup.contact`,
    so the thresholds are strict).

    Args:
        ankles: (T, 2, 3) metres, +Y up: left and right ankle.
        fps: frames per second.
    Returns:
        (T, 2) bool.
    """
    a = np.asarray(ankles, dtype=np.float64)
    if a.ndim != 3 or a.shape[1:] != (2, 3):
        raise ValueError(f"ankles must have shape (T, 2, 3), got {a.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if len(a) < 2:
        return np.zeros(a.shape[:2], bool)
    speed = np.linalg.norm(np.gradient(a[..., [0, 2]], axis=0), axis=-1) * fps
    with np.errstate(invalid="ignore"):
        out = (speed < speed_m_s) & (a[..., 1] - np.nanmin(a[..., 1]) < height_m)
    for f in range(2):
        for lo, hi in _runs(out[:, f]):
            if hi - lo < min_frames:
                out[lo:hi, f] = False
    return out


def _ramp(mask: np.ndarray, frames: int) -> np.ndarray:
    """(T,) weights: inside each run of ``mask`` rising from 1 / ``frames`` to 1 over
    ``frames`` frames from either end; 0 outside."""
    t = np.arange(len(mask))
    w = np.zeros(len(mask))
    for lo, hi in _runs(mask):
        w[lo:hi] = np.minimum(np.minimum(t[lo:hi] - lo + 1, hi - t[lo:hi]), frames) / frames
    return w


def _nearest(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each frame: the nearest frame where ``mask`` (T,) is True, and the distance to it
    (frames). ``mask`` must have a True frame."""
    idx = np.flatnonzero(mask)
    t = np.arange(len(mask))
    right = idx[np.minimum(np.searchsorted(idx, t), len(idx) - 1)]
    left = idx[np.maximum(np.searchsorted(idx, t, side="right") - 1, 0)]
    near = np.where(np.abs(t - left) <= np.abs(right - t), left, right)
    return near, np.abs(near - t)


def _foot_goals(ankles: np.ndarray, planted: np.ndarray) -> np.ndarray:
    """(T, 2, 3) where each planted foot's ankle should be: horizontally still at its mean
    over the contact run, at the capture's height; NaN where not planted."""
    goal = np.full(ankles.shape, np.nan)
    for f in range(2):
        for lo, hi in _runs(planted[:, f]):
            goal[lo:hi, f] = ankles[lo:hi, f]
            goal[lo:hi, f, 0::2] = ankles[lo:hi, f, 0::2].mean(0)
    return goal


def _root_correction(miss: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(T, 3) root offset: the weighted mean of the planted feet's misses (T, 2, 3) where any
    weight (T, 2) is positive, linearly interpolated (held at the ends) elsewhere."""
    total = weight.sum(1)
    have = total > 0
    out = np.zeros((len(miss), 3))
    if not have.any():
        return out
    mean = np.einsum("tf,tfi->ti", weight, np.nan_to_num(miss))[have] / total[have, None]
    t = np.arange(len(miss))
    for i in range(3):
        out[:, i] = np.interp(t, t[have], mean[:, i])
    return out


def _faded(miss: np.ndarray, planted: np.ndarray, frames: int) -> np.ndarray:
    """(T, 3): ``miss`` (T, 3) where ``planted`` (T,); elsewhere the miss at the nearest
    contact frame, fading out over ``frames`` frames (the leg eases in and out of a contact)."""
    near, dist = _nearest(planted)
    fade = np.clip(1.0 - dist / (frames + 1.0), 0.0, 1.0)
    return np.nan_to_num(miss[near]) * fade[:, None]


def _bend_limb(glob: np.ndarray, pos: np.ndarray, h: int, k: int, a: int, goal: np.ndarray) -> None:
    """Turn the bones at ``h`` and ``k`` (in ``glob`` (T, B, 3, 3)) so the joint ``a`` reaches
    ``goal`` (T, 3) by two-bone IK: the smallest swing of the limb plus the bend its new
    reach needs (the limb's plane and twist are kept)."""
    new_k, new_a = two_bone_ik(pos[:, h], pos[:, k], pos[:, a], goal)
    d1 = rotation_matrix_between_vectors(pos[:, k] - pos[:, h], new_k - pos[:, h])
    glob[:, h] = d1 @ glob[:, h]
    d2 = rotation_matrix_between_vectors(np.einsum("tij,tj->ti", d1, pos[:, a] - pos[:, k]), new_a - new_k)
    glob[:, k] = d2 @ d1 @ glob[:, k]


def retarget(source: Rig, source_map: Mapping[str, str], source_global_rotmats: np.ndarray,
             source_positions: np.ndarray, target: Rig, target_map: Mapping[str, str], *,
             pin_feet: bool = True, pin_hands: bool = False, fps: float = 30.0,
             blend_frames: int = 4) -> RetargetResult:
    """Move ``target`` like ``source``.

    Args:
        source_global_rotmats: (T, J, 3, 3) world-axis rest-relative global rotations of the
            source bones (identity = the source's rest pose).
        source_positions: (T, J, 3) metres, +Y up, the source bone heads.
        source_map, target_map: canonical joint -> bone name (:func:`auto_bone_map`).
        pin_feet: planted feet (:func:`planted_feet`) stay where the scaled source puts
            them, by moving the root and then by the smallest change of the legs.
        pin_hands: bend the arms so the wrists keep their place relative to the shoulders
            (scaled by arm length).
        fps: the source's frame rate (for the feet's speeds).
        blend_frames: frames over which the leg changes fade in and out of a contact.
    Returns:
        :class:`RetargetResult` for the target's bones.
    """
    gs = np.asarray(source_global_rotmats, dtype=np.float64)
    ps = np.asarray(source_positions, dtype=np.float64)
    t = gs.shape[0]
    if gs.shape != (t, len(source.bone_names), 3, 3) or ps.shape != (t, len(source.bone_names), 3):
        raise ValueError(f"source rotations {gs.shape} / positions {ps.shape} do not fit {len(source.bone_names)} bones")
    common = [c for c in CANONICAL if c in source_map and c in target_map]
    src = {c: source.index(source_map[c]) for c in common}
    tgt = {c: target.index(target_map[c]) for c in common}
    canon_of = {b: c for c, b in tgt.items()}
    rs, rt = source.rest_positions, target.rest_positions
    feet_c = [c for c in ("left_ankle", "right_ankle", "left_foot_index", "right_foot_index") if c in common]
    scale = _hip_height(rt, tgt["pelvis"], [tgt[c] for c in feet_c]) / _hip_height(rs, src["pelvis"], [src[c] for c in feet_c])

    nb = len(target.bone_names)
    glob = np.tile(np.eye(3), (t, nb, 1, 1))
    align = {}  # mapped bone -> (A, main-child canonical or None)
    for b in range(nb):
        p = target.parents[b]
        c = canon_of.get(b)
        if c is None:  # unmapped: rigid with its parent (rest-relative)
            glob[:, b] = glob[:, p] if p >= 0 else np.eye(3)
            continue
        child = MAIN_CHILD.get(c)
        if child in common:
            a = rotation_matrix_between_vectors(rt[tgt[child]] - rt[b], rs[src[child]] - rs[src[c]])
            g = gs[:, src[c]] @ a
            now = ps[:, src[child]] - ps[:, src[c]]
            glob[:, b] = rotation_matrix_between_vectors(g @ (rt[tgt[child]] - rt[b]), now) @ g
            align[b] = a
        else:  # no direction to match: follow the source joint with the mapped parent's alignment
            anc = p
            while anc >= 0 and anc not in align:
                anc = target.parents[anc]
            a = align.get(anc, np.eye(3))
            glob[:, b] = gs[:, src[c]] @ a
            if anc >= 0:  # and the parent's exact-direction correction
                glob[:, b] = glob[:, anc] @ np.swapaxes(gs[:, src[canon_of[anc]]] @ align[anc], -1, -2) @ glob[:, b]

    root_b = tgt["pelvis"]
    pelvis_pos = ps[:, src["pelvis"]] * scale
    pos = _fk(glob, target, rt, root_b, pelvis_pos)
    legs = [tuple(f"{s}_{j}" for j in ("hip", "knee", "ankle")) for s in ("left", "right")]
    planted = None
    if all(n in common for leg in legs for n in leg):
        planted = planted_feet(ps[:, [src[leg[2]] for leg in legs]], fps=fps)
    if pin_feet and planted is not None:
        ankles = [tgt[leg[2]] for leg in legs]
        goal = _foot_goals(ps[:, [src[leg[2]] for leg in legs]] * scale, planted)
        ramp = np.stack([_ramp(planted[:, f], blend_frames) for f in range(2)], 1)
        miss, weight = goal - pos[:, ankles], ramp
        copied = glob
        for _ in range(_ROOT_ROUNDS):
            pelvis_pos = pelvis_pos + _root_correction(miss, weight)
            glob = copied.copy()
            pos = _fk(glob, target, rt, root_b, pelvis_pos)
            for f, leg in enumerate(legs):
                if planted[:, f].any():
                    h, k, a = (tgt[n] for n in leg)
                    _bend_limb(glob, pos, h, k, a, pos[:, a] + _faded(goal[:, f] - pos[:, a], planted[:, f], blend_frames))
                    _refresh_unmapped(glob, target, canon_of, below=(h, k))
            pos = _fk(glob, target, rt, root_b, pelvis_pos)
            # a foot out of the leg's reach (a shorter leg, a stretched stance): the root moves on
            miss = np.where(planted[..., None], goal - pos[:, ankles], 0.0)
            if np.abs(miss).max(initial=0.0) < 1e-5:
                break
            weight = np.where(np.linalg.norm(miss, axis=-1) >= 1e-5, 1.0, 1e-6) * ramp  # the one that misses
    arms = [tuple(f"{s}_{j}" for j in ("shoulder", "elbow", "wrist")) for s in ("left", "right")]
    for arm in arms if pin_hands else ():
        if not all(n in common for n in arm):
            continue
        h, k, a = (tgt[n] for n in arm)
        sh, el, wr = (src[n] for n in arm)
        ratio = (np.linalg.norm(rt[k] - rt[h]) + np.linalg.norm(rt[a] - rt[k])) / (
            np.linalg.norm(rs[el] - rs[sh]) + np.linalg.norm(rs[wr] - rs[el]))
        _bend_limb(glob, pos, h, k, a, pos[:, h] + (ps[:, wr] - ps[:, sh]) * ratio)
        _refresh_unmapped(glob, target, canon_of, below=(h, k))
        pos = _fk(glob, target, rt, root_b, pelvis_pos)

    local = glob.copy()
    for b in range(nb):
        p = target.parents[b]
        if p >= 0:
            local[:, b] = np.swapaxes(glob[:, p], -1, -2) @ glob[:, b]
    quats = quat_continuous_wxyz(matrix_to_quat_wxyz(local), axis=0)
    # the translation goes on the root bone above the hips (Rigify's and Unreal's "root"): a
    # translated child bone is lost where an importer connects it to its parent (Blender's FBX import)
    return RetargetResult(bone_names=target.bone_names, local_quats_wxyz=quats, root_translation=pelvis_pos - rt[root_b],
                          positions=pos, root_bone=target.bone_names[_top(target, root_b)], scale=scale,
                          planted=planted)


def _refresh_unmapped(glob: np.ndarray, rig: Rig, canon_of: Mapping[int, str], below: Sequence[int]) -> None:
    """Unmapped bones under the changed bones follow their parents again."""
    changed = set(below)
    for b in range(len(rig.bone_names)):
        p = rig.parents[b]
        if p in changed and b not in canon_of:
            glob[:, b] = glob[:, p]
            changed.add(b)


def _top(rig: Rig, b: int) -> int:
    """The root bone above bone ``b`` (``b`` itself when it has no parent)."""
    while rig.parents[b] >= 0:
        b = rig.parents[b]
    return b


def _fk(glob: np.ndarray, rig: Rig, rest: np.ndarray, root_b: int, root_pos: np.ndarray) -> np.ndarray:
    """Bone heads (T, B, 3): the mapped root at ``root_pos``, the (unposed) bones above it
    moved with it, other root bones at rest."""
    t, nb = glob.shape[:2]
    pos = np.empty((t, nb, 3))
    top = _top(rig, root_b)
    for b in range(nb):
        p = rig.parents[b]
        if b == root_b:
            pos[:, b] = root_pos
        elif b == top:
            pos[:, b] = rest[b] + root_pos - rest[root_b]
        elif p < 0:
            pos[:, b] = rest[b]
        else:
            pos[:, b] = pos[:, p] + np.einsum("tij,j->ti", glob[:, p], rest[b] - rest[p])
    return pos


def hierarchy_motion(rig: Rig, result: RetargetResult) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """A retarget result as a joint hierarchy file (BVH) stores it: (joint names, rest
    offsets (B, 3) metres, root translation (T, 3) metres).

    The offsets are each bone head's from its parent's in the rest pose (the first bone's:
    from the origin); the translation moves the first bone, which moves the result's root
    bone as the result does (the bones above it move with it, as in the result). Whitespace and braces in
    bone names become ``_`` (a BVH name is one word). MocapError for a rig with several
    root bones (a BVH has one).
    """
    roots = [rig.bone_names[b] for b, p in enumerate(rig.parents) if p < 0]
    if len(roots) != 1:
        raise MocapError(f"a BVH has one root joint, the rig has {len(roots)} root bones ({', '.join(roots)}); "
                         "parent them under one bone, or write .fbx, .glb or .blend")
    rest = np.asarray(rig.rest_positions, dtype=np.float64)
    parents = np.asarray(rig.parents)
    offsets = rest - np.where(parents[:, None] >= 0, rest[np.maximum(parents, 0)], 0.0)
    names = tuple(re.sub(r"[\s{}]", "_", n) for n in rig.bone_names)
    return names, offsets, np.asarray(result.root_translation, dtype=np.float64)


def motion_to_source(joint_names: Sequence[str], parents: Sequence[int], rest_offsets: np.ndarray,
                     local_quats_wxyz: np.ndarray, root_translation: np.ndarray) -> tuple[Rig, np.ndarray, np.ndarray]:
    """(Rig, global rotmats (T, J, 3, 3), positions (T, J, 3)) of a motion given by local rotations."""
    from mocap.kinematics.ik import forward_kinematics_with_rotations

    off = np.asarray(rest_offsets, dtype=np.float64)
    pos, gq = forward_kinematics_with_rotations(local_quats_wxyz, root_translation, off, parents)
    return Rig(tuple(joint_names), tuple(parents), rest_positions(off, parents)), quat_wxyz_to_matrix(gq), pos
