"""The PyTorch face landmark network against MediaPipe's own: the same crops through both.

:func:`face_crops` takes real frames and the body keypoints BlazePose finds in them, and
crops the face as :class:`~mocap.detect2d.estimators.face_torch.FaceLandmarksTorch` does;
:func:`torch_vs_tflite` runs those crops through the converted network shipped in the
package and through MediaPipe's own TFLite interpreter (its ``InferenceCalculator`` with the
custom op resolver that registers the three ops the attention model uses; each crop is given
to MediaPipe's graph as a whole 192 x 192 image, so that both see the same pixels), and
measures the difference of the 478 refined landmarks in image pixels, as a fraction of the
face's size (the longer side of the box of the mesh).

The plain ``tflite_runtime`` interpreter cannot run this model (it lacks MediaPipe's custom
ops), hence the MediaPipe graph. Used by tests/test_face_network.py and
benchmarks/bench_face.py; needs torch and mediapipe 0.10.21.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the network's outputs, in the model's order, as MediaPipe's graph below names its streams
_STREAMS = ("mesh", "lips", "left_eye", "right_eye", "left_iris", "right_iris", "flag")
_MODEL = "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite"


def _graph_config() -> str:
    """A MediaPipe graph: image -> ImageToTensor (192 x 192, [0, 1]) -> InferenceCalculator (the
    TFLite interpreter with MediaPipe's custom op resolver) -> each output tensor as floats."""
    split = " ".join(f"ranges: {{ begin: {k} end: {k + 1} }}" for k in range(len(_STREAMS)))
    to_floats = "\n".join(f'node {{ calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:t{k}" '
                          f'output_stream: "FLOATS:{n}" }}' for k, n in enumerate(_STREAMS))
    return "\n".join([
        'input_stream: "image"', *(f'output_stream: "{n}"' for n in _STREAMS),
        'node { calculator: "ImageToTensorCalculator" input_stream: "IMAGE:image" output_stream: "TENSORS:input" '
        'options { [mediapipe.ImageToTensorCalculatorOptions.ext] { output_tensor_width: 192 '
        'output_tensor_height: 192 keep_aspect_ratio: false output_tensor_float_range { min: 0.0 max: 1.0 } } } }',
        'node { calculator: "TfLiteCustomOpResolverCalculator" output_side_packet: "OP_RESOLVER:op_resolver" }',
        'node { calculator: "InferenceCalculator" input_stream: "TENSORS:input" '
        'input_side_packet: "OP_RESOLVER:op_resolver" output_stream: "TENSORS:output" '
        f'options {{ [mediapipe.InferenceCalculatorOptions.ext] {{ model_path: "{_MODEL}" delegate {{ tflite {{}} }} }} }} }}',
        'node { calculator: "SplitTensorVectorCalculator" input_stream: "output" '
        + " ".join(f'output_stream: "t{k}"' for k in range(len(_STREAMS)))
        + f' options {{ [mediapipe.SplitVectorCalculatorOptions.ext] {{ {split} }} }} }}',
        to_floats])


@dataclass(frozen=True)
class FaceCrops:
    """N face crops of real images: ``crops`` (N, 192, 192, 3) float32 in [0, 1], ``rois`` (N, 5)
    (cx, cy, side, side pixels, rotation radians), ``frame`` (N,)."""

    crops: np.ndarray
    rois: np.ndarray
    frame: np.ndarray


def face_crops(frames: list[np.ndarray], body_keypoints: np.ndarray, body_confidence: np.ndarray,
               *, refine: bool = True) -> FaceCrops:
    """The face crops of ``frames`` ((H, W, 3) uint8 RGB) from the body (T, 33, 2) pixels and
    (T, 33) confidence: the ROI from the body, and with ``refine`` the ROI that the network's
    landmarks in it give (what tracking crops), where the face is found."""
    import torch

    from mocap.detect2d.estimators import face_torch as ft
    from mocap.detect2d.estimators.roi_crop import crop_rois

    est = ft.FaceLandmarksTorch()
    rois, ok = ft.face_rois_from_body(body_keypoints, body_confidence)
    frame = np.nonzero(ok)[0]
    rois = rois[frame]
    if refine and len(rois):
        lm = est.landmarks(frames, frame, rois)
        rois = np.where((lm.score >= est.min_confidence)[:, None], lm.next_roi, rois)
    x = crop_rois(frames, frame, rois, est.size, ft.INPUT_RANGE, ft.ZERO_BORDER, warp="cv2", device="cpu",
                  dtype=torch.float32)
    return FaceCrops(x.numpy(), rois, frame)


def photo_face_crops(images: list[np.ndarray], *, min_score: float = 0.5) -> FaceCrops:
    """Face crops of photos ((H, W, 3) uint8 RGB, any sizes): BlazePoseTorch's people in each,
    the face ROI from each body, refined once by the landmarks, kept where the face network's
    presence score is at least ``min_score``; ``frame`` is the photo's index."""
    import torch

    from mocap.detect2d.estimators import face_torch as ft
    from mocap.detect2d.estimators.blazepose_torch import BlazePoseTorch
    from mocap.detect2d.estimators.roi_crop import crop_rois

    body_net, est = BlazePoseTorch(), ft.FaceLandmarksTorch()
    crops, rois, frame = [], [], []
    for k, img in enumerate(images):
        body = body_net([img])
        for person in range(int(body.num_people[0])):
            roi, ok = ft.face_rois_from_body(body.keypoints[:, person], body.confidence[:, person])
            if not ok[0]:
                continue
            lm = est.landmarks([img], np.zeros(1, int), est.landmarks([img], np.zeros(1, int), roi).next_roi)
            if lm.score[0] < min_score:
                continue
            x = crop_rois([img], np.zeros(1, int), lm.roi, est.size, ft.INPUT_RANGE, ft.ZERO_BORDER, warp="cv2",
                          device="cpu", dtype=torch.float32)
            crops.append(x.numpy()[0])
            rois.append(lm.roi[0])
            frame.append(k)
    if not crops:
        return FaceCrops(np.zeros((0, *est.size[::-1], 3), np.float32), np.zeros((0, 5)), np.zeros(0, int))
    return FaceCrops(np.stack(crops), np.stack(rois), np.array(frame))


def mediapipe_face_outputs(crops: np.ndarray) -> tuple[np.ndarray, ...]:
    """MediaPipe's face network with attention in its own TFLite interpreter (custom ops
    included), on each crop given as a whole 192 x 192 image: (N, 192, 192, 3) uint8 ->
    mesh (N, 468, 3), lips (N, 80, 2), left eye, right eye (N, 71, 2), left iris, right iris
    (N, 5, 2) crop pixels, presence logit (N,)."""
    import os

    import mediapipe as mp
    from mediapipe.python import packet_creator, packet_getter
    from mediapipe.python._framework_bindings import resource_util

    resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mp.__file__)))
    n = len(crops)
    res = {s: [None] * n for s in _STREAMS}
    graph = mp.CalculatorGraph(graph_config=_graph_config())
    for s in _STREAMS:
        graph.observe_output_stream(s, lambda _, p, s=s: res[s].__setitem__(
            p.timestamp.value, np.array(packet_getter.get_float_list(p), np.float32)))
    graph.start_run()
    for k, img in enumerate(crops):
        graph.add_packet_to_input_stream("image", packet_creator.create_image_frame(
            image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img, np.uint8)).at(k))
    graph.close()
    dims = (3, 2, 2, 2, 2, 2, 1)
    return tuple(np.stack(res[s]).reshape(n, -1, d) if d > 1 else np.stack(res[s]).reshape(n)
                 for s, d in zip(_STREAMS, dims))


