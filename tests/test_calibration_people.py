"""Calibration from the people in the shot against known synthetic rigs."""
import numpy as np
import pytest

from mocap.multiview.calibration import (body_height, calibrate_from_people, compare_rigs, guess_intrinsics,
                               refine_extrinsics, rotation_angle_deg)
from mocap.errors import MocapError
from mocap.skeletons import MEDIAPIPE33
from tests.multiview_helpers import observe, ring_rig
from tests.synthetic import motion21_to_mediapipe33, waving_walker


def test_recovers_the_rig_at_1px_noise():
    cams = ring_rig(4)
    x = waving_walker(60)
    px, conf = observe(cams, x, noise_px=1.0, seed=1)
    height = body_height(x, "motion21")
    est, report = calibrate_from_people(px, conf, cams, body_height_m=height, layout="motion21")
    rot, pos = compare_rigs(est, cams)
    assert rot.max() < 1.0, rot  # the targets: 1 degree ...
    assert pos.max() < 0.02, pos  # ... and 2 cm, scale from the stated height alone
    assert np.all(report.reprojection_px < 1.5)  # ~ the 1 px noise (median of a 2D error)
    assert report.measured_height_m == pytest.approx(height, rel=1e-6)
    assert [c.name for c in est] == [c.name for c in cams]
    np.testing.assert_allclose(est[0].R, np.eye(3), atol=1e-12)  # camera 0 is the world


def test_swapped_views_and_missing_keypoints_mediapipe_layout():
    cams = ring_rig(3, radius=3.5)
    x = motion21_to_mediapipe33(waving_walker(40, fps=15.0))
    px, conf = observe(cams, x, noise_px=1.0, seed=2)
    rng = np.random.default_rng(3)
    mirror = MEDIAPIPE33.mirror_permutation()
    swap = rng.random(40) < 0.25  # the detector swaps left and right in a quarter of view 1's frames
    px[1, swap] = px[1, swap][:, mirror]
    gone = rng.random(conf.shape) < 0.1
    px[gone] = np.nan
    conf[gone] = 0.0
    height = body_height(x, "mediapipe33")
    est, _ = calibrate_from_people(px, conf, cams, body_height_m=height, layout="mediapipe33")
    rot, pos = compare_rigs(est, cams)
    assert rot.max() < 1.0 and pos.max() < 0.02, (rot, pos)


def test_wrong_focal_guess_is_reported_in_the_residuals():
    cams = ring_rig(3)
    x = waving_walker(30)
    px, conf = observe(cams, x, seed=4)
    guess = [guess_intrinsics(c.size, focal_px=0.7 * c.K[0, 0], name=c.name) for c in cams]
    _, report = calibrate_from_people(px, conf, guess, body_height_m=1.7, layout="motion21")
    _, good = calibrate_from_people(px, conf, cams, body_height_m=1.7, layout="motion21")
    assert good.reprojection_px.max() < 0.05 and report.reprojection_px.max() > 10 * good.reprojection_px.max()


def test_helpers():
    r = np.stack([np.eye(3), np.diag([1.0, -1.0, -1.0])])
    np.testing.assert_allclose(rotation_angle_deg(r, r[[0, 0]]), [0.0, 180.0], atol=1e-6)
    cam = guess_intrinsics((1080, 1920), fov_deg=90.0)
    assert cam.K[0, 0] == pytest.approx(960.0) and tuple(cam.K[:2, 2]) == (540.0, 960.0)


def test_bad_input():
    cams = ring_rig(2)
    x = waving_walker(10)
    px, conf = observe(cams, x)
    with pytest.raises(MocapError, match="one camera per view"):
        calibrate_from_people(px, conf, cams[:1], body_height_m=1.7, layout="motion21")
    with pytest.raises(MocapError, match="metres"):
        calibrate_from_people(px, conf, cams, body_height_m=0.17, layout="motion21")
    px[1, :, :] = np.nan  # nobody in view 1
    with pytest.raises(MocapError, match="share only"):
        calibrate_from_people(px, conf, cams, body_height_m=1.7, layout="motion21")
    with pytest.raises(ValueError, match="must be"):
        calibrate_from_people(px[0], conf[0], cams, body_height_m=1.7, layout="motion21")


def test_refine_extrinsics_undoes_a_nudged_rig():
    from mocap.io.calibration_files import rotvec_to_matrix
    from mocap.camera import Camera

    cams = ring_rig(4)
    x = waving_walker(24)
    px, conf = observe(cams, x, noise_px=1.0, seed=5)
    rng = np.random.default_rng(6)
    nudged = [cams[0]]
    for c in cams[1:]:  # each camera turned by 2 degrees and moved by 5 cm
        axis = rng.normal(size=3)
        r = rotvec_to_matrix(np.radians(2.0) * axis / np.linalg.norm(axis)) @ c.R
        d = rng.normal(size=3)
        pos = c.position + 0.05 * d / np.linalg.norm(d)
        nudged.append(Camera(name=c.name, size=c.size, K=c.K, R=r, t=-r @ pos, dist=c.dist))
    rot0, pos0 = compare_rigs(nudged, cams)
    assert rot0[1:].min() > 1.9
    fixed, report = refine_extrinsics(nudged, px, conf, layout="motion21")
    rot, pos = compare_rigs(fixed, cams, fit_scale=True)
    assert rot.max() < 0.2 and pos.max() < 0.01 and np.all(report.reprojection_px < 1.5), (rot, pos, report)
    # the world frame and scale stay the given rig's: off by no more than the nudges
    world = [np.linalg.norm(a.position - b.position) for a, b in zip(fixed, cams)]
    assert world[0] == 0.0 and max(world) < 0.05, world


def test_shared_focal_length_is_recovered():
    cams = ring_rig(4)
    x = waving_walker(40)
    px, conf = observe(cams, x, noise_px=1.0, seed=8)
    from mocap.camera import Camera

    # the principal point and distortion known, the focal length 15 % short
    guess = [Camera(name=c.name, size=c.size, K=c.K @ np.diag([0.85, 0.85, 1.0]), R=np.eye(3), t=np.zeros(3),
                    dist=c.dist) for c in cams]
    est, report = calibrate_from_people(px, conf, guess, body_height_m=body_height(x, "motion21"), layout="motion21",
                                        refine_focal=True)
    np.testing.assert_allclose([e.K[0, 0] for e in est], [c.K[0, 0] for c in cams], rtol=0.01)
    rot, pos = compare_rigs(est, cams)
    assert rot.max() < 1.0 and pos.max() < 0.03, (rot, pos)


def test_refine_extrinsics_keeps_the_scale_exactly():
    """The gauge (sum of the cameras' distances to camera 0) is held exactly, not as a soft
    penalty: with noisy, outlier-ridden keypoints a penalty inside the robust loss let the
    Pose2Sim rig grow by 23 %."""
    cams = ring_rig(4)
    x = waving_walker(30)
    px, conf = observe(cams, x, noise_px=4.0, seed=7)
    rng = np.random.default_rng(8)
    bad = rng.random(px.shape[:-1]) < 0.15
    px = np.where(bad[..., None], px + rng.uniform(-80, 80, px.shape), px)
    fixed, _ = refine_extrinsics(cams, px, conf, layout="motion21")

    def spread(rig):
        return sum(np.linalg.norm(c.position - rig[0].position) for c in rig[1:])

    assert spread(fixed) == pytest.approx(spread(cams), rel=1e-9)
