"""Tests of the lifting network package (fast; the accuracy check needs ../shared/data and weights)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lifting.augment import CLEAN, NoiseConfig, corrupt, look_at, project, render, world_to_camera  # noqa: E402
from lifting.data import KEYPOINT_NAMES, KEYPOINT_PARENTS, action_category, resample, shared_data_dir  # noqa: E402
from lifting.evaluate import accel_error, mpjpe, mpjve, n_mpjpe, pa_mpjpe  # noqa: E402
from mocap.lift.features import INPUT_NAMES, layout_to_input, normalise_frames  # noqa: E402
from mocap.lift.network import default_weights_path  # noqa: E402
from mocap.lift.model import ModelConfig, TemporalLifter, receptive_field, run_sequence  # noqa: E402
from mocap.skeletons import COCO17, MEDIAPIPE33, MOTION21, rest_offsets  # noqa: E402


def _model(causal: bool, widths=(3, 3, 3), seed: int = 0) -> TemporalLifter:
    torch.manual_seed(seed)
    m = TemporalLifter(ModelConfig(kernel_widths=widths, channels=32, dropout=0.0, causal=causal))
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for name, buf in m.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return m.eval()


def _rest_world() -> np.ndarray:
    """(K, 3) KEYPOINT_NAMES in a T-pose, metres, pelvis 0.95 m above the floor."""
    pos = np.zeros((len(KEYPOINT_NAMES), 3))
    off = rest_offsets()
    for j, p in enumerate(KEYPOINT_PARENTS[:21]):
        if p >= 0:
            pos[j] = pos[p] + off[j]
    head = MOTION21.index("head")
    pos[21:] = pos[head] + np.array([[0.03, 0.0, 0.08], [-0.03, 0.0, 0.08], [0.075, 0.0, 0.0], [-0.075, 0.0, 0.0]])
    pos[:, 1] += 0.95
    return pos


@pytest.mark.parametrize("widths,expected", [((3, 3, 3), 27), ((3, 3, 3, 3), 81), ((5, 3), 15), ((1, 1, 1), 1), ((3, 5, 3), 45)])
def test_receptive_field_formula(widths, expected):
    assert receptive_field(widths) == expected
    m = TemporalLifter(ModelConfig(kernel_widths=widths, channels=8))
    assert m.receptive_field == expected
    t = expected + 9
    assert m.eval()(torch.zeros(2, t, 21, 3)).shape == (2, 10, 21, 3)  # valid convolutions: T - R + 1


def test_output_shapes_and_input_check():
    m = _model(False)
    assert m(torch.randn(3, 40, 21, 3)).shape == (3, 14, 21, 3)
    assert run_sequence(m, torch.randn(2, 50, 21, 3)).shape == (2, 50, 21, 3)
    assert run_sequence(m, torch.randn(1, 5, 21, 3)).shape == (1, 5, 21, 3)  # shorter than the receptive field
    with pytest.raises(ValueError, match=r"\(B, T, 21, 3\)"):
        m(torch.randn(3, 40, 17, 3))
    with pytest.raises(ValueError, match="receptive field"):
        m(torch.randn(1, 10, 21, 3))
    with pytest.raises(ValueError, match="odd"):
        TemporalLifter(ModelConfig(kernel_widths=(2, 3)))


def test_causal_model_ignores_future_frames():
    m = _model(True)
    x = torch.randn(1, 80, 21, 3)
    y = x.clone()
    y[:, 50] += 5.0
    a, b = run_sequence(m, x), run_sequence(m, y)
    assert torch.allclose(a[:, :50], b[:, :50], atol=1e-6)
    assert not torch.allclose(a[:, 50], b[:, 50], atol=1e-4)
    assert not torch.allclose(a[:, 50 + 26], b[:, 50 + 26], atol=1e-4)  # the last frame that still sees it
    assert torch.allclose(a[:, 50 + 27:], b[:, 50 + 27:], atol=1e-6)


def test_offline_window_is_symmetric():
    m = _model(False)
    x = torch.randn(1, 80, 21, 3)
    y = x.clone()
    y[:, 40] += 5.0
    a, b = run_sequence(m, x), run_sequence(m, y)
    changed = (a - b).abs().amax(dim=(0, 2, 3)) > 1e-5
    assert changed.nonzero().flatten().tolist() == list(range(40 - 13, 40 + 14))


@pytest.mark.parametrize("causal", [False, True])
def test_grown_model_starts_as_its_source_and_then_sees_further(causal):
    from mocap.lift.model import grow

    src = _model(causal)
    with torch.no_grad():  # trained-looking BatchNorm shifts, so a zero branch is not zero by accident
        for name, p in src.named_parameters():
            if "bn" in name:
                p.uniform_(0.5, 1.5)
    big = grow(src, ModelConfig(kernel_widths=(3, 3, 3, 3), channels=32, dropout=0.0, causal=causal)).eval()
    assert big.receptive_field == 81
    x = torch.randn(1, 200, 21, 3)
    a, b = run_sequence(src, x), run_sequence(big, x)
    inner = slice(40, 160)  # frames whose 81-frame window needs no edge padding
    torch.testing.assert_close(b[:, inner], a[:, inner], atol=1e-6, rtol=0)
    # once the new block is trained (here: its zero scale made non-zero), a frame 40 away counts
    with torch.no_grad():
        big.pointwise_bn[-1].weight.fill_(1.0)
    y = x.clone()
    y[:, 60] += 5.0
    changed = (run_sequence(big, x) - run_sequence(big, y)).abs().amax(dim=(0, 2, 3)) > 1e-5
    seen = changed.nonzero().flatten().tolist()
    assert seen == (list(range(60, 60 + 81)) if causal else list(range(60 - 40, 60 + 41)))
    same = grow(src, ModelConfig(kernel_widths=(3, 3, 3), channels=32, dropout=0.0, causal=causal)).eval()
    torch.testing.assert_close(run_sequence(same, x), a, atol=0, rtol=0)  # equal widths: a plain copy
    other = grow(src, ModelConfig(kernel_widths=(3, 3, 3), channels=32, dropout=0.0, causal=not causal)).eval()
    assert other.config.causal is not causal
    torch.testing.assert_close(other.state_dict(), src.state_dict(), atol=0, rtol=0)  # same layers, other frames
    with pytest.raises(ValueError, match="cannot grow"):
        grow(src, ModelConfig(kernel_widths=(3, 3, 3, 3), channels=64, causal=causal))
    with pytest.raises(ValueError, match="cannot grow"):
        grow(src, ModelConfig(kernel_widths=(3, 3, 5, 3), channels=32, causal=causal))


def test_streaming_equals_causal_clip():
    from mocap.lift.network import StreamingLifter

    m = _model(True, widths=(3, 5, 3))
    streaming = StreamingLifter.from_model(m)
    rng = np.random.default_rng(0)
    kp = rng.uniform(100, 900, size=(40, 17, 2))
    conf = rng.uniform(0.2, 1, size=(40, 17))
    kp[5, 3] = np.nan
    pushed = np.stack([streaming.push(kp[t], conf[t]) for t in range(40)])
    k21, c21 = layout_to_input(kp, conf, "coco17")
    clip = run_sequence(m, torch.from_numpy(normalise_frames(k21, c21))[None])[0].numpy()
    clip = clip - clip[:, :1]
    np.testing.assert_allclose(pushed, clip, atol=1e-5)


@pytest.mark.parametrize("widths", [(3, 3, 3), (3, 5, 3), (1, 1, 1), (4, 2)])
def test_model_step_equals_the_full_causal_forward(widths):
    """Frame-by-frame TemporalLifter.step (B = 2 sequences at once) gives run_sequence's output
    (edge padding by the first frame) to float32 round-off: atol 1e-5 m."""
    m = _model(True, widths=widths)
    x = torch.randn(2, 60, 21, 3)
    full = run_sequence(m, x)
    state, outs = None, []
    with torch.no_grad():
        for t in range(x.shape[1]):
            y, state = m.step(x[:, t], state)
            outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 1), full, atol=1e-5, rtol=0)
    assert [s.shape[2] for s in state] == [widths[0]] + [c + 1 for c in m.crops]
    with pytest.raises(ValueError, match="causal"):
        _model(False).step(x[:, 0])
    with pytest.raises(ValueError, match=r"\(B, 21, 3\)"):
        m.step(x[:, :2])
    with pytest.raises(RuntimeError, match="eval"):
        m.train().step(x[:, 0])



@pytest.mark.parametrize("widths", [(3, 3, 3), (3, 5, 3), (1, 1, 1), (4, 2)])
def test_causal_steps_equal_model_step_whatever_the_batch(widths):
    """CausalSteps (BatchNorm folded, one product per layer, ring buffers in slots) gives
    TemporalLifter.step's output to float32 round-off (atol 1e-5 m), and each stream the same
    bits whether it runs alone or beside others; a restarted slot starts afresh and the pool
    grows past its capacity."""
    from mocap.lift.model import CausalSteps

    m = _model(True, widths=widths)
    with torch.no_grad():  # BatchNorm scales and shifts too
        for name, buf in m.named_parameters():
            if "_bn." in name:
                buf.uniform_(0.5, 1.5) if name.endswith("weight") else buf.uniform_(-0.5, 0.5)
    steps, alone = CausalSteps(m, capacity=2), CausalSteps(m, capacity=2)
    slots = [steps.new_slot() for _ in range(5)]
    single = [alone.new_slot() for _ in range(5)]
    x = torch.randn(5, 30, 21, 3)
    state, got, ref, one = None, [], [], []
    with torch.no_grad():
        for t in range(30):
            if t == 12:  # a new shot on stream 2
                steps.restart(slots[2])
                alone.restart(single[2])
            y, state = m.step(x[:, t], state)
            ref.append(y)
            got.append(steps.step(slots, x[:, t]))
            one.append(torch.cat([alone.step([single[b]], x[b: b + 1, t]) for b in range(5)]))
    got, ref, one = torch.stack(got, 1), torch.stack(ref, 1), torch.stack(one, 1)
    torch.testing.assert_close(got[:, :12], ref[:, :12], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[[0, 1, 3, 4]], ref[[0, 1, 3, 4]], atol=1e-5, rtol=0)
    assert torch.equal(got, one)
    fresh, _ = m.step(x[2:3, 12], None)  # after the restart stream 2 is a new sequence
    torch.testing.assert_close(got[2, 12], fresh[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="once"):
        steps.step([slots[0], slots[0]], x[:2, 0])
    with pytest.raises(ValueError, match="frames"):
        steps.step(slots[:2], x[:3, 0])

def test_mirror_permutations_come_from_the_skeleton_tables():
    """INPUT21's and the training keypoints' left/right swaps: each joint goes to its other side, the rest stay."""
    from lifting.data import KEYPOINT_MIRROR
    from mocap.lift.features import INPUT21, INPUT_MIRROR

    def other_side(name: str) -> str:
        if name.startswith("left_"):
            return "right_" + name[5:]
        return "left_" + name[6:] if name.startswith("right_") else name

    for names, perm in ((INPUT_NAMES, INPUT_MIRROR), (KEYPOINT_NAMES, KEYPOINT_MIRROR)):
        assert [names[p] for p in perm] == [other_side(n) for n in names]
    assert len(INPUT21.left_right) == 10 and INPUT21.joint_names == INPUT_NAMES
    assert (KEYPOINT_MIRROR[:21] == MOTION21.mirror_permutation()).all()


def test_one_lift_result_type():
    from mocap.lift import interface, lifters, network

    assert lifters.LiftResult is interface.LiftResult and network.LiftResult is interface.LiftResult


def test_projection_of_known_point():
    # camera 5 m in front of the origin on +Z, at height 0, looking at the origin (towards -Z)
    position = np.array([[0.0, 0.0, 5.0]])
    rot = look_at(position, np.zeros((1, 3)))
    # facing -Z with +Y up, the viewer's right is +X; y down; right-handed (det +1)
    np.testing.assert_allclose(rot[0], [[1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-12)
    point = np.array([[[0.5, 1.0, 1.0]]])  # world: 0.5 m to +X, 1 m up, 1 m towards the camera
    cam = world_to_camera(point, rot, position)
    np.testing.assert_allclose(cam[0, 0], [0.5, -1.0, 4.0], atol=1e-12)
    px = project(cam, np.array([1000.0]), np.array([[960.0, 540.0]]))
    # u = 1000 * 0.5 / 4 + 960 = 1085; v = 1000 * -1 / 4 + 540 = 290 (up in the world is up in the image)
    np.testing.assert_allclose(px[0, 0], [1085.0, 290.0], atol=1e-9)


def test_render_targets_are_root_relative_and_consistent():
    rng = np.random.default_rng(3)
    world = np.broadcast_to(_rest_world(), (4, 30, len(KEYPOINT_NAMES), 3)).copy()
    batch = render(rng, world, out_slice=slice(None), noise=CLEAN, mirror_prob=0.0, bone_spread=0.0, drop_feet_prob=0.0)
    np.testing.assert_allclose(batch.targets[..., 0, :], 0.0, atol=1e-6)
    # rigid camera transform keeps the bone lengths
    left_knee, left_ankle = MOTION21.index("left_knee"), MOTION21.index("left_ankle")
    np.testing.assert_allclose(np.linalg.norm(batch.targets[..., left_knee, :] - batch.targets[..., left_ankle, :], axis=-1), 0.41, atol=1e-5)
    assert np.all(batch.features[..., 2] == 1.0)


def test_metrics_against_hand_computed_values():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(6, 21, 3))
    shift = target + np.array([0.003, 0.004, 0.0])  # every joint 5 mm off
    np.testing.assert_allclose(mpjpe(shift, target), 0.005, atol=1e-12)
    from scipy.spatial.transform import Rotation

    r = Rotation.from_euler("xyz", [0.3, -1.0, 2.0]).as_matrix()
    similar = 1.7 * target @ r.T + np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(pa_mpjpe(similar, target), 0.0, atol=1e-9)
    np.testing.assert_allclose(n_mpjpe(0.5 * target, target), 0.0, atol=1e-12)
    assert np.all(mpjpe(0.5 * target, target) > 0.1)
    # a mirror image is not a rotation: PA-MPJPE must stay large
    assert np.all(pa_mpjpe(target * np.array([-1, 1, 1]), target) > 0.1)
    # constant offset: zero velocity and acceleration error; a linear drift of 1 mm/frame: MPJVE 1 mm/frame
    traj = np.cumsum(rng.normal(size=(20, 21, 3)), axis=0)
    np.testing.assert_allclose(mpjve(traj + 0.3, traj), 0.0, atol=1e-12)
    drift = traj + np.arange(20)[:, None, None] * np.array([0.001, 0.0, 0.0])
    np.testing.assert_allclose(mpjve(drift, traj), 0.001, atol=1e-12)
    np.testing.assert_allclose(accel_error(drift, traj), 0.0, atol=1e-12)


def test_nan_input_gives_finite_output():
    m = _model(False)
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 1000, size=(30, 33, 2))
    conf = rng.uniform(0, 1, size=(30, 33))
    kp[3] = np.nan  # a frame without detection
    kp[4:8, 11:17] = np.nan
    conf[10, :] = 0.0
    conf[12, 20:] = np.nan
    k21, c21 = layout_to_input(kp, conf, "mediapipe33")
    feats = normalise_frames(k21, c21)
    assert np.isfinite(feats).all()
    assert np.all(feats[3] == 0) and np.all(feats[10] == 0)
    out = run_sequence(m, torch.from_numpy(feats)[None]).numpy()
    assert np.isfinite(out).all()


def test_layouts_share_input_joints():
    kp = np.arange(33 * 2, dtype=float).reshape(1, 33, 2)
    k21, c21 = layout_to_input(kp, np.ones((1, 33)), "mediapipe33")
    for i, name in enumerate(INPUT_NAMES):
        np.testing.assert_array_equal(k21[0, i], kp[0, MEDIAPIPE33.index(name)])
    coco = kp[:, [MEDIAPIPE33.index(n) for n in COCO17.joint_names]]
    k17, c17 = layout_to_input(coco, np.ones((1, 17)), "coco17")
    np.testing.assert_array_equal(k17[:, :17], k21[:, :17])
    assert np.isnan(k17[:, 17:]).all() and np.all(c17[:, 17:] == 0)
    with pytest.raises(ValueError, match="mediapipe33 or coco17"):
        layout_to_input(np.zeros((1, 16, 2)), np.ones((1, 16)), "mpii16")


def test_normalisation_is_invariant_to_image_translation_and_scale():
    rng = np.random.default_rng(2)
    kp = rng.uniform(0, 500, size=(4, 21, 2))
    conf = np.ones((4, 21))
    a = normalise_frames(kp, conf)
    b = normalise_frames(3.0 * kp + np.array([100.0, -40.0]), conf)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_corruption_marks_missing_as_nan_with_zero_confidence():
    rng = np.random.default_rng(5)
    clean = rng.uniform(0, 1000, size=(8, 20, 21, 2))
    kp, conf = corrupt(rng, clean, NoiseConfig(drop_rate_max=0.5, clean_fraction=0.0), drop_feet_prob=1.0)
    missing = np.isnan(kp).any(-1)
    assert missing.any()
    assert np.all(conf[missing] == 0) and np.all(conf[~missing] > 0)
    assert np.all(missing[..., 17:])


def test_resample_and_action_labels():
    x = np.arange(7, dtype=float)[:, None] * 2.0  # 60 Hz ramp
    y = resample(x, 60.0, 120.0)
    np.testing.assert_allclose(y[:, 0], np.arange(13) * 1.0)
    assert action_category("playground - climb, jump down") == "climb"
    assert action_category("run/jog") == "run"
    assert action_category("salsa dance") == "dance"


_WEIGHTS = default_weights_path()
_SHARED = shared_data_dir() / "mocap" / "cmu_bvh.tar.xz"


@pytest.mark.shared_data
@pytest.mark.skipif(not _SHARED.exists(), reason=f"shared CMU data not found at {_SHARED}")
@pytest.mark.skipif(not _WEIGHTS.exists(), reason=f"no trained weights at {_WEIGHTS}")
def test_shipped_weights_accuracy_on_held_out_take():
    from lifting.data import list_takes, load_take, load_split
    from lifting.evaluate import make_eval_set
    from mocap.lift.network import NetworkLifter

    split = load_split()
    takes = {t.take_id: t for t in list_takes()}
    assert "02_01" in split["test"]
    take = takes["02_01"]  # held-out subject 02, walking; the model card reports the whole test split
    world = load_take(take)
    es = make_eval_set([(take, world)], noise=CLEAN, drop_feet_prob=0.0, seed=0, segment_frames=64, cameras_per_segment=3)
    lifter = NetworkLifter(threads=1)
    pred = np.stack([lifter.lift_features(f) for f in es.features])
    pa, mp = 1000 * pa_mpjpe(pred, es.targets).mean(), 1000 * mpjpe(pred, es.targets).mean()
    # measured with the shipped weights: see MODEL_CARD.md; an untrained network gives > 150 mm
    assert pa < 45.0 and mp < 70.0, f"PA-MPJPE {pa:.1f} mm, MPJPE {mp:.1f} mm on {take.take_id}"


def test_network_lifter_api_with_saved_weights(tmp_path):
    from mocap.lift.network import NetworkLifter, StreamingLifter
    from lifting.train import save_weights
    from mocap.formats import Keypoints2D

    path = tmp_path / "w.pt"
    save_weights(path, _model(False), {"note": "random"})
    rng = np.random.default_rng(4)
    kp = rng.uniform(100, 900, size=(40, 17, 2)).astype(np.float32)
    conf = rng.uniform(0.3, 1, size=(40, 17)).astype(np.float32)
    kp[7] = np.nan  # no detection at all in frame 7
    conf[7] = 0.0
    kp[9, :5] = np.nan
    res = NetworkLifter(path, flip_average=False).lift(Keypoints2D(kp, conf, "coco17", (1920, 1080), 30.0))
    assert res.joints_cam.shape == (40, 21, 3) and res.root_translation_cam is None
    assert np.isnan(res.joints_cam[7]).all()
    others = np.delete(res.joints_cam, 7, axis=0)
    assert np.isfinite(others).all()
    np.testing.assert_allclose(others[:, 0], 0.0, atol=1e-9)
    flipped = NetworkLifter(path).lift(Keypoints2D(kp, conf, "coco17", (1920, 1080), 30.0))  # flip on by default
    assert np.isfinite(np.delete(flipped.joints_cam, 7, axis=0)).all()
    assert NetworkLifter(path).flip_average and not NetworkLifter(path, flip_average=False).flip_average
    with pytest.raises(Exception, match="offline model"):
        StreamingLifter(path)
    with pytest.raises(Exception, match="causal"):
        NetworkLifter(path, causal=True)


def test_flip_averaging_makes_the_lift_mirror_symmetric(tmp_path):
    """With flip averaging, lifting the mirrored 2D gives exactly the mirrored 3D; one pass does not."""
    from mocap.lift.features import mirror_features, mirror_joints
    from mocap.lift.network import NetworkLifter
    from lifting.train import save_weights

    path = tmp_path / "w.pt"
    save_weights(path, _model(False), {"note": "random"})
    f = np.random.default_rng(5).normal(size=(30, 21, 3)).astype(np.float32)
    f[..., 2] = 1.0  # confidences
    for flip, symmetric in ((True, True), (False, False)):
        lifter = NetworkLifter(path, flip_average=flip)
        a, b = lifter.lift_features(mirror_features(f)), mirror_joints(lifter.lift_features(f))
        assert np.allclose(a, b, atol=1e-5) == symmetric, np.abs(a - b).max()
    plain = NetworkLifter(path, flip_average=False)
    both = 0.5 * (plain.lift_features(f) + mirror_joints(plain.lift_features(mirror_features(f))))
    np.testing.assert_allclose(NetworkLifter(path).lift_features(f), both - both[:, :1], atol=1e-6)


def test_mirroring_is_an_involution():
    from mocap.lift.features import mirror_features, mirror_joints

    rng = np.random.default_rng(6)
    f = rng.normal(size=(5, 21, 3)).astype(np.float32)
    np.testing.assert_array_equal(mirror_features(mirror_features(f)), f)
    j = rng.normal(size=(5, 21, 3))
    np.testing.assert_array_equal(mirror_joints(mirror_joints(j)), j)
    left, right = INPUT_NAMES.index("left_heel"), INPUT_NAMES.index("right_heel")
    np.testing.assert_array_equal(mirror_features(f)[:, left, 1], f[:, right, 1])


def test_fast_clips_are_lifted_as_interleaved_30fps_subclips(tmp_path):
    """A 60 fps clip gives, frame for frame, the outputs of its two 30 fps halves."""
    from mocap.lift.network import NetworkLifter, default_weights_path, frame_stride
    from mocap.formats import Keypoints2D

    assert [frame_stride(f) for f in (24, 30, 44, 50, 60, 120)] == [1, 1, 1, 2, 2, 4]
    if not default_weights_path().exists():
        pytest.skip("no trained weights")
    rng = np.random.default_rng(0)
    t = 40
    kp = (rng.normal(0, 30, (t, 17, 2)) + [320, 240]).astype(np.float32)
    conf = np.ones((t, 17), np.float32)
    lifter = NetworkLifter()
    fast = lifter.lift(Keypoints2D(keypoints=kp, confidence=conf, layout="coco17", image_size=(640, 480), fps=60.0))
    for phase in (0, 1):
        half = lifter.lift(Keypoints2D(keypoints=kp[phase::2], confidence=conf[phase::2], layout="coco17",
                                       image_size=(640, 480), fps=30.0))
        np.testing.assert_allclose(fast.joints_cam[phase::2], half.joints_cam, atol=1e-6)


def test_pose_augmentation_keeps_bones_and_leans_as_configured():
    from lifting.augment import PoseAugment, augment_pose

    rng = np.random.default_rng(8)
    b, t = 4000, 3
    world = np.broadcast_to(_rest_world(), (b, t, len(KEYPOINT_NAMES), 3)).copy()
    assert augment_pose(rng, world, PoseAugment(prob=0.0)) is world
    out = augment_pose(rng, world, PoseAugment(prob=1.0, part_prob=1.0))
    parents = np.array(KEYPOINT_PARENTS)
    bone = lambda x: np.linalg.norm(x[..., 1:, :] - x[..., parents[1:], :], axis=-1)  # noqa: E731
    np.testing.assert_allclose(bone(out), bone(world), atol=1e-12)
    for name in ("pelvis", "left_hip", "right_hip"):  # rotation pivots stay where they are
        j = KEYPOINT_NAMES.index(name)
        np.testing.assert_allclose(out[:, :, j], world[:, :, j], atol=1e-12)
    wrist = KEYPOINT_NAMES.index("left_wrist")
    assert np.median(np.linalg.norm(out[:, 0, wrist] - world[:, 0, wrist], axis=-1)) > 0.1

    # upper body only, no change over time: the trunk of the T-pose (vertical) leans by the
    # rotation's angle, Rayleigh-distributed with scale trunk_lean_std_rad
    cfg = PoseAugment(prob=1.0, part_prob=1.0, limb_std_rad=0.0, trunk_lean_std_rad=0.3, trunk_twist_std_rad=0.0,
                      change=0.0, max_angle_rad=10.0)
    out = augment_pose(rng, world, cfg)
    pelvis, neck = KEYPOINT_NAMES.index("pelvis"), KEYPOINT_NAMES.index("neck")
    trunk = out[:, 0, neck] - out[:, 0, pelvis]
    lean = np.arccos(trunk[:, 1] / np.linalg.norm(trunk, axis=-1))
    assert abs(lean.mean() - 0.3 * np.sqrt(np.pi / 2)) < 0.015
    np.testing.assert_allclose(out[:, 1], out[:, 0], atol=1e-12)  # change=0: the same pose in every frame
    knee = KEYPOINT_NAMES.index("left_knee")
    np.testing.assert_allclose(out[:, :, knee], world[:, :, knee], atol=1e-12)  # legs untouched


def test_width_spread_widens_only_hip_and_shoulder_bones():
    from lifting.augment import random_bone_factors

    names = ("left_hip", "right_hip", "left_shoulder", "right_shoulder")
    width = [KEYPOINT_NAMES.index(n) for n in names]
    other = [j for j in range(1, len(KEYPOINT_NAMES)) if j not in width]
    same = random_bone_factors(np.random.default_rng(3), 20000, 0.1)
    wide = random_bone_factors(np.random.default_rng(3), 20000, 0.1, width_spread=0.3)
    assert 0.9 * 0.97 - 1e-9 <= same.min() and same.max() <= 1.1 * 1.03 + 1e-9
    assert wide[:, width].min() < 0.72 and wide[:, width].max() > 1.28
    assert 0.9 * 0.97 - 1e-9 <= wide[:, other].min() and wide[:, other].max() <= 1.1 * 1.03 + 1e-9
    left, right = KEYPOINT_NAMES.index("left_hip"), KEYPOINT_NAMES.index("right_hip")
    assert np.abs(wide[:, left] / wide[:, right] - 1).max() < 0.07  # one factor per pair, +-3 % per side


def test_skeleton_transplant_gives_another_takes_bone_lengths_and_keeps_the_pose():
    from lifting.augment import scale_bones, skeleton_pool, transplant_factors
    from mocap.bones import bone_lengths as lengths_with_root

    def bone_lengths(x):  # the root's NaN as 0, like skeleton_pool's rows
        return np.nan_to_num(lengths_with_root(x, KEYPOINT_PARENTS))

    rng = np.random.default_rng(5)
    rest = _rest_world()
    short_shins = rest.copy()  # a second "take": every point below the knees 20 % closer to its knee
    for side in ("left", "right"):
        knee = rest[KEYPOINT_NAMES.index(f"{side}_knee")]
        for n in ("ankle", "heel", "foot_index"):
            j = KEYPOINT_NAMES.index(f"{side}_{n}")
            short_shins[j] = knee + 0.8 * (rest[j] - knee)
    takes = [np.broadcast_to(x, (5, len(KEYPOINT_NAMES), 3)) for x in (rest, rest, short_shins)]
    pool = skeleton_pool(takes)
    assert pool.shape == (2, len(KEYPOINT_NAMES))  # the two takes of one skeleton count once

    world = np.broadcast_to(rest, (400, 6, len(KEYPOINT_NAMES), 3)).copy()
    assert (transplant_factors(rng, world, pool, 0.0) == 1).all()
    out = scale_bones(world, transplant_factors(rng, world, pool, 0.5))
    lengths = bone_lengths(out[:, 0])
    own = np.all(np.abs(lengths - bone_lengths(rest)) < 1e-9, axis=1)
    given = [np.all(np.abs(lengths - skeleton) < 1e-9, axis=1) for skeleton in pool]
    # each sample has its own skeleton or exactly one of the pool's (bone lengths to 5 mm)
    assert np.all(own | given[0] | given[1])
    assert 0.4 < own.mean() < 0.6  # half of them are given a pool skeleton, the other half keep theirs
    ankle = KEYPOINT_NAMES.index("left_ankle")
    short = np.isclose(lengths[:, ankle] / bone_lengths(rest)[ankle], 0.8, atol=0.02)
    assert 0.15 < short.mean() < 0.35  # ... one of the two at random
    # directions are kept: the joint angles do not change, only the lengths
    parents = np.maximum(np.array(KEYPOINT_PARENTS), 0)
    d_in = world[:, 0] - world[:, 0, parents]
    d_out = out[:, 0] - out[:, 0, parents]
    cos = (d_in * d_out).sum(-1)[:, 1:] / (np.linalg.norm(d_in, axis=-1) * np.linalg.norm(d_out, axis=-1))[:, 1:]
    np.testing.assert_allclose(cos, 1.0, atol=1e-9)


@pytest.mark.parametrize("bad", [["--pose-aug", "1.5"], ["--pose-aug", "-0.1"], ["--pose-aug-scale", "-1"],
                                 ["--width-spread", "1.0"], ["--width-spread", "-0.2"],
                                 ["--transplant", "1.2"], ["--transplant", "0.5"], ["--kernel-widths", "3,x"]])
def test_train_rejects_bad_options(bad, capsys):
    from lifting.train import _parse

    assert _parse(["--out", "run", "--pose-aug", "0.5", "--width-spread", "0.25"]).pose_aug == 0.5
    with pytest.raises(SystemExit) as e:
        _parse(["--out", "run", *bad])
    assert e.value.code == 2
    assert bad[0] in capsys.readouterr().err


def test_train_refuses_weights_it_cannot_start_from_before_writing_anything(tmp_path, capsys):
    from lifting.train import save_weights
    from mocap.cli import main as mocap_main

    weights = tmp_path / "small.pt"
    save_weights(weights, TemporalLifter(ModelConfig(kernel_widths=(3, 3), channels=32)), {})
    out = tmp_path / "run"
    rc = mocap_main(["train-lifter", "--out", str(out), "--init-from", str(weights), "--kernel-widths", "3,3,3",
                     "--channels", "64", "--steps", "1"])
    err = capsys.readouterr().err
    assert rc != 0 and "cannot grow" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
