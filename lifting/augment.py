"""Virtual cameras, projection and detector-like 2D corruption for training the lifter (numpy).

Camera convention (as everywhere in the project): camera axes x right, y down, z away from
the camera; a world point ``X`` (metres, +Y up) maps to ``R (X - position)``; pixels are
``u = f x / z + c_x``, ``v = f y / z + c_y`` (:func:`mocap.camera.project_points`).

Everything takes a ``numpy.random.Generator`` so that a seed reproduces a batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lifting.data import KEYPOINT_MIRROR, KEYPOINT_NAMES, KEYPOINT_PARENTS
from mocap.lift.features import INPUT_NAMES, normalise_frames
from mocap.bones import bone_lengths
from mocap.camera import intrinsic_matrix, project_points
from mocap.io.calibration_files import rotvec_to_matrix
from mocap.skeletons import descendants

#: Index of each INPUT21 joint in KEYPOINT_NAMES.
INPUT_FROM_KEYPOINTS = np.array([KEYPOINT_NAMES.index(n) for n in INPUT_NAMES])
NUM_OUTPUT_JOINTS = 21  # the first 21 KEYPOINT_NAMES are MOTION21
_FOOT_INPUTS = np.array([INPUT_NAMES.index(n) for n in ("left_heel", "right_heel", "left_foot_index", "right_foot_index")])
_LIMB_GROUPS = [np.array([INPUT_NAMES.index(f"{s}_{j}") for j in joints]) for s in ("left", "right")
                for joints in (("shoulder", "elbow", "wrist"), ("elbow", "wrist"), ("knee", "ankle", "heel", "foot_index"),
                               ("ankle", "heel", "foot_index"))]
_LEGS = [(INPUT_NAMES.index(f"left_{j}"), INPUT_NAMES.index(f"right_{j}")) for j in ("hip", "knee", "ankle", "heel", "foot_index")]
_ARMS = [(INPUT_NAMES.index(f"left_{j}"), INPUT_NAMES.index(f"right_{j}")) for j in ("shoulder", "elbow", "wrist")]
_WORLD_UP = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True)
class CameraSampling:
    """Ranges of the random virtual cameras (uniform unless said otherwise)."""

    focal_px: tuple[float, float] = (800.0, 1500.0)
    distance_m: tuple[float, float] = (3.0, 8.0)
    elevation_rad: tuple[float, float] = (-0.15, 0.6)  # camera above the aim point is positive
    min_camera_height_m: float = 0.2
    roll_std_rad: float = 0.05
    aim_jitter_m: float = 0.3
    image_size: tuple[int, int] = (1920, 1080)


@dataclass(frozen=True)
class NoiseConfig:
    """Detector-like corruption of 2D keypoints; each rate is drawn per sequence from [0, max]."""

    noise_px_max: float = 4.0
    bias_rel_max: float = 0.03          # constant per-joint offset, fraction of the 2D RMS radius
    outlier_rate_max: float = 0.02
    outlier_rel_std: float = 0.3
    drop_rate_max: float = 0.08
    occlusion_prob: float = 0.25        # chance per sequence of one limb missing for a span of frames
    swap_rate_max: float = 0.02         # left/right leg or arm swaps per frame
    frame_drop_rate_max: float = 0.02   # whole frames with no detection
    clean_fraction: float = 0.25        # sequences left without any corruption


CLEAN = NoiseConfig(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, clean_fraction=1.0)


@dataclass(frozen=True)
class PoseAugment:
    """Random rotations of body parts about their root joint, for poses the mocap lacks
    (a leg raised sideways, the trunk leaning far to one side).

    A sample is changed with probability ``prob``; then each limb (a whole arm about its
    shoulder, a whole leg about its hip) with probability ``part_prob``, by a rotation vector
    of standard deviation ``limb_std_rad`` per axis, and the upper body (everything above
    the pelvis) about the pelvis with probability ``part_prob``: lean ``trunk_lean_std_rad``
    about the two horizontal axes, twist ``trunk_twist_std_rad`` about the vertical.
    The rotation moves linearly from a start to an end value over the window (a half-spread
    of ``change`` times the std), so the changed part also moves. Bone lengths are kept.
    """

    prob: float = 0.0
    part_prob: float = 0.5
    limb_std_rad: float = 0.4
    trunk_lean_std_rad: float = 0.3
    trunk_twist_std_rad: float = 0.3
    change: float = 0.5
    max_angle_rad: float = 1.2


@dataclass(frozen=True)
class VirtualCameras:
    """B cameras: ``rotation`` (B, 3, 3) world -> camera, ``position`` (B, 3) metres,
    ``focal_px`` (B,), ``principal_px`` (B, 2), ``elevation_rad`` (B,)."""

    rotation: np.ndarray
    position: np.ndarray
    focal_px: np.ndarray
    principal_px: np.ndarray
    elevation_rad: np.ndarray


def look_at(position: np.ndarray, target: np.ndarray, roll_rad: np.ndarray | float = 0.0) -> np.ndarray:
    """(..., 3, 3) world -> camera rotation of cameras at ``position`` (..., 3) looking at ``target``.

    Rows are the camera axes in world coordinates: x right, y down (towards world -Y when
    level), z forward. ``roll_rad`` turns the image clockwise about z.
    """
    z = target - position
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    down = -_WORLD_UP - (-_WORLD_UP * z).sum(-1, keepdims=True) * z
    norm = np.linalg.norm(down, axis=-1, keepdims=True)
    if np.any(norm < 1e-9):
        raise ValueError("look_at: camera looks straight up or down; world up is undefined")
    y = down / norm
    x = np.cross(y, z)
    roll = np.asarray(roll_rad, dtype=np.float64)[..., None]
    xr = np.cos(roll) * x + np.sin(roll) * y
    yr = -np.sin(roll) * x + np.cos(roll) * y
    return np.stack([xr, yr, z], axis=-2)


def world_to_camera(points: np.ndarray, rotation: np.ndarray, position: np.ndarray) -> np.ndarray:
    """(B, ..., 3) world metres -> camera-frame metres for B cameras (B, 3, 3), (B, 3)."""
    b = points.shape[0]
    flat = points.reshape(b, -1, 3) - position[:, None, :]
    return np.einsum("bij,bnj->bni", rotation, flat).reshape(points.shape)


def project(points_cam: np.ndarray, focal_px: np.ndarray, principal_px: np.ndarray) -> np.ndarray:
    """(B, ..., 3) camera-frame metres -> (B, ..., 2) pixels for B cameras with (B,) focal, (B, 2) centre
    (:func:`mocap.camera.project_points`: NaN at or behind a camera)."""
    points_cam = np.asarray(points_cam, dtype=np.float64)
    k = intrinsic_matrix(focal_px, principal_px)  # (B, 3, 3)
    return project_points(points_cam, k.reshape(k.shape[:1] + (1,) * (points_cam.ndim - 2) + (3, 3)))


def sample_cameras(rng: np.random.Generator, aim: np.ndarray, sampling: CameraSampling = CameraSampling(),
                   extra_distance_m: np.ndarray | float = 0.0) -> VirtualCameras:
    """B random cameras looking at ``aim`` (B, 3) world metres (jittered), azimuth uniform.

    ``extra_distance_m`` (B,) is added to the sampled distance, e.g. how far the subject
    moves from ``aim`` during the sequence, so that it never comes closer than the range.
    """
    b = aim.shape[0]
    aim = aim + rng.normal(0.0, sampling.aim_jitter_m, size=(b, 3))
    dist = rng.uniform(*sampling.distance_m, size=b) + extra_distance_m
    azimuth = rng.uniform(0.0, 2 * np.pi, size=b)
    lo = np.arcsin(np.clip((sampling.min_camera_height_m - aim[:, 1]) / dist, -1.0, 1.0))
    elevation = rng.uniform(np.maximum(sampling.elevation_rad[0], lo), np.maximum(sampling.elevation_rad[1], lo))
    offset = np.stack([np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth)], -1)
    position = aim + dist[:, None] * offset
    rotation = look_at(position, aim, rng.normal(0.0, sampling.roll_std_rad, size=b))
    focal = rng.uniform(*sampling.focal_px, size=b)
    principal = np.tile(np.asarray(sampling.image_size, dtype=np.float64) / 2, (b, 1))
    return VirtualCameras(rotation, position, focal, principal, elevation)


def _subtree(root: int) -> np.ndarray:
    """Indices of KEYPOINT_NAMES below ``root`` (the root itself excluded)."""
    return np.array(descendants(KEYPOINT_PARENTS, root), dtype=int)


_LIMB_ROOTS = [KEYPOINT_NAMES.index(f"{s}_{j}") for s in ("left", "right") for j in ("shoulder", "hip")]
_LIMB_PARTS = [(r, _subtree(r)) for r in _LIMB_ROOTS]
_TRUNK_PART = (0, np.concatenate([[KEYPOINT_NAMES.index("spine")], _subtree(KEYPOINT_NAMES.index("spine"))]))


def augment_pose(rng: np.random.Generator, points: np.ndarray, cfg: PoseAugment) -> np.ndarray:
    """Rotate limbs and the upper body of world keypoints (B, T, K, 3) (+Y up) as ``cfg`` says.

    Limbs turn first, then the upper body carries the arms with it. Every bone keeps its length.
    """
    b, t = points.shape[:2]
    if cfg.prob <= 0:
        return points
    out = points.copy()
    changed = rng.random(b) < cfg.prob
    ramp = np.linspace(-1.0, 1.0, t)[None, :, None]

    def rotvecs(std: np.ndarray) -> np.ndarray:  # (B, T, 3), linear in time, angle clipped
        mean = rng.normal(size=(b, 1, 3)) * std
        half = rng.normal(size=(b, 1, 3)) * std * cfg.change
        v = mean + ramp * half
        n = np.linalg.norm(v, axis=-1, keepdims=True)
        return v * np.minimum(1.0, cfg.max_angle_rad / np.maximum(n, 1e-12))

    limb_std = np.full(3, cfg.limb_std_rad)
    trunk_std = np.array([cfg.trunk_lean_std_rad, cfg.trunk_twist_std_rad, cfg.trunk_lean_std_rad])
    for (root, part), std in [(lp, limb_std) for lp in _LIMB_PARTS] + [(_TRUNK_PART, trunk_std)]:
        use = np.flatnonzero(changed & (rng.random(b) < cfg.part_prob))
        rot = rotvec_to_matrix(rotvecs(std)[use])  # (U, T, 3, 3)
        pivot = out[use, :, root:root + 1]
        out[np.ix_(use, np.arange(t), part)] = pivot + np.einsum("utij,utkj->utki", rot, out[use][:, :, part] - pivot)
    return out


def mirror_world(points: np.ndarray) -> np.ndarray:
    """(..., K, 3) KEYPOINT_NAMES positions mirrored across the world x = 0 plane, left and right swapped."""
    out = points[..., KEYPOINT_MIRROR, :].copy()
    out[..., 0] *= -1
    return out


def scale_bones(points: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Scale each bone of KEYPOINT_PARENTS: points (B, T, K, 3), factors (B, K) (entry 0 unused)."""
    out = points.copy()
    for j, p in enumerate(KEYPOINT_PARENTS):
        if p >= 0:
            out[:, :, j] = out[:, :, p] + factors[:, None, j, None] * (points[:, :, j] - points[:, :, p])
    return out


