"""The synthetic clips of tests/fit_synthetic.py tell the truth they claim (camera, floor, contacts, 2D)."""
import numpy as np
import pytest

from mocap.bones import bone_lengths
from mocap.cleanup.contact import CONTACT_POINTS
from mocap.kinematics.ik import forward_kinematics
from mocap.skeletons import MEDIAPIPE33, MOTION21, map_joints
from tests import fit_synthetic as fs

CLIPS = {
    "lean": lambda: fs.leaning_stand(lean_deg=25.0),
    "jump": lambda: fs.jumping_in_place(jumps=2, height_m=0.3),
    "box": lambda: fs.step_down_from_box(box_height_m=0.4),
    "box jump": lambda: fs.jump_down_from_box(box_height_m=0.4),
    "walk": lambda: fs.place(fs.walking(seconds=3.0), yaw_deg=60.0, offset=(1.0, -2.0)),
    "tall": lambda: fs.walking(seconds=2.0, scale=1.1),
}


@pytest.mark.parametrize("name", list(CLIPS))
def test_planted_feet_lie_on_their_support_and_bones_are_constant(name):
    clip = CLIPS[name]()
    heights = fs.contact_heights(clip)
    assert clip.contacts.shape == clip.support_m.shape == (clip.num_frames, 4)
    assert clip.contacts.any()
    np.testing.assert_allclose(heights[clip.contacts], clip.support_m[clip.contacts], atol=1e-9)
    assert np.isnan(clip.support_m[~clip.contacts]).all()
    # nothing under the floor, and a point off its support is above it
    assert clip.joints[..., 1].min() > -1e-9
    lowest_support = np.nanmin(np.where(clip.contacts, clip.support_m, np.inf), axis=1)
    # a planted point does not move
    for k in range(4):
        both = clip.contacts[1:, k] & clip.contacts[:-1, k]
        j = MOTION21.index(CONTACT_POINTS[k])
        step = np.linalg.norm(np.diff(clip.joints[:, j], axis=0), axis=-1)
        assert step[both].max() < 1e-9
    assert np.isfinite(lowest_support).any()
    lengths = bone_lengths(clip.joints, MOTION21.parents)
    np.testing.assert_allclose(lengths, np.broadcast_to(lengths[:1], lengths.shape), atol=1e-9)
    again = forward_kinematics(clip.local_quats_wxyz, clip.root_translation, clip.rest_offsets, MOTION21.parents)
    np.testing.assert_allclose(again, clip.joints, atol=1e-9)


def test_leaning_stand_leans_by_the_asked_angle_with_vertical_legs():
    clip = fs.leaning_stand(lean_deg=25.0, seconds=1.0)
    j = clip.joints
    torso = j[:, MOTION21.index("neck")] - j[:, MOTION21.index("pelvis")]
    lean = np.degrees(np.arccos(torso[:, 1] / np.linalg.norm(torso, axis=-1)))
    np.testing.assert_allclose(lean, 25.0, atol=1e-6)
    assert (torso[:, 2] > 0).all()  # forwards: the rest pose faces +Z
    for side in ("left", "right"):
        leg = j[:, MOTION21.index(f"{side}_ankle")] - j[:, MOTION21.index(f"{side}_hip")]
        np.testing.assert_allclose(leg[:, [0, 2]], 0.0, atol=1e-6)
    assert clip.contacts.all() and np.all(clip.support_m == 0.0)
    np.testing.assert_allclose(np.ptp(j, axis=0), 0.0, atol=1e-12)  # still


def test_jump_leaves_the_ground_by_the_asked_height_and_lands_where_it_took_off():
    clip = fs.jumping_in_place(jumps=2, height_m=0.3)
    feet = fs.contact_heights(clip)
    assert 0.27 < feet.max() <= 0.3 + 1e-9  # the apex falls between frames
    flight = ~clip.contacts.any(1)
    assert (feet[flight] > 0).all()
    starts = np.flatnonzero(np.diff(flight.astype(int)) == 1)
    assert len(starts) == 2  # two flights
    np.testing.assert_allclose(clip.joints[-1], clip.joints[0], atol=1e-9)


