"""The joint fit of a whole clip to what the camera saw (PyTorch autograd, L-BFGS).

Unknowns, for one person and one static camera: every frame's local joint rotations (as
corrections of an initial IK solution), the root trajectory, the subject's bone lengths (one
set for the clip, left and right tied), the camera's pitch, roll and height above the
ground, and the height of each support surface. The objective (each term a sum of squares
over the clip, scaled by the number of frames):

* 2D reprojection of every joint, robust (Cauchy) and confidence-weighted, in units of the
  person's 2D height;
* a prior keeping the root-relative pose in the camera frame near the network's lift;
* smoothness: joint and root accelerations;
* contacts: a planted foot point does not move and rests on its support surface (robust:
  a contact the video disagrees with by much more than the scales gives way);
* no joint below the lowest support surface (the floor);
* weak priors: bone lengths near the initial ones, surfaces near their initial heights, the
  camera's roll near zero.

The body is solved in the camera frame and gravity apart from it (:func:`solve_fit`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mocap.skeletons import MOTION21


@dataclass(frozen=True)
class FitWeights:
    """Scales of the objective's terms (each residual is divided by its scale).

    Attributes:
        reprojection: 2D error, fraction of the person's 2D height.
        outlier: 2D errors beyond this (fraction of the 2D height) count less and less (Cauchy).
        pose_m: distance from the network's root-relative lift, metres.
        accel_m_s2: joint acceleration, m/s^2.
        root_accel_m_s2: root acceleration, m/s^2.
        contact_speed_m_s: speed of a planted foot point, m/s.
        contact_height_m: height of a planted foot point above its surface, metres.
        floor_m: depth of a joint below the floor, metres (quadratic up to this depth, then
            linear: a few frames far below, a foot the lift put too low, do not tip gravity over).
        bone_log: relative change of a bone length.
        surface_m: change of a support surface's height, metres.
        roll_rad: the camera's roll (most cameras are held level).
        gravity_rad: the turn of gravity away from its first estimate.
        com_m: in quasi-static frames, the horizontal distance from the centre of mass to the
            planted feet, metres.
        knot_s: the corrections of the joint rotations and of the root are cubic splines
            with a knot every this many seconds.
        sample_hz: the objective is evaluated on about this many frames per second.
    """

    reprojection: float = 0.01
    outlier: float = 0.08
    pose_m: float = 0.05
    accel_m_s2: float = 30.0
    root_accel_m_s2: float = 4.0
    contact_speed_m_s: float = 0.03
    contact_height_m: float = 0.01
    floor_m: float = 0.02
    bone_log: float = 0.05
    surface_m: float = 0.05
    roll_rad: float = float(np.radians(5.0))
    com_m: float = 0.05
    gravity_rad: float = float(np.radians(10.0))
    knot_s: float = 0.1
    sample_hz: float = 15.0


@dataclass(frozen=True)
class FitSolution:
    """What :func:`solve_fit` found.

    Attributes:
        local_rotmats: (T, J, 3, 3) local rotations, the root's in camera axes.
        root_cam: (T, 3) metres, the root in the camera frame.
        joints_cam: (T, J, 3) metres, the fitted joints in the camera frame.
        rest_offsets: (J, 3) metres, the fitted bone lengths.
        up_cam: (3,) unit vector, gravity's up in camera axes.
        camera_height: metres, the camera above the first guess's floor.
        surfaces: (S,) support surface heights, metres, on the same scale.
        iterations: L-BFGS iterations run.
        loss: (initial, final) objective.
    """

    local_rotmats: np.ndarray
    root_cam: np.ndarray
    joints_cam: np.ndarray
    rest_offsets: np.ndarray
    up_cam: np.ndarray
    camera_height: float
    surfaces: np.ndarray
    iterations: int
    loss: tuple[float, float]


def _rodrigues(torch, w):
    """(..., 3) axis-angle -> (..., 3, 3), differentiable at 0.

    ``R = I + a [w]x + b (w w^T - |w|^2 I)`` with ``a = sin t / t``, ``b = (1 - cos t) / t^2``
    (``[w]x^2 = w w^T - |w|^2 I``): element-wise products only, no batched matrix product.
    """
    theta2 = (w * w).sum(-1)[..., None, None]
    small = theta2 < 1e-8
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta * theta))
    x, y, z = w[..., 0], w[..., 1], w[..., 2]
    zero = torch.zeros_like(x)
    k = torch.stack([torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1),
                     torch.stack([-y, x, zero], -1)], -2)
    eye = torch.eye(3, dtype=w.dtype)
    return eye + a * k + b * (w[..., :, None] * w[..., None, :] - theta2 * eye)


def spline_knots(num_frames: int, spacing: float) -> int:
    """How many knots (K) :func:`spline_basis` has for ``num_frames`` frames, one every ``spacing``."""
    return int(np.ceil((num_frames - 1) / max(float(spacing), 1.0))) + 3


def spline_basis(num_frames: int, spacing: float) -> np.ndarray:
    """(T, K) uniform cubic B-spline basis, knots every ``spacing`` frames (a partition of unity).

    Per-frame corrections written as ``basis @ coefficients`` are smooth in time, and a fit
    has K instead of T unknowns per channel: fewer iterations, no high-frequency noise.
    """
    h = max(float(spacing), 1.0)
    count = spline_knots(num_frames, spacing)
    u = np.arange(num_frames)[:, None] / h - (np.arange(count)[None, :] - 1)
    a = np.abs(u)
    return np.where(a < 1, 2 / 3 - a ** 2 + a ** 3 / 2, np.where(a < 2, (2 - a) ** 3 / 6, 0.0))


def spline_rows(num_frames: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`spline_basis` by its non-zeros: each frame's four knots' weights (T, 4) and its first
    knot (T,) int; ``basis @ c`` is ``(weights[..., None] * c[first[:, None] + arange(4)]).sum(1)``
    (:func:`spline_mix`). Linear in T, where the dense basis is T x K (K grows with T too)."""
    h = max(float(spacing), 1.0)
    count = spline_knots(num_frames, spacing)
    x = np.arange(num_frames) / h
    # a frame's knots: the four from floor(x) on; the last frame may sit on a knot, where the
    # fourth weight is 0 and the knot past the end does not exist: those start one earlier
    # (weight 0 on the first; a one-frame clip's three knots: index -1, weight 0)
    first = np.minimum(np.floor(x).astype(np.int64), count - 4)
    a = np.abs(x[:, None] - (first[:, None] + np.arange(4)[None, :]) + 1)
    weights = np.where(a < 1, 2 / 3 - a ** 2 + a ** 3 / 2, np.where(a < 2, (2 - a) ** 3 / 6, 0.0))
    return weights, first


