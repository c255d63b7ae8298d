"""BlazePoseTorch against MediaPipe's own PoseLandmarker, plus the geometry it relies on.

BlazePoseTorch runs from the converted weights shipped in the package (the default,
``models="package"``). References, where mediapipe is installed: the same networks read
from mediapipe's .tflite files (``models="mediapipe"``; measured on the dev machine: the
landmarks are identical, 0 px max and median, on 30 frames), and MediaPipe Tasks
PoseLandmarker in IMAGE mode on 30 real frames of examples/balance_cam01.mp4 (1080x1920,
one man), with the same two models. Its bundle gives the detector the value range
MediaPipe's own pose graph uses ([-1, 1], in weights/pose_graph.json). Measured on the
dev machine: mean landmark distance 0.004 % of the person's box (0.03 px), worst frame
mean 0.02 %.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")
try:
    import mediapipe
    import tflite  # noqa: F401  (reads mediapipe's .tflite files: the reference path)
except ImportError:
    mediapipe = None
needs_mediapipe = pytest.mark.skipif(mediapipe is None, reason="needs mediapipe 0.10.21 and the tflite package")

from mocap.detect2d.estimators import blazepose_anchors as bp  # noqa: E402
from mocap.detect2d.estimators import get_estimator  # noqa: E402
from mocap.detect2d.estimators.blazepose_torch import BlazePoseTorch, _refine_torch  # noqa: E402

from .conftest import EXAMPLE_VIDEO  # noqa: E402


@pytest.fixture(scope="module")
def frames():
    from mocap.io.video import iter_frames

    return [f for i, f in enumerate(iter_frames(EXAMPLE_VIDEO)) if i % 3 == 0][:30]


@pytest.fixture(scope="module")
def est():
    return get_estimator("blazepose-torch")


def _mediapipe_image_mode(frames, bundle: Path) -> np.ndarray:
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.PoseLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(bundle)),
                                           running_mode=vision.RunningMode.IMAGE, num_poses=1)
    out = np.full((len(frames), 33, 2), np.nan, np.float32)
    with vision.PoseLandmarker.create_from_options(options) as landmarker:
        for i, f in enumerate(frames):
            result = landmarker.detect(mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB,
                                                       data=np.ascontiguousarray(f)))
            if result.pose_landmarks:
                h, w = f.shape[:2]
                out[i] = [(lm.x * w, lm.y * h) for lm in result.pose_landmarks[0]]
    return out


def _box_size(kp: np.ndarray) -> np.ndarray:
    """(T, J, 2) -> (T,) longer side of the keypoints' bounding box."""
    return np.nanmax(np.nanmax(kp, 1) - np.nanmin(kp, 1), -1)


@needs_mediapipe
def test_matches_mediapipe_image_mode(est, frames, tmp_path):
    from mocap.detect2d.mediapipe_pose import DETECTOR_INPUT_RANGE, LANDMARKS_INPUT_RANGE, pose_landmarker_bundle

    # our production bundle feeds the networks what MediaPipe's own graph does
    assert tuple(est.graph.detector_range) == DETECTOR_INPUT_RANGE
    assert tuple(est.graph.landmark_range) == LANDMARKS_INPUT_RANGE
    ref = _mediapipe_image_mode(frames, pose_landmarker_bundle())
    got = est(frames)
    assert got.keypoints.shape == (30, 1, 33, 2) and got.layout == "mediapipe33"
    assert np.isfinite(ref).all() and (got.scores[:, 0] > 0.5).all()  # both find the man in every frame
    dist = np.linalg.norm(got.keypoints[:, 0] - ref, axis=-1) / _box_size(ref)[:, None]
    px = np.linalg.norm(got.keypoints[:, 0] - ref, axis=-1)
    print(f"BlazePoseTorch (shipped weights) vs MediaPipe IMAGE mode, 30 frames: mean {100 * dist.mean():.4f} % "
          f"of the box ({px.mean():.3f} px; median {np.median(px):.3f} px, max {px.max():.3f} px), "
          f"worst frame mean {100 * dist.mean(1).max():.4f} %")
    assert dist.mean() < 0.0025  # 0.25 % (task asks for 1 %)
    assert dist.mean(1).max() < 0.01
    assert ((got.confidence > 0) & (got.confidence <= 1)).all()


