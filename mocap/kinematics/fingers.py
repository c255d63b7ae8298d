"""Finger kinematics: the hand's orientation from the palm, flexion and spread per finger joint.

The motion skeleton with fingers is :data:`mocap.skeletons.MOTION61` (MOTION21 and each hand's
20 finger joints). Rotations follow :mod:`mocap.kinematics.ik`: world axes, rest-relative
(the identity everywhere is the rest pose: a T-pose with the palms down, fingers straight),
``global[j] = global[parent] * local[j]``, and the rotation of a joint moves its children.

Per hand (all frames world, metres):

* the **wrist**: the global rotation that best turns the rest offsets wrist -> index, middle,
  ring and pinky knuckles (MCP) onto the observed ones (weighted Kabsch,
  :func:`mocap.kinematics.ik.kabsch_rotations`); its local rotation is relative to the forearm.
* each **finger joint** (thumb CMC, MCP, IP; finger MCP, PIP, DIP) rotates the bone to its
  child. In the parent's frame the rest bone has direction ``u``; ``n`` is the palm normal
  (the back of the hand -> the palm, -Y at rest) made perpendicular to ``u``, and
  ``t = side * (n x u)`` points towards the thumb's side (``side`` +1 left, -1 right). The
  rotation is a flexion by ``flex`` about ``u x n`` (positive: towards the palm) followed by a
  spread by ``spread`` about ``side * n`` (positive: towards the thumb), so the bone's direction
  in the parent's frame is ``cos(flex) (cos(spread) u + sin(spread) t) + sin(flex) n``; no
  twist about the bone. Two joints per finger have two degrees of freedom (thumb CMC, finger
  MCP: flexion and spread); the others are hinges (flexion only: the observed direction is
  projected onto the hinge's plane).

Angles are radians in arrays ``(T, 2, 15, 2)``: frames, hand (left, right), joint
(:data:`FINGER_DOF_JOINTS`), (flex, spread) (spread 0 for a hinge); NaN where a hand or a joint
is missing. Anatomical limits: :data:`FINGER_LIMITS_DEG`, applied by
:func:`clamp_finger_angles`. The 3D hand from the hand network's output in the image:
:func:`hand_points_camera`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.camera import Camera
from mocap.kinematics.ik import kabsch_rotations
from mocap.rotations import axis_angle_to_quat_wxyz, matrix_to_quat_wxyz, quat_multiply_wxyz, quat_wxyz_to_matrix
from mocap.skeletons import FINGER_JOINTS, HAND21, Skeleton, rest_positions

#: the articulated finger joints of one hand, in order (each rotates the bone to its child)
FINGER_DOF_JOINTS = ("thumb_cmc", "thumb_mcp", "thumb_ip", "index_finger_mcp", "index_finger_pip",
                     "index_finger_dip", "middle_finger_mcp", "middle_finger_pip", "middle_finger_dip",
                     "ring_finger_mcp", "ring_finger_pip", "ring_finger_dip", "pinky_mcp", "pinky_pip", "pinky_dip")
#: the knuckles whose offsets from the wrist fix the hand's orientation
PALM_JOINTS = ("index_finger_mcp", "middle_finger_mcp", "ring_finger_mcp", "pinky_mcp")
#: Anatomical range per joint, degrees: ((flex min, flex max), (spread min, spread max)); spread
#: (0, 0) for a hinge. Flexion is positive towards the palm, spread towards the thumb. Active
#: ranges of motion of adult hands, rounded (finger MCP -30..90, PIP -5..110, DIP -15..90); the
#: thumb's are approximate, its joints being modelled in the palm's plane.
FINGER_LIMITS_DEG: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "thumb_cmc": ((-20.0, 60.0), (-30.0, 45.0)), "thumb_mcp": ((-10.0, 60.0), (0.0, 0.0)),
    "thumb_ip": ((-20.0, 80.0), (0.0, 0.0)),
    **{f"{f}_{j}": lim for f in ("index_finger", "middle_finger", "ring_finger", "pinky")
       for j, lim in (("mcp", ((-30.0, 90.0), (-25.0, 25.0))), ("pip", ((-5.0, 110.0), (0.0, 0.0))),
                      ("dip", ((-15.0, 90.0), (0.0, 0.0))))},
}
_TWO_DOF = ("thumb_cmc", "index_finger_mcp", "middle_finger_mcp", "ring_finger_mcp", "pinky_mcp")
SIDES = ("left", "right")
_PALM_IDX = [HAND21.index(f"{f}_mcp") for f in ("index_finger", "middle_finger", "ring_finger", "pinky")]
_TIP_IDX = [HAND21.index(f"{f}_tip") for f in ("index_finger", "middle_finger", "ring_finger", "pinky")]


@dataclass(frozen=True, eq=False)
class HandPlan:
    """What the finger kinematics needs of a skeleton with fingers and its rest pose.

    Build it with :func:`plan_hands`. Index arrays are joints of the skeleton; H = 2 hands
    (left, right), K = 15 finger joints (:data:`FINGER_DOF_JOINTS`).

    Attributes:
        wrists: (H,) the wrists; forearms: (H,) their parents (the elbows).
        palm: (H, 4) the knuckles of :data:`PALM_JOINTS`; palm_rest: (H, 4, 3) unit rest
            directions wrist -> knuckle; palm_lengths: (H, 4) metres.
        joints, parents, children, grandchildren: (H, K) each finger joint, its parent, its
            child and its child's child.
        frames: (H, K, 3, 3) rows ``u``, ``t``, ``n`` (module docstring) in world rest axes.
        side: (H,) +1 left, -1 right.
        two_dof: (K,) bool: flexion and spread (else a hinge).
        limits: (K, 2, 2) radians: (flex min, max), (spread min, max).
        hand_points: (H, 21) the skeleton joints of each hand's HAND21 points (wrist first).
    """

    wrists: np.ndarray
    forearms: np.ndarray
    palm: np.ndarray
    palm_rest: np.ndarray
    palm_lengths: np.ndarray
    joints: np.ndarray
    parents: np.ndarray
    children: np.ndarray
    grandchildren: np.ndarray
    frames: np.ndarray
    side: np.ndarray
    two_dof: np.ndarray
    limits: np.ndarray
    hand_points: np.ndarray


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 1e-12, n, 1.0)


def plan_hands(skeleton: Skeleton, rest_offsets: np.ndarray) -> HandPlan:
    """The :class:`HandPlan` of a skeleton with both hands' fingers (e.g. MOTION61).

    Args:
        skeleton: names ``<side>_wrist`` and ``<side>_hand_<joint>`` for every joint of
            :data:`mocap.skeletons.FINGER_JOINTS`.
        rest_offsets: (J, 3) metres, offset of each joint from its parent in the rest pose
            (palms down, fingers straight along the arm).
    """
    off = np.asarray(rest_offsets, dtype=np.float64)
    if skeleton.parents is None or off.shape != (skeleton.num_joints, 3):
        raise ValueError(f"{skeleton.name} needs parents and rest_offsets of shape ({skeleton.num_joints}, 3), "
                         f"got {off.shape}")
    missing = [f"{s}_hand_{j}" for s in SIDES for j in FINGER_JOINTS if f"{s}_hand_{j}" not in skeleton.joint_names]
    if missing:
        raise ValueError(f"{skeleton.name} has no finger joints ({', '.join(missing[:3])}, ...); use MOTION61")
    par = np.asarray(skeleton.parents)
    pos = rest_positions(off, par)
    wrists = np.array([skeleton.index(f"{s}_wrist") for s in SIDES])
    idx = np.array([[skeleton.index(f"{s}_hand_{j}") for j in FINGER_DOF_JOINTS] for s in SIDES])
    children = np.array([[skeleton.children(j)[0] for j in row] for row in idx])
    grandchildren = np.array([[(skeleton.children(j) or [j])[0] for j in row] for row in children])  # tips: themselves
    palm = np.array([[skeleton.index(f"{s}_hand_{j}") for j in PALM_JOINTS] for s in SIDES])
    palm_vec = pos[palm] - pos[wrists][:, None]
    side = np.array([1.0, -1.0])
    normal = np.array([0.0, -1.0, 0.0])  # the palm's normal at rest: palms down
    u = _unit(off[children])
    n = _unit(normal - (u @ normal)[..., None] * u)
    t = side[:, None, None] * np.cross(n, u)
    limits = np.radians(np.array([FINGER_LIMITS_DEG[j] for j in FINGER_DOF_JOINTS]))
    plan = HandPlan(wrists=wrists, forearms=par[wrists], palm=palm, palm_rest=_unit(palm_vec),
                    palm_lengths=np.linalg.norm(palm_vec, axis=-1), joints=idx, parents=par[idx], children=children,
                    grandchildren=grandchildren,
                    frames=np.stack([u, t, n], -2), side=side, two_dof=np.array([j in _TWO_DOF for j in FINGER_DOF_JOINTS]),
                    limits=limits,
                    hand_points=np.array([[skeleton.index(f"{s}_wrist")] + [skeleton.index(f"{s}_hand_{j}")
                                                                             for j in HAND21.joint_names[1:]]
                                          for s in SIDES]))
    for a in vars(plan).values():
        a.flags.writeable = False
    return plan


def palm_rotmats(plan: HandPlan, joints: np.ndarray) -> np.ndarray:
    """Global wrist rotations (T, 2, 3, 3) from the palm: the weighted Kabsch fit of the rest
    offsets wrist -> knuckles onto the observed ones (weights: rest length times observed length).

    Args:
        joints: (T, J, 3) world metres of the plan's skeleton; NaN where missing.
    Returns:
        (T, 2, 3, 3) float64 world-axis rest-relative rotations; NaN for a hand with its wrist
        or fewer than two knuckles missing.
    """
    x = _check_joints(joints)
    vec = x[:, plan.palm] - x[:, plan.wrists][:, :, None]  # (T, 2, 4, 3)
    ok = np.isfinite(vec).all(-1)
    length = np.linalg.norm(np.where(ok[..., None], vec, 0.0), axis=-1)
    rot, determined = kabsch_rotations(plan.palm_rest, _unit(np.where(ok[..., None], vec, 0.0)),
                                       ok * length * plan.palm_lengths)
    good = determined & (ok.sum(-1) >= 2)
    return np.where(good[..., None, None], rot, np.nan)


def _angles_of(d: np.ndarray, frames: np.ndarray, two_dof: np.ndarray, side: np.ndarray,
               d_next: np.ndarray | None = None) -> np.ndarray:
    """(..., 3) unit directions in the parent's frame -> (..., 2) (flex, spread) radians.

    A two-degree-of-freedom joint's spread comes from its bone's direction and, given the next
    bone's direction ``d_next``, from the plane the two bones bend in (its normal is the next
    joint's hinge axis, which the spread turns about the palm normal): the two estimates are
    averaged with weights |projection of the bone onto the palm plane|^2 and sin^2(next bend),
    so a finger bent 90 degrees at its knuckle (bone along the palm normal, direction spread
    undefined) takes its spread from its curl.
    """
    u, t, n = frames[..., 0, :], frames[..., 1, :], frames[..., 2, :]
    du, dt, dn = (np.sum(d * v, -1) for v in (u, t, n))
    two = np.broadcast_to(two_dof, du.shape)
    flex = np.where(two, np.arctan2(dn, np.hypot(du, dt)), np.arctan2(dn, du))
    spread = np.arctan2(dt, du)
    if d_next is not None:
        axis0 = np.cross(u, n)  # the rest flexion axis, turned by the spread about side * n
        m = np.cross(d, d_next)
        s_hinge = np.arctan2(np.sum(m * np.cross(side[..., None] * n, axis0), -1), np.sum(m * axis0, -1))
        s_hinge = np.where(np.abs(s_hinge) > np.pi / 2, s_hinge - np.pi * np.sign(s_hinge), s_hinge)  # within +-90
        w_dir, w_hinge = du * du + dt * dt, np.sum(m * m, -1) - np.sum(m * n, -1) ** 2
        spread = np.arctan2(w_dir * np.sin(spread) + w_hinge * np.sin(s_hinge),
                            w_dir * np.cos(spread) + w_hinge * np.cos(s_hinge))
    return np.stack([flex, np.where(two, spread, np.where(np.isnan(flex), np.nan, 0.0))], -1)


def _rotmats_of(angles: np.ndarray, frames: np.ndarray, side: np.ndarray) -> np.ndarray:
    """(..., 2) (flex, spread) radians -> (..., 3, 3) local rotations (flex about u x n, then
    spread about side * n), with ``frames`` (..., 3, 3) and ``side`` broadcast."""
    u, n = frames[..., 0, :], frames[..., 2, :]
    flex = axis_angle_to_quat_wxyz(np.cross(u, n) * angles[..., :1])
    spread = axis_angle_to_quat_wxyz(side[..., None] * n * angles[..., 1:])
    return quat_wxyz_to_matrix(quat_multiply_wxyz(spread, flex))


def finger_angles(plan: HandPlan, joints: np.ndarray, wrist_rotmats: np.ndarray) -> np.ndarray:
    """Flexion and spread of every finger joint from joint positions.

    Each joint's angles come from its bone's observed direction in its parent's frame, that
    frame being built from the wrist rotation and the angles found up the finger (a hinge's
    direction is projected onto its plane). No limits here (:func:`clamp_finger_angles`).

    Args:
        joints: (T, J, 3) world metres of the plan's skeleton; NaN where missing.
        wrist_rotmats: (T, 2, 3, 3) global wrist rotations (:func:`palm_rotmats`).
    Returns:
        (T, 2, 15, 2) float64 radians (flex, spread) per hand and :data:`FINGER_DOF_JOINTS`;
        NaN where the joint, its child or an ancestor's rotation is missing.
    """
    x = _check_joints(joints)
    g_wrist = np.asarray(wrist_rotmats, dtype=np.float64)
    t = x.shape[0]
    if g_wrist.shape != (t, 2, 3, 3):
        raise ValueError(f"wrist_rotmats must have shape ({t}, 2, 3, 3), got {g_wrist.shape}")
    d = _unit(x[:, plan.children] - x[:, plan.joints])  # (T, 2, K, 3)
    d_next = _unit(x[:, plan.grandchildren] - x[:, plan.children])
    out = np.full((t, 2, len(FINGER_DOF_JOINTS), 2), np.nan)
    glob = {int(w): g_wrist[:, h] for h, w in enumerate(plan.wrists)}
    for k in range(len(FINGER_DOF_JOINTS)):  # parents come first in FINGER_DOF_JOINTS
        for h in range(2):
            g_par = glob[int(plan.parents[h, k])]
            local_d = np.einsum("tji,tj->ti", g_par, d[:, h, k])  # G^T d
            local_next = np.einsum("tji,tj->ti", g_par, d_next[:, h, k]) if plan.two_dof[k] else None
            a = _angles_of(local_d, plan.frames[h, k], plan.two_dof[k], plan.side[h], local_next)
            out[:, h, k] = a
            glob[int(plan.joints[h, k])] = g_par @ _rotmats_of(np.nan_to_num(a), plan.frames[h, k], plan.side[h])
            glob[int(plan.joints[h, k])][~np.isfinite(a).all(-1)] = np.nan
    return out


def clamp_finger_angles(plan: HandPlan, angles: np.ndarray) -> np.ndarray:
    """(T, 2, 15, 2) radians clipped to the plan's anatomical limits (NaN stays NaN)."""
    a = np.asarray(angles, dtype=np.float64)
    return np.clip(a, plan.limits[..., 0], plan.limits[..., 1])


