"""Everything that needs Blender (``bpy``): FBX, glTF/GLB and .blend export of an animated
armature, and reading armature animation back from those files.

Axes: our motion is +Y up, facing +Z, left = +X. Blender is +Z up; a character faces -Y
(Blender's front view looks along +Y). The map is ``(x, y, z) -> (x, -z, y)``
(:data:`Y_UP_TO_BLENDER`). FBX is written Y-up with -Z forward and glTF is Y-up by
definition (its front is +Z), so in Unreal/Unity and three.js the character stands up and
faces the viewer, as in Blender.

Animation-losing defaults of Blender's exporters are overridden here (see the NOTES):
FBX ``bake_anim_use_nla_strips=False``, ``bake_anim_simplify_factor=0``, no leaf bones.

Frames and times, so every importer's defaults put the motion on frames 1..T:

* FBX: the first frame is at time 0 (the keys are shifted by one frame while writing).
  Blender's FBX importer adds its default Animation Offset of 1 frame, so the keys land
  on 1..T; Maya, MotionBuilder, Unity and Unreal start the take at 0.
* glTF/GLB: frame ``f`` (from 1) is at time ``f / fps`` seconds, and the frame rate is
  recorded as scene extras (``"extras": {"fps": 60.0}``): glTF itself has none. Blender's
  glTF importer turns seconds into frames at the scene's rate, so the scene is set to that
  rate first (:func:`load_scene` does; so does the add-on, on every glTF import, through
  :class:`GltfFrameRate`), and the keys land on 1..T.

Rotations: pose bone rotations are relative to each bone's own rest frame ``M`` (its
``matrix_local``): for our local rotation ``Q`` (rest-relative, world axes) the bone's pose
quaternion is ``M^T C Q C^T M`` with ``C`` the axis map. The first frame of the motion is
Blender frame 1.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mocap.errors import MocapError, missing_extra
from mocap.rotations import matrix_to_quat_wxyz, quat_continuous_wxyz, quat_wxyz_to_matrix
from mocap.skeletons import rest_positions

#: (3, 3) our Y-up world -> Blender's Z-up world.
Y_UP_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
EXPORT_SUFFIXES = (".fbx", ".glb", ".gltf", ".blend")
IMPORT_SUFFIXES = (".fbx", ".glb", ".gltf", ".blend", ".bvh")
#: Which child a bone with several children points at (others: the first child).
_TAIL_CHILD = {"pelvis": "spine", "neck": "head", "left_ankle": "left_foot_index", "right_ankle": "right_foot_index"}
_LINEAR = 1  # Blender's enum value of 'LINEAR' keyframe interpolation
#: The scene custom property written as glTF scene extras: the frame rate (frames per second).
GLTF_FPS_EXTRA = "fps"


def _bpy():
    try:
        import bpy
    except ImportError:
        raise missing_extra("bpy (Blender as a Python module)", "blender") from None
    return bpy


def new_scene(fps: float = 30.0) -> None:
    """Empty Blender scene at ``fps`` frames per second (fractional rates via ``fps_base``)."""
    bpy = _bpy()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    set_scene_fps(bpy.context.scene, fps)


def set_scene_fps(scene, fps: float) -> None:
    """Play ``scene`` at ``fps`` frames per second: ``render.fps`` the nearest integer,
    ``render.fps_base`` the factor to the exact rate (29.97 = 30 / 1.001)."""
    scene.render.fps = max(1, int(round(fps)))
    scene.render.fps_base = scene.render.fps / float(fps)


def scene_fps(scene) -> float:
    """Frames per second of ``scene`` (``render.fps / render.fps_base``)."""
    return scene.render.fps / scene.render.fps_base


def build_armature(*, joint_names: Sequence[str], parents: Sequence[int], rest_offsets: np.ndarray,
                   name: str = "motion21", with_mesh: bool = True):
    """Create an armature object in the current scene from a rest pose (Y-up metres).

    Bones are named after the joints; a bone's head is its joint, its tail points at its
    (main) child, leaves continue their parent's direction for 4 cm. With ``with_mesh`` a
    thin box per bone, skinned rigidly to it, makes the result a skinned character (GLB
    viewers and game engines then show it). Returns the armature object.
    """
    bpy = _bpy()
    off = np.asarray(rest_offsets, dtype=np.float64)
    pos = rest_positions(off, parents) @ Y_UP_TO_BLENDER.T
    arm_data = bpy.data.armatures.new(name)
    arm = bpy.data.objects.new(name, arm_data)
    bpy.context.scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    kids = [[c for c in range(len(parents)) if parents[c] == j] for j in range(len(parents))]
    bones = []
    for j, n in enumerate(joint_names):
        b = arm_data.edit_bones.new(n)
        b.head = pos[j]
        if kids[j]:
            c = next((c for c in kids[j] if joint_names[c] == _TAIL_CHILD.get(n)), kids[j][0])
            d = pos[c] - pos[j]
        else:
            d = pos[j] - pos[parents[j]] if parents[j] >= 0 else np.array([0.0, 0.0, 1.0])
        length = np.linalg.norm(d)
        d = d / length if length > 1e-6 else np.array([0.0, 0.0, 1.0])
        b.tail = pos[j] + d * (max(length, 0.01) if kids[j] else 0.04)
        b.roll = 0.0
        if parents[j] >= 0:
            b.parent = bones[parents[j]]
        bones.append(b)
    bpy.ops.object.mode_set(mode="OBJECT")
    if with_mesh:
        _add_bone_boxes(arm, joint_names)
    return arm


def _add_bone_boxes(arm, joint_names: Sequence[str]) -> None:
    bpy = _bpy()
    verts, faces = [], []
    quads = [(0, 1, 2, 3), (4, 7, 6, 5), (0, 4, 5, 1), (1, 5, 6, 2), (2, 6, 7, 3), (3, 7, 4, 0)]
    groups = []
    for b in arm.data.bones:
        m = np.array(b.matrix_local)
        length = b.length
        w = 0.015 + 0.08 * length
        corners = [(x, y, z) for y in (0.0, length) for x, z in ((-w, -w), (w, -w), (w, w), (-w, w))]
        base = len(verts)
        verts += [tuple((m @ np.array([x, y, z, 1.0]))[:3]) for x, y, z in corners]
        faces += [tuple(base + i for i in q) for q in quads]
        groups.append((b.name, list(range(base, base + 8))))
    mesh = bpy.data.meshes.new(arm.name + "_body")
    mesh.from_pydata(verts, [], faces)
    mesh.update()
    obj = bpy.data.objects.new(arm.name + "_body", mesh)
    bpy.context.scene.collection.objects.link(obj)
    for name, idx in groups:
        obj.vertex_groups.new(name=name).add(idx, 1.0, "REPLACE")
    obj.parent = arm
    mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = arm


def animate_armature(arm, *, joint_names: Sequence[str], local_quats_wxyz: np.ndarray, root_translation: np.ndarray,
                     frame_start: int = 1, action_name: str = "motion", root_bone: str | None = None) -> None:
    """Key every frame of a motion on ``arm`` (bones named after ``joint_names``).

    Works for any armature: the object's own transform (an FBX import's 90 degree turn
    and 0.01 scale, say) and each bone's rest orientation and roll are accounted for.

    Args:
        local_quats_wxyz: (T, J, 4) rest-relative local rotations, our Y-up world axes.
        root_translation: (T, 3) metres, Y-up: displacement of ``root_bone`` (default the
            first joint) from its rest position.
    """
    bpy = _bpy()
    q = np.asarray(local_quats_wxyz, dtype=np.float64)
    root = np.asarray(root_translation, dtype=np.float64)
    t = q.shape[0]
    if not np.isfinite(q).all() or not np.isfinite(root).all():
        raise ValueError("local_quats_wxyz and root_translation must be finite; fill gaps first")
    obj = np.array(arm.matrix_world)[:3, :3]
    obj_scale = float(np.cbrt(abs(np.linalg.det(obj))))
    c = (obj / obj_scale).T @ Y_UP_TO_BLENDER  # our world axes -> armature space
    root_bone = root_bone or joint_names[0]
    frames = frame_start + np.arange(t, dtype=np.float64)
    arm.animation_data_create()
    action = bpy.data.actions.new(action_name)
    arm.animation_data.action = action
    for j, name in enumerate(joint_names):
        pb = arm.pose.bones[name]
        pb.rotation_mode = "QUATERNION"
        m = np.array(pb.bone.matrix_local)[:3, :3]
        rot = m.T @ c @ quat_wxyz_to_matrix(q[:, j]) @ c.T @ m
        bq = quat_continuous_wxyz(matrix_to_quat_wxyz(rot), axis=0)
        channels = [("rotation_quaternion", bq)]
        if name == root_bone:
            channels.append(("location", (root @ c.T) @ m / obj_scale))  # in the bone's rest frame
        for prop, values in channels:
            path = f'pose.bones["{name}"].{prop}'
            for i in range(values.shape[1]):
                fc = action.fcurve_ensure_for_datablock(arm, path, index=i, group_name=name)
                fc.keyframe_points.add(t)
                fc.keyframe_points.foreach_set("co", np.stack([frames, values[:, i]], 1).ravel())
                fc.keyframe_points.foreach_set("interpolation", np.full(t, _LINEAR, dtype=np.int32))
                fc.update()
    scene = bpy.context.scene
    scene.frame_start = frame_start
    scene.frame_end = frame_start + t - 1


def export_motion(path: str | os.PathLike, *, joint_names: Sequence[str], parents: Sequence[int],
                  rest_offsets: np.ndarray, local_quats_wxyz: np.ndarray, root_translation: np.ndarray,
                  fps: float, with_mesh: bool = True, name: str = "motion21") -> Path:
    """Write an animated armature to ``path``: ``.fbx`` (Y-up), ``.glb``/``.gltf`` or ``.blend``.

    Builds a fresh scene (the current Blender scene is replaced), writes atomically.
    Shapes: rest_offsets (J, 3) metres, local_quats_wxyz (T, J, 4), root_translation (T, 3).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise MocapError(f"cannot export {path}: use one of {', '.join(EXPORT_SUFFIXES)} (or .bvh through mocap.io.bvh)")
    new_scene(fps)
    arm = build_armature(joint_names=joint_names, parents=parents, rest_offsets=rest_offsets, name=name,
                         with_mesh=with_mesh)
    animate_armature(arm, joint_names=joint_names, local_quats_wxyz=local_quats_wxyz, root_translation=root_translation)
    write_scene(path)
    return path