@needs_mediapipe
def test_shipped_weights_match_the_tflite_path(est, frames):
    """The converted networks and graph options give what mediapipe's own files give:
    the same float16 weights, so the same landmarks (to float rounding)."""
    from mocap.detect2d.estimators.blazepose_anchors import read_pose_graph

    assert read_pose_graph("package") == read_pose_graph("mediapipe")
    ref = BlazePoseTorch(models="mediapipe")
    assert len(ref.landmarker.output_names) == len(est.landmarker.output_names) == 4
    a, b = est(frames), ref(frames)
    assert a.num_people.tolist() == b.num_people.tolist() == [1] * len(frames)
    d = np.linalg.norm(a.keypoints - b.keypoints, axis=-1)
    print(f"shipped vs tflite, {len(frames)} frames: max {d.max():.2e} px, median {np.median(d):.2e} px")
    assert d.max() < 1e-3  # pixels, in 1080x1920 frames
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-5)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


@needs_mediapipe
def test_shipped_files_are_what_the_converter_writes(tmp_path):
    """weights/ is up to date: converting the installed mediapipe again gives the same files."""
    import json

    from mocap.detect2d.estimators.blazepose_anchors import WEIGHTS
    from mocap.detect2d.estimators.blazepose_models import convert

    written = convert(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in WEIGHTS.iterdir() if p.is_file())
    for p in written:
        shipped = WEIGHTS / p.name
        if p.suffix == ".pt":
            new, old = torch.load(p, weights_only=True), torch.load(shipped, weights_only=True)
            assert new.keys() == old.keys()
            for k in new:
                assert new[k].dtype == old[k].dtype and torch.equal(new[k], old[k]), k
        elif p.suffix == ".json":
            assert json.loads(p.read_text()) == json.loads(shipped.read_text()), p.name
        else:
            assert p.read_text() == shipped.read_text(), p.name


def test_shipped_files_are_small_and_licensed():
    """The converted models: a few MB, no file near GitHub's limits, the Apache-2.0 notice
    naming their source beside them (no mediapipe needed)."""
    import json

    from mocap.detect2d.estimators.blazepose_anchors import WEIGHTS
    from mocap.detect2d.estimators.blazepose_models import FACE_MODEL, HAND_MODEL, SHIPPED_MODELS

    sizes = {p.name: p.stat().st_size for p in WEIGHTS.iterdir()}
    # measured: 6.4 MB the largest, 18.0 MB in all (the hand landmark network: 5.5 MB, the face
    # network with attention: 2.6 MB)
    assert max(sizes.values()) < 10e6 and sum(sizes.values()) < 20e6, sizes
    notice = (WEIGHTS / "NOTICE").read_text()
    for word in ("mediapipe 0.10.21", "pose_detection.tflite", "pose_landmark_full.tflite",
                 "hand_landmark_full.tflite", "face_landmark_with_attention.tflite", "Apache License"):
        assert word in notice, word
    assert "Apache License" in (WEIGHTS / "LICENSE").read_text()
    for stem in (*SHIPPED_MODELS, HAND_MODEL, FACE_MODEL):
        source = json.loads((WEIGHTS / f"{stem}.json").read_text())["source"]
        assert source["mediapipe"] == "0.10.21" and source["file"].endswith(f"{stem}.tflite")
        assert source["license"] == "Apache-2.0" and len(source["sha256"]) == 64


def test_blank_images_have_nobody(est):
    got = est(np.stack([np.zeros((480, 640, 3), np.uint8), np.full((480, 640, 3), 128, np.uint8)]))
    assert got.keypoints.shape == (2, 0, 33, 2) and got.num_people.tolist() == [0, 0]


