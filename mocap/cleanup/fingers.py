"""Finger motion: the captured hands turned into wrist and finger rotations on the body's motion.

:func:`motion_with_fingers` takes the body's motion (MOTION21, with IK) and the hand network's
output (2D points, world landmarks, confidence; ``hands42``), and returns the motion on
:data:`mocap.skeletons.MOTION61`. Per hand and frame: the 3D hand in the camera frame
(:func:`mocap.kinematics.fingers.hand_points_camera`: the network's shape, placed on the 2D
points through the camera), turned into the world by the camera's rotation and put at the
body's wrist; then the wrist's rotation from the palm and each finger joint's flexion and
spread (:mod:`mocap.kinematics.fingers`). Over time the angles and the wrist's rotation are
gap-filled (gaps up to ``max_gap_s``) and low-passed (``cutoff_hz``), then held outside the
frames they could be filled in; the angles are clipped to the anatomical limits last. A hand
never seen keeps the rest pose (open, in line with the forearm). ``hand_valid`` says which
frames had each hand.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mocap.bones import estimate_bone_lengths, rest_offsets_with_lengths
from mocap.camera import Camera, intrinsic_matrix
from mocap.cleanup import filters
from mocap.cleanup.world import CAMERA_TO_WORLD
from mocap.formats import Motion
from mocap.kinematics import fingers as fk
from mocap.kinematics.ik import forward_kinematics, forward_kinematics_with_rotations
from mocap.rotations import matrix_to_quat_wxyz, quat_continuous_wxyz, quat_normalize_wxyz, quat_wxyz_to_matrix
from mocap.skeletons import HAND21, MOTION21, MOTION61, rest_offsets


@dataclass(frozen=True)
class FingerOptions:
    """The finger stage's settings (the keyword arguments of :func:`motion_with_fingers`).

    Attributes:
        min_confidence: a hand whose presence score is below this counts as not seen.
        max_gap_s: gaps (hand not seen) up to this long are interpolated, seconds.
        cutoff_hz: low-pass cutoff of the finger angles and the wrist rotation, Hz.
        unmirror: turn back hands whose depth the network read mirrored (by how the fingers curl).
    """

    min_confidence: float = 0.5
    max_gap_s: float = 0.3
    cutoff_hz: float = 8.0
    unmirror: bool = True


def level_camera(focal_px: float, image_size: tuple[int, int]) -> Camera:
    """The camera the unfitted capture assumes: at the world origin, level (its axes x right,
    y down, z forward: world +X, -Y, -Z), principal point at the image centre, no distortion."""
    w, h = image_size
    return Camera(name="level", size=(int(w), int(h)), K=intrinsic_matrix(float(focal_px), (w / 2.0, h / 2.0)),
                  R=CAMERA_TO_WORLD.T.copy(), t=np.zeros(3), dist=np.zeros(5))


def hand_joints_world(hand_keypoints: np.ndarray, hand_world: np.ndarray, hand_confidence: np.ndarray,
                      wrists: np.ndarray, camera: Camera, *, min_confidence: float = 0.5,
                      unmirror: bool = True, elbows: np.ndarray | None = None) -> np.ndarray:
    """Both hands' 21 points in the world, each hand placed at the body's wrist.

    Args:
        hand_keypoints: (T, 42, 2) pixels, hands42 (left hand, then right); NaN where missing.
        hand_world: (T, 42, 3) metres, the network's world landmarks, camera axes.
        hand_confidence: (T, 42) in [0, 1].
        wrists: (T, 2, 3) world metres, the body's left and right wrists.
        camera: the camera that saw the hands (world -> camera).
        unmirror: turn back a hand whose depth the network read mirrored
            (:func:`mocap.kinematics.fingers.unmirror_hands`; a flat hand by its forearm, given
            ``elbows`` (T, 2, 3) world metres).
    Returns:
        (T, 2, 21, 3) float64 world metres (+Y up), HAND21 order; NaN for a hand not seen
        (confidence below ``min_confidence`` or a point missing).
    """
    t = len(hand_keypoints)
    j = HAND21.num_joints
    kp = np.asarray(hand_keypoints, dtype=np.float64).reshape(t, 2, j, 2)
    wl = np.asarray(hand_world, dtype=np.float64).reshape(t, 2, j, 3)
    conf = np.nan_to_num(np.asarray(hand_confidence, dtype=np.float64)).reshape(t, 2, j)
    if unmirror:
        forearms = None if elbows is None else (np.asarray(wrists, dtype=np.float64) - elbows) @ camera.R.T
        wl = fk.unmirror_hands(wl, forearms_cam=forearms)
    cam = fk.hand_points_camera(kp, wl, camera)  # (T, 2, 21, 3)
    rel_world = (cam - cam[:, :, :1]) @ camera.R  # camera -> world axes: R^T v, row vectors
    seen = (conf >= min_confidence).all(-1)[..., None, None]
    return np.where(seen, np.asarray(wrists, dtype=np.float64)[:, :, None] + rel_world, np.nan)


def _smooth(x: np.ndarray, *, fps: float, max_gap_s: float, cutoff_hz: float) -> np.ndarray:
    """Gap-filled and low-passed over time (axis 0), NaN where the gap was too long."""
    return filters.lowpass(filters.fill_gaps(x, fps=fps, max_gap_s=max_gap_s), fps=fps, cutoff_hz=cutoff_hz)


def motion_with_fingers(motion: Motion, hand_keypoints: np.ndarray, hand_world: np.ndarray,
                        hand_confidence: np.ndarray, camera: Camera, *,
                        options: FingerOptions = FingerOptions()) -> Motion:
    """``motion`` (MOTION21 with IK) on MOTION61, its wrists and fingers moved by the captured hands.

    Args:
        motion: the body, MOTION21, with ``local_quats_wxyz``, ``root_translation`` and
            ``rest_offsets``; world metres, +Y up.
        hand_keypoints: (T, 42, 2) pixels, hand_world (T, 42, 3) metres, hand_confidence
            (T, 42): the hands of the motion's T frames (:mod:`mocap.detect2d.hands`).
        camera: the camera in the motion's world (the fit's solved camera, or
            :func:`level_camera`).
    Returns:
        Motion of MOTION61: the body's joints and rotations unchanged except the wrists'
        local rotations; finger rest offsets scaled to the captured hands (medians over the
        clip, left and right averaged); ``hand_valid`` (T, 2).
    """
    o = options
    _check_body(motion)
    t = motion.num_frames
    if np.shape(hand_keypoints) != (t, 42, 2) or np.shape(hand_world) != (t, 42, 3):
        raise ValueError(f"hand_keypoints must be ({t}, 42, 2) and hand_world ({t}, 42, 3), got "
                         f"{np.shape(hand_keypoints)} and {np.shape(hand_world)}")
    plan = fk.plan_hands(MOTION61, rest_offsets(MOTION61))
    hands = hand_joints_world(hand_keypoints, hand_world, hand_confidence, motion.joints[:, plan.wrists], camera,
                              min_confidence=o.min_confidence, unmirror=o.unmirror,
                              elbows=motion.joints[:, plan.forearms])  # (T, 2, 21, 3)
    return motion_with_hand_points(motion, hands, options=o)


def _check_body(motion: Motion) -> None:
    if tuple(motion.joint_names) != MOTION21.joint_names or motion.local_quats_wxyz is None:
        raise ValueError("the fingers need a MOTION21 motion with IK (local_quats_wxyz); "
                         f"got joints {motion.joint_names[:3]}...")


def hands_at_wrists(hands: np.ndarray, wrists: np.ndarray) -> np.ndarray:
    """(T, 2, 21, 3) hands (HAND21 order, any placement) moved so that each hand's wrist point is
    at ``wrists`` (T, 2, 3): only the hands' shapes and directions are kept (e.g. triangulated
    hands onto a body whose bones were made constant). NaN stays NaN."""
    h = np.asarray(hands, dtype=np.float64)
    return h - h[:, :, :1] + np.asarray(wrists, dtype=np.float64)[:, :, None]


def fill_hands(hands: np.ndarray, candidates: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each hand missing from ``hands`` (T, 2, 21, 3) in a frame (a NaN point) taken from the
    candidate (of C: ``candidates`` (C, T, 2, 21, 3), e.g. each camera's own monocular hand,
    :func:`hand_joints_world`) with the highest ``scores`` (C, T, 2) among those that have it.

    Returns:
        (the hands (T, 2, 21, 3) float64, still NaN where no candidate has them; (T, 2) bool,
        the hands taken from a candidate).
    """
    out = np.array(hands, dtype=np.float64)
    cand = np.asarray(candidates, dtype=np.float64)
    has = np.isfinite(cand).all((-1, -2))  # (C, T, 2)
    best = np.argmax(np.where(has, np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-1.0), -np.inf), axis=0)
    pick = np.take_along_axis(cand, best[None, ..., None, None], axis=0)[0]  # (T, 2, 21, 3)
    filled = ~np.isfinite(out).all((-1, -2)) & has.any(0)
    out[filled] = pick[filled]
    return out, filled


