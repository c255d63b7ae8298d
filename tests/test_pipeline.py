"""The whole lift path on synthetic data with known 3D: keypoints -> clean motion -> BVH."""
import numpy as np
import pytest

from mocap.bones import bone_lengths
from mocap.fit.options import FitOptions
from mocap.pipelines.capture import CleanupConfig, lift_keypoints
from mocap.skeletons import MOTION21
from tests.synthetic import FOCAL_PX, synthetic_keypoints, waving_walker


# The synthetic person drifts sideways without stepping (a sliding planted foot), which foot
# locking rightly refuses, and holds a one-legged T-pose no one could balance in (the fit reads
# gravity from balance: tests/test_fit.py); these tests check the chain without the fit (--no-fit).
NO_LOCK = CleanupConfig(lock_feet=False)
NO_FIT = FitOptions(fit=False)


def _mpjpe(a, b):
    return float(np.linalg.norm(a - b, axis=-1).mean())


def test_lift_recovers_known_motion_through_camera():
    truth = waving_walker(t=90, fps=30.0)
    kp = synthetic_keypoints(truth)
    motion = lift_keypoints(kp, lifter="mediapipe", focal_px=FOCAL_PX, cleanup=NO_LOCK, fit=NO_FIT)
    assert motion.joints.shape == truth.shape and motion.joint_names == MOTION21.joint_names
    # feet on the floor, first pelvis over the origin, as the truth was built
    err = _mpjpe(motion.joints, truth)
    assert err < 0.01, f"mean joint error {1000 * err:.1f} mm"
    # the sideways/backwards drift comes from the root trajectory estimated from 2D alone
    drift = motion.joints[-1, 0] - motion.joints[0, 0]
    np.testing.assert_allclose(drift, truth[-1, 0] - truth[0, 0], atol=0.02)
    # constant bones, equal to the truth's
    lengths = bone_lengths(motion.joints, np.array(MOTION21.parents))[:, 1:]
    assert np.ptp(lengths, axis=0).max() < 1e-6
    np.testing.assert_allclose(lengths[0], bone_lengths(truth[:1], np.array(MOTION21.parents))[0, 1:], atol=2e-3)


def test_lift_survives_noise_gaps_and_smooths():
    truth = waving_walker(t=120, fps=30.0)
    clean = lift_keypoints(synthetic_keypoints(truth), lifter="mediapipe", focal_px=FOCAL_PX, cleanup=NO_LOCK, fit=NO_FIT)
    kp = synthetic_keypoints(truth, noise_px=2.0, seed=3)
    rng = np.random.default_rng(4)
    wl = kp.world_landmarks + rng.normal(0, 0.01, kp.world_landmarks.shape).astype(np.float32)
    k, c = kp.keypoints.copy(), kp.confidence.copy()
    k[40:45] = np.nan  # a short loss of the person: interpolated
    c[40:45] = 0
    wl[40:45] = np.nan
    from mocap.formats import Keypoints2D

    noisy = Keypoints2D(keypoints=k, confidence=c, layout=kp.layout, image_size=kp.image_size, fps=kp.fps,
                        world_landmarks=wl)
    motion = lift_keypoints(noisy, lifter="mediapipe", focal_px=FOCAL_PX, cleanup=CleanupConfig(cutoff_hz=4.0, lock_feet=False), fit=NO_FIT)
    assert np.isfinite(motion.joints).all()
    rel = motion.joints - motion.joints[:, :1]
    rel_truth = truth - truth[:, :1]
    assert _mpjpe(rel, rel_truth) < 0.02
    # smoothing: the jitter (mean frame-to-frame acceleration) is a small fraction of the input's
    from mocap.skeletons import map_joints

    raw = map_joints(wl, "mediapipe33", MOTION21)
    raw = raw - raw[:, :1]

    def jitter(x):
        return np.nanmean(np.linalg.norm(np.diff(x, 2, axis=0), axis=-1))

    assert jitter(rel) < 0.1 * jitter(raw), (jitter(rel), jitter(raw))
    assert jitter(rel) < jitter(rel_truth) + 0.003
    assert _mpjpe(clean.joints, truth) < 0.01


def test_head_above_ankles_and_local_rotations_reproduce_joints():
    from mocap.kinematics.ik import forward_kinematics

    truth = waving_walker(t=60)
    motion = lift_keypoints(synthetic_keypoints(truth, noise_px=1.0), lifter="mediapipe", focal_px=FOCAL_PX, cleanup=NO_LOCK, fit=NO_FIT)
    head, ankles = MOTION21.index("head"), [MOTION21.index("left_ankle"), MOTION21.index("right_ankle")]
    assert (motion.joints[:, head, 1] > motion.joints[:, ankles, 1].max(-1) + 1.0).all()
    fk = forward_kinematics(motion.local_quats_wxyz, motion.root_translation, motion.rest_offsets,
                            np.array(motion.parents))
    np.testing.assert_allclose(fk, motion.joints, atol=1e-6)


@pytest.mark.parametrize("layout", ["coco17"])
def test_coco_keypoints_need_a_2d_only_lifter(layout):
    from mocap.errors import MocapError
    from mocap.formats import Keypoints2D
    from mocap.skeletons import map_confidence, map_joints

    kp = synthetic_keypoints(waving_walker(t=10))
    coco = Keypoints2D(keypoints=map_joints(kp.keypoints, "mediapipe33", layout).astype(np.float32),
                       confidence=map_confidence(kp.confidence, "mediapipe33", layout).astype(np.float32),
                       layout=layout, image_size=kp.image_size, fps=kp.fps)
    with pytest.raises(MocapError, match="world landmarks"):
        lift_keypoints(coco, lifter="mediapipe")


@pytest.mark.parametrize("reads_confidence", [True, False])
def test_lifter_that_reads_confidence_gets_the_detectors_2d(reads_confidence):
    """A lifter trained on low-confidence points (the network) gets the 2D as detected; any
    other gets the gap-filled 2D, where points under min_confidence are interpolated."""
    pytest.importorskip("torch", reason="the network lifter needs torch (pip install 'mocap-lift[lift]')")
    from mocap.lift.network import NetworkLifter

    k = synthetic_keypoints(waving_walker(60), noise_px=1.0)
    wrist = 15  # MediaPipe left_wrist
    conf = k.confidence.copy()
    conf[20:30, wrist] = 0.1  # a low-confidence stretch, the positions still right
    k = type(k)(keypoints=k.keypoints, confidence=conf, layout=k.layout, image_size=k.image_size, fps=k.fps,
                world_landmarks=k.world_landmarks)
    seen = []

    class Recorder:
        name = "recorder"

        def __init__(self):
            self.reads_confidence = reads_confidence
            self.net = NetworkLifter()

        def lift(self, keypoints):
            seen.append(keypoints)
            return self.net.lift(keypoints)

    lift_keypoints(k, lifter=Recorder(), cleanup=CleanupConfig(resolve_swaps=False))
    got = seen[0]
    if reads_confidence:
        np.testing.assert_array_equal(got.keypoints, k.keypoints)
        np.testing.assert_array_equal(got.confidence, k.confidence)
    else:
        assert (got.confidence[20:30, wrist] >= 0.3).all()  # filled: treated as confident
        assert np.abs(got.keypoints[20:30, wrist] - k.keypoints[20:30, wrist]).max() > 0.5  # and interpolated
    assert NetworkLifter.reads_confidence is True