def write_scene(path: str | os.PathLike) -> None:
    """Write the current scene to ``path`` by its suffix (FBX, GLB/glTF, .blend), atomically."""
    from mocap.formats import atomic_path

    bpy = _bpy()
    path = Path(path)
    suffix = path.suffix.lower()
    scene = bpy.context.scene
    with atomic_path(path) as tmp:
        if suffix == ".fbx":
            with _keys_shifted(-float(scene.frame_start)), _rest_pose_at(-1):  # the first frame at FBX time 0
                result = _export_fbx(tmp)
        elif suffix in (".glb", ".gltf"):
            fps = scene[GLTF_FPS_EXTRA] = scene_fps(scene)  # written as the scene's extras
            _gltf_scene_rate(scene, fps)
            try:
                result = bpy.ops.export_scene.gltf(
                    filepath=str(tmp), export_format="GLB" if suffix == ".glb" else "GLTF_EMBEDDED",
                    export_yup=True, export_animations=True, export_force_sampling=True, export_skins=True,
                    export_def_bones=False, export_optimize_animation_size=False,
                    export_anim_single_armature=True, export_extras=True)
            finally:
                set_scene_fps(scene, fps)
        elif suffix == ".blend":
            bpy.context.preferences.filepaths.save_version = 0  # no .blend1 backup beside the file
            tmp.unlink()
            result = bpy.ops.wm.save_as_mainfile(filepath=str(tmp), copy=True, compress=True)
        else:
            raise MocapError(f"cannot write {path}: use one of {', '.join(EXPORT_SUFFIXES)}")
        if "FINISHED" not in result:
            raise MocapError(f"Blender could not write {path} ({result})")