def motion_with_hand_points(motion: Motion, hands: np.ndarray, *, options: FingerOptions = FingerOptions()) -> Motion:
    """``motion`` (MOTION21 with IK) on MOTION61, its wrists and fingers turned to match
    ``hands`` (T, 2, 21, 3): both hands' points in the motion's world, metres, HAND21 order
    (left hand, then right), each at the body's wrist (:func:`hand_joints_world`,
    :func:`hands_at_wrists`); a hand NaN in a frame is not seen there. The rest as
    :func:`motion_with_fingers` (``options``: its gap filling and smoothing)."""
    o = options
    _check_body(motion)
    t = motion.num_frames
    if np.shape(hands) != (t, 2, HAND21.num_joints, 3):
        raise ValueError(f"hands must be ({t}, 2, {HAND21.num_joints}, 3), got {np.shape(hands)}")
    hands = np.asarray(hands, dtype=np.float64)
    body_off = motion.rest_offsets if motion.rest_offsets is not None else rest_offsets(MOTION21)
    _, glob_q = forward_kinematics_with_rotations(motion.local_quats_wxyz, motion.root_translation, body_off,
                                                  MOTION21.parents)
    glob = quat_wxyz_to_matrix(glob_q)
    default_off = rest_offsets(MOTION61)
    default_off[:21] = body_off
    plan = fk.plan_hands(MOTION61, default_off)
    seen = np.isfinite(hands).all((-1, -2))  # (T, 2)
    hands = np.where(seen[..., None, None], hands, np.nan)
    observed = np.full((t, MOTION61.num_joints, 3), np.nan)
    observed[:, :21] = motion.joints
    observed[:, plan.hand_points.reshape(-1)] = hands.reshape(t, -1, 3)

    # the subject's finger bones: median lengths, left and right averaged; the default where never seen
    lengths = estimate_bone_lengths(observed, MOTION61.parents, left_right=MOTION61.left_right)
    lengths[:21] = np.nan  # the body's own offsets stay
    off = rest_offsets_with_lengths(default_off, lengths)
    off[:21] = body_off
    plan = fk.plan_hands(MOTION61, off)

    wrist_global = fk.palm_rotmats(plan, observed)
    angles = fk.finger_angles(plan, observed, wrist_global)
    wrist_local = fk.wrist_local_rotmats(plan, glob[:, plan.forearms], wrist_global)
    smooth = dict(fps=motion.fps, max_gap_s=o.max_gap_s, cutoff_hz=o.cutoff_hz)
    wq = quat_continuous_wxyz(matrix_to_quat_wxyz(wrist_local), axis=0)
    wq = quat_normalize_wxyz(filters.hold_nearest(_smooth(wq, **smooth)))
    angles = fk.clamp_finger_angles(plan, filters.hold_nearest(_smooth(angles, **smooth)))
    never = ~seen.any(0)  # (2,) a hand never seen: the rest pose
    wq[:, never] = np.array([1.0, 0.0, 0.0, 0.0])
    angles[:, never] = 0.0
    angles = np.nan_to_num(angles)  # a joint never seen on a seen hand: straight
    wq = np.where(np.isfinite(wq).all(-1, keepdims=True), wq, np.array([1.0, 0.0, 0.0, 0.0]))

    local = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (t, MOTION61.num_joints, 1))
    local[:, :21] = motion.local_quats_wxyz
    local = fk.hand_local_quats(plan, local, quat_wxyz_to_matrix(wq), angles)
    local = quat_continuous_wxyz(local, axis=0)
    joints = forward_kinematics(local, motion.root_translation, off, MOTION61.parents)
    for h in range(2):  # the fingers hang on the motion's own wrists (FK of the body may differ slightly)
        joints[:, plan.hand_points[h, 1:]] += (motion.joints[:, plan.wrists[h]] - joints[:, plan.wrists[h]])[:, None]
    joints[:, :21] = motion.joints
    return replace(motion, joints=joints, joint_names=MOTION61.joint_names, parents=MOTION61.parents,
                   local_quats_wxyz=local, rest_offsets=off, hand_valid=seen)


def angles_of_motion(motion: Motion) -> np.ndarray:
    """(T, 2, 15, 2) radians: the finger flexion and spread that a MOTION61 motion's joints show
    (:func:`mocap.kinematics.fingers.finger_angles` of its positions, the wrists from its palms)."""
    plan = fk.plan_hands(MOTION61, motion.rest_offsets)
    return fk.finger_angles(plan, motion.joints, fk.palm_rotmats(plan, motion.joints))