def hand_local_quats(plan: HandPlan, local_quats_wxyz: np.ndarray, wrist_local_rotmats: np.ndarray,
                     angles: np.ndarray) -> np.ndarray:
    """A copy of ``local_quats_wxyz`` with the wrists' and the finger joints' local rotations set.

    Args:
        local_quats_wxyz: (T, J, 4) local rotations (w, x, y, z) of the plan's skeleton.
        wrist_local_rotmats: (T, 2, 3, 3) the wrists' rotations relative to their forearms.
        angles: (T, 2, 15, 2) radians (flex, spread), e.g. clamped.
    Returns:
        (T, J, 4) float64; NaN where the given rotations or angles are NaN (fill them first
        for a file: motion.npz holds finite rotations).
    """
    q = np.array(local_quats_wxyz, dtype=np.float64)
    a = np.asarray(angles, dtype=np.float64)
    t = q.shape[0]
    if a.shape != (t, 2, len(FINGER_DOF_JOINTS), 2):
        raise ValueError(f"angles must have shape ({t}, 2, {len(FINGER_DOF_JOINTS)}, 2), got {a.shape}")
    q[:, plan.wrists] = matrix_to_quat_wxyz(np.asarray(wrist_local_rotmats, dtype=np.float64))
    rot = _rotmats_of(a, plan.frames, plan.side[:, None])
    q[:, plan.joints] = matrix_to_quat_wxyz(rot)
    return q


