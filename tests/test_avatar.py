"""The built-in anny character: the extracted rest mesh is a standing, symmetric, correctly
skinned adult; Blender's skinning of it reproduces anny's own posed mesh; a synthetic motion
retargeted onto it is followed, upright and facing +Z; the mesh deforms with its bones.

anny's first construction on a machine takes a minute or more (and writes ~790 MB to
$ANNY_CACHE_DIR, default ~/.cache/anny); the extracted arrays and the character are then
cached in mocap.io.model_files.cache_dir() / "avatar" (the default, persistent cache), so later runs
of this file take ~20 s."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mocap.errors import MocapError

HAS_ANNY = importlib.util.find_spec("anny") is not None
HAS_BPY = importlib.util.find_spec("bpy") is not None
needs_anny = pytest.mark.skipif(not HAS_ANNY, reason="needs anny (pip install 'mocap-lift[avatar]')")
needs_bpy = pytest.mark.skipif(not HAS_BPY, reason="needs bpy (pip install 'mocap-lift[blender]')")
T = 45  # frames of the synthetic motion (30 fps)


@pytest.fixture(scope="module")
def rig():
    """The default anny body, built once (slow the first time on a machine, then cached)."""
    if not HAS_ANNY:
        pytest.skip("needs anny (pip install 'mocap-lift[avatar]')")
    from mocap.export.avatar import anny_rig_arrays

    return anny_rig_arrays()


@pytest.fixture(scope="module")
def retargeted(rig, tmp_path_factory):
    """The waving walker (tests/synthetic.py) retargeted onto the default avatar, written as
    .blend (exact vertex order) and .glb; returns (folder, source joints (T, 21, 3), result)."""
    if not HAS_BPY:
        pytest.skip("needs bpy (pip install 'mocap-lift[blender]')")
    from mocap.export.avatar import retarget_to_avatar
    from mocap.formats import Motion, save_motion
    from mocap.kinematics.ik import forward_kinematics, inverse_kinematics
    from mocap.skeletons import MOTION21, rest_offsets

    from tests.synthetic import waving_walker

    folder = tmp_path_factory.mktemp("avatar")
    off = rest_offsets()
    q, root = inverse_kinematics(waving_walker(T), parents=MOTION21.parents, rest_offsets=off)
    joints = forward_kinematics(q, root, off, MOTION21.parents)
    save_motion(folder / "motion.npz", Motion(joints=joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents,
                                              fps=30.0, local_quats_wxyz=q, root_translation=root, rest_offsets=off))
    res = retarget_to_avatar(folder / "motion.npz", folder / "out.blend")
    retarget_to_avatar(folder / "motion.npz", folder / "out.glb")
    return folder, joints, res


def test_phenotype_and_suffix_errors(tmp_path):
    from mocap.export.avatar import anny_rig_arrays, build_anny_avatar

    with pytest.raises(ValueError, match="must lie in"):
        anny_rig_arrays(age=1.5)
    with pytest.raises(ValueError, match="unknown anny phenotype shoe_size; use: gender"):
        anny_rig_arrays(shoe_size=0.3)
    with pytest.raises(MocapError, match=r"\.blend"):
        build_anny_avatar(tmp_path / "a.obj")


@pytest.mark.slow
@needs_anny
def test_rest_mesh_is_a_standing_symmetric_adult(rig, tmp_path, monkeypatch):
    from scipy.spatial import cKDTree

    from mocap.export import avatar
    from mocap.export.avatar import ANNY_BONE_MAP, _load_rig, _save_rig, anny_rig_arrays

    v, h = rig.vertices.astype(np.float64), rig.heads
    b = {c: h[rig.index(n)] for c, n in ANNY_BONE_MAP.items()}
    assert 1.5 < rig.height < 2.0, rig.height  # 1.729 m
    assert len(rig.bone_names) == 104 and len(v) == 13718
    # Standing on the floor: soles at y = 0 under the ankles, ankles 5-12 cm up, head above pelvis above feet.
    assert v[:, 1].min() == pytest.approx(0.0, abs=1e-6)
    low = v[v[:, 1] < 0.01]
    ankles = np.stack([b["left_ankle"], b["right_ankle"]])
    horiz = np.linalg.norm(low[:, None, [0, 2]] - ankles[None, :, [0, 2]], axis=-1).min(1)
    assert len(low) > 20 and horiz.max() < 0.25  # toe tips ~20 cm before the ankles
    assert 0.05 < ankles[:, 1].min() and ankles[:, 1].max() < 0.12
    assert b["head"][1] > b["neck"][1] > b["spine"][1] > b["pelvis"][1] > b["left_knee"][1] > b["left_ankle"][1]
    # Faces +Z (eyes and toes in front), its left at +X.
    assert h[rig.index("eye.L"), 2] - b["head"][2] > 0.05 and b["left_foot_index"][2] - b["left_ankle"][2] > 0.1
    assert b["left_hip"][0] > 0.05 and b["left_wrist"][0] > 0.3 and b["right_wrist"][0] < -0.3
    # Left/right symmetric: mirrored vertices land on vertices, mirrored bones on their twins.
    mirror = v * [-1.0, 1.0, 1.0]
    dist, nn = cKDTree(v).query(mirror)
    assert np.median(dist) < 1e-4 and dist.max() < 0.005, (np.median(dist), dist.max())
    for j, n in enumerate(rig.bone_names):
        twin = n[:-1] + {"L": "R", "R": "L"}[n[-1]] if n[-2:] in (".L", ".R") else n
        np.testing.assert_allclose(h[rig.index(twin)], h[j] * [-1, 1, 1], atol=2.5e-3, err_msg=n)  # neck03: 1 mm
    # Skin weights: non-negative rows summing to 1, on bones of the rig, and mirrored with the mesh.
    assert rig.weights.min() >= 0 and np.abs(rig.weights.sum(1) - 1).max() < 1e-5
    assert rig.weight_indices.min() >= 0 and rig.weight_indices.max() < len(rig.bone_names)
    dense = rig.dense_weights()
    swap = [rig.index(n[:-1] + {"L": "R", "R": "L"}[n[-1]]) if n[-2:] in (".L", ".R") else j
            for j, n in enumerate(rig.bone_names)]
    assert np.mean(dense.argmax(1) == np.array(swap)[dense[nn].argmax(1)]) > 0.99
    # Triangles facing outwards: a positive enclosed volume of 50-100 litres (an adult's body).
    a, bb, c = (v[rig.faces[:, k]] for k in range(3))
    volume = np.einsum("ij,ij->i", a, np.cross(bb, c)).sum() / 6
    assert 0.05 < volume < 0.1, volume
    # Bone frames are rotations whose y axis points from head to tail.
    np.testing.assert_allclose(np.einsum("bji,bjk->bik", rig.rest_rotmats, rig.rest_rotmats),
                               np.broadcast_to(np.eye(3), rig.rest_rotmats.shape), atol=1e-9)
    axis = (rig.tails - rig.heads) / np.linalg.norm(rig.tails - rig.heads, axis=1, keepdims=True)
    np.testing.assert_allclose(axis, rig.rest_rotmats[:, :, 1], atol=1e-9)
    # The cache round-trips, and a second call reads it without building anny (its time:
    # benchmarks/bench_timings.py).
    _save_rig(tmp_path / "r.npz", rig)
    again = _load_rig(tmp_path / "r.npz")
    assert again.bone_names == rig.bone_names and again.phenotype == rig.phenotype
    np.testing.assert_array_equal(again.weights, rig.weights)

    def no_anny(phenotype):
        raise AssertionError("built anny although the cache holds this body")

    monkeypatch.setattr(avatar, "_extract_from_anny", no_anny)
    cached = anny_rig_arrays()
    assert cached.bone_names == rig.bone_names
    np.testing.assert_array_equal(cached.vertices, rig.vertices)


@pytest.mark.slow
@pytest.mark.blender
@needs_anny
@needs_bpy
def test_blender_skinning_reproduces_anny(rig):
    """anny posed with random bone rotations vs the Blender armature given the same bone
    poses: the Armature modifier's mesh equals anny's own within 0.1 mm."""
    import anny
    import bpy
    import torch
    from mathutils import Matrix

    from mocap.export.avatar import add_avatar_to_scene
    from mocap.export.blender import Y_UP_TO_BLENDER, new_scene
    from mocap.rotations import axis_angle_to_quat_wxyz, quat_wxyz_to_matrix

    model = anny.Anny(rig="anny", topology="anny", skinning_method="lbs")
    rng = np.random.default_rng(0)
    delta = np.tile(np.eye(4), (1, len(rig.bone_names), 1, 1))
    delta[0, :, :3, :3] = quat_wxyz_to_matrix(axis_angle_to_quat_wxyz(rng.normal(0, 0.3, (len(rig.bone_names), 3))))
    with torch.no_grad():
        out = model(pose_parameters=torch.as_tensor(delta, dtype=model.dtype), phenotype_kwargs=dict(rig.phenotype))
    shift = Y_UP_TO_BLENDER @ rig.heads[0] - out["rest_bone_heads"][0, 0].numpy()  # our grounding, Blender axes
    rest = out["rest_bone_poses"][0].double().numpy()
    posed = out["bone_poses"][0].double().numpy()
    rest[:, :3, 3] += shift
    posed[:, :3, 3] += shift
    want = out["vertices"][0].double().numpy() + shift
    assert np.linalg.norm(want - (rig.vertices @ Y_UP_TO_BLENDER.T), axis=1).max() > 0.2  # it is posed

    new_scene(30)
    arm = add_avatar_to_scene(rig)
    for j, name in enumerate(rig.bone_names):
        np.testing.assert_allclose(np.array(arm.data.bones[name].matrix_local), rest[j], atol=1e-4, err_msg=name)  # float32
    for j, name in enumerate(rig.bone_names):  # pose matrix P_j = P_p L_p^-1 L_j B_j
        p = rig.parents[j]
        basis = np.linalg.inv(rest[j]) @ (rest[p] @ np.linalg.inv(posed[p]) if p >= 0 else np.eye(4)) @ posed[j]
        arm.pose.bones[name].matrix_basis = Matrix(basis.tolist())
    bpy.context.view_layer.update()
    body = bpy.data.objects["anny_body"].evaluated_get(bpy.context.evaluated_depsgraph_get())
    me = body.to_mesh()
    got = np.empty(3 * len(me.vertices))
    me.vertices.foreach_get("co", got)
    body.to_mesh_clear()
    err = np.linalg.norm(got.reshape(-1, 3) - want, axis=1)
    assert err.max() < 1e-4, f"{err.max() * 1000:.3f} mm"


@pytest.mark.slow
@pytest.mark.blender
@needs_anny
@needs_bpy
def test_retarget_synthetic_motion_onto_avatar(retargeted):
    from mocap.export.avatar import ANNY_BONE_MAP
    from mocap.export.blender import read_animation
    from mocap.skeletons import MOTION21

    folder, joints, res = retargeted
    assert res.scale == pytest.approx(1.0, abs=0.02)  # anny's hips 0.889 m up, the walker's 0.89 m
    for suffix in (".blend", ".glb"):
        anim = read_animation(folder / ("out" + suffix))
        assert anim.positions.shape[0] == T and anim.fps == pytest.approx(30.0)
        idx = [anim.bone_names.index(n) for n in res.bone_names]
        err = np.linalg.norm(anim.positions[:, idx] - res.positions, axis=-1)
        assert err.max() < 1e-3, (suffix, f"{err.max() * 1000:.3f} mm")
    pos = {c: anim.positions[:, anim.bone_names.index(n)] for c, n in ANNY_BONE_MAP.items()}
    # Every limb points where the source's does (the fidelity line; the file's bones match
    # the result's within 1 mm, above), and the hips follow the source scaled by leg length.
    assert len(res.fidelity.limbs) >= 12 and res.fidelity.max_deg < 0.01, res.fidelity.line()
    miss = np.linalg.norm(pos["pelvis"] / res.scale - joints[:, MOTION21.index("pelvis")], axis=-1)
    assert miss.max() < 1e-3
    # Upright (Y up) and facing +Z in every frame.
    feet = np.maximum(pos["left_ankle"][:, 1], pos["right_ankle"][:, 1])
    assert np.all(pos["head"][:, 1] > pos["pelvis"][:, 1] + 0.5) and np.all(pos["pelvis"][:, 1] > feet + 0.6)
    forward = np.cross(pos["left_hip"] - pos["right_hip"], [0.0, 1.0, 0.0])
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    assert forward[:, 2].min() > 0.95
    eyes = anim.positions[:, anim.bone_names.index("eye.L")]
    assert np.all(eyes[:, 2] - pos["head"][:, 2] > 0.05)


@pytest.mark.slow
@pytest.mark.blender
@needs_anny
@needs_bpy
def test_mesh_deforms_with_its_bones(rig, retargeted):
    """The evaluated (posed) mesh on two frames equals linear blend skinning of the rest mesh
    with Blender's bone matrices, and the hand moves rigidly with the wrist bone."""
    import bpy

    from mocap.export.blender import find_armature, load_scene

    folder = retargeted[0]
    load_scene(folder / "out.blend")
    arm = find_armature()
    body = next(o for o in bpy.context.scene.objects if o.type == "MESH" and o.parent == arm)
    rest_inv = np.stack([np.linalg.inv(np.array(arm.data.bones[n].matrix_local)) for n in rig.bone_names])
    rest_v = np.array([v.co for v in body.data.vertices])
    under = {rig.index("wrist.L")}  # the wrist and the finger bones (rigid with it after a retarget)
    for j, p in enumerate(rig.parents):
        if p in under:
            under.add(j)
    hand = rig.dense_weights()[:, sorted(under)].sum(1) > 0.999
    assert hand.sum() > 500
    world, wrist = {}, {}
    for frame in (1, 16):  # arms level, then raised 0.6 rad (the walker's wave peaks at 0.5 s)
        bpy.context.scene.frame_set(frame)
        me = body.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
        got = np.array([v.co for v in me.vertices])
        skin = np.stack([np.array(arm.pose.bones[n].matrix) for n in rig.bone_names]) @ rest_inv  # (B, 4, 4)
        m = np.einsum("vk,vkij->vij", rig.weights, skin[rig.weight_indices])
        want = np.einsum("vij,vj->vi", m[:, :3, :3], rest_v) + m[:, :3, 3]
        assert np.abs(got - want).max() < 1e-4, frame
        world[frame] = got
        wrist[frame] = np.array(arm.pose.bones["wrist.L"].matrix)
    moved = np.linalg.norm(world[16][hand] - world[1][hand], axis=1)
    assert moved.min() > 0.1, moved.min()
    rigid = wrist[16] @ np.linalg.inv(wrist[1])
    follow = world[1][hand] @ rigid[:3, :3].T + rigid[:3, 3]
    assert np.linalg.norm(follow - world[16][hand], axis=1).max() < 1e-4


