"""What an overlay draws of a keypoints file: the body, and its hands when the file holds them."""
from __future__ import annotations

import numpy as np

from mocap.formats import Keypoints2D
from mocap.skeletons import HANDS42, Skeleton, combine_layouts, get_layout


def overlay_points(keypoints: Keypoints2D) -> tuple[Skeleton, np.ndarray, np.ndarray]:
    """(layout, points (T, J, 2) pixels, confidence (T, J)) to draw: the body's keypoints, followed
    by the ``hands42`` points (``layout`` then the body's layout + hands42) when present."""
    body = get_layout(keypoints.layout)
    if keypoints.hand_keypoints is None:
        return body, keypoints.keypoints, keypoints.confidence
    return (combine_layouts(body, HANDS42), np.concatenate([keypoints.keypoints, keypoints.hand_keypoints], 1),
            np.concatenate([keypoints.confidence, keypoints.hand_confidence], 1))
