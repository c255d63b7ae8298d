"""Calibration from the people in the shot: camera poses from 2D keypoints, no board.

Every (frame, joint) that several views see is a 3D point whose images correspond across
the views. From them: the relative pose of a first pair of cameras (essential matrix,
RANSAC), the other cameras by PnP against the points that pair triangulates, then a bundle
adjustment (``scipy.optimize.least_squares``, robust loss, sparse Jacobian) of all camera
poses and 3D points. Poses from images have no scale: it is fixed afterwards by a stated
body height. Intrinsics (focal length, principal point, distortion) come from the caller:
a board calibration, a camera database, or :func:`guess_intrinsics` from the field of view
(then ``refine_focal`` lets the adjustment correct a focal length shared by the cameras).
:func:`refine_extrinsics` runs the same adjustment from a calibrated rig whose poses no
longer fit the videos exactly, keeping its world frame and scale.

World frame of the result: camera 0's axes and centre (x right, y down, z forward), metres.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mocap.io.calibration_files import matrix_to_rotvec, rotvec_to_matrix
from mocap.camera import Camera, project_points
from mocap.errors import MocapError
from mocap.skeletons import Skeleton, get_layout
from mocap.multiview.triangulate import triangulate_resolving_swaps, triangulate_robust

#: Standing height fractions (Drillis & Contini): ankle 0.039, shoulder 0.818 of stature.
_ANKLE_TO_SHOULDER = 0.818 - 0.039


@dataclass(frozen=True)
class PeopleCalibrationReport:
    """Diagnostics of :func:`calibrate_from_people`.

    Attributes:
        num_points: 3D points (frame, joint) used in the bundle adjustment.
        num_observations: their 2D observations over all views.
        reprojection_px: (C,) median reprojection error per view after adjustment, pixels.
        scale: metres per unit of the scale-free reconstruction.
        measured_height_m: the body height measured in the scaled result (equals the stated one).
    """

    num_points: int
    num_observations: int
    reprojection_px: np.ndarray
    scale: float
    measured_height_m: float


def guess_intrinsics(size: tuple[int, int], *, fov_deg: float = 55.0, focal_px: float | None = None,
                     name: str = "cam") -> Camera:
    """A camera with square pixels, the principal point at the centre and ``focal_px``
    (default: a ``fov_deg`` field of view on the long side); identity pose, no distortion."""
    f = focal_px if focal_px is not None else 0.5 * max(size) / np.tan(np.radians(fov_deg) / 2)
    k = np.array([[f, 0.0, size[0] / 2.0], [0.0, f, size[1] / 2.0], [0.0, 0.0, 1.0]])
    return Camera(name=name, size=tuple(size), K=k, R=np.eye(3), t=np.zeros(3), dist=np.zeros(5))


def body_height(points: np.ndarray, layout: Skeleton | str) -> float:
    """Standing height in the units of ``points`` from the leg and trunk lengths.

    The ankle-knee, knee-hip and hip-shoulder segment lengths (medians over frames, both
    sides averaged) add up to 0.779 of stature for an upright adult (Drillis & Contini).

    Args:
        points: (T, J, 3) joints of ``layout`` (needs ankles, knees, hips, shoulders).
    """
    sk = get_layout(layout) if isinstance(layout, str) else layout
    total = []
    for side in ("left", "right"):
        idx = [sk.index(f"{side}_{n}") for n in ("ankle", "knee", "hip", "shoulder")]
        seg = np.linalg.norm(np.diff(points[:, idx], axis=1), axis=-1)  # (T, 3)
        total.append(np.nanmedian(seg, axis=0).sum())
    h = float(np.nanmean(total)) / _ANKLE_TO_SHOULDER
    if not np.isfinite(h) or h <= 0:
        raise MocapError("cannot measure the body height: ankles, knees, hips or shoulders never triangulated")
    return h


def rotation_angle_deg(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """(...,) angle in degrees of the rotation taking ``r1`` (..., 3, 3) to ``r2``."""
    m = np.einsum("...ji,...jk->...ik", r1, r2)
    c = np.clip((np.einsum("...ii->...", m) - 1) / 2, -1.0, 1.0)
    return np.degrees(np.arccos(c))


def relative_to_first(cameras: Sequence[Camera]) -> list[Camera]:
    """The same rig with camera 0's frame as the world (camera 0 at the origin, R = I)."""
    r0, t0 = cameras[0].R, cameras[0].t
    out = []
    for cam in cameras:
        r = cam.R @ r0.T
        out.append(Camera(name=cam.name, size=cam.size, K=cam.K, R=r, t=cam.t - r @ t0, dist=cam.dist))
    return out


