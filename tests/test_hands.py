"""Hand keypoints: MediaPipe's hand landmark network in PyTorch, placed by the body.

References: the TFLite interpreter on MediaPipe's own hand_landmark_full.tflite, fed the same
crops of real frames of examples/balance_cam01.mp4 (1080x1920, a man balancing, hands seen);
synthetic bodies and hands whose ROI is known exactly; round trips of keypoints2d.npz.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")
# the reference: mediapipe's .tflite file, read by the tflite schema package, run by tflite_runtime's interpreter
HAVE_TFLITE = all(importlib.util.find_spec(m) is not None for m in ("mediapipe", "tflite", "tflite_runtime"))
needs_tflite = pytest.mark.skipif(not HAVE_TFLITE, reason="needs mediapipe 0.10.21, tflite and tflite_runtime")

from mocap.detect2d.estimators import blazepose_anchors as bp  # noqa: E402
from mocap.detect2d.estimators import hands_torch as ht  # noqa: E402
from mocap.formats import Keypoints2D, load_keypoints, save_keypoints  # noqa: E402
from mocap.skeletons import HAND21, HANDS42, MEDIAPIPE33  # noqa: E402

from .conftest import EXAMPLE_VIDEO  # noqa: E402

LW, RW = MEDIAPIPE33.index("left_wrist"), MEDIAPIPE33.index("right_wrist")


@pytest.fixture(scope="module")
def clip():
    """12 real frames (every 8th) and the body BlazePoseTorch finds in them."""
    from mocap.detect2d.estimators.blazepose_torch import BlazePoseTorch
    from mocap.io.video import iter_frames

    frames = [f for i, f in enumerate(iter_frames(EXAMPLE_VIDEO)) if i % 8 == 0][:12]
    body = BlazePoseTorch()(frames)
    assert (body.scores[:, 0] > 0.5).all()
    return frames, body.keypoints[:, 0], body.confidence[:, 0]


@pytest.fixture(scope="module")
def est():
    return ht.HandLandmarksTorch()


# ------------------------------------------------------------------ (a) the network vs TFLite

@needs_tflite
def test_network_matches_tflite_on_real_hand_crops(clip):
    """Target of the issue: landmarks within 1 % of the hand's size. Measured on the dev machine
    (24 crops, 12 with a hand the interpreter finds; the example's hands are small and blurred):
    max 0.00015 % (1.2e-4 px), presence within 1.2e-6."""
    from mocap.eval.hands_tflite import hand_crops, torch_vs_tflite

    crops = hand_crops(*clip)
    r = torch_vs_tflite(crops)
    print(r)
    assert r["hands"] >= 10  # the crops hold real hands (the landmarks are compared on those)
    assert r["max_pct"] < 1.0 and r["median_pct"] < 0.1
    assert r["presence_max_diff"] < 1e-3
    assert r["world_max_mm"] < 0.1  # the world landmarks (the hand's 3D shape, for the fingers' rotations)


# ------------------------------------------------------------------ (b) ROI geometry

def _body(wrist, angle, length, width=0.0):
    """A mediapipe33 body (33, 2) whose left hand points from ``wrist`` at ``angle`` (radians,
    image axes, y down), knuckles ``length`` px away, index and pinky ``width`` px apart."""
    kp = np.full((33, 2), np.nan)
    d = np.array([np.cos(angle), np.sin(angle)])
    n = np.array([-d[1], d[0]])
    kp[LW] = wrist
    kp[MEDIAPIPE33.index("left_index")] = wrist + length * d + width / 3 * n
    kp[MEDIAPIPE33.index("left_pinky")] = wrist + length * d - 2 * width / 3 * n
    conf = np.where(np.isfinite(kp).all(-1), 0.9, 0.0)
    return kp, conf


@pytest.mark.parametrize("angle", [-np.pi / 2, 0.3, 2.5, np.pi])
def test_body_roi_is_a_rotated_square_around_the_palm(angle):
    wrist, length = np.array([640.0, 360.0]), 40.0
    kp, conf = _body(wrist, angle, length, width=24.0)
    rois, ok = ht.hand_rois_from_body(kp, conf)
    assert ok.tolist() == [True, False]  # the right hand has no points: no ROI, NaN
    assert np.isnan(rois[1]).all()
    cx, cy, w, h, r = rois[0]
    assert w == h == pytest.approx(ht.BODY_ROI_SCALE * length)
    # the knuckle (the mean of (2 index + pinky) / 3 lies on the hand's axis), moved towards the fingers
    d = np.array([np.cos(angle), np.sin(angle)])
    np.testing.assert_allclose([cx, cy], wrist + (length + ht.BODY_ROI_SHIFT * w) * d, atol=1e-9)
    # the crop's transform: the wrist lands straight below the crop's centre, the fingers up
    m = bp.roi_to_crop_matrix(rois[:1], 224, 224)[0]
    to_crop = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
    u, v, _ = to_crop @ [*wrist, 1.0]
    assert u == pytest.approx(112.0, abs=1e-6)
    assert v == pytest.approx(112 + 224 * (length + ht.BODY_ROI_SHIFT * w) / w, abs=1e-6)
    # and crop-normalised points map back exactly through project_from_roi
    pts = np.random.default_rng(0).uniform(0, 1, (1, 9, 2))
    crop_px = pts[0] * 224
    via_matrix = crop_px @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(bp.project_from_roi(pts, rois[:1])[0], via_matrix, atol=1e-9)


def test_crop_of_a_rotated_hand_maps_known_points_back():
    """A synthetic image with dots at known pixels: each dot's position in the crop (found in
    the image the crop shows), projected back, lands on the dot to a fraction of a pixel."""
    from mocap.detect2d.estimators.roi_crop import crop_rois

    img = np.zeros((720, 1280, 3), np.uint8)
    kp, conf = _body(np.array([600.0, 400.0]), 2.2, 50.0, width=30.0)
    rois, _ = ht.hand_rois_from_body(kp, conf)
    dots = np.array([[560.0, 430.0], [600.0, 400.0], [520.0, 480.0]])
    for x, y in dots:
        cv2.circle(img, (int(round(x * 16)), int(round(y * 16))), 3 * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
    crop = crop_rois([img], np.array([0]), rois[:1], (224, 224), (0.0, 1.0), False, warp="cv2", device="cpu",
                     dtype=torch.float32)[0].numpy()[..., 0]
    n, labels, stats, centroids = cv2.connectedComponentsWithStats((crop > 0.2).astype(np.uint8))
    found = []
    for k in range(1, n):
        wts = crop * (labels == k)
        ys, xs = np.mgrid[:224, :224]
        found.append([(wts * xs).sum() / wts.sum(), (wts * ys).sum() / wts.sum()])
    # crop pixel u samples the ROI at u / 224 of its side from its corner (MediaPipe's ImageToTensor)
    back = bp.project_from_roi(np.array(found)[None] / 224, rois[:1])[0]
    assert len(back) == 3
    for p in dots:
        assert np.min(np.linalg.norm(back - p, axis=-1)) < 0.2


@pytest.mark.parametrize("turn", [0.0, 0.7, -2.4])
def test_landmark_roi_turns_and_moves_with_the_hand(turn):
    """hand_rois_from_landmarks on an upright synthetic hand, then the same hand turned by
    ``turn`` about a point and moved: the ROI turns and moves alike; upright, it is known."""
    hand = np.zeros((21, 2))  # the wrist at (0, 0), fingers up (-y), knuckles symmetric about x = 0
    for f, x in (("index_finger", -24), ("middle_finger", -8), ("ring_finger", 8), ("pinky", 24)):
        for k, j in enumerate(("mcp", "pip", "dip", "tip")):
            hand[HAND21.index(f"{f}_{j}")] = [x, -60 - 25 * k]
    for k, j in enumerate(("cmc", "mcp", "ip", "tip")):
        hand[HAND21.index(f"thumb_{j}")] = [-20 - 12 * k, -15 - 15 * k]
    base = ht.hand_rois_from_landmarks(hand[None])[0]
    assert base[4] == pytest.approx(0.0, abs=1e-9)  # wrist -> knuckles points up already
    keep = np.delete(hand, [8, 12, 16, 20], 0)
    extent = max(np.ptp(keep[:, 0]), np.ptp(keep[:, 1]))
    assert base[2] == base[3] == pytest.approx(ht.LANDMARK_ROI_SCALE * extent)
    c, s = np.cos(turn), np.sin(turn)
    rot = np.array([[c, -s], [s, c]])
    moved = hand @ rot.T + [300.0, 200.0]
    roi = ht.hand_rois_from_landmarks(moved[None])[0]
    np.testing.assert_allclose(roi[:2], rot @ base[:2] + [300.0, 200.0], atol=1e-9)
    assert roi[2] == pytest.approx(base[2])
    assert np.cos(roi[4] - turn) == pytest.approx(1.0)


# ------------------------------------------------------------------ (c) left and right from the body

def test_left_and_right_come_from_the_body(est, clip):
    frames, kp, conf = clip
    got = est.hands(frames, kp, conf)
    assert got.keypoints.shape == (12, 42, 2) and got.confidence.shape == (12, 42)
    # each hand's wrist lies at the body's wrist of its side (within a third of the hand's size)
    for side, body_wrist in ((0, LW), (1, RW)):
        hand = got.keypoints[:, 21 * side:21 * side + 21]
        seen = np.isfinite(hand).all((-1, -2))
        assert seen.sum() >= 3
        size = (hand.max(1) - hand.min(1)).max(-1)
        d = np.linalg.norm(hand[:, 0] - kp[:, body_wrist], axis=-1)
        assert (d[seen] < size[seen] / 3).all(), (d, size)
    # the body mirrored (left and right labels swapped): the same hands, the other slots
    perm = MEDIAPIPE33.mirror_permutation()
    mirrored = est.hands(frames, kp[:, perm], conf[:, perm])
    np.testing.assert_allclose(mirrored.keypoints, got.keypoints[:, HANDS42.mirror_permutation()], atol=0.05)
    # a wrist not seen: that hand is NaN with confidence 0, the other is unchanged
    hidden = conf.copy()
    hidden[:, RW] = 0.0
    one = est.hands(frames, kp, hidden)
    assert np.isnan(one.keypoints[:, 21:]).all() and (one.confidence[:, 21:] == 0).all()
    np.testing.assert_allclose(one.keypoints[:, :21], got.keypoints[:, :21], atol=0.05)  # other batches: rounding
    # confidence is the hand's presence score on all its points, in [0.5, 1] where found
    c = got.confidence.reshape(12, 2, 21)
    assert (c == c[..., :1]).all() and ((c == 0) | (c >= 0.5)).all() and c.max() <= 1


def test_blank_frames_have_no_hands(est):
    """Hands where the body says, but nothing there: presence far below the threshold."""
    kp, conf = _body(np.array([300.0, 300.0]), 1.0, 40.0, width=20.0)
    frames = np.full((2, 480, 640, 3), 128, np.uint8)
    got = est.hands(frames, np.stack([kp, kp]), np.stack([conf, conf]))
    assert np.isnan(got.keypoints).all() and (got.confidence == 0).all() and (got.score < 0.5).all()


# ------------------------------------------------------------------ (d) keypoints2d.npz

def _keypoints(t=5, hands=True):
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 500, (t, 33, 2)).astype(np.float32)
    hk = rng.uniform(0, 500, (t, 42, 2)).astype(np.float32)
    hc = np.full((t, 42), 0.9, np.float32)
    hk[2, :21], hc[2, :21] = np.nan, 0.0  # the left hand not seen in frame 2
    return Keypoints2D(keypoints=kp, confidence=np.ones((t, 33), np.float32), layout="mediapipe33",
                       image_size=(640, 480), fps=30.0, hand_keypoints=hk if hands else None,
                       hand_confidence=hc if hands else None)


def test_npz_round_trip_with_hands(tmp_path):
    from mocap.detect2d.hands import hand_frames

    k = _keypoints()
    save_keypoints(tmp_path / "k.npz", k)
    back = load_keypoints(tmp_path / "k.npz")
    np.testing.assert_array_equal(back.hand_keypoints, k.hand_keypoints)  # NaN where NaN
    np.testing.assert_array_equal(back.hand_confidence, k.hand_confidence)
    assert hand_frames(back) == (4, 5)
    with np.load(tmp_path / "k.npz") as f:  # what an old reader sees: the body arrays, as before
        assert {"keypoints", "confidence", "layout", "image_size", "fps"} <= set(f.files)
        assert f["hand_keypoints"].shape == (5, 42, 2) and f["hand_confidence"].dtype == np.float32
    save_keypoints(tmp_path / "body.npz", _keypoints(hands=False))
    old = load_keypoints(tmp_path / "body.npz")
    assert old.hand_keypoints is None and old.hand_confidence is None and hand_frames(old) is None
    part = back.frames(1, 4)  # cutting frames cuts the hands too
    assert part.hand_keypoints.shape == (3, 42, 2)
    np.testing.assert_array_equal(part.hand_keypoints, k.hand_keypoints[1:4])


def test_npz_hand_arrays_are_checked():
    from mocap.errors import MocapError

    k = _keypoints()
    with pytest.raises(MocapError, match="give both or neither"):
        Keypoints2D(k.keypoints, k.confidence, k.layout, k.image_size, k.fps, hand_keypoints=k.hand_keypoints)
    with pytest.raises(MocapError, match="hand_keypoints must have shape"):
        Keypoints2D(k.keypoints, k.confidence, k.layout, k.image_size, k.fps,
                    hand_keypoints=k.hand_keypoints[:, :21], hand_confidence=k.hand_confidence[:, :21])
    with pytest.raises(MocapError, match=r"\[0, 1\]"):
        Keypoints2D(k.keypoints, k.confidence, k.layout, k.image_size, k.fps,
                    hand_keypoints=k.hand_keypoints, hand_confidence=k.hand_confidence * 2)


def test_swapped_body_frames_swap_the_hands():
    from mocap.detect2d.swaps import apply_swaps, resolve_swaps

    k = _keypoints(t=40)
    rng = np.random.default_rng(2)
    walk = np.cumsum(rng.normal(0, 1, (40, 1, 2)), 0).astype(np.float32)
    base = np.tile(np.linspace(100, 400, 33 * 2).reshape(1, 33, 2), (40, 1, 1)).astype(np.float32) + walk
    swapped = np.zeros(40, bool)
    swapped[20:24] = True
    body = apply_swaps(base, swapped, MEDIAPIPE33.mirror_permutation())
    k = Keypoints2D(body, k.confidence, k.layout, k.image_size, k.fps, hand_keypoints=k.hand_keypoints,
                    hand_confidence=k.hand_confidence)
    fixed, found = resolve_swaps(k)
    mirror = HANDS42.mirror_permutation()
    np.testing.assert_array_equal(fixed.hand_keypoints, apply_swaps(k.hand_keypoints, found, mirror))
    assert found.any()


# ------------------------------------------------------------------ (e) mocap capture --hands

def test_hands_option_needs_a_body_with_wrists():
    from mocap.config import OptionError
    from mocap.detect2d.options import DetectionOptions

    assert DetectionOptions(hands=True).hands and DetectionOptions(hands=True, detector="mediapipe").hands
    with pytest.raises(OptionError, match="--hands"):
        DetectionOptions(hands=True, detector="movenet")  # COCO-17: no index or pinky points



@pytest.mark.slow
def test_capture_with_hands_writes_hands_at_the_wrists(tmp_path):
    from mocap.cli import main

    out = tmp_path / "out"
    assert main(["capture", str(EXAMPLE_VIDEO), "-o", str(out), "--hands", "--no-preview", "--no-fit", "-q"]) == 0
    k = load_keypoints(out / "keypoints2d.npz")
    assert k.hand_keypoints.shape == (k.num_frames, 42, 2)
    frames, near = [], []
    for side, body_wrist in ((0, LW), (1, RW)):
        hand = k.hand_keypoints[:, 21 * side:21 * side + 21]
        both = np.isfinite(hand).all((-1, -2)) & (k.confidence[:, body_wrist] >= 0.5)
        size = (hand.max(1) - hand.min(1)).max(-1)
        d = np.linalg.norm(hand[:, 0] - k.keypoints[:, body_wrist], axis=-1)[both]
        print(f"side {side}: {both.sum()} frames, wrist distance median {np.median(d):.1f} px, hand size "
              f"median {np.median(size[both]):.0f} px, within a quarter of it {np.mean(d < 0.25 * size[both])}")
        frames.append(int(both.sum()))
        near.append(float(np.mean(d < 0.25 * size[both])))
    # measured: left hand in 55, right in 66 of the 100 frames (small, about 70-85 px, and motion
    # blurred; the left one against a striped chair); its wrist within a quarter of its size of the
    # body's wrist in 100 % and 92 % of them (median 5.6 and 11.6 px)
    assert frames[0] >= 45 and frames[1] >= 55, frames
    assert min(near) >= 0.85, near
    assert (out / "overlay.mp4").is_file()
    # the fingers: motion.npz on motion61, each hand seen where its keypoints are; the BVH has them
    from mocap.formats import load_motion
    from mocap.io.bvh import read_bvh
    from mocap.skeletons import MOTION61

    m = load_motion(out / "motion.npz")
    assert m.joint_names == MOTION61.joint_names and np.isfinite(m.local_quats_wxyz).all()
    seen = np.isfinite(k.hand_keypoints).all(-1).reshape(k.num_frames, 2, 21).all(-1)
    np.testing.assert_array_equal(m.hand_valid, seen[m.start_frame:m.start_frame + m.num_frames])
    assert "left_hand_index_finger_tip" in read_bvh(out / "motion.bvh").joint_names
    # mocap lift of keypoints with hands gives the fingers too
    assert main(["lift", str(out / "keypoints2d.npz"), "-o", str(tmp_path / "lifted.npz"), "--no-fit"]) == 0
    lifted = load_motion(tmp_path / "lifted.npz")
    assert lifted.joint_names == MOTION61.joint_names and lifted.hand_valid.any(0).all()
