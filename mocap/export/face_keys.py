"""Face controls on an exported character (needs Blender, ``bpy``): custom properties of the
armature, and the animation of the shape keys that carry the controls' names.

The controls are face.npz's (:mod:`mocap.face.controls`: ARKit-named curves in [0, 1]).
:func:`animate_face_controls` keys, on every frame,

- a custom property of that name on the armature object (``arm["jawOpen"]``, range 0..1),
  kept in .blend files (FBX and glTF keep custom properties only as static values);
- the shape key of that name (``key_blocks["jawOpen"].value``) of every mesh in the scene
  that has one (an ARKit-ready character: its morph targets), which .blend, FBX (blend shape
  channels) and glTF/GLB (morph target weights) all carry.

Frames without a face (NaN) are keyed at 0, the rest pose. :func:`controls_for_motion` picks
the rows of face.npz that match a motion's frames (both count from their ``start_frame`` in
the video).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mocap.errors import missing_extra

_LINEAR = 1  # Blender's enum value of 'LINEAR' keyframe interpolation


def _bpy():
    try:
        import bpy
    except ImportError:
        raise missing_extra("bpy (Blender as a Python module)", "blender") from None
    return bpy


def controls_for_motion(controls: np.ndarray, face_start_frame: int, motion_start_frame: int,
                        num_frames: int) -> np.ndarray:
    """(T_face, K) controls whose row 0 is video frame ``face_start_frame`` -> (num_frames, K) rows
    for a motion whose frame 0 is video frame ``motion_start_frame`` (NaN where face.npz has none)."""
    c = np.asarray(controls, np.float64)
    out = np.full((int(num_frames), c.shape[1]), np.nan)
    first = int(motion_start_frame) - int(face_start_frame)
    lo, hi = max(first, 0), min(first + int(num_frames), len(c))
    if hi > lo:
        out[lo - first:hi - first] = c[lo:hi]
    return out


def _key(action, owner, path: str, frames: np.ndarray, values: np.ndarray, group: str) -> None:
    fc = action.fcurve_ensure_for_datablock(owner, path, index=0, group_name=group)
    fc.keyframe_points.add(len(frames))
    fc.keyframe_points.foreach_set("co", np.stack([frames, values], 1).ravel())
    fc.keyframe_points.foreach_set("interpolation", np.full(len(frames), _LINEAR, dtype=np.int32))
    fc.update()


def animate_face_controls(arm, names: Sequence[str], values: np.ndarray, *, frame_start: int = 1,
                          meshes=None) -> list[str]:
    """Key the face controls on ``arm`` and on the matching shape keys of meshes.

    Args:
        arm: the armature object (its current action gets the custom property curves, and the
            shape keys go into a slot of the same action, so that glTF exports one clip); None:
            no custom properties, and each mesh's shape keys get a new action.
        names: the K control names (ARKit's: ``jawOpen`` ...).
        values: (T, K) in [0, 1], NaN where there is no face (keyed as 0).
        frame_start: the Blender frame of the first row.
        meshes: the mesh objects whose shape keys to animate (default: every mesh of the scene).

    Returns:
        the shape keys animated, as ``"<mesh object>:<shape key>"``.
    """
    bpy = _bpy()
    v = np.asarray(values, np.float64)
    if v.ndim != 2 or v.shape[1] != len(names):
        raise ValueError(f"values must be (T, {len(names)}) for the {len(names)} control names, got {v.shape}")
    v = np.clip(np.nan_to_num(v, nan=0.0), 0.0, 1.0)
    frames = frame_start + np.arange(len(v), dtype=np.float64)
    action = None
    if arm is not None:
        arm.animation_data_create()
        action = arm.animation_data.action
        if action is None:
            action = arm.animation_data.action = bpy.data.actions.new("face")
        for k, name in enumerate(names):
            arm[name] = 0.0
            arm.id_properties_ui(name).update(min=0.0, max=1.0, soft_min=0.0, soft_max=1.0,
                                              description=f"face control {name} (mocap-lift face.npz)")
            _key(action, arm, f'["{name}"]', frames, v[:, k], "face")
    driven = []
    for obj in bpy.context.scene.objects if meshes is None else meshes:
        keys = obj.data.shape_keys if obj.type == "MESH" else None
        if keys is None:
            continue
        present = [(k, name) for k, name in enumerate(names) if name in keys.key_blocks]
        if not present:
            continue
        keys.animation_data_create()
        if action is None:  # no armature: a new action per call (as the add-on's imports make)
            keys.animation_data.action = bpy.data.actions.new(f"{obj.name}_face")
        elif keys.animation_data.action is None:
            keys.animation_data.action = action
        for k, name in present:
            _key(keys.animation_data.action, keys, f'key_blocks["{name}"].value', frames, v[:, k], "face")
            driven.append(f"{obj.name}:{name}")
    return driven
