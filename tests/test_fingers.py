"""Finger motion: kinematics round trips, synthetic hands through a camera, limits, missing hands,
motion files and retargeting onto finger bones."""
from __future__ import annotations

import numpy as np
import pytest

from mocap.cleanup.fingers import FingerOptions, angles_of_motion, motion_with_fingers
from mocap.formats import load_motion, save_motion
from mocap.kinematics import fingers as fk
from mocap.kinematics.ik import forward_kinematics_with_rotations
from mocap.rotations import axis_angle_to_quat_wxyz, geodesic_angle, matrix_to_quat_wxyz, quat_wxyz_to_matrix
from mocap.skeletons import HAND21, MOTION61, rest_offsets
from tests.hand_synthetic import POSES, hand_scene, random_pose

PLAN = fk.plan_hands(MOTION61, rest_offsets(MOTION61))


def _random_clip(seed: int, t: int = 40):
    """(local quats (T, 61, 4) with random body, wrists and finger angles within limits, angles, wrist locals)."""
    rng = np.random.default_rng(seed)
    angles = np.stack([random_pose(rng, PLAN) for _ in range(t)])
    q = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (t, MOTION61.num_joints, 1))
    q[:, :21] = axis_angle_to_quat_wxyz(rng.normal(0.0, 0.5, (t, 21, 3)))
    wrist = quat_wxyz_to_matrix(axis_angle_to_quat_wxyz(rng.normal(0.0, 0.7, (t, 2, 3))))
    return fk.hand_local_quats(PLAN, q, wrist, angles), angles, wrist


@pytest.mark.parametrize("seed", [0, 1])
def test_finger_rotations_round_trip_through_fk_and_ik(seed):
    q, angles, wrist = _random_clip(seed)
    joints, glob = forward_kinematics_with_rotations(q, np.zeros((len(q), 3)), rest_offsets(MOTION61),
                                                     MOTION61.parents)
    g = quat_wxyz_to_matrix(glob)
    wrist_global = fk.palm_rotmats(PLAN, joints)
    np.testing.assert_allclose(wrist_global, g[:, PLAN.wrists], atol=1e-9)
    found = fk.finger_angles(PLAN, joints, wrist_global)
    assert np.abs(found - angles).max() < 1e-4  # radians
    local = fk.hand_local_quats(PLAN, q, fk.wrist_local_rotmats(PLAN, g[:, PLAN.forearms], wrist_global), found)
    assert geodesic_angle(local, q).max() < 1e-4


def test_plan_needs_finger_joints():
    from mocap.skeletons import MOTION21

    with pytest.raises(ValueError, match="MOTION61"):
        fk.plan_hands(MOTION21, rest_offsets(MOTION21))


def test_limits_are_respected():
    rng = np.random.default_rng(3)
    wild = rng.uniform(-np.pi, np.pi, (50, 2, 15, 2))
    wild[0, 0, 0, 0] = np.nan
    clamped = fk.clamp_finger_angles(PLAN, wild)
    assert np.isnan(clamped[0, 0, 0, 0])
    ok = np.isfinite(clamped)
    lo, hi = np.broadcast_to(PLAN.limits[..., 0], wild.shape), np.broadcast_to(PLAN.limits[..., 1], wild.shape)
    assert (clamped[ok] >= lo[ok]).all() and (clamped[ok] <= hi[ok]).all()
    hinges = ~PLAN.two_dof
    assert (clamped[:, :, hinges, 1][ok[:, :, hinges, 1]] == 0).all()  # hinges do not spread


def test_limits_hold_on_captured_motion():
    scene = hand_scene(POSES["fist"], pixel_noise=6.0, world_noise_m=0.01, seed=4)
    m = motion_with_fingers(scene.body, scene.hand_keypoints, scene.hand_world, scene.hand_confidence, scene.camera)
    plan = fk.plan_hands(MOTION61, m.rest_offsets)
    got = angles_of_motion(m)
    assert (got >= plan.limits[..., 0] - 1e-6).all() and (got <= plan.limits[..., 1] + 1e-6).all()