_REFINED_GRAPH = """
input_stream: "IMAGE:image"
input_stream: "ROI:roi"
output_stream: "LANDMARKS:landmarks"
node {
  calculator: "FaceLandmarkCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  input_side_packet: "WITH_ATTENTION:with_attention"
  output_stream: "LANDMARKS:landmarks"
}
"""


def mediapipe_refined_landmarks(crops: np.ndarray) -> np.ndarray:
    """MediaPipe's whole face landmark subgraph (``FaceLandmarkCpu`` with attention: the network,
    then its own merging of lips, eyes and irises into 478 points) on each crop as a whole image:
    (N, 192, 192, 3) uint8 -> (N, 478, 3) crop pixels (z scaled like x), NaN where it finds no
    face (presence below 0.5)."""
    import os

    import mediapipe as mp
    from mediapipe.framework.formats import rect_pb2
    from mediapipe.python import packet_creator, packet_getter
    from mediapipe.python._framework_bindings import resource_util

    resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mp.__file__)))
    n, h, w = crops.shape[:3]
    out = np.full((n, 478, 3), np.nan)

    def on_landmarks(_stream, packet):
        out[packet.timestamp.value] = [(p.x * w, p.y * h, p.z * w) for p in packet_getter.get_proto(packet).landmark]

    graph = mp.CalculatorGraph(graph_config=_REFINED_GRAPH)
    graph.observe_output_stream("landmarks", on_landmarks)
    graph.start_run({"with_attention": packet_creator.create_bool(True)})
    roi = rect_pb2.NormalizedRect(x_center=0.5, y_center=0.5, width=1.0, height=1.0, rotation=0.0)
    for k, img in enumerate(crops):
        graph.add_packet_to_input_stream("image", packet_creator.create_image_frame(
            image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img, np.uint8)).at(k))
        graph.add_packet_to_input_stream("roi", packet_creator.create_proto(roi).at(k))
    graph.close()
    return out


