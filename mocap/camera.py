"""Pinhole cameras with distortion, the one projection, and calibration import.

A :class:`Camera` maps world points to pixels: ``x_cam = R @ X + t`` (camera axes x right,
y down, z forward), then :func:`project_points`: the pinhole ``K`` with OpenCV's
radial/tangential distortion ``(k1, k2, p1, p2, k3)``. World units are metres.

:func:`project_points` is the only pinhole projection in the project (cameras, lifters,
triangulation, bundle adjustment, the lifter's training data all call it), so a point at or
behind a camera is treated the same everywhere: NaN.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap.errors import MocapError


def intrinsic_matrix(focal_px, principal_px, skew_px=0.0) -> np.ndarray:
    """(..., 3, 3) pinhole intrinsics ``[[f, s, c_x], [0, f, c_y], [0, 0, 1]]`` for :func:`project_points`.

    Args:
        focal_px: (...,) focal length, pixels (square pixels).
        principal_px: (..., 2) principal point ``(c_x, c_y)``, pixels.
        skew_px: (...,) skew ``K[0, 1]``, pixels.
    """
    f = np.asarray(focal_px, dtype=np.float64)
    c = np.asarray(principal_px, dtype=np.float64)
    if c.shape[-1:] != (2,):
        raise ValueError(f"principal_px must have shape (..., 2), got {c.shape}")
    k = np.zeros(np.broadcast_shapes(f.shape, c.shape[:-1], np.shape(skew_px)) + (3, 3))
    k[..., 0, 0] = k[..., 1, 1] = f
    k[..., 0, 1] = skew_px
    k[..., :2, 2] = c
    k[..., 2, 2] = 1.0
    return k


def project_points(points_cam: np.ndarray, K: np.ndarray | None = None, dist: np.ndarray | None = None,
                   *, nan_behind: bool = True) -> np.ndarray:
    """Pinhole projection of camera-frame points to pixels.

    ``x = X / Z``, ``y = Y / Z``; then the distortion ``dist`` (OpenCV's ``k1, k2, p1, p2, k3``);
    then ``u = K[0, 0] x + K[0, 1] y + K[0, 2]``, ``v = K[1, 1] y + K[1, 2]``.

    Args:
        points_cam: (..., 3) metres in camera axes (x right, y down, z forward). Also works on
            homogeneous image points ``P @ [X, 1]`` of a camera matrix ``P = K [R | t]`` with
            ``K=None``: their third coordinate is the depth.
        K: (3, 3) or (..., 3, 3) intrinsics, pixels, broadcast against the points' leading
            dimensions (see :func:`intrinsic_matrix`); its last row is taken to be (0, 0, 1).
            None: the identity (normalised image coordinates ``(x, y)``).
        dist: (5,) or (..., 5) distortion coefficients; None: no distortion.
        nan_behind: True: points at or behind the camera (``Z <= 0``) give NaN. False (for an
            optimiser's residuals, which must stay finite): divide by ``Z`` whatever its sign,
            ``|Z| < 1e-9`` counting as ``1e-9``; a point behind the camera then gets a
            meaningless but finite pixel.
    Returns:
        (..., 2) pixels (or normalised coordinates when ``K`` is None); NaN where the point is NaN
        and, with ``nan_behind``, where it is not in front of the camera.
    """
    p = np.asarray(points_cam, dtype=np.float64)
    if p.shape[-1:] != (3,):
        raise ValueError(f"points_cam must have shape (..., 3), got {p.shape}")
    z = np.where(np.isnan(p).any(-1), np.nan, p[..., 2])  # a point with a NaN coordinate has no pixel
    if nan_behind:
        z = np.where(z > 0, z, np.nan)
    else:
        z = np.where(np.abs(z) > 1e-9, z, np.where(np.isnan(z), z, 1e-9))
    x, y = p[..., 0] / z, p[..., 1] / z
    if dist is not None:
        k1, k2, p1, p2, k3 = np.moveaxis(np.asarray(dist, dtype=np.float64), -1, 0)
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
        x, y = (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)
    if K is None:
        return np.stack([x, y], -1)
    k = np.asarray(K, dtype=np.float64)
    return np.stack([k[..., 0, 0] * x + k[..., 0, 1] * y + k[..., 0, 2], k[..., 1, 1] * y + k[..., 1, 2]], -1)


@dataclass(frozen=True)
class Camera:
    """One calibrated camera.

    Attributes:
        name: camera id.
        size: (width, height) pixels.
        K: (3, 3) intrinsics, pixels.
        R: (3, 3) world -> camera rotation.
        t: (3,) world -> camera translation, metres.
        dist: (5,) OpenCV distortion (k1, k2, p1, p2, k3).
    """

    name: str
    size: tuple[int, int]
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    dist: np.ndarray

    @property
    def projection(self) -> np.ndarray:
        """(3, 4) ``K [R | t]`` (no distortion)."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    @property
    def position(self) -> np.ndarray:
        """(3,) camera centre in world metres."""
        return -self.R.T @ self.t

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world metres -> (..., 3) camera-frame metres."""
        return np.asarray(points, dtype=np.float64) @ self.R.T + self.t

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world metres -> (..., 2) pixels, with distortion; NaN at or behind the camera
        (:func:`project_points`)."""
        return project_points(self.world_to_camera(points), self.K, self.dist)

    def moved(self, rotation: np.ndarray, offset: np.ndarray) -> "Camera":
        """This camera in a new world frame ``new = old @ rotation.T + offset`` (rotation (3, 3),
        offset (3,) metres): it sees the moved points where it saw the old ones."""
        rot = np.asarray(rotation, dtype=np.float64)
        r = self.R @ rot.T
        return Camera(name=self.name, size=self.size, K=self.K, R=r, t=self.t - r @ np.asarray(offset, dtype=np.float64),
                      dist=self.dist)

    def undistort_pixels(self, pixels: np.ndarray, iterations: int = 8) -> np.ndarray:
        """(..., 2) distorted pixels -> (..., 2) ideal pinhole pixels (fixed-point inversion)."""
        uv = np.asarray(pixels, dtype=np.float64)
        fx, fy, cx, cy, s = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2], self.K[0, 1]
        yd = (uv[..., 1] - cy) / fy
        xd = (uv[..., 0] - cx - s * yd) / fx
        k1, k2, p1, p2, k3 = self.dist
        x, y = xd.copy(), yd.copy()
        for _ in range(iterations):
            r2 = x * x + y * y
            radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
            x = (xd - 2 * p1 * x * y - p2 * (r2 + 2 * x * x)) / radial
            y = (yd - p1 * (r2 + 2 * y * y) - 2 * p2 * x * y) / radial
        return np.stack([fx * x + s * y + cx, fy * y + cy], -1)


def load_qualisys(path: str | os.PathLike) -> list[Camera]:
    """Cameras of a Qualisys ``.qca.txt`` calibration export.

    Qualisys stores positions in millimetres and intrinsics in sensor units of 1/64 pixel;
    its ``transform`` rotation maps world to camera axes whose y and z point opposite to
    ours (checked on the Pose2Sim demo: this convention reprojects its 4 views best).
    """
    path = Path(path)
    if not path.is_file():
        raise MocapError(f"calibration file not found: {path}")
    try:
        root = ET.parse(path).getroot()
        cameras = []
        for node in root.iter("camera"):
            tr = node.find("transform").attrib
            it = node.find("intrinsic").attrib
            fov = node.find("fov_video").attrib
            rot = np.array([[float(tr[f"r{a}{b}"]) for b in "123"] for a in "123"])
            pos = np.array([float(tr[k]) for k in "xyz"]) / 1000.0
            r = np.diag([1.0, -1.0, -1.0]) @ rot
            k = np.array([[float(it["focalLengthU"]) / 64, float(it.get("skew", 0.0)), float(it["centerPointU"]) / 64],
                          [0.0, float(it["focalLengthV"]) / 64, float(it["centerPointV"]) / 64],
                          [0.0, 0.0, 1.0]])
            dist = np.array([float(it[n]) for n in ("radialDistortion1", "radialDistortion2", "tangentalDistortion1",
                                                      "tangentalDistortion2", "radialDistortion3")])
            size = (int(fov["right"]) - int(fov["left"]) + 1, int(fov["bottom"]) - int(fov["top"]) + 1)
            cameras.append(Camera(name=node.attrib.get("serial", str(len(cameras))), size=size, K=k, R=r,
                                  t=-r @ pos, dist=dist))
    except (ET.ParseError, AttributeError, KeyError, ValueError) as e:
        raise MocapError(f"{path} is not a readable Qualisys calibration ({e.__class__.__name__}: {e})") from None
    if not cameras:
        raise MocapError(f"{path} holds no cameras")
    return cameras
