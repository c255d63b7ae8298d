"""The Blender extension, run in Blender as the ``bpy`` module: built into its zip, installed
and enabled like a user would; the Import operator onto a Mixamo-named rig and onto an
empty scene (joint world positions read back from the keys, within 1 cm of the motion after
the retarget scaling, within 1 mm of the numpy retarget), a 1-minute motion in under 5 s,
bad input as one report line, the capture operator with the pipeline as a subprocess, and
disabling / re-enabling without leftovers."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import stat
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mocap.kinematics.ik import forward_kinematics
from mocap.skeletons import MOTION21, rest_offsets

from tests.conftest import EXAMPLE_VIDEO, REPO
from tests.test_retarget import build_rig, make_rig, source_motion

pytestmark = [pytest.mark.blender,
              pytest.mark.skipif(importlib.util.find_spec("bpy") is None,
                                 reason="needs bpy (pip install 'mocap-lift[blender]')")]
MOD = "bl_ext.user_default.mocap_lift"
# the pipeline's command: this checkout's .venv, else the one beside the Python running the tests
MOCAP_EXE = next((p for p in (REPO / ".venv" / "bin" / "mocap", Path(sys.executable).with_name("mocap")) if p.is_file()),
                 REPO / ".venv" / "bin" / "mocap")


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    """The extension built from blender_addon/, installed into a temporary user folder and enabled."""
    import bpy

    sys.path.insert(0, str(REPO / "blender_addon"))
    try:
        import build
    finally:
        sys.path.pop(0)
    zip_path = build.build(tmp_path_factory.mktemp("dist"))
    old = os.environ.get("BLENDER_USER_RESOURCES")
    os.environ["BLENDER_USER_RESOURCES"] = str(tmp_path_factory.mktemp("blender_user"))
    _refresh_user_repo()
    try:
        result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                          enable_on_install=True)
        assert result == {"FINISHED"} and MOD in bpy.context.preferences.addons
        yield zip_path
    finally:
        if MOD in bpy.context.preferences.addons:
            bpy.ops.preferences.addon_disable(module=MOD)
        if old is None:
            os.environ.pop("BLENDER_USER_RESOURCES", None)
        else:
            os.environ["BLENDER_USER_RESOURCES"] = old
        _refresh_user_repo()


def _refresh_user_repo() -> None:
    """Make Blender (already imported by other tests, maybe) see the user folder of
    BLENDER_USER_RESOURCES: switching the repository off and on re-reads its directory."""
    import bpy

    repo = next(r for r in bpy.context.preferences.extensions.repos if r.module == "user_default")
    repo.enabled = False
    repo.enabled = True


def clear_scene(fps: float = 30.0) -> None:
    """An empty scene without resetting the preferences (which would disable the add-on)."""
    import bpy

    if bpy.context.object is not None and bpy.context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    for collection in (bpy.data.objects, bpy.data.armatures, bpy.data.meshes, bpy.data.actions):
        for item in list(collection):
            collection.remove(item)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = int(fps), 1.0
    scene.cursor.location = (0.0, 0.0, 0.0)


def write_motion(path: Path, t: int, fps: float = 30.0) -> np.ndarray:
    """The synthetic walker as motion.npz (or .bvh by suffix); returns its joints (T, 21, 3)."""
    from mocap.io.bvh import write_bvh
    from mocap.formats import Motion, save_motion

    q, root = source_motion(t=t)
    off = rest_offsets()
    joints = forward_kinematics(q, root, off, MOTION21.parents)
    if path.suffix == ".bvh":
        write_bvh(path, joint_names=MOTION21.joint_names, parents=MOTION21.parents, rest_offsets=off,
                  local_quats_wxyz=q, root_translation=root, fps=fps)
    else:
        save_motion(path, Motion(joints=joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=fps,
                                 local_quats_wxyz=q, root_translation=root, rest_offsets=off))
    return joints


def sample(arm, first: int, count: int):
    from mocap.export.blender import sample_animation

    return sample_animation(arm, frames=range(first, first + count))


def test_zip_is_self_contained(addon):
    with zipfile.ZipFile(addon) as z:
        names = set(z.namelist())
        assert {"blender_manifest.toml", "__init__.py", "importer.py", "capture.py"} <= names
        assert {f"core/{m}.py" for m in ("formats", "bvh", "retarget", "rotations", "ik", "limbs", "skeletons",
                                         "errors", "blender")} <= names
        sources = [z.read(n).decode() for n in names if n.endswith(".py")]
        manifest = z.read("blender_manifest.toml").decode()
    absolute = re.compile(r"^\s*(from mocap[. ]|import mocap)", re.MULTILINE)
    assert not any(absolute.search(s) for s in sources), "an absolute mocap import was left"
    assert 'license = ["SPDX:GPL-3.0-or-later"]' in manifest and 'blender_version_min = "4.2.0"' in manifest
    assert not any(n.endswith(".pyc") for n in names)


def test_import_onto_mixamo_rig(addon, tmp_path):
    import bpy

    from mocap.export.fidelity import retarget_fidelity
    from mocap.export.retarget import auto_bone_map, motion_to_source, retarget

    clear_scene()
    path = tmp_path / "walk.npz"
    joints = write_motion(path, t=60)
    rig = make_rig("mixamo", size=1.1, arm=1.05, leg=0.95)
    location = np.array([1.5, -0.5, 0.0])  # Blender axes: the character stands away from the origin
    arm = build_rig(rig, location=location)
    assert bpy.ops.mocap.import_motion(filepath=str(path), frame_start=10) == {"FINISHED"}
    action = arm.animation_data.action
    assert action is not None and action.name.startswith("walk")
    assert bpy.context.scene.frame_start == 10 and bpy.context.scene.frame_end == 69
    # the 18 body joints and the rig's two finger bones (HandIndex1: each index finger's knuckle)
    assert len(arm.mocap_bone_map) == 20 and all(item.bone for item in arm.mocap_bone_map)

    anim = sample(arm, 10, 60)
    got = anim.positions[:, [anim.bone_names.index(n) for n in rig.bone_names]]
    # The numpy retarget of the same motion onto the rig where it stands.
    world_rig = type(rig)(rig.bone_names, rig.parents, rig.rest_positions + np.array([1.5, 0.0, 0.5]))
    q, root = source_motion(t=60)
    source, gs, ps = motion_to_source(MOTION21.joint_names, MOTION21.parents, rest_offsets(), q, root)
    smap, tmap = auto_bone_map(source.bone_names), auto_bone_map(rig.bone_names)
    res = retarget(source, smap, gs, ps, world_rig, tmap)
    pelvis = rig.index(tmap["pelvis"])
    offset = world_rig.rest_positions[pelvis] - res.positions[0, pelvis]
    offset[1] = 0.0  # the motion starts where the character stands
    err_numpy = np.linalg.norm(got - (res.positions + offset), axis=-1)
    print(f"max distance to the numpy retarget: {err_numpy.max() * 1000:.4f} mm")
    assert err_numpy.max() < 1e-3, f"{err_numpy.max() * 1000:.3f} mm from the numpy retarget"
    # Against the motion itself: the root after the retarget scaling, and every limb's direction.
    mine = (got[:, pelvis] - offset) / res.scale
    assert np.linalg.norm(mine - joints[:, MOTION21.index("pelvis")], axis=-1).max() < 1e-5
    fid = retarget_fidelity(source, smap, gs, ps, rig, tmap, got)
    assert len(fid.limbs) == 15 and fid.max_deg < 0.01, fid.line()
    # The panel shows the same line (hands not pinned by default: the arms are the capture's).
    settings = bpy.context.scene.mocap_lift
    assert not settings.pin_hands and settings.foot_lock
    assert settings.fidelity.startswith("fidelity: limbs within 0.0 deg of the capture on average, 0.0 deg at worst")
    # Keys: one per frame, linear, on every bone.
    from mocap.export.blender import _action_fcurves

    fcurves = list(_action_fcurves(action)) if hasattr(action, "layers") else list(action.fcurves)
    assert len(fcurves) == 4 * len(rig.bone_names) + 3
    assert all(len(fc.keyframe_points) == 60 and fc.keyframe_points[0].interpolation == "LINEAR" for fc in fcurves)


def test_pin_hands_option(addon, tmp_path):
    """Pin Hands (off by default) keeps each wrist where the capture's is relative to the
    shoulder, scaled by arm length: the arms move only as their proportions require, and
    the fidelity line in the panel says by how much."""
    import bpy

    from tests.test_retarget_bench import balance_motion, write_capture

    clear_scene()
    path = tmp_path / "balance.npz"
    write_capture(path)  # bent elbows (the walker's arms are straight: nothing to pin)
    q, root, off = balance_motion()
    joints = forward_kinematics(q, root, off, MOTION21.parents)
    rig = make_rig("mixamo", size=1.1, arm=1.05, leg=0.95)
    rest = rig.rest_positions.copy()
    for s in ("Left", "Right"):  # elbows 6 cm further out: upper arm / forearm 0.38 / 0.23 (ours 0.28 / 0.25)
        el, wr = rig.index(f"mixamorig:{s}ForeArm"), rig.index(f"mixamorig:{s}Hand")
        rest[el] += 0.06 * (rest[wr] - rest[el]) / np.linalg.norm(rest[wr] - rest[el])
    rig = type(rig)(rig.bone_names, rig.parents, rest)
    arm = build_rig(rig)
    lines = []
    for pin in (False, True):
        bpy.context.scene.mocap_lift.fidelity = ""
        assert bpy.ops.mocap.import_motion(filepath=str(path), pin_hands=pin) == {"FINISHED"}
        lines.append(bpy.context.scene.mocap_lift.fidelity)
    anim = sample(arm, 1, len(joints))
    got = anim.positions[:, [anim.bone_names.index(n) for n in rig.bone_names]]
    for s in ("Left", "Right"):
        sh, el, wr = (rig.index(f"mixamorig:{s}{b}") for b in ("Arm", "ForeArm", "Hand"))
        ratio = sum(np.linalg.norm(rest[b] - rest[a]) for a, b in ((sh, el), (el, wr))) / 0.53
        side = s.lower()
        want = (joints[:, MOTION21.index(f"{side}_wrist")] - joints[:, MOTION21.index(f"{side}_shoulder")]) * ratio
        assert np.linalg.norm(got[:, wr] - got[:, sh] - want, axis=-1).max() < 1e-3
    (free_mean, free_worst), (mean, worst) = ([float(v) for v in re.findall(r"([\d.]+) deg", line)] for line in lines)
    assert free_worst < 1.0 and free_mean < 0.1 < mean < worst < 15.0, lines  # measured: 0.6 (a leg), 1.5 and 7.9
    assert "arm" in lines[1] and "planted feet slide 0.0 cm" in lines[1], lines  # the worst limb is an arm's


class _Layout:
    """Records what a panel draws (Blender's UILayout cannot be made outside a redraw)."""

    def __init__(self):
        self.props, self.labels, self.operators = [], [], []

    def column(self, **_):
        return self

    row = column

    def prop(self, data, name, **_):
        self.props.append(name)

    def label(self, *, text="", **_):
        self.labels.append(text)

    def operator(self, idname, **_):
        self.operators.append(idname)
        return type("Op", (), {})()


def test_import_panel_shows_pinning_and_fidelity(addon):
    """The Import panel offers Foot Locking and Pin Hands (off) and, after an import onto a
    rig, the fidelity line in two rows; its Import button carries the panel's options."""
    import bpy

    clear_scene()
    settings = bpy.context.scene.mocap_lift
    settings.fidelity = ""
    panel = bpy.types.MOCAP_PT_import
    layout = _Layout()
    panel.draw(type("P", (), {"layout": layout})(), bpy.context)
    assert {"foot_lock", "pin_hands"} <= set(layout.props)
    assert layout.operators == ["mocap.import_motion", "mocap.import_people"]
    assert not any("fidelity" in t or "deg" in t for t in layout.labels)
    settings.fidelity = ("fidelity: limbs within 0.2 deg of the capture on average, 3.7 deg at worst (left thigh); "
                         "planted feet slide 0.0 cm")
    layout = _Layout()
    panel.draw(type("P", (), {"layout": layout})(), bpy.context)
    assert layout.labels[-2:] == ["limbs within 0.2 deg of the capture on average, 3.7 deg at worst (left thigh)",
                                  "planted feet slide 0.0 cm"]
    settings.fidelity = ""


def test_sidebar_top_to_bottom_and_push_to_nla(addon, tmp_path):
    """The sidebar reads as the workflow (capture, import onto the rig, its bone map and NLA
    clean-up, live); Push Down to NLA moves the imported take into one strip on its frames
    and the character still does the same thing on every frame (within 1e-6 m)."""
    import bpy

    order = {name: getattr(bpy.types, name).bl_order for name in ("MOCAP_PT_capture", "MOCAP_PT_import", "MOCAP_PT_live")}
    assert order["MOCAP_PT_capture"] < order["MOCAP_PT_import"] < order["MOCAP_PT_live"]
    assert bpy.types.MOCAP_PT_nla.bl_parent_id == "MOCAP_PT_import"

    clear_scene()
    path = tmp_path / "walk.npz"
    write_motion(path, t=40)
    arm = build_rig(make_rig("mixamo", size=1.1, arm=1.05, leg=0.95))
    assert bpy.ops.mocap.push_to_nla.poll() is False  # nothing to push yet
    assert bpy.ops.mocap.import_motion(filepath=str(path), frame_start=5) == {"FINISHED"}
    before = sample(arm, 5, 40).positions
    action = arm.animation_data.action
    layout = _Layout()
    bpy.types.MOCAP_PT_nla.draw(type("P", (), {"layout": layout})(), bpy.context)
    assert layout.labels == [f"{action.name}: frames 5-44"] and layout.operators == ["mocap.push_to_nla"]

    assert bpy.ops.mocap.push_to_nla() == {"FINISHED"}
    assert arm.animation_data.action is None
    (track,) = arm.animation_data.nla_tracks
    (strip,) = track.strips
    assert strip.action == action and (strip.frame_start, strip.frame_end) == (5.0, 44.0)
    after = sample(arm, 5, 40).positions
    assert np.abs(after - before).max() < 1e-6 and np.ptp(after[:, 0], axis=0).max() > 0.3  # the walk, not a rest pose
    assert bpy.ops.mocap.push_to_nla.poll() is False


@pytest.mark.parametrize("suffix", [".npz", ".bvh"])
def test_import_into_empty_scene(addon, tmp_path, suffix):
    import bpy

    clear_scene(fps=24)
    path = tmp_path / f"take{suffix}"
    joints = write_motion(path, t=40, fps=60.0)
    assert bpy.ops.mocap.import_motion(filepath=str(path)) == {"FINISHED"}
    arm = bpy.context.active_object
    assert arm.type == "ARMATURE" and arm.name.startswith("take")
    assert bpy.context.scene.render.fps == 60
    anim = sample(arm, 1, 40)
    got = anim.positions[:, [anim.bone_names.index(n) for n in MOTION21.joint_names]]
    start = joints[0, 0] * np.array([1.0, 0.0, 1.0])  # the first frame's pelvis over the 3D cursor
    err = np.linalg.norm(got - (joints - start), axis=-1)
    print(f"{suffix}: max error {err.max() * 1000:.4f} mm")
    assert err.max() < 1e-3
    assert np.ptp(got[:, MOTION21.index("left_wrist")], axis=0).max() > 0.1, "the armature does not move"
    # Undoable in the UI (an undo step is pushed), NLA-friendly (its own action).
    assert "UNDO" in sys.modules[MOD].MOCAP_OT_import_motion.bl_options
    assert arm.animation_data.action.name == "take"


def test_import_people_keeps_the_capture_s_one_world(addon, tmp_path):
    """Import People on a --all-people folder: each person on a new armature, the captured
    person's first pelvis over the cursor, the other 1.5 m beside them, and keyed from the frame
    they appear in (10 frames later)."""
    import bpy
    from mocap.formats import load_motion, save_motion

    clear_scene(fps=30)
    (tmp_path / "person_0").mkdir()
    (tmp_path / "person_1").mkdir()
    joints = write_motion(tmp_path / "person_0" / "motion.npz", t=40)
    (tmp_path / "motion.npz").write_bytes((tmp_path / "person_0" / "motion.npz").read_bytes())
    m = load_motion(tmp_path / "person_0" / "motion.npz")
    shift = np.array([1.5, 0.0, -0.5])
    other = dataclasses.replace(m, joints=m.joints[10:] + shift, local_quats_wxyz=m.local_quats_wxyz[10:],
                                root_translation=m.root_translation[10:] + shift, start_frame=10, valid=None)
    save_motion(tmp_path / "person_1" / "motion.npz", other)
    assert bpy.ops.mocap.import_people(directory=str(tmp_path)) == {"FINISHED"}
    arms = {o.name.split(".")[0]: o for o in bpy.data.objects if o.type == "ARMATURE"}
    assert sorted(arms) == ["person_0_avatar", "person_1_avatar"]
    start = joints[0, 0] * np.array([1.0, 0.0, 1.0])  # the captured person's first pelvis over the cursor
    for name, first, truth in (("person_0_avatar", 1, joints), ("person_1_avatar", 11, joints[10:] + shift)):
        anim = sample(arms[name], first, len(truth))
        got = anim.positions[:, [anim.bone_names.index(n) for n in MOTION21.joint_names]]
        assert np.abs(got - (truth - start)).max() < 1e-3, name
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (1, 40)
    # a folder without people: one line in plain words
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError, match="no person_<id>/motion.npz"):
        bpy.ops.mocap.import_people(directory=str(empty))


