"""BlazePose pre- and post-processing, as MediaPipe's pose graph does it, in numpy.

The numbers (input sizes and value ranges, SSD anchor options, box decoding, non-max
suppression, ROI rotation and scale, heatmap refinement, thresholds) are not copied here:
they come from the ``PoseLandmarkCpu`` graph of mediapipe 0.10.21, expanded by MediaPipe
itself into its calculators and their options. ``scripts/convert_blazepose.py`` read them
once (:func:`read_pose_graph` ``("mediapipe")``) into ``weights/pose_graph.json``, which
:func:`read_pose_graph` reads by default, so that running needs no mediapipe.

Conventions: pixels of the input image, x right, y down, pixel centres at integers (as in
OpenCV). A ROI is ``(cx, cy, width, height, rotation)``: centre and size in pixels, rotation
in radians, clockwise on screen (MediaPipe's ``NormalizedRect.rotation``). N is the number of
ROIs or detections, K detector keypoints, J landmarks (39: 33 body + 6 auxiliary).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.special import expit

from mocap.errors import MocapError


@dataclass(frozen=True)
class AnchorOptions:
    """MediaPipe ``SsdAnchorsCalculatorOptions`` (only what the pose detector uses)."""

    input_width: int
    input_height: int
    min_scale: float
    max_scale: float
    strides: tuple[int, ...]
    aspect_ratios: tuple[float, ...]
    offset_x: float
    offset_y: float
    fixed_anchor_size: bool
    interpolated_scale_aspect_ratio: float
    reduce_boxes_in_lowest_layer: bool


@dataclass(frozen=True)
class DecodeOptions:
    """MediaPipe ``TensorsToDetectionsCalculatorOptions`` of the pose detector."""

    num_boxes: int
    num_coords: int
    box_coord_offset: int
    keypoint_coord_offset: int
    num_keypoints: int
    num_values_per_keypoint: int
    scale: tuple[float, float, float, float]  # x, y, w, h
    reverse_output_order: bool
    sigmoid_score: bool
    score_clipping_thresh: float | None
    min_score_thresh: float
    apply_exponential_on_box_size: bool


@dataclass(frozen=True)
class RoiOptions:
    """Detection (or auxiliary landmarks) -> ROI: alignment keypoints and the margin."""

    start_keypoint: int
    end_keypoint: int
    target_angle: float  # radians
    scale_x: float
    scale_y: float
    square_long: bool


@dataclass(frozen=True)
class PoseGraph:
    """Everything BlazePoseTorch needs from MediaPipe's pose graph."""

    detector_size: tuple[int, int]  # (width, height) of the detector input tensor
    detector_range: tuple[float, float]  # pixel 0 -> first, 255 -> second
    detector_border_zero: bool
    anchors: AnchorOptions
    decode: DecodeOptions
    nms_threshold: float
    nms_weighted: bool
    detection_roi: RoiOptions
    landmark_size: tuple[int, int]
    landmark_range: tuple[float, float]
    landmark_border_zero: bool
    num_landmarks: int  # 39
    body_landmarks: tuple[int, int]  # [begin, end) of the body landmarks (0, 33)
    aux_landmarks: tuple[int, int]  # [begin, end) of the auxiliary landmarks (33, 35)
    visibility_sigmoid: bool
    presence_sigmoid: bool
    refine_kernel: int
    refine_min_confidence: float
    presence_threshold: float
    landmark_roi: RoiOptions


def _options(node, message_cls):
    """The options of ``node`` of type ``message_cls`` (legacy ``options`` or ``node_options``)."""
    ext = message_cls.ext
    if node.options.HasExtension(ext):
        return node.options.Extensions[ext]
    for any_msg in node.node_options:
        msg = message_cls()
        if any_msg.Unpack(msg):
            return msg
    return message_cls()


#: the converted BlazePose files shipped in the package (scripts/convert_blazepose.py writes them)
WEIGHTS = Path(__file__).resolve().parent / "weights"
POSE_GRAPH_JSON = WEIGHTS / "pose_graph.json"
_NESTED = {"anchors": AnchorOptions, "decode": DecodeOptions, "detection_roi": RoiOptions,
           "landmark_roi": RoiOptions}


