"""FK/IK on MOTION21 against synthetic motion with known local rotations, and two-bone IK.

Synthetic motion obeys the IK's conventions (see mocap.kinematics.ik): knees and elbows are
hinges flexing by 0.6..2.2 rad, the spine's left-right axis lies halfway between the hip
and shoulder lines, the head has no roll relative to the neck bone, leaves are identity.
Tolerances: 1e-4 rad on recovered rotations, 1e-6 m on reconstructed joints.
"""
from __future__ import annotations

import numpy as np
import pytest

from mocap.kinematics.ik import (
    HINGE_FLEX_DIRECTIONS,
    forward_kinematics,
    forward_kinematics_with_rotations,
    inverse_kinematics,
    plan_ik,
    solve_ik,
)
from mocap.kinematics.limbs import two_bone_ik
from mocap.rotations import (
    axis_angle_to_quat_wxyz,
    geodesic_angle,
    matrix_to_quat_wxyz,
    quat_multiply_wxyz,
    quat_wxyz_to_matrix,
)
from mocap.skeletons import MOTION21, rest_offsets

PARENTS = MOTION21.parents
IDX = {n: i for i, n in enumerate(MOTION21.joint_names)}
LEAVES = [j for j in range(21) if not MOTION21.children(j)]


def random_quats(rng, shape, max_angle=np.pi):
    axis = rng.normal(size=shape + (3,))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = rng.uniform(0, max_angle, size=shape + (1,))
    return axis_angle_to_quat_wxyz(axis * angle)