@pytest.mark.parametrize("distorted", [False, True])
def test_hand_points_reproject_and_keep_the_shape(distorted):
    import dataclasses

    from mocap.camera import project_points

    scene = hand_scene(POSES["pinch"], view_deg=(60.0, 30.0), pixel_noise=0.0, world_noise_m=0.0)
    camera = scene.camera
    kp = scene.hand_keypoints.reshape(-1, 2, 21, 2).astype(np.float64)
    if distorted:  # a lens with distortion: the same points seen through it
        camera = dataclasses.replace(camera, dist=np.array([-0.2, 0.05, 0.001, -0.001, 0.0]))
        kp = camera.project(scene.truth_joints[:, PLAN.hand_points])
    cam = fk.hand_points_camera(kp, scene.hand_world.reshape(-1, 2, 21, 3), camera)
    np.testing.assert_allclose(project_points(cam, camera.K, camera.dist), kp, atol=1e-2)  # pixels
    truth = camera.world_to_camera(scene.truth_joints[:, PLAN.hand_points])
    np.testing.assert_allclose(cam, truth, atol=1e-4 if distorted else 1e-5)  # metres: exact perspective, not weak


@pytest.mark.parametrize("name", list(POSES))
def test_synthetic_poses_recovered_through_a_camera(name):
    """Both hands in a known pose, seen at 1.2 m with 2 px noise and 4 mm noise on the world landmarks.
    Measured (seed 0, front view): mean flexion error open 5.1, fist 6.7, pointing 6.4, pinch 7.5
    degrees; wrist about 2 degrees. Bounds: 10 degrees flexion (the issue's target is 12 on renders),
    5 wrist."""
    scene = hand_scene(POSES[name], pixel_noise=2.0, world_noise_m=0.004)
    m = motion_with_fingers(scene.body, scene.hand_keypoints, scene.hand_world, scene.hand_confidence, scene.camera)
    flex_err = np.degrees(np.abs(angles_of_motion(m)[..., 0] - scene.angles[..., 0]))
    assert flex_err.mean() < 10.0
    plan = fk.plan_hands(MOTION61, m.rest_offsets)
    _, glob = forward_kinematics_with_rotations(m.local_quats_wxyz, m.root_translation, m.rest_offsets, m.parents)
    wrist_err = np.degrees(geodesic_angle(glob[:, plan.wrists], matrix_to_quat_wxyz(scene.wrist_global)))
    assert wrist_err.mean() < 5.0


def test_noise_free_capture_is_exact():
    scene = hand_scene(POSES["fist"], view_deg=(-40.0, 15.0), pixel_noise=0.0, world_noise_m=0.0)
    m = motion_with_fingers(scene.body, scene.hand_keypoints, scene.hand_world, scene.hand_confidence, scene.camera)
    assert np.abs(angles_of_motion(m) - scene.angles).max() < 1e-4
    np.testing.assert_allclose(m.joints[:, :21], scene.body.joints)  # the body is kept
    # the bones are the captured ones (the default hand, as in the scene): the fingertips are where they were
    np.testing.assert_allclose(m.joints, scene.truth_joints, atol=1e-4)


def test_missing_hand_is_nan_in_the_angles_and_rest_in_the_motion():
    scene = hand_scene(POSES["pointing"], pixel_noise=0.0, world_noise_m=0.0, frames=40)
    kp, conf = scene.hand_keypoints.copy(), scene.hand_confidence.copy()
    kp[:, 21:] = np.nan  # the right hand never seen
    conf[:, 21:] = 0.0
    kp[10:30, :21] = np.nan  # the left hand lost for 20 frames (longer than max_gap_s)
    conf[10:30, :21] = 0.0
    from mocap.cleanup.fingers import hand_joints_world

    pts = hand_joints_world(kp, scene.hand_world, conf, scene.body.joints[:, PLAN.wrists], scene.camera)
    assert np.isnan(pts[:, 1]).all() and np.isnan(pts[10:30, 0]).all() and np.isfinite(pts[:10, 0]).all()
    observed = np.full((40, MOTION61.num_joints, 3), np.nan)
    observed[:, :21] = scene.body.joints
    observed[:, PLAN.hand_points.reshape(-1)] = pts.reshape(40, -1, 3)
    wrist = fk.palm_rotmats(PLAN, observed)
    angles = fk.finger_angles(PLAN, observed, wrist)
    assert np.isnan(wrist[:, 1]).all() and np.isnan(angles[:, 1]).all() and np.isnan(angles[10:30, 0]).all()
    assert np.isfinite(angles[:10, 0]).all()

    m = motion_with_fingers(scene.body, kp, scene.hand_world, conf, scene.camera, options=FingerOptions(max_gap_s=0.3))
    assert np.isfinite(m.local_quats_wxyz).all()
    np.testing.assert_array_equal(m.hand_valid[:, 1], False)
    np.testing.assert_array_equal(m.hand_valid[:, 0], np.r_[np.ones(10), np.zeros(20), np.ones(10)].astype(bool))
    right = [MOTION61.index(f"right_hand_{j}") for j in fk.FINGER_DOF_JOINTS] + [MOTION61.index("right_wrist")]
    np.testing.assert_allclose(np.abs(m.local_quats_wxyz[:, right, 0]), 1.0)  # the rest pose
    # the left hand is held through its long gap, not dropped to the rest pose
    got = angles_of_motion(m)
    assert np.abs(got[10:30, 0] - scene.angles[10:30, 0]).max() < np.radians(1.0)