def save_pose_graph(graph: PoseGraph, path: str | os.PathLike, *, source: dict | None = None) -> Path:
    """Write ``graph`` as JSON (its fields by name, plus ``source``: free-form provenance)."""
    path = Path(path)
    path.write_text(json.dumps({"source": source or {}, "graph": dataclasses.asdict(graph)}, indent=1) + "\n")
    return path


def load_pose_graph(path: str | os.PathLike) -> PoseGraph:
    """The :class:`PoseGraph` :func:`save_pose_graph` wrote to ``path``."""
    path = Path(path)
    if not path.is_file():
        raise MocapError(f"no pose graph options at {path}; the package is incomplete (reinstall mocap-lift)")

    def fields(cls, d: dict) -> dict:
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) != names:
            raise MocapError(f"{path}: {cls.__name__} fields {sorted(d)} do not match {sorted(names)}")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}

    g = fields(PoseGraph, json.loads(path.read_text())["graph"])
    for k, cls in _NESTED.items():
        g[k] = cls(**fields(cls, g[k]))
    return PoseGraph(**g)


@lru_cache(maxsize=2)
def read_pose_graph(source: str = "package") -> PoseGraph:
    """The pose pipeline's options: from the JSON shipped in the package (``source="package"``,
    the default; no mediapipe needed) or read from the installed mediapipe
    (``source="mediapipe"``, what the converter does; about 1-4 s, once)."""
    if source == "package":
        return load_pose_graph(POSE_GRAPH_JSON)
    if source == "mediapipe":
        return _pose_graph_from_mediapipe()
    raise ValueError(f"source must be 'package' or 'mediapipe', got {source!r}")


