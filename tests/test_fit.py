"""The fitting stage (mocap.fit) on synthetic clips with known camera and motion.

The people here keep their balance (the centre of mass over the planted feet), as real
people do: the fit reads gravity from that.
"""
from __future__ import annotations

import numpy as np
import pytest

from mocap.camera import Camera, intrinsic_matrix
from mocap.cleanup.options import CleanupConfig
from mocap.fit.quality import HEAD_TOP_M, standing_height
from mocap.fit.ground import camera_pitch_roll, center_of_mass, standing, support_surfaces, world_from_camera
from mocap.formats import Keypoints2D
from mocap.kinematics.ik import forward_kinematics
from mocap.pipelines.capture import lift_and_fit
from mocap.rotations import matrix_to_quat_wxyz
from mocap.skeletons import MEDIAPIPE33, MOTION21, rest_offsets
from tests.synthetic import _rot, motion21_to_mediapipe33

J = MOTION21.index
FOCAL = 1100.0
SIZE = (1080, 1920)


def look_camera(pitch_deg: float, height: float, distance: float, roll_deg: float = 0.0) -> Camera:
    """A camera on +Z ``distance`` m from the origin, ``height`` m up, pitched down, rolled."""
    to_world = world_from_camera(np.array([0.0, -1.0, 0.0]))  # level camera looking along -Z
    tilt = _rot("z", np.radians(roll_deg)) @ _rot("x", np.radians(pitch_deg))  # camera axes: pitch, then roll
    r = tilt @ to_world.T  # world -> camera
    center = np.array([0.0, height, distance])
    return Camera(name="synthetic", size=SIZE, K=intrinsic_matrix(FOCAL, (SIZE[0] / 2, SIZE[1] / 2)), R=r,
                  t=-r @ center, dist=np.zeros(5))


def seen_by(joints: np.ndarray, camera: Camera, fps: float, noise_px: float = 0.5, seed: int = 0) -> Keypoints2D:
    """MediaPipe-33 keypoints and world landmarks of MOTION21 ``joints`` as ``camera`` sees them."""
    mp = motion21_to_mediapipe33(joints)
    cam = camera.world_to_camera(mp)
    kp = camera.project(mp) + np.random.default_rng(seed).normal(0, noise_px, mp.shape[:-1] + (2,))
    hips = 0.5 * (cam[:, MEDIAPIPE33.index("left_hip")] + cam[:, MEDIAPIPE33.index("right_hip")])
    return Keypoints2D(keypoints=kp.astype(np.float32), confidence=np.ones(kp.shape[:2], np.float32),
                       layout="mediapipe33", image_size=SIZE, fps=fps,
                       world_landmarks=(cam - hips[:, None]).astype(np.float32))


def pose(local: dict[str, np.ndarray], t: int) -> np.ndarray:
    """(T, 21, 3) joints from local rotation matrices by joint name (identity elsewhere), root at 0."""
    rot = np.tile(np.eye(3), (t, 21, 1, 1))
    for name, m in local.items():
        rot[:, J(name)] = m
    return forward_kinematics(matrix_to_quat_wxyz(rot), np.zeros((t, 3)), rest_offsets(), MOTION21.parents)


def balanced(joints: np.ndarray, support_y: np.ndarray | float = 0.0) -> np.ndarray:
    """Tilt each frame about its feet so the centre of mass is over them, then put the lowest
    foot point on ``support_y``: a pose a person could hold."""
    out = joints.copy()
    feet = [J(n) for n in ("left_heel", "left_foot_index", "right_heel", "right_foot_index")]
    for i in range(len(out)):
        base = out[i, feet].mean(0)
        for _ in range(3):
            d = center_of_mass(out[i]) - base
            angle = np.arctan2(d[2], d[1])  # forward offset over height: tilt back about x
            out[i] = (out[i] - base) @ _rot("x", np.array(angle)) + base
            d = center_of_mass(out[i]) - base
            angle = np.arctan2(d[0], d[1])
            out[i] = (out[i] - base) @ _rot("z", np.array(-angle)) + base
        out[i, :, 1] -= out[i, feet, 1].min() - np.broadcast_to(support_y, len(out))[i]
    return out