def spline_mix(torch, weights, first, coef):
    """``basis @ coef`` from :func:`spline_rows` (torch tensors): (T, C)."""
    idx = first[:, None] + torch.arange(4)[None, :]
    return (weights[..., None] * coef[idx]).sum(1)


def _levels(parents) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """The tree by depth: per level (its joints, their parents' positions in the order built so
    far), and the inverse permutation from that order back to joint order."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    order = [0]
    levels = []
    for d in range(1, max(depth) + 1):
        joints = [j for j in range(len(parents)) if depth[j] == d]
        levels.append((np.array(joints), np.array([order.index(parents[j]) for j in joints])))
        order += joints
    return levels, np.argsort(order)


def _forward(torch, local, root, offsets, levels):
    """Joint positions (T, J, 3) from local rotations (T, J, 3, 3), root (T, 3), offsets (J, 3),
    one batch of matrix products per depth of the tree (:func:`_levels`)."""
    glob = local[:, :1]
    pos = (root + offsets[0])[:, None]
    for joints, par in levels[0]:
        pg = glob[:, par]
        pos = torch.cat([pos, pos[:, par] + (pg @ offsets[joints][..., None])[..., 0]], 1)
        glob = torch.cat([glob, pg @ local[:, joints]], 1)
    return pos[:, levels[1]]


def solve_fit(*, keypoints_px: np.ndarray, confidence: np.ndarray, K: np.ndarray, rel_cam: np.ndarray,
              local_rotmats: np.ndarray, root_cam: np.ndarray, rest_offsets: np.ndarray, up_cam: np.ndarray,
              camera_height: float, contacts: np.ndarray, surface_index: np.ndarray, surfaces: np.ndarray,
              still: np.ndarray, fps: float, weights: FitWeights = FitWeights(), fix_scale: bool = False,
              fix_camera: bool = False, max_iterations: int = 60) -> FitSolution:
    """Fit the clip (see the module docstring); every array is MOTION21, T frames.

    The body is solved in the camera frame (so the 2D, the lift and the body's own motion do
    not depend on gravity), and gravity separately: the up direction in camera axes and the
    camera's height, which only the ground terms see (contacts, surfaces, floor, balance). A
    point's height above the floor is ``up . X_cam + camera_height``.

    Args:
        keypoints_px: (T, J, 2) 2D joints, pixels; NaN where unseen.
        confidence: (T, J) their weights in [0, 1] (0 where unseen).
        K: (3, 3) intrinsics, pixels.
        rel_cam: (T, J, 3) the network's root-relative joints in camera axes, metres.
        local_rotmats: (T, J, 3, 3) initial local rotations, the root's in camera axes.
        root_cam: (T, 3) initial root, metres, camera frame.
        rest_offsets: (J, 3) initial bones, metres.
        up_cam: (3,) initial gravity's up in camera axes; camera_height: metres above the floor.
        contacts: (T, 4) bool, foot points (:data:`mocap.cleanup.contact.CONTACT_POINTS`) planted.
        surface_index: (T, 4) int, the surface each planted point rests on (-1: none).
        surfaces: (S,) initial surface heights, metres; the lowest is the floor.
        still: (T,) bool, quasi-static frames (:func:`mocap.fit.ground.quasi_static`).
        fix_scale: keep the overall body size (the user gave the height); bone proportions still fit.
        fix_camera: keep gravity, the camera's height and the floor (the lowest surface) as
            given: the camera is known (another person of the same video solved it).
        max_iterations: L-BFGS iterations.
    Returns:
        :class:`FitSolution` (in the world of the solved gravity: see :func:`mocap.fit.fit.fit_person`).
    """
    import torch
    from scipy.optimize import minimize

    from mocap.cleanup.contact import CONTACT_POINTS
    from mocap.fit.ground import COM_WEIGHTS

    dt = torch.float32  # float64 costs 1.5x the time for no difference a person could see
    full_t, n = rel_cam.shape[:2]
    # the objective is evaluated at about weights.sample_hz frames per second: the corrections
    # are splines with a knot every knot_s, so denser samples add time, not information
    stride = max(1, int(round(fps / weights.sample_hz)))
    frames = np.unique(np.r_[np.arange(0, full_t, stride), full_t - 1])
    keypoints_px, confidence, rel_cam = keypoints_px[frames], confidence[frames], rel_cam[frames]
    full_rotmats, full_root = local_rotmats, root_cam
    local_rotmats, root_cam = local_rotmats[frames], root_cam[frames]
    contacts, surface_index, still = contacts[frames], surface_index[frames], np.asarray(still)[frames]
    fps = fps / stride
    t = len(frames)
    levels = _levels(list(MOTION21.parents))
    wts = weights
    tt = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dt)  # noqa: E731
    uv = tt(np.nan_to_num(keypoints_px))
    conf = tt(np.where(np.isfinite(keypoints_px).all(-1), confidence, 0.0))
    k = tt(K)
    rel = tt(rel_cam)
    r0 = tt(local_rotmats)
    root0 = tt(root_cam)
    off0 = tt(rest_offsets)
    up0 = tt(np.asarray(up_cam) / np.linalg.norm(up_cam))
    surf0 = tt(surfaces)
    pts = [MOTION21.index(nm) for nm in CONTACT_POINTS]
    cont = tt(contacts)
    sidx = torch.as_tensor(np.maximum(surface_index, 0), dtype=torch.long)
    has_surface = tt(surface_index >= 0)
    # the person's 2D height: the clip's median extent of the seen joints (a stable scale)
    seen = np.isfinite(keypoints_px).all(-1)
    ext = [np.ptp(keypoints_px[i, seen[i], 1]) for i in range(t) if seen[i].sum() >= 4]
    height_px = float(np.median(ext)) if ext else float(K[1, 1])
    outlier_px = height_px * wts.outlier
    rep_weight = (wts.outlier / wts.reprojection) ** 2
    # bones: a log-scale per bone, left and right tied
    tie = np.arange(n)
    for a, b in MOTION21.left_right:
        tie[b] = a
    tie_t = torch.as_tensor(tie)
    if fix_scale:  # the standing height is linear in the per-bone scales: height = coef . scale
        from mocap.fit.quality import standing_height
        coef = tt([standing_height(rest_offsets * (np.arange(n) == j)[:, None]) for j in range(n)])

    spline_w, spline_k = spline_rows(full_t, wts.knot_s * fps * stride)  # the basis by its non-zeros: linear in T
    full_basis = (tt(spline_w), torch.as_tensor(spline_k))
    basis = (full_basis[0][torch.as_tensor(frames)], full_basis[1][torch.as_tensor(frames)])
    knots = spline_knots(full_t, wts.knot_s * fps * stride)
    movers = torch.as_tensor(sorted(set(p for p in MOTION21.parents if p >= 0)))  # joints with children
    omega = torch.zeros((knots, len(movers) * 3), dtype=dt, requires_grad=True)
    droot = torch.zeros((knots, 3), dtype=dt, requires_grad=True)
    grav = torch.zeros(3, dtype=dt, requires_grad=True)  # up's turn (axis-angle, camera axes); the height's change
    logb = torch.zeros(n, dtype=dt, requires_grad=True)
    surf = surf0.clone().requires_grad_(True)
    # a known camera: gravity, its height and the floor stay; the other surfaces still fit
    params = [omega, droot, logb, surf] if fix_camera else [omega, droot, grav, logb, surf]
    acc_scale = wts.accel_m_s2 / fps ** 2
    root_acc_scale = wts.root_accel_m_s2 / fps ** 2
    vel_scale = wts.contact_speed_m_s / fps
    both = cont[1:] * cont[:-1]
    com_w = tt(COM_WEIGHTS)
    still_t = tt(np.asarray(still, bool) & np.asarray(contacts, bool).any(1))

    def model(basis=basis, r0=r0, root0=root0):
        local = r0.clone()
        rows = len(basis[1])
        turns = spline_mix(torch, *basis, omega).view(rows, len(movers), 3)
        local[:, movers] = r0[:, movers] @ _rodrigues(torch, turns)
        scale = torch.exp(logb[tie_t])
        if fix_scale:  # proportions fit, the standing height stays the user's
            scale = scale * (coef.sum() / (coef @ scale))
        offsets = off0 * scale[:, None]
        joints = _forward(torch, local, root0 + spline_mix(torch, *basis, droot), offsets, levels)
        turn = torch.stack([grav[0], torch.zeros((), dtype=dt), grav[1]])  # about camera x (pitch) and z (roll)
        up = _rodrigues(torch, turn) @ up0
        return joints, up, camera_height + grav[2], offsets, local

    lowest = int(np.argmin(surfaces)) if len(surfaces) else -1

    def surface_heights():
        """The support surfaces' heights; with ``fix_camera`` the lowest (the floor) stays."""
        if not fix_camera or lowest < 0:
            return surf
        return torch.where(torch.arange(len(surfaces)) == lowest, surf0, surf)

    def parts():
        """The objective's terms by name (each a sum over the clip)."""
        joints, up, height, _, _ = model()
        out = {}
        z = torch.clamp(joints[..., 2], min=1e-3)
        proj = torch.stack([k[0, 0] * joints[..., 0] / z + k[0, 2], k[1, 1] * joints[..., 1] / z + k[1, 2]], -1)
        e2 = ((proj - uv) ** 2).sum(-1) / outlier_px ** 2
        out["2d"] = rep_weight * (conf * torch.log1p(e2)).sum()
        out["lift"] = (((joints - joints[:, :1] - rel) / wts.pose_m) ** 2).sum()
        if t >= 3:
            acc = joints[2:] - 2 * joints[1:-1] + joints[:-2]
            out["smooth"] = ((acc / acc_scale) ** 2).sum() + ((acc[:, 0] / root_acc_scale) ** 2).sum()
        feet = joints[:, pts]  # (T, 4, 3)
        if t >= 2:
            step = feet[1:] - feet[:-1]
            out["planted"] = (both * torch.log1p((step ** 2).sum(-1) / vel_scale ** 2)).sum()
        elevation = joints @ up + height  # (T, J) metres above the floor of the first guess
        heights = surface_heights()
        if len(surfaces):
            dh = (elevation[:, pts] - heights[sidx]) * has_surface * cont
            out["surfaces"] = torch.log1p((dh / wts.contact_height_m) ** 2).sum()
        floor = heights.min() if len(surfaces) else torch.zeros((), dtype=dt)
        below = torch.relu(floor - elevation) / wts.floor_m
        out["floor"] = 2 * (torch.sqrt(1 + below ** 2) - 1).sum()  # quadratic near the floor, then linear
        if bool(still_t.any()):
            com = (com_w[:, None] * joints).sum(1)
            support = (cont[..., None] * feet).sum(1) / torch.clamp(cont.sum(1, keepdim=True), min=1)
            off = com - support
            off = off - (off @ up)[:, None] * up
            out["balance"] = (still_t * torch.log1p((off ** 2).sum(-1) / wts.com_m ** 2)).sum()
        # the priors on global unknowns weigh as much as ten frames of the video's data; each sampled
        # frame stands for `stride` of them (without this a 60 fps clip's priors, sampled at 15 Hz,
        # weighed four times as much: its solved pitch stuck near the first guess)
        prior = 10.0 / stride
        out["bones"] = prior * ((logb / wts.bone_log) ** 2).sum()
        if len(surfaces):
            out["surface heights"] = prior * (((surf - surf0) / wts.surface_m) ** 2).sum()
        roll = torch.atan2(-up[0], -up[1])  # the image's x axis off the horizontal
        out["roll"] = prior * (roll / wts.roll_rad) ** 2
        out["gravity"] = prior * ((grav[0] ** 2 + grav[1] ** 2) / wts.gravity_rad ** 2)
        return out

    def objective():
        return sum(parts().values()) / t

    sizes = [p.numel() for p in params]

    def unpack(x):
        with torch.no_grad():
            for p, chunk in zip(params, torch.split(torch.from_numpy(x), sizes)):
                p.copy_(chunk.view_as(p))

    def value_and_grad(x):
        unpack(x)
        for p in params:
            p.grad = None
        loss = objective()
        loss.backward()
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]  # a term absent: no gradient
        return float(loss.detach()), torch.cat([g.reshape(-1) for g in grads]).numpy().astype(np.float64)

    x0 = torch.cat([p.detach().reshape(-1) for p in params]).numpy().astype(np.float64)
    debug = bool(os.environ.get("MOCAP_FIT_DEBUG"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: threads cost more than they give, and stall under load
    try:
        first = value_and_grad(x0)[0]
        if debug:
            with torch.no_grad():
                print("fit terms before:", {n: round(float(v) / t, 3) for n, v in parts().items()})
        res = minimize(value_and_grad, x0, jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iterations, "maxcor": 10, "ftol": 1e-10, "gtol": 1e-6})
    finally:
        torch.set_num_threads(threads)
    unpack(res.x)
    with torch.no_grad():
        if debug:
            print("fit terms after: ", {n: round(float(v) / t, 3) for n, v in parts().items()}, "gravity", grav.numpy(),
                  "iterations", res.nit)
        last = float(objective())
        root_full = tt(full_root)
        joints, up, height, offsets, local = model(full_basis, tt(full_rotmats), root_full)
    root_cam = (root_full + spline_mix(torch, *full_basis, droot)).detach().numpy()
    return FitSolution(local_rotmats=local.detach().numpy(), root_cam=root_cam,
                       joints_cam=joints.detach().numpy(), rest_offsets=offsets.detach().numpy(), up_cam=up.detach().numpy(),
                       camera_height=float(height.detach()), surfaces=surface_heights().detach().numpy(),
                       iterations=int(res.nit),
                       loss=(first, last))
