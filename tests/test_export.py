"""FBX, GLB and .blend export through Blender, checked by re-importing with Blender:
joint world positions within 1 mm, frame count and rate kept, first frame not shifted,
the character upright and facing forward (Blender: +Z up, faces -Y; glTF: +Y up, faces +Z)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mocap.kinematics.ik import forward_kinematics
from mocap.rotations import axis_angle_to_quat_wxyz, quat_multiply_wxyz, quat_wxyz_to_matrix
from mocap.skeletons import MOTION21, rest_offsets

pytestmark = [pytest.mark.blender,
              pytest.mark.skipif(importlib.util.find_spec("bpy") is None,
                                 reason="needs bpy (pip install 'mocap-lift[blender]')")]
PARENTS = MOTION21.parents


def motion(t: int = 48, seed: int = 0):
    """A walking-forward person with random joint rotations up to 60 degrees, a turn of the
    root about Y and a root path moving along +Z."""
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(t, 21, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.radians(60) * np.sin(np.linspace(0, 3, t))[:, None, None] * rng.uniform(0.2, 1, (1, 21, 1))
    q = axis_angle_to_quat_wxyz(axis * angle)
    yaw = axis_angle_to_quat_wxyz(np.linspace(0, 1.0, t)[:, None] * np.array([0.0, 1.0, 0.0]))
    q[:, 0] = quat_multiply_wxyz(yaw, q[:, 0])
    root = np.stack([0.1 * np.sin(np.arange(t) / 5), 0.9 + 0.02 * np.cos(np.arange(t) / 3),
                     np.linspace(0, 1.5, t)], -1)
    off = rest_offsets() * 1.05
    return q, root, off


@pytest.mark.parametrize("suffix,fps", [(".fbx", 30.0), (".glb", 60.0), (".blend", 24.0), (".fbx", 29.97)])
def test_round_trip(tmp_path, suffix, fps):
    from mocap.export.blender import export_motion, read_animation

    q, root, off = motion()
    path = tmp_path / ("m" + suffix)
    export_motion(path, joint_names=MOTION21.joint_names, parents=PARENTS, rest_offsets=off,
                  local_quats_wxyz=q, root_translation=root, fps=fps)
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "temporary file left behind"
    anim = read_animation(path)
    assert anim.fps == pytest.approx(fps, rel=1e-4)
    idx = [anim.bone_names.index(n) for n in MOTION21.joint_names]
    assert tuple(anim.parents[i] for i in idx) == tuple(-1 if p < 0 else idx[p] for p in PARENTS)
    pos = anim.positions[:, idx]
    truth = forward_kinematics(q, root, off, PARENTS)
    assert pos.shape == truth.shape, "frame count changed"
    assert anim.frame_start == 1
    err = np.linalg.norm(pos - truth, axis=-1)
    assert err[0].max() < 1e-3, "first frame shifted"
    assert err.max() < 1e-3, f"max error {1000 * err.max():.3f} mm"
    np.testing.assert_allclose(anim.rest_positions[idx] - anim.rest_positions[idx][0],
                               (forward_kinematics(np.tile([1.0, 0, 0, 0], (1, 21, 1)), np.zeros((1, 3)), off, PARENTS)[0]
                                - off[0]), atol=1e-4)


def test_axes_in_blender_and_gltf(tmp_path):
    """Rest pose: in Blender the head is above the feet (+Z) and the nose points to -Y; in
    the GLB's own node transforms (read without Blender) the head is above (+Y), the nose
    points to +Z and the left hip is at +X."""
    import json
    import struct

    import bpy

    from mocap.export.blender import build_armature, export_motion, new_scene

    off = rest_offsets()
    new_scene(30)
    arm = build_armature(joint_names=MOTION21.joint_names, parents=PARENTS, rest_offsets=off)
    head = np.array(arm.data.bones["head"].head_local)
    nose = np.array(arm.data.bones["nose"].head_local)
    foot = np.array(arm.data.bones["left_foot_index"].head_local)
    assert head[2] - foot[2] > 1.0 and nose[1] < head[1] - 0.05
    assert np.array(arm.data.bones["left_hip"].head_local)[0] > 0.05
    assert len(bpy.data.meshes) == 1 and len(bpy.data.meshes[0].vertices) == 8 * 21

    t = 3
    path = tmp_path / "rest.glb"
    export_motion(path, joint_names=MOTION21.joint_names, parents=PARENTS, rest_offsets=off,
                  local_quats_wxyz=np.tile([1.0, 0, 0, 0], (t, 21, 1)), root_translation=np.zeros((t, 3)), fps=30)
    data = path.read_bytes()
    length = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20:20 + length])
    nodes = doc["nodes"]
    parent = {c: i for i, n in enumerate(nodes) for c in n.get("children", [])}

    def world(i):
        m = np.eye(4)
        while i is not None:
            n = nodes[i]
            local = np.eye(4)
            x, y, z, w = n.get("rotation", [0, 0, 0, 1])
            local[:3, :3] = quat_wxyz_to_matrix(np.array([w, x, y, z]))
            local[:3, 3] = n.get("translation", [0, 0, 0])
            m = local @ m
            i = parent.get(i)
        return m[:3, 3]

    by_name = {n.get("name"): i for i, n in enumerate(nodes)}
    g = {n: world(by_name[n]) for n in ("head", "nose", "left_hip", "left_foot_index", "pelvis")}
    truth = forward_kinematics(np.tile([1.0, 0, 0, 0], (1, 21, 1)), np.zeros((1, 3)), off, PARENTS)[0]
    for n, v in g.items():
        np.testing.assert_allclose(v, truth[MOTION21.index(n)], atol=1e-5, err_msg=n)


@pytest.mark.slow
def test_fbx_export_of_a_minute(tmp_path):
    """Every frame of a minute comes back (its time: benchmarks/bench_timings.py)."""
    from mocap.export.blender import export_motion, read_animation

    t = 60 * 30
    q = np.tile([1.0, 0, 0, 0], (t, 21, 1))
    q[:, 2] = axis_angle_to_quat_wxyz(np.sin(np.arange(t) / 10)[:, None] * np.array([1.0, 0, 0]))
    export_motion(tmp_path / "minute.fbx", joint_names=MOTION21.joint_names, parents=PARENTS,
                  rest_offsets=rest_offsets(), local_quats_wxyz=q, root_translation=np.zeros((t, 3)), fps=30)
    anim = read_animation(tmp_path / "minute.fbx")
    idx = [anim.bone_names.index(n) for n in MOTION21.joint_names]
    truth = forward_kinematics(q, np.zeros((t, 3)), rest_offsets(), PARENTS)
    assert anim.positions.shape == (t, 21, 3)
    assert np.linalg.norm(anim.positions[:, idx] - truth, axis=-1).max() < 1e-3


def test_bad_suffix(tmp_path):
    from mocap.errors import MocapError
    from mocap.export.blender import export_motion, read_animation

    q, root, off = motion(t=2)
    with pytest.raises(MocapError, match=r"\.fbx"):
        export_motion(tmp_path / "m.obj", joint_names=MOTION21.joint_names, parents=PARENTS, rest_offsets=off,
                      local_quats_wxyz=q, root_translation=root, fps=30)
    with pytest.raises(MocapError, match="not found"):
        read_animation(tmp_path / "nope.fbx")


def _sample_bone(arm, name: str, frames) -> np.ndarray:
    """World head positions (F, 3) of bone ``name``, our +Y-up axes."""
    import bpy

    from mocap.export.blender import Y_UP_TO_BLENDER

    out = []
    for f in frames:
        bpy.context.scene.frame_set(f)
        world = np.array(arm.matrix_world)
        out.append((world[:3, :3] @ np.array(arm.pose.bones[name].head) + world[:3, 3]) @ Y_UP_TO_BLENDER)
    return np.array(out)


def _keyed_frames(action) -> np.ndarray:
    from mocap.export.blender import _action_fcurves

    times = [kp.co[0] for fc in _action_fcurves(action) for kp in fc.keyframe_points]
    return np.array(sorted(set(np.round(times, 6))))


def test_fbx_default_import_puts_the_keys_on_frames_1_to_t(tmp_path):
    """Blender's FBX importer with every setting at its default (Animation Offset 1) shows
    a 100-frame capture on frames 1..100 (it was 2..101), posed as the source's FK."""
    import bpy

    from mocap.export.blender import export_motion, find_armature

    t = 100
    q, root, off = motion(t=t)
    path = tmp_path / "m.fbx"
    export_motion(path, joint_names=MOTION21.joint_names, parents=PARENTS, rest_offsets=off,
                  local_quats_wxyz=q, root_translation=root, fps=30.0)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.import_scene.fbx(filepath=str(path)) == {"FINISHED"}
    arm = find_armature()
    frames = _keyed_frames(arm.animation_data.action)
    assert (frames[0], frames[-1], len(frames)) == (1.0, float(t), t)
    np.testing.assert_array_equal(frames, np.arange(1, t + 1))
    truth = forward_kinematics(q, root, off, PARENTS)
    for bone in ("pelvis", "left_wrist", "right_ankle"):
        at = [1, 2, 50, t]
        got = _sample_bone(arm, bone, at)
        err = np.linalg.norm(got - truth[np.array(at) - 1, MOTION21.index(bone)], axis=-1)
        assert err.max() < 1e-3, f"{bone}: {1000 * err.max():.3f} mm at frames {at}"