def _export_fbx(tmp: Path) -> set:
    return _bpy().ops.export_scene.fbx(
        filepath=str(tmp), use_selection=False, object_types={"ARMATURE", "MESH"},
        add_leaf_bones=False, primary_bone_axis="Y", secondary_bone_axis="X",
        axis_forward="-Z", axis_up="Y", apply_unit_scale=True, apply_scale_options="FBX_SCALE_ALL",
        bake_anim=True, bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False,
        bake_anim_use_all_actions=False, bake_anim_force_startend_keying=True,
        bake_anim_step=1.0, bake_anim_simplify_factor=0.0)


@contextlib.contextmanager
def _keys_shifted(frames: float):
    """Every key of every action, and the scene's frame range, ``frames`` later inside the block."""
    scene = _bpy().context.scene

    def shift(d: float) -> None:
        for action in _bpy().data.actions:
            _scale_key_times(action, 1.0, d)
        scene.frame_start, scene.frame_end = (int(round(f + d)) for f in (scene.frame_start, scene.frame_end))

    shift(frames)
    try:
        yield
    finally:
        shift(-frames)


_REST_VALUES = {"rotation_quaternion": (1.0, 0.0, 0.0, 0.0), "location": (0.0,) * 3, "scale": (1.0,) * 3}


@contextlib.contextmanager
def _rest_pose_at(frame: int):
    """Inside the block the scene is at ``frame``, where every keyed pose bone is keyed at
    rest: Blender's FBX exporter writes the bones' nodes in the current pose and its importer
    takes them as the rest pose when no skinned mesh gives a bind pose (a rig without skin)."""
    bpy = _bpy()
    scene = bpy.context.scene
    added = []
    for action in bpy.data.actions:
        for fc in _action_fcurves(action):
            prop = fc.data_path.rsplit(".", 1)[-1]
            if fc.data_path.startswith("pose.bones[") and prop in _REST_VALUES:
                added.append((fc, fc.keyframe_points.insert(frame, _REST_VALUES[prop][fc.array_index], options={"FAST"})))
    current = scene.frame_current
    scene.frame_set(frame)
    try:
        yield
    finally:
        for fc, key in reversed(added):
            fc.keyframe_points.remove(key, fast=True)
            fc.update()
        scene.frame_set(current)