_WIDTH_BONES = np.array([KEYPOINT_NAMES.index(f"{s}_{j}") for s in ("left", "right") for j in ("hip", "shoulder")])


def random_bone_factors(rng: np.random.Generator, b: int, spread: float = 0.1,
                        width_spread: float | None = None) -> np.ndarray:
    """(B, K) bone-length factors: one factor per left/right pair in [1 - spread, 1 + spread], times +-3 % per side.

    ``width_spread`` (default ``spread``) is the range of the hip and shoulder width bones
    (pelvis to hip, neck to shoulder): detectors place those points less consistently than
    mocap joint centres, so the network should read the widths from the 2D input.
    """
    pair = rng.uniform(1 - spread, 1 + spread, size=(b, len(KEYPOINT_NAMES)))
    if width_spread is not None:
        pair[:, _WIDTH_BONES] = rng.uniform(1 - width_spread, 1 + width_spread, size=(b, len(_WIDTH_BONES)))
    pair = pair[:, np.minimum(np.arange(len(KEYPOINT_NAMES)), KEYPOINT_MIRROR)]  # same factor on both sides
    return pair * rng.uniform(0.97, 1.03, size=pair.shape)


def skeleton_pool(takes: list[np.ndarray], resolution_m: float = 0.005) -> np.ndarray:
    """(S, K) the distinct skeletons of takes (T, K, 3): median bone lengths in metres, rounded to ``resolution_m``."""
    lengths = np.stack([np.median(bone_lengths(t, KEYPOINT_PARENTS), axis=0) for t in takes])
    lengths[:, 0] = 0.0  # the root has no bone (NaN from bone_lengths)
    return np.unique(np.round(lengths / resolution_m) * resolution_m, axis=0)