def lean_deg(joints: np.ndarray) -> np.ndarray:
    v = joints[:, J("neck")] - joints[:, J("pelvis")]
    return np.degrees(np.arccos(v[:, 1] / np.linalg.norm(v, axis=-1)))


def leaning_clip(t: int = 90, fps: float = 30.0, lean: float = 30.0) -> np.ndarray:
    """A person bent forward ``lean`` degrees at the hips the whole clip, waving the arms."""
    time = np.arange(t) / fps
    wave = 0.5 * np.sin(2 * np.pi * 0.5 * time)
    bend = np.full(t, np.radians(lean))
    joints = pose({"pelvis": _rot("x", bend), "left_hip": _rot("x", -bend), "right_hip": _rot("x", -bend),
                   "left_shoulder": _rot("z", wave - 1.2), "right_shoulder": _rot("z", 1.2 - wave)}, t)
    return balanced(joints)


FIT = dict(cleanup=CleanupConfig(), lifter="mediapipe", focal_px=FOCAL)


def test_ground_helpers_on_known_numbers():
    # a level camera's world frame is the fixed camera-to-world flip; pitch and roll read back
    np.testing.assert_allclose(world_from_camera(np.array([0.0, -1.0, 0.0])), np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    cam = look_camera(20.0, 1.5, 5.0, roll_deg=7.0)
    pitch, roll = camera_pitch_roll(cam.R.T)
    assert np.degrees(pitch) == pytest.approx(20.0, abs=1e-6) and np.degrees(roll) == pytest.approx(7.0, abs=1e-6)
    up_cam = cam.R @ np.array([0.0, 1.0, 0.0])
    pitch2, roll2 = camera_pitch_roll(world_from_camera(up_cam))
    assert np.degrees(pitch2) == pytest.approx(20.0, abs=1e-6) and np.degrees(roll2) == pytest.approx(7.0, abs=1e-6)
    # support surfaces: two clusters of contact heights, 0 and 0.4 m
    h = np.zeros((20, 4))
    h[10:] = 0.4
    c = np.ones((20, 4), bool)
    c[9:11] = False
    surfaces, index = support_surfaces(h, c)
    np.testing.assert_allclose(surfaces, [0.0, 0.4])
    assert (index[:9] == 0).all() and (index[11:] == 1).all() and (index[9:11] == -1).all()
    # the standing height: heel to head joint of the standing rest pose plus the head's top; scales with the body
    rest = pose({}, 1)[0]
    expected = rest[J("head"), 1] - rest[J("left_heel"), 1] + HEAD_TOP_M
    assert standing_height(rest_offsets()) == pytest.approx(expected, abs=1e-9)
    assert standing_height(1.1 * rest_offsets()) == pytest.approx(1.1 * expected, abs=1e-9)


def sit_then_stand(t_sit: int = 60, t_rise: int = 30, t_stand: int = 60, fps: float = 30.0) -> np.ndarray:
    """Seated (thighs level, shins down, feet on the floor, the weight on the seat behind them),
    then up and standing balanced over the feet; arms waving."""
    t = t_sit + t_rise + t_stand
    a = np.clip((np.arange(t) - t_sit) / t_rise, 0.0, 1.0)
    bend = (1.0 - a * a * (3.0 - 2.0 * a)) * np.radians(90.0)  # hips and knees
    wave = 0.5 * np.sin(2 * np.pi * 0.5 * np.arange(t) / fps)
    joints = pose({"left_hip": _rot("x", -bend), "right_hip": _rot("x", -bend), "left_knee": _rot("x", bend),
                   "right_knee": _rot("x", bend), "left_shoulder": _rot("z", wave - 1.2),
                   "right_shoulder": _rot("z", 1.2 - wave)}, t)
    feet = [J(n) for n in ("left_heel", "left_foot_index", "right_heel", "right_foot_index")]
    seated = joints - joints[:, feet, 1].min(1)[:, None, None] * np.array([0.0, 1.0, 0.0])
    return np.where((a >= 1.0)[:, None, None], balanced(joints), seated)


def test_a_seated_person_s_balance_is_not_read_for_gravity(monkeypatch):
    """Seated, the centre of mass rests on the seat, not over the planted feet: only the frames
    where the legs carry the body (nearly straight) say where up is."""
    import mocap.fit.ground as ground

    truth = sit_then_stand()
    x = truth[:1]
    contacts = np.ones((1, 4), bool)
    assert not standing(x, contacts)[0] and standing(truth[-1:], contacts)[0]
    assert not standing(x, np.zeros((1, 4), bool))[0]  # no foot planted: not standing on them
    camera = look_camera(25.0, 1.5, 4.0)
    keypoints = seen_by(truth, camera, 30.0)
    motion, fitted = lift_and_fit(keypoints, **FIT)
    p, _, h = fitted.pitch_roll_height
    assert p == pytest.approx(25.0, abs=1.5) and h == pytest.approx(1.5, abs=0.1), (p, h)
    assert np.median(lean_deg(motion.joints[:60])) < 3.0  # seated upright
    monkeypatch.setattr(ground, "STRAIGHT_LEG", 0.0)  # every planted frame read, the seated ones too
    _, fitted = lift_and_fit(keypoints, **FIT)
    assert abs(fitted.pitch_roll_height[0] - 25.0) > 10.0


@pytest.mark.parametrize("pitch,height", [(5.0, 1.0), (25.0, 1.8)])
def test_fit_solves_the_camera_and_keeps_a_lean(pitch, height):
    truth = leaning_clip()
    camera = look_camera(pitch, height, 5.0)
    motion, fitted = lift_and_fit(seen_by(truth, camera, 30.0), **FIT)
    p, r, h = fitted.pitch_roll_height
    assert p == pytest.approx(pitch, abs=2.0) and abs(r) < 2.0, (p, r)
    assert h == pytest.approx(height, rel=0.06)
    # the person leans as much as they did (the old levelling stood them upright)
    assert np.median(lean_deg(motion.joints)) == pytest.approx(np.median(lean_deg(truth)), abs=3.0)
    assert np.median(lean_deg(truth)) > 20.0
    # feet on the floor, nothing under it
    feet = [J(n) for n in ("left_heel", "left_foot_index", "right_heel", "right_foot_index")]
    assert abs(np.median(motion.joints[:, feet, 1].min(1))) < 0.02
    assert motion.joints[..., 1].min() > -0.03
    # the final motion reprojects onto the 2D (under 1 % of the person's 2D height)
    proj = fitted.camera.project(motion.joints)
    kp2d = camera.project(truth)
    height_px = np.ptp(kp2d[..., 1], axis=1).mean()
    assert np.median(np.linalg.norm(proj - kp2d, axis=-1)) < 0.01 * height_px


def test_lift_command_fits_and_writes_quality(tmp_path):
    """`mocap lift` fits by default: the leaning person keeps the lean, and m.quality.json
    holds the solved camera and the reprojection of the final motion."""
    import json
    import subprocess
    import sys

    from mocap.formats import load_motion, save_keypoints

    truth = leaning_clip(t=60)
    camera = look_camera(15.0, 1.4, 5.0)
    save_keypoints(tmp_path / "k.npz", seen_by(truth, camera, 30.0))
    run = subprocess.run([sys.executable, "-m", "mocap", "lift", str(tmp_path / "k.npz"), "-o", str(tmp_path / "m.npz"),
                          "--lifter", "mediapipe", "--focal-px", str(FOCAL)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "3D matches the video" in run.stdout
    q = json.loads((tmp_path / "m.quality.json").read_text())
    assert q["camera_pitch_deg"] == pytest.approx(15.0, abs=2.0) and q["camera_height_m"] == pytest.approx(1.4, rel=0.06)
    assert q["reprojection_median_pct"] < 1.0 and q["frames_below_floor"] == 0
    assert (q["gravity_from"], q["focal_from"]) == ("balance", "given")  # no room in these keypoints
    m = load_motion(tmp_path / "m.npz")
    assert np.median(lean_deg(m.joints)) == pytest.approx(np.median(lean_deg(truth)), abs=3.0)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def box_clip(t: int = 90, fps: float = 30.0, box: float = 0.4):
    """A person stands on a ``box`` m high block, hops down forward (frames 30-44) and stands on the floor."""
    time = np.arange(t) / fps
    wave = 0.4 * np.sin(2 * np.pi * 0.7 * time)
    joints = pose({"left_shoulder": _rot("z", wave - 1.3), "right_shoulder": _rot("z", 1.3 - wave)}, t)
    s = _smoothstep((np.arange(t) - 30) / 14.0)
    support = box * (1 - s) + 0.15 * np.sin(np.pi * s)
    out = balanced(joints, support)
    out[..., 2] += 0.6 * s[:, None]
    return out, support


def test_jump_down_from_a_box_keeps_both_floors():
    truth, support = box_clip()
    camera = look_camera(12.0, 1.6, 5.5)
    motion, fitted = lift_and_fit(seen_by(truth, camera, 30.0), **FIT)
    # two support surfaces, the floor at 0 and the box 0.4 m above it
    assert len(fitted.surfaces) == 2 and fitted.surfaces[1] == pytest.approx(0.4, abs=0.05), fitted.surfaces
    # never upside down, never under the floor; the pelvis at the right height on the box and after
    assert lean_deg(motion.joints).max() < 15.0
    assert motion.joints[..., 1].min() > -0.03
    pelvis, true_pelvis = motion.joints[:, 0, 1], truth[:, 0, 1]
    np.testing.assert_allclose(pelvis[:25], true_pelvis[:25], atol=0.05)
    np.testing.assert_allclose(pelvis[50:], true_pelvis[50:], atol=0.05)
    # the hop forward: 0.6 m towards the camera (the world's -Z faces away from it)
    travel = motion.joints[-1, 0] - motion.joints[0, 0]
    assert np.hypot(travel[0], travel[2]) == pytest.approx(0.6, abs=0.1)


def test_jumping_on_the_spot_does_not_pump_the_depth():
    """Hops in place with noisy 2D: the root stays over one spot (it once slid 1.15 m)."""
    t, fps = 90, 30.0
    time = np.arange(t) / fps
    hop = np.maximum(0.0, np.sin(2 * np.pi * 1.5 * time)) * 0.12
    arms = 1.3 - 1.0 * np.abs(np.sin(2 * np.pi * 0.75 * time))
    truth = balanced(pose({"left_shoulder": _rot("z", -arms), "right_shoulder": _rot("z", arms)}, t), hop)
    kp = seen_by(truth, look_camera(10.0, 1.5, 4.5), fps, noise_px=2.0, seed=5)
    rng = np.random.default_rng(6)
    kp.world_landmarks[:] += rng.normal(0, 0.01, kp.world_landmarks.shape).astype(np.float32)
    motion, _ = lift_and_fit(kp, **FIT)
    root = motion.joints[:, 0]
    assert np.ptp(root[:, 2]) < 0.1 and np.ptp(root[:, 0]) < 0.1, (np.ptp(root[:, 2]), np.ptp(root[:, 0]))
    np.testing.assert_allclose(motion.joints[:, 0, 1], truth[:, 0, 1], atol=0.05)


def test_first_frames_unseen_start_where_the_person_is():
    """No slide-in: frames before the first detection hold the first seen pose and place."""
    truth = leaning_clip(t=60, lean=10.0)
    truth[..., 0] += 0.8  # off to the side, where the camera first sees them
    kp = seen_by(truth, look_camera(10.0, 1.5, 5.0), 30.0)
    kp.keypoints[:12] = np.nan
    kp.confidence[:12] = 0
    kp.world_landmarks[:12] = np.nan
    motion, _ = lift_and_fit(kp, **FIT)
    root = motion.joints[:, 0]
    np.testing.assert_allclose(root[:12], np.repeat(root[12:13], 12, 0), atol=0.03)
    assert np.ptp(root[:, 0]) < 0.03 and np.ptp(root[:, 2]) < 0.03  # standing still from the first frame to the last


@pytest.mark.parametrize("t", [1, 2, 5])
def test_very_short_clips_fit(t):
    truth = leaning_clip(t=t, lean=5.0)
    motion, fitted = lift_and_fit(seen_by(truth, look_camera(10.0, 1.5, 5.0), 30.0), **FIT)
    assert motion.num_frames == t and np.isfinite(motion.joints).all()
    # the pose is right (too few frames to read gravity from: a level camera is assumed, so compare after a rotation)
    a = (motion.joints - motion.joints[:, :1]).reshape(-1, 3)
    b = (truth - truth[:, :1]).reshape(-1, 3)
    u, _, vt = np.linalg.svd(a.T @ b)
    rot = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
    assert np.linalg.norm(a @ rot - b, axis=-1).mean() < 0.03


def test_sampling_the_objective_does_not_change_a_60fps_clip(monkeypatch):
    """The objective is evaluated on about 15 frames per second; on a 60 fps clip that is one
    frame in four, and the priors on the camera must then count for one in four too. They once
    weighed four times as much: on this real 60 fps clip (pose2sim_single cam04, MediaPipe's
    2D) the solved roll then moved by 13 degrees against the fit on every frame, and the
    torso's lean came out 16 degrees off the triangulated one."""
    import dataclasses

    import mocap.fit.fit as fit_module
    from tests.conftest import shared_path

    video = shared_path("video", "pose2sim_single", "videos", "cam04.mp4")
    pytest.importorskip("mediapipe")
    from mocap.detect2d.mediapipe_pose import detect_video

    keypoints = detect_video(video, progress=False)
    assert keypoints.fps == pytest.approx(60.0)
    solve = fit_module.solve_fit
    solved = {}
    for hz in (None, 1000.0):  # the default sampling, and every frame
        def every(*args, weights, hz=hz, **kwargs):
            return solve(*args, weights=weights if hz is None else dataclasses.replace(weights, sample_hz=hz), **kwargs)
        monkeypatch.setattr(fit_module, "solve_fit", every)
        solved[hz] = lift_and_fit(keypoints, cleanup=CleanupConfig(), lifter="network")[1].pitch_roll_height
    (p1, r1, h1), (p2, r2, h2) = solved[None], solved[1000.0]
    assert abs(p1 - p2) < 2.5 and abs(r1 - r2) < 5.0 and abs(h1 - h2) < 0.15, solved


def test_a_second_person_shares_the_camera_and_stands_on_its_floor():
    """Two people in one video: the second is fitted in the camera the first one solved. One
    camera cannot tell a small near person from a tall far one, so the lift (here told the
    second person is as tall as the first) says nothing of size; the floor does: their feet
    stand on it. Each fitted alone, both started at the world's origin, as tall as the lift."""
    a = leaning_clip(t=60, lean=10.0)
    b = leaning_clip(t=60, lean=25.0) * 0.8  # a smaller person (the floor stays at y = 0) ...
    b[..., 0] += 1.2  # ... to the right of the first and 1.5 m further from the camera
    b[..., 2] -= 1.5
    camera = look_camera(15.0, 1.7, 5.0)
    motion_a, fit_a = lift_and_fit(seen_by(a, camera, 30.0), **FIT)
    kp_b = seen_by(b, camera, 30.0, seed=1)
    kp_b.world_landmarks[:] /= 0.8  # the lift's guess: an adult of the usual size
    motion_b, fit_b = lift_and_fit(kp_b, **FIT, shared=fit_a)
    np.testing.assert_allclose(fit_b.camera.R, fit_a.camera.R, atol=1e-9)
    np.testing.assert_allclose(fit_b.camera.t, fit_a.camera.t, atol=1e-9)
    assert fit_b.up_source == "shared camera"
    # their sizes and where they stand, in the first one's world
    ratio = standing_height(fit_b.motion.rest_offsets) / standing_height(fit_a.motion.rest_offsets)
    assert ratio == pytest.approx(0.8, abs=0.03)
    apart = motion_b.joints[:, 0] - motion_a.joints[:, 0]
    np.testing.assert_allclose(np.median(apart, 0), np.median(b[:, 0] - a[:, 0], 0), atol=0.15)
    feet = [J(n) for n in ("left_heel", "left_foot_index", "right_heel", "right_foot_index")]
    assert abs(np.median(motion_b.joints[:, feet, 1].min(1))) < 0.02
    # and the second person's motion reprojects onto their 2D through the shared camera
    proj = fit_b.camera.project(motion_b.joints)
    kp2d = camera.project(b)
    assert np.median(np.linalg.norm(proj - kp2d, axis=-1)) < 0.01 * np.ptp(kp2d[..., 1], axis=1).mean()


def test_floor_scale_on_known_numbers():
    """A person lifted 1.25 times too large (and so too far) is scaled by 0.8 to stand on a
    floor 1.6 m under the camera; whose feet the video never shows, not at all."""
    from mocap.cleanup.contact import CONTACT_POINTS
    from mocap.fit.fit import floor_scale

    truth = leaning_clip(t=30, lean=5.0)
    camera = look_camera(15.0, 1.6, 5.0)
    to_world = camera.R.T  # camera axes -> world axes; the camera at the origin
    world = (camera.world_to_camera(truth) @ to_world.T) * 1.25
    feet = [J(n) for n in CONTACT_POINTS]
    feet_px = camera.project(truth)[:, feet]
    assert floor_scale(world, feet_px, camera_height=1.6, fps=30.0, height_px=500.0) == pytest.approx(0.8, rel=0.01)
    unseen = feet_px.copy()
    unseen[5:] = np.nan
    assert floor_scale(world, unseen, camera_height=1.6, fps=30.0, height_px=500.0) == 1.0


def test_a_turned_picture_is_lifted_in_the_turned_camera_s_axes():
    """A camera rolled 25 degrees about its optical axis: its 2D turned back by the roll is the
    level camera's 2D, so lifting it turned gives the level camera's lift, turned into the rolled
    camera's axes (the network sees what it was trained on; the geometry is exact)."""
    from mocap.lift.lifters import get_lifter
    from mocap.lift.trajectory import lift_camera_joints
    from tests.fit_synthetic import view_clip, walking

    net = get_lifter("network")
    clip = walking(seconds=2.0)
    rolled, cam_rolled = view_clip(clip, pitch_deg=15.0, roll_deg=25.0, noise_px=0.0)
    level, cam_level = view_clip(clip, pitch_deg=15.0, noise_px=0.0)
    turned = lift_camera_joints(net, rolled, rolled, focal_px=1400.0, turn_rad=float(np.radians(25.0)))
    plain = lift_camera_joints(net, level, level, focal_px=1400.0)
    to_rolled = cam_rolled.R @ cam_level.R.T  # level camera axes -> rolled camera axes
    np.testing.assert_allclose(turned.joints_cam, plain.joints_cam @ to_rolled.T, atol=1e-4)
    # lifted as it comes, the rolled camera's 2D gives another body
    as_is = lift_camera_joints(net, rolled, rolled, focal_px=1400.0)
    assert np.abs(as_is.joints_cam - plain.joints_cam @ to_rolled.T).max() > 0.02


def test_a_rolled_camera_is_lifted_again_with_its_picture_upright(monkeypatch):
    """The network was trained with cameras within a few degrees of level: a camera rolled 25
    degrees reads a person's lean wrong, and the fit's roll with it. The clip is lifted again
    with the picture turned by the roll the first fit found, and fitted again."""
    import mocap.lift.trajectory as trajectory_module
    from mocap.lift.lifters import get_lifter
    from tests.fit_synthetic import leaning_stand, view_clip

    net = get_lifter("network")
    kp, _ = view_clip(leaning_stand(20.0), pitch_deg=15.0, height_m=1.5, distance_m=5.0, roll_deg=25.0)
    _, fit = lift_and_fit(kp, lifter=net, focal_px=1400.0)
    p, r, h = fit.pitch_roll_height
    assert abs(r + 25.0) < 1.5 and abs(p - 15.0) < 2.5 and abs(h - 1.5) < 0.15, (p, r, h)  # (opposite roll conventions)
    monkeypatch.setattr(trajectory_module, "UPRIGHT_ROLL_DEG", 1e9)  # as before: lifted once
    _, once = lift_and_fit(kp, lifter=net, focal_px=1400.0)
    p0, r0, h0 = once.pitch_roll_height
    assert abs(r0 + 25.0) > 3.5 and abs(r0 + 25.0) > abs(r + 25.0) + 3.0, (r0, r)
