"""Gravity, the camera and the support surfaces of a monocular clip, before the joint fit.

Everything here works on the lifted pose in the camera frame (x right, y down, z forward,
metres) and is a pure array function:

* :func:`center_of_mass`: the body's centre of mass from MOTION21 joints (segment masses).
* :func:`estimate_up`: gravity in camera axes. A person who stands still keeps the centre of
  mass over the feet that carry them, whatever their torso does, so the direction from the
  planted feet to the centre of mass, over the quasi-static frames in which the legs carry the
  body (:func:`standing`: not seated), is "up"; a clip with no such frame keeps a level camera. The clip's median torso axis is never used: a person who
  leans most of the time would be stood upright.
* :func:`world_from_camera`: the rotation from camera axes to the world (+Y up, the camera
  looking along -Z in yaw) for an up direction, and the camera's pitch and roll.
* :func:`support_surfaces`: the heights the planted feet rest on (the floor, a box, a
  stair), one per cluster of contact heights.
"""
from __future__ import annotations

import numpy as np

from mocap.cleanup.contact import CONTACT_POINTS, clean_runs
from mocap.cleanup.filters import true_runs
from mocap.skeletons import MOTION21

#: Segment mass fractions of an adult body (Winter's anthropometric tables, rounded), each
#: segment between two MOTION21 joints (its centre taken halfway), summing to 1.
SEGMENT_MASSES: tuple[tuple[str, str, float], ...] = (
    ("neck", "head", 0.081),
    ("pelvis", "neck", 0.497),
    *[(f"{s}_{a}", f"{s}_{b}", m) for s in ("left", "right") for a, b, m in (
        ("shoulder", "elbow", 0.028), ("elbow", "wrist", 0.016), ("wrist", "wrist", 0.006),
        ("hip", "knee", 0.100), ("knee", "ankle", 0.0465), ("heel", "foot_index", 0.0145))],
)

_CAMERA_UP = np.array([0.0, -1.0, 0.0])  # a level camera: image up is world up


def _com_matrix() -> np.ndarray:
    m = np.zeros(MOTION21.num_joints)
    for a, b, w in SEGMENT_MASSES:
        m[MOTION21.index(a)] += w / 2
        m[MOTION21.index(b)] += w / 2
    return m


COM_WEIGHTS = _com_matrix()  # (21,) weights of the joints in the centre of mass; sum 1


def center_of_mass(joints: np.ndarray) -> np.ndarray:
    """(..., 21, 3) MOTION21 joints, metres -> (..., 3) the centre of mass (:data:`SEGMENT_MASSES`)."""
    x = np.asarray(joints, dtype=np.float64)
    if x.shape[-2:] != (MOTION21.num_joints, 3):
        raise ValueError(f"joints must have shape (..., {MOTION21.num_joints}, 3), got {x.shape}")
    return np.einsum("j,...jk->...k", COM_WEIGHTS, x)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def world_from_camera(up_cam: np.ndarray) -> np.ndarray:
    """(3, 3) rotation from camera axes to world axes for gravity ``up_cam`` (3,) in camera axes.

    World +Y is ``up_cam``; world -Z is the camera's viewing direction projected on the
    horizontal plane (so a level camera gives :data:`mocap.cleanup.world.CAMERA_TO_WORLD`).
    ``world = R @ camera``.
    """
    y = _unit(np.asarray(up_cam, dtype=np.float64))
    forward = np.array([0.0, 0.0, 1.0])
    horizontal = forward - (forward @ y) * y
    if np.linalg.norm(horizontal) < 1e-6:  # looking straight down or up: keep image up as -Z
        horizontal = np.array([0.0, -1.0, 0.0]) - y[1] * y
    z = -_unit(horizontal)
    return np.stack([np.cross(y, z), y, z])