def _pose_graph_from_mediapipe() -> PoseGraph:
    """Read the pose pipeline's options from the installed mediapipe.

    The graph is ``modules/pose_landmark/pose_landmark_cpu.binarypb`` expanded with
    MediaPipe's ``ValidatedGraphConfig`` (which inlines the registered subgraphs
    ``PoseDetectionCpu``, ``PoseDetectionToRoi``, ``PoseLandmarkByRoiCpu``,
    ``PoseLandmarksToRoi``); defaults come from the calculators' proto definitions.
    """
    try:
        import mediapipe
        from mediapipe.calculators.core import split_vector_calculator_pb2 as split_pb
        from mediapipe.calculators.tensor import image_to_tensor_calculator_pb2 as itt_pb
        from mediapipe.calculators.tensor import tensors_to_detections_calculator_pb2 as ttd_pb
        from mediapipe.calculators.tensor import tensors_to_landmarks_calculator_pb2 as ttl_pb
        from mediapipe.calculators.tflite import ssd_anchors_calculator_pb2 as ssd_pb
        from mediapipe.calculators.util import detections_to_rects_calculator_pb2 as d2r_pb
        from mediapipe.calculators.util import non_max_suppression_calculator_pb2 as nms_pb
        from mediapipe.calculators.util import rect_transformation_calculator_pb2 as rt_pb
        from mediapipe.calculators.util import refine_landmarks_from_heatmap_calculator_pb2 as ref_pb
        from mediapipe.calculators.util import thresholding_calculator_pb2 as thr_pb
        from mediapipe.framework import calculator_pb2
        from mediapipe.python._framework_bindings import validated_graph_config
    except ImportError:
        from mocap.errors import missing_extra
        raise missing_extra("mediapipe", "detect") from None

    path = Path(mediapipe.__file__).parent / "modules" / "pose_landmark" / "pose_landmark_cpu.binarypb"
    if not path.is_file():
        raise MocapError(f"mediapipe {mediapipe.__version__} has no {path.name}; BlazePoseTorch needs "
                         f"mediapipe 0.10.21: pip install 'mocap-lift[detect]'")
    validated = validated_graph_config.ValidatedGraphConfig()
    validated.initialize(binary_graph_path=str(path))
    graph = calculator_pb2.CalculatorGraphConfig()
    graph.ParseFromString(validated.binary_config)

    def node(calculator: str, name_prefix: str, index: int = 0):
        found = [n for n in graph.node if n.calculator == calculator and n.name.startswith(name_prefix)]
        if len(found) <= index:
            raise MocapError(f"mediapipe {mediapipe.__version__}'s pose graph has no {calculator} "
                             f"({name_prefix}*); BlazePoseTorch was written for mediapipe 0.10.21")
        return found[index]

    def image_to_tensor(prefix):
        o = _options(node("ImageToTensorCalculator", prefix), itt_pb.ImageToTensorCalculatorOptions)
        r = o.output_tensor_float_range
        return ((o.output_tensor_width, o.output_tensor_height), (r.min, r.max),
                o.border_mode == itt_pb.ImageToTensorCalculatorOptions.BORDER_ZERO)

    def roi(prefix):
        a = _options(node("AlignmentPointsRectsCalculator", prefix), d2r_pb.DetectionsToRectsCalculatorOptions)
        t = _options(node("RectTransformationCalculator", prefix), rt_pb.RectTransformationCalculatorOptions)
        if t.shift_x or t.shift_y or t.rotation or t.rotation_degrees or t.square_short:
            raise MocapError(f"unexpected RectTransformation options in mediapipe's pose graph: {t}")
        angle = (math.radians(a.rotation_vector_target_angle_degrees)
                 if a.HasField("rotation_vector_target_angle_degrees") else a.rotation_vector_target_angle)
        return RoiOptions(a.rotation_vector_start_keypoint_index, a.rotation_vector_end_keypoint_index, angle,
                          t.scale_x, t.scale_y, t.square_long)

    det_size, det_range, det_zero = image_to_tensor("posedetectioncpu__")
    lm_size, lm_range, lm_zero = image_to_tensor("poselandmarkbyroicpu__")
    s = _options(node("SsdAnchorsCalculator", ""), ssd_pb.SsdAnchorsCalculatorOptions)
    if s.feature_map_width or s.feature_map_height or s.fixed_anchors:
        raise MocapError("unexpected SsdAnchors options (feature maps / fixed anchors) in mediapipe's pose graph")
    anchors = AnchorOptions(s.input_size_width, s.input_size_height, s.min_scale, s.max_scale, tuple(s.strides),
                            tuple(s.aspect_ratios), s.anchor_offset_x, s.anchor_offset_y, s.fixed_anchor_size,
                            s.interpolated_scale_aspect_ratio, s.reduce_boxes_in_lowest_layer)
    d = _options(node("TensorsToDetectionsCalculator", ""), ttd_pb.TensorsToDetectionsCalculatorOptions)
    if d.num_classes != 1:
        raise MocapError(f"unexpected pose detector with {d.num_classes} classes")
    decode = DecodeOptions(d.num_boxes, d.num_coords, d.box_coord_offset, d.keypoint_coord_offset, d.num_keypoints,
                           d.num_values_per_keypoint, (d.x_scale, d.y_scale, d.w_scale, d.h_scale),
                           d.reverse_output_order, d.sigmoid_score,
                           d.score_clipping_thresh if d.HasField("score_clipping_thresh") else None,
                           d.min_score_thresh, d.apply_exponential_on_box_size)
    n = _options(node("NonMaxSuppressionCalculator", ""), nms_pb.NonMaxSuppressionCalculatorOptions)
    if n.overlap_type != nms_pb.NonMaxSuppressionCalculatorOptions.INTERSECTION_OVER_UNION:
        raise MocapError("unexpected non-max suppression overlap type in mediapipe's pose graph")
    lms = [x for x in graph.node if x.calculator == "TensorsToLandmarksCalculator"]
    norm = [_options(x, ttl_pb.TensorsToLandmarksCalculatorOptions) for x in lms
            if any(s.startswith("NORM_LANDMARKS:") for s in x.output_stream)]
    if len(norm) != 1:
        raise MocapError("expected one TensorsToLandmarks node with NORM_LANDMARKS in mediapipe's pose graph")
    t = norm[0]
    sigmoid = ttl_pb.TensorsToLandmarksCalculatorOptions.SIGMOID
    split = _options(node("SplitNormalizedLandmarkListCalculator", ""), split_pb.SplitVectorCalculatorOptions)
    ranges = [(r.begin, r.end) for r in split.ranges]
    refine = _options(node("RefineLandmarksFromHeatmapCalculator", ""),
                      ref_pb.RefineLandmarksFromHeatmapCalculatorOptions)
    threshold = _options(node("ThresholdingCalculator", ""), thr_pb.ThresholdingCalculatorOptions)
    return PoseGraph(det_size, det_range, det_zero, anchors, decode, n.min_suppression_threshold,
                     n.algorithm == nms_pb.NonMaxSuppressionCalculatorOptions.WEIGHTED, roi("posedetectiontoroi__"),
                     lm_size, lm_range, lm_zero, t.num_landmarks, ranges[0], ranges[1],
                     t.visibility_activation == sigmoid, t.presence_activation == sigmoid, refine.kernel_size,
                     refine.min_confidence_to_refine, threshold.threshold, roi("poselandmarkstoroi__"))


