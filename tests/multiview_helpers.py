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


def crowd_paths(t: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Floor paths (N=3, T, 2) metres (x, z) and presence (3, T) bool of three people: two
    circling the origin in opposite directions, 1.4 and 0.8 m out (passing each other 0.6 m
    apart twice a lap, and in line with some camera often), one walking to and
    fro across the room, who leaves for the middle fifth of the clip and comes back."""
    time = np.arange(t) / fps
    a = 2 * np.pi * time / 8.0
    paths = np.stack([
        np.stack([1.4 * np.cos(a), 1.4 * np.sin(a)], -1),
        np.stack([0.8 * np.cos(-a + 0.3), 0.8 * np.sin(-a + 0.3)], -1),
        np.stack([1.6 * np.sin(2 * np.pi * time / 6.0), 0.4 + 0.0 * time], -1),
    ])
    present = np.ones((3, t), bool)
    present[2, 2 * t // 5: 3 * t // 5] = False
    return paths, present


def crowd_scene(cameras, motions, paths, present, *, layout: str, noise_px: float = 2.0, miss: float = 0.1,
                swap: float = 0.05, slots: int = 4, seed: int = 0):
    """Several people seen by calibrated cameras, as a multi-person 2D detector reports them.

    Args:
        motions: N (T, J, 3) world metres (+Y up) of ``layout``; their horizontal root
            motion is replaced by ``paths`` (N, T, 2) (x, z metres).
        present: (N, T) bool, who is in the room.
        miss: share of (view, person, frame) detections dropped.
        swap: share of detections with left and right swapped.
    Returns:
        joints (N, T, J, 3) the truth; pixels (C, T, P, J, 2) distorted, in shuffled slots,
        NaN for empty slots or off-image people; confidence (C, T, P, J); truth (C, T, P) the
        person in each slot (-1: empty).
    """
    from mocap.skeletons import get_layout

    rng = np.random.default_rng(seed)
    lay = get_layout(layout)
    mirror = lay.mirror_permutation()
    root = [lay.index("left_hip"), lay.index("right_hip")]
    joints = []
    for m, path in zip(motions, paths):
        m = np.array(m, float)
        hips = m[:, root].mean(1)
        m[..., 0] += (path[:, 0] - hips[:, 0])[:, None]
        m[..., 2] += (path[:, 1] - hips[:, 2])[:, None]
        joints.append(m)
    joints = np.stack(joints)
    n, t, j = joints.shape[:3]
    c = len(cameras)
    pixels = np.full((c, t, slots, j, 2), np.nan)
    conf = np.zeros((c, t, slots, j))
    truth = np.full((c, t, slots), -1)
    for v, cam in enumerate(cameras):
        px = cam.project(joints) + rng.normal(0.0, noise_px, (n, t, j, 2))
        inside = np.isfinite(px).all(-1) & (px[..., 0] >= 0) & (px[..., 1] >= 0) \
            & (px[..., 0] < cam.size[0]) & (px[..., 1] < cam.size[1])
        for f in range(t):
            who = [i for i in range(n) if present[i, f] and inside[i, f].mean() > 0.5 and rng.random() >= miss]
            order = rng.permutation(slots)[:len(who)]
            for i, s in zip(who, order):
                k = px[i, f][mirror] if rng.random() < swap else px[i, f]
                pixels[v, f, s] = np.where(inside[i, f][:, None], k, np.nan)
                conf[v, f, s] = np.where(inside[i, f], 0.9, 0.0)
                truth[v, f, s] = i
    return joints, pixels, conf, truth


def association_scores(labels: np.ndarray, truth: np.ndarray) -> dict:
    """How well predicted person labels (C, T, P) match the true ones (C, T, P) (-1: none).

    Each predicted id stands for the true person it labels most often. A person-frame (a
    true person seen in two views or more in a frame) is correct when exactly that person's
    detections carry the person's id. Identity switches: changes of the id a true person is
    triangulated as (the id two or more of their detections carry in a frame), over the frames
    where they are; a lone detection with a wrong id is an association error, not a switch.
    """
    ids = [i for i in np.unique(labels) if i >= 0]
    owner = {}
    for i in ids:
        who, count = np.unique(truth[labels == i], return_counts=True)
        owner[i] = int(who[np.argmax(count)])
    correct = total = switches = 0
    for person in np.unique(truth[truth >= 0]):
        last = None
        for f in range(truth.shape[1]):
            mine = truth[:, f] == person
            if mine.any(-1).sum() < 2:
                continue
            total += 1
            got = labels[:, f][mine]
            if got[0] >= 0 and (got == got[0]).all() and owner.get(int(got[0])) == person \
                    and (labels[:, f] == got[0]).sum() == mine.sum():
                correct += 1
            found = [g for g in got if g >= 0]
            now = max(set(found), key=found.count) if found else None
            if now is not None and found.count(now) >= 2:  # triangulated as ``now`` in this frame
                if last is not None and now != last:
                    switches += 1
                last = now
    return {"accuracy": correct / max(total, 1), "person_frames": total, "switches": switches, "owner": owner}