def camera_pitch_roll(world_from_cam: np.ndarray) -> tuple[float, float]:
    """(pitch, roll) in radians of a camera whose axes map to the world by ``world_from_cam`` (3, 3).

    Pitch: the optical axis below the horizontal (positive looking down). Roll: the turn
    about the optical axis that lifts the image's right side (0: the image x axis is horizontal);
    the camera is ``roll`` after ``pitch`` after a level camera.
    """
    r = np.asarray(world_from_cam, dtype=np.float64)
    forward, right, down = r[:, 2], r[:, 0], r[:, 1]
    return float(-np.arcsin(np.clip(forward[1], -1, 1))), float(np.arctan2(right[1], -down[1]))


def quasi_static(joints: np.ndarray, contacts: np.ndarray, *, fps: float, max_com_accel: float = 3.0) -> np.ndarray:
    """(T,) bool: frames with a foot point planted and a centre of mass that hardly accelerates
    (under ``max_com_accel`` m/s^2): there the centre of mass is over the planted feet.

    Args:
        joints: (T, 21, 3) MOTION21 joints, metres, any frame; contacts: (T, 4) bool.
    """
    com = center_of_mass(joints)
    accel = np.zeros(len(com))
    if len(com) >= 3:  # over the same time span at any frame rate (:func:`_velocity`)
        accel = np.linalg.norm(_velocity(_velocity(com, fps), fps), axis=-1)
    return np.asarray(contacts, bool).any(1) & (accel < max_com_accel)


#: :func:`standing`: a leg carries the body when its hip-to-ankle span is at least this share of
#: its thigh and shin together (the knee's inner angle over about 105 degrees); seated, with the
#: knee at a right angle, it is about 0.7, and the weight rests on the seat, not over the feet
STRAIGHT_LEG = 0.8


def standing(joints: np.ndarray, contacts: np.ndarray) -> np.ndarray:
    """(T,) bool: frames where every leg with a planted foot point is straighter than a seated
    one (:data:`STRAIGHT_LEG`): the body stands on its feet, so its balance says where up is. A
    person sitting (feet planted, knees bent, the weight on the seat) or in a deep squat does not.

    Args:
        joints: (T, 21, 3) MOTION21 joints, metres, any frame; contacts: (T, 4) bool,
            columns :data:`mocap.cleanup.contact.CONTACT_POINTS` (left heel, left toe, right heel, right toe).
    """
    x = np.asarray(joints, dtype=np.float64)
    c = np.asarray(contacts, bool)
    ok = c.any(1)
    for side, cols in (("left", [0, 1]), ("right", [2, 3])):
        hip, knee, ankle = (x[:, MOTION21.index(f"{side}_{j}")] for j in ("hip", "knee", "ankle"))
        span = np.linalg.norm(ankle - hip, axis=-1)
        length = np.linalg.norm(knee - hip, axis=-1) + np.linalg.norm(ankle - knee, axis=-1)
        straight = span >= STRAIGHT_LEG * length
        ok &= straight | ~c[:, cols].any(1)
    return ok


def _velocity(x: np.ndarray, fps: float, span_s: float = 1.0 / 30.0) -> np.ndarray:
    """(T, ...) per-second velocity of ``x`` (T, ...), each frame's from the frames ``span_s``
    before and after it (one frame at 30 fps, two at 60): the same time span at any frame
    rate, so the detector's frame-to-frame jitter reads as the same speed (a central
    difference over one frame at 60 fps doubles it). NaN where either end is NaN."""
    t = len(x)
    k = max(1, int(round(span_s * fps)))
    hi, lo = np.minimum(np.arange(t) + k, t - 1), np.maximum(np.arange(t) - k, 0)
    return (x[hi] - x[lo]) * (fps / np.maximum(hi - lo, 1)).reshape((t,) + (1,) * (x.ndim - 1))