def wrist_local_rotmats(plan: HandPlan, forearm_global_rotmats: np.ndarray, wrist_rotmats: np.ndarray) -> np.ndarray:
    """(T, 2, 3, 3) the wrists' local rotations: ``forearm^T @ wrist`` from global rotations
    (T, 2, 3, 3) of the forearms (the elbows' joints) and of the wrists."""
    f = np.asarray(forearm_global_rotmats, dtype=np.float64)
    return np.swapaxes(f, -1, -2) @ np.asarray(wrist_rotmats, dtype=np.float64)


def hand_points_camera(keypoints_px: np.ndarray, world_m: np.ndarray, camera: Camera) -> np.ndarray:
    """One hand's 3D points in the camera frame from the hand network's 2D and world landmarks.

    The world landmarks ``W`` give the hand's shape in metres (camera axes, their origin
    anywhere); the 2D points give where it is seen. Each point is put on its pixel's ray at
    depth ``Z0 + (W_i - W_wrist)_z``, so the result reprojects exactly onto the 2D points through
    ``camera`` (its distortion removed first); the wrist's depth ``Z0`` is the one whose points'
    offsets from the wrist best match the shape's (linear least squares, exact for a perfect
    shape under full perspective).

    Args:
        keypoints_px: (..., 21, 2) pixels, HAND21 order; NaN where missing.
        world_m: (..., 21, 3) metres, camera axes (x right, y down, z away from the camera).
        camera: the camera that saw them (its intrinsics and distortion are used).
    Returns:
        (..., 21, 3) float64 metres in the camera frame; NaN for a hand with a missing point.
    """
    uv = np.asarray(keypoints_px, dtype=np.float64)
    w = np.asarray(world_m, dtype=np.float64)
    if uv.shape[-2:] != (HAND21.num_joints, 2) or w.shape != uv.shape[:-1] + (3,):
        raise ValueError(f"keypoints_px must be (..., 21, 2) and world_m (..., 21, 3), got {uv.shape} and {w.shape}")
    k = camera.K
    ideal = camera.undistort_pixels(uv) if np.any(camera.dist) else uv
    xn = (ideal[..., 0] - k[0, 2] - k[0, 1] * (ideal[..., 1] - k[1, 2]) / k[1, 1]) / k[0, 0]
    yn = (ideal[..., 1] - k[1, 2]) / k[1, 1]
    ray = np.stack([xn, yn, np.ones_like(xn)], -1)  # (..., 21, 3): the point at depth 1 on each pixel's ray
    dz = w[..., 2] - w[..., :1, 2]
    # P_i - P_0 = Z0 (ray_i - ray_0) + dz_i ray_i should equal W_i - W_0: linear least squares in Z0
    a = ray - ray[..., :1, :]
    c = (w - w[..., :1, :]) - dz[..., None] * ray
    bad = ~(np.isfinite(a).all((-1, -2)) & np.isfinite(c).all((-1, -2)))
    a, c = np.where(bad[..., None, None], 0.0, a), np.where(bad[..., None, None], 0.0, c)
    num, den = np.sum(a * c, (-1, -2)), np.sum(a * a, (-1, -2))
    z0 = num / np.where(den > 0, den, 1.0)
    bad |= ~(z0 > 0)
    depth = z0[..., None] + dz
    out = ray * depth[..., None]
    return np.where(bad[..., None, None], np.nan, out)