def test_input_forms(est, frames):
    rgb = frames[0]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1)
    a = est([rgb, rgba])
    np.testing.assert_allclose(a.keypoints[0], a.keypoints[1], atol=1e-3)  # alpha is dropped
    g = est(grey[None])
    np.testing.assert_array_equal(g.keypoints, est(np.repeat(grey[None, ..., None], 3, -1)).keypoints)
    assert g.num_people.tolist() == [1]
    empty = est(np.zeros((0, 480, 640, 3), np.uint8))
    assert empty.keypoints.shape == (0, 0, 33, 2) and empty.scores.shape == (0, 0)
    with pytest.raises(ValueError, match="too small"):
        est(np.zeros((1, 10, 200, 3), np.uint8))


def test_scaled_and_rotated_images_give_the_same_pose(est, frames):
    """Images of different sizes in one batch; a 90-degree turn is undone by the ROI rotation."""
    f = frames[5]
    h, w = f.shape[:2]
    half = cv2.resize(f, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    turned = np.ascontiguousarray(np.rot90(f, k=-1))  # clockwise: pixel (x, y) -> (h - 1 - y, x)
    got = est([f, half, turned])
    assert got.num_people.tolist() == [1, 1, 1]
    base = got.keypoints[0, 0]
    size = _box_size(base[None])[0]
    from_half = (got.keypoints[1, 0] + 0.5) * 2 - 0.5  # pixel centres at integers
    back = np.stack([got.keypoints[2, 0, :, 1], h - 1 - got.keypoints[2, 0, :, 0]], -1)
    assert np.linalg.norm(from_half - base, axis=-1).mean() / size < 0.02
    assert np.linalg.norm(back - base, axis=-1).mean() / size < 0.01


def test_two_people_side_by_side():
    pair = None
    from mocap.io.video import iter_frames

    for f in iter_frames(EXAMPLE_VIDEO):
        small = cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA)
        pair = np.concatenate([small, small[:, ::-1]], axis=1)  # the man and his mirror image
        break
    two = BlazePoseTorch(max_people=2)(pair[None])
    assert two.num_people.tolist() == [2]
    cx = np.sort(two.keypoints[0, :, :, 0].mean(-1))
    w = pair.shape[1]
    assert cx[0] < w / 2 < cx[1]
    np.testing.assert_allclose(cx[0] + cx[1], w - 1, atol=0.02 * w)  # mirror images of each other
    assert BlazePoseTorch(max_people=1)(pair[None]).num_people.tolist() == [1]


def test_a_pose_drawn_along_another_persons_legs_is_no_new_person(est, frames):
    """part_of_another on real landmarks: a "person" whose points all lie on the man's legs
    (what the pose detector proposed in the example's lower window, and the landmark network
    drew along his legs) is a part of him; the man is not a part of it, nor is a second man
    beside him, nor one half in front of him (the pair overlap both ways), nor one whose
    head and shoulders show above him; a tracked pose is never judged."""
    from mocap.detect2d.estimators.blazepose_torch import LIMBS
    from mocap.detect2d.estimators.blazepose_tracking import part_of_another

    man = est([frames[0]])
    kp, vis = man.keypoints[0, 0].astype(np.float64), man.confidence[0, 0]
    height = np.ptp(kp[:, 1])
    rng = np.random.default_rng(3)
    legs = [(23, 25), (25, 27), (24, 26), (26, 28), (27, 31), (28, 32)]
    pick = rng.integers(0, len(legs), 33)
    t = rng.uniform(0, 1, 33)[:, None]
    phantom = np.array([kp[legs[k][0]] + ti * (kp[legs[k][1]] - kp[legs[k][0]]) for k, ti in zip(pick, t)])
    phantom += rng.normal(0, 0.01 * height, phantom.shape)
    ones = np.ones(33, np.float32)

    def judged(b, fresh=(False, True)):
        return part_of_another(np.stack([kp, b]), np.stack([vis, ones]), np.zeros(2, int), np.array(fresh), LIMBS)

    assert judged(phantom).tolist() == [False, True]
    assert judged(phantom, fresh=(False, False)).tolist() == [False, False]  # tracked: kept
    assert judged(phantom, fresh=(True, False)).tolist() == [False, False]  # the man is no part of it
    assert judged(kp + [0.4 * height, 0]).tolist() == [False, False]  # beside him
    assert judged(kp + [0.03 * height, 0.02 * height]).tolist() == [False, False]  # crossing: both ways
    assert judged(kp - [0, 0.25 * height]).tolist() == [False, False]  # head and shoulders above him
    other_slot = part_of_another(np.stack([kp, phantom]), np.stack([vis, ones]), np.array([0, 1]),
                                 np.array([False, True]), LIMBS)
    assert other_slot.tolist() == [False, False]  # another view's man says nothing


