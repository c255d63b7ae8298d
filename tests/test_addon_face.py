"""The Blender extension's Apply Face operator: the selected mesh's shape keys named as the face
controls keyed from face.npz (following the motion.npz beside it), a mesh without such shape
keys refused in one report line. Built and installed as in tests/test_blender_addon.py."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mocap.formats import FaceData, Motion, save_face, save_motion
from mocap.skeletons import MOTION21, rest_offsets

from tests import test_blender_addon
from tests.test_blender_addon import clear_scene

addon = test_blender_addon.addon  # the fixture: the extension built, installed and enabled

pytestmark = [pytest.mark.blender,
              pytest.mark.skipif(importlib.util.find_spec("bpy") is None,
                                 reason="needs bpy (pip install 'mocap-lift[blender]')")]
NAMES = ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight")


def _face_files(folder, *, motion_start: int | None) -> None:
    t = 30
    controls = np.zeros((t, 3))
    controls[:, 0] = np.arange(t) / t  # jawOpen = video frame / 30
    controls[10:14, 2] = 1.0  # a blink of the right eye, video frames 10-13
    controls[20] = np.nan  # no face
    save_face(folder / "face.npz", FaceData(
        keypoints=np.zeros((t, 478, 2)), z=np.zeros((t, 478)), score=np.ones(t), names=NAMES, controls=controls,
        head_rotmats=np.zeros((t, 3, 3)), head_ypr=np.zeros((t, 3)), rest=np.zeros(10), fps=30.0))
    if motion_start is not None:
        n = 15
        q = np.zeros((n, MOTION21.num_joints, 4))
        q[..., 0] = 1
        save_motion(folder / "motion.npz", Motion(
            joints=np.zeros((n, MOTION21.num_joints, 3)), joint_names=MOTION21.joint_names, parents=MOTION21.parents,
            fps=30.0, local_quats_wxyz=q, root_translation=np.zeros((n, 3)), rest_offsets=rest_offsets(MOTION21),
            start_frame=motion_start))


def _mesh_with_keys(names):
    import bpy

    bpy.ops.mesh.primitive_cube_add()
    obj = bpy.context.object
    obj.shape_key_add(name="Basis")
    for n in names:
        obj.shape_key_add(name=n)
    return obj


def _curve(obj, name):
    from mocap.export.blender import _action_fcurves

    return next(fc for fc in _action_fcurves(obj.data.shape_keys.animation_data.action)
                if fc.data_path == f'key_blocks["{name}"].value')


def test_apply_face_keys_the_selected_mesh(addon, tmp_path):
    import bpy

    clear_scene()
    _face_files(tmp_path, motion_start=None)
    obj = _mesh_with_keys(["jawOpen", "eyeBlinkRight", "smile_custom"])
    assert bpy.ops.mocap.apply_face(filepath=str(tmp_path / "face.npz"), frame_start=5) == {"FINISHED"}
    jaw, blink = _curve(obj, "jawOpen"), _curve(obj, "eyeBlinkRight")
    np.testing.assert_allclose([jaw.evaluate(5 + f) for f in (0, 15, 29)], [0, 0.5, 29 / 30], atol=1e-5)
    assert [blink.evaluate(5 + f) for f in (9, 10, 13, 14)] == [0, 1, 1, 0]
    assert jaw.evaluate(5 + 20) == 0.0  # no face: rest


def test_apply_face_follows_the_motion_beside_it(addon, tmp_path):
    import bpy

    clear_scene()
    _face_files(tmp_path, motion_start=8)  # the motion's frame 0 is video frame 8
    obj = _mesh_with_keys(["jawOpen"])
    assert bpy.ops.mocap.apply_face(filepath=str(tmp_path / "face.npz"), frame_start=1) == {"FINISHED"}
    jaw = _curve(obj, "jawOpen")
    want = (8 + np.arange(15)) / 30
    want[12] = 0.0  # video frame 20: no face, the rest pose
    np.testing.assert_allclose([jaw.evaluate(1 + i) for i in range(15)], want, atol=1e-5)
    assert len(jaw.keyframe_points) == 15


def test_apply_face_refuses_a_mesh_without_control_shape_keys(addon, tmp_path):
    import bpy

    clear_scene()
    _face_files(tmp_path, motion_start=None)
    _mesh_with_keys(["Smile"])
    with pytest.raises(RuntimeError, match="no shape keys named as the face controls"):
        bpy.ops.mocap.apply_face(filepath=str(tmp_path / "face.npz"))
    bpy.ops.mesh.primitive_cube_add()  # no shape keys at all: the operator is greyed out
    assert not bpy.ops.mocap.apply_face.poll()


def test_face_panel_under_import(addon):
    import bpy

    from tests.test_blender_addon import _Layout

    clear_scene()
    assert bpy.types.MOCAP_PT_face.bl_parent_id == "MOCAP_PT_import"
    layout = _Layout()
    bpy.types.MOCAP_PT_face.draw(type("P", (), {"layout": layout})(), bpy.context)
    assert layout.operators == ["mocap.apply_face"] and layout.labels == ["Select a mesh with shape keys"]
    _mesh_with_keys(["jawOpen"])
    layout = _Layout()
    bpy.types.MOCAP_PT_face.draw(type("P", (), {"layout": layout})(), bpy.context)
    assert layout.labels == [f"Shape keys of: {bpy.context.object.name}"]