@dataclass(frozen=True)
class SceneAnimation:
    """Armature animation read from a file: bone names, parents, world positions in our axes."""

    bone_names: tuple[str, ...]
    parents: tuple[int, ...]
    positions: np.ndarray  # (T, B, 3) metres, +Y up: bone heads per frame
    rest_positions: np.ndarray  # (B, 3) metres, +Y up: bone heads in the rest pose
    fps: float
    frame_start: int
    tail_positions: np.ndarray | None = None  # (T, B, 3) metres, +Y up: bone tails per frame
    rest_tail_positions: np.ndarray | None = None  # (B, 3) metres, +Y up: bone tails at rest

    def as_rig(self, *, leaf_tails: bool = False):
        """(:class:`mocap.export.retarget.Rig` of the armature's rest pose, positions (T, B, 3)
        in the rig's bone order: parents first). With ``leaf_tails`` each bone without
        children gets a child ``<name>.tail`` at its tail (a head bone's top, say, for
        :func:`mocap.export.fidelity.target_points`)."""
        from mocap.export.retarget import Rig

        order, parents = _parents_first(self.parents)
        names = tuple(self.bone_names[b] for b in order)
        rest, pos = self.rest_positions[order], self.positions[:, order]
        if leaf_tails and self.tail_positions is not None:
            leaves = [i for i in range(len(order)) if i not in parents]
            names, parents = names + tuple(f"{names[i]}.tail" for i in leaves), parents + tuple(leaves)
            rest = np.concatenate([rest, self.rest_tail_positions[order][leaves]])
            pos = np.concatenate([pos, self.tail_positions[:, order][:, leaves]], 1)
        return Rig(names, parents, rest), pos


def load_scene(path: str | os.PathLike) -> None:
    """Replace the current Blender scene with the contents of ``path`` (FBX, glTF/GLB, .blend, BVH)."""
    bpy = _bpy()
    path = Path(path)
    if not path.is_file():
        raise MocapError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in IMPORT_SUFFIXES:
        raise MocapError(f"cannot read {path}: use one of {', '.join(IMPORT_SUFFIXES)}")
    if suffix == ".bvh":  # our reader first: it names the bad line and refuses absurd frame counts
        from mocap.io.bvh import read_bvh

        read_bvh(path)
    try:
        _import_scene(bpy, path, suffix)
    except RuntimeError as e:  # Blender's operators report a failed import as RuntimeError
        reason = next((line.strip() for line in reversed(str(e).splitlines()) if line.strip()
                       and not line.strip().startswith(("Location:", "Traceback", "File "))), str(e))
        raise MocapError(f"cannot read {path}: Blender's importer failed ({reason[:200]})") from None