def test_two_tracked_people_may_share_a_face_but_not_a_torso(est, frames):
    """distinct_poses on real landmarks. Two tracked poses that share the face and the hands
    but whose shoulders and hips lie a quarter of a height apart are two people (one behind
    the other, the face of the one behind read on the body of the one seen from behind:
    pose2sim_two_people cam03); before, the median over all the landmarks (the face and
    hands the same) made them one and dropped one. A fresh pose that shares the face and
    shoulders but not the hips (its hips made up) is still the tracked person again; two
    tracks that converged on one person, or one read facing the other way, are one."""
    from mocap.detect2d.estimators.blazepose_torch import MIRROR, TORSO
    from mocap.detect2d.estimators.blazepose_tracking import distinct_poses

    man = est([frames[0]])
    kp = man.keypoints[0, 0].astype(np.float64)
    height = float(np.ptp(kp[:, 1]))
    rois = np.tile([kp[:, 0].mean(), kp[:, 1].mean(), 1.25 * height, 1.25 * height, 0.0], (2, 1))
    vis = np.ones((2, 33))
    shared = np.r_[0:11, 15:23]  # face and hands
    other = kp + [0.25 * height, 0.0]
    other[shared] = kp[shared]

    def kept(b, fresh, score=(1.0, 0.9)):
        return distinct_poses(np.stack([kp, b]), rois, np.array(score), np.zeros(2, int), mirror=MIRROR,
                              visibility=vis, fresh=np.array(fresh), torso=TORSO).tolist()

    assert kept(other, (False, False)) == [True, True]
    assert distinct_poses(np.stack([kp, other]), rois, np.array([1.0, 0.9]), np.zeros(2, int), mirror=MIRROR,
                          visibility=vis).tolist() == [True, False]  # the rule without torsos
    made_up = kp.copy()
    made_up[23:] += [0.25 * height, 0.0]  # the hips and legs elsewhere
    assert kept(made_up, (False, True)) == [True, False]
    rng = np.random.default_rng(0)
    assert kept(kp + rng.normal(0, 0.01 * height, kp.shape), (False, False)) == [True, False]
    assert kept(kp[MIRROR], (False, False)) == [True, False]
    assert kept(kp + [0.4 * height, 0.0], (False, False)) == [True, True]  # side by side


@pytest.mark.slow
def test_the_example_has_the_man_and_the_woman_far_back_and_no_pieces_of_him():
    """examples/balance_cam01.mp4 shows a man and, far back in the corner, a masked woman
    about 450 px tall (found only in the detector's half-side squares, taken in turn).
    Tracked with room for several people: the man in all 100 frames, the woman in most, and
    nothing else, not even a short track (before part_of_another his legs made three more
    tracks of 19, 3 and 2 frames; before drop_parts a body drawn on his chest and legs was
    one of 10 frames); before the half-side squares she was missed."""
    from mocap.detect2d.people import LISTED_MIN_S, detect_people_video

    tracks = detect_people_video(EXAMPLE_VIDEO, detector="blazepose-torch", progress=False)
    ids, counts = np.unique(tracks.track_ids[tracks.track_ids >= 0], return_counts=True)
    listed = {int(i): int(c) for i, c in zip(ids, counts) if c >= LISTED_MIN_S * tracks.fps}
    assert len(listed) == 2 and listed[0] == 100, listed
    assert tracks.track_list() == sorted(listed, key=lambda i: -listed[i])
    (woman,) = [i for i in listed if i != 0]
    assert listed[woman] >= 80
    box = np.nanmedian(tracks.keypoints[tracks.track_ids == woman], axis=0)
    assert np.nanmax(box[:, 0]) < 200 and 250 < np.nanmin(box[:, 1]) and np.nanmax(box[:, 1]) < 900  # far left, up


