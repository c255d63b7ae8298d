"""Gravity, the camera and the support surfaces of a monocular clip, before the joint fit.

Everything here works on the lifted pose in the camera frame (x right, y down, z forward,
metres) and is a pure array function:

* :func:`center_of_mass`: the body's centre of mass from MOTION21 joints (segment masses).
* :func:`estimate_up`: gravity in camera axes. A person who stands still keeps the centre of
  mass over the feet that carry them, whatever their torso does, so the direction from the
  planted feet to the centre of mass, over the quasi-static frames, is "up"; a clip with no
  such frame keeps a level camera. The clip's median torso axis is never used: a person who
  leans most of the time would be stood upright.
* :func:`world_from_camera`: the rotation from camera axes to the world (+Y up, the camera
  looking along -Z in yaw) for an up direction, and the camera's pitch and roll.
* :func:`support_surfaces`: the heights the planted feet rest on (the floor, a box, a
  stair), one per cluster of contact heights.
"""
from __future__ import annotations

import numpy as np

from mocap.cleanup.contact import CONTACT_POINTS, foot_contacts
from mocap.cleanup.filters import true_runs
from mocap.skeletons import MOTION21

#: Segment mass fractions of an adult body (Winter's anthropometric tables, rounded), each
#: segment between two MOTION21 joints (its centre taken halfway), summing to 1.
SEGMENT_MASSES: tuple[tuple[str, str, float], ...] = (
    ("neck", "head", 0.081),
    ("pelvis", "neck", 0.497),
    *[(f"{s}_{a}", f"{s}_{b}", m) for s in ("left", "right") for a, b, m in (
        ("shoulder", "elbow", 0.028), ("elbow", "wrist", 0.016), ("wrist", "wrist", 0.006),
        ("hip", "knee", 0.100), ("knee", "ankle", 0.0465), ("heel", "foot_index", 0.0145))],
)

_CAMERA_UP = np.array([0.0, -1.0, 0.0])  # a level camera: image up is world up


def _com_matrix() -> np.ndarray:
    m = np.zeros(MOTION21.num_joints)
    for a, b, w in SEGMENT_MASSES:
        m[MOTION21.index(a)] += w / 2
        m[MOTION21.index(b)] += w / 2
    return m


COM_WEIGHTS = _com_matrix()  # (21,) weights of the joints in the centre of mass; sum 1


def center_of_mass(joints: np.ndarray) -> np.ndarray:
    """(..., 21, 3) MOTION21 joints, metres -> (..., 3) the centre of mass (:data:`SEGMENT_MASSES`)."""
    x = np.asarray(joints, dtype=np.float64)
    if x.shape[-2:] != (MOTION21.num_joints, 3):
        raise ValueError(f"joints must have shape (..., {MOTION21.num_joints}, 3), got {x.shape}")
    return np.einsum("j,...jk->...k", COM_WEIGHTS, x)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def world_from_camera(up_cam: np.ndarray) -> np.ndarray:
    """(3, 3) rotation from camera axes to world axes for gravity ``up_cam`` (3,) in camera axes.

    World +Y is ``up_cam``; world -Z is the camera's viewing direction projected on the
    horizontal plane (so a level camera gives :data:`mocap.cleanup.world.CAMERA_TO_WORLD`).
    ``world = R @ camera``.
    """
    y = _unit(np.asarray(up_cam, dtype=np.float64))
    forward = np.array([0.0, 0.0, 1.0])
    horizontal = forward - (forward @ y) * y
    if np.linalg.norm(horizontal) < 1e-6:  # looking straight down or up: keep image up as -Z
        horizontal = np.array([0.0, -1.0, 0.0]) - y[1] * y
    z = -_unit(horizontal)
    return np.stack([np.cross(y, z), y, z])


def camera_pitch_roll(world_from_cam: np.ndarray) -> tuple[float, float]:
    """(pitch, roll) in radians of a camera whose axes map to the world by ``world_from_cam`` (3, 3).

    Pitch: the optical axis below the horizontal (positive looking down). Roll: the turn
    about the optical axis that lifts the image's right side (0: the image x axis is horizontal);
    the camera is ``roll`` after ``pitch`` after a level camera.
    """
    r = np.asarray(world_from_cam, dtype=np.float64)
    forward, right, down = r[:, 2], r[:, 0], r[:, 1]
    return float(-np.arcsin(np.clip(forward[1], -1, 1))), float(np.arctan2(right[1], -down[1]))


