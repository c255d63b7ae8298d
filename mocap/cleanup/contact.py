"""Feet on the ground: contact detection, ground plane, planted-foot locking, joint limits.

Every function is a pure array function (metres, seconds, +Y up, MOTION21 joint names).

* :func:`foot_contacts` labels each foot point (heel, toe) as touching the ground from its
  height above the ground (or above the lowest foot point of the frame) and its speed.
* :func:`fit_ground_plane` fits a plane to the points in contact (robust least squares).
* :func:`lock_feet` anchors planted feet: the root follows the planted foot (so depth noise
  of a monocular capture no longer drags the foot along the floor or lifts it off), the
  planted foot lies on y = 0, and two-bone IK (:func:`mocap.kinematics.limbs.two_bone_ik`)
  removes what is left (double support).
* :func:`clamp_hinge_joints` keeps knees and elbows inside their flexion range.
* :func:`clean_motion` composes them: contacts -> lock -> IK -> limits -> FK.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.cleanup.filters import butterworth, true_runs
from mocap.kinematics.limbs import two_bone_ik
from mocap.rotations import axis_angle_to_quat_wxyz
from mocap.skeletons import MOTION21, Skeleton

#: Foot points whose contact is detected, in this order (columns of :func:`foot_contacts`).
CONTACT_POINTS: tuple[str, ...] = ("left_heel", "left_foot_index", "right_heel", "right_foot_index")
#: Per side: (hip, knee, ankle, heel, toe).
LEGS: dict[str, tuple[str, ...]] = {
    s: (f"{s}_hip", f"{s}_knee", f"{s}_ankle", f"{s}_heel", f"{s}_foot_index") for s in ("left", "right")
}
#: Hinge axis of each joint's local rotation in the MOTION21 rest frame, positive = flexion
#: (knees flex backwards, elbows forwards; see :mod:`mocap.kinematics.ik`).
HINGE_AXES: dict[str, tuple[float, float, float]] = {
    "left_knee": (1.0, 0.0, 0.0), "right_knee": (1.0, 0.0, 0.0),
    "left_elbow": (0.0, -1.0, 0.0), "right_elbow": (0.0, 1.0, 0.0),
}


def _joints(joints: np.ndarray) -> np.ndarray:
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"joints must have shape (T, J, 3), got {x.shape}")
    return x


def clean_runs(mask: np.ndarray, min_frames: int) -> np.ndarray:
    """Fill False gaps shorter than ``min_frames`` inside contact, then drop shorter True runs."""
    out = mask.copy()
    for a, b in true_runs(~out):
        if a > 0 and b < len(out) and b - a < min_frames:
            out[a:b] = True
    for a, b in true_runs(out):
        if b - a < min_frames:
            out[a:b] = False
    return out


def foot_contacts(joints: np.ndarray, *, fps: float, skeleton: Skeleton = MOTION21,
                  ground_height: float | np.ndarray | None = None, height_m: float = 0.04,
                  speed_m_s: float = 1.0, min_frames: int = 3) -> np.ndarray:
    """Which foot points touch the ground, per frame.

    A point is in contact when its height is below ``height_m`` and its speed below
    ``speed_m_s``; runs shorter than ``min_frames`` (and gaps between runs shorter than
    that) are removed.

    Args:
        joints: (T, J, 3) metres, +Y up.
        fps: frames per second (for speeds).
        ground_height: the floor's height, scalar or (T,) metres. ``None``: heights are
            measured from the lowest foot point of each frame, so a capture whose feet float
            above y = 0 (monocular depth noise) still gets its contacts.
        height_m, speed_m_s: thresholds. The default speed is generous because monocular
            root noise moves planted feet by up to ~1 m/s.
    Returns:
        (T, 4) bool, columns :data:`CONTACT_POINTS`; False where a point is NaN.
    """
    x = _joints(joints)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    idx = [skeleton.index(n) for n in CONTACT_POINTS]
    pts = x[:, idx]
    y = pts[..., 1]
    if ground_height is None:
        ankles = x[:, [skeleton.index("left_ankle"), skeleton.index("right_ankle")], 1]
        low = np.nanmin(np.concatenate([y, ankles], 1), axis=1)
        h = y - low[:, None]
    else:
        h = y - np.broadcast_to(np.asarray(ground_height, dtype=np.float64), (len(x),))[:, None]
    if len(x) > 1:
        speed = np.linalg.norm(np.gradient(pts, axis=0), axis=-1) * fps
    else:
        speed = np.zeros(y.shape)
    with np.errstate(invalid="ignore"):
        raw = (h < height_m) & (speed < speed_m_s) & np.isfinite(h) & np.isfinite(speed)
    return np.stack([clean_runs(raw[:, k], min_frames) for k in range(raw.shape[1])], 1)


def foot_contacts_per_side(contacts: np.ndarray) -> np.ndarray:
    """(T, 4) point contacts -> (T, 2) bool (left, right): heel or toe down."""
    c = np.asarray(contacts, bool)
    return np.stack([c[:, 0] | c[:, 1], c[:, 2] | c[:, 3]], 1)


def fit_ground_plane(points: np.ndarray, *, iterations: int = 5, inlier_m: float = 0.03) -> tuple[np.ndarray, float]:
    """Plane ``normal . p + offset = 0`` through ``points`` (N, 3) by iteratively trimmed least squares.

    Returns:
        (normal (3,) unit with normal[1] >= 0, offset) in metres. Needs 3 finite points.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    p = p[np.isfinite(p).all(-1)]
    if len(p) < 3:
        raise ValueError(f"need at least 3 finite contact points to fit a ground plane, got {len(p)}")
    keep = np.ones(len(p), bool)
    for _ in range(iterations):
        c = p[keep].mean(0)
        _, s, vt = np.linalg.svd(p[keep] - c, full_matrices=False)
        n = vt[-1] if s[1] > 1e-9 else np.array([0.0, 1.0, 0.0])  # collinear points: assume level
        n = n if n[1] >= 0 else -n
        d = -float(n @ c)
        res = np.abs(p @ n + d)
        new = res < max(inlier_m, 2.5 * np.median(res[keep]))
        if new.sum() < 3 or np.array_equal(new, keep):
            break
        keep = new
    return n, d


