"""The PyTorch hand landmark network against MediaPipe's own: the same crops through both.

:func:`hand_crops` takes real frames and the body keypoints BlazePose finds in them, and
crops the hands as :class:`~mocap.detect2d.estimators.hands_torch.HandLandmarksTorch` does;
:func:`torch_vs_tflite` runs those crops through the converted network shipped in the
package and through the TFLite interpreter on MediaPipe's ``hand_landmark_full.tflite``,
and measures the difference of the landmarks in image pixels, as a fraction of the hand's
size (the longer side of the box of the interpreter's 21 landmarks). Used by
tests/test_hands.py and benchmarks/bench_hands.py; needs torch, mediapipe 0.10.21 (the
.tflite file) and ``tflite_runtime`` (the interpreter).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HandCrops:
    """N hand crops of real frames: ``crops`` (N, 224, 224, 3) float32 in [0, 1], ``rois`` (N, 5)
    (cx, cy, side, side pixels, rotation radians), ``frame`` (N,) and ``side`` (N,) (0 left, 1 right)."""

    crops: np.ndarray
    rois: np.ndarray
    frame: np.ndarray
    side: np.ndarray


def hand_crops(frames: list[np.ndarray], body_keypoints: np.ndarray, body_confidence: np.ndarray,
               *, refine: bool = True) -> HandCrops:
    """The hand crops of ``frames`` ((H, W, 3) uint8 RGB) from the body (T, 33, 2) pixels and
    (T, 33) confidence: the ROI from the body, and with ``refine`` the ROI that the
    network's landmarks in it give (what tracking crops), where the hand is found."""
    import torch

    from mocap.detect2d.estimators import hands_torch as ht
    from mocap.detect2d.estimators.roi_crop import crop_rois

    est = ht.HandLandmarksTorch()
    rois, ok = ht.hand_rois_from_body(body_keypoints, body_confidence)
    frame, side = np.nonzero(ok)
    rois = rois[frame, side]
    if refine and len(rois):
        lm = est.landmarks(frames, frame, rois)
        rois = np.where((lm.score >= est.min_confidence)[:, None], lm.next_roi, rois)
    x = crop_rois(frames, frame, rois, est.size, ht.INPUT_RANGE, ht.ZERO_BORDER, warp="cv2", device="cpu",
                  dtype=torch.float32)
    return HandCrops(x.numpy(), rois, frame, side)


def tflite_hand_outputs(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's hand network in the TFLite interpreter, one crop at a time:
    (N, 224, 224, 3) float32 -> landmarks (N, 21, 3) crop pixels, presence (N,), world landmarks
    (N, 21, 3) metres (the crop's axes)."""
    from tflite_runtime.interpreter import Interpreter

    from mocap.detect2d.estimators.blazepose_models import mediapipe_hand_model_path

    it = Interpreter(model_path=str(mediapipe_hand_model_path()), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    out = {o["name"]: o["index"] for o in it.get_output_details()}
    lms, pres, world = [], [], []
    for x in crops:
        it.set_tensor(inp, np.ascontiguousarray(x[None], np.float32))
        it.invoke()
        lms.append(it.get_tensor(out["Identity"])[0].reshape(21, 3).copy())
        pres.append(float(it.get_tensor(out["Identity_1"]).reshape(-1)[0]))
        world.append(it.get_tensor(out["Identity_3"])[0].reshape(21, 3).copy())
    return np.array(lms), np.array(pres), np.array(world)


def torch_vs_tflite(c: HandCrops) -> dict:
    """The shipped PyTorch network and the TFLite interpreter on the crops ``c``.

    Returns:
        ``hands``: crops where the interpreter finds a hand (presence >= 0.5); over those,
        ``max_pct`` / ``median_pct``: the largest and median landmark distance in image pixels
        as a percentage of the hand's size; ``max_px``; ``world_max_mm``: the largest world
        landmark difference, millimetres; ``presence_max_diff`` over all crops.
    """
    import torch

    from mocap.detect2d.estimators import blazepose_anchors as bp
    from mocap.detect2d.estimators.hands_torch import HandLandmarksTorch

    est = HandLandmarksTorch()
    with torch.inference_mode():
        lm, pres, wld = est.network(torch.from_numpy(c.crops))
    got = lm.numpy().reshape(-1, 21, 3)
    ref, ref_pres, ref_world = tflite_hand_outputs(c.crops)
    size = np.array(est.size, np.float64)
    px_got = bp.project_from_roi(got[..., :2] / size, c.rois)
    px_ref = bp.project_from_roi(ref[..., :2] / size, c.rois)
    hand = ref_pres >= 0.5
    d = np.linalg.norm(px_got - px_ref, axis=-1)[hand]
    extent = (px_ref.max(1) - px_ref.min(1)).max(-1)[hand]
    pct = 100 * d / extent[:, None]
    return {"crops": len(c.crops), "hands": int(hand.sum()),
            "max_pct": float(pct.max()) if hand.any() else float("nan"),
            "median_pct": float(np.median(pct)) if hand.any() else float("nan"),
            "max_px": float(d.max()) if hand.any() else float("nan"),
            "world_max_mm": float(1000 * np.abs(wld.numpy().reshape(-1, 21, 3) - ref_world)[hand].max())
            if hand.any() else float("nan"),
            "presence_max_diff": float(np.abs(pres.numpy()[:, 0] - ref_pres).max()) if len(c.crops) else 0.0}
