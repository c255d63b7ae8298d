"""BVH writing/reading: round trips (1e-6 rad / 1e-6 m), hand-computed files, a real CMU
file, malformed files, and Blender's own importer as an independent reader (1e-4 m)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mocap.io.bvh import BvhMotion, read_bvh, write_bvh
from mocap.kinematics.ik import bvh_joint_positions
from mocap.errors import MocapError
from mocap.kinematics.ik import forward_kinematics
from mocap.rotations import EULER_ORDERS, axis_angle_to_quat_wxyz, geodesic_angle
from mocap.skeletons import MOTION21, rest_offsets

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CMU_WALK = DATA / "mocap" / "samples" / "cmu_02_01_walk.bvh"
PARENTS = MOTION21.parents


def random_motion(t: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(t, 21, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    q = axis_angle_to_quat_wxyz(axis * rng.uniform(0, np.pi, size=(t, 21, 1)))
    q[:, 4] = [1.0, 0, 0, 0]
    # Frames at gimbal lock for ZXY (X = 90 deg) and a half turn.
    q[0, 1] = axis_angle_to_quat_wxyz([np.pi / 2, 0, 0])
    q[1, 2] = [0.0, 0.0, 1.0, 0.0]
    root = rng.normal(size=(t, 3)) + [0, 1.0, 0]
    return q, root


def write_motion(path, q, root, off=None, **kw):
    write_bvh(path, joint_names=MOTION21.joint_names, parents=PARENTS,
              rest_offsets=rest_offsets() if off is None else off,
              local_quats_wxyz=q, root_translation=root, fps=kw.pop("fps", 30.0), **kw)


ORDERS = list(EULER_ORDERS) + [[EULER_ORDERS[j % 6] for j in range(21)]]


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: o if isinstance(o, str) else "mixed")
@pytest.mark.parametrize("units", ["cm", "m"])
def test_round_trip(tmp_path, order, units):
    q, root = random_motion()
    off = rest_offsets() * 1.1
    path = tmp_path / "m.bvh"
    write_motion(path, q, root, off, rotation_order=order, units=units, fps=59.94)
    m = read_bvh(path, units=units)
    assert isinstance(m, BvhMotion)
    assert m.joint_names == MOTION21.joint_names and m.parents == PARENTS
    assert m.num_frames == 40 and m.fps == pytest.approx(59.94, rel=1e-9)
    expected_orders = [order] * 21 if isinstance(order, str) else order
    assert list(m.rotation_orders) == expected_orders
    assert m.channels[0][:3] == ("Xposition", "Yposition", "Zposition") and len(m.channels[1]) == 3
    np.testing.assert_allclose(m.rest_offsets, off, atol=1e-6)
    assert geodesic_angle(m.local_quats_wxyz, q).max() < 1e-6
    np.testing.assert_allclose(m.root_translation, root, atol=1e-6)
    np.testing.assert_allclose(bvh_joint_positions(m), forward_kinematics(q, root, off, PARENTS), atol=1e-5)
    assert m.joint_offsets is None
    leaves = [j for j in range(21) if not MOTION21.children(j)]
    np.testing.assert_allclose(m.end_sites[leaves], 0.25 * off[leaves], atol=1e-6)
    assert np.isnan(m.end_sites[0]).all()
    # Sign-continuous output.
    assert np.all(np.sum(m.local_quats_wxyz[1:] * m.local_quats_wxyz[:-1], -1) >= 0)


def test_written_file_layout(tmp_path):
    q, root = random_motion(t=3)
    path = tmp_path / "m.bvh"
    write_motion(path, q, root, fps=25)
    text = path.read_text()
    lines = text.splitlines()
    assert lines[:4] == ["HIERARCHY", "ROOT pelvis", "{", "\tOFFSET 0.000000 0.000000 0.000000"]
    assert lines[4] == "\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
    assert "Frames: 3" in lines and "Frame Time: 0.04" in lines
    assert text.count("End Site") == 7 and len(lines[-1].split()) == 6 + 3 * 20
    assert not [p for p in tmp_path.iterdir() if p.name != "m.bvh"], "temporary file left behind"


HAND_MADE = (
    "HIERARCHY\r\n"
    "ROOT root\r\n"
    "{\r\n"
    "\tOFFSET 0 0 0\r\n"
    "\tCHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation\r\n"
    "\tJOINT arm\r\n"
    "\t{\r\n"
    "\t\tOFFSET\t0 10 0\r\n"
    "\t\tCHANNELS 6 Xposition Yposition Zposition Yrotation Zrotation Xrotation\r\n"
    "\t\tEnd Site\r\n"
    "\t\t{\r\n"
    "\t\t\tOFFSET 0 5 0\r\n"
    "\t\t}\r\n"
    "\t}\r\n"
    "}\r\n"
    "MOTION\r\n"
    "Frames:\t2\r\n"
    "Frame Time:\t0.1\r\n"
    "1 2 3 0 0 90 0 20 0 0 0 0\r\n"
    "0 0 0 90 0 0 0 10 0 0 90 0\r\n"
)


def test_hand_made_file_with_crlf_tabs_and_position_channels(tmp_path):
    path = tmp_path / "hand.bvh"
    path.write_bytes(HAND_MADE.encode())
    m = read_bvh(path)
    assert m.joint_names == ("root", "arm") and m.parents == (-1, 0) and m.fps == pytest.approx(10.0)
    assert m.rotation_orders == ("XYZ", "YZX")
    np.testing.assert_allclose(m.end_sites, [[np.nan] * 3, [0, 0.05, 0]])
    np.testing.assert_allclose(m.root_translation, [[0.01, 0.02, 0.03], [0, 0, 0]])
    assert m.joint_offsets is not None
    np.testing.assert_allclose(m.joint_offsets[:, 1], [[0, 0.2, 0], [0, 0.1, 0]])
    pos = bvh_joint_positions(m)
    # Frame 0: the root turns 90 degrees about Z, the arm (stretched to 20 cm) points along -X.
    np.testing.assert_allclose(pos[0], [[0.01, 0.02, 0.03], [0.01 - 0.2, 0.02, 0.03]], atol=1e-12)
    # Frame 1: the root turns 90 degrees about X, the arm (10 cm) points along +Z.
    np.testing.assert_allclose(pos[1], [[0, 0, 0], [0, 0, 0.1]], atol=1e-12)
    # The arm's own rotation: 90 degrees about Z in frame 1.
    assert geodesic_angle(m.local_quats_wxyz[1, 1], axis_angle_to_quat_wxyz([0, 0, np.pi / 2])) < 1e-12


def _break(old: str, new: str) -> str:
    assert old in HAND_MADE
    return HAND_MADE.replace(old, new, 1)


MALFORMED = [
    ("HIERARCHY_", "HIERARCHY\r\n", "HIERARCHY", 1),
    ("bad channel", "Yrotation Zrotation Xrotation", "Yrotation Zrotation Wrotation", 9),
    ("missing brace", "\t\t}\r\n\t}\r\n}\r\n", "\t\t}\r\n\t}\r\n", 15),
    ("value count", "0 0 0 90 0 0 0 10 0 0 90 0", "0 0 0 90 0 0 0 10 0 0 90", 20),
    ("not a number", "0 0 0 90 0 0 0 10 0 0 90 0", "0 0 0 90 0 0 0 1O 0 0 90 0", 20),
    ("truncated", "0 0 0 90 0 0 0 10 0 0 90 0\r\n", "", 19),
    ("frame time", "Frame Time:\t0.1", "Frame Time:\tfast", 18),
    ("offset", "OFFSET\t0 10 0", "OFFSET\t0 10", 9),
]


@pytest.mark.parametrize("old,new,line", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_files_name_the_line(tmp_path, old, new, line):
    text = "HIERARCH\r\n" + HAND_MADE[len("HIERARCHY\r\n"):] if old == "HIERARCHY\r\n" else _break(old, new)
    path = tmp_path / "bad.bvh"
    path.write_bytes(text.encode())
    with pytest.raises(MocapError, match=rf"line {line}\b"):
        read_bvh(path)


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(MocapError, match="not found"):
        read_bvh(tmp_path / "nope.bvh")
    q, root = random_motion(t=2)
    with pytest.raises(ValueError, match="units"):
        write_motion(tmp_path / "a.bvh", q, root, units="furlong")
    with pytest.raises(ValueError, match="rotation_order"):
        write_motion(tmp_path / "a.bvh", q, root, rotation_order="XYX")
    root[1, 0] = np.nan
    with pytest.raises(ValueError, match="frame 1"):
        write_motion(tmp_path / "a.bvh", q, root)
    with pytest.raises(ValueError, match=r"\(T, 21, 4\)"):
        write_motion(tmp_path / "a.bvh", q[..., :3], root)
    with pytest.raises(MocapError, match="does not exist"):
        write_motion(tmp_path / "no_dir" / "a.bvh", q, np.zeros((2, 3)))
    assert not (tmp_path / "a.bvh").exists()


@pytest.mark.shared_data
@pytest.mark.skipif(not CMU_WALK.is_file(), reason=f"needs the shared sample data at {CMU_WALK}")
def test_read_cmu_walk():
    m = read_bvh(CMU_WALK)
    names = m.joint_names
    assert m.num_frames == 344 and m.fps == pytest.approx(120.0, rel=1e-4)
    assert len(names) == 43 and names[0] == "hip"
    assert m.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
    assert m.rotation_orders[1] == "ZXY" and m.joint_offsets is None
    bone = {n: np.linalg.norm(m.rest_offsets[i]) for i, n in enumerate(names)}
    for child in ("lShin", "rShin", "lFoot", "rFoot"):  # thigh and shank lengths
        assert 0.3 < bone[child] < 0.6, (child, bone[child])
    for child in ("lForeArm", "rForeArm", "lHand", "rHand"):  # upper arm and forearm
        assert 0.15 < bone[child] < 0.4, (child, bone[child])
    pos = bvh_joint_positions(m)
    assert np.isfinite(pos).all()
    head, feet = pos[:, names.index("head")], pos[:, [names.index("lFoot"), names.index("rFoot")]]
    height = head[:, 1] - feet[..., 1].min(1)
    assert np.all((height > 1.2) & (height < 1.9))
    assert np.all((pos[:, 0, 1] > 0.7) & (pos[:, 0, 1] < 1.1))  # hip height
    # The subject walks more than 2 m along +Z.
    assert pos[-1, 0, 2] - pos[0, 0, 2] > 2.0
    # Bone lengths stay constant under FK.
    lengths = np.linalg.norm(pos[:, 1:] - pos[:, list(m.parents[1:])], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(np.linalg.norm(m.rest_offsets[1:], axis=-1), lengths.shape),
                               atol=1e-9)


@pytest.mark.blender
@pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs bpy (pip install 'mocap-lift[blender]')")
@pytest.mark.parametrize("units,scale", [("cm", 0.01), ("m", 1.0)])
def test_blender_imports_our_bvh(tmp_path, units, scale):
    import bpy

    q, root = random_motion(t=12, seed=3)
    off = rest_offsets()
    path = tmp_path / "m.bvh"
    write_motion(path, q, root, off, units=units, rotation_order="ZXY", fps=30)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=str(path), global_scale=scale, axis_forward="-Z", axis_up="Y",
                            update_scene_fps=True, update_scene_duration=True)
    scene = bpy.context.scene
    arm = next(o for o in scene.objects if o.type == "ARMATURE")
    assert scene.render.fps == 30
    ours = forward_kinematics(q, root, off, PARENTS)
    ours_zup = np.stack([ours[..., 0], -ours[..., 2], ours[..., 1]], -1)
    world = np.array(arm.matrix_world)
    for f in (0, 1, 5, 11):
        scene.frame_set(scene.frame_start + f)
        heads = np.array([(world @ np.append(np.array(arm.pose.bones[n].head), 1.0))[:3]
                          for n in MOTION21.joint_names])
        np.testing.assert_allclose(heads, ours_zup[f], atol=1e-4, err_msg=f"frame {f}")


@pytest.mark.blender
@pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs bpy (pip install 'mocap-lift[blender]')")
@pytest.mark.parametrize("units,size", [("m", 1.0), ("cm", 100.0)])
def test_blender_default_bvh_import_size(tmp_path, units, size):
    """``--units m``: Blender's BVH importer with its defaults (scale 1) gives the bones
    their length in metres; a centimetre file (the default) comes in 100 times as large."""
    import bpy

    from mocap.formats import Motion
    from mocap.io.bvh import write_motion_bvh

    q, root = random_motion(t=5, seed=4)
    off = rest_offsets()
    joints = forward_kinematics(q, root, off, PARENTS)
    path = tmp_path / "m.bvh"
    write_motion_bvh(path, Motion(joints=joints, joint_names=MOTION21.joint_names, parents=PARENTS, fps=30.0,
                                  local_quats_wxyz=q, root_translation=root, rest_offsets=off), units=units)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.import_anim.bvh(filepath=str(path)) == {"FINISHED"}
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    world = np.array(arm.matrix_world)
    for parent, child in (("left_shoulder", "left_elbow"), ("right_hip", "right_knee"), ("pelvis", "spine")):
        heads = [world[:3, :3] @ np.array(arm.data.bones[n].head_local) for n in (parent, child)]
        length = np.linalg.norm(heads[1] - heads[0])
        assert length == pytest.approx(size * np.linalg.norm(off[MOTION21.index(child)]), rel=1e-5), child
