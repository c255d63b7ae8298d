"""Face landmarks in PyTorch: MediaPipe's face landmark network with attention on face regions found from the body.

The network is MediaPipe's ``face_landmark_with_attention.tflite`` (mediapipe 0.10.21,
Apache-2.0), converted once by ``scripts/convert_blazepose.py`` into
``weights/face_landmark_with_attention.{json,pt}``
(:mod:`mocap.detect2d.estimators.blazepose_models`) and run by
:mod:`mocap.detect2d.estimators.tflite_torch` (its three MediaPipe custom ops by
:mod:`mocap.detect2d.estimators.tflite_mediapipe_ops`): a 192 x 192 RGB crop (values in
[0, 1]) -> the 468-point mesh (x, y crop pixels, z), lips (80), eyes (71 each) and irises
(5 each) re-located in crops of their own, and a face presence logit.
:func:`refine_face_landmarks` merges them into MediaPipe's 478 points (``face478``): the
lips' and eyes' x, y replace the mesh's at the points they re-locate (the index lists are the
``subset_idxs`` of the model's own crop ops), the irises become points 468-477 with the
mean depth of their eye's contour.

Where the face is comes from the body, as hands come from the wrists
(:mod:`mocap.detect2d.estimators.hands_torch`), not from a face detector: BlazePose's eyes,
ears and mouth give a square turned with the eye line (:func:`face_rois_from_body`). When
following a video, a face found in one frame gives the next frame's ROI from its own
landmarks (:func:`face_rois_from_landmarks`, MediaPipe's rule: the landmarks' box in the
frame of the eye corners, 1.5 times its longer side) while that ROI stays near the body's;
a face found afresh from the body gets a second pass in the ROI its landmarks give.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mocap.detect2d.estimators import blazepose_anchors as bp
from mocap.detect2d.estimators.base import replace_rows
from mocap.detect2d.estimators.roi_crop import crop_network_settings, crop_rois, device_images, square_input_size
from mocap.detect2d.estimators.tflite_torch import run_batched
from mocap.errors import MocapError
from mocap.skeletons import MEDIAPIPE33

#: points of the refined face mesh (468 mesh points + 2 x 5 iris points)
NUM_FACE_POINTS = 478
#: the face network's input value range and border (MediaPipe's face landmark graph: [0, 1],
#: edge pixels repeated)
INPUT_RANGE = (0.0, 1.0)
ZERO_BORDER = False
#: body points (MEDIAPIPE33) that place the face: eyes (centres), ears, mouth corners, nose
BODY_FACE_POINTS = {k: MEDIAPIPE33.index(k) for k in ("nose", "left_eye", "right_eye", "left_ear", "right_ear",
                                                      "mouth_left", "mouth_right")}
#: ROI from the body: the square's side is the larger of ``EAR_SCALE`` x the ear-to-ear distance
#: and ``EYE_MOUTH_SCALE`` x the eyes-to-mouth distance (the first shrinks in profile, the second
#: when the head bows), centred between the eyes' and the mouth's midpoints. Chosen on the COCO
#: photos of ../shared/data (36 bodies with face points): faces found after the second pass with
#: 1.5 / 3.6: 25, 1.2 / 3.3: 25, 1.5 / 3.0: 24, 1.9 / 4.4: 22, 1.9 / 5.2: 20, 1.5 / 2.6: 23
EAR_SCALE = 1.5
EYE_MOUTH_SCALE = 3.6
#: ROI from the face's landmarks: the side is this many times the larger side of their box
#: (MediaPipe's face_landmark_landmarks_to_roi)
LANDMARK_ROI_SCALE = 1.5
#: mesh points whose line gives the face's rotation in the tracked ROI (the eyes' outer corners)
ROTATION_POINTS = (33, 263)
#: a tracked ROI is kept while its centre lies within this fraction of the body ROI's side of
#: the body ROI's centre
MAX_TRACK_DRIFT = 0.5
#: the network's outputs, by tensor name
OUTPUTS = ("output_mesh_identity", "output_lips", "output_left_eye", "output_right_eye", "output_left_iris",
           "output_right_iris", "conv_faceflag")


def _eye_line_rotation(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(..., 2) points -> the ROI rotation (radians) that turns ``start`` -> ``end`` horizontal (rightwards)."""
    d = end - start
    return bp._normalize_radians(-np.arctan2(-d[..., 1], d[..., 0]))


