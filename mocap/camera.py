"""Pinhole cameras with distortion, and calibration import.

A :class:`Camera` maps world points to pixels: ``x_cam = R @ X + t`` (camera axes x right,
y down, z forward), then the pinhole ``K`` with OpenCV's radial/tangential distortion
``(k1, k2, p1, p2, k3)``. World units are metres.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap.errors import MocapError


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
        """(..., 3) world metres -> (..., 2) pixels, with distortion; NaN behind the camera."""
        p = self.world_to_camera(points)
        z = np.where(p[..., 2:3] > 0, p[..., 2:3], np.nan)
        xy = p[..., :2] / z
        k1, k2, p1, p2, k3 = self.dist
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([self.K[0, 0] * xd + self.K[0, 1] * yd + self.K[0, 2], self.K[1, 1] * yd + self.K[1, 2]], -1)

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