@dataclass(frozen=True)
class LockResult:
    """What :func:`lock_feet` did: joints (T, J, 3), root offset added (T, 3), contacts (T, 2)."""

    joints: np.ndarray
    root_offset: np.ndarray
    contacts: np.ndarray


def lock_feet(joints: np.ndarray, contacts: np.ndarray, *, fps: float, skeleton: Skeleton = MOTION21,
              blend_frames: int = 4, anchor_root: bool = True, root_smooth_s: float = 0.33) -> LockResult:
    """Pin each foot during its contact runs and put planted feet on y = 0.

    For each contact run of a foot the whole foot (ankle, heel, toe) is frozen in the pose
    of the run's first frame, lowered or raised so its lowest point is on y = 0.
    With ``anchor_root`` the whole body is shifted each frame so that the planted foot
    (in double support: the one planted first) stays at its anchor (the root trajectory is re-derived from the feet: right for
    monocular captures whose root depth is noise); the shift is held through flight
    (horizontal) and interpolated (vertical). What remains (both feet planted) is
    removed with :func:`~mocap.kinematics.limbs.two_bone_ik`, blended in and out over
    ``blend_frames``. The root shift is low-passed (zero-phase second-order Butterworth,
    :func:`mocap.cleanup.filters.butterworth`, cutoff ``1 / (2 root_smooth_s)`` Hz) so that
    it adds no jitter; the leg IK still pins the planted foot exactly. Swing feet that would
    dip below y = 0 are lifted onto it with the same IK.

    Args:
        joints: (T, J, 3) metres, +Y up, NaN-free.
        contacts: (T, 2) bool per side (left, right), or (T, 4) per point
            (:data:`CONTACT_POINTS`).
        fps: frames per second.
        root_smooth_s: time scale of the root shift's low-pass in seconds; one frame or
            less: no low-pass.
    Returns:
        :class:`LockResult`; bone lengths of the legs and feet are kept.
    """
    x = _joints(joints)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not np.isfinite(x).all():
        raise ValueError("lock_feet needs NaN-free joints; fill gaps first (mocap.cleanup.filters.fill_gaps)")
    c = np.asarray(contacts, bool)
    if c.shape == (len(x), 4):
        c = foot_contacts_per_side(c)
    if c.shape != (len(x), 2):
        raise ValueError(f"contacts must have shape ({len(x)}, 2) or ({len(x)}, 4), got {c.shape}")
    t = len(x)
    legs = [[skeleton.index(n) for n in LEGS[s]] for s in ("left", "right")]
    runs = [true_runs(c[:, k]) for k in range(2)]
    run_id = -np.ones((t, 2), int)
    for k in range(2):
        for r, (a, b) in enumerate(runs[k]):
            run_id[a:b, k] = r

    # 1. Root offset: horizontal integrated from the planted feet, vertical puts them on y = 0.
    offset = np.zeros((t, 3))
    anchors: list[dict[int, np.ndarray]] = [{}, {}]  # per side: run index -> (3, 3) ankle, heel, toe
    known_y = np.full(t, np.nan)
    prev = np.zeros(3)
    for f in range(t):
        active = sorted(((runs[k][run_id[f, k]][0], k, run_id[f, k]) for k in range(2) if run_id[f, k] >= 0))
        if not active:
            offset[f] = prev
            continue
        # The foot planted first carries the body; a foot landing now is anchored where the
        # body (shifted by the carrying foot's offset) puts it, lowered onto y = 0.
        carried = [(k, r) for _, k, r in active if r in anchors[k]]
        cur = anchors[carried[0][0]][carried[0][1]][0] - x[f, legs[carried[0][0]][2]] if carried else prev
        for _, k, r in active:
            if r not in anchors[k]:
                foot = x[f, legs[k][2:]] + (cur if anchor_root else 0.0)
                foot[:, 1] -= foot[:, 1].min()
                anchors[k][r] = foot
        if not carried:
            k, r = active[0][1:]
            cur = anchors[k][r][0] - x[f, legs[k][2]]
        offset[f] = prev = cur
        known_y[f] = cur[1]
    if anchor_root:
        have = np.isfinite(known_y)
        if have.any():
            offset[:, 1] = np.interp(np.arange(t), np.flatnonzero(have), known_y[have])
        if root_smooth_s * fps > 1 and t > 6:
            offset = butterworth(offset, fps=fps, cutoff_hz=0.5 / root_smooth_s, order=2)
    else:
        offset[:] = 0.0
    out = x + offset[:, None, :]

    # 2. Leg IK onto the anchors, with the foot frozen, blended around each run.
    for k in range(2):
        hip, knee, ankle, heel, toe = legs[k]
        weight = np.zeros(t)
        delta_foot = np.zeros((t, 3, 3))
        for r, (a, b) in enumerate(runs[k]):
            foot = anchors[k][r] if anchor_root else _ground_foot(x[a, [ankle, heel, toe]])
            delta_foot[a:b] = foot[None] - out[a:b][:, [ankle, heel, toe]]
            weight[a:b] = 1.0
            for i in range(1, blend_frames + 1):  # fade the last/first correction out
                w = 1.0 - i / (blend_frames + 1)
                for g, src in ((b - 1 + i, b - 1), (a - i, a)):
                    if 0 <= g < t and run_id[g, k] < 0 and w > weight[g]:
                        weight[g] = w
                        delta_foot[g] = foot - out[src, [ankle, heel, toe]]
        sel = (weight > 0) | (out[:, [ankle, heel, toe], 1].min(1) < 0)
        if not sel.any():
            continue
        w = weight[sel, None]
        target_foot = out[sel][:, [ankle, heel, toe]] + w[..., None] * delta_foot[sel]
        # A foot below the ground (swinging, or blending out of a lock) is raised onto it.
        target_foot[..., 1] += np.clip(-target_foot[..., 1].min(1), 0.0, None)[:, None]
        forward = target_foot[:, 2] - target_foot[:, 1]  # heel -> toe
        new_knee, new_ankle = two_bone_ik(out[sel, hip], out[sel, knee], out[sel, ankle], target_foot[:, 0],
                                          pole_hint=forward)
        # Heel and toe keep their bone lengths around the new ankle.
        for col, j in ((1, heel), (2, toe)):
            v = target_foot[:, col] - target_foot[:, 0]
            length = np.linalg.norm(x[sel, j] - x[sel, ankle], axis=-1, keepdims=True)
            v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12) * length
            out[sel, j] = new_ankle + v
        out[sel, knee] = new_knee
        out[sel, ankle] = new_ankle
    return LockResult(joints=out, root_offset=offset, contacts=c)