def test_video_and_tracking(est, frames):
    clip = frames[:12]
    single = est(clip)
    size = _box_size(single.keypoints[:, 0])[:, None]
    plain = est.video(clip, batch=5, span=1, refine=False)  # same computation, other batch splits
    assert (np.linalg.norm(plain.keypoints[:, 0] - single.keypoints[:, 0], axis=-1) / size).mean() < 1e-4
    segments = est.video(clip, batch=2, span=4)  # 12 frames: 2 chunks of 2 segments of 4, tracked inside
    tracked = est.track(clip)
    # tracking ROIs differ from detector ROIs by a few pixels (about 1 % of the box measured)
    for other in (segments, tracked, est.video(clip, batch=4, span=1)):
        assert other.num_people.tolist() == [1] * 12
        assert (np.linalg.norm(other.keypoints[:, 0] - single.keypoints[:, 0], axis=-1) / size).mean() < 0.02
    # a blank frame loses the track; the next frame is detected again
    blank = np.zeros_like(clip[0])
    assert est.track([clip[0], blank, clip[1]]).num_people.tolist() == [1, 0, 1]
    tracker = est.tracker(views=2)
    assert tracker.step([clip[0], blank]).num_people.tolist() == [1, 0]
    assert tracker.step([clip[1], clip[1]]).num_people.tolist() == [1, 1]
    assert len(tracker.rois[0]) == 1 and len(tracker.rois[1]) == 1
    with pytest.raises(ValueError, match="2 view"):
        tracker.step([clip[2]])
    # only some views go on (the segments of a video that have not ended): the others keep their state
    before = [r.copy() for r in tracker.rois]
    assert tracker.step([blank], views=[1]).num_people.tolist() == [0]
    np.testing.assert_array_equal(tracker.rois[0], before[0])
    assert len(tracker.rois[1]) == 0
    assert tracker.step([clip[2]], views=[0]).num_people.tolist() == [1]
    with pytest.raises(ValueError, match="one frame per view"):
        tracker.step([clip[2], clip[2]], views=[0, 0])
    with pytest.raises(ValueError, match="span"):
        est.video(clip, span=0)


def test_constructor_checks():
    with pytest.raises(ValueError, match="max_people"):
        BlazePoseTorch(max_people=0)
    with pytest.raises(ValueError, match="min_confidence"):
        BlazePoseTorch(min_confidence=1.5)
    with pytest.raises(ValueError, match="CUDA"):
        BlazePoseTorch(half=True)


# ---------------------------------------------------------------- pre/post-processing

def test_graph_options_and_anchors():
    g = bp.read_pose_graph()
    assert g.detector_size == (224, 224) and g.detector_range == (-1.0, 1.0) and g.landmark_size == (256, 256)
    assert g.num_landmarks == 39 and g.body_landmarks == (0, 33) and g.aux_landmarks == (33, 35)
    anchors = bp.ssd_anchors(g.anchors)
    assert anchors.shape == (g.decode.num_boxes, 4)  # 2254 boxes: 28x28x2 + 14x14x2 + 7x7x6
    first = g.anchors.strides[0]
    np.testing.assert_allclose(anchors[0], [0.5 * first / 224, 0.5 * first / 224, 1, 1], atol=1e-6)
    np.testing.assert_allclose(anchors[-1, :2], [1 - 0.5 * 32 / 224] * 2, atol=1e-6)