def torch_vs_tflite(c: FaceCrops) -> dict:
    """The shipped PyTorch network and MediaPipe's interpreter on the crops ``c`` (as uint8 images).

    Returns:
        ``crops``; ``max_pct`` / ``median_pct``: the largest and median distance of the 478
        refined landmarks (:func:`~mocap.detect2d.estimators.face_torch.refine_face_landmarks`)
        in image pixels, as a percentage of the face's size (the longer side of the box of
        MediaPipe's 468 mesh points); ``max_px``; ``face_px``: the median face size, pixels;
        ``max_raw``: the largest difference of any raw output (crop pixels);
        ``presence_max_diff``: of the presence score (after the sigmoid); ``faces``: crops where
        MediaPipe's whole face subgraph finds a face, and over those ``refined_max_px``: the
        largest difference between its 478 points (its own refinement) and ours (crop pixels,
        x, y and z), which checks :func:`~mocap.detect2d.estimators.face_torch.refine_face_landmarks`.
    """
    import torch

    from mocap.detect2d.estimators import blazepose_anchors as bp
    from mocap.detect2d.estimators.face_torch import OUTPUTS, FaceLandmarksTorch, refine_face_landmarks

    est = FaceLandmarksTorch()
    images = np.clip(np.rint(c.crops * 255), 0, 255).astype(np.uint8)
    with torch.inference_mode():
        raw = [o.numpy().reshape(len(images), -1) for o in est.network(torch.from_numpy(images / np.float32(255)))]
    ref = mediapipe_face_outputs(images)
    max_raw = max(float(np.abs(a - b.reshape(len(images), -1)).max()) for a, b in zip(raw[:-1], ref[:-1]))
    got = refine_face_landmarks(*(a.reshape(b.shape) for a, b in zip(raw[:-1], ref[:-1])), est.indices)
    want = refine_face_landmarks(*ref[:-1], est.indices)
    size = np.array(est.size, np.float64)
    px_got = bp.project_from_roi(got[..., :2] / size, c.rois)
    px_ref = bp.project_from_roi(want[..., :2] / size, c.rois)
    d = np.linalg.norm(px_got - px_ref, axis=-1)
    extent = (px_ref[:, :468].max(1) - px_ref[:, :468].min(1)).max(-1)
    pct = 100 * d / extent[:, None]
    from scipy.special import expit as sig

    mp_refined = mediapipe_refined_landmarks(images)
    face = np.isfinite(mp_refined).all((1, 2))
    refined_max = float(np.abs(got[face] - mp_refined[face]).max()) if face.any() else float("nan")
    return {"crops": len(images), "max_pct": float(pct.max()), "median_pct": float(np.median(pct)),
            "max_px": float(d.max()), "face_px": float(np.median(extent)), "max_raw": max_raw,
            "presence_max_diff": float(np.abs(sig(raw[-1][:, 0]) - sig(ref[-1])).max()),
            "faces": int(face.sum()), "refined_max_px": refined_max,
            "outputs": OUTPUTS}
