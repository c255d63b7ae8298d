"""The fit's first estimates with known answers: planted feet, the floor's tilt, the ray turn."""
from __future__ import annotations

import numpy as np
import pytest

from mocap.fit.ground import estimate_up, floor_up, planted, world_from_camera
from mocap.lift.trajectory import ray_to_camera
from mocap.rotations import rotation_matrix_between_vectors
from mocap.skeletons import MOTION21
from tests.synthetic import _rot


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def test_ray_to_camera_undoes_a_camera_aimed_at_the_person():
    """Joints seen by a camera aimed at the pelvis (the network's axes), turned back, are the real camera's."""
    rng = np.random.default_rng(0)
    f, c = 1000.0, (960.0, 540.0)
    rel = rng.normal(0, 0.3, (5, 21, 3))
    root = np.array([[1.2, -0.8, 5.0], [-1.5, 0.9, 4.0], [0.0, 0.0, 6.0], [0.3, 1.1, 3.0], [2.0, 0.2, 7.0]])
    pixels = f * root[:, :2] / root[:, 2:] + c
    aim = rotation_matrix_between_vectors(np.array([0.0, 0.0, 1.0]), root)  # aimed camera -> real camera
    seen_by_aimed = np.einsum("tji,tkj->tki", aim, rel)  # the same joints in the aimed camera's axes
    back = np.einsum("tij,tkj->tki", ray_to_camera(pixels, focal_px=f, principal_px=c), seen_by_aimed)
    np.testing.assert_allclose(back, rel, atol=1e-9)
    # a person at the centre needs no turn; unknown pixels are interpolated from their neighbours
    np.testing.assert_allclose(ray_to_camera(np.array([c]), focal_px=f, principal_px=c)[0], np.eye(3), atol=1e-12)
    gaps = pixels.copy()
    gaps[1] = np.nan
    turned = ray_to_camera(gaps, focal_px=f, principal_px=c)
    np.testing.assert_allclose(turned[1], ray_to_camera((pixels[[0]] + pixels[[2]]) / 2, focal_px=f, principal_px=c)[0],
                               atol=1e-9)


def test_floor_up_reads_the_tilt_along_a_walk():
    """Planted feet along a line on a floor pitched 20 deg in camera axes: the tilt along the
    line is read from them, the other one kept from the prior."""
    up_true = _rot("x", np.radians(-20.0)) @ np.array([0.0, -1.0, 0.0])
    to_cam = world_from_camera(up_true).T  # world -> camera
    along = np.linspace(-2.0, 2.0, 60)
    feet = np.stack([0.1 * np.sign(np.sin(7 * along)), np.zeros_like(along), along], -1)  # a walk in depth
    points = feet @ to_cam.T + np.array([0.0, 1.5, 6.0]) + np.random.default_rng(1).normal(0, 0.005, (60, 3))
    up = floor_up(points, np.array([0.0, -1.0, 0.0]))
    assert _angle_deg(up, up_true) < 1.0
    # a person who stays on one spot: no floor
    assert floor_up(points[:5].repeat(4, 0), np.array([0.0, -1.0, 0.0])) is None


def test_planted_feet_are_low_and_still_in_the_image():
    t, fps = 40, 30.0
    joints = np.zeros((t, 21, 3))
    feet = [MOTION21.index(n) for n in ("left_heel", "left_foot_index", "right_heel", "right_foot_index")]
    joints[:, MOTION21.index("left_ankle"), 1] = joints[:, MOTION21.index("right_ankle"), 1] = 0.08
    swing = np.clip(np.sin(np.linspace(0, np.pi, t)), 0, None) * 0.3  # the right foot lifts and comes down
    joints[:, feet[2:], 1] = swing[:, None]
    joints[:, MOTION21.index("right_ankle"), 1] += swing
    feet_px = np.zeros((t, 4, 2))
    feet_px[:, 2:, 0] = np.linspace(0, 400, t)[:, None]  # ... moving across the image
    # depth noise moves the 3D of the planted left foot by 1.5 m/s: the still 2D says it is planted
    joints[:, feet[:2], 2] = np.random.default_rng(2).normal(0, 0.05, (t, 2))
    contacts = planted(joints, feet_px, fps=fps, height_px=600.0)
    assert contacts[:, :2].all()
    assert not contacts[5:-5, 2:].any()
    # without the 2D the noisy 3D speed decides: the left foot is no longer planted everywhere
    assert not planted(joints, None, fps=fps, height_px=600.0)[:, :2].all()


