"""Choosing among tracked people: a single-person sequence per track, the main person (present
longest, weighted by size), a person by id.

Input is what :func:`mocap.detect2d.tracking.track_people` gives: keypoints (T, P, J, 2)
pixels (NaN where missing), confidence (T, P, J), track ids (T, P) (-1 for empty slots).
"""
from __future__ import annotations

import numpy as np

from mocap.detect2d.tracking import box_size, keypoint_boxes


def _check(keypoints: np.ndarray, confidence: np.ndarray, track_ids: np.ndarray):
    kp, conf, ids = np.asarray(keypoints), np.asarray(confidence), np.asarray(track_ids)
    if kp.ndim != 4 or conf.shape != kp.shape[:3] or ids.shape != kp.shape[:2]:
        raise ValueError(f"expected keypoints (T, P, J, 2), confidence (T, P, J), track_ids (T, P); got "
                         f"{kp.shape}, {conf.shape}, {ids.shape}")
    return kp, conf, ids


def _one_track(kp: np.ndarray, conf: np.ndarray, ids: np.ndarray, track: int) -> tuple[np.ndarray, np.ndarray]:
    t_len, _, j_len, _ = kp.shape
    out = np.full((t_len, j_len, 2), np.nan, np.float32)
    c = np.zeros((t_len, j_len), np.float32)
    frames, slots = np.nonzero(ids == track)
    out[frames] = kp[frames, slots]
    c[frames] = np.nan_to_num(conf[frames, slots])
    c[np.isnan(out).any(-1)] = 0.0
    return out, c


def split_tracks(keypoints: np.ndarray, confidence: np.ndarray,
                 track_ids: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """One single-person sequence per track (e.g. one motion file per person).

    Args:
        keypoints: (T, P, J, 2) pixels; confidence: (T, P, J); track_ids: (T, P) from
            :func:`~mocap.detect2d.tracking.track_people`.

    Returns:
        {track id: (keypoints (T, J, 2) float32 pixels, NaN where the person is not seen,
        confidence (T, J) float32, 0 there)}, ids ascending.
    """
    kp, conf, ids = _check(keypoints, confidence, track_ids)
    return {int(i): _one_track(kp, conf, ids, int(i)) for i in np.unique(ids[ids >= 0])}


def track_sizes(keypoints: np.ndarray, confidence: np.ndarray, track_ids: np.ndarray, *,
                min_confidence: float = 0.3) -> dict[int, tuple[int, float]]:
    """{track id: (frames seen, median size in pixels = sqrt of the keypoint box area)}."""
    return {i: (n, med) for i, (n, med, _) in _track_stats(keypoints, confidence, track_ids,
                                                          min_confidence=min_confidence).items()}


def _track_stats(keypoints, confidence, track_ids, *, min_confidence: float = 0.3) -> dict[int, tuple[int, float, float]]:
    """{track id: (frames seen, median size, sum of sizes over the frames seen) in pixels}."""
    kp, conf, ids = _check(keypoints, confidence, track_ids)
    out = {}
    for i in np.unique(ids[ids >= 0]):
        frames, slots = np.nonzero(ids == i)
        sizes = [person_size(kp[f, s], conf[f, s], min_confidence=min_confidence) for f, s in zip(frames, slots)]
        out[int(i)] = track_stats([v for v in sizes if v is not None], len(frames))
    return out


def person_size(keypoints: np.ndarray, confidence: np.ndarray, *, min_confidence: float = 0.3) -> float | None:
    """A detection's size in pixels: sqrt of the area of the box of its joints (J, 2) whose
    confidence (J,) reaches ``min_confidence``; None with fewer than two such joints."""
    ok = np.isfinite(keypoints).all(-1) & (confidence >= min_confidence)
    return box_size(keypoint_boxes(np.where(ok[:, None], keypoints, np.nan))) if ok.sum() >= 2 else None


def track_stats(sizes: list[float], frames: int) -> tuple[int, float, float]:
    """(frames seen, median size, sum of sizes) of a track from its sizes (pixels,
    :func:`person_size`, where known) and the number of frames it was seen in."""
    return frames, float(np.median(sizes)) if sizes else 0.0, float(np.sum(sizes))


#: the ``person`` choices besides a track id
PERSON_CHOICES = ("auto", "largest", "most-present")


def choose_track(keypoints: np.ndarray, confidence: np.ndarray, track_ids: np.ndarray, *,
                 person: str | int = "auto") -> int:
    """The id of the track ``person`` names.

    Args:
        keypoints: (T, P, J, 2) pixels; confidence: (T, P, J); track_ids: (T, P) from
            :func:`~mocap.detect2d.tracking.track_people`.
        person: ``"auto"`` (present longest, weighted by size: the largest sum over its frames
            of its size in pixels), ``"largest"`` (largest median size on screen),
            ``"most-present"`` (seen in the most frames; ties go to the larger), or a track id.
    """
    return pick_track(_track_stats(keypoints, confidence, track_ids), person)


def pick_track(stats: dict[int, tuple[int, float, float]], person: str | int = "auto") -> int:
    """:func:`choose_track`'s rule on each track's (frames seen, median size, sum of sizes over
    its frames) in pixels (:func:`track_stats`), by track id."""
    if not stats:
        raise ValueError("no tracked person to select: no one was detected in these frames")
    if isinstance(person, (int, np.integer)) and not isinstance(person, bool):
        if int(person) not in stats:
            raise ValueError(f"no track with id {person}; the tracks are {', '.join(map(str, stats))}")
        return int(person)
    keys = {"auto": lambda i: (stats[i][2], stats[i][0]), "largest": lambda i: (stats[i][1], stats[i][0]),
            "most-present": lambda i: (stats[i][0], stats[i][1])}
    if person not in keys:
        raise ValueError(f"person must be one of {', '.join(PERSON_CHOICES)} or a track id, got {person!r}")
    return max(stats, key=keys[person])


def select_person(keypoints: np.ndarray, confidence: np.ndarray, track_ids: np.ndarray, *,
                  person: str | int = "auto") -> tuple[np.ndarray, np.ndarray]:
    """One person's sequence for the single-person pipeline (``person`` as in :func:`choose_track`).

    Returns:
        keypoints (T, J, 2) float32 pixels, NaN where this person is not seen (never anyone
        else), confidence (T, J) float32, 0 there.
    """
    kp, conf, ids = _check(keypoints, confidence, track_ids)
    return _one_track(kp, conf, ids, choose_track(kp, conf, ids, person=person))
