# SPDX-License-Identifier: GPL-3.0-or-later
"""Import a ``motion.npz`` or BVH made by ``mocap`` onto an armature (the worker of the
Import operator; it needs ``bpy``, and the modules vendored from mocap-lift in ``core``).

Onto an existing rig the motion is retargeted with :func:`core.retarget.retarget` (bones
mapped by name, root motion scaled by the ratio of leg lengths, ankles optionally pinned
on the scaled source so planted feet stay planted). With no rig a new armature with the
motion's own skeleton (a box per bone, so it renders) is created and keyed directly.

Placement: the motion starts where the character stands: the pelvis of the first frame
is moved horizontally onto the rig's rest pelvis (for a new armature: onto the 3D
cursor). ``travel`` scales the horizontal path of the pelvis from there (0 = in place,
"root motion off").

Keys: one new Action per import, one key per frame from ``frame_start``, linear
interpolation, quaternion rotation channels for every bone and location channels for
the root bone. The scene's frame rate and range are set to the motion's.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core.errors import MocapError
from .core.blender import Y_UP_TO_BLENDER, build_armature, read_rig, set_scene_fps
from .core.fidelity import retarget_fidelity
from .core.retarget import REQUIRED, auto_bone_map, best_name_match, motion_to_source, override_bone_map, retarget
from .core.rotations import matrix_to_quat_wxyz, quat_continuous_wxyz, quat_wxyz_to_matrix

SUFFIXES = (".npz", ".bvh")
_LINEAR = 1  # Blender's enum value of 'LINEAR' keyframe interpolation


@dataclass(frozen=True)
class SourceMotion:
    """A motion by local rotations: ``rest_offsets`` (J, 3) metres, ``local_quats_wxyz``
    (T, J, 4) rest-relative, ``root_translation`` (T, 3) metres, +Y up."""

    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    rest_offsets: np.ndarray
    local_quats_wxyz: np.ndarray
    root_translation: np.ndarray
    fps: float
    start_frame: int = 0  # the video frame of the motion's first frame (motion.npz's; a BVH's: 0)

    @property
    def num_frames(self) -> int:
        return int(self.local_quats_wxyz.shape[0])


@dataclass(frozen=True)
class ImportResult:
    """What an import did: the armature object, its new action, the frames keyed, the
    retarget scale (1 for a new armature), the bone mapping used (canonical -> bone), the
    offset (3,) metres, our +Y-up axes, added to the scaled motion's positions, and on a rig
    how closely its limbs follow the capture (the line ``mocap retarget`` prints)."""

    armature: object
    action: object
    frames: int
    scale: float
    bone_map: dict
    offset: np.ndarray
    fidelity: str = ""  # the fidelity line (core.fidelity.Fidelity.line); empty for a new armature


def load_source(path: str | os.PathLike) -> SourceMotion:
    """Read a motion.npz (with local rotations) or a BVH file; MocapError in plain words."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        what = f"a {suffix} file" if suffix else "a file without an extension"
        raise MocapError(f"{path.name} is {what}: choose a motion.npz or .bvh file written by mocap")
    if not path.is_file():
        raise MocapError(f"file not found: {path}")
    if suffix == ".npz":
        from .core.formats import load_motion
        from .core.skeletons import MOTION21, rest_offsets

        m = load_motion(path)
        if m.local_quats_wxyz is None or m.root_translation is None:
            raise MocapError(f"{path.name} holds joint positions only; re-run 'mocap lift' on it (it adds rotations)")
        off = m.rest_offsets if m.rest_offsets is not None else rest_offsets(MOTION21)
        source = SourceMotion(m.joint_names, m.parents, off, m.local_quats_wxyz, m.root_translation, m.fps,
                              int(m.start_frame))
    else:
        from .core.bvh import read_bvh

        m = read_bvh(path)
        source = SourceMotion(m.joint_names, m.parents, m.rest_offsets, m.local_quats_wxyz, m.root_translation, m.fps)
    if source.num_frames == 0:
        raise MocapError(f"{path.name} holds no frames")
    if not (np.isfinite(source.local_quats_wxyz).all() and np.isfinite(source.root_translation).all()):
        raise MocapError(f"{path.name} has missing values (NaN) in its rotations; re-run 'mocap lift' to fill gaps")
    return source