def test_a_planted_foot_with_detector_jitter_stays_planted_at_any_frame_rate():
    """A still foot whose 2D jitters 2.5 px a frame (a 600 px tall person; the raw PyTorch
    BlazePose's order) is planted at 30 and at 60 fps alike: its speed is read over the same
    time span, not from neighbouring frames (at 60 fps that doubled the jitter's speed and the
    foot counted as moving in most frames)."""
    shares = {}
    for fps in (30.0, 60.0):
        t = int(2 * fps)
        joints = np.zeros((t, 21, 3))
        joints[:, [MOTION21.index("left_ankle"), MOTION21.index("right_ankle")], 1] = 0.08
        feet_px = 300.0 + np.random.default_rng(4).normal(0, 2.5, (t, 4, 2))
        shares[fps] = planted(joints, feet_px, fps=fps, height_px=600.0).mean()
    assert shares[30.0] > 0.8 and shares[60.0] > 0.8, shares
    # a foot that moves 0.5 heights/s is not planted at either rate
    for fps in (30.0, 60.0):
        t = int(2 * fps)
        joints = np.zeros((t, 21, 3))
        feet_px = np.zeros((t, 4, 2))
        feet_px[..., 0] = (0.5 * 600.0 * np.arange(t) / fps)[:, None]
        assert not planted(joints, feet_px, fps=fps, height_px=600.0).any()


