"""From the camera frame to the world frame of the animation (+Y up, ground at y = 0).

The camera frame has x right, y down, z away from the camera. The world frame is
right-handed with +Y up; a person facing the camera faces +Z (the rest pose's forward).
"""
from __future__ import annotations

import numpy as np

from mocap.rotations import rotation_matrix_between_vectors
from mocap.skeletons import MOTION21, Skeleton

#: camera (x right, y down, z forward) -> world (+Y up): a half turn about the x axis.
CAMERA_TO_WORLD = np.diag([1.0, -1.0, -1.0])

_FOOT_JOINTS = ("left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index")


def camera_to_world(points_cam: np.ndarray) -> np.ndarray:
    """(..., 3) camera-frame metres -> (..., 3) world metres (+Y up)."""
    return np.asarray(points_cam, dtype=np.float64) @ CAMERA_TO_WORLD.T


def estimate_up(joints: np.ndarray, skeleton: Skeleton = MOTION21) -> np.ndarray:
    """(3,) unit vector: the median torso axis (pelvis -> neck) over the clip.

    The torso rather than the legs: a raised leg or a kick tilts the legs' axis for many
    frames, while the torso of a person on their feet stays within a few degrees of upright.

    Args:
        joints: (T, J, 3) metres in any frame.
    Returns:
        The direction that points up for a mostly upright person; +Y if nothing is finite.
    """
    neck = joints[:, skeleton.index("neck")]
    axis = neck - joints[:, skeleton.index("pelvis")]
    axis = axis[np.isfinite(axis).all(-1)]
    if len(axis) == 0:
        return np.array([0.0, 1.0, 0.0])
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    up = np.median(axis, axis=0)
    return up / np.linalg.norm(up)


def level_and_ground(
    joints: np.ndarray,
    *,
    skeleton: Skeleton = MOTION21,
    level: bool = True,
    ground_percentile: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tilt the clip so the body axis is +Y, put the feet on y = 0 and the first root over the origin.

    Args:
        joints: (T, J, 3) world metres (+Y up from :func:`camera_to_world`).
        level: correct the camera's pitch/roll from the median body axis (assumes the person
            is mostly upright; turn off for clips of people lying down).
        ground_percentile: the floor is this percentile of the lowest foot joint's height.
    Returns:
        (joints (T, J, 3), rotation (3, 3), offset (3,)) with ``out = joints @ rotation.T + offset``.
    """
    joints = np.asarray(joints, dtype=np.float64)
    rot = rotation_matrix_between_vectors(estimate_up(joints, skeleton), np.array([0.0, 1.0, 0.0])) if level else np.eye(3)
    out = joints @ rot.T
    feet = out[:, [skeleton.index(n) for n in _FOOT_JOINTS if n in skeleton.joint_names], 1]
    lowest = np.nanmin(np.where(np.isfinite(feet), feet, np.inf), axis=1)
    lowest = lowest[np.isfinite(lowest)]
    floor = float(np.percentile(lowest, ground_percentile)) if lowest.size else 0.0
    root = out[:, 0]
    finite = np.isfinite(root).all(-1)
    first = root[np.argmax(finite)] if finite.any() else np.zeros(3)
    offset = np.array([-first[0], -floor, -first[2]])
    return out + offset, rot, offset
