"""Face landmarks: MediaPipe's face landmark network with attention in PyTorch, placed by the body.

Reference: MediaPipe's own TFLite interpreter (its InferenceCalculator with the custom op
resolver the attention model needs; the plain tflite_runtime interpreter lacks those ops) on
face_landmark_with_attention.tflite, fed the same crops: the face ROIs of real frames of
examples/balance_cam01.mp4 (whose face is pixelated, so the network finds no face there, but
it runs every op and its lip and eye crops on a face-shaped mesh), random images, and the
faces in the COCO photos of ../shared/data (where MediaPipe's whole face subgraph also checks
how the lips, eyes and irises are merged into 478 points).
Synthetic bodies give face ROIs that are known exactly.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")
HAVE_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
needs_mediapipe = pytest.mark.skipif(not HAVE_MEDIAPIPE, reason="needs mediapipe 0.10.21 (the reference interpreter)")

from mocap.detect2d.estimators import face_torch as ft  # noqa: E402
from mocap.skeletons import MEDIAPIPE33  # noqa: E402

from .conftest import EXAMPLE_VIDEO, shared_path  # noqa: E402


@pytest.fixture(scope="module")
def clip():
    """6 real frames (every 16th) and the body BlazePoseTorch finds in them."""
    from mocap.detect2d.estimators.blazepose_torch import BlazePoseTorch
    from mocap.io.video import iter_frames

    frames = [f for i, f in enumerate(iter_frames(EXAMPLE_VIDEO)) if i % 16 == 0][:6]
    body = BlazePoseTorch()(frames)
    return frames, body.keypoints[:, 0], body.confidence[:, 0]


@pytest.fixture(scope="module")
def est():
    return ft.FaceLandmarksTorch()


@needs_mediapipe
def test_network_matches_mediapipe_interpreter(clip):
    """Target of the issue: the 478 landmarks within 1 % of the face's size. Measured on the
    dev machine (6 real face crops + 3 random): max 0.00015 %, raw outputs within 2e-4 px."""
    from mocap.eval.face_tflite import FaceCrops, face_crops, torch_vs_tflite

    real = face_crops(*clip, refine=False)
    assert len(real.frame) == len(clip[0])  # the body places a face ROI in every frame
    rng = np.random.default_rng(0)
    noise = rng.random((3, 192, 192, 3)).astype(np.float32)
    rois = np.tile([[96.0, 96.0, 192.0, 192.0, 0.3]], (3, 1))
    both = FaceCrops(np.concatenate([real.crops, noise]), np.concatenate([real.rois, rois]),
                     np.concatenate([real.frame, np.zeros(3, int)]))
    r = torch_vs_tflite(both)
    print(r)
    assert r["crops"] == 9
    assert r["max_pct"] < 1.0 and r["median_pct"] < 0.01
    assert r["max_raw"] < 0.01 and r["presence_max_diff"] < 1e-4


@needs_mediapipe
@pytest.mark.shared_data
@pytest.mark.slow
def test_network_and_refinement_match_mediapipe_on_real_faces():
    """Faces in the COCO photos of ../shared/data (found from BlazePose's bodies): the landmarks
    within 1 % of the face's size of MediaPipe's interpreter, and our 478 points (lips, eyes and
    irises merged into the mesh) those of MediaPipe's own FaceLandmarkCpu subgraph. Measured:
    25 faces, max 0.00026 % of the face size; refined points within 1.8e-4 px."""
    from mocap.eval.face_tflite import photo_face_crops, torch_vs_tflite

    folder = shared_path("images", "coco_mini")
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("*.jpg"))]
    crops = photo_face_crops(images)
    assert len(crops.frame) >= 20  # measured: 25 faces in 60 photos
    r = torch_vs_tflite(crops)
    print(r)
    assert r["faces"] == r["crops"]  # MediaPipe finds every face we found
    assert r["max_pct"] < 1.0 and r["median_pct"] < 0.01
    assert r["refined_max_px"] < 0.01


def test_refinement_indices_come_from_the_model(est):
    lips, left, right = est.indices
    assert (len(lips), len(left), len(right)) == (80, 71, 71)
    assert lips[0] == 61 and left[0] == 33 and right[0] == 263  # mouth corner, eyes' outer corners
    assert len(set(lips) | set(left) | set(right)) == 222 and max(max(lips), max(left), max(right)) < 468


def test_refine_puts_parts_and_irises_in_place():
    rng = np.random.default_rng(1)
    idx = (np.arange(80), np.arange(100, 171), np.arange(200, 271))
    mesh = rng.random((2, 468, 3))
    parts = [rng.random((2, n, 2)) for n in (80, 71, 71, 5, 5)]
    out = ft.refine_face_landmarks(mesh, *parts, idx)
    assert out.shape == (2, 478, 3)
    np.testing.assert_array_equal(out[:, 100:171, :2], parts[1])
    np.testing.assert_array_equal(out[:, 473:, :2], parts[4])
    np.testing.assert_array_equal(out[:, :, 2][:, :468], mesh[..., 2])  # z stays the mesh's
    np.testing.assert_allclose(out[:, 470, 2], mesh[:, 100:116, 2].mean(1))
    np.testing.assert_array_equal(out[:, 300:468], mesh[:, 300:468])


def _body(centre, eye_gap, angle):
    """mediapipe33 keypoints of a face seen from the front, turned by ``angle`` (radians, image plane)."""
    kp = np.full((MEDIAPIPE33.num_joints, 2), np.nan)
    local = {"nose": (0, 0.3), "left_eye": (0.5, 0), "right_eye": (-0.5, 0), "left_ear": (1.0, 0.2),
             "right_ear": (-1.0, 0.2), "mouth_left": (0.35, 0.9), "mouth_right": (-0.35, 0.9)}
    c, s = np.cos(angle), np.sin(angle)
    for name, (x, y) in local.items():
        kp[MEDIAPIPE33.index(name)] = np.asarray(centre) + eye_gap * np.array([c * x - s * y, s * x + c * y])
    conf = np.where(np.isfinite(kp).all(-1), 0.9, 0.0)
    return kp, conf


@pytest.mark.parametrize("angle", [0.0, 0.4, -1.0])
def test_face_roi_from_body_follows_the_eye_line(angle):
    kp, conf = _body((500.0, 300.0), 40.0, angle)
    rois, ok = ft.face_rois_from_body(kp, conf)
    assert ok
    assert np.isclose(rois[4], angle)  # the ROI turns with the eye line (MediaPipe's rotation convention)
    assert np.isclose(rois[2], max(ft.EAR_SCALE * 80.0, ft.EYE_MOUTH_SCALE * 36.0))
    kp[MEDIAPIPE33.index("mouth_left")] = np.nan
    assert not ft.face_rois_from_body(kp, conf)[1]


def test_landmark_roi_is_mediapipes_rule():
    rng = np.random.default_rng(2)
    lm = rng.random((468, 2)) * [60, 90] + [100, 200]
    lm[33], lm[263] = (100, 230), (160, 230)  # level eyes
    roi = ft.face_rois_from_landmarks(lm)
    assert np.isclose(roi[4], 0.0)
    np.testing.assert_allclose(roi[:2], (lm.min(0) + lm.max(0)) / 2)
    assert np.isclose(roi[2], 1.5 * (lm[:, 1].max() - lm[:, 1].min()))  # the longer side, times 1.5


def test_no_face_without_the_bodys_face_points(est):
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    kp = np.full((3, 33, 2), np.nan)
    out = est.faces(frames, kp, np.zeros((3, 33)))
    assert np.isnan(out.keypoints).all() and (out.score == 0).all()
    with pytest.raises(ValueError, match="frames but body keypoints"):
        est.faces(frames, kp[:2], np.zeros((2, 33)))
