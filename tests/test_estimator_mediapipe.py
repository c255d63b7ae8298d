"""mocap.detect2d.estimators.mediapipe_tasks on real frames of examples/balance_cam01.mp4.

The clip (Pose2Sim demo, 1080x1920, 60 fps, 100 frames) shows one man balancing on one
leg. IMAGE mode runs the person detector on every frame; mocap.detect2d.mediapipe_pose.PoseDetector (VIDEO
mode) does the same on the first frame and then tracks, so the two agree on frame 0 and
differ by a few pixels later (the tracking ROI differs from a fresh detection).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("cv2")

from mocap.detect2d.mediapipe_pose import PoseDetector  # noqa: E402
from mocap.detect2d.estimators import get_estimator  # noqa: E402
from mocap.detect2d.estimators.mediapipe_tasks import MediaPipeEstimator  # noqa: E402
from mocap.io.video import iter_frames, probe_video  # noqa: E402
from tests.conftest import EXAMPLE_VIDEO  # noqa: E402

STEP = 10  # compare every 10th frame


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """Keep the model bundle out of the user's ~/.cache during the tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOCAP_CACHE_DIR", str(tmp_path_factory.mktemp("mocap-cache")))
        yield


@pytest.fixture(scope="module")
def clip() -> tuple[list[np.ndarray], float]:
    if not EXAMPLE_VIDEO.is_file():
        pytest.skip(f"needs {EXAMPLE_VIDEO}")
    return list(itertools.islice(iter_frames(EXAMPLE_VIDEO), 100)), probe_video(EXAMPLE_VIDEO).fps


@pytest.fixture(scope="module")
def estimator():
    with get_estimator("mediapipe", max_people=4) as est:
        assert isinstance(est, MediaPipeEstimator)
        yield est


def _height(kp: np.ndarray) -> float:
    return float(np.nanmax(kp[:, 1]) - np.nanmin(kp[:, 1]))


def test_matches_pose_detector(clip, estimator):
    frames, fps = clip
    chosen = frames[::STEP]
    est = estimator(np.stack(chosen))
    assert est.keypoints.shape == (len(chosen), 1, 33, 2) and est.layout == "mediapipe33"
    assert (est.num_people == 1).all() and (est.scores[:, 0] > 0.9).all()
    video = []
    with PoseDetector() as det:
        for i, frame in enumerate(frames):
            k, c, _ = det.detect(frame, int(round(i * 1000 / fps)) + 1)
            if i % STEP == 0:
                video.append((k, c))
    height = _height(video[0][0])
    assert height > 500  # the man fills most of the portrait frame
    diffs = np.array([np.linalg.norm(est.keypoints[n, 0] - k, axis=-1).mean() for n, (k, _) in enumerate(video)])
    print(f"IMAGE vs VIDEO mode, mean landmark difference per frame (px, person ~{height:.0f} px tall): "
          f"{[round(float(d), 1) for d in diffs]}; mean {diffs.mean():.1f} px")
    assert diffs[0] < 3.0  # the same detection and landmark model on the first frame
    assert diffs.mean() < 0.02 * height  # later frames: tracking ROI vs fresh detection
    np.testing.assert_allclose(est.confidence[0, 0], video[0][1], atol=0.02)


def test_grey_rgba_float_and_batches_of_mixed_sizes(clip, estimator):
    frame = clip[0][0]
    ref = estimator(frame[None])
    rgba = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    np.testing.assert_allclose(estimator(rgba[None]).keypoints, ref.keypoints, atol=1e-3)
    np.testing.assert_allclose(estimator(frame[None].astype(np.float32) / 255.0).keypoints, ref.keypoints, atol=1e-3)
    grey = estimator(frame.mean(-1).round().astype(np.uint8)[None])
    assert grey.num_people.tolist() == [1]
    height = _height(ref.keypoints[0, 0])
    assert np.linalg.norm(grey.keypoints[0, 0] - ref.keypoints[0, 0], axis=-1).mean() < 0.02 * height
    # a list of images of different sizes; pixels stay in each image's own frame
    half = frame[::2, ::2]
    mixed = estimator([frame, half])
    np.testing.assert_allclose(mixed.keypoints[1, 0] * 2, ref.keypoints[0, 0], atol=0.02 * height)


def test_empty_blank_and_tiny(estimator):
    empty = estimator(np.zeros((0, 64, 64, 3), np.uint8))
    assert empty.keypoints.shape == (0, 0, 33, 2)
    blank = estimator(np.zeros((2, 256, 256, 3), np.uint8))
    assert blank.keypoints.shape == (2, 0, 33, 2) and blank.scores.shape == (2, 0)
    with pytest.raises(ValueError, match="too small"):
        estimator(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="max_people"):
        MediaPipeEstimator(max_people=0)
    closed = MediaPipeEstimator()
    closed.close()
    with pytest.raises(ValueError, match="closed"):
        closed(np.zeros((1, 64, 64, 3), np.uint8))