def test_decode_and_weighted_nms():
    g = bp.read_pose_graph()
    o = g.decode
    anchors = bp.ssd_anchors(g.anchors)
    raw = np.zeros((1, len(anchors), o.num_coords), np.float32)
    scores = np.full((1, len(anchors), 1), -10.0, np.float32)
    # a box of 0.2 x 0.4 at (0.3, 0.6) with keypoints at known places, found by two neighbouring anchors
    for a, dx in ((100, 0.0), (101, 0.01)):
        raw[0, a, 0:4] = [(0.3 + dx - anchors[a, 0]) * o.scale[0], (0.6 - anchors[a, 1]) * o.scale[1],
                          0.2 * o.scale[2], 0.4 * o.scale[3]]
        for k in range(o.num_keypoints):
            raw[0, a, 4 + 2 * k:6 + 2 * k] = [(0.1 * k + dx - anchors[a, 0]) * o.scale[0],
                                              (0.5 - anchors[a, 1]) * o.scale[1]]
    scores[0, 100], scores[0, 101] = 3.0, 1.0
    raw[0, 2000, 0:4] = [(0.8 - anchors[2000, 0]) * o.scale[0], (0.2 - anchors[2000, 1]) * o.scale[1], 22, 22]
    scores[0, 2000] = 2.0
    (boxes, kps, s), = bp.decode_detections(raw, scores, anchors, o)
    assert len(s) == 3
    np.testing.assert_allclose(boxes[np.argmax(s)], [0.2, 0.4, 0.4, 0.8], atol=1e-5)
    nb, nk, ns = bp.weighted_nms(boxes, kps, s, threshold=g.nms_threshold)
    assert len(ns) == 2 and ns[0] == pytest.approx(1 / (1 + np.exp(-3.0)))
    w = np.array([1 / (1 + np.exp(-3.0)), 1 / (1 + np.exp(-1.0))])
    shift = 0.01 * w[1] / w.sum()  # score-weighted mean of the two boxes
    np.testing.assert_allclose(nb[0], [0.2 + shift, 0.4, 0.4 + shift, 0.8], atol=1e-5)
    np.testing.assert_allclose(nk[0, :, 0], 0.1 * np.arange(o.num_keypoints) + shift, atol=1e-5)
    assert len(bp.weighted_nms(boxes, kps, s, threshold=0.3, max_detections=1)[2]) == 1


def test_roi_geometry_round_trips():
    o = bp.read_pose_graph().detection_roi
    upright = bp.rois_from_keypoints(np.array([[[100.0, 200.0], [100.0, 100.0]]]), o)[0]
    np.testing.assert_allclose(upright, [100, 200, 250, 250, 0], atol=1e-9)  # 2 x 100 px x 1.25
    lying = bp.rois_from_keypoints(np.array([[[100.0, 200.0], [180.0, 200.0]]]), o)[0]
    np.testing.assert_allclose(lying[[2, 4]], [200, np.pi / 2], atol=1e-9)  # head to the right
    rois = np.array([upright, lying, [50.0, 60.0, 30.0, 30.0, -2.5]])
    m = bp.roi_to_crop_matrix(rois, 256, 256)
    uv = np.random.default_rng(2).uniform(0, 256, (3, 7, 2))
    via_matrix = np.einsum("nij,nkj->nki", m, np.concatenate([uv, np.ones((3, 7, 1))], -1))
    np.testing.assert_allclose(bp.project_from_roi(uv / 256, rois), via_matrix, atol=1e-9)
    pts = np.array([[[0.3, 0.4]]])
    roi, pad = bp.letterbox(1080, 1920, 224, 224)
    np.testing.assert_allclose(roi, [540, 960, 1920, 1920, 0])
    np.testing.assert_allclose(pad, [0.21875, 0, 0.21875, 0])
    np.testing.assert_allclose(bp.remove_letterbox(pts, pad) * [1080, 1920],
                               (pts * 1920 - [420, 0]), atol=1e-9)  # 420 px of padding on the left