def test_one_minute_import(addon, tmp_path):
    """A minute at 60 fps lands whole on the rig (its time: benchmarks/bench_timings.py)."""
    import bpy

    clear_scene()
    fps, t = 60.0, 3600  # one minute at the example video's rate
    path = tmp_path / "minute.npz"
    write_motion(path, t=t, fps=fps)
    arm = build_rig(make_rig("mixamo"))
    assert bpy.ops.mocap.import_motion(filepath=str(path)) == {"FINISHED"}
    assert bpy.context.scene.frame_end == t
    assert tuple(arm.animation_data.action.frame_range) == (1.0, float(t))


def _expect_report(call, *words):
    """The operator fails with one report line in plain words (RuntimeError in bpy), no traceback."""
    with pytest.raises(RuntimeError) as info:
        call()
    message = str(info.value)
    assert "Traceback" not in message and "File \"" not in message, message
    for w in words:
        assert w in message, (w, message)
    return message


def test_bad_input_is_reported(addon, tmp_path):
    import bpy

    clear_scene()
    wrong = tmp_path / "notes.txt"
    wrong.write_text("hello")
    _expect_report(lambda: bpy.ops.mocap.import_motion(filepath=str(wrong)), "notes.txt", "motion.npz or .bvh")
    empty = tmp_path / "empty.npz"
    np.savez(empty, joints=np.zeros((0, 21, 3), np.float32), joint_names=np.array(MOTION21.joint_names),
             parents=np.array(MOTION21.parents), fps=np.array(30.0))
    _expect_report(lambda: bpy.ops.mocap.import_motion(filepath=str(empty)), "no frames")
    empty_bvh = tmp_path / "empty.bvh"
    write_motion(empty_bvh, t=3)
    text = empty_bvh.read_text().splitlines()
    cut = next(i for i, line in enumerate(text) if line.startswith("Frames:"))
    empty_bvh.write_text("\n".join(text[:cut] + ["Frames: 0", text[cut + 1]]) + "\n")
    _expect_report(lambda: bpy.ops.mocap.import_motion(filepath=str(empty_bvh)), "no frames")
    _expect_report(lambda: bpy.ops.mocap.import_motion(filepath=str(tmp_path / "gone.npz")), "not found")
    assert len(bpy.data.objects) == 0 and len(bpy.data.actions) == 0, "a failed import left something behind"
    # A pipeline that is not there, a service that is down.
    prefs = bpy.context.preferences.addons[MOD].preferences
    prefs.mocap_executable = str(tmp_path / "no" / "mocap")
    _expect_report(lambda: bpy.ops.mocap.capture_video(filepath=str(EXAMPLE_VIDEO)), "does not exist", "Preferences")
    _expect_report(lambda: bpy.ops.mocap.test_connection(), "does not exist")
    if MOCAP_EXE.is_file():
        prefs.mocap_executable = str(MOCAP_EXE)
        prefs.service_url = "http://127.0.0.1:9"  # the discard port: nothing listens
        _expect_report(lambda: bpy.ops.mocap.test_connection(), "not reachable")
        prefs.service_url = ""
        assert bpy.ops.mocap.test_connection() == {"FINISHED"}
    _expect_report(lambda: bpy.ops.mocap.capture_video(filepath=str(wrong)), "not a video")
    prefs.mocap_executable = ""


