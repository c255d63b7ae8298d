"""The README's main job on the real example video, checked in Blender's own BVH importer."""
import numpy as np
import pytest

from tests.conftest import EXAMPLE_VIDEO

pytest.importorskip("torch")  # the default detector (blazepose-torch) and lifter (network)


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    from mocap.pipelines.capture import capture

    out = tmp_path_factory.mktemp("capture")
    report = capture(EXAMPLE_VIDEO, out, progress=False)
    return report, out


def test_capture_writes_every_output_and_reports(captured):
    report, out = captured
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["keypoints2d.npz", "motion.npz", "motion.bvh", "overlay.mp4", "preview.png", "preview.mp4", "people.json",
         "people.png", "quality.json"])
    assert report.num_frames == 100 and report.fps == pytest.approx(60.0)
    assert report.detection_rate >= 0.95
    text = report.summary()
    assert "detected in" in text and "time per stage" in text and "real time" in text


def test_motion_is_physically_plausible(captured):
    from mocap.bones import bone_length_cv
    from mocap.formats import load_motion

    _, out = captured
    m = load_motion(out / "motion.npz")
    j = m.joints
    names = m.joint_names
    assert np.isfinite(j).all()
    head = j[:, names.index("head"), 1]
    ankles = j[:, [names.index("left_ankle"), names.index("right_ankle")], 1].max(1)
    assert (head - ankles > 0.8).all(), "head must be well above the ankles in every frame"
    assert np.nanmax(bone_length_cv(j, np.array(m.parents))) < 1e-5  # constant bones
    stature = head - j[:, :, 1].min(1)
    assert 1.0 < np.median(stature) < 2.1


@pytest.mark.blender
def test_blender_reads_the_bvh(captured):
    bpy = pytest.importorskip("bpy")
    from mocap.formats import load_motion

    _, out = captured
    m = load_motion(out / "motion.npz")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=str(out / "motion.bvh"), global_scale=0.01, axis_forward="-Z", axis_up="Y",
                            update_scene_fps=True, update_scene_duration=True)
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    assert len(arm.pose.bones) == 21 and arm.animation_data.action is not None
    scene = bpy.context.scene
    start, end = arm.animation_data.action.frame_range
    assert round(end - start) + 1 == m.num_frames
    first = int(round(start))
    names = m.joint_names
    world = arm.matrix_world
    for t in range(0, m.num_frames, 9):
        scene.frame_set(first + t)
        pos = {b.name: world @ b.head for b in arm.pose.bones}
        # Blender is Z-up: our (x, y, z) is Blender's (x, -z, y)
        for name in ("head", "left_ankle", "right_wrist", "pelvis"):
            ours = m.joints[t, names.index(name)]
            np.testing.assert_allclose(tuple(pos[name]), (ours[0], -ours[2], ours[1]), atol=1e-3)
        assert pos["head"].z > max(pos["left_ankle"].z, pos["right_ankle"].z) + 0.8


@pytest.mark.blender
def test_capture_onto_a_character(captured, tmp_path):
    """`capture --target`: the motion arrives on a rigged character file, moving as captured."""
    pytest.importorskip("bpy")
    from mocap.cli import main
    from mocap.export.blender import export_motion, read_animation
    from mocap.formats import load_motion

    _, first = captured
    m = load_motion(first / "motion.npz")
    rig = tmp_path / "character.fbx"  # a rigged character: our armature, posed in its rest pose
    export_motion(rig, joint_names=m.joint_names, parents=m.parents, rest_offsets=m.rest_offsets,
                  local_quats_wxyz=m.local_quats_wxyz[:1] * 0 + [1, 0, 0, 0], root_translation=m.root_translation[:1],
                  fps=m.fps)
    out = tmp_path / "out"
    assert main(["capture", str(EXAMPLE_VIDEO), "-o", str(out), "-q", "--no-overlay", "--no-preview",
                 "--target", str(rig)]) == 0
    motion = load_motion(out / "motion.npz")
    anim = read_animation(out / "character.fbx")
    assert anim.positions.shape[0] == motion.num_frames and anim.fps == pytest.approx(motion.fps, rel=1e-3)
    # same proportions: the character's joints follow the motion's, up to a shift of the start point
    idx = [anim.bone_names.index(n) for n in ("pelvis", "head", "left_ankle", "right_wrist")]
    ours = motion.joints[:, [motion.joint_names.index(n) for n in ("pelvis", "head", "left_ankle", "right_wrist")]]
    theirs = anim.positions[:, idx]
    shift = (theirs[:, 0] - ours[:, 0]).mean(0)
    assert np.linalg.norm(theirs - shift - ours, axis=-1).mean() < 0.01


def test_missing_character_fails_before_work(tmp_path, capsys):
    from mocap.cli import main

    rc = main(["capture", str(EXAMPLE_VIDEO), "-o", str(tmp_path / "o"), "--target", str(tmp_path / "no.fbx")])
    assert rc == 1 and "character file not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
