"""The network's 2D input: a shared joint set and per-frame normalisation (numpy only).

Input joint set ``INPUT21``: the 17 COCO keypoints followed by MediaPipe's heels and foot
tips. ``coco17`` keypoints leave the last four missing (confidence 0); ``mediapipe33``
provides all 21.

Normalisation is per frame (a clip-level scale cost ~16 mm in an earlier experiment): each
frame is centred on its mid-hip point and divided by the RMS distance of its available
core joints (shoulders, elbows, wrists, hips, knees, ankles) from that centre. Because it
only looks at one frame, the convolution can run once over a whole clip and still see
exactly what it saw in training. Missing joints (NaN or confidence 0) become (0, 0) with
confidence 0.

Mirroring (the horizontally flipped image, for flip averaging): :func:`mirror_features` for
the input, :func:`mirror_joints` for the MOTION21 output; their left/right permutations come
from the skeleton tables (:data:`INPUT21`, :data:`mocap.skeletons.MOTION21`).
"""
from __future__ import annotations

import numpy as np

from mocap.skeletons import COCO17, MEDIAPIPE33, MOTION21, Skeleton, get_layout


def left_right_pairs(names: tuple[str, ...], *tables: Skeleton) -> tuple[tuple[int, int], ...]:
    """Left/right pairs, as indices into ``names``, of the joints that ``tables`` pair.

    For a joint set made of joints of existing skeletons: a pair of a table counts when both
    of its joints are in ``names``. Joints that no table pairs are their own mirror image.
    """
    index = {n: i for i, n in enumerate(names)}
    pairs = {(index[sk.joint_names[a]], index[sk.joint_names[b]]) for sk in tables for a, b in sk.left_right
             if sk.joint_names[a] in index and sk.joint_names[b] in index}
    return tuple(sorted(pairs))


INPUT_NAMES: tuple[str, ...] = COCO17.joint_names + (
    "left_heel", "right_heel", "left_foot_index", "right_foot_index")
#: The input joint set as a skeleton table (a keypoint layout: no parents, no edges).
INPUT21 = Skeleton(name="input21", joint_names=INPUT_NAMES, edges=(),
                   left_right=left_right_pairs(INPUT_NAMES, MEDIAPIPE33))
NUM_INPUT_JOINTS = len(INPUT_NAMES)
#: Channels per input joint: normalised x, normalised y, confidence.
CHANNELS_PER_JOINT = 3

_CORE = tuple(INPUT_NAMES.index(f"{s}_{j}") for s in ("left", "right")
              for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"))
_HIPS = (INPUT_NAMES.index("left_hip"), INPUT_NAMES.index("right_hip"))
_SHOULDERS = (INPUT_NAMES.index("left_shoulder"), INPUT_NAMES.index("right_shoulder"))
#: (K,) permutation of INPUT21 that swaps left and right.
INPUT_MIRROR = INPUT21.mirror_permutation()
_MOTION_MIRROR = MOTION21.mirror_permutation()


def layout_to_input(keypoints: np.ndarray, confidence: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """Select the INPUT21 joints from a detector layout.

    Args:
        keypoints: (..., J, 2) pixels, NaN where missing.
        confidence: (..., J) in [0, 1].
        layout: ``"mediapipe33"`` or ``"coco17"``.
    Returns:
        (..., 21, 2) pixels (NaN where missing) and (..., 21) confidence (0 where missing).
    """
    skel = get_layout(layout)
    if skel.name not in (MEDIAPIPE33.name, COCO17.name):
        raise ValueError(f"the network lifter reads layouts mediapipe33 or coco17, not {layout!r}")
    keypoints = np.asarray(keypoints, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64)
    if keypoints.shape[-2:] != (skel.num_joints, 2) or confidence.shape != keypoints.shape[:-1]:
        raise ValueError(f"expected keypoints (..., {skel.num_joints}, 2) and confidence (..., {skel.num_joints}) "
                         f"for layout {layout}, got {keypoints.shape} and {confidence.shape}")
    have = [k for k, name in enumerate(INPUT_NAMES) if name in skel.joint_names]
    source = [skel.index(INPUT_NAMES[k]) for k in have]
    out = np.full(keypoints.shape[:-2] + (NUM_INPUT_JOINTS, 2), np.nan)
    conf = np.zeros(keypoints.shape[:-2] + (NUM_INPUT_JOINTS,))
    out[..., have, :] = keypoints[..., source, :]
    conf[..., have] = confidence[..., source]
    return out, conf


def normalise_frames(keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Per-frame normalised network input.

    Args:
        keypoints: (..., 21, 2) pixels of INPUT21, NaN where missing.
        confidence: (..., 21) in [0, 1]; NaN or 0 marks a missing joint.
    Returns:
        (..., 21, 3) float32: (x - c) / s, (y - c) / s, confidence; zeros for missing joints
        and for frames with no usable joint.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    conf = np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0)
    if kp.shape[-2:] != (NUM_INPUT_JOINTS, 2) or conf.shape != kp.shape[:-1]:
        raise ValueError(f"expected keypoints (..., {NUM_INPUT_JOINTS}, 2) and confidence (..., {NUM_INPUT_JOINTS}), "
                         f"got {kp.shape} and {conf.shape}")
    valid = np.isfinite(kp).all(-1) & (conf > 0)
    kp0 = np.where(valid[..., None], kp, 0.0)
    w = valid.astype(np.float64)

    def wmean(idx: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        ww = w[..., list(idx)]
        n = ww.sum(-1)
        return (kp0[..., list(idx), :] * ww[..., None]).sum(-2) / np.maximum(n, 1)[..., None], n

    hips, n_hips = wmean(_HIPS)
    torso, n_torso = wmean(_HIPS + _SHOULDERS)
    every, n_all = wmean(tuple(range(NUM_INPUT_JOINTS)))
    centre = np.where((n_hips == 2)[..., None], hips, np.where((n_torso > 0)[..., None], torso, every))

    d2 = ((kp0 - centre[..., None, :]) ** 2).sum(-1)
    core_w = w[..., list(_CORE)]
    n_core = core_w.sum(-1)
    rms_core = np.sqrt((d2[..., list(_CORE)] * core_w).sum(-1) / np.maximum(n_core, 1))
    rms_all = np.sqrt((d2 * w).sum(-1) / np.maximum(n_all, 1))
    scale = np.where(n_core >= 4, rms_core, rms_all)
    usable = (n_all > 0) & (scale > 1e-6)
    scale = np.where(usable, scale, 1.0)

    xy = (kp0 - centre[..., None, :]) / scale[..., None, None]
    keep = valid & usable[..., None]
    out = np.concatenate([np.where(keep[..., None], xy, 0.0), np.where(keep, conf, 0.0)[..., None]], axis=-1)
    return out.astype(np.float32)


def mirror_features(features: np.ndarray) -> np.ndarray:
    """Normalised input (..., 21, 3) of the horizontally mirrored image (x negated, left and right swapped)."""
    out = features[..., INPUT_MIRROR, :].copy()
    out[..., 0] *= -1
    return out


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """MOTION21 joints (..., 21, 3) in camera axes mirrored across the image's vertical axis
    (x negated, left and right swapped): the 3D that belongs to :func:`mirror_features`' input."""
    out = joints[..., _MOTION_MIRROR, :].copy()
    out[..., 0] *= -1
    return out


def frames_with_detection(confidence: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(...,) bool: frames where at least one INPUT21 joint is usable."""
    conf = np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0)
    return ((conf > 0) & np.isfinite(keypoints).all(-1)).any(-1)
