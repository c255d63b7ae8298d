"""From the camera frame to the world frame of the animation (+Y up, ground at y = 0).

The camera frame has x right, y down, z away from the camera. The world frame is
right-handed with +Y up; a person facing the camera faces +Z (the rest pose's forward).
"""
from __future__ import annotations

import numpy as np

from mocap.rotations import nearest_axis, rotation_matrix_between_vectors
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


#: how far (degrees) the median torso axis may lean from an axis of a calibrated world for
#: that axis to be taken as gravity (:func:`nearest_axis_up`)
AXIS_SNAP_DEG = 35.0


def nearest_axis_up(joints: np.ndarray, skeleton: Skeleton = MOTION21, *,
                    max_deg: float = AXIS_SNAP_DEG) -> np.ndarray | None:
    """(3,) the axis (+-X, +-Y or +-Z) of the points' own frame nearest the median torso axis
    (:func:`estimate_up`), when it is within ``max_deg`` of it; else None.

    For points in a calibrated world (a mocap system's, or a calibration board's laid on the
    floor), whose axes hold gravity: a person who leans most of the time keeps their lean
    (levelling by the torso alone would stand them upright), as long as they lean less
    than ``max_deg`` in the median frame.
    """
    axis, off = nearest_axis(estimate_up(np.asarray(joints, dtype=np.float64), skeleton))
    return None if off > max_deg else axis


def level_and_ground(
    joints: np.ndarray,
    *,
    skeleton: Skeleton = MOTION21,
    level: bool = True,
    ground_percentile: float = 2.0,
    up: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tilt the clip so that "up" is +Y, put the feet on y = 0 and the first root over the origin.

    Args:
        joints: (T, J, 3) world metres (+Y up from :func:`camera_to_world`).
        level: correct the camera's pitch/roll from the median body axis (assumes the person
            is mostly upright; turn off for clips of people lying down).
        ground_percentile: the floor is this percentile of the lowest foot joint's height.
        up: (3,) the up direction in ``joints``' frame when known (e.g. :func:`nearest_axis_up`);
            it replaces the body axis (``level`` then does not matter).
    Returns:
        (joints (T, J, 3), rotation (3, 3), offset (3,)) with ``out = joints @ rotation.T + offset``.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if up is None and level:
        up = estimate_up(joints, skeleton)
    rot = np.eye(3) if up is None else rotation_matrix_between_vectors(np.asarray(up, np.float64), np.array([0.0, 1.0, 0.0]))
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
