"""Face controls on exported characters (mocap.export.face_keys): custom properties of the
armature and the animation of shape keys named as the controls, checked by re-importing the
.blend, FBX and GLB files with Blender (and reading the GLB's JSON); the rows of face.npz
matched to a motion's frames."""
from __future__ import annotations

import importlib.util
import json
import struct

import numpy as np
import pytest

from mocap.export.face_keys import controls_for_motion
from mocap.skeletons import MOTION21, rest_offsets

needs_bpy = pytest.mark.skipif(importlib.util.find_spec("bpy") is None,
                               reason="needs bpy (pip install 'mocap-lift[blender]')")
NAMES = ("jawOpen", "eyeBlinkLeft", "mouthPucker")


def test_controls_for_motion_match_video_frames():
    c = np.arange(20.0)[:, None] * np.ones((1, 2))  # face.npz row k = video frame 3 + k
    out = controls_for_motion(c, 3, 10, 8)  # a motion from video frame 10
    np.testing.assert_array_equal(out[:, 0], np.arange(7.0, 15.0))
    out = controls_for_motion(c, 3, 0, 5)  # starts before the face file: NaN there
    assert np.isnan(out[:3]).all() and (out[3:, 0] == [0, 1]).all()
    assert np.isnan(controls_for_motion(c, 3, 40, 4)).all()


def _values(t: int) -> np.ndarray:
    return np.stack([np.linspace(0, 1, t), np.r_[np.zeros(t // 2), np.ones(t - t // 2)], np.full(t, np.nan)], 1)


def _scene_with_face_mesh(t: int):
    """motion21's armature with its box mesh, which gets shape keys jawOpen and eyeBlinkLeft."""
    import bpy

    from mocap.export.blender import animate_armature, build_armature, new_scene

    new_scene(30.0)
    arm = build_armature(joint_names=MOTION21.joint_names, parents=MOTION21.parents, rest_offsets=rest_offsets(MOTION21),
                         name="motion21", with_mesh=True)
    q = np.zeros((t, MOTION21.num_joints, 4))
    q[..., 0] = 1
    animate_armature(arm, joint_names=MOTION21.joint_names, local_quats_wxyz=q, root_translation=np.zeros((t, 3)))
    mesh = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    mesh.shape_key_add(name="Basis")
    mesh.shape_key_add(name="jawOpen").data[0].co.z -= 0.05
    mesh.shape_key_add(name="eyeBlinkLeft")
    return arm, mesh


def _glb_json(path) -> dict:
    raw = path.read_bytes()
    n = struct.unpack("<I", raw[12:16])[0]
    return json.loads(raw[20:20 + n])


@needs_bpy
@pytest.mark.blender
def test_controls_become_custom_properties_and_shape_key_animation(tmp_path):
    from mocap.export.blender import _action_fcurves, find_armature, load_scene, write_scene
    from mocap.export.face_keys import animate_face_controls

    t = 12
    arm, mesh = _scene_with_face_mesh(t)
    driven = animate_face_controls(arm, NAMES, _values(t))
    assert driven == [f"{mesh.name}:jawOpen", f"{mesh.name}:eyeBlinkLeft"]  # mouthPucker: no such shape key
    for ext in (".blend", ".fbx", ".glb"):
        write_scene(tmp_path / f"c{ext}")

    import bpy

    want = {"jawOpen": np.linspace(0, 1, t), "eyeBlinkLeft": np.r_[np.zeros(6), np.ones(6)]}
    for ext in (".blend", ".fbx"):
        load_scene(tmp_path / f"c{ext}")
        mesh = next(o for o in bpy.context.scene.objects if o.type == "MESH" and o.data.shape_keys)
        curves = {fc.data_path: fc for fc in _action_fcurves(mesh.data.shape_keys.animation_data.action)}
        for name, v in want.items():
            fc = curves[f'key_blocks["{name}"].value']
            got = [fc.evaluate(f) for f in range(1, t + 1)]
            np.testing.assert_allclose(got, v, atol=1e-3, err_msg=f"{ext} {name}")
    load_scene(tmp_path / "c.blend")
    arm = find_armature()
    curves = {fc.data_path: fc for fc in _action_fcurves(arm.animation_data.action)}
    np.testing.assert_allclose([curves['["jawOpen"]'].evaluate(f) for f in (1, t)], [0, 1], atol=1e-6)
    assert curves['["mouthPucker"]'].evaluate(5) == 0.0  # no face (NaN): the rest pose
    assert arm.id_properties_ui("jawOpen").as_dict()["max"] == 1.0

    doc = _glb_json(tmp_path / "c.glb")
    assert len(doc["animations"]) == 1  # the body and the face in one clip
    paths = [c["target"]["path"] for c in doc["animations"][0]["channels"]]
    assert "weights" in paths and "rotation" in paths
    assert doc["meshes"][0]["extras"]["targetNames"] == ["jawOpen", "eyeBlinkLeft"]


@needs_bpy
@pytest.mark.blender
def test_retarget_carries_the_face_onto_a_character(tmp_path):
    """``retarget_to_file(..., face_path=)``: a character whose mesh has ARKit-named shape keys
    gets them animated from face.npz, frames matched through both files' start_frame."""
    import bpy

    from mocap.export.blender import _action_fcurves, load_scene, retarget_to_file, write_scene
    from mocap.formats import FaceData, Motion, save_face, save_motion

    t = 10
    _scene_with_face_mesh(t)
    bpy.context.scene.objects["motion21"].animation_data_clear()
    write_scene(tmp_path / "character.blend")
    q = np.zeros((t, MOTION21.num_joints, 4))
    q[..., 0] = 1
    off = rest_offsets(MOTION21)
    save_motion(tmp_path / "motion.npz", Motion(
        joints=np.zeros((t, MOTION21.num_joints, 3)), joint_names=MOTION21.joint_names, parents=MOTION21.parents,
        fps=30.0, local_quats_wxyz=q, root_translation=np.zeros((t, 3)) + [0, 0.9, 0], rest_offsets=off,
        start_frame=4))
    video_frames = 20
    controls = np.full((video_frames, 3), np.nan)
    controls[:, 0] = np.arange(video_frames) / 20  # jawOpen = video frame / 20
    save_face(tmp_path / "face.npz", FaceData(
        keypoints=np.zeros((video_frames, 478, 2)), z=np.zeros((video_frames, 478)), score=np.ones(video_frames),
        names=NAMES, controls=controls, head_rotmats=np.zeros((video_frames, 3, 3)),
        head_ypr=np.zeros((video_frames, 3)), rest=np.zeros(10), fps=30.0))
    retarget_to_file(tmp_path / "motion.npz", tmp_path / "character.blend", tmp_path / "out.blend",
                     face_path=tmp_path / "face.npz")
    load_scene(tmp_path / "out.blend")
    mesh = next(o for o in bpy.context.scene.objects if o.type == "MESH" and o.data.shape_keys)
    fc = next(fc for fc in _action_fcurves(mesh.data.shape_keys.animation_data.action)
              if fc.data_path == 'key_blocks["jawOpen"].value')
    # motion frame i (Blender frame i + 1) is video frame 4 + i
    np.testing.assert_allclose([fc.evaluate(f) for f in range(1, t + 1)], (4 + np.arange(t)) / 20, atol=1e-4)
