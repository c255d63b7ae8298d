"""Synthetic faces for tests: a neutral face (MediaPipe's 478 landmark indices) moved by known
expressions and head rotations, seen by a weak-perspective camera in pixels.

The neutral face is built here (not MediaPipe's canonical mesh): the landmarks the controls
read sit at plausible places of an adult face (centimetres, head frame: x the person's left,
y up, z out of the face), the others on an ellipsoid around the head. Expressions move them:
the jaw lowers every point of the lower face; a blink lowers the upper eyelid; brows rise;
mouth corners rise and spread (smile) or come together (pucker); the lips part.
"""
from __future__ import annotations

import numpy as np

from mocap.face.controls import CONTROLS, FACING_CAMERA
from mocap.rotations import euler_to_matrix

# (x, y, z) cm of the points the controls use, the person's right side (x < 0) mirrored to the left
_RIGHT = {33: (-4.3, 0.0, -1.0), 133: (-1.6, 0.0, -0.5), 159: (-2.95, 0.45, -0.3), 145: (-2.95, -0.35, -0.3),
          158: (-2.3, 0.40, -0.3), 153: (-2.3, -0.30, -0.3), 160: (-3.6, 0.35, -0.5), 144: (-3.6, -0.30, -0.5),
          107: (-1.5, 1.5, 0.0), 70: (-4.5, 1.3, -1.2), 234: (-7.0, -2.0, -4.0), 127: (-6.8, 0.0, -4.5),
          61: (-2.5, -6.0, 0.5)}
_MIRROR = {33: 263, 133: 362, 159: 386, 145: 374, 158: 385, 153: 380, 160: 387, 144: 373, 107: 336, 70: 300,
           234: 454, 127: 356, 61: 291}
_MIDLINE = {168: (0, 0.3, 0.3), 6: (0, -0.5, 0.8), 197: (0, -1.3, 1.3), 195: (0, -2.0, 1.7), 5: (0, -2.6, 2.1),
            4: (0, -3.2, 2.4), 1: (0, -3.5, 2.6), 2: (0, -4.2, 1.0), 10: (0, 5.5, 1.0), 151: (0, 4.5, 0.8),
            9: (0, 2.0, 0.5), 13: (0, -5.7, 1.2), 14: (0, -5.9, 1.2), 0: (0, -5.2, 1.4), 17: (0, -6.8, 1.2),
            152: (0, -10.0, 0.0)}
UPPER_LIDS = {"right": (159, 158, 160), "left": (386, 385, 387)}
LOWER_LIDS = {"right": (145, 153, 144), "left": (374, 380, 373)}


def neutral_face(seed: int = 0) -> np.ndarray:
    """(478, 3) cm, head frame (x: the person's left, y: up, z: out of the face)."""
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(-1.2, 1.2, 478), rng.uniform(-1.3, 1.3, 478)
    face = np.stack([7.5 * np.sin(u), 11.0 * np.sin(v) - 2.0, 6.0 * np.cos(u) * np.cos(v) - 5.0], -1)
    for i, p in _RIGHT.items():
        face[i] = p
        face[_MIRROR[i]] = (-p[0], p[1], p[2])
    for i, p in _MIDLINE.items():
        face[i] = p
    return face


def express(face: np.ndarray, truth: dict[str, np.ndarray]) -> np.ndarray:
    """(478, 3) neutral -> (T, 478, 3) with the ARKit-named activations ``truth`` (each (T,) in
    [0, 1]; missing names stay 0) applied as displacements (cm)."""
    t = len(next(iter(truth.values())))
    a = {k: np.asarray(truth.get(k, np.zeros(t)), np.float64)[:, None] for k in CONTROLS}
    out = np.repeat(face[None], t, 0)
    lower = face[:, 1] < -5.8  # the lower lip, chin and jaw
    lower[14] = True
    lower[[61, 291, 13]] = False
    out[:, lower, 1] -= 2.8 * a["jawOpen"]
    for side, name in (("left", "eyeBlinkLeft"), ("right", "eyeBlinkRight")):
        for up, down in zip(UPPER_LIDS[side], LOWER_LIDS[side]):
            gap = face[up, 1] - face[down, 1]
            out[:, up, 1] -= 0.85 * gap * a[name][:, 0]
    out[:, [107, 336], 1] += 1.0 * a["browInnerUp"]
    out[:, 300, 1] += 1.0 * a["browOuterUpLeft"][:, 0]
    out[:, 70, 1] += 1.0 * a["browOuterUpRight"][:, 0]
    for corner, name, sign in ((291, "mouthSmileLeft", 1.0), (61, "mouthSmileRight", -1.0)):
        out[:, corner, 1] += 0.8 * a[name][:, 0]
        out[:, corner, 0] += sign * 0.5 * a[name][:, 0]
    return out


def smooth_random(t: int, rng, *, fps: float = 30.0, hz: float = 0.7) -> np.ndarray:
    """(T,) a random smooth signal in [0, 1] (sum of sines up to ``hz``)."""
    time = np.arange(t) / fps
    x = sum(np.sin(2 * np.pi * rng.uniform(0.1, hz) * time + rng.uniform(0, 2 * np.pi)) for _ in range(3))
    return np.clip((x - x.min()) / (x.max() - x.min()) * 1.3 - 0.3, 0, 1)


def blinks(t: int, rng, *, fps: float = 30.0, every_s: float = 1.5) -> np.ndarray:
    """(T,) eyelid closure: blinks of 0.2 s (a raised cosine) at random times, about one per ``every_s``."""
    out = np.zeros(t)
    width = int(round(0.2 * fps))
    for start in rng.choice(t - width, size=max(1, int(t / fps / every_s)), replace=False):
        out[start:start + width] = np.maximum(out[start:start + width], np.sin(np.linspace(0, np.pi, width)) ** 2)
    return out


def observe(faces_cm: np.ndarray, ypr: np.ndarray, rng, *, px_per_cm: float = 12.0, noise_iod: float = 0.01
            ) -> np.ndarray:
    """(T, 478, 3) head-frame faces turned by yaw, pitch, roll (T, 3) radians (as
    :func:`mocap.face.controls.head_angles` reports them) -> (T, 478, 3) image x, y and depth
    z, pixels, with Gaussian noise of ``noise_iod`` times the distance between the eyes."""
    rel = euler_to_matrix(ypr, order="YXZ")
    cam = np.einsum("ij,tjk,tnk->tni", FACING_CAMERA, rel, faces_cm)
    t = len(faces_cm)
    shift = np.stack([rng.uniform(300, 700, t), rng.uniform(200, 600, t), rng.uniform(-50, 50, t)], -1)
    scale = px_per_cm * rng.uniform(0.7, 1.3, t)
    px = cam * scale[:, None, None] + shift[:, None]
    iod = 5.9 * scale
    return px + rng.normal(0, 1, px.shape) * (noise_iod * iod)[:, None, None]
