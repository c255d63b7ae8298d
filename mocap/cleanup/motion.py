"""The clean-up chain from 2D keypoints or 3D joints to a Motion: gap filling, smoothing,
world frame, constant bone lengths, inverse and forward kinematics, planted feet locked.

Every function takes its settings as keyword arguments (the fields of
:class:`mocap.cleanup.options.CleanupConfig`). ``stage`` arguments are optional timers:
a callable ``name -> context manager`` wrapped around each step (``StageTimer.stage``).
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import numpy as np

from mocap import bones
from mocap.cleanup import contact, filters, world
from mocap.errors import MocapError
from mocap.formats import Keypoints2D, Motion
from mocap.kinematics import ik as kinematics
from mocap.skeletons import MOTION21, map_joints, rest_offsets

Stage = Callable[[str], ContextManager]


def _no_timer(name: str) -> ContextManager:
    return contextlib.nullcontext()


def fill_keypoint_gaps(keypoints: Keypoints2D, *, min_confidence: float = 0.3, max_gap_s: float = 0.5) -> Keypoints2D:
    """2D keypoints (and MediaPipe world landmarks) with the gaps up to ``max_gap_s`` seconds
    interpolated; points under ``min_confidence`` count as gaps.

    Returns:
        Keypoints2D of the same layout: keypoints (T, J, 2) pixels, NaN in longer gaps;
        confidence at least ``min_confidence`` where a point is now known, 0 elsewhere.
    """
    fps = keypoints.fps
    conf = keypoints.confidence
    kp = filters.fill_gaps(keypoints.keypoints, confidence=conf, min_confidence=min_confidence,
                           max_gap_s=max_gap_s, fps=fps)
    conf_filled = np.where(np.isfinite(kp).all(-1), np.maximum(conf, min_confidence), 0.0)
    wl = keypoints.world_landmarks
    if wl is not None:
        wl = filters.fill_gaps(wl, confidence=conf, min_confidence=min_confidence, max_gap_s=max_gap_s, fps=fps)
    return Keypoints2D(keypoints=kp.astype(np.float32), confidence=conf_filled.astype(np.float32),
                       layout=keypoints.layout, image_size=keypoints.image_size, fps=fps,
                       world_landmarks=None if wl is None else wl.astype(np.float32))


def hold_last(x: np.ndarray) -> np.ndarray:
    """Fill every NaN with the last finite value before it in time (per channel); NaNs
    before the first finite value take the first one. Channels never finite stay NaN.

    For gaps longer than the fill limit: the pose is held where the person was last seen
    (docs/formats.md). Args: x (T, ...) float. Returns: float64 copy, same shape.
    """
    x = np.array(x, dtype=np.float64)
    flat = x.reshape(x.shape[0], -1)
    ok = np.isfinite(flat)
    last = np.maximum.accumulate(np.where(ok, np.arange(len(flat))[:, None], -1), axis=0)
    held = np.take_along_axis(flat, np.maximum(last, 0), axis=0)
    flat = np.where(last >= 0, held, flat)
    return filters.hold_nearest(flat).reshape(x.shape)  # only the leading NaNs are left


def _fill_and_hold(x: np.ndarray, *, fps: float, max_gap_s: float) -> np.ndarray:
    return hold_last(filters.fill_gaps(x, max_gap_s=max_gap_s, fps=fps))


def smooth_camera_joints(joints_rel: np.ndarray, root: np.ndarray, *, fps: float, max_gap_s: float = 0.5,
                         cutoff_hz: float = 6.0, root_cutoff_hz: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Fill, hold and low-pass lifted joints and their root trajectory.

    Args:
        joints_rel: (T, J, 3) metres, root-relative, camera axes; NaN where unknown.
        root: (T, 3) metres, the root in the camera frame; NaN where unknown.
    Returns:
        (joints_rel, root), NaN-free. MocapError when no frame has usable 3D.
    """
    rel = _fill_and_hold(joints_rel, fps=fps, max_gap_s=max_gap_s)
    root = _fill_and_hold(root, fps=fps, max_gap_s=max_gap_s)
    if not np.isfinite(rel).all() or not np.isfinite(root).all():
        raise MocapError("no usable 3D in any frame: the person was never fully detected")
    return filters.lowpass(rel, fps=fps, cutoff_hz=cutoff_hz), filters.lowpass(root, fps=fps, cutoff_hz=root_cutoff_hz)


def world_joints_from_camera(joints_rel: np.ndarray, root: np.ndarray, *, level: bool = True) -> np.ndarray:
    """Camera-frame joints -> world joints, +Y up (levelled from the body axis unless
    ``level`` is off), feet on y = 0.

    Args:
        joints_rel: (T, J, 3) metres, root-relative, camera axes (x right, y down, z forward).
        root: (T, 3) metres, the root in the camera frame.
    Returns:
        (T, J, 3) metres, world frame.
    """
    joints_world = world.camera_to_world(joints_rel + root[:, None, :])
    joints_world, _, _ = world.level_and_ground(joints_world, level=level)
    return joints_world


