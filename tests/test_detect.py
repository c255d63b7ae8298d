"""mocap.detect2d.mediapipe_pose: the offline PoseLandmarker bundle and detection on a real and a blank video.

Real data: cam01.mp4 of Pose2Sim's single-person demo (1080x1920, 60 fps, 100 frames; a
man balancing on one leg, facing the camera). Tolerances are stated per test.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe")
cv2 = pytest.importorskip("cv2")

from mocap.detect2d.mediapipe_pose import PoseDetector, detect_frames, detect_video, pose_landmarker_bundle  # noqa: E402
from mocap.errors import MocapError  # noqa: E402
from mocap.skeletons import MEDIAPIPE33  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "pose2sim_single"
CAM01 = DATA / "videos" / "cam01.mp4"
J = MEDIAPIPE33.index


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """Keep the bundle out of the user's ~/.cache during the tests."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("mocap-cache")
        mp.setenv("MOCAP_CACHE_DIR", str(path))
        yield path


def test_bundle_builds_once_and_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("MOCAP_CACHE_DIR", str(tmp_path / "cache"))  # fresh: forces a build
    first = pose_landmarker_bundle()
    assert first.parent == tmp_path / "cache" and first.suffix == ".task"
    with zipfile.ZipFile(first) as z:
        assert sorted(z.namelist()) == ["pose_detector.tflite", "pose_landmarks_detector.tflite"]
    stat = first.stat()
    second = pose_landmarker_bundle()
    assert second == first
    assert second.stat().st_mtime_ns == stat.st_mtime_ns and second.stat().st_ino == stat.st_ino
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary files left


def test_detector_rejects_bad_input():
    frame = np.zeros((64, 64, 3), np.uint8)
    with PoseDetector() as det:
        with pytest.raises(ValueError, match="uint8"):
            det.detect(frame.astype(np.float32), 0)
        det.detect(frame, 10)
        with pytest.raises(ValueError, match="increase strictly"):
            det.detect(frame, 10)
    with pytest.raises(ValueError, match="closed"):
        det.detect(frame, 20)
    with pytest.raises(MocapError, match="expected 64x64"):
        detect_frames([frame, np.zeros((32, 64, 3), np.uint8)], 30.0, (64, 64), progress=False)


def test_blank_video_has_no_person(tmp_path):
    path = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24.0, (160, 120))
    for i in range(8):
        writer.write(np.full((120, 160, 3), 40 + 10 * i, np.uint8))
    writer.release()
    k = detect_video(path, progress=False)
    assert k.num_frames == 8 and k.layout == "mediapipe33"
    assert k.image_size == (160, 120) and k.fps == pytest.approx(24.0)
    assert np.isnan(k.keypoints).all() and np.isnan(k.world_landmarks).all()
    assert (k.confidence == 0).all()
    assert k.detection_rate() == 0.0


@pytest.fixture(scope="module")
def cam01():
    if not CAM01.is_file():
        pytest.skip(f"shared data not found: {CAM01}")
    return detect_video(CAM01, progress=False)


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_video_detection(cam01):
    k = cam01
    assert k.num_frames == 100 and k.fps == pytest.approx(60.0) and k.image_size == (1080, 1920)
    assert k.keypoints.shape == (100, 33, 2) and k.keypoints.dtype == np.float32
    assert k.detection_rate() >= 0.95
    found = np.isfinite(k.keypoints).all(axis=(1, 2))
    kp, conf = k.keypoints[found], k.confidence[found]
    # A frame is either fully detected or fully missing.
    assert np.isnan(k.keypoints[~found]).all() and (k.confidence[~found] == 0).all()
    width, height = k.image_size
    assert (kp[..., 0] >= 0).all() and (kp[..., 0] <= width).all()
    assert (kp[..., 1] >= 0).all() and (kp[..., 1] <= height).all()
    assert (conf >= 0).all() and (conf <= 1).all() and conf.mean() > 0.8
    # Upright: the nose is above both ankles in every frame (y grows downwards).
    assert (kp[:, J("nose"), 1] < kp[:, J("left_ankle"), 1]).all()
    assert (kp[:, J("nose"), 1] < kp[:, J("right_ankle"), 1]).all()
    for side in ("left", "right"):
        hip, knee, ankle = (kp[:, J(f"{side}_{n}")] for n in ("hip", "knee", "ankle"))
        assert (knee[:, 1] > hip[:, 1]).all() and (ankle[:, 1] > knee[:, 1]).all()
        assert conf[:, J(f"{side}_ankle")].min() > 0.5
    # Two distinct ankles, each in the lower half of the body's extent.
    assert np.linalg.norm(kp[:, J("left_ankle")] - kp[:, J("right_ankle")], axis=-1).min() > 10
    body_top, body_bottom = kp[..., 1].min(1), kp[..., 1].max(1)
    for name in ("left_ankle", "right_ankle"):
        assert (kp[:, J(name), 1] > (body_top + body_bottom) / 2).all()


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_video_world_landmarks(cam01):
    w = cam01.world_landmarks
    found = np.isfinite(w).all(axis=(1, 2))
    assert found.mean() >= 0.95
    w = w[found]
    # MediaPipe's world frame: origin between the hips, y down, metres.
    hips = (w[:, J("left_hip")] + w[:, J("right_hip")]) / 2
    assert np.abs(hips).max() < 0.1
    nose_to_ankle = np.maximum(np.linalg.norm(w[:, J("nose")] - w[:, J("left_ankle")], axis=-1),
                               np.linalg.norm(w[:, J("nose")] - w[:, J("right_ankle")], axis=-1))
    assert 1.2 <= np.median(nose_to_ankle) <= 2.0
    assert (nose_to_ankle > 1.0).all() and (nose_to_ankle < 2.2).all()
    assert (w[:, J("nose"), 1] < w[:, J("left_ankle"), 1]).all()


def test_detect_part_of_a_video():
    """frames=(30, 34): MediaPipe sees only those frames; the keypoints still cover the
    video's 100 frames, NaN (confidence 0) outside."""
    from tests.conftest import EXAMPLE_VIDEO

    seen = []
    k = detect_video(EXAMPLE_VIDEO, progress=False, frames=(30, 34), on_frame=lambda f, kp, c: seen.append(kp))
    assert len(seen) == 4 and k.num_frames == 100
    outside = np.r_[0:30, 34:100]
    assert np.isnan(k.keypoints[outside]).all() and (k.confidence[outside] == 0).all()
    assert np.isnan(k.world_landmarks[outside]).all()
    assert np.isfinite(k.keypoints[30:34]).all() and np.isfinite(k.world_landmarks[30:34]).all()
    np.testing.assert_array_equal(k.keypoints[30:34], np.stack(seen))
