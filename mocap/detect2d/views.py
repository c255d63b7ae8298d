"""The main person of one view, in 2D."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mocap.detect2d.options import DEFAULT_DETECTOR
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