def compare_rigs(estimated: Sequence[Camera], reference: Sequence[Camera], *,
                 fit_scale: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (degrees) and position (metres) error per camera of ``estimated`` against ``reference``.

    Both rigs are expressed in their camera 0's frame. With ``fit_scale`` the estimated
    positions are first scaled by the least-squares factor onto the reference (for a
    reconstruction whose scale was not fixed).
    Returns (C,) rotation errors and (C,) position errors.
    """
    est, ref = relative_to_first(estimated), relative_to_first(reference)
    rot = np.array([rotation_angle_deg(e.R, r.R) for e, r in zip(est, ref)])
    pe = np.stack([e.position for e in est])
    pr = np.stack([r.position for r in ref])
    if fit_scale:
        pe = pe * float((pe * pr).sum() / max((pe * pe).sum(), 1e-30))
    return rot, np.linalg.norm(pe - pr, axis=-1)


def _normalised(cam: Camera, pixels: np.ndarray) -> np.ndarray:
    """(..., 2) distorted pixels -> (..., 2) normalised image coordinates."""
    ideal = cam.undistort_pixels(pixels)
    k_inv = np.linalg.inv(cam.K)
    return ideal @ k_inv[:2, :2].T + k_inv[:2, 2]


def _initial_poses(norm: np.ndarray, valid: np.ndarray, focal: np.ndarray, threshold_px: float):
    """Relative poses (R, t) of every camera in camera 0's frame, up to one scale.

    norm (C, N, 2) normalised coordinates, valid (C, N) bool.
    """
    import cv2

    c = norm.shape[0]
    shared = [(valid[0] & valid[k]).sum() if k else -1 for k in range(c)]
    partner = int(np.argmax(shared))
    both = valid[0] & valid[partner]
    if both.sum() < 15:
        raise MocapError(f"views 0 and {partner} share only {int(both.sum())} keypoints; calibration from people needs "
                         "the person visible in the same frames of several views")
    thr = threshold_px / float(np.mean(focal[[0, partner]]))
    e, mask = cv2.findEssentialMat(norm[0, both], norm[partner, both], np.eye(3), method=cv2.RANSAC,
                                   prob=0.9999, threshold=thr)
    if e is None or e.shape != (3, 3):
        e = e[:3] if e is not None and e.shape[0] > 3 else None
    if e is None:
        raise MocapError(f"no relative pose between views 0 and {partner}: the keypoints do not fit one rigid motion")
    _, r, t, mask = cv2.recoverPose(e, norm[0, both], norm[partner, both], np.eye(3), mask=mask)
    rs, ts = [np.eye(3)] * c, [np.zeros(3)] * c
    rs[partner], ts[partner] = r, t.reshape(3)
    proj = np.stack([np.hstack([rs[i], ts[i][:, None]]) for i in (0, partner)])
    w = np.stack([valid[0], valid[partner]]).astype(float)
    pts, _ = triangulate_robust(np.where(valid[[0, partner], :, None], norm[[0, partner]], np.nan), proj, w,
                                threshold_px=thr)
    for k in range(c):
        if k in (0, partner):
            continue
        ok = valid[k] & np.isfinite(pts).all(-1)
        if ok.sum() < 6:
            raise MocapError(f"view {k} shares only {int(ok.sum())} keypoints with views 0 and {partner}; "
                             "cannot place it")
        found, rvec, tvec, _ = cv2.solvePnPRansac(pts[ok], norm[k, ok], np.eye(3), None, reprojectionError=thr,
                                                  iterationsCount=500, flags=cv2.SOLVEPNP_EPNP)
        if not found:
            raise MocapError(f"could not place view {k} from the keypoints (PnP failed)")
        rs[k], ts[k] = rotvec_to_matrix(rvec.reshape(3)), tvec.reshape(3)
    return np.stack(rs), np.stack(ts), partner


def _bundle_adjust(rs, ts, points, obs_cam, obs_pt, obs_xy, k_mats, *, loss_scale_px: float, max_nfev: int,
                   shared_focal: bool = False):
    """Poses (C, 3, 3), (C, 3) and points (N, 3) minimising robust pixel reprojection error.

    Camera 0 is held fixed at the origin; the sum of the other cameras' distances to it
    keeps its initial value exactly (the gauge of the scale: translations and points are
    rescaled to it on every evaluation, since a penalty term inside the robust loss is too
    weak to hold it and the rig drifted in size). With ``shared_focal`` one factor
    scaling every camera's focal lengths is adjusted too.
    obs_cam, obs_pt (M,) indices; obs_xy (M, 2) undistorted pixels; k_mats (C, 3, 3).
    Returns poses, points and the focal factor (1.0 unless ``shared_focal``).
    """
    from scipy.optimize import least_squares
    from scipy.sparse import lil_matrix

    c, n, m = len(rs), len(points), len(obs_cam)
    spread = float(np.linalg.norm(ts[1:], axis=-1).sum())
    x0 = np.concatenate([matrix_to_rotvec(rs[1:]).ravel(), ts[1:].ravel(), points.ravel(),
                         [0.0] if shared_focal else []])
    npar = 6 * (c - 1) + 3 * n
    k_obs = k_mats[obs_cam]  # (M, 3, 3)

    def unpack(x):
        rv = np.concatenate([np.zeros((1, 3)), x[:3 * (c - 1)].reshape(-1, 3)])
        tt = np.concatenate([np.zeros((1, 3)), x[3 * (c - 1):6 * (c - 1)].reshape(-1, 3)])
        gauge = spread / max(float(np.linalg.norm(tt[1:], axis=-1).sum()), 1e-12)  # projections do not change
        scale = float(np.exp(x[npar])) if shared_focal else 1.0
        return rotvec_to_matrix(rv), tt * gauge, x[6 * (c - 1):npar].reshape(-1, 3) * gauge, scale

    def residuals(x):
        r, t, p, f = unpack(x)
        pc = np.einsum("mij,mj->mi", r[obs_cam], p[obs_pt]) + t[obs_cam]
        k = k_obs
        if f != 1.0:
            k = k_obs.copy()
            k[:, :2, :2] *= f
        # the solver needs finite residuals: a point that strays behind a camera still gets a pixel
        return (project_points(pc, k, nan_behind=False) - obs_xy).ravel()

    sparsity = lil_matrix((2 * m, x0.size), dtype=np.uint8)
    rows = np.arange(m)
    for k in range(3):
        for d in range(2):
            has = obs_cam > 0
            sparsity[2 * rows[has] + d, 3 * (obs_cam[has] - 1) + k] = 1
            sparsity[2 * rows[has] + d, 3 * (c - 1) + 3 * (obs_cam[has] - 1) + k] = 1
            sparsity[2 * rows + d, 6 * (c - 1) + 3 * obs_pt + k] = 1
    sparsity[:, 3 * (c - 1):6 * (c - 1)] = 1  # through the gauge, every residual sees every translation
    if shared_focal:
        sparsity[:2 * m, npar] = 1
    # coarse to fine: a wide robust loss first (a nudged rig starts tens of pixels off, where a
    # tight loss is nearly L1 and converges slowly), then the tight one against the outliers
    x = x0
    for f_scale in (8 * loss_scale_px, loss_scale_px):
        x = least_squares(residuals, x, jac_sparsity=sparsity, loss="soft_l1", f_scale=f_scale,
                          x_scale="jac", method="trf", max_nfev=max_nfev, xtol=1e-10, ftol=1e-10).x
    return unpack(x)


def _adjust_rig(rs, ts, *, ideal, valid, k_mats, skeleton, threshold_px, max_points, max_nfev, seed,
                shared_focal=False):
    """Swap resolution, robust triangulation and bundle adjustment of a rig in camera 0's frame.

    rs (C, 3, 3), ts (C, 3) initial poses with camera 0 at the origin; ideal (C, T, J, 2)
    undistorted pixels; valid (C, T, J). Returns the adjusted poses, the (T, J, 3) points
    triangulated with them, (points used, observations, (C,) median residual pixels) and
    the (C, 3, 3) intrinsics (focal lengths adjusted with ``shared_focal``).
    """
    k_mats = k_mats.copy()
    c, t_len, j = valid.shape
    sk = skeleton
    swapped = np.zeros((c, t_len), bool)
    # swaps judged with a rough rig can be wrong: judge them again with the adjusted one
    for round_ in range(3):
        proj = np.einsum("cij,cjk->cik", k_mats, np.concatenate([rs, ts[:, :, None]], -1))
        px = np.where(valid[..., None], ideal, np.nan)
        w = valid.astype(float)
        if sk.left_right and c > 2:
            mirror = sk.mirror_permutation()
            previous = swapped
            swapped = triangulate_resolving_swaps(px, proj, w, mirror, outlier_px=threshold_px)[1]
            if round_ and (swapped == previous).all():
                break
            px = np.where(swapped[..., None, None], px[:, :, mirror], px)
            w = np.where(swapped[..., None], w[:, :, mirror], w)
        elif round_:
            break
        pts, inl = triangulate_robust(px, proj, w, threshold_px=threshold_px)
        pts, inl, px = pts.reshape(-1, 3), inl.reshape(c, -1), px.reshape(c, -1, 2)
        keep = np.flatnonzero(np.isfinite(pts).all(-1) & (inl.sum(0) >= 2))
        if keep.size < 20:
            raise MocapError(f"only {keep.size} keypoints agree across views; calibration from people needs the "
                             "person clearly visible in several views at once")
        if keep.size > max_points:
            keep = np.sort(np.random.default_rng(seed).choice(keep, max_points, replace=False))
        # observations: every view that sees the point (the robust loss handles the rest)
        obs_cam, obs_pt = np.nonzero(np.isfinite(px[:, keep]).all(-1))
        obs_xy = px[obs_cam, keep[obs_pt]]
        rs, ts, pts_ba, focal = _bundle_adjust(rs, ts, pts[keep], obs_cam, obs_pt, obs_xy, k_mats,
                                               loss_scale_px=max(threshold_px / 4, 1.0), max_nfev=max_nfev,
                                               shared_focal=shared_focal)
        k_mats[:, :2, :2] *= focal
        px = px.reshape(c, t_len, j, 2)
    proj = np.einsum("cij,cjk->cik", k_mats, np.concatenate([rs, ts[:, :, None]], -1))
    px = np.where(valid[..., None], ideal, np.nan)
    w = valid.astype(float)
    if sk.left_right and c > 2:
        px = np.where(swapped[..., None, None], px[:, :, sk.mirror_permutation()], px)
        w = np.where(swapped[..., None], w[:, :, sk.mirror_permutation()], w)
    all_pts, _ = triangulate_robust(px, proj, w, threshold_px=threshold_px)
    errs = []
    for ci in range(c):
        sel = obs_cam == ci
        pc = np.einsum("ij,nj->ni", rs[ci], pts_ba[obs_pt[sel]]) + ts[ci]
        err = np.linalg.norm(project_points(pc, k_mats[ci]) - obs_xy[sel], axis=-1)
        errs.append(float(np.median(np.where(np.isnan(err), np.inf, err))) if sel.any() else np.nan)  # behind: inf
    return rs, ts, all_pts, (int(keep.size), int(obs_cam.size), np.array(errs)), k_mats


def calibrate_from_people(
    keypoints: np.ndarray,
    confidence: np.ndarray,
    intrinsics: Sequence[Camera],
    *,
    body_height_m: float,
    layout: Skeleton | str,
    min_confidence: float = 0.5,
    threshold_px: float = 15.0,
    max_points: int = 3000,
    max_nfev: int = 200,
    refine_focal: bool = False,
    seed: int = 0,
) -> tuple[list[Camera], PeopleCalibrationReport]:
    """Camera poses from the keypoints of a person seen by all views over time.

    Args:
        keypoints: (C, T, J, 2) distorted pixels per view, synchronised; NaN where missing.
        confidence: (C, T, J) in [0, 1].
        intrinsics: C cameras whose K, dist, size and name are used (their poses are ignored).
        body_height_m: the person's standing height, metres; fixes the scale.
        layout: the keypoint layout (its left/right pairs undo a detector's swaps, and its
            ankles, knees, hips and shoulders measure the height).
        min_confidence: keypoints below this are not used.
        threshold_px: RANSAC inlier threshold, pixels.
        max_points: at most this many (frame, joint) points enter the bundle adjustment.
        refine_focal: also adjust one factor on every camera's focal lengths (for
            intrinsics guessed from a field of view; the cameras should be alike).
    Returns:
        (C cameras in camera 0's frame, metres; report).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    conf = np.nan_to_num(np.asarray(confidence, dtype=np.float64))
    c = kp.shape[0]
    if kp.ndim != 4 or kp.shape[-1] != 2 or conf.shape != kp.shape[:-1]:
        raise ValueError(f"keypoints must be (C, T, J, 2) and confidence (C, T, J), got {kp.shape}, {conf.shape}")
    if c < 2 or len(intrinsics) != c:
        raise MocapError(f"calibration from people needs at least 2 views and one camera per view "
                         f"({c} views, {len(intrinsics)} cameras)")
    if not (body_height_m > 0.3):
        raise MocapError(f"body height must be in metres (e.g. 1.75), got {body_height_m}")
    sk = get_layout(layout) if isinstance(layout, str) else layout
    t_len, j = kp.shape[1:3]
    valid = np.isfinite(kp).all(-1) & (conf >= min_confidence)
    ideal = np.stack([cam.undistort_pixels(x) for cam, x in zip(intrinsics, kp)])  # (C, T, J, 2)
    norm = np.stack([_normalised(cam, x) for cam, x in zip(intrinsics, kp)])
    k_mats = np.stack([cam.K for cam in intrinsics])
    focal = k_mats[:, [0, 1], [0, 1]].mean(1)

    rs, ts, _ = _initial_poses(norm.reshape(c, -1, 2), valid.reshape(c, -1), focal, threshold_px)
    rs, ts, all_pts, stats, k_mats = _adjust_rig(rs, ts, ideal=ideal, valid=valid, k_mats=k_mats, skeleton=sk,
                                                 threshold_px=threshold_px, max_points=max_points,
                                                 max_nfev=max_nfev, seed=seed, shared_focal=refine_focal)
    scale = body_height_m / body_height(all_pts, sk)
    cams = [Camera(name=cam.name, size=cam.size, K=k, R=r, t=t * scale, dist=cam.dist)
            for cam, k, r, t in zip(intrinsics, k_mats, rs, ts)]
    report = PeopleCalibrationReport(num_points=stats[0], num_observations=stats[1], reprojection_px=stats[2],
                                     scale=float(scale), measured_height_m=float(body_height(all_pts * scale, sk)))
    return cams, report


def refine_extrinsics(
    cameras: Sequence[Camera],
    keypoints: np.ndarray,
    confidence: np.ndarray,
    *,
    layout: Skeleton | str,
    min_confidence: float = 0.5,
    threshold_px: float = 25.0,
    max_points: int = 3000,
    max_nfev: int = 200,
    seed: int = 0,
) -> tuple[list[Camera], PeopleCalibrationReport]:
    """Adjust the poses of a calibrated rig to the keypoints of the person in the shot.

    For a calibration that no longer fits the videos exactly (a camera nudged, a board or
    wand calibration made at another time): a bundle adjustment of the camera poses and
    the 3D points, starting from ``cameras``. The world frame and the scale stay those of
    ``cameras``: camera 0 is held fixed, and so is the sum of the other cameras' distances to it.
    Intrinsics are not changed.

    Args:
        cameras: C calibrated cameras, metres.
        keypoints: (C, T, J, 2) distorted pixels, synchronised; NaN where missing.
        confidence: (C, T, J).
    Returns:
        (C adjusted cameras, report; ``scale`` is 1).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    conf = np.nan_to_num(np.asarray(confidence, dtype=np.float64))
    c = kp.shape[0]
    if kp.ndim != 4 or kp.shape[-1] != 2 or conf.shape != kp.shape[:-1] or len(cameras) != c or c < 2:
        raise ValueError(f"need (C, T, J, 2) keypoints, (C, T, J) confidence and C >= 2 cameras; got {kp.shape}, "
                         f"{conf.shape}, {len(cameras)}")
    sk = get_layout(layout) if isinstance(layout, str) else layout
    rel = relative_to_first(cameras)
    rs = np.stack([cam.R for cam in rel])
    ts = np.stack([cam.t for cam in rel])
    valid = np.isfinite(kp).all(-1) & (conf >= min_confidence)
    ideal = np.stack([cam.undistort_pixels(x) for cam, x in zip(cameras, kp)])
    k_mats = np.stack([cam.K for cam in cameras])
    rs, ts, all_pts, stats, k_mats = _adjust_rig(rs, ts, ideal=ideal, valid=valid, k_mats=k_mats, skeleton=sk,
                                                 threshold_px=threshold_px, max_points=max_points,
                                                 max_nfev=max_nfev, seed=seed, shared_focal=False)
    r0, t0 = cameras[0].R, cameras[0].t  # back from camera 0's frame to the original world
    out = [Camera(name=cam.name, size=cam.size, K=cam.K, R=r @ r0, t=t + r @ t0, dist=cam.dist)
           for cam, r, t in zip(cameras, rs, ts)]
    try:
        height = body_height(all_pts, sk)
    except MocapError:
        height = float("nan")
    report = PeopleCalibrationReport(num_points=stats[0], num_observations=stats[1], reprojection_px=stats[2],
                                     scale=1.0, measured_height_m=height)
    return out, report