def test_motion_file_round_trip_with_fingers(tmp_path):
    scene = hand_scene(POSES["pinch"], pixel_noise=1.0, world_noise_m=0.002)
    m = motion_with_fingers(scene.body, scene.hand_keypoints, scene.hand_world, scene.hand_confidence, scene.camera)
    save_motion(tmp_path / "motion.npz", m)
    back = load_motion(tmp_path / "motion.npz")
    assert back.joint_names == MOTION61.joint_names and back.hand_valid.shape == (m.num_frames, 2)
    np.testing.assert_allclose(back.local_quats_wxyz, m.local_quats_wxyz, atol=1e-6)


def test_bvh_round_trip_with_fingers(tmp_path):
    from mocap.io import bvh

    scene = hand_scene(POSES["fist"], pixel_noise=0.0, world_noise_m=0.0)
    m = motion_with_fingers(scene.body, scene.hand_keypoints, scene.hand_world, scene.hand_confidence, scene.camera)
    bvh.write_motion_bvh(tmp_path / "m.bvh", m)
    back = bvh.read_bvh(tmp_path / "m.bvh")
    assert set(MOTION61.joint_names) <= set(back.joint_names)  # written depth first
    from mocap.kinematics.ik import bvh_joint_positions

    pos = bvh_joint_positions(back)
    tips = [f"{s}_hand_{f}_tip" for s in ("left", "right") for f in ("thumb", "index_finger", "pinky")]
    np.testing.assert_allclose(pos[:, [back.joint_names.index(n) for n in tips]],
                               m.joints[:, [MOTION61.index(n) for n in tips]], atol=2e-4)  # BVH: cm, 6 decimals


def _mixamo_hand_rig():
    """A Mixamo-named rig with fingers: the motion's skeleton renamed, the arms lowered 40 degrees
    (an A-pose), its fingers 20 % longer and their rest pose curled 15 degrees at every joint."""
    from mocap.export.retarget import NAMING, Rig
    from mocap.skeletons import rest_positions

    to_mixamo = {c: "mixamorig:" + b for c, b in NAMING["mixamo"].items()}
    off = rest_offsets(MOTION61).copy()
    fingers = np.arange(21, MOTION61.num_joints)
    off[fingers] *= 1.2
    q = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (1, MOTION61.num_joints, 1))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        q[0, MOTION61.index(f"{side}_shoulder")] = axis_angle_to_quat_wxyz(np.array([0.0, 0.0, -sign * np.radians(40)]))
    curl = np.zeros((1, 2, 15, 2))
    curl[..., 0] = np.radians(15.0)
    q = fk.hand_local_quats(fk.plan_hands(MOTION61, off), q, np.tile(np.eye(3), (1, 2, 1, 1)), curl)
    pos, _ = forward_kinematics_with_rotations(q, np.zeros((1, 3)), off, MOTION61.parents)
    names = tuple(to_mixamo.get(n, "mixamorig:" + n) for n in MOTION61.joint_names)
    assert rest_positions(off, MOTION61.parents).shape == pos[0].shape
    return Rig(names, MOTION61.parents, pos[0]), names


def test_bone_names_of_finger_rigs_map_automatically():
    from mocap.export.retarget import auto_bone_map

    rig, names = _mixamo_hand_rig()
    m = auto_bone_map(names)
    assert m["left_hand_index_finger_mcp"] == "mixamorig:LeftHandIndex1"
    assert m["right_hand_thumb_tip"] == "mixamorig:RightHandThumb4"
    rigify = ["DEF-spine", "DEF-spine.002", "DEF-spine.004", "DEF-spine.006", "DEF-f_index.01.L", "DEF-f_index.02.L",
              "DEF-thumb.01.R", "DEF-f_pinky.03.R"]
    from mocap.export.retarget import best_name_match

    found, convention = best_name_match(rigify)
    assert convention == "rigify" and found["left_hand_index_finger_pip"] == "DEF-f_index.02.L"
    assert found["right_hand_thumb_cmc"] == "DEF-thumb.01.R" and found["right_hand_pinky_dip"] == "DEF-f_pinky.03.R"
    for convention, bone in (("unreal", "index_01_l"), ("vrm", "leftIndexProximal"), ("anny", "finger2-1.L")):
        from mocap.export.retarget import NAMING

        assert NAMING[convention]["left_hand_index_finger_mcp"] == bone


