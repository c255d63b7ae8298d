"""Who is the main subject of a multi-view capture: the associated person present longest,
weighted by size (or the one the user names)."""
from __future__ import annotations

import numpy as np

from mocap.errors import MocapError


def main_person(ids: np.ndarray, observed: np.ndarray, prominence: np.ndarray, *, person: str | int = "auto",
                min_frames: int = 2) -> tuple[list[int], int]:
    """The people found in enough frames, and which of them is the main one.

    Args:
        ids: (N,) int person ids of the association (:class:`mocap.multiview.association.Association`).
        observed: (N, T) bool, person ``ids[n]`` triangulated from two views or more in frame t.
        prominence: (N,) float, how much each person is in the shot: the sum over their
            observed frames of their size in pixels (:func:`mocap.multiview.association.prominence`).
        person: ``"auto"`` or ``"largest"`` (the largest prominence: present longest, weighted
            by size), ``"most-present"`` (observed in the most frames; ties go to the lower
            id), or a person id (one of the people found).
        min_frames: frames a person must be observed in to count as found (at most T are
            asked for: a clip shorter than that needs a person in every frame).

    Returns:
        (the ids found, ascending as in ``ids``; the main person's id).

    Raises:
        MocapError when nobody was observed in ``min(min_frames, T)`` frames, or ``person``
        is an id not among those found.
    """
    ids = np.asarray(ids)
    observed = np.asarray(observed, bool)
    prominence = np.asarray(prominence, np.float64)
    if observed.ndim != 2 or observed.shape[0] != len(ids) or prominence.shape != ids.shape:
        raise ValueError(f"expected ids (N,), observed (N, T), prominence (N,); got {ids.shape}, "
                         f"{observed.shape}, {prominence.shape}")
    count = observed.sum(1)
    row = {int(i): n for n, i in enumerate(ids)}
    found = [int(i) for i, c in zip(ids, count) if c >= min(min_frames, observed.shape[1])]
    if not found:
        raise MocapError("no person was seen by two views or more at the same time (checked with the calibration): "
                         "the cameras may not match the videos (check their order), or the calibration is off")
    if isinstance(person, (int, np.integer)) and not isinstance(person, bool):
        # an id of people.json (the 3D people, not a view's 2D tracks)
        if int(person) not in found:
            raise MocapError(f"no person with id {person} in two views or more; the ids are {found} "
                             "(people.json of a run without --person lists them)")
        return found, int(person)
    if person == "most-present":
        return found, max(found, key=lambda i: (int(count[row[i]]), -i))
    if person not in ("auto", "largest"):
        raise ValueError(f"person must be 'auto', 'largest', 'most-present' or a person id, got {person!r}")
    return found, max(found, key=lambda i: prominence[row[i]])