def _import_scene(bpy, path: Path, suffix: str) -> None:
    if suffix == ".blend":
        bpy.ops.wm.open_mainfile(filepath=str(path))
        return
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path), ignore_leaf_bones=False, automatic_bone_orientation=False,
                                 use_anim=True)  # the default Animation Offset (1 frame): time 0 is frame 1
        _fix_fractional_rate_keys(offset=1.0)
    elif suffix in (".glb", ".gltf"):
        fps = gltf_frame_rate(path)
        hook = GltfFrameRate(fps)
        hook.gather_import_scene_before_hook(None, bpy.context.scene, None)
        bpy.ops.import_scene.gltf(filepath=str(path))
        hook.gather_import_scene_after_animation_hook(None, bpy.context.scene, None)
    elif suffix == ".bvh":
        bpy.ops.import_anim.bvh(filepath=str(path), global_scale=0.01, axis_forward="-Z", axis_up="Y",
                                update_scene_fps=True, update_scene_duration=True)


def _action_fcurves(action):
    """Every F-curve of a (layered) action."""
    for layer in action.layers:
        for strip in layer.strips:
            for slot in action.slots:
                bag = strip.channelbag(slot)
                if bag is not None:
                    yield from bag.fcurves


def _fix_fractional_rate_keys(offset: float) -> None:
    """Blender 5.0's FBX importer turns key times into frames at the integer rate
    (``render.fps``) and ignores ``fps_base``: at 29.97 fps time ``t`` lands on frame
    ``30 t + offset`` instead of ``29.97 t + offset``. Put the keys back on their frames."""
    bpy = _bpy()
    base = bpy.context.scene.render.fps_base
    if abs(base - 1.0) < 1e-9:
        return
    for action in bpy.data.actions:
        _scale_key_times(action, 1.0 / base, offset * (1.0 - 1.0 / base))


def _scale_key_times(action, factor: float, shift: float) -> None:
    """Every key (and its handles) of ``action`` from frame ``f`` to ``factor * f + shift``."""
    for fc in _action_fcurves(action):
        co = np.empty(2 * len(fc.keyframe_points))
        for name in ("co", "handle_left", "handle_right"):
            fc.keyframe_points.foreach_get(name, co)
            co[0::2] = factor * co[0::2] + shift
            fc.keyframe_points.foreach_set(name, co)
        fc.update()


def _gltf_scene_rate(scene, fps: float) -> None:
    """``scene``'s rate as Blender's glTF exporter and importer read it: they convert frames
    and seconds with ``render.fps * render.fps_base`` (not ``/``), so this ``fps_base`` is
    ``fps / render.fps``, the inverse of the true one (:func:`set_scene_fps` restores it)."""
    scene.render.fps = max(1, int(round(fps)))
    scene.render.fps_base = fps / scene.render.fps


class GltfFrameRate:
    """Blender's glTF importer at the file's frame rate: a glTF import user extension (the
    add-on exports it as ``glTF2ImportUserExtension``, so File > Import > glTF applies it).

    Before the animations are made, the scene is set to the rate in the scene extras
    (:data:`GLTF_FPS_EXTRA`) or ``fps`` (:func:`_gltf_scene_rate` while importing, the true
    ``fps_base`` after: 29.97 fps keys land on whole frames too). Then the scene's frame
    range is the imported animation's.
    """

    def __init__(self, fps: float | None = None):
        self.fps = fps
        self._before: set = set()

    def gather_import_scene_before_hook(self, gltf_scene, blender_scene, gltf) -> None:
        self._before = {a.as_pointer() for a in _bpy().data.actions}
        extras = getattr(gltf_scene, "extras", None)
        fps = extras.get(GLTF_FPS_EXTRA) if isinstance(extras, dict) else None
        if isinstance(fps, (int, float)) and np.isfinite(fps) and fps > 0:
            self.fps = float(fps)
        if self.fps is not None:
            _gltf_scene_rate(blender_scene, self.fps)

    def gather_import_scene_after_animation_hook(self, gltf_scene, blender_scene, gltf) -> None:
        if self.fps is None:
            return
        set_scene_fps(blender_scene, self.fps)
        ranges = [a.frame_range for a in _bpy().data.actions if a.as_pointer() not in self._before]
        if ranges:
            blender_scene.frame_start = int(round(min(r[0] for r in ranges)))
            blender_scene.frame_end = int(round(max(r[1] for r in ranges)))