def planted(joints: np.ndarray, feet_px: np.ndarray | None, *, fps: float, height_px: float,
            height_m: float = 0.06, speed_px: float = 0.2, speed_m_s: float = 0.5, min_frames: int = 3) -> np.ndarray:
    """Which foot points are planted: low, and still in the image (a static camera sees a
    planted foot stand still, whatever the noise in the lift's depth).

    Args:
        joints: (T, 21, 3) MOTION21 joints, metres, +Y up (heights from the lowest foot point
            of each frame, so a floor not yet found does not matter).
        feet_px: (T, 4, 2) the 2D of :data:`CONTACT_POINTS`, pixels, NaN where unseen; None:
            the 3D speed alone decides (under ``speed_m_s``).
        height_px: the person's 2D height; a point is still under ``speed_px`` heights per second.
    Returns:
        (T, 4) bool, runs shorter than ``min_frames`` dropped.
    """
    x = np.asarray(joints, dtype=np.float64)
    idx = [MOTION21.index(n) for n in CONTACT_POINTS]
    pts = x[:, idx]
    low = np.minimum(pts[..., 1].min(1), x[:, [MOTION21.index("left_ankle"), MOTION21.index("right_ankle")], 1].min(1))
    h = pts[..., 1] - low[:, None]
    speed3 = np.linalg.norm(_velocity(pts, fps), axis=-1) if len(x) > 1 else np.zeros(h.shape)
    still = speed3 < speed_m_s
    if feet_px is not None and len(x) > 1:
        f = np.asarray(feet_px, dtype=np.float64)
        speed2 = np.linalg.norm(_velocity(f, fps), axis=-1) / max(height_px, 1.0)
        seen = np.isfinite(speed2)
        still = np.where(seen, speed2 < speed_px, still)
    raw = (h < height_m) & still
    return np.stack([clean_runs(raw[:, k], min_frames) for k in range(raw.shape[1])], 1)


#: :func:`floor_up`: planted points further apart than this (metres), with none between, stand in
#: separate places (closer, as a foot's heel and toe or two feet side by side, they are one)
PLACE_GAP_M = 0.25


def _places(points: np.ndarray, min_points: int = 5) -> list[np.ndarray]:
    """The places where ``points`` (N, 3) metres were stood on, as index arrays into them:
    groups of points chained within :data:`PLACE_GAP_M` of each other, of at least
    ``min_points``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    # chained by the cells of a fine grid they fall in (a planted foot gives hundreds of points on
    # a few centimetres: their pairs grew with the square of a clip's length, 7 s of a 2 minute
    # clip's fit), each cell at its centre: the gap is kept to within a cell's diagonal
    cell = PLACE_GAP_M / 10.0
    keys, inverse = np.unique(np.floor(np.asarray(points, dtype=np.float64) / cell).astype(np.int64), axis=0,
                              return_inverse=True)
    inverse = inverse.reshape(-1)
    pairs = cKDTree((keys + 0.5) * cell).query_pairs(PLACE_GAP_M, output_type="ndarray")
    n = len(keys)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    label = label[inverse]
    groups = [np.nonzero(label == k)[0] for k in np.unique(label)]
    return [g for g in groups if len(g) >= min_points]


def floor_up(points: np.ndarray, prior_up: np.ndarray, *, prior_m: float = 0.08) -> np.ndarray | None:
    """Up as the normal of the floor through planted foot points, kept near ``prior_up`` in
    the directions the points leave open (a person walking along a line fixes the tilt along it).

    Minimises ``mean((u . (p - mean p))^2) + prior_m^2 |u - u0|^2`` over unit ``u``: the smallest
    eigenvector of the points' covariance plus ``prior_m^2 (I - u0 u0^T)``, over the points
    within 0.25 m, along ``prior_up``, of the height where most points lie (not a foot on a box
    or a stair; the median point's height fell between the box and the floor when the feet
    spent as long on each, and the two made a tilted floor). When those span too little but
    all the points span enough, ``prior_up`` may be far off (a level first guess, a camera
    pitched 24 degrees at a person stepping about over 2 m in depth: the floor's far end leaves
    that band): then the plane through all the points, and the points within 0.1 m of it, if
    they are most of them and were stood on along one stretch (one place 0.3 m across or more)
    or in three places or more (:func:`_places`). A box and the floor in front of it, two
    places at two heights, fit a tilted plane just as well.

    Args:
        points: (N, 3) planted foot points, camera frame, metres.
        prior_up: (3,) unit vector. prior_m: spread (metres) at which the points outweigh it.
    Returns:
        (3,) unit vector on ``prior_up``'s side, or None when the points span under 0.3 m.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    p = p[np.isfinite(p).all(-1)]
    if len(p) < 10:
        return None
    u0 = _unit(np.asarray(prior_up, dtype=np.float64))

    def span(q: np.ndarray) -> float:
        return float(np.linalg.svd(q - q.mean(0), compute_uv=False)[0] / np.sqrt(len(q))) if len(q) >= 10 else 0.0

    def normal(q: np.ndarray) -> np.ndarray:
        c = q - q.mean(0)
        u = np.linalg.eigh(c.T @ c / len(c) + prior_m ** 2 * (np.eye(3) - np.outer(u0, u0)))[1][:, 0]
        return u if u @ u0 > 0 else -u

    h = p @ u0
    ranked = np.sort(h)
    crowd = np.searchsorted(ranked, h + 0.1) - np.searchsorted(ranked, h - 0.1)
    floor = p[np.abs(h - h[np.argmax(crowd)]) < 0.25]  # around the height stood on most
    if span(floor) < 0.3 and span(p) >= 0.3:
        r = (p - p.mean(0)) @ normal(p)
        near = p[np.abs(r - np.median(r)) < 0.1]
        if len(near) >= max(10, 0.6 * len(p)):
            groups = _places(near)
            if len(groups) >= 3 or (len(groups) == 1 and span(near[groups[0]]) >= 0.3):
                floor = near
    return normal(floor) if span(floor) >= 0.3 else None


