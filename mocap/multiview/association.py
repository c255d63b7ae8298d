"""Several people seen by several calibrated cameras: which detection of each view is which
person (cross-view association), and the same person from frame to frame (3D tracking).

Per frame, in undistorted pixels:

1. **Tracks first.** Every person tracked in 3D (seen within ``max_gap_frames``) is projected
   into each view; the view's detections are matched to those projections one to one (the
   Hungarian method on the median joint distance, as a share of the detection's size; a
   detection carrying the view's 2D track id that the person had before costs half).
2. **Verification.** A person's detections are triangulated together
   (:func:`mocap.multiview.triangulate.triangulate_robust`), each view takes the
   orientation (as detected, or left and right swapped) that reprojects closer, and views
   whose detection lies far from the reprojection (median over joints) are let go.
3. **New people.** The detections left over are grouped over all views at once: pairwise
   affinities from the symmetric epipolar distance of the joints both detections are sure
   of (the smaller of the two orientations), then agglomerative clustering, closest pairs
   first, that never puts two detections of one view in one person and merges two groups
   only when their mean distance stays under the threshold. Verified groups seen by
   ``min_views_new`` views or more found a person: taken up by a person of the last
   ``max_gap_frames`` whose root is near and whose bones agree, else a new id.
4. **Re-identification.** After the last frame, people whose frames never overlap and whose
   bone lengths (median over their frames) agree within ``reid_tolerance`` are one person
   (someone who left and came back).

Everything here is pure arrays: no files, no video.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocap.multiview.triangulate import triangulate_robust
from mocap.skeletons import MOTION21, get_layout, map_joints


@dataclass(frozen=True)
class Association:
    """Who is who across views and frames.

    Attributes:
        labels: (C, T, P) int, the person id of each view's detection slot; -1 for none.
        observed: (N, T) bool, person ``ids[n]`` triangulated from two views or more in that frame.
        ids: (N,) int person ids, numbered 0, 1, ... by first appearance.
        root: (N, T, 3) world metres, the mean of the person's hips (or of their joints) per
            frame, from the association's own triangulation; NaN where not observed.
        points: (N, T, J, 3) world metres, that triangulation; NaN where not observed.
    """

    labels: np.ndarray
    observed: np.ndarray
    ids: np.ndarray
    root: np.ndarray
    points: np.ndarray

    def frames(self, person: int) -> np.ndarray:
        """(T,) bool: the frames where ``person`` was observed."""
        return self.observed[list(self.ids).index(person)]


def fundamental_matrix(p_a: np.ndarray, p_b: np.ndarray) -> np.ndarray:
    """(3, 3) F with ``x_b^T F x_a = 0`` for homogeneous pixels of (3, 4) cameras a and b."""
    _, _, vt = np.linalg.svd(p_a)
    centre = vt[-1]
    e = p_b @ centre
    ex = np.array([[0, -e[2], e[1]], [e[2], 0, -e[0]], [-e[1], e[0], 0]])
    return ex @ p_b @ np.linalg.pinv(p_a)


def epipolar_distance(x_a: np.ndarray, x_b: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Symmetric epipolar distance (pixels): the mean of each point's distance to the other's
    epipolar line. x_a, x_b (..., 2) undistorted pixels of cameras a, b; F from
    :func:`fundamental_matrix`. Returns (...); NaN where either is missing."""
    ha = np.concatenate([x_a, np.ones(x_a.shape[:-1] + (1,))], -1)
    hb = np.concatenate([x_b, np.ones(x_b.shape[:-1] + (1,))], -1)
    line_b = ha @ f.T  # lines in b
    line_a = hb @ f  # lines in a
    alg = np.abs((hb * line_b).sum(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 * (alg / np.linalg.norm(line_b[..., :2], axis=-1) + alg / np.linalg.norm(line_a[..., :2], axis=-1))


def detection_size(pixels: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """(...) diagonal (pixels) of the box around the usable joints of (..., J, 2) pixels; NaN when fewer than 2."""
    x = np.where(usable[..., None], pixels, np.nan)
    enough = usable.sum(-1) >= 2
    with np.errstate(invalid="ignore"), _quiet():
        span = np.nanmax(x, -2) - np.nanmin(x, -2)
    return np.where(enough, np.linalg.norm(span, axis=-1), np.nan)


class _quiet:
    """Silences numpy's all-NaN slice warnings inside a block."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def _median_masked(d: np.ndarray, mask: np.ndarray, min_count: int) -> np.ndarray:
    """Median over the last axis of ``d`` where ``mask``; inf where fewer than ``min_count``."""
    with _quiet():
        m = np.nanmedian(np.where(mask, d, np.nan), -1)
    return np.where(mask.sum(-1) >= min_count, m, np.inf)


@dataclass(frozen=True)
class _Frame:
    """One frame's detections: x (C, P, J, 2) undistorted px, w (C, P, J) weights, ok (C, P), size (C, P)."""

    x: np.ndarray
    w: np.ndarray
    ok: np.ndarray
    size: np.ndarray


@dataclass
class _Track:
    pid: int
    last: int
    pose: np.ndarray  # (J, 3)
    velocity: np.ndarray  # (J, 3) per frame
    ids2d: dict
    bones: list


def _pair_distances(frame: _Frame, fund: dict, mirror: np.ndarray, pool: list[tuple[int, int]],
                    min_joints: int) -> np.ndarray:
    """(N, N) epipolar distances between pooled detections as a share of their mean size; inf
    for one view, or too few joints both are sure of."""
    n = len(pool)
    d = np.full((n, n), np.inf)
    for a in range(n):
        ca, pa = pool[a]
        for b in range(a + 1, n):
            cb, pb = pool[b]
            if ca == cb:
                continue
            f = fund[ca, cb]
            xa, wa = frame.x[ca, pa], frame.w[ca, pa] > 0
            best = np.inf
            for perm in (None, mirror):
                xb = frame.x[cb, pb] if perm is None else frame.x[cb, pb][perm]
                wb = (frame.w[cb, pb] if perm is None else frame.w[cb, pb][perm]) > 0
                best = min(best, float(_median_masked(epipolar_distance(xa, xb, f), wa & wb, min_joints)))
            d[a, b] = d[b, a] = best / (0.5 * (frame.size[ca, pa] + frame.size[cb, pb]))
    return d


def cluster_detections(dist: np.ndarray, views: np.ndarray, threshold: float) -> np.ndarray:
    """Agglomerative clustering with one detection per view per cluster.

    Args:
        dist: (N, N) symmetric distances (inf: never together).
        views: (N,) view of each detection.
        threshold: two clusters merge when the mean of their finite cross distances is below
            this and their closest pair is (closest pairs are tried first).
    Returns:
        (N,) cluster labels 0, 1, ...
    """
    n = len(views)
    label = np.arange(n)
    iu = np.triu_indices(n, 1)
    order = np.argsort(dist[iu], kind="stable")
    for k in order:
        a, b = iu[0][k], iu[1][k]
        if not dist[a, b] < threshold:
            break
        la, lb = label[a], label[b]
        if la == lb:
            continue
        ma, mb = label == la, label == lb
        if set(views[ma]) & set(views[mb]):
            continue
        cross = dist[np.ix_(ma, mb)]
        finite = cross[np.isfinite(cross)]
        if finite.size and finite.mean() < threshold:
            label[mb] = la
    _, out = np.unique(label, return_inverse=True)
    return out


def _project(pose: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """(J, 3) -> (C, J, 2) pinhole pixels; NaN behind a camera or where the joint is missing."""
    h = np.concatenate([pose, np.ones((len(pose), 1))], -1)
    q = np.einsum("cij,nj->cni", proj, h)
    with np.errstate(divide="ignore", invalid="ignore"):
        px = q[..., :2] / q[..., 2:3]
    return np.where(q[..., 2:3] > 1e-6, px, np.nan)


def _oriented_error(x: np.ndarray, w: np.ndarray, target: np.ndarray, mirror: np.ndarray,
                    min_joints: int) -> tuple[float, bool]:
    """Median distance (px) of a (J, 2) detection to (J, 2) target pixels in the better
    orientation, and whether that is the swapped one."""
    errs = []
    for perm in (np.arange(len(x)), mirror):
        d = np.linalg.norm(x[perm] - target, axis=-1)
        errs.append(float(_median_masked(d, (w[perm] > 0) & np.isfinite(d), min_joints)))
    return min(errs), errs[1] < errs[0]


def _verify(frame: _Frame, members: dict, proj: np.ndarray, mirror: np.ndarray, *, share: float,
            threshold_px: float, min_joints: int, min_views: int):
    """Triangulate one person's detections {view: slot}; orient each view, let misfit views go.

    Returns (pose (J, 3), kept {view: slot}); pose None when fewer than ``min_views`` views remain."""
    members = dict(members)
    c, j = frame.x.shape[0], frame.x.shape[2]
    flips = {v: False for v in members}
    pose = None
    for _ in range(2 * len(members) + 2):
        if len(members) < min_views:
            return None, members
        px = np.full((c, j, 2), np.nan)
        w = np.zeros((c, j))
        for v, s in members.items():
            perm = mirror if flips[v] else np.arange(j)
            px[v], w[v] = frame.x[v, s][perm], frame.w[v, s][perm]
        pose, _ = triangulate_robust(px, proj, w, threshold_px=threshold_px)
        reproj = _project(pose, proj)
        turned, rel = {}, {}
        for v, s in members.items():
            err, turned[v] = _oriented_error(frame.x[v, s], frame.w[v, s], reproj[v], mirror, min_joints)
            rel[v] = err / frame.size[v, s]
        worst = max(members, key=lambda v: rel[v])
        if not rel[worst] <= share:
            members.pop(worst)
            turned.pop(worst)
            flips = turned
            continue
        if turned == flips:
            return pose, members
        flips = turned
    if len(members) < min_views:
        return None, members
    return pose, members


def _root(pose: np.ndarray, layout: str) -> np.ndarray:
    names = get_layout(layout).joint_names
    if "left_hip" in names and "right_hip" in names:
        hips = pose[[names.index("left_hip"), names.index("right_hip")]]
        if np.isfinite(hips).all():
            return hips.mean(0)
    with _quiet():
        return np.nanmean(pose, 0)


def _bones(pose: np.ndarray, layout: str) -> np.ndarray:
    """(B,) MOTION21 bone lengths (metres) of a (J, 3) pose; NaN where a joint is missing."""
    p = map_joints(pose[None], layout, MOTION21)[0]
    par = np.asarray(MOTION21.parents)
    return np.linalg.norm(p[1:] - p[par[1:]], axis=-1)


def bone_signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Median over bones of ``|log(a / b)|`` for two (B,) bone-length sets; inf when none compare."""
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    return float(np.median(np.abs(np.log(a[ok] / b[ok])))) if ok.sum() >= 3 else float("inf")


def associate_people(pixels: np.ndarray, confidence: np.ndarray, projections: np.ndarray, *, layout: str,
                     fps: float, track_ids: np.ndarray | None = None, min_confidence: float = 0.3,
                     min_joints: int = 6, epipolar_share: float = 0.08, track_share: float = 0.25,
                     verify_share: float = 0.1, threshold_px: float = 40.0, max_gap_s: float = 0.5,
                     speed_m_s: float = 3.0, min_views_new: int = 3,
                     reid_tolerance: float = 0.04, take_up_tolerance: float = 0.1) -> Association:
    """Associate the people detected in C synchronised views into persons, and track them in 3D.

    Args:
        pixels: (C, T, P, J, 2) undistorted pixels of every view's P detection slots (NaN
            where a slot is empty); slots need not keep a person from frame to frame.
        confidence: (C, T, P, J) in [0, 1]; joints below ``min_confidence`` do not count.
        projections: (C, 3, 4) camera matrices ``K [R | t]``, world metres.
        layout: keypoint layout of the J joints (its left/right pairs give the swapped orientation).
        fps: frames per second (the gap and speed limits are in seconds).
        track_ids: (C, T, P) int per-view 2D track ids (-1: none); a cue, may be None.
        min_joints: fewest sure joints for a detection, and for two detections to be compared.
        epipolar_share: detections of two views may be one person when their median
            symmetric epipolar distance is below this share of their size (box diagonal).
        track_share: a detection may continue a person when it lies within this share of its
            size of the person's projected (predicted) pose.
        verify_share: a view stays with a person while its detection's median distance to
            the reprojected person is within this share of its size.
        threshold_px: the triangulation's outlier threshold (pixels).
        max_gap_s: a person unseen for longer is only taken up again by re-identification.
        speed_m_s: how fast a root may move while a person is unseen (metres per second).
        min_views_new: fewest views that found a new person (capped at C).
        reid_tolerance: most median relative bone-length difference (bones: median over
            their frames) for two people whose frames never overlap to be one.
        take_up_tolerance: the same for a new group (one frame's bones) taken up by a person
            unseen for at most ``max_gap_s``.
    Returns:
        :class:`Association`.
    """
    pixels = np.asarray(pixels, np.float64)
    c, t, p, j = pixels.shape[:4]
    conf = np.nan_to_num(np.asarray(confidence, np.float64))
    if pixels.shape[-1] != 2 or conf.shape != (c, t, p, j) or np.shape(projections) != (c, 3, 4):
        raise ValueError(f"pixels (C, T, P, J, 2), confidence (C, T, P, J), projections (C, 3, 4) disagree: "
                         f"{pixels.shape}, {conf.shape}, {np.shape(projections)}")
    proj = np.asarray(projections, np.float64)
    usable = np.isfinite(pixels).all(-1) & (conf >= min_confidence)
    weight = np.where(usable, conf, 0.0)
    size = detection_size(pixels, usable)
    ok = (usable.sum(-1) >= min_joints) & (size > 0)
    mirror = get_layout(layout).mirror_permutation()
    fund = {(a, b): fundamental_matrix(proj[a], proj[b]) for a in range(c) for b in range(c) if a != b}
    max_gap = max(1, int(round(max_gap_s * fps)))
    min_new = min(min_views_new, c)
    labels = np.full((c, t, p), -1, np.int64)
    tracks: list[_Track] = []
    poses: dict[int, dict[int, np.ndarray]] = {}
    common = dict(share=verify_share, threshold_px=threshold_px, min_joints=min_joints)

    for f in range(t):
        frame = _Frame(pixels[:, f], weight[:, f], ok[:, f], size[:, f])
        taken = np.zeros((c, p), bool)
        seen: dict[int, tuple[np.ndarray, dict]] = {}
        active = [k for k in tracks if f - k.last <= max_gap]
        if active:
            members = _match_tracks(frame, active, proj, mirror, f, track_ids, min_joints, track_share)
            for k, m in zip(active, members):
                if len(m) < 2:
                    continue
                pose, kept = _verify(frame, m, proj, mirror, min_views=2, **common)
                if pose is not None:
                    seen[k.pid] = (pose, kept)
                    for v, s in kept.items():
                        taken[v, s] = True
        pool = [(v, s) for v in range(c) for s in range(p) if frame.ok[v, s] and not taken[v, s]]
        if len(pool) >= 2:
            dist = _pair_distances(frame, fund, mirror, pool, min_joints)
            groups = cluster_detections(dist, np.array([v for v, _ in pool]), epipolar_share)
            for g in np.unique(groups):
                m = {pool[i][0]: pool[i][1] for i in np.nonzero(groups == g)[0]}
                if len(m) < min_new:
                    continue
                pose, kept = _verify(frame, m, proj, mirror, min_views=min_new, **common)
                if pose is None:
                    continue
                k = _take_up(tracks, seen, pose, f, max_gap, speed_m_s / fps, layout, take_up_tolerance)
                if k is None:
                    k = _Track(pid=len(tracks), last=f, pose=pose, velocity=np.zeros_like(pose), ids2d={}, bones=[])
                    tracks.append(k)
                seen[k.pid] = (pose, kept)
        for k in tracks:
            if k.pid not in seen:
                continue
            pose, kept = seen[k.pid]
            gap = f - k.last
            if gap >= 1 and k.bones:
                step = (pose - k.pose) / gap
                k.velocity = np.where(np.isfinite(step), 0.5 * step + 0.5 * np.nan_to_num(k.velocity), 0.0)
            k.pose = np.where(np.isfinite(pose), pose, k.pose)
            k.last = f
            k.bones.append(_bones(pose, layout))
            poses.setdefault(k.pid, {})[f] = pose
            for v, s in kept.items():
                labels[v, f, s] = k.pid
                if track_ids is not None and track_ids[v, f, s] >= 0:
                    k.ids2d[v] = int(track_ids[v, f, s])
    return _finish(labels, tracks, poses, t, layout, reid_tolerance)


def _match_tracks(frame: _Frame, active: list[_Track], proj: np.ndarray, mirror: np.ndarray, f: int,
                  track_ids: np.ndarray | None, min_joints: int, share: float) -> list[dict]:
    """Per active track, {view: slot} of the detections matched to its predicted pose."""
    from scipy.optimize import linear_sum_assignment

    c, p = frame.ok.shape
    pred = [_project(k.pose + k.velocity * (f - k.last), proj) for k in active]  # (C, J, 2) each
    members: list[dict] = [{} for _ in active]
    for v in range(c):
        slots = np.nonzero(frame.ok[v])[0]
        if not slots.size:
            continue
        cost = np.full((len(slots), len(active)), np.inf)
        for i, s in enumerate(slots):
            for n, k in enumerate(active):
                err, _ = _oriented_error(frame.x[v, s], frame.w[v, s], pred[n][v], mirror, min_joints)
                cost[i, n] = err / frame.size[v, s]
                if track_ids is not None and k.ids2d.get(v, -2) == track_ids[v, f, s]:
                    cost[i, n] *= 0.5
        big = 1e6
        rows, cols = linear_sum_assignment(np.where(cost < share, cost, big))
        for i, n in zip(rows, cols):
            if cost[i, n] < share:
                members[n][v] = int(slots[i])
    return members


def _take_up(tracks: list[_Track], seen: dict, pose: np.ndarray, f: int, max_gap: int, step_m: float,
             layout: str, tolerance: float) -> _Track | None:
    """The recent person (unseen in this frame) nearest to a new group's root, if it could have
    got there and its bones agree with the group's within ``tolerance``."""
    root, bones = _root(pose, layout), _bones(pose, layout)
    best, best_d = None, np.inf
    for k in tracks:
        gap = f - k.last
        if k.pid in seen or gap > max_gap:
            continue
        d = float(np.linalg.norm(root - _root(k.pose, layout)))
        with _quiet():
            same = bone_signature_distance(bones, np.nanmedian(np.array(k.bones), 0)) <= tolerance
        if same and d < 0.3 + step_m * gap and d < best_d:
            best, best_d = k, d
    return best


def _finish(labels: np.ndarray, tracks: list[_Track], poses: dict, t: int, layout: str,
            tolerance: float) -> Association:
    """Merge people whose frames never overlap and whose bones agree; renumber by first frame."""
    n = len(tracks)
    observed = np.zeros((n, t), bool)
    for k in tracks:
        observed[k.pid, list(poses.get(k.pid, {}))] = True
    with _quiet():
        sig = [np.nanmedian(np.array(k.bones), 0) if k.bones else np.full(len(MOTION21.parents) - 1, np.nan)
               for k in tracks]
    group = list(range(n))
    pairs = sorted((bone_signature_distance(sig[a], sig[b]), a, b) for a in range(n) for b in range(a + 1, n))
    for d, a, b in pairs:
        if d > tolerance:
            break
        ga, gb = group[a], group[b]
        if ga == gb:
            continue
        ma = np.isin(np.arange(n), [i for i in range(n) if group[i] == ga])
        mb = np.isin(np.arange(n), [i for i in range(n) if group[i] == gb])
        if (observed[ma].any(0) & observed[mb].any(0)).any():
            continue
        group = [ga if g == gb else g for g in group]
    first = {}
    for g in group:
        rows = [i for i in range(n) if group[i] == g]
        seen = observed[rows].any(0)
        if seen.any():
            first[g] = int(np.argmax(seen))
    order = sorted(first, key=lambda g: first[g])
    new_id = {g: i for i, g in enumerate(order)}
    old_to_new = np.full(n + 1, -1)
    for i in range(n):
        old_to_new[i] = new_id.get(group[i], -1)
    out = old_to_new[labels]  # -1 stays -1 (index n)
    m = len(order)
    obs = np.zeros((m, t), bool)
    root = np.full((m, t, 3), np.nan)
    points = np.full((m, t, get_layout(layout).num_joints, 3), np.nan)
    for i in range(n):
        if old_to_new[i] < 0:
            continue
        obs[old_to_new[i]] |= observed[i]
        for f, pose in poses.get(i, {}).items():
            root[old_to_new[i], f] = _root(pose, layout)
            points[old_to_new[i], f] = pose
    return Association(labels=out, observed=obs, ids=np.arange(m), root=root, points=points)


def person_keypoints(keypoints: np.ndarray, confidence: np.ndarray, labels: np.ndarray,
                     person: int) -> tuple[np.ndarray, np.ndarray]:
    """One person's keypoints in every view.

    Args:
        keypoints: (C, T, P, J, 2) pixels; confidence (C, T, P, J); labels (C, T, P) from
            :func:`associate_people`.
    Returns:
        (C, T, J, 2) pixels, NaN where the person has no detection in that view and frame,
        and (C, T, J) confidences, 0 there.
    """
    mine = labels == person  # (C, T, P), at most one slot per view and frame
    has = mine.any(-1)
    slot = np.argmax(mine, -1)
    kp = np.take_along_axis(keypoints, slot[..., None, None, None], 2)[:, :, 0]
    cf = np.take_along_axis(confidence, slot[..., None, None], 2)[:, :, 0]
    return np.where(has[..., None, None], kp, np.nan), np.where(has[..., None], cf, 0.0)


def prominence(association: Association, keypoints: np.ndarray, confidence: np.ndarray, *,
               min_confidence: float = 0.3) -> np.ndarray:
    """(N,) how much each person is in the shot: the sum over the frames they were observed in
    of their mean size (box diagonal, pixels) over the views that saw them. The main subject
    is the person with the most: present longest, weighted by size.

    Args:
        keypoints: (C, T, P, J, 2) pixels and confidence (C, T, P, J), as associated.
    """
    out = np.zeros(len(association.ids))
    for n, person in enumerate(association.ids):
        kp, cf = person_keypoints(keypoints, confidence, association.labels, int(person))
        size = detection_size(kp, np.isfinite(kp).all(-1) & (cf >= min_confidence))  # (C, T)
        with _quiet():
            mean = np.nanmean(size, 0)
        out[n] = float(np.nansum(np.where(association.observed[n], mean, 0.0)))
    return out


def _normalising(x: np.ndarray) -> np.ndarray:
    """(3, 3) similarity moving (N, 2) points to centroid 0, mean distance sqrt(2)."""
    c = x.mean(0)
    s = np.sqrt(2) / max(float(np.mean(np.linalg.norm(x - c, axis=-1))), 1e-9)
    return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])


def fit_fundamental(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) rank-2 F with ``b^T F a = 0`` from N >= 8 (N, 2) pixel correspondences (normalised 8-point)."""
    ta, tb = _normalising(a), _normalising(b)
    ha = np.c_[a, np.ones(len(a))] @ ta.T
    hb = np.c_[b, np.ones(len(b))] @ tb.T
    rows = (hb[:, :, None] * ha[:, None, :]).reshape(len(a), 9)
    f = np.linalg.svd(rows)[2][-1].reshape(3, 3)
    u, s, vt = np.linalg.svd(f)
    f = u @ np.diag([s[0], s[1], 0.0]) @ vt
    return tb.T @ f @ ta


def epipolar_fit(a: np.ndarray, wa: np.ndarray, b: np.ndarray, wb: np.ndarray, *, min_points: int = 30,
                 keep: float = 0.8) -> float:
    """How well one epipolar geometry explains two views of a moving person: the median
    symmetric epipolar distance (pixels) of the best-fitting fundamental matrix, fitted to
    the ``keep`` share of the joint-frames it fits best. Two views of one person fit (the
    keypoints' noise); two different people moving differently do not. inf with too few points.

    Args:
        a, b: (T, J, 2) pixels of one person (track) in two views; wa, wb (T, J) usable.
    """
    ok = wa & wb & np.isfinite(a).all(-1) & np.isfinite(b).all(-1)
    if ok.sum() < min_points:
        return float("inf")
    pa, pb = a[ok].astype(np.float64), b[ok].astype(np.float64)
    use = np.ones(len(pa), bool)
    for _ in range(2):
        f = fit_fundamental(pa[use], pb[use])
        d = epipolar_distance(pa, pb, f)
        use = d <= np.quantile(d, keep)
    return float(np.median(d[use]))


def same_person_tracks(tracks: list[list[tuple[np.ndarray, np.ndarray]]], *, min_confidence: float = 0.3) -> list[int]:
    """Without a calibration, which track of each view shows the person of view 0's first track.

    Args:
        tracks: per view, candidate tracks as (keypoints (T, J, 2), confidence (T, J)) of
            synchronised frames; view 0's first is the person wanted.
    Returns:
        per view, the index of the candidate whose epipolar fit with view 0's person (as a
        share of its size) is best; 0 for view 0.
    """
    ref, ref_conf = tracks[0][0]
    wr = ref_conf >= min_confidence
    out = [0]
    for view in tracks[1:]:
        scores = []
        for kp, cf in view:
            w = cf >= min_confidence
            with _quiet():
                size = np.nanmedian(detection_size(kp, w & np.isfinite(kp).all(-1)))
            scores.append(epipolar_fit(ref, wr, kp, w) / size if size > 0 else np.inf)
        out.append(int(np.argmin(scores)) if scores else 0)
    return out
