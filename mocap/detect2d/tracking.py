"""Multi-person tracking over frames: stable person ids from per-frame detections.

Input is what an estimator gives for the frames of a video, in any slot order: keypoints
(T, P, J, 2) pixels (NaN where missing), confidence (T, P, J) in [0, 1], person scores
(T, P) (0 for an empty slot). :func:`track_people` returns track ids (T, P), -1 for empty
slots, numbered 0, 1, ... in order of first appearance.

Per frame, every live track is predicted forward with constant velocity (its box centre's
velocity, smoothed) and compared with every detection by a similarity in [0, 1]:

- position: 0.6 * an OKS-like keypoint similarity ``mean_j exp(-d_j^2 / (2 (k s)^2))`` over
  joints confident in both (``s`` the track's size, sqrt of its keypoint box area in pixels,
  ``k`` = ``joint_sigma``) + 0.4 * the IoU of the predicted and the detected keypoint boxes;
  after a gap of ``g`` frames both are loosened by ``1 + gap_spread * (g - 1)`` (the
  extrapolation is less certain), so a track lost for a while is picked up by the nearest
  new person;
- body: the position term is scaled by ``0.7 + 0.3 * shape``, ``shape`` comparing
  normalised bone-length ratios (log bone lengths minus their mean, over the layout's
  edges) with the track's running mean, and by a size-consistency factor (the longer side of
  the keypoint box against the track's, which arms read out on one frame and in on the next
  do not change);
- appearance (when a per-detection descriptor is given, e.g. the torso's colour histogram of
  :func:`mocap.detect2d.people.torso_histograms`): scaled by ``1 - w + w * b ** 4``, ``b``
  the Bhattacharyya coefficient of the detection's histogram and the track's running
  histogram (updated only from detections that no other detection overlaps, so an
  occluder's colours do not leak in), ``w`` = ``appearance_weight``; below
  ``min_appearance`` the pair is refused, whatever its position (the landmark network's
  region of interest sliding from one person onto another who stands close).

Keypoint distances are taken both as detected and with left and right swapped (the better
of the two counts), so a detector's left/right confusion does not break a track.

Matching is a cascade of Hungarian assignments (scipy's ``linear_sum_assignment``), the
tracks seen most recently first: those seen in the previous frame, then those last seen two
frames ago, and so on up to ``max_gap_frames``. A pair must reach ``min_similarity``, and a
track does not take a detection that a track lost for longer fits ``LOST_FITS_BETTER`` times
better (someone back from behind another person, on a frame where the other is missed).
With appearance, a last stage re-identifies people that the others did not take back: a
track lost for up to ``reid_gap_frames`` frames takes a detection whose histogram matches it
(``b`` at least ``reid_min_appearance``) and whose size is within a factor of two; near
where it was lost if that was at most ``max_gap_frames`` ago (a detector's first, poor pose
of someone found again), anywhere if longer (they left the picture and came back).
Unmatched detections start new tracks.

:class:`PeopleTracker` does the same one frame at a time (a live stream).

:mod:`mocap.detect2d.choose` picks one track as a single-person sequence for the rest of the
pipeline (the main person, or one by id), or gives every track its own sequence.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mocap.skeletons import LAYOUTS, get_layout


@dataclass(frozen=True)
class TrackingConfig:
    """Keyword arguments of :func:`track_people` (see there)."""

    max_gap_frames: int = 15
    min_similarity: float = 0.15
    min_confidence: float = 0.3
    joint_sigma: float = 0.15
    gap_spread: float = 0.15
    velocity_smoothing: float = 0.3
    min_track_frames: int = 1
    appearance_weight: float = 0.5
    min_appearance: float = 0.6
    reid_min_appearance: float = 0.85
    reid_gap_frames: int = 100_000

    def kwargs(self) -> dict:
        return asdict(self)


@dataclass
class _Track:
    keypoints: np.ndarray  # (J, 2) last known position of every joint (NaN never seen)
    centre: np.ndarray  # (2,) pixels
    size: float  # pixels, :func:`box_size` of the keypoint box (the scale of the keypoint distances)
    scale: float  # pixels, :func:`_scale` (whether a detection's size fits the track)
    box: np.ndarray  # (4,) x0, y0, x1, y1 pixels
    last_frame: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    bone_sum: np.ndarray | None = None  # (E,) sum of log bone lengths
    bone_count: np.ndarray | None = None  # (E,)
    frames: int = 1
    look: np.ndarray | None = None  # (D,) running appearance histogram (sums to 1), None until seen clean


def keypoint_boxes(keypoints: np.ndarray) -> np.ndarray:
    """(..., J, 2) keypoints, pixels, NaN where not counted -> (..., 4) boxes (x0, y0, x1, y1)
    around the finite ones; NaN where none is."""
    kp = np.asarray(keypoints, dtype=np.float64)
    seen = np.isfinite(kp).all(-1, keepdims=True)
    lo = np.where(seen, kp, np.inf).min(-2)
    hi = np.where(seen, kp, -np.inf).max(-2)
    return np.where(seen.any(-2), np.concatenate([lo, hi], -1), np.nan)


def _box(xy: np.ndarray, ok: np.ndarray) -> np.ndarray:
    return keypoint_boxes(np.where(ok[:, None], xy, np.nan))


def box_size(box: np.ndarray) -> float:
    """A keypoint box's size (pixels): the square root of its area (at least 1)."""
    return float(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1.0)))


