"""Synthetic multi-camera rigs for the multi-view tests: known cameras, known 3D motion."""
from __future__ import annotations

import numpy as np

from mocap.camera import Camera


def look_at(position, target=(0.0, 1.0, 0.0)) -> np.ndarray:
    """World (+Y up) -> camera (x right, y down, z forward) rotation for a camera at ``position``."""
    z = np.asarray(target, float) - position
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def ring_rig(n: int = 4, *, radius: float = 4.0, size=(1080, 1920), focal: float = 1500.0,
             dist=(0.02, -0.01, 0.0005, -0.0005, 0.0)) -> list[Camera]:
    """``n`` portrait cameras on a ring around the origin, 1.3-1.9 m high, looking at (0, 1, 0)."""
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n + 0.4
        pos = np.array([radius * np.cos(a), 1.3 + 0.2 * i, radius * np.sin(a)])
        r = look_at(pos, (0.2 * np.sin(i), 1.0, 0.1 * i))
        k = np.array([[focal, 0, size[0] / 2 + 7 * i], [0, focal * 1.001, size[1] / 2 - 5 * i], [0, 0, 1]])
        cams.append(Camera(name=f"cam{i + 1:02d}", size=size, K=k, R=r, t=-r @ pos, dist=np.array(dist, float)))
    return cams


def observe(cameras, joints: np.ndarray, *, noise_px: float = 0.0, seed: int = 0):
    """(C, T, J, 2) distorted pixels and (C, T, J) confidences of (T, J, 3) world joints, with noise."""
    rng = np.random.default_rng(seed)
    px = np.stack([c.project(joints) for c in cameras])
    if noise_px:
        px = px + rng.normal(0.0, noise_px, px.shape)
    return px, np.ones(px.shape[:-1])
