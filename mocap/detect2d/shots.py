"""Cuts between shots: an edited video that cuts to another camera, another place or another
time. A capture across a cut reads the new shot's picture as the same camera's, and the person
jumps, turns on the spot or slides; the cut must be found and the capture kept to one shot.

As the 2D stage decodes the frames, each becomes a tiny colour signature (18 x 32 pixels, each
colour channel brought to zero mean and unit spread, so that a change of exposure or white
balance does not count). The difference between two frames' signatures (mean absolute,
channel units) is about 0.01-0.03 for a still camera with people moving, 0.14-0.19 for a camera
panning 10 px a frame (measured on the example and the Pose2Sim videos, and the example swung
sideways), and 0.71 where the example cuts to another Pose2Sim camera of the same room. A cut is
one frame whose difference from the frame before is large (:data:`CUT_LEVEL`) and
:data:`CUT_RATIO` times the differences on either side of it: a pan or a whip of the camera
changes the picture over several frames, a flash changes it and changes it back (two large
differences in a row). Gradual transitions (dissolves, fades) are not found.

Pure functions of frames and signatures, apart from :class:`ShotCuts`, the 2D stage's frame callback.
"""
from __future__ import annotations

import numpy as np

#: a signature's short and long side, pixels
SIGNATURE_SIDES = (18, 32)
#: a cut: the difference of two frames' signatures at least this (channel units)
CUT_LEVEL = 0.25
#: ... and this many times the difference with the frame before, and with the frame after
CUT_RATIO = 3.0


def signature(frame: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 tiny copy of an (H, W, 3) uint8 frame, each channel with zero mean and
    unit spread (plus a little, so that a flat picture's noise does not blow up); portrait frames
    give portrait signatures. 0.04 ms for a 1080 x 1920 frame."""
    import cv2

    h, w = frame.shape[:2]
    short, long_ = SIGNATURE_SIDES
    size = (short, long_) if h > w else (long_, short)  # cv2's (width, height)
    mid = cv2.resize(frame, (4 * size[0], 4 * size[1]), interpolation=cv2.INTER_LINEAR)
    s = cv2.resize(mid, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    flat = s.reshape(-1, 3)
    return (s - flat.mean(0)) / (flat.std(0) + 4.0)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two frames' signatures are: the mean absolute difference (channel units)."""
    return float(np.abs(a - b).mean())


def shot_starts(diffs: dict[int, float], first: int, stop: int) -> list[int]:
    """The frames in (``first``, ``stop``) where a new shot starts (the frame after a cut), in
    order. ``diffs``: {frame t: :func:`difference` of its signature from frame t - 1's}."""
    starts = []
    for t in range(first + 1, stop):
        here = diffs.get(t)
        if here is None or here < CUT_LEVEL:
            continue
        if here >= CUT_RATIO * max(diffs.get(t - 1, 0.0), diffs.get(t + 1, 0.0)):
            starts.append(t)
    return starts


def shots_of(first: int, stop: int, starts: list[int]) -> list[tuple[int, int]]:
    """The shots (first, stop) of frames ``first`` to ``stop - 1`` cut at ``starts``."""
    bounds = [first, *[t for t in starts if first < t < stop], stop]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


class ShotCuts:
    """A ``keep_frame`` callback of the 2D stage: each frame's :func:`difference` from the frame
    before (``diffs``, by video frame number). The 2D stage decodes segments side by side, each in
    order: a frame's signature is kept only until both its neighbours have come."""

    def __init__(self) -> None:
        self.diffs: dict[int, float] = {}
        self._signatures: dict[int, np.ndarray] = {}

    def __call__(self, index: int, frame: np.ndarray) -> None:
        t = int(index)
        self._signatures[t] = signature(frame)
        for a, b in ((t - 1, t), (t, t + 1)):
            if a in self._signatures and b in self._signatures:
                self.diffs[b] = difference(self._signatures[b], self._signatures[a])
        for k in (t - 1, t, t + 1):  # done with: both its differences known
            if k in self.diffs and k + 1 in self.diffs:
                self._signatures.pop(k, None)

    def shots(self, first: int, stop: int) -> list[tuple[int, int]]:
        """The shots (first, stop) of frames ``first`` to ``stop - 1``: one without a cut."""
        return shots_of(first, stop, shot_starts(self.diffs, first, stop))