def smooth_points(points: np.ndarray, layout: str, *, fps: float, max_gap_s: float = 0.5,
                  cutoff_hz: float = 6.0) -> np.ndarray:
    """Triangulated keypoints -> MOTION21 joints, gaps filled and held, low-passed.

    Args:
        points: (T, J, 3) metres, joints of ``layout``; NaN where not triangulated.
    Returns:
        (T, 21, 3) metres, NaN-free. MocapError when no joint was triangulated in any frame.
    """
    joints = _fill_and_hold(map_joints(points, layout, MOTION21), fps=fps, max_gap_s=max_gap_s)
    if not np.isfinite(joints).all():
        raise MocapError("no joint was triangulated in any frame: check that the calibration belongs to these "
                         "videos and that the person is visible in at least two views")
    return filters.lowpass(joints, fps=fps, cutoff_hz=cutoff_hz)


def motion_from_world_joints(joints_world: np.ndarray, *, fps: float, lock_feet: bool = True,
                             measured_root: bool = False, stage: Stage = _no_timer) -> Motion:
    """Clean world joints -> Motion: constant bone lengths, IK, FK, planted feet locked.

    Args:
        joints_world: (T, 21, 3) MOTION21 joints, metres, +Y up, NaN-free.
        lock_feet: pin planted feet on the ground (:func:`mocap.cleanup.contact.clean_motion`).
        measured_root: the root's path is measured (triangulated): the legs alone pin the
            planted feet; off (one camera, whose root depth is noisy): the root is moved with
            the planted feet (``anchor_root``).
    Returns:
        Motion with local rotations, root translation and the subject's rest offsets.
    """
    parents = np.array(MOTION21.parents)
    with stage("bone lengths"):
        lengths = bones.estimate_bone_lengths(joints_world, parents, left_right=MOTION21.left_right)
        offsets = bones.rest_offsets_with_lengths(rest_offsets(MOTION21), lengths)

    with stage("inverse kinematics"):
        quats, root_translation = kinematics.inverse_kinematics(
            joints_world, parents=parents, rest_offsets=offsets, skeleton=MOTION21)
        joints = kinematics.forward_kinematics(quats, root_translation, offsets, parents)

    if lock_feet:
        with stage("foot contacts"):
            quats, root_translation, joints, _ = contact.clean_motion(joints, fps=fps, rest_offsets=offsets,
                                                                      anchor_root=not measured_root)

    return Motion(joints=joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=fps,
                  local_quats_wxyz=quats, root_translation=root_translation, rest_offsets=offsets)


def motion_from_points(points: np.ndarray, layout: str, *, fps: float, max_gap_s: float = 0.5,
                       cutoff_hz: float = 6.0, level: bool = True, lock_feet: bool = True,
                       calibrated_up: bool = False, up: np.ndarray | None = None,
                       frame: tuple[np.ndarray, np.ndarray] | None = None,
                       stage: Stage = _no_timer) -> tuple[Motion, np.ndarray, np.ndarray]:
    """Triangulated keypoints -> clean MOTION21 motion with IK (the monocular clean-up stages).

    Args:
        points: (T, J, 3) metres in the calibration's world, joints of ``layout``; NaN
            where not triangulated.
        level: the torso sets +Y; off: the calibration's +Y is kept. The feet set the floor.
        calibrated_up: the calibration's world holds gravity along one of its axes (a file's:
            a mocap system's, or a board's on the floor): with ``level``, the axis nearest the
            torso's median axis is up, when within :data:`mocap.cleanup.world.AXIS_SNAP_DEG`
            (:func:`mocap.cleanup.world.nearest_axis_up`), so a person who leans keeps their lean.
        up: (3,) gravity's up in the calibration's world when known otherwise (the rooms' vertical
            lines: :func:`mocap.fit.scene.rig_up`); with ``level`` it is used as it is.
        frame: (rotation (3, 3), offset (3,)) of another person of the same capture (what this
            function returned for them): their world is kept (its up, floor and origin), so that
            the people of one capture share one world; ``level``, ``up`` and the feet do not
            move it then.
    Returns:
        (Motion (+Y up, feet on y = 0), rotation (3, 3), offset (3,)) with
        ``motion.joints = calibration_world @ rotation.T + offset``.
    """
    with stage("smooth"):
        joints = smooth_points(points, layout, fps=fps, max_gap_s=max_gap_s, cutoff_hz=cutoff_hz)
    with stage("world frame"):
        if frame is not None:  # another person's world: one capture, one world
            rot, offset = np.asarray(frame[0], dtype=np.float64), np.asarray(frame[1], dtype=np.float64)
            joints = joints @ rot.T + offset
        else:
            if up is None or not level:
                up = world.nearest_axis_up(joints) if calibrated_up and level else None
            joints, rot, offset = world.level_and_ground(joints, level=level, up=up)
    return motion_from_world_joints(joints, fps=fps, lock_feet=lock_feet, measured_root=True, stage=stage), rot, offset
