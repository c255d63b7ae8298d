"""Tracks that are no person of their own: a part of another person.

:func:`drop_parts` runs after :func:`mocap.detect2d.tracking.track_people` over a whole video
(the live tracker cannot look back, so it keeps the ids it does not drop).
"""
from __future__ import annotations

import numpy as np

from mocap.detect2d.estimators.blazepose_tracking import limb_edges, on_limbs
from mocap.detect2d.choose import track_sizes
from mocap.skeletons import get_layout


#: :func:`drop_parts`: a track is a part of another when, in the median frame they share, at
#: least this share of its confident points lie on the other's limbs (measured: the parts of
#: the man in the example, 0.57-0.88; real people in pose2sim_two_people on each other, at
#: most 0.04) ...
PART_SHARE = 0.5
#: ... in at least this share of its frames seen with the other there too
PART_FRAMES = 0.9


def drop_parts(keypoints: np.ndarray, confidence: np.ndarray, track_ids: np.ndarray, *, layout: str,
               min_confidence: float = 0.3, samples: int = 60) -> np.ndarray:
    """(T, P) track ids without the tracks that are only a part of another person (-1 for the
    slots dropped; the other ids unchanged, so that they stay those of the live tracker, which
    cannot look back: :class:`mocap.detect2d.people.LivePeople`).

    A pose detector keying on faces sometimes finds a "face" on one person's chest or legs,
    and the landmark network draws a whole small body inside that person: a track which lives
    only while its host is there (in at least :data:`PART_FRAMES` of its frames), is smaller
    than the host (median keypoint-box size) and seen for fewer frames, and whose confident
    points lie along the host's limbs and torso diagonals (:func:`limb_edges`, :func:`on_limbs`) at least :data:`PART_SHARE` of them in its median frame
    (judged on up to ``samples`` of those frames, evenly spread). Someone passing behind
    another lies on them only while passing; the frames before and after are their own.

    Args:
        keypoints: (T, P, J, 2) pixels. confidence: (T, P, J). track_ids: (T, P) int, -1 empty.
        layout: the keypoints' layout name (its edges, and the shoulders and hips).
    """
    kp, conf, ids = np.asarray(keypoints), np.asarray(confidence), np.asarray(track_ids)
    edges = limb_edges(get_layout(layout))
    ok = np.isfinite(kp).all(-1) & (conf >= min_confidence)
    stats = track_sizes(kp, conf, ids, min_confidence=min_confidence)  # {track: (frames, median size)}
    where = {t: dict(zip(*np.nonzero(ids == t))) for t in stats}  # {track: {frame: slot}}
    dropped: set[int] = set()
    for t in sorted(stats, key=lambda i: stats[i][0]):
        for u in stats:
            if u == t or u in dropped or stats[u][0] <= stats[t][0] or stats[u][1] <= stats[t][1]:
                continue
            shared = [f for f in where[t] if f in where[u]]
            if len(shared) < PART_FRAMES * len(where[t]):
                continue
            shares = []
            for f in np.asarray(shared)[np.unique(np.linspace(0, len(shared) - 1, min(samples, len(shared))).astype(int))]:
                a, b = where[t][f], where[u][f]
                mine = on_limbs(kp[f, a], ok[f, a], kp[f, b], ok[f, b], edges)
                if mine is not None and ok[f, a].sum() >= 5:
                    shares.append(mine.sum() / ok[f, a].sum())
            if shares and np.median(shares) >= PART_SHARE:
                dropped.add(t)
                break
    return np.where(np.isin(ids, list(dropped)), -1, ids)