#: :func:`estimate_up`: a foot still in the image is planted when this low (metres above the frame's
#: lowest foot point), per iteration: loose while the up is a first guess (a camera pitched 25
#: degrees, taken as level, sees a foot planted half a metre further away 0.2 m "higher"; with
#: only the nearer foot counted as planted the centre of mass lies off the support, and the
#: guess stayed 10 degrees off on CMU 02_08), then as :func:`planted`'s default
PLANTED_BANDS_M = (0.25, 0.12, 0.06)


def estimate_up(joints_cam: np.ndarray, *, fps: float, feet_px: np.ndarray | None = None, height_px: float = 1.0,
                iterations: int = 3, min_frames: int = 5, max_com_accel: float = 3.0) -> tuple[np.ndarray, int, str]:
    """Gravity in camera axes: where the body's weight rests, and the floor under the planted feet.

    Starting from a level camera (image up), per iteration: the planted feet in the frame that
    this up defines (:func:`planted`, within the iteration's height of :data:`PLANTED_BANDS_M`);
    over the frames with a foot planted and a centre of mass that hardly accelerates (under
    ``max_com_accel`` m/s^2), the mean direction from the planted foot points to the centre of
    mass (a person keeps it over their feet); then, when the planted feet cover enough of the
    floor (the person moves about), the floor's normal (:func:`floor_up`) refines it. The network's lift tends to stand people upright in the
    camera's axes, so the floor is the stronger cue where there is one.

    Args:
        joints_cam: (T, 21, 3) MOTION21 joints in the camera frame (root included), metres,
            NaN-free.
        fps: frames per second.
        feet_px, height_px: the 2D of the foot points and the person's 2D height (:func:`planted`).
    Returns:
        (up (3,) unit vector in camera axes, number of frames it rests on, its source:
        ``"floor"``, ``"balance"`` or ``"level camera"``: (0, -1, 0) when nothing qualifies).
    """
    x = np.asarray(joints_cam, dtype=np.float64)
    up, used, source = _CAMERA_UP.copy(), 0, "level camera"
    com = center_of_mass(x)
    idx = [MOTION21.index(n) for n in CONTACT_POINTS]
    pts = x[:, idx]
    for it in range(iterations):
        band = PLANTED_BANDS_M[min(it, len(PLANTED_BANDS_M) - 1)]
        contacts = planted(x @ world_from_camera(up).T, feet_px, fps=fps, height_px=height_px, height_m=band)
        still = quasi_static(x, contacts, fps=fps, max_com_accel=max_com_accel) & standing(x, contacts)
        if still.sum() >= min_frames:
            w = contacts[still].astype(np.float64)
            support = (w[..., None] * pts[still]).sum(1) / w.sum(1, keepdims=True)
            up, used, source = _unit(_unit(com[still] - support).mean(0)), int(still.sum()), "balance"
        floor = floor_up(pts[contacts], up)
        if floor is not None:
            up, used, source = floor, int(contacts.any(1).sum()), "floor"
        elif source == "level camera":
            break
    return up, used, source