def test_retargeted_fingers_keep_the_flexion():
    """Onto a Mixamo-style rig in an A-pose with longer, curled-at-rest fingers: the angle between
    consecutive finger bones (the flexion each joint shows) stays within 3 degrees of the capture's."""
    from mocap.export.retarget import auto_bone_map, motion_to_source, retarget

    scene = hand_scene(POSES["pinch"], pixel_noise=2.0, world_noise_m=0.004)
    m = motion_with_fingers(scene.body, scene.hand_keypoints, scene.hand_world, scene.hand_confidence, scene.camera)
    source, gs, ps = motion_to_source(m.joint_names, m.parents, m.rest_offsets, m.local_quats_wxyz,
                                      m.root_translation)
    rig, names = _mixamo_hand_rig()
    result = retarget(source, auto_bone_map(source.bone_names), gs, ps, rig, auto_bone_map(names), fps=m.fps)

    src, tgt = _bends_by_name(m.joints, list(m.joint_names)), _bends_by_name(result.positions, list(m.joint_names))
    assert np.abs(src - tgt).max() < 3.0
    assert src.max() > 40.0  # the pinch does bend


def test_hand21_order_matches_the_plan():
    for h, s in enumerate(("left", "right")):
        assert [MOTION61.joint_names[j] for j in PLAN.hand_points[h, 1:]] == [f"{s}_hand_{n}" for n in HAND21.joint_names[1:]]


def _bends_by_name(pos: np.ndarray, names) -> np.ndarray:
    """(T, 28) degrees: the angle between consecutive bones at every finger joint (MOTION61 names
    found in ``names``, possibly renamed by :func:`_mixamo_hand_rig`)."""
    out = []
    for s in ("left", "right"):
        for f, chain in (("thumb", ("cmc", "mcp", "ip", "tip")),
                         *((f, ("wrist", "mcp", "pip", "dip", "tip")) for f in ("index_finger", "middle_finger",
                                                                                 "ring_finger", "pinky"))):
            joints = [f"{s}_wrist" if j == "wrist" else f"{s}_hand_{f}_{j}" for j in chain]
            p = pos[:, [names.index(n) for n in joints]]
            b = p[:, 1:] - p[:, :-1]
            b /= np.linalg.norm(b, axis=-1, keepdims=True)
            out.append(np.degrees(np.arccos(np.clip(np.sum(b[:, 1:] * b[:, :-1], -1), -1, 1))))
    return np.concatenate(out, 1)


@pytest.mark.blender
@pytest.mark.slow
def test_fingers_through_the_blender_exporter(tmp_path):
    """The motion with fingers written to FBX reads back with its fingertips in place, and
    retargeted by ``mocap retarget``'s path (retarget_to_file) onto a Mixamo-named FBX rig with
    fingers (A-pose, fingers longer and curled at rest) keeps every finger bend within 3 degrees."""
    pytest.importorskip("bpy")
    from mocap.export.blender import export_motion, read_animation, retarget_to_file
    from mocap.export.retarget import NAMING

    scene = hand_scene(POSES["pinch"], pixel_noise=2.0, world_noise_m=0.004, frames=12)
    m = motion_with_fingers(scene.body, scene.hand_keypoints, scene.hand_world, scene.hand_confidence, scene.camera)
    export_motion(tmp_path / "m.fbx", joint_names=m.joint_names, parents=m.parents, rest_offsets=m.rest_offsets,
                  local_quats_wxyz=m.local_quats_wxyz, root_translation=m.root_translation, fps=m.fps)
    anim = read_animation(tmp_path / "m.fbx")
    idx = [anim.bone_names.index(n) for n in m.joint_names]
    assert np.abs(anim.positions[:, idx] - m.joints).max() < 1e-3  # metres

    rig, names = _mixamo_hand_rig()
    par = np.asarray(rig.parents)
    off = rig.rest_positions - np.where(par[:, None] >= 0, rig.rest_positions[np.maximum(par, 0)], 0.0)
    export_motion(tmp_path / "rig.fbx", joint_names=names, parents=rig.parents, rest_offsets=off,
                  local_quats_wxyz=np.tile([1.0, 0.0, 0.0, 0.0], (1, len(names), 1)), root_translation=np.zeros((1, 3)),
                  fps=m.fps)
    save_motion(tmp_path / "motion.npz", m)
    retarget_to_file(tmp_path / "motion.npz", tmp_path / "rig.fbx", tmp_path / "out.glb")
    out = read_animation(tmp_path / "out.glb")
    canon = {"mixamorig:" + b: c for c, b in NAMING["mixamo"].items()}
    out_names = [canon.get(n, n) for n in out.bone_names]
    got = _bends_by_name(out.positions, out_names)
    want = _bends_by_name(m.joints, list(m.joint_names))
    assert got.shape == want.shape and np.abs(got - want).max() < 3.0