@pytest.mark.slow
@pytest.mark.blender
@needs_anny
@needs_bpy
def test_render_frames_the_character(retargeted, tmp_path):
    """Workbench render from the front: the (warm-coloured) body fills most of the picture's
    height, centred, over the bluish background and the grey floor."""
    import cv2

    from mocap.export.avatar import render_frame
    from mocap.export.blender import load_scene

    load_scene(retargeted[0] / "out.blend")
    png = render_frame(tmp_path / "f.png", frame=16, resolution=(160, 120))
    img = cv2.imread(str(png)).astype(int)  # BGR
    assert img.shape == (120, 160, 3)
    body = img[..., 2] - img[..., 0] > 8  # skin: red above blue; background and floor are bluish grey
    rows, cols = np.nonzero(body)
    assert body.sum() > 500
    assert rows.max() - rows.min() > 0.6 * 120 and abs((cols.min() + cols.max()) / 2 - 80) < 15


def test_cli_retarget_avatar_and_names_map_automatically(retargeted, tmp_path, capsys):
    """`mocap retarget --avatar anny` gives the same animation as the library call; anny's bone
    names map by name alone (NAMING), with no mapping file."""
    from mocap.cli import main
    from mocap.export.blender import read_animation
    from mocap.export.retarget import auto_bone_map

    folder, _, _ = retargeted
    out = tmp_path / "cli.glb"
    assert main(["retarget", str(folder / "motion.npz"), "--avatar", "anny", "-o", str(out)]) == 0
    assert "anny character" in capsys.readouterr().out
    a, b = read_animation(out), read_animation(folder / "out.glb")
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-4)
    rig = pytest.importorskip("mocap.export.avatar").anny_rig_arrays()
    mapping = auto_bone_map(rig.bone_names)
    assert mapping["left_wrist"] == "wrist.L" and mapping["pelvis"] == "root"
    assert main(["retarget", str(folder / "motion.npz"), "--avatar", "anny", "--target", str(out), "-o", "x.glb"]) == 1
