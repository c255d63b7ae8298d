"""Synthetic hands with known finger angles, seen by a known camera (tests and benchmarks/bench_fingers.py).

A hand pose is the (2, 15, 2) array of :mod:`mocap.kinematics.fingers` (hand, joint, (flex,
spread)) in radians. :func:`hand_scene` puts the body (MOTION21, a T-pose with the arms swung
forward) and its hands in that pose in the world by forward kinematics, turns the wrists, and
renders what the hand network would give from a camera looking at the left hand: 2D points
with Gaussian pixel noise and world landmarks (camera axes, origin at the hand's centre) with
Gaussian noise in metres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.camera import Camera, intrinsic_matrix
from mocap.formats import Motion
from mocap.kinematics import fingers as fk
from mocap.kinematics.ik import forward_kinematics
from mocap.rotations import axis_angle_to_quat_wxyz, quat_wxyz_to_matrix
from mocap.skeletons import MOTION21, MOTION61, rest_offsets

_D = np.radians


def _pose(thumb, index, middle, ring, pinky) -> np.ndarray:
    """(2, 15, 2) radians, both hands alike, from degrees per finger: ((flex, spread), flex, flex)."""
    rows = []
    for (f0, s0), f1, f2 in (thumb, index, middle, ring, pinky):
        rows += [(f0, s0), (f1, 0.0), (f2, 0.0)]
    return np.repeat(_D(np.array(rows))[None], 2, axis=0)


#: named hand poses, radians (2, 15, 2)
POSES = {
    "open": _pose(((0, 10), 0, 0), ((0, 8), 0, 0), ((0, 0), 0, 0), ((0, -8), 0, 0), ((0, -15), 0, 0)),
    "fist": _pose(((45, 15), 45, 60), ((85, 0), 100, 60), ((85, 0), 100, 60), ((85, 0), 100, 60),
                  ((85, 0), 95, 60)),
    "pointing": _pose(((40, 15), 40, 50), ((5, 0), 5, 5), ((85, 0), 100, 60), ((85, 0), 100, 60),
                      ((85, 0), 95, 60)),
    "pinch": _pose(((40, 30), 25, 20), ((45, 5), 50, 25), ((25, 0), 30, 15), ((30, 0), 35, 15),
                   ((35, 0), 40, 20)),
}


def random_pose(rng: np.random.Generator, plan: fk.HandPlan) -> np.ndarray:
    """(2, 15, 2) radians drawn uniformly within the anatomical limits."""
    return rng.uniform(plan.limits[..., 0], plan.limits[..., 1], size=(2,) + plan.limits.shape[:-1])


def look_at(centre: np.ndarray, target: np.ndarray, *, focal_px: float = 1500.0,
            size: tuple[int, int] = (1920, 1080)) -> Camera:
    """A pinhole camera at ``centre`` (world metres, +Y up) looking at ``target``, level (no roll)."""
    fwd = target - centre
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    r = np.stack([right, down, fwd])
    return Camera(name="synthetic", size=size, K=intrinsic_matrix(focal_px, (size[0] / 2, size[1] / 2)), R=r,
                  t=-r @ centre, dist=np.zeros(5))


@dataclass(frozen=True)
class HandScene:
    """A clip of T frames: the body motion (MOTION21, as the body stage gives it), the truth on
    MOTION61 (local rotations, joints), the true angles (T, 2, 15, 2) and global wrist rotations
    (T, 2, 3, 3), the camera and what the hand network gives (hands42: pixels (T, 42, 2), world
    landmarks (T, 42, 3), confidence (T, 42))."""

    body: Motion
    truth_quats: np.ndarray
    truth_joints: np.ndarray
    angles: np.ndarray
    wrist_global: np.ndarray
    camera: Camera
    hand_keypoints: np.ndarray
    hand_world: np.ndarray
    hand_confidence: np.ndarray


def hand_scene(angles: np.ndarray, *, view_deg: tuple[float, float] = (0.0, 20.0), distance_m: float = 1.2,
               pixel_noise: float = 2.0, world_noise_m: float = 0.004, frames: int = 30, fps: float = 30.0,
               seed: int = 0) -> HandScene:
    """The body with both hands in pose ``angles`` ((2, 15, 2) or (T, 2, 15, 2) radians), the wrists
    turning slowly, seen from ``distance_m`` away from the left hand at (yaw, pitch) ``view_deg``
    degrees (yaw 0: in front of the person, pitch: looking down)."""
    rng = np.random.default_rng(seed)
    t = frames
    a = np.broadcast_to(np.asarray(angles, dtype=np.float64), (t, 2, 15, 2)).copy()
    body_off = rest_offsets(MOTION21)
    off = rest_offsets(MOTION61)
    plan = fk.plan_hands(MOTION61, off)
    q = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (t, MOTION61.num_joints, 1))
    # arms swung forward 50 degrees, the elbows bent 30
    for side, sign in (("left", 1.0), ("right", -1.0)):
        q[:, MOTION61.index(f"{side}_shoulder")] = axis_angle_to_quat_wxyz(np.array([0.0, -sign * _D(50.0), 0.0]))
        q[:, MOTION61.index(f"{side}_elbow")] = axis_angle_to_quat_wxyz(np.array([0.0, -sign * _D(30.0), 0.0]))
    phase = np.linspace(0.0, 1.0, t)[:, None]
    wrist_aa = np.stack([np.hstack([_D(30.0) * np.sin(2 * np.pi * phase + 0.3 * h), _D(20.0) * np.cos(np.pi * phase),
                                    _D(25.0) * np.sin(np.pi * phase + h)]) for h in range(2)], 1)  # (T, 2, 3)
    wrist_local = quat_wxyz_to_matrix(axis_angle_to_quat_wxyz(wrist_aa))
    q = fk.hand_local_quats(plan, q, wrist_local, a)
    root = np.tile([0.0, 1.0, 0.0], (t, 1))
    from mocap.kinematics.ik import forward_kinematics_with_rotations

    joints, glob = forward_kinematics_with_rotations(q, root, off, MOTION61.parents)
    body_joints = forward_kinematics(q[:, :21], root, body_off, MOTION21.parents)
    body_q = q[:, :21].copy()
    body_q[:, plan.wrists] = np.array([1.0, 0.0, 0.0, 0.0])  # the body stage: a wrist is a leaf
    body = Motion(joints=body_joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=fps,
                  local_quats_wxyz=body_q, root_translation=root - body_off[0], rest_offsets=body_off)
    target = joints[t // 2, plan.wrists[0]]
    yaw, pitch = _D(view_deg[0]), _D(view_deg[1])
    direction = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    camera = look_at(target + distance_m * direction, target)
    hand_pts = joints[:, plan.hand_points.reshape(-1)]  # (T, 42, 3) hands42 order
    px = camera.project(hand_pts) + rng.normal(0.0, pixel_noise, (t, 42, 2))
    cam = camera.world_to_camera(hand_pts).reshape(t, 2, 21, 3)
    world = (cam - cam.mean(2, keepdims=True)).reshape(t, 42, 3) + rng.normal(0.0, world_noise_m, (t, 42, 3))
    return HandScene(body=body, truth_quats=q, truth_joints=joints, angles=a,
                     wrist_global=quat_wxyz_to_matrix(glob[:, plan.wrists]), camera=camera,
                     hand_keypoints=px.astype(np.float32), hand_world=world.astype(np.float32),
                     hand_confidence=np.full((t, 42), 0.9, np.float32))