def support_surfaces(heights: np.ndarray, contacts: np.ndarray, *, gap_m: float = 0.15,
                     min_frames: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Group the contact runs by the height they rest at: one surface per cluster.

    Args:
        heights: (T, 4) world heights (y, metres) of the contact points (:data:`CONTACT_POINTS`).
        contacts: (T, 4) bool.
        gap_m: runs whose median heights differ by more than this are on different surfaces.
    Returns:
        (surface heights (S,) metres ascending, surface index (T, 4) int: -1 where not in contact).
    """
    h = np.asarray(heights, dtype=np.float64)
    c = np.asarray(contacts, bool)
    runs = [(k, a, b, float(np.nanmedian(h[a:b, k]))) for k in range(c.shape[1]) for a, b in true_runs(c[:, k])
            if b - a >= min_frames and np.isfinite(h[a:b, k]).any()]
    index = -np.ones(c.shape, int)
    if not runs:
        return np.zeros(0), index
    order = sorted(range(len(runs)), key=lambda i: runs[i][3])
    clusters: list[list[int]] = [[order[0]]]
    for i in order[1:]:
        if runs[i][3] - runs[clusters[-1][-1]][3] > gap_m:
            clusters.append([])
        clusters[-1].append(i)
    surfaces = []
    for s, members in enumerate(clusters):
        weights = np.array([runs[i][2] - runs[i][1] for i in members], dtype=np.float64)
        surfaces.append(float(np.average([runs[i][3] for i in members], weights=weights)))
        for i in members:
            k, a, b, _ = runs[i]
            index[a:b, k] = s
    return np.array(surfaces), index


def pin_planted_feet(joints: np.ndarray, contacts: np.ndarray, *, blend_frames: int = 3) -> np.ndarray:
    """Planted feet held exactly still: per contact run of a foot (heel or toe planted), the
    ankle at its median place over the run, reached by the leg alone (two-bone IK; the body
    does not move), the heel and toe carried with it, blended in and out over ``blend_frames``.

    For the residual slide the fit leaves (its corrections are smooth in time; the lift's own
    frame-to-frame noise is not). Args: joints (T, 21, 3) MOTION21 metres, +Y up; contacts
    (T, 4) bool (:data:`CONTACT_POINTS`). Returns: (T, 21, 3), bone lengths of the legs kept.
    """
    from mocap.kinematics.limbs import two_bone_ik

    out = np.array(joints, dtype=np.float64)
    c = np.asarray(contacts, bool)
    t = len(out)
    for k, side in enumerate(("left", "right")):
        hip, knee, ankle, heel, toe = (MOTION21.index(f"{side}_{n}") for n in ("hip", "knee", "ankle", "heel",
                                                                               "foot_index"))
        weight = np.zeros(t)
        target = out[:, ankle].copy()
        for a, b in true_runs(c[:, 2 * k] | c[:, 2 * k + 1]):
            place = np.median(out[a:b, ankle], axis=0)
            target[a:b] = place
            weight[a:b] = 1.0
            for i in range(1, blend_frames + 1):  # ease in before the run and out after it
                w = 1.0 - i / (blend_frames + 1)
                for f in (a - i, b - 1 + i):
                    if 0 <= f < t and w > weight[f]:
                        weight[f], target[f] = w, place
        sel = weight > 0
        if not sel.any():
            continue
        goal = out[sel, ankle] + weight[sel, None] * (target[sel] - out[sel, ankle])
        forward = out[sel, toe] - out[sel, heel]
        new_knee, new_ankle = two_bone_ik(out[sel, hip], out[sel, knee], out[sel, ankle], goal, pole_hint=forward)
        shift = new_ankle - out[sel, ankle]
        out[sel, heel] += shift
        out[sel, toe] += shift
        out[sel, knee], out[sel, ankle] = new_knee, new_ankle
    return out