def _gltf_json(path: Path) -> dict:
    import json
    import struct

    data = path.read_bytes()
    if data[:4] == b"glTF":
        length, kind = struct.unpack_from("<II", data, 12)
        if kind != 0x4E4F534A:  # "JSON"
            raise MocapError(f"{path}: first GLB chunk is not JSON")
        return json.loads(data[20:20 + length])
    return json.loads(data)


def gltf_frame_rate(path: str | os.PathLike) -> float | None:
    """Frame rate of a glTF/GLB file: the scene extras' ``fps`` (:data:`GLTF_FPS_EXTRA`), else
    from the key times of its first animation (glTF stores seconds, not frames); ``None``
    when it has neither."""
    try:
        doc = _gltf_json(Path(path))
    except (ValueError, UnicodeDecodeError) as e:
        raise MocapError(f"{path} is not a readable glTF/GLB file ({e})") from None
    try:
        fps = doc["scenes"][doc.get("scene", 0)]["extras"][GLTF_FPS_EXTRA]
        if isinstance(fps, (int, float)) and fps > 0:
            return float(fps)
    except (KeyError, IndexError, TypeError):
        pass
    try:
        sampler = doc["animations"][0]["samplers"][0]
        acc = doc["accessors"][sampler["input"]]
        count, lo, hi = acc["count"], acc["min"][0], acc["max"][0]
    except (KeyError, IndexError, TypeError):
        return None
    return (count - 1) / (hi - lo) if count > 1 and hi > lo else None


def find_armature(name: str | None = None):
    """The armature object called ``name``, or the one with the most bones."""
    bpy = _bpy()
    arms = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    if name is not None:
        arms = [o for o in arms if o.name == name]
    if not arms:
        raise MocapError("no armature found in the file" + (f" called {name!r}" if name else ""))
    return max(arms, key=lambda o: len(o.data.bones))


def sample_animation(arm=None, *, frames: Sequence[int] | None = None) -> SceneAnimation:
    """World positions of every bone head of ``arm`` (default: :func:`find_armature`) per frame.

    ``frames`` default to the action's keyed range (else the scene's range).
    """
    bpy = _bpy()
    scene = bpy.context.scene
    arm = arm or find_armature()
    if frames is None:
        action = arm.animation_data.action if arm.animation_data else None
        lo, hi = (scene.frame_start, scene.frame_end) if action is None else (round(v) for v in action.frame_range)
        frames = range(int(lo), int(hi) + 1)
    frames = list(frames)
    bones = list(arm.pose.bones)
    names = tuple(b.name for b in bones)
    parents = tuple(names.index(b.parent.name) if b.parent else -1 for b in bones)
    back = Y_UP_TO_BLENDER.T
    world = np.array(arm.matrix_world)
    rest, rest_tails = (np.array([(world @ np.append(np.array(getattr(b.bone, f"{end}_local")), 1.0))[:3]
                                  for b in bones]) @ back.T for end in ("head", "tail"))
    out, tails = np.empty((len(frames), len(bones), 3)), np.empty((len(frames), len(bones), 3))
    for i, f in enumerate(frames):
        scene.frame_set(f)
        world = np.array(arm.matrix_world)
        for ends, end in ((out, "head"), (tails, "tail")):
            p = np.array([np.array(getattr(b, end)) for b in bones])
            ends[i] = (p @ world[:3, :3].T + world[:3, 3]) @ back.T
    fps = scene_fps(scene)
    return SceneAnimation(bone_names=names, parents=parents, positions=out, rest_positions=rest, fps=fps,
                          frame_start=frames[0] if frames else scene.frame_start, tail_positions=tails,
                          rest_tail_positions=rest_tails)


def read_animation(path: str | os.PathLike) -> SceneAnimation:
    """Load ``path`` and sample its (largest) armature's animation; see :class:`SceneAnimation`."""
    load_scene(path)
    return sample_animation()


def read_rig(arm=None):
    """:class:`mocap.export.retarget.Rig` of an armature in the current scene (rest pose, our axes)."""
    from mocap.export.retarget import Rig

    arm = arm or find_armature()
    bones = list(arm.data.bones)
    names = [b.name for b in bones]
    order, parents = _parents_first([names.index(b.parent.name) if b.parent else -1 for b in bones])
    world = np.array(arm.matrix_world)
    heads = np.array([(world @ np.append(np.array(bones[i].head_local), 1.0))[:3] for i in order])
    return Rig(tuple(names[i] for i in order), parents, heads @ Y_UP_TO_BLENDER)


