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
from mocap.fit.ground import camera_pitch_roll, center_of_mass, support_surfaces, world_from_camera
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