def guess_bone_map(bone_names: Sequence[str]) -> dict[str, str]:
    """Canonical joint -> bone for every joint that can be mapped by name (possibly not all
    of :data:`REQUIRED`; the rest are for the mapping editor)."""
    return best_name_match(bone_names)[0]


def complete_bone_map(bone_names: Sequence[str], edited: Mapping[str, str] | None, where: str) -> dict[str, str]:
    """The mapping to use: names guessed, then the mapping editor's non-empty entries on top."""
    entries = {canon: bone for canon, bone in (edited or {}).items() if bone}
    mapping = override_bone_map(guess_bone_map(bone_names), entries, bone_names, where=where, what="the bone mapping")
    missing = [c for c in REQUIRED if c not in mapping]
    if missing:
        raise MocapError(f"could not map {len(missing)} joint(s) of {where} by bone name: {', '.join(missing)}. "
                         "Pick their bones in the Mocap panel under Bone mapping, then import again")
    return mapping


def _travel(positions: np.ndarray, pelvis: np.ndarray, travel: float) -> np.ndarray:
    """(T, J, 3) positions with the pelvis' horizontal path from frame 0 scaled by ``travel``."""
    path = pelvis - pelvis[:1]
    path[:, 1] = 0.0
    return positions + (travel - 1.0) * path[:, None, :]


def _our_axes(v) -> np.ndarray:
    """A Blender (Z-up) vector in our +Y-up axes."""
    return Y_UP_TO_BLENDER.T @ np.asarray(v, dtype=np.float64)


def import_motion(context, path: str | os.PathLike, *, armature=None, frame_start: int = 1, scale: float = 1.0,
                  root_motion: bool = True, foot_lock: bool = True, bone_map: Mapping[str, str] | None = None,
                  pin_hands: bool = False) -> ImportResult:
    """Key the motion in ``path`` on ``armature`` (retargeted), or on a new armature when None.

    ``scale``: on a rig, a factor on the horizontal travel (1 = scaled by leg length);
    on a new armature, the size of the skeleton and its motion. ``root_motion`` False keeps
    the pelvis in place horizontally. ``foot_lock`` keeps planted feet planted (by the root,
    then the smallest leg change); ``pin_hands`` bends the arms so the wrists keep their place
    relative to the shoulders. ``bone_map``: the mapping editor's entries.
    """
    if not (np.isfinite(scale) and scale > 0):
        raise MocapError(f"scale must be a positive number, got {scale}")
    source = load_source(path)
    travel = scale if root_motion else 0.0
    name = Path(path).stem
    if armature is None:
        return _import_new(context, source, name, frame_start=frame_start, size=scale, travel=1.0 if root_motion else 0.0)
    if armature.type != "ARMATURE":
        raise MocapError(f"{armature.name} is not an armature: select an armature, or nothing for a new one")
    src_rig, gs, ps = motion_to_source(source.joint_names, source.parents, source.rest_offsets,
                                       source.local_quats_wxyz, source.root_translation)
    source_map = auto_bone_map(src_rig.bone_names, where=Path(path).name)
    ps = _travel(ps, ps[:, src_rig.index(source_map["pelvis"])], travel)
    rig = read_rig(armature)
    target_map = complete_bone_map(rig.bone_names, bone_map, armature.name)
    res = retarget(src_rig, source_map, gs, ps, rig, target_map, pin_feet=foot_lock, pin_hands=pin_hands, fps=source.fps)
    root_b = rig.index(res.root_bone)
    offset = rig.rest_positions[root_b] - res.positions[0, root_b]
    offset[1] = 0.0
    action = key_action(context, armature, bone_names=res.bone_names, local_quats_wxyz=res.local_quats_wxyz,
                        root_translation=res.root_translation + offset, root_bone=res.root_bone,
                        frame_start=frame_start, fps=source.fps, name=f"{name}_{armature.name}")
    fid = retarget_fidelity(src_rig, source_map, gs, ps, rig, target_map, res.positions, planted=res.planted)
    return ImportResult(armature, action, source.num_frames, float(res.scale), dict(target_map), offset, fid.line())


