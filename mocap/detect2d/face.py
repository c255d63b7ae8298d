"""The face stage's detection: the face of the person the body stage captured, over a video.

:func:`detect_face_video` decodes the video again and runs
:class:`~mocap.detect2d.estimators.face_torch.FaceLandmarksTorch` on the face that the
person's body keypoints point at (eyes, ears, mouth), in batches of frames. The controls
computed from these landmarks are :mod:`mocap.face.controls`'.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mocap.errors import MocapError
from mocap.formats import Keypoints2D

#: frames per call of the face network's driver (cut into segments of ``span`` that advance together)
FACE_BATCH_FRAMES = 32


def detect_face_video(path: str | os.PathLike, keypoints: Keypoints2D, *, device: str = "cpu",
                      frames: tuple[int, int] | None = None, progress: bool = True, track: bool = True,
                      estimator=None):
    """The face of the person whose body is ``keypoints`` (mediapipe33, every frame of the video at ``path``).

    Args:
        device: torch device of the face network.
        frames: (first, stop): look only in video frames ``first`` to ``stop - 1``; NaN elsewhere.
        track: follow the face from frame to frame (see
            :meth:`~mocap.detect2d.estimators.face_torch.FaceLandmarksTorch.faces`).
        estimator: a :class:`~mocap.detect2d.estimators.face_torch.FaceLandmarksTorch` to use.

    Returns:
        :class:`~mocap.detect2d.estimators.face_torch.Face` over all T frames: keypoints
        (T, 478, 2) pixels and z (T, 478) pixels, NaN where the face is not found; score (T,).
    """
    from mocap.detect2d.estimators.face_torch import NUM_FACE_POINTS, Face, FaceLandmarksTorch
    from mocap.detect2d.people import video_batches
    from mocap.io.video import probe_video

    if keypoints.layout != "mediapipe33":
        raise MocapError(f"the face is found from BlazePose's eyes, ears and mouth (mediapipe33 keypoints); these "
                         f"keypoints are {keypoints.layout}: use the blazepose or mediapipe detector")
    info = probe_video(path)
    t = keypoints.num_frames
    if info.frame_count > 0 and info.frame_count != t:
        raise MocapError(f"{path} has {info.frame_count} frames but the keypoints have {t}; "
                         "use the keypoints detected on this video")
    est = estimator or FaceLandmarksTorch(device)
    first, stop = (0, t) if frames is None else frames
    out = Face(np.full((t, NUM_FACE_POINTS, 2), np.nan, np.float32), np.full((t, NUM_FACE_POINTS), np.nan, np.float32),
               np.zeros(t, np.float32), np.full((t, 5), np.nan))
    at = first
    for batch in video_batches(path, size=FACE_BATCH_FRAMES, start=first, stop=stop,
                               desc=f"{Path(path).name} (face)", progress=progress):
        at = _run(est, batch, keypoints, at, out, track)
    return out


def _run(est, batch: list[np.ndarray], keypoints: Keypoints2D, at: int, out, track: bool) -> int:
    """The face in video frames ``at`` onwards (``batch``) into ``out``; the next frame index."""
    sl = slice(at, at + len(batch))
    if at + len(batch) > keypoints.num_frames:
        raise MocapError(f"the video has more frames than the {keypoints.num_frames} frames of keypoints")
    body_kp, body_conf = keypoints.keypoints[sl], keypoints.confidence[sl]
    if np.isfinite(body_kp).all(-1).any():
        found = est.faces(batch, body_kp, body_conf, track=track)
        out.keypoints[sl], out.z[sl], out.score[sl], out.roi[sl] = found.keypoints, found.z, found.score, found.roi
    return at + len(batch)