def hand_curl_chirality(points: np.ndarray) -> np.ndarray:
    """How the fingers curl relative to the hand's handedness: (..., 21, 3) HAND21 points (any
    frame, metres) -> (...) float.

    With ``c`` the unit normal ``(index MCP - wrist) x (pinky MCP - wrist)`` (the back of a left
    hand, the palm of a right one), the sum over the four fingers of ``(tip - MCP) . c``, over the
    wrist -> middle MCP length: negative for a left hand whose fingers curl towards its palm,
    positive for a right hand; near 0 for a flat hand. A mirror image (e.g. depth read the wrong
    way round, which leaves the 2D unchanged) flips the sign. NaN where a point is missing.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-2:] != (HAND21.num_joints, 3):
        raise ValueError(f"points must have shape (..., 21, 3), got {p.shape}")
    normal = _unit(np.cross(p[..., _PALM_IDX[0], :] - p[..., 0, :], p[..., _PALM_IDX[3], :] - p[..., 0, :]))
    curl = np.sum((p[..., _TIP_IDX, :] - p[..., _PALM_IDX, :]) * normal[..., None, :], axis=(-1, -2))
    return curl / np.linalg.norm(p[..., _PALM_IDX[1], :] - p[..., 0, :], axis=-1)


def unmirror_hands(world_m: np.ndarray, *, threshold: float = 0.5, forearms_cam: np.ndarray | None = None,
                   forearm_margin_deg: float = 30.0) -> np.ndarray:
    """Both hands' world landmarks with the depth of a mirrored hand turned back.

    The hand network sometimes reads a hand's depth the wrong way round (a left hand seen from
    the back looks like a right hand seen from the palm; the 2D is the same). Where a hand's
    :func:`hand_curl_chirality` says it curls like the other side's hand by more than
    ``threshold``, its z is mirrored about its mean. A hand whose curl says nothing (flat) is
    judged by its forearm, where given: mirrored when the mirror image's direction wrist ->
    middle knuckle lies more than ``forearm_margin_deg`` degrees closer to the forearm's
    direction than its own (a hand pointing at the camera, read pointing back along the
    forearm). (The forearm overruling the curl too was tried: better on the synthetic hands,
    worse on the anny renders.)

    Args:
        world_m: (..., 2, 21, 3) metres, camera axes (z away from the camera); left hand, then right.
        forearms_cam: (..., 2, 3) elbow -> wrist directions in camera axes, or None.
    Returns:
        (..., 2, 21, 3) float64.
    """
    w = np.array(world_m, dtype=np.float64)
    if w.shape[-3:] != (2, HAND21.num_joints, 3):
        raise ValueError(f"world_m must have shape (..., 2, 21, 3), got {w.shape}")
    chirality = hand_curl_chirality(w) * np.array([-1.0, 1.0])  # > 0: curls as its own side's hand
    flip = chirality < -threshold
    if forearms_cam is not None:
        fa = _unit(np.asarray(forearms_cam, dtype=np.float64))
        d = _unit(w[..., _PALM_IDX[1], :] - w[..., 0, :])
        with np.errstate(invalid="ignore"):
            bend = np.degrees(np.arccos(np.clip(np.sum(d * fa, -1), -1.0, 1.0)))
            bend_mirrored = np.degrees(np.arccos(np.clip(np.sum(d * [1.0, 1.0, -1.0] * fa, -1), -1.0, 1.0)))
        flip |= (np.abs(chirality) <= threshold) & (bend_mirrored < bend - forearm_margin_deg)
    z = w[..., 2]
    w[..., 2] = np.where(flip[..., None], 2 * z.mean(-1, keepdims=True) - z, z)
    return w


def _check_joints(joints: np.ndarray) -> np.ndarray:
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"joints must have shape (T, J, 3), got {x.shape}")
    return x