def quasi_static(joints: np.ndarray, contacts: np.ndarray, *, fps: float, max_com_accel: float = 3.0) -> np.ndarray:
    """(T,) bool: frames with a foot point planted and a centre of mass that hardly accelerates
    (under ``max_com_accel`` m/s^2): there the centre of mass is over the planted feet.

    Args:
        joints: (T, 21, 3) MOTION21 joints, metres, any frame; contacts: (T, 4) bool.
    """
    com = center_of_mass(joints)
    accel = np.zeros(len(com))
    if len(com) >= 3:
        accel = np.linalg.norm(np.gradient(np.gradient(com, axis=0), axis=0), axis=-1) * fps * fps
    return np.asarray(contacts, bool).any(1) & (accel < max_com_accel)


def estimate_up(joints_cam: np.ndarray, *, fps: float, iterations: int = 3, min_frames: int = 5,
                max_com_accel: float = 3.0) -> tuple[np.ndarray, int]:
    """Gravity in camera axes from where the body's weight rests.

    Starting from a level camera (image up), per iteration: the feet's contacts in the frame
    that this up defines (:func:`mocap.cleanup.contact.foot_contacts`), then, over the frames
    with a foot planted and a centre of mass that hardly accelerates (under
    ``max_com_accel`` m/s^2), the mean direction from the planted foot points to the centre
    of mass.

    Args:
        joints_cam: (T, 21, 3) MOTION21 joints in the camera frame (root included), metres,
            NaN-free.
        fps: frames per second.
    Returns:
        (up (3,) unit vector in camera axes, number of frames it rests on); the level
        camera's up (0, -1, 0) and 0 when fewer than ``min_frames`` frames qualify.
    """
    x = np.asarray(joints_cam, dtype=np.float64)
    up, used = _CAMERA_UP.copy(), 0
    com = center_of_mass(x)
    idx = [MOTION21.index(n) for n in CONTACT_POINTS]
    for _ in range(iterations):
        to_world = world_from_camera(up)
        contacts = foot_contacts(x @ to_world.T, fps=fps, speed_m_s=0.5)
        still = quasi_static(x, contacts, fps=fps, max_com_accel=max_com_accel)
        if still.sum() < min_frames:
            return (up, used) if used else (_CAMERA_UP.copy(), 0)
        pts = x[:, idx]
        w = contacts[still].astype(np.float64)
        support = (w[..., None] * pts[still]).sum(1) / w.sum(1, keepdims=True)
        up = _unit(_unit(com[still] - support).mean(0))
        used = int(still.sum())
    return up, used


def support_surfaces(heights: np.ndarray, contacts: np.ndarray, *, gap_m: float = 0.15,
                     min_frames: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Group the contact runs by the height they rest at: one surface per cluster.

    Args:
        heights: (T, 4) world heights (y, metres) of the contact points (:data:`CONTACT_POINTS`).
        contacts: (T, 4) bool.
        gap_m: runs whose median heights differ by more than this are on different surfaces.
    Returns:
        (surface heights (S,) metres ascending, surface index (T, 4) int: -1 where not in contact).
    """
    h = np.asarray(heights, dtype=np.float64)
    c = np.asarray(contacts, bool)
    runs = [(k, a, b, float(np.nanmedian(h[a:b, k]))) for k in range(c.shape[1]) for a, b in true_runs(c[:, k])
            if b - a >= min_frames and np.isfinite(h[a:b, k]).any()]
    index = -np.ones(c.shape, int)
    if not runs:
        return np.zeros(0), index
    order = sorted(range(len(runs)), key=lambda i: runs[i][3])
    clusters: list[list[int]] = [[order[0]]]
    for i in order[1:]:
        if runs[i][3] - runs[clusters[-1][-1]][3] > gap_m:
            clusters.append([])
        clusters[-1].append(i)
    surfaces = []
    for s, members in enumerate(clusters):
        weights = np.array([runs[i][2] - runs[i][1] for i in members], dtype=np.float64)
        surfaces.append(float(np.average([runs[i][3] for i in members], weights=weights)))
        for i in members:
            k, a, b, _ = runs[i]
            index[a:b, k] = s
    return np.array(surfaces), index