def import_people(context, folder: str | os.PathLike, *, frame_start: int = 1, scale: float = 1.0,
                  root_motion: bool = True) -> list[ImportResult]:
    """Every person of a ``mocap capture --all-people`` folder (``person_<id>/motion.npz``), each
    on a new armature, in the capture's one world: the captured person's (``motion.npz`` of the
    folder) first position over the 3D cursor and the others where they stood from it, each
    starting at the frame they appear in the video (``frame_start`` for the earliest)."""
    folder = Path(folder)
    paths = sorted(folder.glob("person_*/motion.npz"), key=lambda p: (len(p.parent.name), p.parent.name))
    if not paths:
        raise MocapError(f"{folder} holds no person_<id>/motion.npz: capture with --all-people, or import one "
                         "motion.npz with Import Motion")
    if not (np.isfinite(scale) and scale > 0):
        raise MocapError(f"scale must be a positive number, got {scale}")
    sources = [load_source(p) for p in paths]
    main = load_source(folder / "motion.npz") if (folder / "motion.npz").is_file() else sources[0]
    origin = main.root_translation[0] + main.rest_offsets[0]  # the captured person's first pelvis, metres
    first = min(s.start_frame for s in sources)
    travel = 1.0 if root_motion else 0.0
    results = [_import_new(context, s, p.parent.name, frame_start=frame_start + s.start_frame - first, size=scale,
                           travel=travel, origin=origin) for s, p in zip(sources, paths)]
    scene = context.scene  # each import set the range to its own frames: the range of them all
    scene.frame_start = frame_start
    scene.frame_end = max(frame_start + s.start_frame - first + s.num_frames - 1 for s in sources)
    return results


def _import_new(context, source: SourceMotion, name: str, *, frame_start: int, size: float, travel: float,
                origin: np.ndarray | None = None) -> ImportResult:
    """A new armature with the motion's skeleton at the 3D cursor, keyed with the motion itself
    (``origin``: the point of the motion's world, metres, put over the cursor; default: its
    first pelvis)."""
    off = source.rest_offsets * size
    root = source.root_translation * size
    pelvis = root + off[0]
    root = _travel(root[:, None, :], pelvis, travel)[:, 0]
    cursor = _our_axes(context.scene.cursor.location)
    offset = cursor - (root[0] + off[0] if origin is None else np.asarray(origin, dtype=np.float64) * size)
    offset[1] = 0.0
    arm = new_armature(context, joint_names=source.joint_names, parents=source.parents, rest_offsets=off,
                       name=f"{name}_avatar")
    action = key_action(context, arm, bone_names=source.joint_names, local_quats_wxyz=source.local_quats_wxyz,
                        root_translation=root + offset, root_bone=source.joint_names[0], frame_start=frame_start,
                        fps=source.fps, name=name)
    return ImportResult(arm, action, source.num_frames, 1.0, {}, offset)


def new_armature(context, *, joint_names: Sequence[str], parents: Sequence[int], rest_offsets: np.ndarray, name: str):
    """A new armature of this skeleton (rest offsets (J, 3) metres, +Y up; a box per bone)
    at the world origin, made the only selected and the active object."""
    import bpy

    if context.object is not None and context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    for obj in context.selected_objects:
        obj.select_set(False)
    arm = build_armature(joint_names=joint_names, parents=parents, rest_offsets=rest_offsets, name=name)
    arm.select_set(True)
    context.view_layer.objects.active = arm
    return arm


def _fcurve(action, arm, path: str, index: int, group: str):
    if hasattr(action, "fcurve_ensure_for_datablock"):  # Blender 4.4+: layered actions with slots
        return action.fcurve_ensure_for_datablock(arm, path, index=index, group_name=group)
    fc = action.fcurves.find(path, index=index)
    return fc or action.fcurves.new(path, index=index, action_group=group)


def armature_axes(arm) -> tuple[np.ndarray, float]:
    """(c (3, 3), s): ``c`` turns a vector in our +Y-up world axes into ``arm``'s armature
    space (the object's rotation undone), ``s`` is the object's uniform scale factor."""
    obj = np.array(arm.matrix_world)[:3, :3]
    obj_scale = float(np.cbrt(abs(np.linalg.det(obj))))
    return (obj / obj_scale).T @ Y_UP_TO_BLENDER, obj_scale