def about(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return axis_angle_to_quat_wxyz(axis * np.asarray(angle)[..., None])


def synthetic_locals(t: int, offsets: np.ndarray, seed: int = 0) -> np.ndarray:
    """(T, 21, 4) local rotations that obey the IK conventions."""
    rng = np.random.default_rng(seed)
    q = np.zeros((t, 21, 4))
    q[..., 0] = 1.0
    for name in ("pelvis", "left_hip", "right_hip", "left_ankle", "right_ankle",
                 "left_shoulder", "right_shoulder"):
        q[:, IDX[name]] = random_quats(rng, (t,), max_angle=2.5)
    for hinge, child in (("left_hip", "left_knee"), ("right_hip", "right_knee"),
                         ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow")):
        axis = np.cross(offsets[IDX[child]], HINGE_FLEX_DIRECTIONS[hinge])
        q[:, IDX[child]] = about(axis, rng.uniform(0.6, 2.2, t))
    # Head: yaw then pitch, no roll.
    q[:, IDX["head"]] = quat_multiply_wxyz(about([0, 1, 0], rng.uniform(-1.2, 1.2, t)),
                                           about([1, 0, 0], rng.uniform(-0.9, 0.9, t)))
    # Spine and neck: pick the spine direction and the neck's global rotation, then build the
    # spine frame by the convention and derive both locals.
    g_pelvis = quat_wxyz_to_matrix(q[:, IDX["pelvis"]])
    g_neck = g_pelvis @ quat_wxyz_to_matrix(random_quats(rng, (t,), max_angle=0.8))
    spine_dir = g_pelvis @ quat_wxyz_to_matrix(random_quats(rng, (t,), max_angle=0.8)) @ offsets[IDX["neck"]]
    hip_line = g_pelvis @ (offsets[IDX["left_hip"]] - offsets[IDX["right_hip"]])
    shoulder_line = g_neck @ (offsets[IDX["left_shoulder"]] - offsets[IDX["right_shoulder"]])
    side = hip_line / np.linalg.norm(hip_line, axis=-1, keepdims=True)
    side = side + shoulder_line / np.linalg.norm(shoulder_line, axis=-1, keepdims=True)
    g_spine = frame(spine_dir, side) @ frame(offsets[IDX["neck"]], np.array([1.0, 0, 0])).T
    q[:, IDX["spine"]] = matrix_to_quat_wxyz(np.swapaxes(g_pelvis, 1, 2) @ g_spine)
    q[:, IDX["neck"]] = matrix_to_quat_wxyz(np.swapaxes(g_spine, 1, 2) @ g_neck)
    return q


def frame(primary, secondary):
    e1 = primary / np.linalg.norm(primary, axis=-1, keepdims=True)
    e2 = secondary - np.sum(secondary * e1, -1, keepdims=True) * e1
    e2 = e2 / np.linalg.norm(e2, axis=-1, keepdims=True)
    return np.stack([e1, e2, np.cross(e1, e2)], -1)


@pytest.fixture(params=["default", "scaled"])
def offsets(request):
    off = rest_offsets()
    if request.param == "scaled":
        off = off * np.random.default_rng(1).uniform(0.7, 1.3, size=(21, 1))
    return off


def test_fk_rest_pose_and_known_rotation():
    off = rest_offsets()
    ident = np.tile([1.0, 0, 0, 0], (2, 21, 1))
    root = np.array([[0, 1.0, 0], [0.5, 1.0, -2.0]])
    pos = forward_kinematics(ident, root, off, PARENTS)
    assert pos[0, IDX["left_wrist"]] == pytest.approx([0.18 + 0.28 + 0.25, 1.0 + 0.5, 0])
    np.testing.assert_allclose(pos[1] - pos[0], np.tile([0.5, 0, -2.0], (21, 1)), atol=1e-15)
    # Turning the left elbow by +90 degrees about -Y sends the forearm to +Z.
    q = ident.copy()
    q[:, IDX["left_elbow"]] = about([0, -1, 0], np.pi / 2)
    pos, glob = forward_kinematics_with_rotations(q, root, off, PARENTS)
    np.testing.assert_allclose(pos[0, IDX["left_wrist"]] - pos[0, IDX["left_elbow"]], [0, 0, 0.25], atol=1e-15)
    assert geodesic_angle(glob[0, IDX["left_wrist"]], q[0, IDX["left_elbow"]]) < 1e-12


def test_fk_shape_errors():
    with pytest.raises(ValueError, match=r"\(3, 21, 3\)"):
        forward_kinematics(np.zeros((3, 21, 3)), np.zeros((3, 3)), rest_offsets(), PARENTS)
    with pytest.raises(ValueError, match="root_translation"):
        forward_kinematics(np.ones((3, 21, 4)), np.zeros((4, 3)), rest_offsets(), PARENTS)


def test_ik_recovers_synthetic_rotations(offsets):
    t = 300
    q = synthetic_locals(t, offsets, seed=2)
    root = np.random.default_rng(3).normal(size=(t, 3))
    x = forward_kinematics(q, root, offsets, PARENTS)
    q_ik, root_ik = inverse_kinematics(x, parents=PARENTS, rest_offsets=offsets)
    err = geodesic_angle(q_ik, q)
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err.max() < 1e-4, f"joint {MOTION21.joint_names[worst[1]]} frame {worst[0]}: {err.max()} rad"
    np.testing.assert_allclose(root_ik, root, atol=1e-12)
    np.testing.assert_allclose(forward_kinematics(q_ik, root_ik, offsets, PARENTS), x, atol=1e-6)
    np.testing.assert_allclose(q_ik[:, LEAVES], np.tile([1.0, 0, 0, 0], (t, len(LEAVES), 1)), atol=1e-12)


def test_ik_reproduces_arbitrary_poses_exactly():
    """Random locals that break the twist conventions still give FK(IK(x)) == x."""
    off = rest_offsets()
    rng = np.random.default_rng(4)
    q = random_quats(rng, (100, 21), max_angle=2.0)
    x = forward_kinematics(q, rng.normal(size=(100, 3)), off, PARENTS)
    q_ik, root_ik = inverse_kinematics(x, parents=PARENTS, rest_offsets=off)
    assert np.isfinite(q_ik).all()
    np.testing.assert_allclose(forward_kinematics(q_ik, root_ik, off, PARENTS), x, atol=1e-6)


def test_t_pose_gives_identity(offsets):
    x = forward_kinematics(np.tile([1.0, 0, 0, 0], (3, 21, 1)), np.zeros((3, 3)), offsets, PARENTS)
    q_ik, root = inverse_kinematics(x, parents=PARENTS, rest_offsets=offsets)
    np.testing.assert_allclose(q_ik, np.tile([1.0, 0, 0, 0], (3, 21, 1)), atol=1e-12)
    np.testing.assert_allclose(root, 0, atol=1e-15)


def _max_step(q):
    return geodesic_angle(q[1:], q[:-1]).max()


def test_straight_arm_is_finite_and_continuous():
    """A straight arm twisting and sweeping around: no NaN, no flips between frames."""
    off = rest_offsets()
    t = 400
    s = np.linspace(0, 1, t)
    q = np.tile([1.0, 0, 0, 0], (t, 21, 1))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        swing = about([0, 0, 1], -sign * 1.2 * np.sin(2 * np.pi * s))  # arm up and down
        q[:, IDX[f"{side}_shoulder"]] = quat_multiply_wxyz(swing, about([1, 0, 0], 0.8 * np.sin(6 * np.pi * s)))
        # Elbow nearly straight, passing through zero and slight hyperextension.
        axis = np.cross(off[IDX[f"{side}_elbow"]], HINGE_FLEX_DIRECTIONS[f"{side}_shoulder"])
        q[:, IDX[f"{side}_elbow"]] = about(axis, 0.15 * np.sin(4 * np.pi * s) + 0.02)
    # Legs: knees straight to bent and back.
    for side in ("left", "right"):
        q[:, IDX[f"{side}_knee"]] = about([1, 0, 0], 0.6 * np.sin(np.pi * s) ** 2 - 0.03)
    x = forward_kinematics(q, np.zeros((t, 3)), off, PARENTS)
    q_ik, root = inverse_kinematics(x, parents=PARENTS, rest_offsets=off)
    assert np.isfinite(q_ik).all()
    input_step = _max_step(q)
    for j in range(21):
        assert _max_step(q_ik[:, j]) < 3 * input_step + 1e-6, MOTION21.joint_names[j]
    assert np.all(np.sum(q_ik[1:] * q_ik[:-1], -1) > 0), "quaternion sign flip between frames"
    np.testing.assert_allclose(forward_kinematics(q_ik, root, off, PARENTS), x, atol=1e-6)


def test_exactly_straight_limbs_follow_parent():
    """A straight limb gets the minimal swing from its parent's frame: twist zero."""
    off = rest_offsets()
    q = np.tile([1.0, 0, 0, 0], (1, 21, 1))
    q[0, IDX["left_shoulder"]] = about([0, 0, 1], -1.0)  # arm lowered, straight, no twist
    x = forward_kinematics(q, np.zeros((1, 3)), off, PARENTS)
    q_ik, _ = inverse_kinematics(x, parents=PARENTS, rest_offsets=off)
    assert geodesic_angle(q_ik, q).max() < 1e-9


def test_quaternions_are_sign_continuous():
    off = rest_offsets()
    t = 200
    angle = np.linspace(0, 6 * np.pi, t)  # the pelvis spins three full turns
    q = np.tile([1.0, 0, 0, 0], (t, 21, 1))
    q[:, 0] = about([0, 1, 0], angle)
    x = forward_kinematics(q, np.zeros((t, 3)), off, PARENTS)
    q_ik, _ = inverse_kinematics(x, parents=PARENTS, rest_offsets=off)
    assert np.all(np.sum(q_ik[1:, 0] * q_ik[:-1, 0], -1) > 0.99)
    assert geodesic_angle(q_ik[:, 0], q[:, 0]).max() < 1e-9


def test_missing_joints():
    off = rest_offsets()
    q = synthetic_locals(20, off, seed=5)
    x = forward_kinematics(q, np.zeros((20, 3)), off, PARENTS)
    clean, _ = inverse_kinematics(x, parents=PARENTS, rest_offsets=off)
    x = x.copy()
    x[3, IDX["left_wrist"]] = np.nan   # removes the elbow's bone and the shoulder's plane
    x[4, IDX["left_knee"]] = np.nan    # the hip and the knee cannot be solved
    x[5, IDX["spine"]] = np.nan        # pelvis from the hips only; spine and neck bones missing
    x[6, 0] = np.nan                   # root missing
    q_ik, root = inverse_kinematics(x, parents=PARENTS, rest_offsets=off)
    assert np.isfinite(q_ik).all()
    assert np.isnan(root[6]).all() and np.isfinite(np.delete(root, 6, 0)).all()
    ident = np.array([1.0, 0, 0, 0])
    assert geodesic_angle(q_ik[3, IDX["left_elbow"]], ident) < 1e-12
    assert geodesic_angle(q_ik[4, IDX["left_hip"]], ident) < 1e-12
    assert geodesic_angle(q_ik[4, IDX["left_knee"]], ident) < 1e-12
    # Joints that do not depend on the missing ones are unchanged.
    err = geodesic_angle(q_ik, clean)
    assert err[3, IDX["right_elbow"]] < 1e-9 and err[3, IDX["left_hip"]] < 1e-9
    assert err[4, IDX["right_knee"]] < 1e-9 and err[4, IDX["left_ankle"]] > 0  # ankle is relative to a frozen knee
    # The shoulder keeps its bone direction when only its plane is missing.
    pos = forward_kinematics(q_ik, np.nan_to_num(root), off, PARENTS)
    sl, el = IDX["left_shoulder"], IDX["left_elbow"]
    np.testing.assert_allclose(pos[3, el] - pos[3, sl], x[3, el] - x[3, sl], atol=1e-9)
    np.testing.assert_allclose(err[[0, 1, 2, 7, 8]], 0, atol=1e-9)


def test_ik_input_errors():
    off = rest_offsets()
    with pytest.raises(ValueError, match=r"\(5, 21\)"):
        inverse_kinematics(np.zeros((5, 21)), parents=PARENTS, rest_offsets=off)
    with pytest.raises(ValueError, match="rest_offsets"):
        inverse_kinematics(np.zeros((5, 21, 3)), parents=PARENTS, rest_offsets=off[:20])
    with pytest.raises(ValueError, match="skeleton=None"):
        inverse_kinematics(np.zeros((5, 3, 3)), parents=[-1, 0, 1], rest_offsets=np.ones((3, 3)))
    q, _ = inverse_kinematics(np.array([[[0, 0, 0], [0, 1.0, 0], [1.0, 1, 0]]]), parents=[-1, 0, 1],
                              rest_offsets=np.array([[0, 0, 0], [0, 1.0, 0], [0, 1.0, 0]]), skeleton=None)
    np.testing.assert_allclose(quat_wxyz_to_matrix(q[0, 1]) @ [0, 1, 0], [1, 0, 0], atol=1e-12)


def test_noisy_and_garbage_input_stays_finite():
    """Noisy joints: single-child bones keep their observed directions; garbage: no NaN."""
    off = rest_offsets()
    rng = np.random.default_rng(6)
    x = forward_kinematics(synthetic_locals(200, off, seed=6), np.zeros((200, 3)), off, PARENTS)
    x = x + rng.normal(scale=0.02, size=x.shape)
    q_ik, root = inverse_kinematics(x, parents=PARENTS, rest_offsets=off)
    y = forward_kinematics(q_ik, root, off, PARENTS)
    for j in range(1, 21):
        p = PARENTS[j]
        if len(MOTION21.children(p)) == 1:
            a, b = y[:, j] - y[:, p], x[:, j] - x[:, p]
            cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
            assert np.all(cos > 1 - 1e-12), MOTION21.joint_names[j]
    garbage = rng.normal(size=(300, 21, 3))
    garbage[rng.random((300, 21)) < 0.1] = np.nan
    garbage[0] = 0.0  # every joint at one point
    q_ik, root = inverse_kinematics(garbage, parents=PARENTS, rest_offsets=off)
    assert np.isfinite(q_ik).all()
    np.testing.assert_array_equal(np.isnan(root).any(1), np.isnan(garbage[:, 0]).any(1))


def test_trunk_leaning_against_the_hips_moves_the_short_bones():
    """The pelvis has three children (two hips 8 cm away, the spine 25 cm away) and one
    rotation. When the trunk leans 20 degrees sideways against a level hip line, the
    least-squares fit of the offset vectors keeps the long chain (spine, neck, arms) near
    where it was and leaves the error on the hips; weighting the three directions equally
    would move the spine by about 6 cm (measured: spine 5.8 cm, mean over the joints 3.3 cm;
    now 1.8 and 2.0 cm)."""
    from mocap.rotations import quat_apply_wxyz

    off = rest_offsets()
    parents = np.array(MOTION21.parents)
    rest = forward_kinematics(np.tile([1.0, 0, 0, 0], (1, 21, 1)), np.zeros((1, 3)), off, parents)
    joints = rest.copy()
    spine = MOTION21.index("spine")
    above = [spine, *MOTION21.descendants(spine)]
    lean = np.array([np.cos(np.radians(10)), 0.0, 0.0, np.sin(np.radians(10))])  # 20 degrees about +Z
    joints[0, above] = quat_apply_wxyz(lean, rest[0, above] - rest[0, 0]) + rest[0, 0]
    quats, root = inverse_kinematics(joints, parents=parents, rest_offsets=off)
    fk = forward_kinematics(quats, root, off, parents)
    err = np.linalg.norm(fk - joints, axis=-1)[0]
    assert err[spine] < 0.02, err[spine]
    assert err[MOTION21.index("left_hip")] > err[spine]  # the short bones take the error
    assert err.mean() < 0.025, err.mean()


def degenerate_poses() -> np.ndarray:
    """(10, 21, 3): synthetic poses, each frame with one degenerate geometry."""
    off = rest_offsets()
    d = forward_kinematics(synthetic_locals(10, off, seed=7), np.zeros((10, 3)), off, PARENTS)
    j = IDX.__getitem__
    d[0, j("left_knee")] = d[0, j("left_hip")]  # zero-length bone
    d[1, j("left_wrist")] = 2 * d[1, j("left_elbow")] - d[1, j("left_shoulder")]  # straight arm
    d[2, j("left_elbow")] = d[2, j("left_shoulder")] - (d[2, j("left_elbow")] - d[2, j("left_shoulder")])  # anti
    d[3, j("left_heel")] = d[3, j("left_foot_index")] = d[3, j("left_ankle")]  # no usable child
    d[4, j("head")] = d[4, j("neck")] + 0.2 * (d[4, j("neck")] - d[4, j("spine")])  # head along the spine
    d[5, j("nose")] = d[5, j("head")] + (d[5, j("head")] - d[5, j("neck")])  # nose along the neck
    d[6, [j("left_hip"), j("right_hip"), j("spine")]] = d[6, 0]  # pelvis children on the pelvis
    d[7, j("right_shoulder")] = d[7, j("left_shoulder")]  # shoulders on one point
    d[8] = forward_kinematics(np.tile([1.0, 0, 0, 0], (1, 21, 1)), np.zeros((1, 3)), off, PARENTS)[0]
    d[8, j("left_knee")] = d[8, j("left_hip")] + (0.0, 0.42, 0.0)  # thigh exactly upside down
    d[8, j("left_ankle")] = d[8, j("left_knee")] + (0.0, 0.0, -0.41)
    d[9, j("left_elbow")] = np.nan  # missing joint
    return d


def test_degenerate_poses_keep_the_bone_directions():
    """Every observed bone below a single-child joint comes back from FK along its direction;
    nothing is NaN."""
    off = rest_offsets()
    x = degenerate_poses()
    q_ik, root = inverse_kinematics(x, parents=PARENTS, rest_offsets=off)
    assert np.isfinite(q_ik).all()
    y = forward_kinematics(q_ik, root, off, PARENTS)
    checked = 0
    for f in range(len(x)):
        for c in range(1, 21):
            p = PARENTS[c]
            a, b = y[f, c] - y[f, p], x[f, c] - x[f, p]
            if len(MOTION21.children(p)) != 1 or not np.isfinite(b).all() or np.linalg.norm(b) < 1e-9:
                continue
            cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
            assert cos > 1 - 1e-12, (f, MOTION21.joint_names[c], cos)
            checked += 1
    assert checked > 90
    # The thigh turned upside down and the arm folded back are solved, not left at rest.
    ident = np.array([1.0, 0, 0, 0])
    assert geodesic_angle(q_ik[8, IDX["left_hip"]], ident) > 3.0  # about pi
    assert geodesic_angle(q_ik[2, IDX["left_shoulder"]], q_ik[1, IDX["left_shoulder"]]) > 1.0


def test_one_frame_path_equals_the_clip_path():
    """solve_ik on one frame (the live stream) gives the rotations of inverse_kinematics on the
    whole clip, frame by frame (up to the sign the clip path makes continuous)."""
    off = rest_offsets()
    rng = np.random.default_rng(8)
    clip = forward_kinematics(synthetic_locals(50, off, seed=8), rng.normal(size=(50, 3)), off, PARENTS)
    clip = np.concatenate([clip + rng.normal(scale=0.02, size=clip.shape), degenerate_poses()])
    q_clip, _ = inverse_kinematics(clip, parents=PARENTS, rest_offsets=off)
    plan = plan_ik(PARENTS, off, skeleton=MOTION21)
    q_one = np.array([solve_ik(plan, x) for x in clip])
    assert (q_one[..., 0] >= 0).all()
    np.testing.assert_allclose(np.sign(np.sum(q_one * q_clip, -1, keepdims=True)) * q_one, q_clip, atol=1e-12)
    np.testing.assert_array_equal(solve_ik(plan, clip), q_one)  # many frames in one call
    with pytest.raises(ValueError, match=r"\(21, 3\) or \(T, 21, 3\)"):
        solve_ik(plan, clip[0, :20])
    with pytest.raises(ValueError, match="rest_offsets"):
        plan_ik(PARENTS, off[:, :2])


def test_two_bone_ik_reaches_and_keeps_lengths():
    rng = np.random.default_rng(1)
    root = rng.normal(size=(500, 3))
    mid = root + rng.normal(size=(500, 3)) * 0.3
    end = mid + rng.normal(size=(500, 3)) * 0.3
    a, b = np.linalg.norm(mid - root, axis=-1), np.linalg.norm(end - mid, axis=-1)
    direction = rng.normal(size=(500, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    target = root + direction * rng.uniform(np.abs(a - b) + 1e-3, a + b - 1e-3)[:, None]
    new_mid, new_end = two_bone_ik(root, mid, end, target)
    np.testing.assert_allclose(new_end, target, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(new_mid - root, axis=-1), a, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(new_end - new_mid, axis=-1), b, atol=1e-9)
    # The new knee bends the way the old one did: its offset from the root -> target line
    # points along the old knee's offset from the root -> end line.
    def bend(m, e):
        u = (e - root) / np.linalg.norm(e - root, axis=-1, keepdims=True)
        v = (m - root) - np.sum((m - root) * u, -1, keepdims=True) * u
        return v, u
    old_bend, _ = bend(mid, end)
    new_bend, u = bend(new_mid, new_end)
    expected = old_bend - np.sum(old_bend * u, -1, keepdims=True) * u
    cos = np.sum(expected * new_bend, -1) / np.linalg.norm(expected, axis=-1) / np.linalg.norm(new_bend, axis=-1)
    assert np.all(cos > 1 - 1e-9)
    # Unreachable: straightened towards the target.
    far = root + direction * (a + b + 0.5)[:, None]
    m2, e2 = two_bone_ik(root, mid, end, far)
    np.testing.assert_allclose(e2, root + direction * (a + b)[:, None], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(e2 - m2, axis=-1), b, atol=1e-6)