# ---------------------------------------------------------------- detector

def ssd_anchors(o: AnchorOptions) -> np.ndarray:
    """(A, 4) float32 anchors (x_center, y_center, width, height), normalised to the input.

    Consecutive layers with the same stride share one grid; per grid cell the anchors of
    those layers follow each other (one per aspect ratio, plus the interpolated one).
    """
    def scale(i: int) -> float:
        n = len(o.strides)
        return (o.min_scale + o.max_scale) / 2 if n == 1 else o.min_scale + (o.max_scale - o.min_scale) * i / (n - 1)

    out = []
    layer = 0
    while layer < len(o.strides):
        sizes = []  # (width, height) of the anchors per cell
        last = layer
        while last < len(o.strides) and o.strides[last] == o.strides[layer]:
            if last == 0 and o.reduce_boxes_in_lowest_layer:
                pairs = [(1.0, 0.1), (2.0, scale(last)), (0.5, scale(last))]
            else:
                pairs = [(r, scale(last)) for r in o.aspect_ratios]
                if o.interpolated_scale_aspect_ratio > 0:
                    nxt = 1.0 if last == len(o.strides) - 1 else scale(last + 1)
                    pairs.append((o.interpolated_scale_aspect_ratio, math.sqrt(scale(last) * nxt)))
            sizes += [(s * math.sqrt(r), s / math.sqrt(r)) for r, s in pairs]
            last += 1
        rows = math.ceil(o.input_height / o.strides[layer])
        cols = math.ceil(o.input_width / o.strides[layer])
        for y in range(rows):
            for x in range(cols):
                for w, h in sizes:
                    if o.fixed_anchor_size:
                        w = h = 1.0
                    out.append(((x + o.offset_x) / cols, (y + o.offset_y) / rows, w, h))
        layer = last
    return np.asarray(out, np.float32)


