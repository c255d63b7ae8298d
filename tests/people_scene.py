"""Synthetic scenes of several people seen by one camera, with known identities.

Three people (3D motion: the waving walker of :mod:`tests.synthetic`, each with a body scale
and a path of their own) walk around each other, cross in front of each other, and one
walks out of the picture and comes back. A pinhole camera (1920x1080, focal 1000 px, 8 m
away) sees them; a person mostly covered by a nearer one is not detected. Detections get
pixel noise, some are missed, some have left and right swapped, and each carries a colour
histogram of its torso (the person's clothes, mixed with the colours of whoever covers part
of the box, sampled from 300 pixels), so the appearance cue is as noisy as a real one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.camera import intrinsic_matrix, project_points
from mocap.skeletons import MEDIAPIPE33
from tests.synthetic import _rot, camera_view, motion21_to_mediapipe33, waving_walker

SIZE = (1920, 1080)
FOCAL_PX = 1000.0
BINS = 48


@dataclass(frozen=True)
class Scene:
    """keypoints (T, S, 33, 2) pixels, confidence (T, S, 33), scores (T, S), appearance
    (T, S, BINS), true ids (T, S) (-1 empty), visible (T, N) bool: who was detected."""

    keypoints: np.ndarray
    confidence: np.ndarray
    scores: np.ndarray
    appearance: np.ndarray
    true_ids: np.ndarray
    visible: np.ndarray
    fps: float


def _paths(t_len: int, fps: float) -> list[np.ndarray]:
    """(T, 3) ground positions (x, 0, z) metres of the three people."""
    s = np.arange(t_len) / fps
    dur = t_len / fps
    circle = 2 * np.pi * s / dur
    a = np.stack([2.0 * np.cos(circle), 0 * s, 1.2 * np.sin(circle)], -1)  # walks round the middle
    b = np.stack([-4.0 + 8.0 * s / dur, 0 * s, 0.3 + 0 * s], -1)  # crosses the picture, through a's circle
    out = np.clip(np.sin(np.pi * s / dur * 2), 0, None)  # out to the right and back, twice
    c = np.stack([3.0 + 7.0 * out, 0 * s, -1.0 + 0 * s], -1)  # leaves the picture (x > 7.7 m)
    return [a, b, c]


def people_scene(seed: int = 0, *, t_len: int = 300, fps: float = 30.0, noise_px: float = 2.0, miss: float = 0.10,
                 swap: float = 0.05, slots: int = 4) -> Scene:
    rng = np.random.default_rng(seed)
    base = waving_walker(t_len, fps)
    base = base - base[:, :1] * np.array([1, 0, 1])  # in place: the paths move them
    k = intrinsic_matrix(FOCAL_PX, (SIZE[0] / 2, SIZE[1] / 2))
    pixels, depth = [], []
    for i, path in enumerate(_paths(t_len, fps)):
        heading = np.arctan2(np.gradient(path[:, 0]), np.gradient(path[:, 2]) + 1e-9)
        body = np.einsum("tij,tkj->tki", _rot("y", heading), base * (0.85 + 0.15 * i)) + path[:, None]
        cam = camera_view(motion21_to_mediapipe33(body), distance=8.0, height=1.2, pitch=0.05)
        pixels.append(project_points(cam, k))
        depth.append(cam[:, MEDIAPIPE33.index("left_hip"), 2])
    n = len(pixels)
    colours = rng.dirichlet(np.full(BINS, 0.3), size=n)  # each person's clothes
    boxes = np.array([[np.concatenate([p[t].min(0), p[t].max(0)]) for t in range(t_len)] for p in pixels])
    kp = np.full((t_len, slots, 33, 2), np.nan)
    conf = np.zeros((t_len, slots, 33))
    scores = np.zeros((t_len, slots))
    look = np.full((t_len, slots, BINS), np.nan)
    true = np.full((t_len, slots), -1)
    visible = np.zeros((t_len, n), bool)
    mirror = MEDIAPIPE33.mirror_permutation()
    for t in range(t_len):
        seen = []
        for i in range(n):
            box = boxes[i, t]
            inside = box[0] > 0 and box[2] < SIZE[0]
            cover = {j: _covered(box, boxes[j, t]) for j in range(n) if j != i and depth[j][t] < depth[i][t]}
            hidden = any(c > 0.6 for c in cover.values())
            visible[t, i] = inside and not hidden
            if visible[t, i] and rng.random() >= miss:
                mix = colours[i] * (1 - min(sum(cover.values()), 0.9))
                for j, c in cover.items():
                    mix = mix + colours[j] * c
                seen.append((i, rng.multinomial(300, mix / mix.sum()) / 300.0))
        for s, (i, hist) in zip(rng.permutation(slots)[:len(seen)], seen):
            xy = pixels[i][t] + rng.normal(0, noise_px, (33, 2))
            kp[t, s] = xy[mirror] if rng.random() < swap else xy
            conf[t, s] = rng.uniform(0.6, 1.0, 33)
            scores[t, s] = rng.uniform(0.6, 1.0)
            look[t, s] = hist
            true[t, s] = i
    return Scene(kp, conf, scores, look, true, visible, fps)


def _covered(box: np.ndarray, other: np.ndarray) -> float:
    """Fraction of ``box``'s area that ``other`` covers."""
    w = min(box[2], other[2]) - max(box[0], other[0])
    h = min(box[3], other[3]) - max(box[1], other[1])
    area = (box[2] - box[0]) * (box[3] - box[1])
    return float(w * h / area) if w > 0 and h > 0 and area > 0 else 0.0


__all__ = ["Scene", "people_scene"]