@pytest.mark.parametrize("pitch", [0.0, 15.0, 30.0])
def test_world_from_camera_is_a_rotation_with_up_as_y(pitch):
    up = _rot("x", np.radians(-pitch)) @ np.array([0.0, -1.0, 0.0])
    r = world_from_camera(up)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(r @ up, [0.0, 1.0, 0.0], atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_floor_up_finds_a_floor_far_from_a_level_guess():
    """Feet planted in three places over 2.2 m in depth, on a floor pitched 24 deg in camera
    axes: from a level first guess the near and far places leave the height band around the
    middle one (0.45 m "lower" and "higher"), yet the floor is found; a box and the floor in
    front of it (two places at two heights) are not taken for a tilted floor."""
    up_true = _rot("x", np.radians(24.0)) @ np.array([0.0, -1.0, 0.0])  # the camera looks down
    to_cam = world_from_camera(up_true).T
    rng = np.random.default_rng(3)
    places = np.array([-1.1, 0.0, 1.1])
    feet = np.concatenate([np.stack([rng.uniform(-0.15, 0.15, 30), np.zeros(30), z + rng.uniform(-0.1, 0.1, 30)], -1)
                           for z in places])
    points = feet @ to_cam.T + np.array([0.0, 1.2, 5.3]) + rng.normal(0, 0.005, feet.shape)
    level = np.array([0.0, -1.0, 0.0])
    up = floor_up(points, level)
    assert up is not None and _angle_deg(up, up_true) < 1.5
    box = np.concatenate([np.stack([rng.uniform(-0.15, 0.15, n), np.full(n, y), z + rng.uniform(-0.1, 0.1, n)], -1)
                          for n, y, z in ((50, 0.4, 0.0), (30, 0.0, 0.5))])  # on the box, then on the floor ahead
    points = box @ to_cam.T + np.array([0.0, 1.2, 5.3])
    up = floor_up(points, up_true)  # a good guess: the box is off the floor's band; the two places set no plane
    assert up is None or _angle_deg(up, up_true) < 2.0
    even = np.concatenate([box[:30], box[50:]])  # as long on the box as on the floor
    up = floor_up(even @ to_cam.T + np.array([0.0, 1.2, 5.3]), up_true)
    assert up is None or _angle_deg(up, up_true) < 2.0


def test_estimate_up_of_a_wide_stance_seen_from_above():
    """A person standing with one foot 0.3 m ahead of the other (facing the camera), seen from
    2.5 m up, pitched 25 deg down: from a level first guess the far foot's heel looks 0.2 m
    higher than the near foot's toe, only the near foot counted as planted, and the centre of
    mass, over both feet, read as a camera about level; the first iteration's looser band
    takes both feet."""
    from tests import fit_synthetic as fs

    body = fs._body(1.0)
    t = 60
    legs = 0.97 * (body["thigh"] + body["shin"])
    ankles = np.zeros((t, 2, 3))
    ankles[..., 1] = body["ankle_height"]
    ankles[:, 0, 2], ankles[:, 1, 2] = 0.15, -0.15
    pelvis = np.stack([np.zeros(t), np.full(t, body["ankle_height"] + np.sqrt(legs ** 2 - 0.15 ** 2)), np.zeros(t)], -1)
    clip = fs._assemble(body, pelvis, ankles, contacts=np.ones((t, 4), bool), support=np.zeros((t, 4)), fps=30.0)
    cam = fs.virtual_camera(25.0, 2.5, 4.0, 1200.0, size=(1080, 1920))
    joints = cam.world_to_camera(clip.joints)
    feet = [MOTION21.index(n) for n in ("left_heel", "left_foot_index", "right_heel", "right_foot_index")]
    px = cam.project(clip.joints)
    up, _, source = estimate_up(joints, fps=30.0, feet_px=px[:, feet], height_px=float(np.ptp(px[0, :, 1])))
    assert source == "balance"
    assert _angle_deg(up, cam.R @ np.array([0.0, 1.0, 0.0])) < 3.0


def test_places_of_a_long_clip_are_found_by_grid_cells():
    """Planted points pile up where a foot stands (a two-minute clip: thousands on a few
    centimetres); the places are chained through a fine grid's cells, not point by point (whose
    pairs grew with the square of the clip: 7 of a 2-minute fit's 11 s). Three spots and a path
    of steps 0.2 m apart (one place), 0.6 m from the nearest spot."""
    from mocap.fit.ground import PLACE_GAP_M, _places

    rng = np.random.default_rng(0)
    spots = [np.array([0.0, 0.0, 4.0]), np.array([1.0, 0.0, 4.0]), np.array([0.0, 0.0, 5.0])]
    piles = [c + rng.normal(0.0, 0.02, (6000, 3)) for c in spots]
    path = np.array([[2.5 + 0.2 * k, 0.0, 4.0] for k in range(8)]).repeat(50, 0) + rng.normal(0.0, 0.01, (400, 3))
    points = np.concatenate([*piles, path, [[9.0, 0.0, 9.0]]])  # and a lone point: fewer than 5, no place
    groups = _places(points)
    assert sorted(len(g) for g in groups) == [400, 6000, 6000, 6000]
    for g, start in zip(sorted(groups, key=lambda g: g.min()), (0, 6000, 12000, 18000)):
        np.testing.assert_array_equal(np.sort(g), np.arange(start, start + len(g)))
    assert PLACE_GAP_M == 0.25  # the path's steps (0.2 m) chain, the spots (1 m) and the path (1.5 m) do not


def test_the_fit_s_spline_by_its_non_zeros_is_the_dense_basis():
    """The fit's per-frame corrections, basis @ coefficients, from each frame's four knots
    (linear in the clip's length) equal the dense (T, K) basis's, at the clip's ends too."""
    import torch

    from mocap.fit.solve import spline_basis, spline_knots, spline_mix, spline_rows

    for frames, spacing in ((300, 5.0), (301, 5.0), (3600, 4.5), (7, 10.0), (2, 1.0), (1, 3.0), (16, 0.5)):
        dense = spline_basis(frames, spacing)
        assert dense.shape == (frames, spline_knots(frames, spacing))
        coef = np.random.default_rng(frames).normal(size=(dense.shape[1], 5))
        weights, first = spline_rows(frames, spacing)
        mixed = spline_mix(torch, torch.as_tensor(weights), torch.as_tensor(first), torch.as_tensor(coef)).numpy()
        np.testing.assert_allclose(mixed, dense @ coef, atol=1e-12)
