"""Retargeting onto Mixamo- and Rigify-named rigs with other proportions and an A-pose rest:
bone-name mapping, rest-pose alignment, leg-length scaling, planted feet; and through
Blender: a rig read from FBX / .blend, the result written as GLB / FBX and read back."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from mocap.errors import MocapError
from mocap.kinematics.ik import inverse_kinematics
from mocap.export.fidelity import limb_angle_errors, planted_slide, retarget_fidelity
from mocap.export.retarget import (MAIN_CHILD, NAMING, Rig, auto_bone_map, load_bone_map, motion_to_source,
                                   override_bone_map, planted_feet, retarget)
from mocap.rotations import axis_angle_to_quat_wxyz, quat_wxyz_to_matrix
from mocap.skeletons import MOTION21, rest_offsets

from tests.synthetic import waving_walker

CMU_WALK = Path(__file__).resolve().parents[2] / "shared" / "data" / "mocap" / "samples" / "cmu_02_01_walk.bvh"
HAS_BPY = importlib.util.find_spec("bpy") is not None


def make_rig(style: str, *, size: float = 1.0, arm: float = 1.0, leg: float = 1.0, a_pose_deg: float = 45.0) -> Rig:
    """A humanoid rig named the Mixamo or Rigify way, with extra unmapped bones (clavicles,
    spine segments, twist bones, toes' ends), arms ``a_pose_deg`` below horizontal, limbs
    scaled by ``arm`` and ``leg``, everything by ``size``. +Y up, facing +Z, left = +X."""
    bones: list[tuple[str, str | None, tuple[float, float, float]]] = []  # name, parent, head
    down = np.radians(a_pose_deg)
    ad = np.array([np.cos(down), -np.sin(down), 0.0])
    if style == "mixamo":
        n = lambda b: "mixamorig:" + b  # noqa: E731
        bones += [(n("Hips"), None, (0, 0.95, 0)), (n("Spine"), n("Hips"), (0, 1.05, 0)),
                  (n("Spine1"), n("Spine"), (0, 1.17, 0)), (n("Spine2"), n("Spine1"), (0, 1.30, 0)),
                  (n("Neck"), n("Spine2"), (0, 1.47, 0)), (n("Head"), n("Neck"), (0, 1.57, 0.02)),
                  (n("HeadTop_End"), n("Head"), (0, 1.78, 0.02))]
        for s, sign in (("Left", 1.0), ("Right", -1.0)):
            x = np.array([sign, 1.0, 1.0])
            sh = np.array([0.19, 1.42, 0.0]) * x
            bones += [(n(f"{s}Shoulder"), n("Spine2"), tuple(np.array([0.06, 1.38, 0.0]) * x)),
                      (n(f"{s}Arm"), n(f"{s}Shoulder"), tuple(sh)),
                      (n(f"{s}ForeArm"), n(f"{s}Arm"), tuple(sh + 0.29 * arm * ad * x)),
                      (n(f"{s}Hand"), n(f"{s}ForeArm"), tuple(sh + 0.55 * arm * ad * x)),
                      (n(f"{s}HandIndex1"), n(f"{s}Hand"), tuple(sh + 0.64 * arm * ad * x))]
            hip = np.array([0.1, 0.9, 0.0]) * x
            knee = hip + np.array([0.01 * sign, -0.43 * leg, 0.01])
            ankle = knee + np.array([0.0, -0.42 * leg, -0.03])
            bones += [(n(f"{s}UpLeg"), n("Hips"), tuple(hip)), (n(f"{s}Leg"), n(f"{s}UpLeg"), tuple(knee)),
                      (n(f"{s}Foot"), n(f"{s}Leg"), tuple(ankle)),
                      (n(f"{s}ToeBase"), n(f"{s}Foot"), tuple(ankle + [0, -0.05, 0.13])),
                      (n(f"{s}Toe_End"), n(f"{s}ToeBase"), tuple(ankle + [0, -0.05, 0.2]))]
    elif style == "rigify":
        bones += [("root", None, (0, 0, 0)), ("DEF-spine", "root", (0, 1.0, 0.01)),
                  ("DEF-spine.001", "DEF-spine", (0, 1.1, 0.0)), ("DEF-spine.002", "DEF-spine.001", (0, 1.22, 0.0)),
                  ("DEF-spine.003", "DEF-spine.002", (0, 1.35, 0.0)), ("DEF-spine.004", "DEF-spine.003", (0, 1.5, 0.0)),
                  ("DEF-spine.005", "DEF-spine.004", (0, 1.56, 0.01)), ("DEF-spine.006", "DEF-spine.005", (0, 1.62, 0.02))]
        for s, sign in (("L", 1.0), ("R", -1.0)):
            x = np.array([sign, 1.0, 1.0])
            sh = np.array([0.2, 1.45, -0.02]) * x
            el = sh + 0.3 * arm * ad * x
            bones += [(f"DEF-shoulder.{s}", "DEF-spine.003", tuple(np.array([0.03, 1.44, 0.03]) * x)),
                      (f"DEF-upper_arm.{s}", f"DEF-shoulder.{s}", tuple(sh)),
                      (f"DEF-upper_arm.{s}.001", f"DEF-upper_arm.{s}", tuple(sh + 0.15 * arm * ad * x)),
                      (f"DEF-forearm.{s}", f"DEF-upper_arm.{s}.001", tuple(el)),
                      (f"DEF-forearm.{s}.001", f"DEF-forearm.{s}", tuple(el + 0.13 * arm * ad * x)),
                      (f"DEF-hand.{s}", f"DEF-forearm.{s}.001", tuple(el + 0.27 * arm * ad * x))]
            hip = np.array([0.11, 0.98, 0.02]) * x
            knee = hip + np.array([0.0, -0.47 * leg, 0.02])
            ankle = knee + np.array([0.0, -0.45 * leg, -0.04])
            bones += [(f"DEF-thigh.{s}", "DEF-spine", tuple(hip)),
                      (f"DEF-thigh.{s}.001", f"DEF-thigh.{s}", tuple((hip + knee) / 2)),
                      (f"DEF-shin.{s}", f"DEF-thigh.{s}.001", tuple(knee)),
                      (f"DEF-shin.{s}.001", f"DEF-shin.{s}", tuple((knee + ankle) / 2)),
                      (f"DEF-foot.{s}", f"DEF-shin.{s}.001", tuple(ankle)),
                      (f"DEF-toe.{s}", f"DEF-foot.{s}", tuple(ankle + [0, -0.06, 0.14]))]
    else:
        raise ValueError(style)
    names = tuple(b[0] for b in bones)
    parents = tuple(-1 if b[1] is None else names.index(b[1]) for b in bones)
    rest = np.array([b[2] for b in bones], dtype=np.float64) * size
    rest[:, 1] -= rest[:, 1][[i for i, nm in enumerate(names) if "Toe" in nm or "toe" in nm]].min()
    return Rig(names, parents, rest)


def build_rig(rig, *, name: str = "rig", location=(0.0, 0.0, 0.0), seed: int = 0, turn_x_deg: float = 0.0,
              scale: float = 1.0, y_up: bool = False, random_roll: bool = True):
    """The rig (Y-up, facing +Z, metres) as a Blender armature, selected and active, with
    random bone rolls (``random_roll``). The armature object stands at ``location``, turned
    ``turn_x_deg`` about X and scaled by ``scale``; its bones are in its own space, Z-up, or
    Y-up with ``y_up`` (a Mixamo FBX as Blender imports it: Y-up centimetres, turned 90
    degrees, scale 0.01). A bone's tail is at its first child (not a twist or thumb bone);
    a leaf continues its parent for 5 cm."""
    import bpy

    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    obj.location, obj.rotation_euler, obj.scale = location, (np.radians(turn_x_deg), 0.0, 0.0), (scale,) * 3
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    rng = np.random.default_rng(seed)
    to_z = np.eye(3) if y_up else np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    local = rig.rest_positions @ to_z.T / scale  # the armature's own space
    names, parents = rig.bone_names, rig.parents
    kids = [[c for c, p in enumerate(parents) if p == b] for b in range(len(names))]
    ebs = []
    for b, bone in enumerate(names):
        eb = data.edit_bones.new(bone)
        kid = next((c for c in kids[b] if not any(w in names[c].lower() for w in ("twist", "thumb"))), None)
        if kid is not None and np.linalg.norm(local[kid] - local[b]) > 1e-6:
            tail = local[kid]
        elif parents[b] >= 0 and np.linalg.norm(local[b] - local[parents[b]]) > 1e-6:
            d = local[b] - local[parents[b]]
            tail = local[b] + d / np.linalg.norm(d) * 0.05 / scale
        else:
            tail = local[b] + to_z @ np.array([0.0, 0.1, 0.0]) / scale
        eb.head, eb.tail = local[b], tail
        eb.roll = float(rng.uniform(-np.pi, np.pi)) if random_roll else 0.0
        if parents[b] >= 0:
            eb.parent = ebs[parents[b]]
        ebs.append(eb)
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.select_set(True)
    return obj


def source_motion(t: int = 90):
    """motion21 source: the synthetic walker, as local rotations."""
    x = waving_walker(t)
    q, root = inverse_kinematics(x, parents=MOTION21.parents, rest_offsets=rest_offsets())
    return q, root


def cmu_source():
    from mocap.io.bvh import read_bvh

    m = read_bvh(CMU_WALK)
    m_q, m_root = m.local_quats_wxyz[::4], m.root_translation[::4]  # 30 fps
    rig, gs, ps = motion_to_source(m.joint_names, m.parents, m.rest_offsets, m_q, m_root)
    return rig, gs, ps


@pytest.mark.parametrize("style", ["mixamo", "rigify"])
def test_auto_bone_map_and_override(style, tmp_path):
    rig = make_rig(style)
    m = auto_bone_map(rig.bone_names)
    expected = {"mixamo": {"left_elbow": "mixamorig:LeftForeArm", "spine": "mixamorig:Spine1", "right_ankle": "mixamorig:RightFoot"},
                "rigify": {"left_elbow": "DEF-forearm.L", "spine": "DEF-spine.002", "right_ankle": "DEF-foot.R"}}[style]
    for k, v in expected.items():
        assert m[k] == v
    # A rig whose elbows are called something else: the error names them and the fix.
    names = tuple(n.replace("ForeArm", "Elbw").replace("forearm", "elbw") for n in rig.bone_names)
    with pytest.raises(MocapError, match=r"left_elbow, .*right_elbow.*--mapping"):
        auto_bone_map(names, where="odd.fbx")
    mapping = tmp_path / "map.json"
    elbow = {"mixamo": "mixamorig:{}Elbw", "rigify": "DEF-elbw.{}"}[style]
    sides = ("Left", "Right") if style == "mixamo" else ("L", "R")
    mapping.write_text(json.dumps({"left_elbow": elbow.format(sides[0]), "right_elbow": elbow.format(sides[1])}))
    fixed = auto_bone_map(names, override=load_bone_map(mapping))
    assert fixed["left_elbow"] == elbow.format(sides[0])
    with pytest.raises(MocapError, match="not a bone"):
        auto_bone_map(names, override={"left_elbow": "nope"})
    # The add-on's mapping editor goes through the same checks, under its own name.
    with pytest.raises(MocapError, match=r"^the bone mapping names 'elbow', which is not a joint we map; use: pelvis"):
        override_bone_map(m, {"elbow": names[0]}, names, what="the bone mapping")
    assert override_bone_map(m, {"left_elbow": names[1]}, names) == {**m, "left_elbow": names[1]}


@pytest.mark.parametrize("convention", sorted(NAMING))
def test_every_naming_convention_maps_itself(convention):
    table = NAMING[convention]
    names = [b for b in table.values() if b != "-"]
    m = auto_bone_map(names + ["some_extra_bone"])
    for c, b in table.items():
        if b != "-":
            assert m[c] == b, (convention, c)


def _limb_angles(res, rig, tmap, source, smap, ps, limbs):
    out = {}
    for a, b in limbs:
        d_t = res.positions[:, rig.index(tmap[b])] - res.positions[:, rig.index(tmap[a])]
        d_s = ps[:, source.index(smap[b])] - ps[:, source.index(smap[a])]
        cos = np.sum(d_t * d_s, -1) / np.linalg.norm(d_t, axis=-1) / np.linalg.norm(d_s, axis=-1)
        out[(a, b)] = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    return out


ARM_LIMBS = [(f"{s}_{a}", f"{s}_{b}") for s in ("left", "right") for a, b in (("shoulder", "elbow"), ("elbow", "wrist"))]


@pytest.mark.parametrize("style,arm,leg", [("mixamo", 1.05, 0.97), ("rigify", 1.1, 1.0)])
def test_retarget_synthetic_walker(style, arm, leg):
    q, root = source_motion()
    source, gs, ps = motion_to_source(MOTION21.joint_names, MOTION21.parents, rest_offsets(), q, root)
    rig = make_rig(style, size=1.2, arm=arm, leg=leg)
    smap, tmap = auto_bone_map(source.bone_names), auto_bone_map(rig.bone_names)
    # By default every mapped bone points exactly where the source's does (the A-pose rest is
    # aligned, no limb is bent or twisted by the rest difference, the arms are not pinned).
    res = retarget(source, smap, gs, ps, rig, tmap)
    limbs = [(c, MAIN_CHILD[c]) for c in MAIN_CHILD if c in tmap and MAIN_CHILD[c] in tmap]
    assert len(limbs) == 13
    for limb, angle in _limb_angles(res, rig, tmap, source, smap, ps, limbs).items():
        assert angle.max() < 0.01, limb
    # With pin_hands each wrist keeps its place relative to the shoulder, scaled by arm length:
    # the arms move only as much as their upper arm / forearm proportions require.
    pinned = retarget(source, smap, gs, ps, rig, tmap, pin_hands=True)
    for s in ("left", "right"):
        sh, el, wr = (rig.index(tmap[f"{s}_{j}"]) for j in ("shoulder", "elbow", "wrist"))
        ratio = (np.linalg.norm(rig.rest_positions[el] - rig.rest_positions[sh]) +
                 np.linalg.norm(rig.rest_positions[wr] - rig.rest_positions[el])) / (0.28 + 0.25)
        reach = pinned.positions[:, wr] - pinned.positions[:, sh]
        want = (ps[:, source.index(f"{s}_wrist")] - ps[:, source.index(f"{s}_shoulder")]) * ratio
        assert np.linalg.norm(reach - want, axis=-1).max() < 1e-6
    angles = _limb_angles(pinned, rig, tmap, source, smap, ps, ARM_LIMBS)
    assert max(a.max() for a in angles.values()) < 6.0  # mixamo: upper arm / forearm 0.29 / 0.26 vs ours 0.28 / 0.25
    # The translation is keyed on the root bone above the hips (Rigify's "root"; Mixamo's hips
    # are the root), which moves with the hips (a translated child bone is lost where an
    # importer connects it to its parent, as Blender's FBX importer does).
    top, hips = rig.index(res.root_bone), rig.index(tmap["pelvis"])
    assert res.root_bone == {"mixamo": "mixamorig:Hips", "rigify": "root"}[style] and rig.parents[top] == -1
    np.testing.assert_allclose(res.positions[:, top] - rig.rest_positions[top], res.root_translation, atol=1e-12)
    np.testing.assert_allclose(res.positions[:, hips] - rig.rest_positions[hips], res.root_translation, atol=1e-12)
    # Bone lengths are the rig's (the root bone above the hips moves with them).
    p = np.array(rig.parents)
    kids = [b for b in range(len(p)) if p[b] >= 0]
    for r in (res, pinned):
        lengths = np.linalg.norm(r.positions[:, kids] - r.positions[:, p[kids]], axis=-1)
        rest = np.linalg.norm(rig.rest_positions[kids] - rig.rest_positions[p[kids]], axis=-1)
        np.testing.assert_allclose(lengths, np.broadcast_to(rest, lengths.shape), atol=1e-9)


@pytest.mark.shared_data
@pytest.mark.skipif(not CMU_WALK.is_file(), reason=f"needs the shared sample data at {CMU_WALK}")
@pytest.mark.parametrize("style", ["mixamo", "rigify"])
def test_retarget_cmu_walk(style):
    """Planted feet are held by the root (and the smallest leg change), not by bending the
    limbs away from the capture; without pinning they slide by centimetres."""
    source, gs, ps = cmu_source()
    rig = make_rig(style, size=0.9, arm=1.05, leg=0.95)  # a smaller, long-armed character
    smap, tmap = auto_bone_map(source.bone_names), auto_bone_map(rig.bone_names)
    res = retarget(source, smap, gs, ps, rig, tmap, fps=30.0)  # its speed: benchmarks/bench_timings.py
    free = retarget(source, smap, gs, ps, rig, tmap, fps=30.0, pin_feet=False)
    fid = retarget_fidelity(source, smap, gs, ps, rig, tmap, res.positions, planted=res.planted)
    fid_free = retarget_fidelity(source, smap, gs, ps, rig, tmap, free.positions, planted=free.planted)
    print(fid.line(), "|", fid_free.line())
    assert res.planted.sum(0).min() > 10 and np.array_equal(res.planted, free.planted)
    assert fid.slide_m < 0.005 < 0.03 < fid_free.slide_m
    assert fid.mean_deg < 0.5 and fid.p95_deg < 2.0 and fid_free.max_deg < 0.01
    # The root carries the correction: the pelvis stays within a few cm of the scaled source's,
    # and the correction changes smoothly (no pops at the contacts' edges).
    pelvis = res.positions[:, rig.index(tmap["pelvis"])]
    shift = pelvis - ps[:, source.index(smap["pelvis"])] * res.scale
    assert np.linalg.norm(shift, axis=-1).max() < 0.1
    assert np.linalg.norm(np.diff(shift, axis=0), axis=-1).max() < 0.01
    # Planted target ankles are still (horizontally) and at the scaled source's height.
    for f, c in enumerate(("left_ankle", "right_ankle")):
        got = res.positions[:, rig.index(tmap[c])][res.planted[:, f]]
        want = ps[:, source.index(smap[c])][res.planted[:, f]] * res.scale
        assert np.abs(got[:, 1] - want[:, 1]).max() < 1e-6


def test_limb_angle_errors_known_rotations():
    """One rotation for the whole clip is taken out; a limb turned by a known angle shows it."""
    rng = np.random.default_rng(3)
    s = rng.normal(size=(20, 15, 3))
    s /= np.linalg.norm(s, axis=-1, keepdims=True)
    rot = quat_wxyz_to_matrix(np.array([0.5, 0.5, -0.5, 0.5]))  # 120 degrees about (1, -1, 1)
    err, found = limb_angle_errors(s, s @ rot.T)
    assert np.abs(err).max() < 1e-5 and np.abs(found - rot).max() < 1e-9
    # limb 4 of frame 7 turned by 10 degrees about an axis perpendicular to it
    t = s @ rot.T
    axis = np.cross(t[7, 4], [0.0, 0.0, 1.0])
    turn = axis / np.linalg.norm(axis) * np.radians(10.0)
    t[7, 4] = quat_wxyz_to_matrix(axis_angle_to_quat_wxyz(turn)) @ t[7, 4]
    t[3, 2] = np.nan  # a missing limb is NaN, and left out
    err, _ = limb_angle_errors(s, t)
    assert err[7, 4] == pytest.approx(10.0, abs=0.05) and np.isnan(err[3, 2])
    assert np.nanmax(np.delete(err.reshape(-1), 7 * 15 + 4)) < 0.05
    with pytest.raises(ValueError, match="must both be"):
        limb_angle_errors(s, t[:, :3])


def test_planted_feet_and_slide():
    """A foot still for 10 frames, then walking at 1 m/s: planted for those 10 frames; a
    planted ankle that creeps 2 cm slides 2 cm."""
    t = np.arange(30)
    ankles = np.zeros((30, 2, 3))
    ankles[:, 0, 2] = np.where(t < 10, 0.0, (t - 9) / 30.0)  # left: still, then 1 m/s forward
    ankles[:, 1, 1] = 0.3  # right: held 30 cm up, never planted
    planted = planted_feet(ankles, fps=30.0)
    assert planted[:9, 0].all() and not planted[11:, 0].any() and not planted[:, 1].any()
    assert planted_slide(ankles, planted) == 0.0
    creep = ankles.copy()
    creep[:9, 0, 0] = np.linspace(0.0, 0.02, 9)
    assert planted_slide(creep, planted) == pytest.approx(0.02)
    with pytest.raises(ValueError, match=r"\(T, 2, 3\)"):
        planted_feet(ankles[:, :1], fps=30.0)


@pytest.mark.blender
@pytest.mark.skipif(not HAS_BPY, reason="needs bpy (pip install 'mocap-lift[blender]')")
@pytest.mark.parametrize("style,rig_suffix,out_suffix", [("mixamo", ".fbx", ".glb"), ("rigify", ".blend", ".fbx")])
def test_retarget_file_through_blender(tmp_path, style, rig_suffix, out_suffix):
    from mocap.export.blender import new_scene, read_animation, retarget_to_file, write_scene
    from mocap.formats import Motion, save_motion
    from mocap.kinematics.ik import forward_kinematics

    rig = make_rig(style, size=1.1, arm=1.05, leg=0.95)
    # Build the rig in Blender with arbitrary bone rolls, Z-up, as a DCC tool would.
    new_scene(30)
    build_rig(rig)
    rig_path = tmp_path / ("rig" + rig_suffix)
    write_scene(rig_path)

    q, root = source_motion(t=45)
    off = rest_offsets()
    motion_path = tmp_path / "motion.npz"
    joints = forward_kinematics(q, root, off, MOTION21.parents)
    save_motion(motion_path, Motion(joints=joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents,
                                    fps=30.0, local_quats_wxyz=q, root_translation=root, rest_offsets=off))
    out = tmp_path / ("out" + out_suffix)
    res = retarget_to_file(motion_path, rig_path, out)
    anim = read_animation(out)
    assert anim.fps == pytest.approx(30.0) and anim.positions.shape[0] == 45 and anim.frame_start == 1
    idx_file = [anim.bone_names.index(n) for n in res.bone_names]
    err = np.linalg.norm(anim.positions[:, idx_file] - res.positions, axis=-1)
    assert err.max() < 1e-3, f"{err.max() * 1000:.3f} mm"
    # And against the source: every limb of the file's rig points where the capture's does.
    source, gs, ps = motion_to_source(MOTION21.joint_names, MOTION21.parents, off, q, root)
    file_rig, file_pos = anim.as_rig()
    fid = retarget_fidelity(source, auto_bone_map(source.bone_names), gs, ps, file_rig,
                            auto_bone_map(file_rig.bone_names), file_pos)
    assert len(fid.limbs) >= 12 and fid.max_deg < 0.1, fid.line()



@pytest.mark.blender
@pytest.mark.skipif(not HAS_BPY, reason="needs bpy (pip install 'mocap-lift[blender]')")
@pytest.mark.parametrize("units", ["cm", "m"])
def test_retarget_to_bvh_on_the_target_rig(tmp_path, units):
    """``mocap retarget --target rig.fbx -o x.bvh``: the BVH holds the rig's bone names and
    rest pose, the frame count and rate, and the retargeted pose (joint positions within
    1 mm of the retarget's)."""
    from mocap.export.blender import new_scene, retarget_to_file, write_scene
    from mocap.formats import Motion, save_motion
    from mocap.io.bvh import read_bvh
    from mocap.kinematics.ik import bvh_joint_positions, forward_kinematics

    rig = make_rig("mixamo", size=1.1, arm=1.05, leg=0.95)
    new_scene(30)
    build_rig(rig)
    rig_path = tmp_path / "rig.fbx"
    write_scene(rig_path)
    q, root = source_motion(t=45)
    off = rest_offsets()
    motion_path = tmp_path / "motion.npz"
    save_motion(motion_path, Motion(joints=forward_kinematics(q, root, off, MOTION21.parents),
                                    joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=50.0,
                                    local_quats_wxyz=q, root_translation=root, rest_offsets=off))
    out = tmp_path / "out.bvh"
    res = retarget_to_file(motion_path, rig_path, out, bvh_units=units)
    b = read_bvh(out, units=units)
    assert sorted(b.joint_names) == sorted(res.bone_names) == sorted(rig.bone_names)
    assert b.num_frames == 45 and b.fps == pytest.approx(50.0)
    order = [rig.index(n) for n in b.joint_names]  # the file's order: depth first
    assert [b.joint_names[p] if p >= 0 else None for p in b.parents] == \
        [rig.bone_names[rig.parents[i]] if rig.parents[i] >= 0 else None for i in order]
    rest = forward_kinematics(np.tile([1.0, 0, 0, 0], (1, len(order), 1)), np.zeros((1, 3)), b.rest_offsets,
                              b.parents)[0]
    np.testing.assert_allclose(rest, rig.rest_positions[order], atol=1e-4)
    err = np.linalg.norm(bvh_joint_positions(b) - res.positions[:, [res.bone_names.index(n) for n in b.joint_names]],
                         axis=-1)
    assert err.max() < 1e-3, f"{1000 * err.max():.3f} mm"


def test_cli_retarget_own_skeleton_to_bvh_in_metres(tmp_path, capsys):
    """Without --target, ``-o x.bvh --units m`` writes our skeleton in metres."""
    from mocap.cli import main
    from mocap.formats import Motion, save_motion
    from mocap.io.bvh import read_bvh
    from mocap.kinematics.ik import forward_kinematics

    q, root = source_motion(t=10)
    off = rest_offsets()
    joints = forward_kinematics(q, root, off, MOTION21.parents)
    save_motion(tmp_path / "m.npz", Motion(joints=joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents,
                                           fps=30.0, local_quats_wxyz=q, root_translation=root, rest_offsets=off))
    assert main(["retarget", str(tmp_path / "m.npz"), "-o", str(tmp_path / "m.bvh"), "--units", "m"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "10 frames" in out[0]  # and the fidelity line: our own skeleton, every limb as captured
    assert out[1].startswith("fidelity: limbs within 0.0 deg of the capture on average, 0.0 deg at worst")
    b = read_bvh(tmp_path / "m.bvh", units="m")
    assert b.joint_names == MOTION21.joint_names and b.num_frames == 10
    np.testing.assert_allclose(b.rest_offsets, off, atol=1e-6)


@pytest.mark.blender
@pytest.mark.skipif(not HAS_BPY, reason="needs bpy (pip install 'mocap-lift[blender]')")
def test_cli_unmappable_rig_and_own_armature(tmp_path, capsys):
    """A rig with unknown bone names: one line naming the joints and the --mapping fix;
    without --target the motion goes onto our own armature, read back within 1 mm."""
    from mocap.cli import main
    from mocap.export.blender import export_motion, read_animation
    from mocap.formats import Motion, save_motion
    from mocap.kinematics.ik import forward_kinematics

    q, root = source_motion(t=20)
    off = rest_offsets()
    names = tuple(f"bone{j:02d}" for j in range(21))
    odd = tmp_path / "odd.fbx"
    export_motion(odd, joint_names=names, parents=MOTION21.parents, rest_offsets=off, local_quats_wxyz=q,
                  root_translation=root, fps=30)
    joints = forward_kinematics(q, root, off, MOTION21.parents)
    motion = tmp_path / "motion.npz"
    save_motion(motion, Motion(joints=joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=30.0,
                               local_quats_wxyz=q, root_translation=root, rest_offsets=off))
    rc = main(["retarget", str(motion), "--target", str(odd), "-o", str(tmp_path / "out.glb")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "could not map 16 joint(s)" in err[0]
    assert "left_knee" in err[0] and "--mapping" in err[0] and "bone00" in err[0]
    assert not (tmp_path / "out.glb").exists()
    # With a mapping file it works.
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({n: names[j] for j, n in enumerate(MOTION21.joint_names) if n in NAMING["motion21"]}))
    assert main(["retarget", str(motion), "--target", str(odd), "-o", str(tmp_path / "mapped.glb"),
                 "--mapping", str(mapping)]) == 0
    out = capsys.readouterr().out.splitlines()  # the same skeleton: the fidelity line says 0
    assert out[-1].startswith("fidelity: limbs within 0.0 deg of the capture on average, 0.0 deg at worst")
    anim = read_animation(tmp_path / "mapped.glb")
    got = anim.positions[:, [anim.bone_names.index(n) for n in names]]
    assert np.abs(got - joints).max() < 1e-3  # same skeleton: the motion itself
    assert main(["retarget", str(motion), "-o", str(tmp_path / "own.fbx")]) == 0
    anim = read_animation(tmp_path / "own.fbx")
    assert np.abs(anim.positions[:, [anim.bone_names.index(n) for n in MOTION21.joint_names]] - joints).max() < 1e-3