def _ground_foot(foot: np.ndarray) -> np.ndarray:
    f = foot.copy()
    f[:, 1] -= f[:, 1].min()
    return f


def clamp_hinge_joints(local_quats_wxyz: np.ndarray, *, skeleton: Skeleton = MOTION21,
                       limits_deg: dict[str, tuple[float, float]] | None = None) -> np.ndarray:
    """Knees and elbows as pure hinges inside their flexion range.

    Each hinge joint's local rotation is replaced by its twist about the hinge axis
    (:data:`HINGE_AXES`), with the angle clipped to ``limits_deg[name]`` (default 0 to
    150 degrees: no hyperextension, no folding through the thigh).

    Args:
        local_quats_wxyz: (T, J, 4) local rotations (w, x, y, z).
    Returns:
        (T, J, 4) float64; joints other than the hinges unchanged.
    """
    q = np.array(local_quats_wxyz, dtype=np.float64)
    if q.ndim != 3 or q.shape[2] != 4:
        raise ValueError(f"local_quats_wxyz must have shape (T, J, 4), got {q.shape}")
    limits = limits_deg or {name: (0.0, 150.0) for name in HINGE_AXES}
    for name, (lo, hi) in limits.items():
        if name not in HINGE_AXES:
            raise ValueError(f"no hinge axis for {name!r}; hinge joints: {', '.join(HINGE_AXES)}")
        if name not in skeleton.joint_names:
            continue
        j = skeleton.index(name)
        axis = np.array(HINGE_AXES[name])
        w, v = q[:, j, 0], q[:, j, 1:]
        angle = 2.0 * np.arctan2(v @ axis, w)
        angle = (angle + np.pi) % (2 * np.pi) - np.pi
        angle = np.clip(angle, np.radians(lo), np.radians(hi))
        q[:, j] = axis_angle_to_quat_wxyz(angle[:, None] * axis)
    return q


