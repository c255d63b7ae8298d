"""The people of one view of a multi-view capture, in 2D."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mocap.detect2d.options import DEFAULT_DETECTOR
from mocap.detect2d.people import PeopleTracks
from mocap.formats import Keypoints2D


def detect_view(video: str | os.PathLike, *, detector: str = DEFAULT_DETECTOR["several views"], device: str = "cpu",
                progress: bool = True) -> Keypoints2D:
    """The 2D keypoints of the main person in one view.

    ``"blazepose-torch"`` (the multi-view default): MediaPipe's BlazePose networks, tracked
    frame to frame, without MediaPipe's temporal landmark smoothing, whose lag shifts a
    moving joint differently in each view. On the Pose2Sim rig this gave lower reprojection
    errors and steadier bone lengths than MediaPipe's VIDEO mode (benchmarks/bench_multiview.py).
    ``"blazepose-tta"``: the same with test-time augmentation (the median of 12 mirrored,
    scaled, shifted and turned crops per frame; 12 times the landmark cost).
    ``"mediapipe"``: MediaPipe's own VIDEO mode. Any other estimator name: everyone
    detected and tracked, the largest person kept.
    """
    if detector == "mediapipe":
        from mocap.detect2d.mediapipe_pose import detect_video

        return detect_video(video, progress=progress)
    from mocap.detect2d.estimators import BLAZEPOSE_TORCH, get_estimator

    if detector in BLAZEPOSE_TORCH:
        import sys

        from tqdm import tqdm

        from mocap.detect2d.estimators.blazepose_torch import NUM_JOINTS
        from mocap.io.video import iter_frames, probe_video

        info = probe_video(video)
        frames = tqdm(iter_frames(video, rgb=True), total=info.frame_count, desc=f"{Path(video).name} (2D)",
                      unit="frame", file=sys.stderr, disable=not progress)
        est = get_estimator(detector, device=device).video(frames)  # either BlazePose class of the registry
        kp = est.keypoints[:, 0] if est.keypoints.shape[1] else np.full((est.keypoints.shape[0], NUM_JOINTS, 2), np.nan)
        conf = est.confidence[:, 0] if est.confidence.shape[1] else np.zeros(kp.shape[:2])
        return Keypoints2D(keypoints=kp.astype(np.float32), confidence=np.nan_to_num(conf).astype(np.float32),
                           layout="mediapipe33", image_size=info.size, fps=info.fps)
    from mocap.detect2d.people import detect_people_video

    return detect_people_video(video, detector=detector, device=device, progress=progress).person("largest")


def detect_view_people(video: str | os.PathLike, *, detector: str = DEFAULT_DETECTOR["several views"],
                       device: str = "cpu", max_people: int = 4, progress: bool = True) -> PeopleTracks:
    """Everyone in one view, with per-view 2D track ids (the cross-view association's cue).

    Every estimator but ``"mediapipe"`` (one person): :func:`mocap.detect2d.people.detect_people_video`,
    the tracker of the one-camera capture (``"blazepose-torch"`` / ``"blazepose-tta"``
    follow up to ``max_people`` people from frame to frame, the detector looking for more at
    a cadence and when a track weakens; then the track ids of
    :func:`mocap.detect2d.tracking.track_people`, with the torso colour cue).
    """
    if detector == "mediapipe":
        k = detect_view(video, detector=detector, device=device, progress=progress)
        return PeopleTracks(keypoints=k.keypoints[:, None], confidence=k.confidence[:, None],
                            scores=(k.confidence.max(-1, initial=0.0) > 0).astype(np.float32)[:, None],
                            track_ids=np.where(np.isfinite(k.keypoints).any((-1, -2)), 0, -1)[:, None],
                            layout=k.layout, image_size=k.image_size, fps=k.fps)
    from mocap.detect2d.people import detect_people_video

    # one tracker through the whole video: the segment-parallel BlazePoseTorch.video()
    # restarted from the detector every 8 frames, and a person bent over (whom the detector
    # frames upside down) came out as garbage for those 8 frames; the one-camera capture's
    # four segments (each warmed up on 8 frames) cost the triangulation too: pose2sim_two_people's
    # main person's bones varied by 7.2 % with them, 5.7 % without (2026-12-07), for 5 % less time
    return detect_people_video(video, detector=detector, device=device, max_people=max_people, progress=progress,
                               segments=1)


def landmarks_where_expected(video: str | os.PathLike, frames: np.ndarray, expected: np.ndarray, *,
                             detector: str = DEFAULT_DETECTOR["several views"], device: str = "cpu",
                             min_confidence: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose's landmark network where a person is expected, without its person detector.

    For views where other cameras see someone the detector missed (a face it cannot see):
    the region of interest comes from the expected joints (centred on the hips, turned
    along hips -> shoulders, its side 2.5 times the furthest joint's distance from the
    hips), then once more from the network's own first answer.

    Args:
        frames: (N,) frame numbers in the video.
        expected: (N, 33, 2) mediapipe33 pixels where the person's joints are expected.
    Returns:
        keypoints (N, 33, 2) pixels, NaN where the network found no one (presence below
        ``min_confidence``), and confidences (N, 33), 0 there.
    """
    from mocap.detect2d.estimators import BLAZEPOSE_TORCH, get_estimator
    from mocap.detect2d.estimators.blazepose_torch import NUM_JOINTS
    from mocap.io.video import iter_frames
    from mocap.detect2d.estimators.blazepose_anchors import rois_from_keypoints
    from mocap.skeletons import MEDIAPIPE33

    frames = np.asarray(frames, np.int64)
    kp = np.full((len(frames), NUM_JOINTS, 2), np.nan, np.float32)
    conf = np.zeros((len(frames), NUM_JOINTS), np.float32)
    if detector not in BLAZEPOSE_TORCH or not len(frames):
        return kp, conf
    est = get_estimator(detector, device=device)
    lh, rh, ls, rs = (MEDIAPIPE33.index(n) for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder"))
    hips = 0.5 * (expected[:, lh] + expected[:, rh])
    up = 0.5 * (expected[:, ls] + expected[:, rs]) - hips
    reach = np.nanmax(np.linalg.norm(expected - hips[:, None], axis=-1), 1)
    end = hips + up / np.maximum(np.linalg.norm(up, axis=-1, keepdims=True), 1e-9) * reach[:, None]
    rois = rois_from_keypoints(np.stack([hips, end], 1), est.graph.landmark_roi)
    ok = np.isfinite(rois).all(-1)
    wanted = set(frames[ok].tolist())
    images, index = [], {}
    for i, image in enumerate(iter_frames(video, rgb=True)):
        if i in wanted:
            index[i] = len(images)
            images.append(image)
        if len(index) == len(wanted):
            break
    rows = np.nonzero(ok & np.isin(frames, list(index)))[0]
    if not rows.size:
        return kp, conf
    images = est._images(images)
    at = np.array([index[int(f)] for f in frames[rows]])
    first = est.landmarks(images, at, rois[rows])
    lm = est.landmarks(images, at, first.next_roi)
    found = lm.score >= min_confidence
    kp[rows[found]] = lm.keypoints[found]
    conf[rows[found]] = lm.visibility[found]
    return kp, conf