def test_mapping_editor_fixes_unmapped_bones(addon, tmp_path):
    import bpy

    clear_scene()
    path = tmp_path / "m.npz"
    write_motion(path, t=10)
    rig = make_rig("mixamo")
    odd = type(rig)(tuple(n.replace("ForeArm", "Elbw") for n in rig.bone_names), rig.parents, rig.rest_positions)
    arm = build_rig(odd)
    message = _expect_report(lambda: bpy.ops.mocap.import_motion(filepath=str(path)), "left_elbow", "Bone mapping")
    assert "right_elbow" in message and arm.animation_data is None
    assert bpy.ops.mocap.detect_bone_map() == {"FINISHED"}
    unmapped = [item.joint for item in arm.mocap_bone_map if not item.bone]
    assert unmapped == ["left_elbow", "right_elbow"]
    for item in arm.mocap_bone_map:
        if item.joint in unmapped:
            item.bone = "mixamorig:" + ("Left" if item.joint.startswith("left") else "Right") + "Elbw"
    assert bpy.ops.mocap.import_motion(filepath=str(path)) == {"FINISHED"}
    assert arm.animation_data.action is not None


def test_gltf_import_plays_at_the_recorded_frame_rate(addon, tmp_path):
    """With the add-on enabled, Blender's own glTF import (File > Import > glTF, default
    settings) of a GLB written by mocap at 60 fps sets the scene to 60 fps, keys on whole
    frames 1..T (without the add-on: 24 fps, keys at 0.4, 0.8, ...)."""
    import subprocess

    import bpy

    from mocap.export.blender import _action_fcurves

    path, t = tmp_path / "take.glb", 40
    script = ("import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path\n"
              "from mocap.formats import load_motion; from mocap.export.blender import export_motion\n"
              "m = load_motion(sys.argv[1]); export_motion(Path(sys.argv[1]).with_suffix('.glb'), "
              "joint_names=m.joint_names, parents=m.parents, rest_offsets=m.rest_offsets, "
              "local_quats_wxyz=m.local_quats_wxyz, root_translation=m.root_translation, fps=m.fps)")
    write_motion(path.with_suffix(".npz"), t=t, fps=60.0)
    subprocess.run([sys.executable, "-c", script, str(path.with_suffix(".npz")), str(REPO)], check=True,
                   capture_output=True, timeout=300)
    clear_scene(fps=24)
    assert bpy.ops.import_scene.gltf(filepath=str(path)) == {"FINISHED"}
    scene = bpy.context.scene
    assert (scene.render.fps, scene.render.fps_base) == (60, 1.0)
    assert (scene.frame_start, scene.frame_end) == (1, t)
    arm = next(o for o in scene.objects if o.type == "ARMATURE")
    keys = np.array(sorted({kp.co[0] for fc in _action_fcurves(arm.animation_data.action) for kp in fc.keyframe_points}))
    np.testing.assert_allclose(keys, np.arange(1, t + 1), atol=1e-3)