def pose_quats_wxyz(arm, bone_names: Sequence[str], local_quats_wxyz: np.ndarray) -> np.ndarray:
    """Rest-relative local rotations in our +Y-up world axes -> pose-bone quaternions of ``arm``.

    Args:
        bone_names: the B bones of ``arm`` the rotations are for.
        local_quats_wxyz: (T, B, 4) each bone's rotation relative to its parent's, against
            the rest pose, expressed in our world axes (as :mod:`core.kinematics` and
            :func:`core.retarget.retarget` give them).
    Returns:
        (T, B, 4) wxyz values for ``pose.bones[name].rotation_quaternion`` (mode
        'QUATERNION'), sign-continuous over T; they account for the armature object's
        rotation and each bone's rest orientation and roll.
    """
    q = np.asarray(local_quats_wxyz, dtype=np.float64)
    if q.ndim != 3 or q.shape[1:] != (len(bone_names), 4):
        raise ValueError(f"local_quats_wxyz must have shape (T, {len(bone_names)}, 4), got {q.shape}")
    c, _ = armature_axes(arm)
    rest = np.array([np.array(arm.pose.bones[b].bone.matrix_local)[:3, :3] for b in bone_names]).reshape(-1, 3, 3)
    to_bone = np.swapaxes(rest, -1, -2) @ c  # (B, 3, 3): our world axes -> each bone's rest frame
    rot = to_bone @ quat_wxyz_to_matrix(q) @ np.swapaxes(to_bone, -1, -2)
    return quat_continuous_wxyz(matrix_to_quat_wxyz(rot), axis=0)


def key_action(context, arm, *, bone_names: Sequence[str], local_quats_wxyz: np.ndarray, root_translation: np.ndarray,
               root_bone: str, frame_start: int, fps: float, name: str):
    """A new Action on ``arm`` with one linear key per frame for every bone in ``bone_names``.

    Args:
        local_quats_wxyz: (T, B, 4) rest-relative local rotations, our +Y-up world axes.
        root_translation: (T, 3) metres, +Y up: displacement of ``root_bone`` from its rest
            position (world, not scaled by the object).
    Accounts for the object's rotation and scale and each bone's rest orientation and roll
    (:func:`pose_quats_wxyz`). Returns the Action (also made the armature's active action).
    """
    import bpy

    q = np.asarray(local_quats_wxyz, dtype=np.float64)
    t = q.shape[0]
    c, obj_scale = armature_axes(arm)
    pose_q = pose_quats_wxyz(arm, bone_names, q)
    frames = frame_start + np.arange(t, dtype=np.float64)
    if arm.animation_data is None:
        arm.animation_data_create()
    action = bpy.data.actions.new(name)
    arm.animation_data.action = action
    interpolation = np.full(t, _LINEAR, dtype=np.int32)
    reset_pose(arm)
    for j, bone in enumerate(bone_names):
        pb = arm.pose.bones[bone]
        channels = [("rotation_quaternion", pose_q[:, j])]
        if bone == root_bone:
            m = np.array(pb.bone.matrix_local)[:3, :3]
            channels.append(("location", (np.asarray(root_translation) @ c.T) @ m / obj_scale))
        for prop, values in channels:
            data_path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].{prop}'
            for i in range(values.shape[1]):
                fc = _fcurve(action, arm, data_path, i, bone)
                fc.keyframe_points.add(t)
                fc.keyframe_points.foreach_set("co", np.stack([frames, values[:, i]], 1).ravel())
                fc.keyframe_points.foreach_set("interpolation", interpolation)
                fc.update()
    scene = context.scene
    set_scene_fps(scene, fps)
    scene.frame_start = frame_start
    scene.frame_end = frame_start + t - 1
    return action


def reset_pose(arm) -> None:
    """Every pose bone of ``arm`` to its rest pose, rotation mode 'QUATERNION'."""
    for pb in arm.pose.bones:
        pb.rotation_mode = "QUATERNION"
        pb.location = (0.0, 0.0, 0.0)
        pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        pb.scale = (1.0, 1.0, 1.0)


def push_to_nla(arm, *, track_name: str = "mocap"):
    """Move ``arm``'s active action into a new NLA track as one strip on the action's own
    frames (where the import keyed it), so takes can be layered, blended and trimmed in the
    NLA editor; the armature is left with no active action. Returns the strip. ValueError
    when ``arm`` has no active action."""
    data = arm.animation_data
    action = data.action if data is not None else None
    if action is None:
        raise ValueError(f"{arm.name} has no action to push down: import or capture a motion first")
    slot = getattr(data, "action_slot", None)  # Blender 4.4+: the slot the import keyed
    first, last = (int(round(f)) for f in action.frame_range)
    track = data.nla_tracks.new()
    track.name = track_name
    strip = track.strips.new(action.name, first, action)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    strip.frame_end = last  # the strip spans the keys exactly (frame_end is the last keyed frame)
    data.action = None
    return strip
