"""Synthetic clips with known truth for the fitting stage (issue 21): motion, camera, 2D.

Pure numpy. World frame as everywhere: metres, +Y up, ground at y = 0, the rest pose faces +Z
with its left on +X. Cameras: ``x_cam = R @ X + t`` with camera axes x right, y down, z forward
(:mod:`mocap.camera`).

* :func:`virtual_camera`: a static camera at a known height, distance, pitch, yaw and roll.
* :func:`camera_angles`: (pitch, roll, height) of a camera, the same convention back.
* :func:`project_clip`: MOTION21 world joints -> :class:`mocap.formats.Keypoints2D`
  (``mediapipe33``, all 33 points: the face from a head frame, the hand from the forearm).
* Motions built from the MOTION21 rest pose by forward kinematics of hand-set rotations, each a
  :class:`SyntheticClip` with the contact truth of :data:`mocap.cleanup.contact.CONTACT_POINTS`
  and the height of the surface under each planted point: :func:`leaning_stand`,
  :func:`jumping_in_place`, :func:`step_down_from_box`, :func:`jump_down_from_box`, :func:`walking`;
  :func:`place` turns and moves one, :func:`view_clip` films one. Planted heels and toes lie exactly on their support surface (the feet are
  flat: heel and toe at one height).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.camera import Camera, intrinsic_matrix
from mocap.cleanup.contact import CONTACT_POINTS
from mocap.formats import Keypoints2D
from mocap.kinematics.ik import forward_kinematics
from mocap.rotations import axis_rotation_matrix, matrix_to_quat_wxyz, quat_multiply_wxyz
from mocap.skeletons import MEDIAPIPE33, MOTION21, rest_offsets as default_rest_offsets

GRAVITY_M_S2 = 9.81
_J = {n: i for i, n in enumerate(MOTION21.joint_names)}
_ARM_DOWN_RAD = np.radians(75.0)  # arms hang this far down from the T-pose
#: (left, up, forward) offsets in metres from the head joint (mid-ears) of face points, in a frame
#: whose up is neck -> head and forward the nose (measured on CMU take 02_01 for eyes and ears).
_FACE = {"left_eye": (0.039, 0.039, 0.082), "left_eye_inner": (0.024, 0.039, 0.086),
         "left_eye_outer": (0.054, 0.037, 0.075), "left_ear": (0.075, 0.0, 0.0), "mouth_left": (0.025, -0.045, 0.085)}
#: Hand points: (metres along the forearm beyond the wrist, metres sideways, thumb side negative).
_HAND = {"index": (0.09, 0.01), "pinky": (0.08, 0.03), "thumb": (0.05, -0.03)}


@dataclass(frozen=True)
class SyntheticClip:
    """One person's known motion.

    Attributes:
        joints: (T, 21, 3) MOTION21 world metres.
        local_quats_wxyz: (T, 21, 4) local rotations (w, x, y, z) that give ``joints`` by
            :func:`mocap.kinematics.ik.forward_kinematics` with ``root_translation``, ``rest_offsets``.
        root_translation: (T, 3) metres.
        rest_offsets: (21, 3) metres.
        contacts: (T, 4) bool, :data:`CONTACT_POINTS` (left heel, left toe, right heel, right toe) planted.
        support_m: (T, 4) height of the surface under each planted point, metres; NaN where not planted.
        fps: frames per second.
    """

    joints: np.ndarray
    local_quats_wxyz: np.ndarray
    root_translation: np.ndarray
    rest_offsets: np.ndarray
    contacts: np.ndarray
    support_m: np.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])


# --- cameras --------------------------------------------------------------------------------------
def virtual_camera(pitch_deg: float, height_m: float, distance_m: float, focal_px: float,
                   size: tuple[int, int] = (1920, 1080), yaw_deg: float = 0.0, roll_deg: float = 0.0,
                   target: tuple[float, float] = (0.0, 0.0), name: str = "virtual") -> Camera:
    """A static pinhole camera (no distortion, principal point at the image centre).

    It stands ``height_m`` above the ground and ``distance_m`` from ``target`` (x, z) on the
    ground plane, on the side given by ``yaw_deg`` (0: on +Z of the target, facing a person who
    faces +Z; positive turns the camera's place counter-clockwise seen from above, towards +X),
    looks horizontally towards the target, then down by ``pitch_deg`` (the optical axis is not
    aimed at the person: the subject may sit off the image centre), then turns the image by
    ``roll_deg`` about the optical axis (positive: the image turns clockwise, as
    ``lifting.augment.look_at``).

    Args:
        pitch_deg: degrees below the horizon of the optical axis.
        height_m, distance_m: metres.
        focal_px: focal length, pixels.
        size: (width, height) pixels.
    Returns:
        :class:`mocap.camera.Camera` with ``R`` world -> camera and ``t`` metres.
    """
    yaw, pitch, roll = np.radians([yaw_deg, pitch_deg, roll_deg])
    position = np.array([target[0] + distance_m * np.sin(yaw), height_m, target[1] + distance_m * np.cos(yaw)])
    ahead = -np.array([np.sin(yaw), 0.0, np.cos(yaw)])  # horizontal, towards the target
    right = np.cross(ahead, [0.0, 1.0, 0.0])
    forward = np.cos(pitch) * ahead + np.sin(pitch) * np.array([0.0, -1.0, 0.0])
    down = np.cross(forward, right)
    x = np.cos(roll) * right + np.sin(roll) * down
    y = -np.sin(roll) * right + np.cos(roll) * down
    r = np.stack([x, y, forward])
    k = intrinsic_matrix(float(focal_px), (size[0] / 2.0, size[1] / 2.0))
    return Camera(name=name, size=(int(size[0]), int(size[1])), K=k, R=r, t=-r @ position, dist=np.zeros(5))


def camera_angles(camera: Camera) -> tuple[float, float, float]:
    """(pitch_deg, roll_deg, height_m) of ``camera`` in :func:`virtual_camera`'s convention:
    pitch positive looking down, roll positive turning the image clockwise, height above y = 0."""
    r = camera.R
    pitch = np.degrees(np.arcsin(np.clip(-r[2, 1], -1.0, 1.0)))
    roll = np.degrees(np.arctan2(-r[0, 1], -r[1, 1]))
    return float(pitch), float(roll), float(camera.position[1])


# --- 2D keypoints ---------------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def mediapipe33_from_motion21(joints: np.ndarray, face: np.ndarray | None = None) -> np.ndarray:
    """(T, 21, 3) MOTION21 world metres -> (T, 33, 3) MediaPipe landmarks whose mapping back to
    MOTION21 (:data:`mocap.skeletons.MAPPINGS`) gives the body joints (and the head) again.

    Face points sit at fixed offsets in a head frame (up: neck -> head, forward: the nose);
    hand points along the forearm beyond the wrist.

    Args:
        face: optional (T, 4, 3) world metres of left eye, right eye, left ear, right ear (the
            CMU keypoints' last four) used instead of the head-frame estimate.
    """
    x = np.asarray(joints, dtype=np.float64)
    out = np.full(x.shape[:-2] + (33, 3), np.nan)
    for n, j in _J.items():
        if n in MEDIAPIPE33.joint_names:
            out[..., MEDIAPIPE33.index(n), :] = x[..., j, :]
    head = x[..., _J["head"], :]
    up = _unit(head - x[..., _J["neck"], :])
    fwd = x[..., _J["nose"], :] - head
    fwd = _unit(fwd - (fwd * up).sum(-1, keepdims=True) * up)
    left = np.cross(up, fwd)
    for name, (a, b, c) in _FACE.items():
        for side, sign in (("left", 1.0), ("right", -1.0)):
            out[..., MEDIAPIPE33.index(name.replace("left", side)), :] = head + sign * a * left + b * up + c * fwd
    if face is not None:
        for k, name in enumerate(("left_eye", "right_eye", "left_ear", "right_ear")):
            out[..., MEDIAPIPE33.index(name), :] = face[..., k, :]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        wrist = x[..., _J[f"{side}_wrist"], :]
        along = _unit(wrist - x[..., _J[f"{side}_elbow"], :])
        across = _unit(np.cross(along, [0.0, 1.0, 0.0]) + 1e-6)
        for name, (a, b) in _HAND.items():
            out[..., MEDIAPIPE33.index(f"{side}_{name}"), :] = wrist + a * along + sign * b * across
    return out


def project_clip(joints_world: np.ndarray, camera: Camera, *, noise_px: float = 0.0,
                 rng: np.random.Generator | None = None, fps: float = 30.0, blank_first: int = 0,
                 face: np.ndarray | None = None, far_side_confidence: float | None = None,
                 drop_outside: bool = True) -> Keypoints2D:
    """MOTION21 world joints seen by ``camera``: ``mediapipe33`` keypoints as a detector gives them.

    Args:
        joints_world: (T, 21, 3) MOTION21 world metres.
        camera: a :class:`mocap.camera.Camera` (e.g. :func:`virtual_camera`).
        noise_px: standard deviation of Gaussian noise added to each pixel coordinate.
        rng: random generator for the noise (default: seeded 0).
        fps: frames per second of the clip.
        blank_first: the first this many frames have no detection (NaN, confidence 0).
        face: (T, 4, 3) eyes and ears, see :func:`mediapipe33_from_motion21`.
        far_side_confidence: if given, the confidence of points more than 0.1 m further from
            the camera than the torso's centre (the far side of the body); otherwise 1.
        drop_outside: points outside the image become NaN with confidence 0.
    Returns:
        Keypoints2D with keypoints (T, 33, 2) float32 pixels, confidence (T, 33), the camera's image size.
    """
    x = np.asarray(joints_world, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (MOTION21.num_joints, 3):
        raise ValueError(f"joints_world must have shape (T, 21, 3), got {x.shape}")
    rng = rng if rng is not None else np.random.default_rng(0)
    points = mediapipe33_from_motion21(x, face)
    px = camera.project(points)
    if noise_px:
        px = px + rng.normal(0.0, noise_px, px.shape)
    conf = np.isfinite(px).all(-1).astype(np.float64)
    if far_side_confidence is not None:
        depth = camera.world_to_camera(points)[..., 2]
        torso = [MEDIAPIPE33.index(n) for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder")]
        far = depth > depth[:, torso].mean(1, keepdims=True) + 0.1
        conf = np.where(far, conf * far_side_confidence, conf)
    if drop_outside:
        w, h = camera.size
        inside = (px[..., 0] >= 0) & (px[..., 0] < w) & (px[..., 1] >= 0) & (px[..., 1] < h)
        conf = np.where(inside, conf, 0.0)
    if blank_first:
        conf[:blank_first] = 0.0
    px = np.where(conf[..., None] > 0, px, np.nan)
    return Keypoints2D(keypoints=px.astype(np.float32), confidence=conf.astype(np.float32), layout="mediapipe33",
                       image_size=camera.size, fps=float(fps))


# --- motions -------------------------------------------------------------------------------------
def _rx(angle: np.ndarray) -> np.ndarray:
    return axis_rotation_matrix(np.asarray(angle, dtype=np.float64), "X")


def _body(scale: float) -> dict[str, float | np.ndarray]:
    """Lengths of the scaled rest pose and the ankle's local rotation that makes the foot flat."""
    off = default_rest_offsets() * scale
    heel, toe = off[_J["left_heel"]], off[_J["left_foot_index"]]
    flat = np.arctan2(toe[1] - heel[1], toe[2] - heel[2])  # about +X: brings heel and toe level
    ankle_height = -(_rx(flat) @ heel)[1]
    return {"off": off, "thigh": np.linalg.norm(off[_J["left_knee"]]), "shin": np.linalg.norm(off[_J["left_ankle"]]),
            "hip_x": off[_J["left_hip"], 0], "flat": flat, "ankle_height": ankle_height}


def _leg_angles(hip_yz: np.ndarray, ankle_yz: np.ndarray, thigh: float, shin: float) -> tuple[np.ndarray, np.ndarray]:
    """Sagittal two-bone IK: (T, 2) (y, z) of hip and ankle -> thigh and shin angles from straight
    down, positive towards +Z (radians); the knee bends forwards, a target out of reach straightens it."""
    d = ankle_yz - hip_yz
    dist = np.clip(np.linalg.norm(d, axis=-1), abs(thigh - shin) + 1e-6, (thigh + shin) * (1 - 1e-12))
    phi = np.arctan2(d[:, 1], -d[:, 0])  # direction hip -> ankle from straight down, towards +Z
    a = phi + np.arccos(np.clip((thigh ** 2 + dist ** 2 - shin ** 2) / (2 * thigh * dist), -1, 1))
    knee = hip_yz + thigh * np.stack([-np.cos(a), np.sin(a)], -1)
    e = ankle_yz - knee
    c = np.arctan2(e[:, 1], -e[:, 0])
    return a, c


def _assemble(body: dict, pelvis: np.ndarray, ankles: np.ndarray, *, lean: np.ndarray | None = None,
              arm_swing: np.ndarray | None = None, contacts: np.ndarray, support: np.ndarray, fps: float) -> SyntheticClip:
    """Pose from a pelvis path (T, 3), ankle targets (T, 2, 3) (left, right; x ignored: under the
    hips), a forward torso lean (T,) radians about the pelvis and an arm swing (T,) radians."""
    t = len(pelvis)
    lean = np.zeros(t) if lean is None else lean
    arm_swing = np.zeros(t) if arm_swing is None else arm_swing
    rot = np.tile(np.eye(3), (t, 21, 1, 1))
    rot[:, 0] = _rx(lean)
    for k, side in enumerate(("left", "right")):
        a, c = _leg_angles(pelvis[:, 1:], ankles[:, k, 1:], body["thigh"], body["shin"])
        rot[:, _J[f"{side}_hip"]] = _rx(-lean) @ _rx(-a)  # legs in the world's sagittal plane, whatever the torso does
        rot[:, _J[f"{side}_knee"]] = _rx(a - c)
        rot[:, _J[f"{side}_ankle"]] = _rx(c + body["flat"])
        sign = 1.0 if side == "left" else -1.0
        down = axis_rotation_matrix(np.full(t, -sign * _ARM_DOWN_RAD), "Z")
        rot[:, _J[f"{side}_shoulder"]] = _rx(sign * arm_swing) @ down
    quats = matrix_to_quat_wxyz(rot)
    root = pelvis - body["off"][0]
    joints = forward_kinematics(quats, root, body["off"], MOTION21.parents)
    return SyntheticClip(joints=joints, local_quats_wxyz=quats, root_translation=root, rest_offsets=body["off"].copy(),
                         contacts=contacts, support_m=np.where(contacts, support, np.nan), fps=float(fps))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def leaning_stand(lean_deg: float = 20.0, seconds: float = 3.0, fps: float = 30.0, scale: float = 1.0) -> SyntheticClip:
    """A person standing still on y = 0, straight vertical legs, the torso (pelvis -> neck and
    everything above) leaning forwards (+Z) by ``lean_deg`` the whole clip; arms hanging.
    ``scale`` multiplies every bone length (1: about 1.75 m tall)."""
    body = _body(scale)
    t = int(round(seconds * fps))
    legs = body["thigh"] + body["shin"]
    pelvis = np.tile([0.0, body["ankle_height"] + legs, 0.0], (t, 1))
    ankles = np.tile([0.0, body["ankle_height"], 0.0], (t, 2, 1))
    return _assemble(body, pelvis, ankles, lean=np.full(t, np.radians(lean_deg)), contacts=np.ones((t, 4), bool),
                     support=np.zeros((t, 4)), fps=fps)


def jumping_in_place(jumps: int = 3, height_m: float = 0.25, fps: float = 30.0, scale: float = 1.0) -> SyntheticClip:
    """Jumps on the spot: per jump 0.4 s standing, a 0.35 s dip of 0.12 m, a ballistic flight
    that lifts the feet ``height_m``, a 0.35 s landing dip; 0.4 s standing at the end.
    Feet stay flat and at the same place; contacts are False only in flight."""
    body = _body(scale)
    stand_legs = 0.997 * (body["thigh"] + body["shin"])
    stand_y = body["ankle_height"] + stand_legs
    flight = 2 * np.sqrt(2 * height_m / GRAVITY_M_S2)
    v0 = np.sqrt(2 * GRAVITY_M_S2 * height_m)
    lift, planted = [], []
    for _ in range(jumps):
        for seconds, kind in ((0.4, "stand"), (0.35, "dip"), (flight, "fly"), (0.35, "dip")):
            n = max(1, int(round(seconds * fps)))
            s = (np.arange(n) + 0.5) / n
            if kind == "stand":
                lift.append(np.zeros(n))
            elif kind == "dip":
                lift.append(-0.12 * scale * np.sin(np.pi * s))
            else:
                tt = s * flight
                lift.append(v0 * tt - 0.5 * GRAVITY_M_S2 * tt ** 2)
            planted.append(np.full(n, kind != "fly"))
    n_end = int(round(0.4 * fps))
    lift, planted = np.concatenate(lift + [np.zeros(n_end)]), np.concatenate(planted + [np.ones(n_end, bool)])
    t = len(lift)
    pelvis = np.stack([np.zeros(t), stand_y + lift, np.zeros(t)], -1)
    feet_up = np.where(planted, 0.0, lift)
    ankles = np.stack([np.zeros(t), body["ankle_height"] + feet_up, np.zeros(t)], -1)[:, None].repeat(2, 1)
    return _assemble(body, pelvis, ankles, contacts=np.repeat(planted[:, None], 4, 1), support=np.zeros((t, 4)), fps=fps)


def step_down_from_box(box_height_m: float = 0.4, fps: float = 30.0, scale: float = 1.0) -> SyntheticClip:
    """Standing on a box (top at ``box_height_m``, front edge at z = 0.25 m) for 1 s, stepping
    forwards and down with the right foot (1 s, the left knee bending), bringing the left foot
    down beside it (0.8 s), standing on the floor 1 s. Two support levels: the box and y = 0."""
    body = _body(scale)
    ha, legs = body["ankle_height"], body["thigh"] + body["shin"]
    reach = 0.997 * legs
    n = [int(round(s * fps)) for s in (1.0, 1.0, 0.8, 1.0)]
    t = sum(n)
    land_z = 0.55 * scale
    ankles = np.zeros((t, 2, 3))
    on_box, on_floor = np.zeros((t, 2), bool), np.zeros((t, 2), bool)
    a0, a1, a2 = n[0], n[0] + n[1], n[0] + n[1] + n[2]
    ankles[:, :, 1] = box_height_m + ha
    on_box[:a0] = True
    s = (np.arange(n[1]) + 0.5) / n[1]
    # the right foot: forwards first, then down (it clears the box's edge), a small arc
    ankles[a0:a1, 1, 2] = land_z * _smoothstep(s / 0.7)
    ankles[a0:a1, 1, 1] = ha + box_height_m * (1 - _smoothstep((s - 0.35) / 0.6)) + 0.06 * np.sin(np.pi * s)
    ankles[a1:, 1, 1], ankles[a1:, 1, 2] = ha, land_z
    on_box[a0:a1, 0] = True
    on_floor[a1:, 1] = True
    s = (np.arange(n[2]) + 0.5) / n[2]
    ankles[a1:a2, 0, 2] = land_z * _smoothstep(s / 0.7)
    ankles[a1:a2, 0, 1] = ha + box_height_m * (1 - _smoothstep((s - 0.35) / 0.6)) + 0.06 * np.sin(np.pi * s)
    ankles[a2:, 0, 1], ankles[a2:, 0, 2] = ha, land_z
    on_floor[a2:, 0] = True
    # the pelvis: as high as both legs allow, moving forwards with the feet
    pz = np.concatenate([np.zeros(n[0]), 0.8 * land_z * _smoothstep((np.arange(n[1]) + 0.5) / n[1]),
                         land_z * (0.8 + 0.2 * _smoothstep((np.arange(n[2]) + 0.5) / n[2])), np.full(n[3], land_z)])
    dz = np.abs(ankles[:, :, 2] - pz[:, None])
    py = np.min(ankles[:, :, 1] + np.sqrt(np.maximum(reach ** 2 - dz ** 2, 0.0)), axis=1)
    pelvis = np.stack([np.zeros(t), py, pz], -1)
    contacts = np.repeat(on_box | on_floor, 2, axis=1)  # (left heel, left toe, right heel, right toe)
    support = np.repeat(np.where(on_box, box_height_m, 0.0), 2, axis=1)
    return _assemble(body, pelvis, ankles, contacts=contacts, support=support, fps=fps)


def jump_down_from_box(box_height_m: float = 0.4, forward_m: float = 0.5, fps: float = 30.0,
                       scale: float = 1.0) -> SyntheticClip:
    """Standing on a box (top at ``box_height_m``) for 1 s, a 0.35 s dip, a two-footed jump
    forwards (+Z) by ``forward_m`` and down to the floor (ballistic, 1 m/s up at take-off, legs
    straight), a 0.4 s landing dip of 0.15 m, 1 s standing. Supports: the box, then y = 0."""
    body = _body(scale)
    ha = body["ankle_height"]
    legs = 0.997 * (body["thigh"] + body["shin"])
    v0 = 1.0
    flight = (v0 + np.sqrt(v0 ** 2 + 2 * GRAVITY_M_S2 * box_height_m)) / GRAVITY_M_S2
    parts = {"box": int(round(fps)), "dip": int(round(0.35 * fps)), "fly": max(2, int(round(flight * fps))),
             "land": int(round(0.4 * fps)), "floor": int(round(fps))}
    base_y, pz, dip, planted_box, planted_floor = [], [], [], [], []
    for kind, n in parts.items():
        s = (np.arange(n) + 0.5) / n
        if kind == "fly":
            tt = s * flight
            base_y.append(box_height_m + v0 * tt - 0.5 * GRAVITY_M_S2 * tt ** 2)
            pz.append(forward_m * s)
        else:
            base_y.append(np.full(n, box_height_m if kind in ("box", "dip") else 0.0))
            pz.append(np.full(n, 0.0 if kind in ("box", "dip") else forward_m))
        dip.append(-0.12 * scale * np.sin(np.pi * s) if kind == "dip" else
                   -0.15 * scale * np.sin(np.pi * s) if kind == "land" else np.zeros(n))
        planted_box.append(np.full(n, kind in ("box", "dip")))
        planted_floor.append(np.full(n, kind in ("land", "floor")))
    base_y, pz, dip = np.concatenate(base_y), np.concatenate(pz), np.concatenate(dip)
    on_box, on_floor = np.concatenate(planted_box), np.concatenate(planted_floor)
    t = len(base_y)
    pelvis = np.stack([np.zeros(t), base_y + ha + legs + dip, pz], -1)
    ankles = np.stack([np.zeros(t), base_y + ha, pz], -1)[:, None].repeat(2, 1)
    contacts = np.repeat((on_box | on_floor)[:, None], 4, 1)
    support = np.repeat(np.where(on_box, box_height_m, 0.0)[:, None], 4, 1)
    return _assemble(body, pelvis, ankles, contacts=contacts, support=support, fps=fps)


def walking(seconds: float = 4.0, fps: float = 30.0, speed_m_s: float = 1.1, step_m: float = 0.55,
            scale: float = 1.0) -> SyntheticClip:
    """Walking forwards (+Z) on y = 0 from the origin: flat feet planted 60 % of each stride
    (double support at the changes), swinging in a 6 cm arc, arms swinging opposite the legs,
    the pelvis as high as both legs allow. Place it with :func:`place`."""
    body = _body(scale)
    ha = body["ankle_height"]
    reach = 0.995 * (body["thigh"] + body["shin"])
    t = int(round(seconds * fps))
    time = np.arange(t) / fps
    cycle = 2 * step_m / speed_m_s
    ankles = np.zeros((t, 2, 3))
    planted = np.zeros((t, 2), bool)
    for k, phase in enumerate((0.0, 0.5)):
        u = time / cycle + phase
        n, u = np.floor(u), u - np.floor(u)
        base = 2 * step_m * (0.3 - phase + n)
        swing = (u - 0.6) / 0.4
        planted[:, k] = u < 0.6
        ankles[:, k, 2] = base + np.where(planted[:, k], 0.0, 2 * step_m * _smoothstep(swing))
        ankles[:, k, 1] = ha + np.where(planted[:, k], 0.0, 0.06 * np.sin(np.pi * np.clip(swing, 0, 1)))
    pz = speed_m_s * time
    dz = np.abs(ankles[:, :, 2] - pz[:, None])
    py = np.min(ankles[:, :, 1] + np.sqrt(np.maximum(reach ** 2 - dz ** 2, 0.0)), axis=1)
    pelvis = np.stack([np.zeros(t), py, pz], -1)
    arm = 0.35 * np.cos(2 * np.pi * time / cycle)
    return _assemble(body, pelvis, ankles, arm_swing=arm, contacts=np.repeat(planted, 2, axis=1),
                     support=np.zeros((t, 4)), fps=fps)


def place(clip: SyntheticClip, yaw_deg: float = 0.0, offset: tuple[float, float] = (0.0, 0.0)) -> SyntheticClip:
    """``clip`` turned by ``yaw_deg`` about +Y (counter-clockwise seen from above) and moved by
    ``offset`` (x, z) metres; heights, contacts and supports unchanged."""
    r = axis_rotation_matrix(np.radians(yaw_deg), "Y")
    shift = np.array([offset[0], 0.0, offset[1]])
    quats = clip.local_quats_wxyz.copy()
    quats[:, 0] = quat_multiply_wxyz(matrix_to_quat_wxyz(r), quats[:, 0])
    root = (clip.root_translation + clip.rest_offsets[0]) @ r.T - clip.rest_offsets[0] + shift
    return SyntheticClip(joints=clip.joints @ r.T + shift, local_quats_wxyz=quats, root_translation=root,
                         rest_offsets=clip.rest_offsets, contacts=clip.contacts, support_m=clip.support_m, fps=clip.fps)


def view_clip(clip: SyntheticClip, *, pitch_deg: float = 15.0, height_m: float = 1.5, distance_m: float = 5.0,
              focal_px: float = 1400.0, size: tuple[int, int] = (1920, 1080), yaw_deg: float = 0.0,
              roll_deg: float = 0.0, noise_px: float = 2.0, blank_first: int = 0,
              seed: int = 0) -> tuple[Keypoints2D, Camera]:
    """``clip`` filmed by :func:`virtual_camera` placed relative to the clip's mean pelvis
    position on the ground; (keypoints from :func:`project_clip`, camera)."""
    target = tuple(float(v) for v in clip.joints[:, 0, [0, 2]].mean(0))
    cam = virtual_camera(pitch_deg, height_m, distance_m, focal_px, size=size, yaw_deg=yaw_deg, roll_deg=roll_deg,
                         target=target)
    kp = project_clip(clip.joints, cam, noise_px=noise_px, rng=np.random.default_rng(seed), fps=clip.fps,
                      blank_first=blank_first)
    return kp, cam


def contact_heights(clip: SyntheticClip) -> np.ndarray:
    """(T, 4) world heights of the :data:`CONTACT_POINTS` of ``clip`` (metres)."""
    return clip.joints[:, [_J[n] for n in CONTACT_POINTS], 1]