def decode_detections(boxes: np.ndarray, scores: np.ndarray, anchors: np.ndarray, o: DecodeOptions,
                      *, min_score: float | None = None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Raw detector outputs -> per frame (boxes (N, 4) xmin, ymin, xmax, ymax; keypoints (N, K, 2);
    scores (N,)), normalised to the detector input, only those with score >= ``min_score``
    (default: the graph's threshold).

    Args:
        boxes: (B, A, num_coords) raw regressors.
        scores: (B, A, 1) raw class logits.
    """
    sx, sy, sw, sh = o.scale
    b0, k0 = o.box_coord_offset, o.keypoint_coord_offset
    ax, ay, aw, ah = (anchors[:, i] for i in range(4))
    if o.reverse_output_order:
        xc, yc, w, h = (boxes[..., b0 + i] for i in range(4))
    else:
        yc, xc, h, w = (boxes[..., b0 + i] for i in range(4))
    xc = xc / sx * aw + ax
    yc = yc / sy * ah + ay
    if o.apply_exponential_on_box_size:
        w, h = np.exp(w / sw) * aw, np.exp(h / sh) * ah
    else:
        w, h = w / sw * aw, h / sh * ah
    kp = boxes[..., k0:k0 + o.num_keypoints * o.num_values_per_keypoint].reshape(
        boxes.shape[0], boxes.shape[1], o.num_keypoints, o.num_values_per_keypoint)[..., :2]
    if not o.reverse_output_order:
        kp = kp[..., ::-1]
    kp = np.stack([kp[..., 0] / sx * aw[:, None] + ax[:, None], kp[..., 1] / sy * ah[:, None] + ay[:, None]], -1)
    s = scores[..., 0].astype(np.float64)
    if o.sigmoid_score:
        if o.score_clipping_thresh is not None:
            s = np.clip(s, -o.score_clipping_thresh, o.score_clipping_thresh)
        s = expit(s)
    threshold = o.min_score_thresh if min_score is None else min_score
    rect = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], -1)
    out = []
    for b in range(boxes.shape[0]):
        keep = (s[b] >= threshold) & (w[b] >= 0) & (h[b] >= 0)
        out.append((rect[b, keep].astype(np.float32), kp[b, keep].astype(np.float32), s[b, keep].astype(np.float32)))
    return out


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    union = area + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, *, threshold: float,
                 weighted: bool = True, max_detections: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's non-max suppression: the best box absorbs every box overlapping it by
    IoU > ``threshold``; with ``weighted`` its box and keypoints become the score-weighted
    mean of the absorbed ones (its score stays). Shapes as :func:`decode_detections`."""
    order = np.argsort(-scores, kind="stable")
    out_b, out_k, out_s = [], [], []
    while len(order) and (max_detections is None or len(out_s) < max_detections):
        top = order[0]
        overlap = _iou(boxes[top], boxes[order]) > threshold
        group = order[overlap]
        box, kp = boxes[top], keypoints[top]
        if weighted and len(group):
            w = scores[group] / scores[group].sum()
            box = (boxes[group] * w[:, None]).sum(0)
            kp = (keypoints[group] * w[:, None, None]).sum(0)
        out_b.append(box)
        out_k.append(kp)
        out_s.append(scores[top])
        rest = order[~overlap]
        if len(rest) == len(order):  # nothing absorbed (degenerate box): MediaPipe stops here too
            break
        order = rest
    k = keypoints.shape[1:] if keypoints.ndim == 3 else (0, 2)
    return (np.asarray(out_b, np.float32).reshape(-1, 4), np.asarray(out_k, np.float32).reshape((-1,) + tuple(k)),
            np.asarray(out_s, np.float32))


def letterbox(image_w: int, image_h: int, out_w: int, out_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole-image ROI padded to the tensor's aspect ratio (MediaPipe's keep_aspect_ratio).

    Returns:
        roi: (5,) (cx, cy, width, height, 0) pixels.
        padding: (4,) left, top, right, bottom, as fractions of the tensor.
    """
    w, h = float(image_w), float(image_h)
    if out_h / out_w > h / w:
        new_w, new_h = w, w * out_h / out_w
        pad = np.array([0.0, (new_h - h) / new_h / 2, 0.0, (new_h - h) / new_h / 2])
    else:
        new_w, new_h = h * out_w / out_h, h
        pad = np.array([(new_w - w) / new_w / 2, 0.0, (new_w - w) / new_w / 2, 0.0])
    return np.array([w / 2, h / 2, new_w, new_h, 0.0]), pad


def remove_letterbox(points: np.ndarray, padding: np.ndarray) -> np.ndarray:
    """(..., 2) points normalised to the letterboxed tensor -> normalised to the image."""
    left, top, right, bottom = padding
    return np.stack([(points[..., 0] - left) / (1 - left - right), (points[..., 1] - top) / (1 - top - bottom)], -1)


def _normalize_radians(a: np.ndarray) -> np.ndarray:
    return a - 2 * np.pi * np.floor((a + np.pi) / (2 * np.pi))


def rois_from_keypoints(keypoints: np.ndarray, o: RoiOptions) -> np.ndarray:
    """(N, K, 2) pixel keypoints -> (N, 5) ROIs (cx, cy, w, h, rotation).

    The centre is keypoint ``start``; the side is twice its distance to keypoint ``end``
    times the scale (square); the rotation turns the start->end vector to the target angle.
    """
    p0 = keypoints[:, o.start_keypoint].astype(np.float64)
    p1 = keypoints[:, o.end_keypoint].astype(np.float64)
    size = 2.0 * np.hypot(p1[:, 0] - p0[:, 0], p1[:, 1] - p0[:, 1])
    rotation = _normalize_radians(o.target_angle - np.arctan2(-(p1[:, 1] - p0[:, 1]), p1[:, 0] - p0[:, 0]))
    w = h = size  # already square in pixels, so square_long changes nothing
    return np.stack([p0[:, 0], p0[:, 1], w * o.scale_x, h * o.scale_y, rotation], -1)


def roi_to_crop_matrix(rois: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """(N, 5) ROIs -> (N, 2, 3) affine maps from crop pixel (u, v) to image pixel (x, y).

    Crop pixel (0, 0) samples the ROI's top-left corner and (out_w, out_h) its bottom-right
    corner, as MediaPipe's OpenCV ``ImageToTensor`` does (``getPerspectiveTransform`` of the
    rotated rectangle's corners onto the tensor's corners).
    """
    cx, cy, w, h, r = (rois[:, i].astype(np.float64) for i in range(5))
    c, s = np.cos(r), np.sin(r)
    m = np.empty((len(rois), 2, 3))
    m[:, 0, 0] = c * w / out_w
    m[:, 0, 1] = -s * h / out_h
    m[:, 0, 2] = cx - c * w / 2 + s * h / 2
    m[:, 1, 0] = s * w / out_w
    m[:, 1, 1] = c * h / out_h
    m[:, 1, 2] = cy - s * w / 2 - c * h / 2
    return m


def project_from_roi(points: np.ndarray, rois: np.ndarray) -> np.ndarray:
    """(N, J, 2) points normalised to the ROI crop ([0, 1] across it) -> (N, J, 2) image pixels."""
    cx, cy, w, h, r = (rois[:, i, None] for i in range(5))
    u = (points[..., 0] - 0.5) * w
    v = (points[..., 1] - 0.5) * h
    c, s = np.cos(r), np.sin(r)
    return np.stack([cx + c * u - s * v, cy + s * u + c * v], -1)


def refine_from_heatmap(points: np.ndarray, heatmap: np.ndarray, *, kernel: int, min_confidence: float) -> np.ndarray:
    """MediaPipe's heatmap refinement of crop-normalised landmarks.

    Each landmark moves to the sigmoid-weighted mean cell position in a ``kernel`` window
    around its own cell of its heatmap channel, if the window's largest sigmoid value
    reaches ``min_confidence``. Landmarks outside the heatmap stay. (MediaPipe truncates the
    cell index towards zero and tests the row against the width; kept as is.)

    Args:
        points: (N, J, 2) x, y in [0, 1] of the crop.
        heatmap: (N, Hm, Wm, J) logits.
    """
    n, hm_h, hm_w, j = heatmap.shape
    out = points.copy()
    col = np.trunc(points[..., 0] * hm_w).astype(np.int64)
    row = np.trunc(points[..., 1] * hm_h).astype(np.int64)
    inside = (col >= 0) & (col < hm_w) & (row >= 0) & (col < hm_h)
    half = (kernel - 1) // 2
    offs = np.arange(-half, half + 1)
    rows = row[..., None] + offs  # (N, J, k)
    cols = col[..., None] + offs
    rv = (rows >= 0) & (rows < hm_h)
    cv = (cols >= 0) & (cols < hm_w)
    ni, ji = np.meshgrid(np.arange(n), np.arange(j), indexing="ij")
    vals = heatmap[ni[..., None, None], np.clip(rows, 0, hm_h - 1)[..., :, None],
                   np.clip(cols, 0, hm_w - 1)[..., None, :], ji[..., None, None]]  # (N, J, k, k)
    conf = expit(vals.astype(np.float64))
    conf = conf * (rv[..., :, None] & cv[..., None, :])
    total = conf.sum((-1, -2))
    best = conf.max((-1, -2))
    wx = (conf * cols[..., None, :]).sum((-1, -2))
    wy = (conf * rows[..., :, None]).sum((-1, -2))
    ok = inside & (best >= min_confidence) & (total > 0)
    safe = np.where(total > 0, total, 1.0)
    out[..., 0] = np.where(ok, wx / hm_w / safe, points[..., 0])
    out[..., 1] = np.where(ok, wy / hm_h / safe, points[..., 1])
    return out
