"""MediaPipe BlazePose (Tasks API, CPU) behind the estimator interface of :mod:`mocap.detect2d.estimators.base`.

Each frame of a batch is an independent image (PoseLandmarker in IMAGE mode: the person
detector runs on every frame, nothing is tracked between frames). Up to ``max_people``
people per frame, 33 landmarks each (layout ``mediapipe33``).

Person score: the mean of the 33 landmarks' ``presence`` (the landmark model's probability
that the landmark lies in the image, in [0, 1]). The Tasks result carries no separate score
per pose, and the mean presence is high (> 0.9) for clear people and lower for doubtful
ones, which is what ranking for COCO AP needs.

MediaPipe is imported when the estimator is built (``pip install 'mocap-lift[detect]'``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mocap.detect2d.estimators.base import Estimate, as_rgb_batch, empty_estimate, stack_people
from mocap.detect2d.mediapipe_pose import LandmarkerOwner
from mocap.skeletons import MEDIAPIPE33


class MediaPipeEstimator(LandmarkerOwner):
    """Up to ``max_people`` people per image with MediaPipe's PoseLandmarker (IMAGE mode).

    Args:
        max_people: most people reported per frame (MediaPipe's ``num_poses``), >= 1.
        min_confidence: in [0, 1]; minimum person-detector score and landmark presence
            score for a person to be reported.

    Use as a context manager or call :meth:`close` to free MediaPipe's graph early.
    """

    name = "mediapipe"
    layout = MEDIAPIPE33.name
    num_joints = MEDIAPIPE33.num_joints

    def __init__(self, max_people: int = 4, min_confidence: float = 0.5) -> None:
        if int(max_people) != max_people or max_people < 1:
            raise ValueError(f"max_people must be a whole number >= 1, got {max_people}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
        self._open_landmarker(video=False, num_poses=int(max_people), min_pose_confidence=float(min_confidence))
        self.max_people = int(max_people)
        self.min_confidence = float(min_confidence)

    def _people(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One (H, W, 3) uint8 RGB image -> keypoints (P, 33, 2) px, confidence (P, 33), scores (P,)."""
        from mocap.detect2d.mediapipe_pose import _visibility_to_confidence

        result = self._landmarker.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=image))
        height, width = image.shape[:2]
        poses = result.pose_landmarks or []
        kp = np.array([[(lm.x * width, lm.y * height) for lm in pose] for pose in poses], np.float32)
        vis = np.array([[lm.visibility or 0.0 for lm in pose] for pose in poses], np.float32)
        presence = np.array([[lm.presence or 0.0 for lm in pose] for pose in poses], np.float32)
        n = len(poses)
        kp = kp.reshape(n, self.num_joints, 2)
        conf = _visibility_to_confidence(vis.reshape(n, self.num_joints))
        scores = np.clip(presence.reshape(n, self.num_joints).mean(axis=1), 0.0, 1.0) if n else np.zeros(0, np.float32)
        return kp, conf, scores

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray]) -> Estimate:
        """People in each of B independent images.

        Args:
            frames: (B, H, W, 3) uint8 RGB, or a list of images of any size; grey, RGBA and
                float [0, 1] images are converted (:func:`mocap.detect2d.estimators.base.as_rgb`).

        Returns:
            Estimate, layout ``mediapipe33``: keypoints (B, P, 33, 2) float32 pixels of each
            image, confidence (B, P, 33) landmark visibility in [0, 1], scores (B, P) mean
            landmark presence; P = the most people found in one image (0 if none).
        """
        if self._landmarker is None:
            raise ValueError("this MediaPipeEstimator is closed; build a new one with get_estimator('mediapipe')")
        images = as_rgb_batch(frames)
        if not images:
            return empty_estimate(0, self.num_joints, self.layout)
        return stack_people([self._people(img) for img in images], self.num_joints, self.layout)