def clean_motion(joints: np.ndarray, *, fps: float, rest_offsets: np.ndarray, skeleton: Skeleton = MOTION21,
                 height_m: float = 0.04, speed_m_s: float = 1.0, blend_frames: int = 4,
                 anchor_root: bool = True, root_smooth_s: float = 0.33, joint_limits: bool = True,
                 contacts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Contacts, planted-foot locking, IK, joint limits and FK in one call.

    Args:
        joints: (T, J, 3) metres, +Y up, NaN-free, MOTION21 order.
        rest_offsets: (J, 3) metres (the subject's bones; joints should have these lengths).
        contacts: (T, 4) or (T, 2) bool to use instead of detecting them.
        root_smooth_s: low-pass time scale of the root shift (see :func:`lock_feet`).
    Returns:
        local_quats_wxyz (T, J, 4), root_translation (T, 3), joints (T, J, 3) from FK,
        contacts (T, 4) bool (detected on the input, or as given expanded to 4 columns).
    """
    from mocap.kinematics.ik import forward_kinematics, inverse_kinematics

    x = _joints(joints)
    parents = np.asarray(skeleton.parents)
    if contacts is None:
        contacts = foot_contacts(x, fps=fps, skeleton=skeleton, height_m=height_m, speed_m_s=speed_m_s)
    contacts = np.asarray(contacts, bool)
    if contacts.shape == (len(x), 2):
        contacts = np.repeat(contacts, 2, axis=1)
    locked = lock_feet(x, contacts, fps=fps, skeleton=skeleton, blend_frames=blend_frames, anchor_root=anchor_root,
                       root_smooth_s=root_smooth_s).joints
    quats, root = inverse_kinematics(locked, parents=parents, rest_offsets=rest_offsets, skeleton=skeleton)
    if joint_limits:
        quats = clamp_hinge_joints(quats, skeleton=skeleton)
    return quats, root, forward_kinematics(quats, root, rest_offsets, parents), contacts

