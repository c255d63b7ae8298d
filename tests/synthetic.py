"""Synthetic people for tests: known 3D motion seen by a known pinhole camera."""
from __future__ import annotations

import numpy as np

from mocap.formats import Keypoints2D
from mocap.camera import intrinsic_matrix, project_points
from mocap.skeletons import MEDIAPIPE33, MOTION21, rest_offsets

FOCAL_PX = 1000.0
IMAGE_SIZE = (960, 1280)  # (width, height): a portrait camera


def _rot(axis: str, angle: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation about a coordinate axis by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(angle), np.zeros_like(angle)
    rows = {"x": [[o, z, z], [z, c, -s], [z, s, c]],
            "y": [[c, z, s], [z, o, z], [-s, z, c]],
            "z": [[c, -s, z], [s, c, z], [z, z, o]]}[axis]
    return np.moveaxis(np.array(rows), (0, 1), (-2, -1))


def waving_walker(t: int = 90, fps: float = 30.0) -> np.ndarray:
    """(T, 21, 3) world metres, +Y up: an upright T-posed person who waves both arms up and
    down (0.5 Hz, +-0.6 rad), bends the left knee (lifting a level foot), and drifts sideways and backwards,
    with the feet's lowest point at y = 0 in frame 0 and the pelvis over the origin."""
    off = rest_offsets()
    parents = MOTION21.parents
    time = np.arange(t) / fps
    wave = 0.6 * np.sin(2 * np.pi * 0.5 * time)
    knee = 0.4 * (1 - np.cos(2 * np.pi * 0.25 * time))
    local = np.tile(np.eye(3), (t, 21, 1, 1))
    local[:, MOTION21.index("left_shoulder")] = _rot("z", wave)
    local[:, MOTION21.index("right_shoulder")] = _rot("z", wave)  # mirror-symmetric flap
    local[:, MOTION21.index("left_knee")] = _rot("x", knee)
    local[:, MOTION21.index("left_ankle")] = _rot("x", -knee)  # the lifted foot stays level
    glob = np.empty_like(local)
    pos = np.zeros((t, 21, 3))
    for j in range(21):
        p = parents[j]
        if p < 0:
            glob[:, j] = local[:, j]
            continue
        glob[:, j] = glob[:, p] @ local[:, j]
        pos[:, j] = pos[:, p] + np.einsum("tij,j->ti", glob[:, p], off[j])
    pos[..., 1] -= pos[0, :, 1].min()
    pos += np.stack([0.4 * time, 0 * time, -0.3 * time], -1)[:, None]
    return pos


def motion21_to_mediapipe33(joints: np.ndarray) -> np.ndarray:
    """(T, 21, 3) -> (T, 33, 3) landmarks whose MediaPipe->MOTION21 mapping gives ``joints`` back.

    Face and hand points are small fixed offsets (in the world axes) from the head and wrists.
    """
    out = np.zeros(joints.shape[:-2] + (33, 3))
    g = {n: joints[..., MOTION21.index(n), :] for n in MOTION21.joint_names}
    for n in MEDIAPIPE33.joint_names:
        if n in g:
            out[..., MEDIAPIPE33.index(n), :] = g[n]
    face = {"left_eye_inner": (0.02, 0.03, 0.08), "left_eye": (0.035, 0.03, 0.08), "left_eye_outer": (0.05, 0.03, 0.07),
            "left_ear": (0.07, 0.0, 0.0), "mouth_left": (0.02, -0.04, 0.08)}
    hand = {"left_pinky": (0.08, -0.01, -0.02), "left_index": (0.09, 0.0, 0.02), "left_thumb": (0.05, 0.0, 0.04)}
    for table, base in ((face, "head"), (hand, "left_wrist")):
        for n, (x, y, z) in table.items():
            right = n.replace("left", "right")
            out[..., MEDIAPIPE33.index(n), :] = g[base] + (x, y, z)
            out[..., MEDIAPIPE33.index(right), :] = g[base.replace("left", "right")] + (-x, y, z)
    return out


def camera_view(joints_world: np.ndarray, *, distance: float = 5.0, height: float = 1.0, pitch: float = 0.1):
    """World (+Y up) -> camera frame (x right, y down, z forward) for a camera ``distance``
    metres in front of the origin (on +Z), ``height`` metres up, looking at the person and
    pitched down by ``pitch`` radians. Returns (T, J, 3) camera-frame metres."""
    cam_pos = np.array([0.0, height, distance])
    p = joints_world - cam_pos
    p = p @ np.diag([1.0, -1.0, -1.0]).T  # now x right, y down, z forward (camera looks along -Z world)
    return p @ _rot("x", np.array(pitch)).T


def synthetic_keypoints(joints_world: np.ndarray, fps: float = 30.0, noise_px: float = 0.0, seed: int = 0) -> Keypoints2D:
    """Keypoints2D (mediapipe33) with world landmarks, as MediaPipe would report a perfect person."""
    rng = np.random.default_rng(seed)
    mp_world = motion21_to_mediapipe33(joints_world)
    cam = camera_view(mp_world)
    hips = 0.5 * (cam[:, MEDIAPIPE33.index("left_hip")] + cam[:, MEDIAPIPE33.index("right_hip")])
    kp = project_points(cam, intrinsic_matrix(FOCAL_PX, (IMAGE_SIZE[0] / 2, IMAGE_SIZE[1] / 2)))
    kp = kp + rng.normal(0.0, noise_px, kp.shape) if noise_px else kp
    return Keypoints2D(keypoints=kp.astype(np.float32), confidence=np.ones(kp.shape[:2], np.float32),
                       layout="mediapipe33", image_size=IMAGE_SIZE, fps=fps,
                       world_landmarks=(cam - hips[:, None]).astype(np.float32))