def test_heatmap_refinement():
    rng = np.random.default_rng(3)
    heat = rng.normal(-8, 1, (2, 64, 64, 3)).astype(np.float32)
    heat[0, 20:23, 30:33, 0] = 8.0  # a confident 3x3 blob centred on cell (row 21, col 31)
    points = np.array([[[31.6 / 64, 21.2 / 64], [10 / 64, 10 / 64], [1.2, 0.5]],
                       [[0.5, 0.5], [-0.001, 0.3], [0.999, 0.999]]])
    ref = bp.refine_from_heatmap(points, heat, kernel=7, min_confidence=0.5)
    np.testing.assert_allclose(ref[0, 0], [31 / 64, 21 / 64], atol=2e-4)  # moved onto the blob
    np.testing.assert_array_equal(ref[0, 1:], points[0, 1:])  # not confident / outside: unchanged
    got = _refine_torch(torch.from_numpy(points).float(), torch.from_numpy(heat), 7, 0.5).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)
    heat[1] = rng.normal(2, 1, (64, 64, 3))  # confident everywhere: all three refined, same in both
    ref = bp.refine_from_heatmap(points, heat, kernel=7, min_confidence=0.5)
    got = _refine_torch(torch.from_numpy(points).float(), torch.from_numpy(heat), 7, 0.5).numpy()
    assert not np.allclose(ref[1], points[1])
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_torch_and_cv2_crops_agree(frames):
    cpu = BlazePoseTorch()
    gs = BlazePoseTorch(warp="torch")
    images = frames[:2]
    rois = np.array([[540.0, 900.0, 1200.0, 1200.0, 0.3], [100.0, 1800.0, 700.0, 700.0, -1.2]])  # 2nd off the edge
    for zero in (True, False):
        a = cpu._crops(images, np.array([0, 1]), rois, (256, 256), (0.0, 255.0), zero).numpy()
        b = gs._crops(images, np.array([0, 1]), rois, (256, 256), (0.0, 255.0), zero).numpy()
        diff = np.abs(a - b)  # OpenCV interpolates in fixed point (1/32 pixel): a few levels on sharp edges
        assert diff.mean() < 0.1 and np.quantile(diff, 0.999) <= 1 and diff.max() <= 8


def test_torch_warp_pipeline_matches_cv2(est, frames):
    """warp="torch" (the CUDA default, run here on the CPU) gives the same poses as OpenCV crops."""
    clip = frames[:4]
    a = est(clip)
    b = BlazePoseTorch(warp="torch")(clip)
    assert b.num_people.tolist() == [1] * 4
    size = _box_size(a.keypoints[:, 0])[:, None]
    assert (np.linalg.norm(a.keypoints[:, 0] - b.keypoints[:, 0], axis=-1) / size).mean() < 0.002


def test_tta_rois_and_mirrored_crops_map_back():
    from mocap.detect2d.estimators.blazepose_torch import TTA_VARIANTS, tta_rois

    roi = np.array([[300.0, 500.0, 400.0, 400.0, 0.5]])
    got = tta_rois(roi)
    assert got.shape == (len(TTA_VARIANTS), 5)
    np.testing.assert_allclose(got[0], roi[0])
    k = int(np.flatnonzero((TTA_VARIANTS[:, 2] == 0.03) & (TTA_VARIANTS[:, 3] == 0))[0])
    # a shift along the ROI's own x axis, which is turned by 0.5 rad in the image
    np.testing.assert_allclose(got[k, :2] - roi[0, :2], 0.03 * 400 * np.array([np.cos(0.5), np.sin(0.5)]), atol=1e-9)
    mirrored = got[TTA_VARIANTS[:, 0] < 0]
    assert (mirrored[:, 2] < 0).all() and (mirrored[:, 3] > 0).all()
    # a mirrored crop: crop pixel (0, 0) samples the ROI's top-right corner, and projecting
    # crop-normalised points back agrees with the crop matrix (so mirrored passes map back)
    m = bp.roi_to_crop_matrix(mirrored, 256, 256)
    r = 0.5
    top_right = roi[0, :2] + 200 * np.array([np.cos(r), np.sin(r)]) - 200 * np.array([-np.sin(r), np.cos(r)])
    np.testing.assert_allclose(m[0, :, 2], top_right, atol=1e-9)
    uv = np.random.default_rng(3).uniform(0, 256, (len(mirrored), 5, 2))
    via_matrix = np.einsum("nij,nkj->nki", m, np.concatenate([uv, np.ones(uv.shape[:-1] + (1,))], -1))
    np.testing.assert_allclose(bp.project_from_roi(uv / 256, mirrored), via_matrix, atol=1e-9)


