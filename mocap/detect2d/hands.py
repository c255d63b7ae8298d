"""The hand stage: both hands of the person the body stage captured (or of each person), over a video.

:func:`detect_hands_video` (:func:`detect_people_hands_video` for several people) decodes the video again and runs
:class:`~mocap.detect2d.estimators.hands_torch.HandLandmarksTorch` on the hands that the
person's body keypoints point at (their wrist, index and pinky), in batches of frames; the
hands go into the same :class:`~mocap.formats.Keypoints2D` (``hand_keypoints`` (T, 42, 2),
``hand_confidence`` (T, 42), the ``hands42`` layout: the person's left hand, then right;
``hand_world`` (T, 42, 3), the network's world landmarks of each hand, metres, camera axes).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mocap.errors import MocapError
from mocap.formats import Keypoints2D
from mocap.skeletons import HAND21

#: frames per call of the hand network's driver (cut into segments of ``span`` that advance together)
HAND_BATCH_FRAMES = 32


def detect_hands_video(path: str | os.PathLike, keypoints: Keypoints2D, *, device: str = "cpu",
                       frames: tuple[int, int] | None = None, progress: bool = True, track: bool = True,
                       estimator=None) -> Keypoints2D:
    """``keypoints`` (one person's body, mediapipe33, every frame of the video at ``path``)
    with their hands added: :func:`detect_people_hands_video` of that one person."""
    return detect_people_hands_video(path, [keypoints], device=device, frames=frames, progress=progress,
                                     track=track, estimator=estimator)[0]


def detect_people_hands_video(path: str | os.PathLike, people: Sequence[Keypoints2D], *, device: str = "cpu",
                              frames: tuple[int, int] | None = None, progress: bool = True, track: bool = True,
                              estimator=None) -> list[Keypoints2D]:
    """Each person of ``people`` (P bodies, mediapipe33, every frame of the video at ``path``)
    with their hands added, the video decoded once. A person's hands are looked for at that
    person's wrists (their body's wrist, index and pinky points), left and right as their body says.

    Args:
        device: torch device of the hand network.
        frames: (first, stop): look only in video frames ``first`` to ``stop - 1`` (as the body
            stage did); the hands are NaN (confidence 0) in the others.
        track: follow each hand from frame to frame (see
            :meth:`~mocap.detect2d.estimators.hands_torch.HandLandmarksTorch.hands`).
        estimator: a :class:`~mocap.detect2d.estimators.hands_torch.HandLandmarksTorch` to use
            (default: a new one on ``device``).

    Returns:
        per person, their keypoints with ``hand_keypoints`` (T, 42, 2) pixels, ``hand_confidence``
        (T, 42) and ``hand_world`` (T, 42, 3) metres.
    """
    from mocap.detect2d.estimators.hands_torch import HandLandmarksTorch
    from mocap.detect2d.people import video_batches
    from mocap.io.video import probe_video

    people = list(people)
    if not people:
        return []
    for keypoints in people:
        if keypoints.layout != "mediapipe33":
            raise MocapError(f"the hands are found from BlazePose's wrist, index and pinky points (mediapipe33 "
                             f"keypoints); these keypoints are {keypoints.layout}: use the blazepose or mediapipe "
                             "detector")
    t = people[0].num_frames
    if any(k.num_frames != t for k in people):
        raise MocapError(f"the people's keypoints cover {sorted({k.num_frames for k in people})} frames; "
                         "each must cover every frame of the video")
    info = probe_video(path)
    if info.frame_count > 0 and info.frame_count != t:
        raise MocapError(f"{path} has {info.frame_count} frames but the keypoints have {t}; "
                         "use the keypoints detected on this video")
    est = estimator or HandLandmarksTorch(device)
    first, stop = (0, t) if frames is None else frames
    j = 2 * HAND21.num_joints
    found = [(np.full((t, j, 2), np.nan, np.float32), np.zeros((t, j), np.float32),
              np.full((t, j, 3), np.nan, np.float32)) for _ in people]
    at = first
    for batch in video_batches(path, size=HAND_BATCH_FRAMES, start=first, stop=stop,
                               desc=f"{Path(path).name} (hands)", progress=progress):
        at = _run_people(est, batch, people, at, found, track)
    return [dataclasses.replace(k, hand_keypoints=kp, hand_confidence=conf, hand_world=world)
            for k, (kp, conf, world) in zip(people, found)]


def _run_people(est, batch: list[np.ndarray], people: list[Keypoints2D], at: int,
                found: list[tuple[np.ndarray, np.ndarray, np.ndarray]], track: bool) -> int:
    """:func:`_run` for each person on the same frames; the next frame index."""
    for keypoints, (hand_kp, hand_conf, hand_world) in zip(people, found):
        _run(est, batch, keypoints, at, hand_kp, hand_conf, hand_world, track)
    return at + len(batch)


def _run(est, batch: list[np.ndarray], keypoints: Keypoints2D, at: int, hand_kp: np.ndarray,
         hand_conf: np.ndarray, hand_world: np.ndarray, track: bool) -> int:
    """The hands of video frames ``at`` onwards (``batch``) into ``hand_kp`` / ``hand_conf`` /
    ``hand_world``; the next frame index."""
    sl = slice(at, at + len(batch))
    if at + len(batch) > keypoints.num_frames:
        raise MocapError(f"the video has more frames than the {keypoints.num_frames} frames of keypoints")
    body_kp, body_conf = keypoints.keypoints[sl], keypoints.confidence[sl]
    if np.isfinite(body_kp).all(-1).any():
        found = est.hands(batch, body_kp, body_conf, track=track)
        hand_kp[sl], hand_conf[sl], hand_world[sl] = found.keypoints, found.confidence, found.world
    return at + len(batch)


def hand_frames(keypoints: Keypoints2D) -> tuple[int, int] | None:
    """(frames with the left hand, frames with the right hand); None without hands."""
    if keypoints.hand_keypoints is None:
        return None
    seen = np.isfinite(keypoints.hand_keypoints).all(-1).reshape(keypoints.num_frames, 2, -1).all(-1)
    return int(seen[:, 0].sum()), int(seen[:, 1].sum())