def _parents_first(parents: Sequence[int]) -> tuple[list[int], tuple[int, ...]]:
    """(an order of the bones with parents before children (by depth), their parents in it)."""
    def depth(b: int) -> int:
        d = 0
        while parents[b] >= 0:
            b, d = parents[b], d + 1
        return d

    order = sorted(range(len(parents)), key=depth)
    return order, tuple(order.index(parents[b]) if parents[b] >= 0 else -1 for b in order)


def retarget_to_file(motion_path: str | os.PathLike, target_path: str | os.PathLike, out_path: str | os.PathLike, *,
                     mapping_path: str | os.PathLike | None = None, pin_feet: bool = True,
                     pin_hands: bool = False, bvh_units: str = "cm", face_path: str | os.PathLike | None = None):
    """``mocap retarget``: put the motion of a motion.npz on the rig in ``target_path``
    (FBX, glTF/GLB, .blend) and write the animated rig to ``out_path`` (.fbx, .glb, .blend),
    or the rig's joint hierarchy (its bone names and rest pose) and motion to a ``.bvh``
    in ``bvh_units`` (:func:`mocap.export.retarget.hierarchy_motion`).

    With ``face_path`` (a face.npz), its controls are keyed too
    (:func:`mocap.export.face_keys.animate_face_controls`: custom properties of the armature,
    and the target's shape keys of those names).

    Returns the :class:`mocap.export.retarget.RetargetResult`, with its ``fidelity``
    (:func:`mocap.export.fidelity.retarget_fidelity`).
    """
    from mocap.formats import load_motion
    from mocap.export.fidelity import retarget_fidelity
    from mocap.export.retarget import auto_bone_map, hierarchy_motion, load_bone_map, motion_to_source, retarget
    from mocap.skeletons import MOTION21, rest_offsets

    out_path = Path(out_path)
    if out_path.suffix.lower() not in (*EXPORT_SUFFIXES, ".bvh"):
        raise MocapError(f"cannot write {out_path}: use one of {', '.join(EXPORT_SUFFIXES)} or .bvh")
    motion = load_motion(motion_path)
    if motion.local_quats_wxyz is None or motion.root_translation is None:
        raise MocapError(f"{motion_path} has no local rotations; re-run mocap lift (it runs IK)")
    off = motion.rest_offsets if motion.rest_offsets is not None else rest_offsets(MOTION21)
    source, gs, ps = motion_to_source(motion.joint_names, motion.parents, off, motion.local_quats_wxyz,
                                      motion.root_translation)
    source_map = auto_bone_map(source.bone_names, where=str(motion_path))
    override = load_bone_map(mapping_path) if mapping_path else None
    load_scene(target_path)
    arm = find_armature()
    rig = read_rig(arm)
    target_map = auto_bone_map(rig.bone_names, override=override, where=str(target_path))
    result = retarget(source, source_map, gs, ps, rig, target_map, pin_feet=pin_feet, pin_hands=pin_hands,
                      fps=motion.fps)
    result = replace(result, fidelity=retarget_fidelity(source, source_map, gs, ps, rig, target_map,
                                                                    result.positions, planted=result.planted))
    if out_path.suffix.lower() == ".bvh":
        from mocap.io.bvh import write_bvh

        names, offsets, root = hierarchy_motion(rig, result)
        write_bvh(out_path, joint_names=names, parents=rig.parents, rest_offsets=offsets,
                  local_quats_wxyz=result.local_quats_wxyz, root_translation=root, fps=motion.fps, units=bvh_units)
        return result
    set_scene_fps(_bpy().context.scene, motion.fps)
    if arm.animation_data is not None:
        arm.animation_data_clear()
    for pb in arm.pose.bones:  # start from the rest pose
        pb.location = (0.0, 0.0, 0.0)
        pb.rotation_mode = "QUATERNION"
        pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        pb.scale = (1.0, 1.0, 1.0)
    animate_armature(arm, joint_names=rig.bone_names, local_quats_wxyz=result.local_quats_wxyz,
                     root_translation=result.root_translation, root_bone=result.root_bone)
    if face_path is not None:
        from mocap.export.face_keys import animate_face_controls, controls_for_motion
        from mocap.formats import load_face

        face = load_face(face_path)
        animate_face_controls(arm, face.names, controls_for_motion(face.controls, face.start_frame, motion.start_frame,
                                                                   motion.num_frames))
    write_scene(out_path)
    return result
