"""Root trajectory through a synthetic camera, and the camera -> world alignment."""
import numpy as np
import pytest

from mocap.camera import intrinsic_matrix, project_points
from mocap.lift.lifters import MediaPipeWorldLifter, default_focal_px, estimate_root_translation
from mocap.skeletons import MOTION21, rest_offsets
from mocap.cleanup.world import camera_to_world, level_and_ground
from mocap.rotations import rotation_matrix_between_vectors


def _tpose():
    off = rest_offsets()
    pos = np.zeros_like(off)
    for j in range(1, len(off)):
        pos[j] = pos[MOTION21.parents[j]] + off[j]
    return pos  # (21, 3) world, +Y up, feet lowest


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def test_root_translation_recovered_exactly_without_noise():
    rng = np.random.default_rng(0)
    t = 20
    body = _tpose() @ np.diag([1, -1, -1])  # to camera axes
    rel = np.repeat((body - body[0])[None], t, 0)
    root = np.stack([rng.uniform(-1, 1, t), rng.uniform(-0.5, 0.5, t), rng.uniform(3, 8, t)], -1)
    f, c = 1200.0, (640.0, 360.0)
    kp = project_points(rel + root[:, None], intrinsic_matrix(f, c))
    est = estimate_root_translation(rel, kp, np.ones((t, 21)), focal_px=f, principal_px=c)
    np.testing.assert_allclose(est, root, atol=1e-9)


def test_root_translation_with_pixel_noise_and_missing_joints():
    rng = np.random.default_rng(1)
    t = 50
    body = _tpose() @ np.diag([1, -1, -1])
    rel = np.repeat((body - body[0])[None], t, 0)
    root = np.stack([np.linspace(-1, 1, t), np.zeros(t), np.linspace(4, 6, t)], -1)
    f, c = 1000.0, (320.0, 240.0)
    kp = project_points(rel + root[:, None], intrinsic_matrix(f, c)) + rng.normal(0, 1.0, (t, 21, 2))
    conf = np.ones((t, 21))
    kp[:, 5] = np.nan  # a missing joint is ignored
    conf[3, :] = 0.0  # a frame with nothing usable -> NaN
    est = estimate_root_translation(rel, kp, conf, focal_px=f, principal_px=c)
    assert np.isnan(est[3]).all()
    ok = np.isfinite(est).all(-1)
    err = np.abs(est[ok] - root[ok])
    # 1 px noise at 4-6 m with a 1.7 m body spanning ~300 px: depth within 5 cm, x/y within 1 cm
    assert err[:, 2].max() < 0.05 and err[:, :2].max() < 0.01


def test_default_focal_px():
    assert default_focal_px((1920, 1080), fov_deg=90.0) == pytest.approx(960.0)


def test_camera_to_world_is_a_proper_rotation():
    p = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(camera_to_world(p), [[1.0, -2.0, -3.0]])  # y down -> up, z forward -> back


@pytest.mark.parametrize("a,b", [([0, 1, 0], [0, 1, 0]), ([1, 0, 0], [0, 1, 0]), ([0, 1, 0], [0, -1, 0]),
                                  ([0.3, 0.9, 0.1], [0, 1, 0])])
def test_levelling_rotation(a, b):
    r = rotation_matrix_between_vectors(np.array(a, float), np.array(b, float))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_allclose(r @ (np.array(a) / np.linalg.norm(a)), b, atol=1e-12)


def test_level_and_ground_undoes_camera_pitch():
    t = 10
    pose = _tpose() + [0.0, 0.93, 0.0]  # feet near y=0
    walk = pose[None] + np.linspace(0, 1, t)[:, None, None] * [0.5, 0.0, 0.3]
    tilted = walk @ _rot_x(0.3).T + [2.0, 1.0, -4.0]  # a camera pitched by 0.3 rad, elsewhere
    out, rot, offset = level_and_ground(tilted)
    # up recovered, feet on the floor, first root at the origin, shape of the walk kept
    np.testing.assert_allclose(out[0, 0, [0, 2]], 0.0, atol=1e-9)
    feet = out[:, [MOTION21.index(n) for n in ("left_heel", "left_foot_index", "left_ankle")], 1]
    assert feet.min() == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(out - out[:, :1], walk - walk[:, :1], atol=1e-9)
    np.testing.assert_allclose(out[:, 0] - out[0, 0], walk[:, 0] - walk[0, 0], atol=1e-9)


def test_mediapipe_lifter_requires_world_landmarks():
    from mocap.errors import MocapError
    from mocap.formats import Keypoints2D

    k = Keypoints2D(keypoints=np.zeros((2, 17, 2), np.float32), confidence=np.ones((2, 17), np.float32),
                    layout="coco17", image_size=(10, 10), fps=30.0)
    with pytest.raises(MocapError, match="world landmarks"):
        MediaPipeWorldLifter().lift(k)