@pytest.mark.parametrize("make", [fs.step_down_from_box, fs.jump_down_from_box])
def test_box_clips_have_two_floor_levels(make):
    clip = make(box_height_m=0.4)
    levels = np.unique(clip.support_m[clip.contacts])
    np.testing.assert_allclose(levels, [0.0, 0.4])
    assert np.all(clip.support_m[0] == 0.4) and np.all(clip.support_m[-1] == 0.0)
    # the feet end in front of where they started, on the floor
    toe = MOTION21.index("right_foot_index")
    assert clip.joints[-1, toe, 2] - clip.joints[0, toe, 2] > 0.4


def test_walk_moves_at_the_asked_speed_and_alternates_feet():
    clip = fs.walking(seconds=4.0, speed_m_s=1.2)
    pelvis = clip.joints[:, 0]
    speed = (pelvis[-1, 2] - pelvis[0, 2]) / ((clip.num_frames - 1) / clip.fps)
    assert speed == pytest.approx(1.2, rel=1e-6)
    left, right = clip.contacts[:, 0], clip.contacts[:, 2]
    assert (left | right).all()  # always a foot down
    assert (left & ~right).any() and (right & ~left).any()
    turned = fs.place(clip, yaw_deg=90.0, offset=(2.0, 1.0))
    step = turned.joints[-1, 0] - turned.joints[0, 0]
    assert step[0] > 4.0 and abs(step[2]) < 1e-9  # +Z turned a quarter anticlockwise is +X
    np.testing.assert_allclose(turned.joints[0, 0, [0, 2]], [2.0, 1.0], atol=1e-9)


@pytest.mark.parametrize("pitch, height, distance, yaw, roll", [(0.0, 1.0, 5.0, 0.0, 0.0), (20.0, 1.6, 6.0, 30.0, 0.0),
                                                                 (30.0, 2.0, 4.0, -120.0, 3.0)])