def _scale(box: np.ndarray) -> float:
    """A person's scale for telling whether a detection's size fits a track (pixels): the
    longer side of the keypoint box. Arms raised or spread hardly change it (a standing
    person's span is about their height), where they can double the box's area from one
    frame to the next (the landmark network reading a person's arms out and then in)."""
    return float(max(box[2] - box[0], box[3] - box[1], 1.0))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _log_bones(xy: np.ndarray, ok: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(E,) log bone lengths, NaN where an end is not confident or the bone has no length."""
    if len(edges) == 0:
        return np.zeros(0)
    a, b = edges[:, 0], edges[:, 1]
    length = np.linalg.norm(xy[a] - xy[b], axis=-1)
    valid = ok[a] & ok[b] & (length > 1e-3)
    return np.where(valid, np.log(np.maximum(length, 1e-3)), np.nan)


def _shape_similarity(track: _Track, bones: np.ndarray) -> float:
    """exp(-mean |normalised log bone length difference| / 0.15) over bones known in both; 1 if < 3 bones."""
    if track.bone_sum is None or len(bones) == 0:
        return 1.0
    mean = np.where(track.bone_count > 0, track.bone_sum / np.maximum(track.bone_count, 1), np.nan)
    both = np.isfinite(mean) & np.isfinite(bones)
    if both.sum() < 3:
        return 1.0
    d = (mean[both] - mean[both].mean()) - (bones[both] - bones[both].mean())
    return float(np.exp(-np.abs(d).mean() / 0.15))


def _bhattacharyya(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """sum sqrt(a * b) of two histograms summing to 1 (in [0, 1]); None if either is unknown."""
    if a is None or b is None:
        return None
    return float(np.sqrt(a * b).sum())


def _appearance_factor(track: _Track, look: np.ndarray | None, weight: float, least: float) -> float:
    b = _bhattacharyya(track.look, look)
    if b is None:
        return 1.0
    return 0.0 if b < least else 1.0 - weight + weight * b ** 4


def _size_term(track: _Track, box: np.ndarray) -> float:
    size_ratio = abs(np.log(_scale(box) / track.scale))
    return float(np.exp(-max(size_ratio - 0.2, 0.0) / 0.3))


def _similarity(track: _Track, frame: int, xy: np.ndarray, ok: np.ndarray, box: np.ndarray, bones: np.ndarray,
                look: np.ndarray | None, mirror: np.ndarray | None, cfg: TrackingConfig) -> float:
    gap = frame - track.last_frame
    spread = 1.0 + cfg.gap_spread * (gap - 1)
    shift = track.velocity * gap
    pred = track.keypoints + shift
    sigma = cfg.joint_sigma * track.size * spread
    oks = 0.0
    for perm in (None, mirror):  # as detected, and with left and right swapped
        p = pred if perm is None else pred[perm]
        both = ok & np.isfinite(p).all(-1)
        if both.any():
            d2 = ((p[both] - xy[both]) ** 2).sum(-1)
            oks = max(oks, float(np.exp(-d2 / (2 * sigma ** 2)).mean()))
    if oks == 0.0:
        return 0.0
    pbox = track.box + np.tile(shift, 2)
    if spread > 1.0:  # the predicted box grows with the uncertainty
        c, half = (pbox[:2] + pbox[2:]) / 2, (pbox[2:] - pbox[:2]) / 2 * spread
        pbox = np.concatenate([c - half, c + half])
    position = 0.6 * oks + 0.4 * _iou(pbox, box)
    return (position * _size_term(track, box) * (0.7 + 0.3 * _shape_similarity(track, bones))
            * _appearance_factor(track, look, cfg.appearance_weight, cfg.min_appearance))


def _reid_similarity(track: _Track, frame: int, box: np.ndarray, bones: np.ndarray, look: np.ndarray | None,
                     cfg: TrackingConfig) -> float:
    """Similarity of a lost track to a detection by appearance, size and body; a track lost for
    up to ``max_gap_frames`` must also be near (its size times 0.5 + 0.1 per frame lost),
    one lost for longer may come back anywhere."""
    b = _bhattacharyya(track.look, look)
    if b is None or b < cfg.reid_min_appearance or abs(np.log(_scale(box) / track.scale)) > np.log(2.0):
        return 0.0
    gap = frame - track.last_frame
    if gap <= cfg.max_gap_frames and np.linalg.norm((box[:2] + box[2:]) / 2 - track.centre) > \
            track.size * (0.5 + 0.1 * gap):
        return 0.0
    return b * (0.7 + 0.3 * _shape_similarity(track, bones))


def _assign(sim: np.ndarray, min_similarity: float) -> list[tuple[int, int]]:
    from scipy.optimize import linear_sum_assignment

    if sim.size == 0:
        return []
    rows, cols = linear_sum_assignment(-sim)
    return [(r, c) for r, c in zip(rows, cols) if sim[r, c] >= min_similarity]


def _layout_for(num_joints: int, layout: str | None):
    """The keypoint layout (a Skeleton) named, else guessed from the joint count; None if unknown."""
    if layout is not None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; known layouts: {', '.join(LAYOUTS)}")
        skel = LAYOUTS[layout]
        if skel.num_joints != num_joints:
            raise ValueError(f"layout {layout} has {skel.num_joints} joints, the keypoints have {num_joints}")
        return skel
    for skel in LAYOUTS.values():
        if skel.num_joints == num_joints and skel.parents is None:
            return skel
    return None


def _normalised_looks(appearance: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """(..., D) descriptors of slots ``shape`` -> histograms summing to 1, NaN rows where unknown; None if not given."""
    if appearance is None:
        return None
    look = np.asarray(appearance, np.float64)
    if look.ndim != len(shape) + 1 or look.shape[:-1] != tuple(shape):
        raise ValueError(f"appearance must be (..., D) with (...) = {tuple(shape)}, the slots' shape, got {look.shape}")
    look = np.where(np.isfinite(look), np.maximum(look, 0.0), np.nan)
    total = look.sum(-1, keepdims=True)
    return np.where(total > 0, look / np.where(total > 0, total, 1.0), np.nan)


def _check_config(cfg: TrackingConfig) -> None:
    if cfg.max_gap_frames < 0 or cfg.min_track_frames < 1 or cfg.reid_gap_frames < 0:
        raise ValueError("max_gap_frames and reid_gap_frames must be >= 0 and min_track_frames >= 1")
    if not 0.0 < cfg.velocity_smoothing <= 1.0 or cfg.joint_sigma <= 0 or cfg.gap_spread < 0:
        raise ValueError("velocity_smoothing must lie in (0, 1], joint_sigma > 0 and gap_spread >= 0")
    if not all(0.0 <= v <= 1.0 for v in (cfg.appearance_weight, cfg.min_appearance, cfg.reid_min_appearance)):
        raise ValueError("appearance_weight, min_appearance and reid_min_appearance must lie in [0, 1]")


class PeopleTracker:
    """:func:`track_people` one frame at a time, for a live stream: :meth:`step` takes a frame's
    detections and returns their track ids at once (ids in order of creation; the offline
    function's numbering by first appearance is the same when ``min_track_frames`` is 1).

    Args:
        num_joints: J, the joints per detection.
        layout: keypoint layout name (default: guessed from J).
        appearance: whether :meth:`step` gets appearance descriptors (then tracks lost for up
            to ``reid_gap_frames`` can be re-identified).
        config: the tracker's settings (:class:`TrackingConfig`; ``min_track_frames`` is not
            used here: a live id is given before the track's length is known).
    """

    def __init__(self, num_joints: int, *, layout: str | None = None, appearance: bool = False,
                 config: TrackingConfig = TrackingConfig()) -> None:
        _check_config(config)
        self.config = config
        self.num_joints = int(num_joints)
        skel = _layout_for(self.num_joints, layout)
        self.edges = np.array(skel.edges, int).reshape(-1, 2) if skel is not None else np.zeros((0, 2), int)
        self.mirror = skel.mirror_permutation() if skel is not None and skel.left_right else None
        self.appearance = bool(appearance)
        self.tracks: list[_Track] = []
        self.alive: list[int] = []  # indices into tracks
        self.frame = 0  # the index the next step gets

    def step(self, keypoints: np.ndarray, confidence: np.ndarray, scores: np.ndarray,
             appearance: np.ndarray | None = None) -> np.ndarray:
        """One frame: keypoints (P, J, 2) pixels (NaN missing), confidence (P, J), scores (P,),
        appearance (P, D) or None -> (P,) int64 track ids, -1 for empty slots."""
        kp = np.asarray(keypoints, np.float64)
        conf = np.asarray(confidence, np.float64)
        sc = np.asarray(scores, np.float64)
        if kp.ndim != 3 or kp.shape[1:] != (self.num_joints, 2) or conf.shape != kp.shape[:2] \
                or sc.shape != kp.shape[:1]:
            raise ValueError(f"expected keypoints (P, {self.num_joints}, 2), confidence (P, {self.num_joints}), "
                             f"scores (P,); got {kp.shape}, {conf.shape}, {sc.shape}")
        looks = _normalised_looks(appearance, kp.shape[:1]) if self.appearance else None
        ids = self._step(self.frame, kp, conf, sc, looks)
        self.frame += 1
        return ids

    def _step(self, t: int, kp: np.ndarray, conf: np.ndarray, sc: np.ndarray, looks: np.ndarray | None) -> np.ndarray:
        cfg, tracks = self.config, self.tracks
        ids = np.full(len(sc), -1, np.int64)
        ok = np.isfinite(kp).all(-1) & (conf >= cfg.min_confidence)  # (P, J)
        dets = [p for p in range(len(sc)) if sc[p] > 0 and ok[p].sum() >= 2]
        boxes = {p: _box(kp[p], ok[p]) for p in dets}
        bones = {p: _log_bones(kp[p], ok[p], self.edges) for p in dets}
        look = {p: (looks[p] if looks is not None and np.isfinite(looks[p]).all() else None) for p in dets}
        clean = {p: all(_iou(boxes[p], boxes[q]) < 0.1 for q in dets if q != p) for p in dets}
        limit = cfg.reid_gap_frames if self.appearance else cfg.max_gap_frames
        self.alive = [i for i in self.alive if t - tracks[i].last_frame <= limit]
        free = list(dets)

        def similarities(cand: list[int], reid: bool) -> np.ndarray:
            if reid:
                return np.array([[_reid_similarity(tracks[i], t, boxes[p], bones[p], look[p], cfg)
                                  for p in free] for i in cand]).reshape(len(cand), len(free))
            return np.array([[_similarity(tracks[i], t, kp[p], ok[p], boxes[p], bones[p], look[p], self.mirror,
                                          cfg) for p in free] for i in cand]).reshape(len(cand), len(free))

        since = {i: t - tracks[i].last_frame for i in self.alive}
        # the tracks seen most recently first, one gap at a time; then, by appearance, those lost or gone
        for gap, reid in [(g, False) for g in sorted({g for g in since.values() if g <= cfg.max_gap_frames})] \
                + [(None, True)]:
            cand = [i for i in self.alive if (since[i] > 1 if reid else since[i] == gap)]
            if not cand or not free:
                continue
            sim = similarities(cand, reid)
            if not reid:  # a detection that a track lost for longer fits far better waits for it
                older = [i for i in self.alive if gap < since[i] <= cfg.max_gap_frames]
                if older:
                    sim = np.where(sim * LOST_FITS_BETTER < similarities(older, False).max(0), 0.0, sim)
            taken = []
            for r, c in _assign(sim, cfg.min_similarity):
                p = free[c]
                _update(tracks[cand[r]], t, kp[p], ok[p], boxes[p], bones[p], look[p] if clean[p] else None,
                        cfg.velocity_smoothing, reset_motion=reid)
                ids[p] = cand[r]
                taken.append(p)
            free = [p for p in free if p not in taken]
        for p in free:
            box = boxes[p]
            xy = np.where(ok[p][:, None], kp[p], np.nan)
            bone = bones[p]
            tracks.append(_Track(keypoints=xy, centre=(box[:2] + box[2:]) / 2, size=box_size(box), scale=_scale(box),
                                 box=box, last_frame=t, bone_sum=np.nan_to_num(bone),
                                 bone_count=np.isfinite(bone).astype(np.float64), look=look[p] if clean[p] else None))
            self.alive.append(len(tracks) - 1)
            ids[p] = len(tracks) - 1
        return ids


#: a track does not take a detection that a track lost for longer (up to ``max_gap_frames``)
#: fits this many times better (someone hidden behind another person for a frame or two comes
#: back on a frame where the other's own detection is missed)
LOST_FITS_BETTER = 2.0


def track_people(keypoints: np.ndarray, confidence: np.ndarray, scores: np.ndarray, *,
                 max_gap_frames: int = 15, min_similarity: float = 0.15, min_confidence: float = 0.3,
                 joint_sigma: float = 0.15, gap_spread: float = 0.15, velocity_smoothing: float = 0.3,
                 min_track_frames: int = 1, appearance_weight: float = 0.5, min_appearance: float = 0.6,
                 reid_min_appearance: float = 0.85,
                 reid_gap_frames: int = 100_000, layout: str | None = None,
                 appearance: np.ndarray | None = None) -> np.ndarray:
    """Stable ids for the people detected in each frame (method in the module docstring).

    Args:
        keypoints: (T, P, J, 2) float pixels, NaN where missing; slots in any order per frame.
        confidence: (T, P, J) in [0, 1]; joints below ``min_confidence`` are not used to match.
        scores: (T, P) person scores; slots with score <= 0 or fewer than 2 usable joints are empty.
        max_gap_frames: a track unseen for more than this many frames is no longer matched by
            position; within it a new detection can take the track up again.
        min_similarity: in [0, 1], the least similarity of a detection to continue a track.
        joint_sigma: keypoint tolerance as a fraction of the person's size (OKS-like).
        gap_spread: how fast the tolerance grows per missed frame.
        velocity_smoothing: weight in (0, 1] of the newest velocity in the running estimate.
        min_track_frames: tracks seen in fewer frames are dropped (their slots get -1).
        appearance_weight: in [0, 1], how much the appearance cue scales the similarity.
        min_appearance: in [0, 1], the least Bhattacharyya coefficient of a detection and a
            track for the track to take it.
        reid_min_appearance: in [0, 1], the least Bhattacharyya coefficient to re-identify a
            track lost for longer than ``max_gap_frames``.
        reid_gap_frames: tracks lost for longer are never taken up again.
        layout: keypoint layout name for the bone descriptor and left/right pairs (default:
            guessed from J).
        appearance: optional (T, P, D) non-negative descriptor per detection (e.g. a colour
            histogram; normalised here to sum to 1), NaN or all zero where unknown. Without
            it, no appearance term and no re-identification after ``max_gap_frames``.

    Returns:
        (T, P) int64 track ids, -1 for empty slots, numbered 0, 1, ... by first appearance.
    """
    kp = np.asarray(keypoints, np.float64)
    conf = np.asarray(confidence, np.float64)
    sc = np.asarray(scores, np.float64)
    if kp.ndim != 4 or kp.shape[-1] != 2 or conf.shape != kp.shape[:3] or sc.shape != kp.shape[:2]:
        raise ValueError(f"expected keypoints (T, P, J, 2), confidence (T, P, J), scores (T, P); got "
                         f"{kp.shape}, {conf.shape}, {sc.shape}")
    cfg = TrackingConfig(max_gap_frames=max_gap_frames, min_similarity=min_similarity, min_confidence=min_confidence,
                         joint_sigma=joint_sigma, gap_spread=gap_spread, velocity_smoothing=velocity_smoothing,
                         min_track_frames=min_track_frames, appearance_weight=appearance_weight,
                         min_appearance=min_appearance, reid_min_appearance=reid_min_appearance,
                         reid_gap_frames=reid_gap_frames)
    t_len, p_len, j_len = conf.shape
    looks = _normalised_looks(appearance, (t_len, p_len))
    tracker = PeopleTracker(j_len, layout=layout, appearance=looks is not None, config=cfg)
    ids = np.full((t_len, p_len), -1, np.int64)
    for t in range(t_len):
        ids[t] = tracker._step(t, kp[t], conf[t], sc[t], None if looks is None else looks[t])

    # renumber by first appearance, dropping short tracks
    lengths = np.bincount(ids[ids >= 0], minlength=len(tracker.tracks))
    new = np.full(len(tracker.tracks) + 1, -1, np.int64)
    nxt = 0
    for i in ids.ravel():
        if i >= 0 and new[i] == -1 and lengths[i] >= min_track_frames:
            new[i] = nxt
            nxt += 1
    return new[ids]  # -1 maps through new[-1] == -1


def _update(track: _Track, t: int, xy: np.ndarray, ok: np.ndarray, box: np.ndarray, bones: np.ndarray,
            look: np.ndarray | None, smoothing: float, *, reset_motion: bool = False) -> None:
    centre = (box[:2] + box[2:]) / 2
    gap = t - track.last_frame
    v = (centre - track.centre) / gap
    if reset_motion:  # re-identified far from where it was lost: no velocity to carry over
        track.velocity = np.zeros(2)
    else:
        track.velocity = v if track.frames == 1 else smoothing * v + (1 - smoothing) * track.velocity
    moved = track.keypoints + (centre - track.centre)  # joints not seen now follow the body
    track.keypoints = np.where(ok[:, None], xy, np.nan if reset_motion else moved)
    track.centre, track.box, track.last_frame = centre, box, t
    track.size = box_size(box) if reset_motion else 0.7 * track.size + 0.3 * box_size(box)
    track.scale = _scale(box) if reset_motion else 0.7 * track.scale + 0.3 * _scale(box)
    if track.bone_sum is not None and len(bones):
        seen = np.isfinite(bones)
        track.bone_sum = track.bone_sum + np.where(seen, bones, 0.0)
        track.bone_count = track.bone_count + seen
    if look is not None:
        track.look = look if track.look is None else 0.9 * track.look + 0.1 * look
    track.frames += 1


def identity_switches(track_ids: np.ndarray, true_ids: np.ndarray) -> int:
    """Identity switches (MOT-style): for each true person, how often its track id changes.

    Args:
        track_ids: (T, P) predicted ids, -1 empty; true_ids: (T, P) ground-truth ids of the
            same slots, -1 empty. Frames where the person has no predicted id are skipped.
    """
    track_ids, true_ids = np.asarray(track_ids), np.asarray(true_ids)
    if track_ids.shape != true_ids.shape:
        raise ValueError(f"track_ids {track_ids.shape} and true_ids {true_ids.shape} differ in shape")
    switches = 0
    for g in np.unique(true_ids[true_ids >= 0]):
        seq = track_ids[true_ids == g]  # row-major: frame order
        seq = seq[seq >= 0]
        switches += int(np.count_nonzero(seq[1:] != seq[:-1]))
    return switches


def implausible_jumps(keypoints: np.ndarray, confidence: np.ndarray, layout: str, fps: float, *,
                      max_speed: float = 20.0, min_confidence: float = 0.3) -> list[tuple[int, int]]:
    """Frames where one person's 2D root moves further than a body can: a sign that the
    keypoints switched to someone else (or the detector lost the person).

    The root is the middle of the hips; the scale is the person's median torso length in
    pixels (shoulder middle to hip middle, about half a metre). A step from frame ``a`` to the
    next frame ``b`` where the root is seen counts when it is over ``max_speed`` torso lengths
    per second times ``(b - a) / fps`` (20 torso lengths/s: about 10 m/s, a sprint) plus
    half a torso length (the detector's noise, a crouch or a fall moving the hips).

    Args:
        keypoints: (T, J, 2) pixels, NaN where missing; confidence: (T, J); layout: their layout.
        fps: frames per second.

    Returns:
        [(a, b), ...] frame pairs, in time order.
    """
    skel = get_layout(layout)
    kp = np.where((np.asarray(confidence) >= min_confidence)[..., None], np.asarray(keypoints, np.float64), np.nan)
    hips = kp[:, [skel.index("left_hip"), skel.index("right_hip")]].mean(1)
    shoulders = kp[:, [skel.index("left_shoulder"), skel.index("right_shoulder")]].mean(1)
    torso = np.linalg.norm(shoulders - hips, axis=-1)
    if not np.isfinite(torso).any():
        return []
    scale = float(np.nanmedian(torso))
    seen = np.nonzero(np.isfinite(hips).all(-1))[0]
    if len(seen) < 2:
        return []
    a, b = seen[:-1], seen[1:]
    step = np.linalg.norm(hips[b] - hips[a], axis=-1)
    limit = scale * (0.5 + max_speed * (b - a) / fps)
    return [(int(i), int(j)) for i, j in zip(a[step > limit], b[step > limit])]


def place_frames(values: np.ndarray, first: int, num_frames: int, fill: float) -> np.ndarray:
    """(T, ...) values of frames ``first`` to ``first + T - 1`` -> (num_frames, ...), ``fill``
    in the frames outside (NaN for keypoints, 0 for confidences, -1 for track ids)."""
    values = np.asarray(values)
    if first < 0 or first + len(values) > num_frames:
        raise ValueError(f"{len(values)} frames from frame {first} do not fit in {num_frames} frames")
    out = np.full((num_frames, *values.shape[1:]), fill, values.dtype)
    out[first:first + len(values)] = values
    return out