def test_tta_agrees_with_the_plain_pass_and_keeps_left_left(est, frames, monkeypatch):
    """The median of the 12 passes lands within a few pixels of the plain pass, and a
    mirrored pass alone, mapped back with left and right swapped, finds the same joints."""
    import mocap.detect2d.estimators.blazepose_torch as bpt
    from mocap.skeletons import MEDIAPIPE33

    tta = BlazePoseTorch(tta=True)
    got, plain = tta(frames[:6]), est(frames[:6])
    assert got.num_people.tolist() == plain.num_people.tolist() == [1] * 6
    size = _box_size(plain.keypoints[:, 0])
    body = [MEDIAPIPE33.joint_names.index(f"{s}_{j}") for s in ("left", "right")
            for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]
    d = np.linalg.norm(got.keypoints[:, 0] - plain.keypoints[:, 0], axis=-1)
    assert np.median(d[:, body] / size[:, None]) < 0.01, np.median(d[:, body])
    np.testing.assert_array_equal(got.scores, plain.scores)  # the score comes from the plain pass

    monkeypatch.setattr(bpt, "TTA_VARIANTS", np.array([[-1.0, 1.0, 0.0, 0.0, 0.0]]))  # the mirrored pass only
    mirrored = tta(frames[:6])
    d = np.linalg.norm(mirrored.keypoints[:, 0] - plain.keypoints[:, 0], axis=-1)
    lw, rw = MEDIAPIPE33.joint_names.index("left_wrist"), MEDIAPIPE33.joint_names.index("right_wrist")
    apart = np.linalg.norm(plain.keypoints[:, 0, lw] - plain.keypoints[:, 0, rw], axis=-1)
    assert apart.min() > 0.1 * size.min()  # the wrists are far enough apart to tell them apart
    assert (d[:, [lw, rw]] < 0.25 * apart[:, None]).all(), (d[:, [lw, rw]], apart)
    assert np.median(d[:, body] / size[:, None]) < 0.02


def test_detector_windows_in_turn():
    """Looking for newcomers, a tracker takes the detector's closer squares of a tall frame in
    turn: the whole frame, one square of the short side and one of the half-side grid a look
    (3 windows, not 4 + 15), each square every third look and each grid square every 15th;
    the grid covers the frame."""
    from mocap.detect2d.estimators.blazepose_tracking import detector_windows, fine_window

    every = detector_windows(1080, 1920, (224, 224), True)
    assert len(every) == 4 and len(detector_windows(1080, 1920, (224, 224), False)) == 1
    origins = [w[2][1] for w in every[1:]]
    np.testing.assert_allclose(origins, [0, 420, 840])
    assert not any(fine_window(w[3], 1080, 1920) for w in every)
    grid = []
    for turn in range(30):
        looked = detector_windows(1080, 1920, (224, 224), True, turn=turn)
        assert len(looked) == 3
        np.testing.assert_array_equal(looked[0][0], every[0][0])  # the whole frame, always
        assert looked[1][2][1] == origins[turn % 3]
        assert fine_window(looked[2][3], 1080, 1920) and looked[2][3][0] == 540
        grid.append(tuple(looked[2][2]))
    assert len(set(grid)) == 15 and grid[:15] == grid[15:]
    covered = np.zeros((1920, 1080), bool)
    for x, y in set(grid):
        covered[int(y):int(y) + 540, int(x):int(x) + 540] = True
    assert covered.all()
    assert len(detector_windows(640, 640, (224, 224), True, turn=0)) == 2  # square frame: no squares along it


def test_a_fresh_pose_must_stand_tall_enough():
    from mocap.detect2d.estimators.blazepose_torch import MIN_NEW_HEIGHT, _pose_height

    kp = np.zeros((3, 33, 2))
    kp[:, :, 1] = np.linspace(0, 1, 33) * np.array([[400.0], [60.0], [400.0]])
    vis = np.ones((3, 33))
    vis[2, 5:] = 0.1  # only the face seen
    h = _pose_height(kp, vis)
    np.testing.assert_allclose(h[:2], [400, 60])
    assert h[2] < 60 and (h < MIN_NEW_HEIGHT * 1080).tolist() == [False, True, True]


def test_steady_heap_takes_on_linux():
    import sys

    from mocap.detect2d.estimators.tflite_torch import steady_heap

    assert steady_heap() is (sys.platform.startswith("linux") and _glibc())


def _glibc() -> bool:
    import platform

    return platform.libc_ver()[0] == "glibc"