def test_virtual_camera_has_the_asked_pitch_height_and_distance(pitch, height, distance, yaw, roll):
    cam = fs.virtual_camera(pitch, height, distance, 1200.0, size=(1080, 1920), yaw_deg=yaw, roll_deg=roll,
                            target=(0.5, -1.0))
    np.testing.assert_allclose(cam.R @ cam.R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(cam.R) == pytest.approx(1.0)
    got = fs.camera_angles(cam)
    np.testing.assert_allclose(got, (pitch, roll, height), atol=1e-9)
    pos = cam.position
    assert np.hypot(pos[0] - 0.5, pos[2] + 1.0) == pytest.approx(distance)
    # the target's vertical line is straight ahead (image centre column when there is no roll),
    # above the image centre by the pitch (the camera looks down)
    if roll == 0.0:
        ground = cam.project(np.array([0.5, height, -1.0]))  # the target at the camera's height
        assert ground[0] == pytest.approx(540.0)
        assert ground[1] == pytest.approx(960.0 - 1200.0 * np.tan(np.radians(pitch)))
        # world up is image up: a point above another projects higher (smaller v)
        assert cam.project(np.array([0.5, 1.8, -1.0]))[1] < cam.project(np.array([0.5, 0.0, -1.0]))[1]
        # the person's left (+X) is on the right of the image when the camera faces them (yaw 0)
        if yaw == 0.0:
            assert cam.project(np.array([0.6, 1.0, -1.0]))[0] > cam.project(np.array([0.4, 1.0, -1.0]))[0]


def test_projected_keypoints_reproject_and_map_back_to_the_body():
    clip = fs.walking(seconds=2.0)
    cam = fs.virtual_camera(15.0, 1.5, 6.0, 1400.0, target=(0.0, 1.1))
    kp = fs.project_clip(clip.joints, cam, fps=clip.fps)
    assert kp.layout == "mediapipe33" and kp.keypoints.shape == (clip.num_frames, 33, 2)
    assert np.all(kp.confidence == 1.0) and np.isfinite(kp.keypoints).all()
    body = map_joints(kp.keypoints, "mediapipe33", MOTION21)
    expected = cam.project(clip.joints)
    ok = np.isfinite(body).all(-1)
    assert ok[:, MOTION21.index("head")].all() and ok.sum(1).min() == 21
    np.testing.assert_allclose(body[..., 0, :], expected[..., 0, :], atol=1e-3)  # pelvis: mid-hips, linear in 2D
    for n in ("left_ankle", "right_heel", "left_foot_index", "nose", "right_wrist", "left_shoulder"):
        np.testing.assert_allclose(body[:, MOTION21.index(n)], expected[:, MOTION21.index(n)], atol=1e-3)
    # 3D mapping back is exact for the head (mid-ears) and the body joints
    pts = fs.mediapipe33_from_motion21(clip.joints)
    np.testing.assert_allclose(map_joints(pts, "mediapipe33", MOTION21)[:, MOTION21.index("head")],
                               clip.joints[:, MOTION21.index("head")], atol=1e-12)
    # the face looks where the nose points: eyes in front of the ears
    eye, ear = pts[:, MEDIAPIPE33.index("left_eye")], pts[:, MEDIAPIPE33.index("left_ear")]
    assert (eye[:, 2] > ear[:, 2]).all()


def test_noise_blanking_and_image_bounds():
    clip = fs.leaning_stand(seconds=2.0)
    cam = fs.virtual_camera(10.0, 1.2, 5.0, 1000.0)
    clean = fs.project_clip(clip.joints, cam, fps=30.0)
    noisy = fs.project_clip(clip.joints, cam, noise_px=2.0, rng=np.random.default_rng(1), blank_first=10)
    assert np.isnan(noisy.keypoints[:10]).all() and (noisy.confidence[:10] == 0).all()
    d = (noisy.keypoints[10:] - clean.keypoints[10:]).ravel()
    assert np.std(d) == pytest.approx(2.0, rel=0.1) and abs(np.mean(d)) < 0.2
    # too close: the feet leave the bottom of a landscape image and are dropped
    near = fs.virtual_camera(0.0, 1.5, 2.0, 1400.0)
    kp = fs.project_clip(clip.joints, near)
    feet = [MEDIAPIPE33.index(n) for n in ("left_heel", "right_heel")]
    assert (kp.confidence[:, feet] == 0).all() and np.isnan(kp.keypoints[:, feet]).all()
    assert (kp.confidence[:, MEDIAPIPE33.index("nose")] == 1).all()
    # the far side of a side view gets the lowered confidence
    side = fs.virtual_camera(0.0, 1.0, 5.0, 1000.0, yaw_deg=90.0)
    kp = fs.project_clip(fs.walking(seconds=1.0).joints, side, far_side_confidence=0.5)
    assert (kp.confidence[:, MEDIAPIPE33.index("right_shoulder")] == 0.5).all()
    assert (kp.confidence[:, MEDIAPIPE33.index("left_shoulder")] == 1.0).all()


def test_view_clip_films_the_clip_from_the_asked_place():
    clip = fs.jump_down_from_box()
    kp, cam = fs.view_clip(clip, pitch_deg=20.0, height_m=1.8, distance_m=6.0, yaw_deg=45.0, size=(1080, 1920),
                           blank_first=5, seed=3)
    np.testing.assert_allclose(fs.camera_angles(cam), (20.0, 0.0, 1.8), atol=1e-9)
    centre = clip.joints[:, 0, [0, 2]].mean(0)
    assert np.hypot(*(cam.position[[0, 2]] - centre)) == pytest.approx(6.0)
    assert kp.num_frames == clip.num_frames and kp.fps == clip.fps
    assert (kp.confidence[:5] == 0).all() and (kp.confidence[5:] == 1).all()  # all in view