def test_capture_job_progress_and_errors(addon, tmp_path):
    """A stand-in pipeline: progress bars parsed from its stderr, its one-line error reported."""
    capture = importlib.import_module(f"{MOD}.capture")
    fake = tmp_path / "mocap"
    fake.write_text("#!/bin/sh\n"
                    "printf 'I0000 00:00 noise\\n' >&2\n"
                    "for i in 10 50; do printf '\\rclip.mp4:  %s%%|##   | %s/100 [00:01<00:01]' $i $i >&2; sleep 0.3; done\n"
                    "printf '\\nmocap: error: no person found in any frame of clip.mp4\\n' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    job = capture.CaptureJob(str(fake), [video], tmp_path / "out")
    job.start()
    seen = []
    while job.poll() == "running":
        seen.append(job.progress)
        time.sleep(0.05)
    assert job.state == "failed" and job.error == "no person found in any frame of clip.mp4"
    assert 0.0 < max(seen) <= 0.9 * 0.5 + 1e-9
    # Cancel: the process is gone.
    sleeper = tmp_path / "slow"
    sleeper.write_text("#!/bin/sh\nsleep 30\n")
    sleeper.chmod(sleeper.stat().st_mode | stat.S_IXUSR)
    job = capture.CaptureJob(str(sleeper), [video], tmp_path / "out2")
    job.start()
    job.cancel()
    assert job.poll() == "cancelled" and job._proc.poll() is not None


def test_capture_job_multiview_arguments(addon, tmp_path):
    """Several videos need a calibration; 'auto' needs the body height, which reaches the command line."""
    capture = importlib.import_module(f"{MOD}.capture")
    videos = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    for v in videos:
        v.write_bytes(b"")
    with pytest.raises(capture.MocapError, match="calibration"):
        capture.CaptureJob("mocap", videos, tmp_path / "o")
    with pytest.raises(capture.MocapError, match="body height"):
        capture.CaptureJob("mocap", videos, tmp_path / "o", calibration="auto")
    job = capture.CaptureJob("mocap", videos, tmp_path / "o", calibration="auto", body_height_m=1.72)
    i = job.args.index("--body-height")
    assert job.args[i + 1] == "1.720" and job.args[job.args.index("--calibration") + 1] == "auto"


def test_capture_body_height_and_errors_in_plain_words(addon, tmp_path):
    """Body Height is in the capture panel whatever the calibration; for one video it reaches the
    pipeline as --height (the body's size), for several as --body-height; the pipeline's error
    comes back in the report area naming the panel's field, not the flag."""
    import bpy

    capture = importlib.import_module(f"{MOD}.capture")
    settings = bpy.context.scene.mocap_lift
    settings.calibration = ""
    layout = _Layout()
    bpy.types.MOCAP_PT_capture.draw(type("P", (), {"layout": layout})(), bpy.context)
    assert "body_height" in layout.props and layout.operators == ["mocap.capture_video"]

    video = tmp_path / "a.mp4"
    video.write_bytes(b"")
    job = capture.CaptureJob("mocap", [video], tmp_path / "o", body_height_m=1.72)
    assert job.args[job.args.index("--height") + 1] == "1.720" and "--body-height" not in job.args
    assert "--height" not in capture.CaptureJob("mocap", [video], tmp_path / "o").args
    assert capture.plain_words("calibration 'auto' needs the person's height for the scale: pass --body-height "
                               "METRES") == "calibration 'auto' needs the person's height for the scale: set Body Height"
    assert capture.plain_words("--start 2 s is beyond the end") == "--start 2 s is beyond the end"  # not in the panel

    fake = tmp_path / "mocap"  # the pipeline refusing the height it was given, as mocap capture does
    fake.write_text("#!/bin/sh\n"
                    "while [ $# -gt 0 ]; do [ \"$1\" = --height ] && h=$2; shift; done\n"
                    "echo \"mocap: error: height_m (--height) must be a number from 0.5 to 2.6 metres, got $h\" >&2\n"
                    "exit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    prefs = bpy.context.preferences.addons[MOD].preferences
    prefs.mocap_executable = str(fake)
    try:
        message = _expect_report(lambda: bpy.ops.mocap.capture_video(filepath=str(EXAMPLE_VIDEO),
                                                                     output_dir=str(tmp_path / "out"), body_height=3.1),
                                 "Capture failed: Body Height must be a number from 0.5 to 2.6 metres, got 3.100")
        assert "--" not in message and "height_m" not in message
    finally:
        prefs.mocap_executable = ""


@pytest.mark.slow
@pytest.mark.skipif(not MOCAP_EXE.is_file() or importlib.util.find_spec("mediapipe") is None,
                    reason="needs the pipeline installed in .venv (bash scripts/setup.sh)")
def test_capture_operator_runs_the_pipeline(addon, tmp_path):
    import bpy

    from mocap.formats import load_motion

    clear_scene()
    prefs = bpy.context.preferences.addons[MOD].preferences
    prefs.mocap_executable = str(MOCAP_EXE)
    out = tmp_path / "capture"
    start = time.perf_counter()
    assert bpy.ops.mocap.capture_video(filepath=str(EXAMPLE_VIDEO), output_dir=str(out)) == {"FINISHED"}
    print(f"capture + import: {time.perf_counter() - start:.1f} s")
    state = bpy.context.window_manager.mocap_capture
    assert not state.running and state.progress == 1.0 and state.status.startswith("done")
    motion = load_motion(out / "motion.npz")
    arm = bpy.context.active_object
    assert arm.type == "ARMATURE"
    anim = sample(arm, 1, motion.num_frames)
    got = anim.positions[:, [anim.bone_names.index(n) for n in motion.joint_names]]
    want = forward_kinematics(motion.local_quats_wxyz, motion.root_translation, motion.rest_offsets, motion.parents)
    want -= want[0, 0] * np.array([1.0, 0.0, 1.0])
    assert np.linalg.norm(got - want, axis=-1).max() < 0.01
    wrist = got[:, motion.joint_names.index("left_wrist")]
    assert np.linalg.norm(np.diff(wrist, axis=0), axis=-1).sum() > 0.1, "the armature does not move"
    prefs.mocap_executable = ""


def test_disable_leaves_nothing_and_reenable_works(addon, tmp_path):
    import bpy

    bpy.ops.preferences.addon_disable(module=MOD)
    assert MOD not in bpy.context.preferences.addons
    for cls in ("MOCAP_OT_import_motion", "MOCAP_OT_capture_video", "MOCAP_PT_import", "MOCAP_UL_bone_map",
                "MOCAP_Settings", "MOCAP_AddonPreferences"):
        assert not hasattr(bpy.types, cls), cls
    for owner, prop in ((bpy.types.Scene, "mocap_lift"), (bpy.types.WindowManager, "mocap_capture"),
                        (bpy.types.Object, "mocap_bone_map")):
        assert not hasattr(owner, prop), prop
    draw_funcs = getattr(bpy.types.TOPBAR_MT_file_import.draw, "_draw_funcs", [])
    assert not any(getattr(f, "__module__", "").startswith(MOD) for f in draw_funcs)
    bpy.ops.preferences.addon_enable(module=MOD)
    clear_scene()
    path = tmp_path / "again.npz"
    write_motion(path, t=5)
    assert bpy.ops.mocap.import_motion(filepath=str(path)) == {"FINISHED"}
