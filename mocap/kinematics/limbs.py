"""Two-bone inverse kinematics on joint positions: place a limb's middle joint and end so the
end reaches a target (hip-knee-ankle, shoulder-elbow-wrist), keeping both segment lengths.

A pure array function (metres, any frame); the planted-foot locking of
:mod:`mocap.cleanup.contact` and the limb pinning of :mod:`mocap.export.retarget` use it.
"""
from __future__ import annotations

import numpy as np


def two_bone_ik(root: np.ndarray, mid: np.ndarray, end: np.ndarray, target: np.ndarray,
                pole_hint: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """New (mid, end) so that ``end`` reaches ``target`` with both segment lengths kept.

    The middle joint bends the way it bends now (its offset from the root -> end line),
    in the plane through root and target; an unreachable target straightens the limb.

    Args:
        root, mid, end, target: (..., 3) metres (hip, knee, ankle, wanted ankle).
        pole_hint: (..., 3) direction the middle joint bends towards when the limb is
            (nearly) straight (for a knee: the foot's forward direction); a 5 % bias that
            does not move a clearly bent limb's plane much.
    Returns:
        mid (..., 3) and end (..., 3).
    """
    root, mid, end, target = (np.asarray(v, dtype=np.float64) for v in (root, mid, end, target))
    a = np.linalg.norm(mid - root, axis=-1)
    b = np.linalg.norm(end - mid, axis=-1)
    to = target - root
    dist = np.linalg.norm(to, axis=-1)
    axis = to / np.maximum(dist, 1e-12)[..., None]
    d = np.clip(dist, np.abs(a - b) + 1e-9, a + b - 1e-9)
    limb = (end - root) / np.maximum(np.linalg.norm(end - root, axis=-1, keepdims=True), 1e-12)
    pole = (mid - root) - np.sum((mid - root) * limb, -1, keepdims=True) * limb  # current bend direction
    if pole_hint is not None:
        hint = np.asarray(pole_hint, dtype=np.float64)
        pole = pole + 0.05 * a[..., None] * hint / np.maximum(np.linalg.norm(hint, axis=-1, keepdims=True), 1e-12)
    pole = pole - np.sum(pole * axis, -1, keepdims=True) * axis
    pn = np.linalg.norm(pole, axis=-1, keepdims=True)
    fallback = np.cross(axis, np.array([1.0, 0.0, 0.0]))
    pole = np.where(pn > 1e-9, pole / np.maximum(pn, 1e-12), fallback / np.maximum(np.linalg.norm(fallback, axis=-1, keepdims=True), 1e-12))
    cos_a = np.clip((a * a + d * d - b * b) / np.maximum(2 * a * d, 1e-12), -1.0, 1.0)
    sin_a = np.sqrt(1.0 - cos_a * cos_a)
    new_mid = root + a[..., None] * (cos_a[..., None] * axis + sin_a[..., None] * pole)
    new_end = root + d[..., None] * axis
    return new_mid, new_end