def _gltf_floats(path, doc: dict, accessor: int) -> np.ndarray:
    """The float values of a GLB accessor, read from the binary chunk."""
    import struct

    data = path.read_bytes()
    json_len = struct.unpack_from("<I", data, 12)[0]
    bin_start = 20 + json_len + 8
    acc = doc["accessors"][accessor]
    assert acc["componentType"] == 5126  # float32
    view = doc["bufferViews"][acc["bufferView"]]
    start = bin_start + view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc["type"]]
    return np.frombuffer(data, dtype="<f4", count=acc["count"] * width, offset=start)


@pytest.mark.parametrize("fps", [60.0, 29.97])
def test_glb_records_its_frame_rate_and_plays_in_time(tmp_path, fps):
    """The GLB's scene extras hold the fps, every sampler's key times are frame / fps
    (frames 1..T), and imported at that rate the keys fall on whole frames 1..T."""
    import bpy

    from mocap.export.blender import _gltf_json, export_motion, find_armature, gltf_frame_rate, load_scene

    t = 50
    q, root, off = motion(t=t)
    path = tmp_path / "m.glb"
    export_motion(path, joint_names=MOTION21.joint_names, parents=PARENTS, rest_offsets=off,
                  local_quats_wxyz=q, root_translation=root, fps=fps)
    doc = _gltf_json(path)
    assert doc["scenes"][doc.get("scene", 0)]["extras"]["fps"] == pytest.approx(fps)
    assert gltf_frame_rate(path) == pytest.approx(fps)
    samplers = [s for a in doc["animations"] for s in a["samplers"]]
    assert len(samplers) >= 21
    for s in samplers:
        np.testing.assert_allclose(_gltf_floats(path, doc, s["input"]), np.arange(1, t + 1) / fps, rtol=1e-6)

    load_scene(path)
    scene = bpy.context.scene
    assert scene.render.fps / scene.render.fps_base == pytest.approx(fps, rel=1e-6)
    frames = _keyed_frames(find_armature().animation_data.action)
    np.testing.assert_allclose(frames, np.arange(1, t + 1), atol=1e-3)
    assert (scene.frame_start, scene.frame_end) == (1, t)