def transplant_factors(rng: np.random.Generator, points: np.ndarray, pool: np.ndarray, prob: float) -> np.ndarray:
    """(B, K) bone factors that give a share ``prob`` of the samples (B, T, K, 3) the bone lengths of a
    random skeleton of ``pool`` (S, K) (factor 1 elsewhere).

    The cgspeed takes all share one skeleton whose proportions are far from most people's (shin
    1.23 x the thigh, shoulders 23 cm apart at the joints it names); the other CMU subjects'
    skeletons bring real proportions, which :func:`random_bone_factors`' +-10 % cannot reach.
    """
    b = points.shape[0]
    factors = np.ones((b, len(KEYPOINT_NAMES)))
    use = np.flatnonzero(rng.random(b) < prob)
    if len(use) == 0 or len(pool) == 0:
        return factors
    target = pool[rng.integers(len(pool), size=len(use))]
    current = bone_lengths(points[use, 0], KEYPOINT_PARENTS)  # root NaN: factor 1 below
    ok = (current > 1e-6) & (target > 1e-6)
    factors[use] = np.where(ok, target / np.maximum(current, 1e-6), 1.0)
    return factors


def corrupt(rng: np.random.Generator, keypoints: np.ndarray, noise: NoiseConfig = NoiseConfig(),
            *, drop_feet_prob: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Detector-like corruption of clean INPUT21 pixels.

    Args:
        keypoints: (B, T, 21, 2) pixels, clean.
        noise: rates; each sequence draws its own rates in [0, max].
        drop_feet_prob: chance per sequence that heels and foot tips are missing (a COCO-17 detector).
    Returns:
        keypoints (B, T, 21, 2) with NaN where missing, confidence (B, T, 21) in [0, 1].
    """
    b, t, j, _ = keypoints.shape
    kp = keypoints.copy()
    conf = np.ones((b, t, j))
    centre = np.nanmean(kp, axis=(1, 2))  # (B, 2)
    rms = np.sqrt(np.nanmean(((kp - centre[:, None, None]) ** 2).sum(-1), axis=(1, 2)))  # (B,)
    noisy = rng.random(b) >= noise.clean_fraction

    def per_seq(maximum: float) -> np.ndarray:
        return np.where(noisy, rng.uniform(0, maximum, size=b), 0.0)

    sigma = per_seq(noise.noise_px_max)
    kp += rng.normal(size=kp.shape) * sigma[:, None, None, None]
    kp += rng.normal(size=(b, 1, j, 2)) * (per_seq(noise.bias_rel_max) * rms)[:, None, None, None]
    conf = np.where(noisy[:, None, None], rng.uniform(0.6, 1.0, size=conf.shape), 1.0)

    swap = rng.random((b, t)) < per_seq(noise.swap_rate_max)[:, None]
    for pairs in (_LEGS, _ARMS):
        which = swap & (rng.random((b, t)) < 0.5)
        for left, right in pairs:
            l_kp, r_kp = kp[:, :, left].copy(), kp[:, :, right].copy()
            kp[:, :, left] = np.where(which[..., None], r_kp, l_kp)
            kp[:, :, right] = np.where(which[..., None], l_kp, r_kp)

    outlier = rng.random((b, t, j)) < per_seq(noise.outlier_rate_max)[:, None, None]
    jump = rng.normal(size=(b, t, j, 2)) * (noise.outlier_rel_std * rms)[:, None, None, None]
    kp = np.where(outlier[..., None], kp + jump, kp)
    conf = np.where(outlier, rng.uniform(0.05, 0.5, size=conf.shape), conf)

    drop = rng.random((b, t, j)) < per_seq(noise.drop_rate_max)[:, None, None]
    drop |= (rng.random((b, t)) < per_seq(noise.frame_drop_rate_max)[:, None])[..., None]
    occluded = noisy & (rng.random(b) < noise.occlusion_prob)
    for i in np.flatnonzero(occluded):
        group = _LIMB_GROUPS[rng.integers(len(_LIMB_GROUPS))]
        start = rng.integers(t)
        span = rng.integers(1, t + 1)
        drop[i, start:start + span][:, group] = True
    feetless = rng.random(b) < drop_feet_prob
    drop[np.ix_(feetless, np.arange(t), _FOOT_INPUTS)] = True
    kp[drop] = np.nan
    conf[drop] = 0.0
    return kp, conf.astype(np.float32)


@dataclass(frozen=True)
class Batch:
    """``features`` (B, T_in, 21, 3) float32 network input; ``targets`` (B, T_out, 21, 3) float32 metres,
    root-relative camera-frame MOTION21; ``elevation_rad`` (B,)."""

    features: np.ndarray
    targets: np.ndarray
    elevation_rad: np.ndarray


def render(rng: np.random.Generator, world: np.ndarray, *, out_slice: slice, noise: NoiseConfig,
           cameras: CameraSampling = CameraSampling(), mirror_prob: float = 0.5, bone_spread: float = 0.1,
           drop_feet_prob: float = 0.5, noise_rng: np.random.Generator | None = None,
           pose: PoseAugment = PoseAugment(), width_spread: float | None = None,
           skeletons: np.ndarray | None = None, transplant_prob: float = 0.0) -> Batch:
    """Augment world keypoints (B, T, K, 3), film them with random cameras, corrupt and normalise.

    ``out_slice`` selects the frames whose 3D targets are returned (the network's output frames).
    ``noise_rng`` (default ``rng``) draws the 2D corruption, so that conditions can share cameras.
    ``pose`` rotates body parts first (off by default); ``width_spread`` see :func:`random_bone_factors`;
    a share ``transplant_prob`` of the samples takes the bone lengths of one of ``skeletons`` (S, K)
    before the random factors (:func:`transplant_factors`; off by default).
    """
    b = world.shape[0]
    world = augment_pose(rng, world, pose)
    if mirror_prob > 0:
        flip = rng.random(b) < mirror_prob
        world = np.where(flip[:, None, None, None], mirror_world(world), world)
    if transplant_prob > 0 and skeletons is not None:
        world = scale_bones(world, transplant_factors(rng, world, skeletons, transplant_prob))
    if bone_spread > 0:
        world = scale_bones(world, random_bone_factors(rng, b, bone_spread, width_spread))
    pelvis = world[:, :, 0]
    aim = pelvis.mean(1)
    extent = np.linalg.norm((pelvis - aim[:, None])[..., [0, 2]], axis=-1).max(1)
    cams = sample_cameras(rng, aim, cameras, extent)
    cam_pts = world_to_camera(world, cams.rotation, cams.position)
    pixels = project(cam_pts[:, :, INPUT_FROM_KEYPOINTS], cams.focal_px, cams.principal_px)
    kp, conf = corrupt(noise_rng or rng, pixels, noise, drop_feet_prob=drop_feet_prob)
    features = normalise_frames(kp, conf)
    targets = cam_pts[:, out_slice, :NUM_OUTPUT_JOINTS] - cam_pts[:, out_slice, :1]
    return Batch(features, targets.astype(np.float32), cams.elevation_rad)


class WindowSampler:
    """Random chunks of consecutive frames from takes stored at 120 Hz.

    Speed augmentation: a chunk takes every ``stride``-th frame, ``stride`` uniform in
    ``strides`` (4 -> 30 fps at natural speed, 3 -> 0.75x, 5 -> 1.25x speed).
    """

    def __init__(self, takes: list[np.ndarray], strides: tuple[int, ...] = (3, 4, 5)) -> None:
        self.data = np.concatenate(takes, axis=0)
        self.lengths = np.array([len(x) for x in takes])
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.strides = strides

    def sample(self, rng: np.random.Generator, b: int, frames: int) -> np.ndarray:
        """(B, frames, K, 3) world positions."""
        stride = rng.choice(self.strides, size=b)
        span = (frames - 1) * stride + 1
        weights = self.lengths / self.lengths.sum()
        take = rng.choice(len(self.lengths), size=b, p=weights)
        room = self.lengths[take] - span
        short = room < 0
        if short.any():  # fall back to natural speed or, for very short takes, repeat the last frame
            stride = np.where(short, 1, stride)
            room = np.maximum(self.lengths[take] - ((frames - 1) * stride + 1), 0)
        offset = (rng.random(b) * (room + 1)).astype(np.int64)
        idx = offset[:, None] + np.arange(frames)[None, :] * stride[:, None]
        idx = np.minimum(idx, self.lengths[take][:, None] - 1) + self.starts[take][:, None]
        return self.data[idx]