def test_a_hand_read_mirrored_is_turned_back():
    """The network's depth the wrong way round (same 2D): a curled left hand then curls like a
    right hand; its depth is mirrored back and the pose recovered exactly."""
    scene = hand_scene(POSES["fist"], pixel_noise=0.0, world_noise_m=0.0)
    world = scene.hand_world.reshape(-1, 2, 21, 3).astype(np.float64)
    assert (fk.hand_curl_chirality(world[:, 0]) < -0.5).all() and (fk.hand_curl_chirality(world[:, 1]) > 0.5).all()
    mirrored = world.copy()
    z = mirrored[:, 0, :, 2]
    mirrored[:, 0, :, 2] = 2 * z.mean(-1, keepdims=True) - z
    assert (fk.hand_curl_chirality(mirrored[:, 0]) > 0.5).all()
    np.testing.assert_allclose(fk.unmirror_hands(mirrored), world, atol=1e-9)
    flat = hand_scene(POSES["open"], pixel_noise=0.0, world_noise_m=0.0).hand_world.reshape(-1, 2, 21, 3)
    np.testing.assert_allclose(fk.unmirror_hands(flat), flat, atol=1e-6)  # a flat hand tells nothing: kept
    args = (scene.body, scene.hand_keypoints, mirrored.reshape(-1, 42, 3), scene.hand_confidence, scene.camera)
    assert np.abs(angles_of_motion(motion_with_fingers(*args)) - scene.angles).max() < 1e-4
    wrong = angles_of_motion(motion_with_fingers(*args, options=FingerOptions(unmirror=False)))
    assert np.degrees(np.abs(wrong - scene.angles)).max() > 20.0


def test_report_of_a_motion_with_fingers_keeps_them(tmp_path):
    """``mocap report`` reads the body of a motion61 file; its ``--cleaned`` motion keeps the fingers."""
    from mocap.cli import main

    scene = hand_scene(POSES["pinch"], pixel_noise=0.0, world_noise_m=0.0, frames=40)
    m = motion_with_fingers(scene.body, scene.hand_keypoints, scene.hand_world, scene.hand_confidence, scene.camera)
    save_motion(tmp_path / "motion.npz", m)
    assert main(["report", str(tmp_path / "motion.npz"), "--cleaned", str(tmp_path / "clean.npz")]) == 0
    clean = load_motion(tmp_path / "clean.npz")
    assert clean.joint_names == MOTION61.joint_names
    fingers = PLAN.joints.reshape(-1).tolist() + PLAN.wrists.tolist()
    np.testing.assert_allclose(clean.local_quats_wxyz[:, fingers], m.local_quats_wxyz[:, fingers], atol=1e-6)
    np.testing.assert_allclose(angles_of_motion(clean), angles_of_motion(m), atol=1e-4)


def test_a_flat_hand_read_mirrored_is_turned_back_by_its_forearm():
    """A flat hand pointing at the camera, its depth read the wrong way round, points back along
    its forearm: the forearm turns it back (its curl says nothing)."""
    scene = hand_scene(POSES["open"], view_deg=(0.0, 10.0), pixel_noise=0.0, world_noise_m=0.0)
    world = scene.hand_world.reshape(-1, 2, 21, 3).astype(np.float64)
    mirrored = world.copy()
    z = mirrored[..., 2]
    mirrored[..., 2] = 2 * z.mean(-1, keepdims=True) - z
    np.testing.assert_allclose(fk.unmirror_hands(mirrored), mirrored)  # without the forearms: kept
    j = scene.body.joints
    forearms = scene.camera.R @ (j[:, PLAN.wrists] - j[:, PLAN.forearms])[..., None]
    np.testing.assert_allclose(fk.unmirror_hands(mirrored, forearms_cam=forearms[..., 0]), world, atol=1e-9)
    np.testing.assert_allclose(fk.unmirror_hands(world, forearms_cam=forearms[..., 0]), world)  # a right reading stays
    args = (scene.body, scene.hand_keypoints, mirrored.reshape(-1, 42, 3), scene.hand_confidence, scene.camera)
    assert np.abs(angles_of_motion(motion_with_fingers(*args)) - scene.angles).max() < 1e-4