def face_rois_from_body(keypoints: np.ndarray, confidence: np.ndarray, *, min_confidence: float = 0.5,
                        ear_scale: float = EAR_SCALE, eye_mouth_scale: float = EYE_MOUTH_SCALE
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The face's ROI from BlazePose's body landmarks.

    Args:
        keypoints: (..., 33, 2) pixels, mediapipe33 layout, NaN where missing.
        confidence: (..., 33) in [0, 1].
        min_confidence: a face whose eyes or mouth corners are less confident (or missing) has no ROI.

    Returns:
        rois (..., 5): (cx, cy, side, side pixels, rotation radians), NaN where there is none;
        ok (...,) bool.
    """
    kp = np.asarray(keypoints, np.float64)
    conf = np.asarray(confidence, np.float64)
    if kp.shape[-2:] != (MEDIAPIPE33.num_joints, 2) or conf.shape != kp.shape[:-1]:
        raise ValueError(f"keypoints must be (..., 33, 2) mediapipe33 pixels and confidence (..., 33), "
                         f"got {kp.shape} and {conf.shape}")
    p = {k: kp[..., i, :] for k, i in BODY_FACE_POINTS.items()}
    need = [BODY_FACE_POINTS[k] for k in ("left_eye", "right_eye", "mouth_left", "mouth_right")]
    ok = (np.isfinite(kp[..., need, :]).all(-1) & (np.nan_to_num(conf[..., need]) >= min_confidence)).all(-1)
    eyes = (p["left_eye"] + p["right_eye"]) / 2
    mouth = (p["mouth_left"] + p["mouth_right"]) / 2
    ears = np.linalg.norm(p["left_ear"] - p["right_ear"], axis=-1)
    side = np.fmax(ear_scale * ears, eye_mouth_scale * np.linalg.norm(mouth - eyes, axis=-1))
    ok &= np.isfinite(side) & (side > 0)
    # the person's right eye is on the image's left when they face the camera
    rotation = _eye_line_rotation(p["right_eye"], p["left_eye"])
    centre = (eyes + mouth) / 2
    rois = np.concatenate([centre, side[..., None], side[..., None], rotation[..., None]], -1)
    rois[~ok] = np.nan
    return rois, ok


def face_rois_from_landmarks(landmarks: np.ndarray, *, scale: float = LANDMARK_ROI_SCALE) -> np.ndarray:
    """(..., 478 or 468, 2) face landmarks (pixels) -> (..., 5) ROIs for the next frame: the
    landmarks' box in the frame turned so that points 33 -> 263 are horizontal, squared to its
    longer side times ``scale``."""
    lm = np.asarray(landmarks, np.float64)[..., :468, :]
    rotation = _eye_line_rotation(lm[..., ROTATION_POINTS[0], :], lm[..., ROTATION_POINTS[1], :])
    c, s = np.cos(rotation)[..., None], np.sin(rotation)[..., None]
    u = c * lm[..., 0] + s * lm[..., 1]  # image -> ROI axes (the inverse rotation)
    v = -s * lm[..., 0] + c * lm[..., 1]
    mu, mv = (u.min(-1) + u.max(-1)) / 2, (v.min(-1) + v.max(-1)) / 2
    centre = np.stack([c[..., 0] * mu - s[..., 0] * mv, s[..., 0] * mu + c[..., 0] * mv], -1)
    side = scale * np.maximum(u.max(-1) - u.min(-1), v.max(-1) - v.min(-1))
    return np.concatenate([centre, side[..., None], side[..., None], rotation[..., None]], -1)


def refinement_indices(graph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mesh points that the lips, left eye and right eye outputs re-locate, in their order:
    the ``subset_idxs`` of the model's ``Landmarks2TransformMatrix`` ops (lips, left eye, right eye)."""
    lists = [np.asarray(op.options["subset_idxs"], np.int64) for op in graph.operators
             if op.op == "CUSTOM:Landmarks2TransformMatrix"]
    if [len(x) for x in lists] != [80, 71, 71]:
        raise MocapError(f"{graph.path.name}: expected the lips (80), left eye and right eye (71) crop ops, "
                         f"found {[len(x) for x in lists]}")
    return tuple(lists)


def refine_face_landmarks(mesh: np.ndarray, lips: np.ndarray, left_eye: np.ndarray, right_eye: np.ndarray,
                          left_iris: np.ndarray, right_iris: np.ndarray,
                          indices: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """MediaPipe's 478 points from the network's outputs (crop pixels).

    Args:
        mesh: (N, 468, 3); lips: (N, 80, 2); left_eye, right_eye: (N, 71, 2); left_iris, right_iris: (N, 5, 2).
        indices: :func:`refinement_indices`.

    Returns:
        (N, 478, 3): the mesh with the lips' and eyes' x, y in place, the left iris as points
        468-472 and the right as 473-477, each with the mean z of its eye's first 16 points
        (the eyelid contour).
    """
    out = np.concatenate([np.asarray(mesh, np.float64), np.zeros((len(mesh), 10, 3))], 1)
    for idx, pts in zip(indices, (lips, left_eye, right_eye)):
        out[:, idx, :2] = pts
    for k, (idx, iris) in enumerate(zip(indices[1:], (left_iris, right_iris))):
        sl = slice(468 + 5 * k, 473 + 5 * k)
        out[:, sl, :2] = iris
        out[:, sl, 2] = out[:, idx[:16], 2].mean(1, keepdims=True)
    return out


@dataclass(frozen=True)
class FaceLandmarks:
    """Landmarks of N face ROIs, in pixels of their frames.

    Attributes:
        frame: (N,) int, the frame of each ROI.
        keypoints: (N, 478, 2) float32 pixels (x right, y down), MediaPipe's refined mesh order.
        z: (N, 478) float32 depth, pixels (the network's z scaled like x; smaller is nearer).
        score: (N,) float32 in [0, 1], the face presence score.
        roi: (N, 5) the ROI the landmarks were computed in; next_roi: (N, 5) the ROI they give.
    """

    frame: np.ndarray
    keypoints: np.ndarray
    z: np.ndarray
    score: np.ndarray
    roi: np.ndarray
    next_roi: np.ndarray

    def take(self, mask: np.ndarray) -> FaceLandmarks:
        """The ROIs where ``mask`` (N,) bool is true (or at the indices ``mask``)."""
        return FaceLandmarks(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


@dataclass(frozen=True)
class Face:
    """One person's face over T frames.

    Attributes:
        keypoints: (T, 478, 2) float32 pixels, NaN where the face is not found.
        z: (T, 478) float32 depth, pixels, NaN where not found.
        score: (T,) float32 presence score (0 where not looked for).
        roi: (T, 5) float64 ROI the face was found in (NaN where none).
        next_roi: (5,) the ROI the face's track gives the frame after the last (NaN: none), to
            go on tracking from (``start_roi`` of :meth:`FaceLandmarksTorch.faces`).
    """

    keypoints: np.ndarray
    z: np.ndarray
    score: np.ndarray
    roi: np.ndarray
    next_roi: np.ndarray | None = None


class FaceLandmarksTorch:
    """MediaPipe's face landmark network with attention in PyTorch, on ROIs from the body; see the module docstring.

    Args:
        device: torch device, "cpu" or "cuda[:i]".
        min_confidence: a face whose presence score is below this is not found (NaN).
        batch_size: crops per network call (default 8 on CPU, 256 on CUDA).
        warp: "cv2" (crops on the CPU) or "torch" (on ``device``); default "cv2" on CPU.
        models: ``"package"`` (the converted network shipped in ``weights/``) or ``"mediapipe"``
            (the .tflite file of the installed mediapipe 0.10.21, read with the ``tflite`` package).
    """

    name = "face-torch"

    def __init__(self, device: str = "cpu", *, min_confidence: float = 0.5, batch_size: int | None = None,
                 warp: str | None = None, models: str = "package") -> None:
        self.device, self.warp, self.min_confidence, self.batch_size = crop_network_settings(
            device, warp, min_confidence, batch_size)
        from mocap.detect2d.estimators.blazepose_models import load_face_graph
        from mocap.detect2d.estimators.tflite_torch import load_tflite

        graph = load_face_graph(models)
        self.size = square_input_size(graph)
        names = {graph.tensors[i].name for i in graph.outputs}
        if not set(OUTPUTS) <= names:
            raise MocapError(f"{graph.path.name} has outputs {sorted(names)}, expected {', '.join(OUTPUTS)}")
        self.indices = refinement_indices(graph)
        self.network = load_tflite(graph, outputs=list(OUTPUTS)).to(self.device)

    def run_crops(self, x) -> tuple[np.ndarray, np.ndarray]:
        """The network on crops ``x`` (N, 192, 192, 3) torch float in [0, 1] -> landmarks (N, 478, 3)
        crop pixels (x, y, z), presence score (N,) in [0, 1]."""
        from scipy.special import expit

        out = run_batched(self.network, x, self.batch_size)
        n = len(x)
        mesh, lips, le, re_, li, ri = (o.float().cpu().numpy().reshape(n, -1, d) for o, d in
                                       zip(out[:-1], (3, 2, 2, 2, 2, 2)))
        score = expit(out[-1].float().cpu().numpy().reshape(-1))
        return refine_face_landmarks(mesh, lips, le, re_, li, ri, self.indices), score

    def landmarks(self, images: Sequence[np.ndarray], frame: np.ndarray, rois: np.ndarray) -> FaceLandmarks:
        """The network on ROIs ``rois`` (N, 5) of ``images[frame[n]]`` ((H, W, 3) uint8 RGB) -> :class:`FaceLandmarks`."""
        import torch

        frame = np.asarray(frame, np.int64)
        rois = np.asarray(rois, np.float64).reshape(-1, 5)
        if len(frame) == 0:
            return FaceLandmarks(frame, np.zeros((0, NUM_FACE_POINTS, 2), np.float32),
                                 np.zeros((0, NUM_FACE_POINTS), np.float32), np.zeros(0, np.float32), rois, rois)
        x = crop_rois(images, frame, rois, self.size, INPUT_RANGE, ZERO_BORDER, warp=self.warp, device=self.device,
                      dtype=torch.float32)
        raw, score = self.run_crops(x)
        px = bp.project_from_roi(raw[..., :2] / np.array(self.size, np.float64), rois)
        z = (raw[..., 2] / self.size[0] * rois[:, 2:3]).astype(np.float32)
        return FaceLandmarks(frame, px.astype(np.float32), z, score.astype(np.float32), rois,
                             face_rois_from_landmarks(px))

    def faces(self, frames: np.ndarray | Sequence[np.ndarray], body_keypoints: np.ndarray,
              body_confidence: np.ndarray, *, track: bool = True, span: int = 8, refine: bool = True,
              start_roi: np.ndarray | None = None) -> Face:
        """One person's face in frames in time order.

        Args:
            frames: (T, H, W, 3) uint8 RGB, or a list of T images.
            body_keypoints: (T, 33, 2) pixels (mediapipe33), NaN where missing; body_confidence: (T, 33).
            track: a face found in a frame gives the next frame's ROI while that ROI's centre stays
                within :data:`MAX_TRACK_DRIFT` of the body ROI's side from the body ROI's centre.
            span: with ``track``, the frames are cut into segments of ``span`` that advance side by
                side, so that each network call holds the faces of several frames.
            refine: a face looked for from the body gets a second pass in the ROI its landmarks give.
            start_roi: (5,) the ROI the face's track gives the first frame (a previous call's
                ``next_roi``: a live stream tracks frame by frame this way); NaN or None: none.

        Returns:
            :class:`Face`; NaN where the body's eyes or mouth are not confidently seen or the
            presence score is below ``min_confidence``.
        """
        images = device_images(frames, self.warp, self.device)
        t = len(images)
        kp = np.asarray(body_keypoints)
        if kp.shape[:1] != (t,):
            raise ValueError(f"{t} frames but body keypoints for {kp.shape[0] if kp.ndim else 0}")
        body, ok = face_rois_from_body(kp, body_confidence, min_confidence=self.min_confidence)
        span = int(span) if track else 1
        if span < 1:
            raise ValueError(f"span must be at least 1, got {span}")
        out_kp = np.full((t, NUM_FACE_POINTS, 2), np.nan, np.float32)
        out_z = np.full((t, NUM_FACE_POINTS), np.nan, np.float32)
        score = np.zeros(t, np.float32)
        used = np.full((t, 5), np.nan)
        starts = np.arange(0, t, span)
        tracked = np.full((len(starts), 5), np.nan)  # per segment: the ROI its last frame gave
        if track and start_roi is not None and len(starts):
            tracked[0] = np.asarray(start_roi, np.float64).reshape(5)
        for step in range(span):
            active = np.nonzero(starts + step < np.minimum(starts + span, t))[0]
            seg = active[ok[starts[active] + step]]
            tracked_now = tracked[seg]
            tracked[active] = np.nan
            if len(seg) == 0:
                continue
            f_ = starts[seg] + step
            rois = body[f_].copy()
            near = np.isfinite(tracked_now).all(-1) & (np.hypot(*(tracked_now[:, :2] - rois[:, :2]).T)
                                                        < MAX_TRACK_DRIFT * rois[:, 2])
            rois[near] = tracked_now[near]
            lm = self.landmarks(images, f_, rois)
            if refine and (~near).any():
                fresh = np.nonzero(~near)[0]
                second = self.landmarks(images, f_[fresh], lm.next_roi[fresh])
                better = second.score >= self.min_confidence
                lm = replace_rows(lm, fresh[better], second.take(better))
            found = lm.score >= self.min_confidence
            tracked[seg[found]] = lm.next_roi[found]
            out_kp[f_[found]] = lm.keypoints[found]
            out_z[f_[found]] = lm.z[found]
            score[f_] = lm.score
            used[f_] = lm.roi
        return Face(out_kp, out_z, score, used, tracked[-1].copy() if len(starts) else np.full(5, np.nan))
