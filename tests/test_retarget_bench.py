"""The retarget test bench (issue 22): rigs built with bpy the way four tools make them
(Mixamo FBX as Blender imports it: a Y-up armature in centimetres, object turned 90 degrees
about X and scaled 0.01; Rigify; the Unreal Mannequin; VRM humanoid), each in a T-pose and
an A-pose, with proportions 20 % off ours, random bone rolls and a skinned mesh. A capture
(24 synthetic frames at 60 fps: a wide stance, then balancing on the left foot as in the
example video; capturing the video itself takes minutes) is retargeted onto each with
``mocap retarget``'s code, written as FBX, GLB, BVH and .blend, read back with Blender's own
importers, and its limbs compared with the capture's (:mod:`mocap.export.fidelity`):
mean at most 2 degrees, 95th percentile at most 6, planted feet sliding under 1 cm, frame
count and rate kept. ``benchmarks/bench_retarget.py`` prints the same figures.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

HAS_BPY = importlib.util.find_spec("bpy") is not None
pytestmark = [pytest.mark.blender, pytest.mark.skipif(not HAS_BPY, reason="needs bpy (pip install 'mocap-lift[blender]')")]

FPS = 60.0
FRAMES = 24
OUTPUTS = (".fbx", ".glb", ".bvh", ".blend")

# --- the rigs -----------------------------------------------------------------------------

#: Generic bone key -> parent key. ``{s}`` is the side; keys a style does not name are left out.
_BONES = {
    "root": None, "hips": "root", "spine0": "hips", "spine1": "spine0", "spine2": "spine1", "neck": "spine2",
    "neck1": "neck", "head": "neck1", "head_end": "head",
    **{k.format(s=s): p.format(s=s) if p else None for s in "lr" for k, p in (
        ("clavicle_{s}", "spine2"), ("upper_arm_{s}", "clavicle_{s}"), ("upper_twist_{s}", "upper_arm_{s}"),
        ("forearm_{s}", "upper_arm_{s}"), ("fore_twist_{s}", "forearm_{s}"), ("hand_{s}", "forearm_{s}"),
        ("middle_{s}", "hand_{s}"), ("thumb_{s}", "hand_{s}"), ("thigh_{s}", "hips"), ("thigh_twist_{s}", "thigh_{s}"),
        ("shin_{s}", "thigh_{s}"), ("foot_{s}", "shin_{s}"), ("toe_{s}", "foot_{s}"), ("toe_end_{s}", "toe_{s}"))}}


def _names(trunk: str, limbs: str, sides: tuple[str, str]) -> dict[str, str]:
    """Generic key -> bone name: ``trunk`` names root .. head_end, ``limbs`` clavicle .. toe_end
    with ``{S}`` for the side; ``-``: the style has no such bone."""
    keys = ["root", "hips", "spine0", "spine1", "spine2", "neck", "neck1", "head", "head_end"]
    out = dict(zip(keys, trunk.split()))
    limb_keys = ["clavicle", "upper_arm", "upper_twist", "forearm", "fore_twist", "hand", "middle", "thumb", "thigh",
                 "thigh_twist", "shin", "foot", "toe", "toe_end"]
    for s, spelled in zip("lr", sides):
        out.update({f"{k}_{s}": n.replace("{S}", spelled) for k, n in zip(limb_keys, limbs.split())})
    return {k: v for k, v in out.items() if v != "-"}


STYLES = {
    "mixamo": _names("- mixamorig:Hips mixamorig:Spine mixamorig:Spine1 mixamorig:Spine2 mixamorig:Neck - "
                     "mixamorig:Head mixamorig:HeadTop_End",
                     "mixamorig:{S}Shoulder mixamorig:{S}Arm - mixamorig:{S}ForeArm - mixamorig:{S}Hand "
                     "mixamorig:{S}HandMiddle1 mixamorig:{S}HandThumb1 mixamorig:{S}UpLeg - mixamorig:{S}Leg "
                     "mixamorig:{S}Foot mixamorig:{S}ToeBase mixamorig:{S}Toe_End", ("Left", "Right")),
    "rigify": _names("root DEF-spine DEF-spine.001 DEF-spine.002 DEF-spine.003 DEF-spine.004 DEF-spine.005 "
                     "DEF-spine.006 -",
                     "DEF-shoulder.{S} DEF-upper_arm.{S} DEF-upper_arm.{S}.001 DEF-forearm.{S} DEF-forearm.{S}.001 "
                     "DEF-hand.{S} DEF-f_middle.01.{S} DEF-thumb.01.{S} DEF-thigh.{S} DEF-thigh.{S}.001 "
                     "DEF-shin.{S} DEF-foot.{S} DEF-toe.{S} -", ("L", "R")),
    "unreal": _names("root pelvis spine_01 spine_02 spine_03 neck_01 - head -",
                     "clavicle_{S} upperarm_{S} upperarm_twist_01_{S} lowerarm_{S} lowerarm_twist_01_{S} hand_{S} "
                     "middle_01_{S} thumb_01_{S} thigh_{S} thigh_twist_01_{S} calf_{S} foot_{S} ball_{S} -",
                     ("l", "r")),
    "vrm": _names("- hips spine chest upperChest neck - head -",
                  "{S}Shoulder {S}UpperArm - {S}LowerArm - {S}Hand {S}MiddleProximal {S}ThumbProximal "
                  "{S}UpperLeg - {S}LowerLeg {S}Foot {S}Toes -", ("left", "right")),
}
#: Per style: (size, torso, arm, leg) factors on a body of our proportions (20 % off ours).
PROPORTIONS = {"mixamo": (1.0, 1.0, 1.2, 0.8), "rigify": (1.1, 0.8, 0.8, 1.2), "unreal": (0.9, 1.2, 1.0, 0.8),
               "vrm": (0.85, 1.0, 0.8, 1.2)}
#: Per style: how the armature object holds the rig: (object rotation about X, degrees; object
#: scale; the armature's own axes "y_up" or "z_up"). Mixamo: as Blender imports a Mixamo FBX.
ARMATURE_SPACE = {"mixamo": (90.0, 0.01, "y_up"), "rigify": (0.0, 1.0, "z_up"), "unreal": (0.0, 0.01, "z_up"),
                  "vrm": (0.0, 1.3, "z_up")}
RIGS = [(style, pose) for style in STYLES for pose in ("T", "A")]


def body(style: str, pose: str) -> tuple[tuple[str, ...], tuple[int, ...], np.ndarray]:
    """(bone names, parents, heads (B, 3) metres, our axes: +Y up, facing +Z, left = +X) of a
    humanoid named the ``style`` way in a T-pose (``pose`` "T") or an A-pose (arms 45 degrees down)."""
    size, torso, arm, leg = PROPORTIONS[style]
    names = STYLES[style]
    hip_y = 0.14 + 0.87 * leg
    p = {"root": np.zeros(3), "hips": np.array([0.0, hip_y, 0.0])}
    p["spine0"] = p["hips"] + [0, 0.10 * torso, -0.01]
    p["spine1"] = p["spine0"] + [0, 0.12 * torso, 0.0]
    p["spine2"] = p["spine1"] + [0, 0.13 * torso, 0.01]
    p["neck"] = p["spine2"] + [0, 0.16 * torso, 0.0]
    p["neck1"] = p["neck"] + [0, 0.05 * torso, 0.01]
    p["head"] = p["neck"] + [0, 0.10 * torso, 0.02]
    p["head_end"] = p["head"] + [0, 0.2, 0.0]
    down = np.radians(45.0 if pose == "A" else 0.0)
    for s, sign in (("l", 1.0), ("r", -1.0)):
        x = np.array([sign, 1.0, 1.0])
        ad = np.array([np.cos(down), -np.sin(down), 0.0]) * x
        p[f"clavicle_{s}"] = p["spine2"] + np.array([0.03, 0.12 * torso, 0.02]) * x
        p[f"upper_arm_{s}"] = p["spine2"] + np.array([0.18, 0.13 * torso, 0.0]) * x
        p[f"upper_twist_{s}"] = p[f"upper_arm_{s}"] + 0.14 * arm * ad
        p[f"forearm_{s}"] = p[f"upper_arm_{s}"] + 0.28 * arm * ad + [0, 0, -0.01]
        p[f"fore_twist_{s}"] = p[f"forearm_{s}"] + 0.13 * arm * ad
        p[f"hand_{s}"] = p[f"forearm_{s}"] + 0.26 * arm * ad + [0, 0, 0.01]
        p[f"middle_{s}"] = p[f"hand_{s}"] + 0.09 * arm * ad
        p[f"thumb_{s}"] = p[f"hand_{s}"] + 0.02 * ad + [0, -0.01, 0.04]
        p[f"thigh_{s}"] = p["hips"] + np.array([0.09, -0.06, 0.0]) * x
        p[f"thigh_twist_{s}"] = p[f"thigh_{s}"] + [0, -0.22 * leg, 0.0]
        p[f"shin_{s}"] = p[f"thigh_{s}"] + [0, -0.44 * leg, 0.01]
        p[f"foot_{s}"] = p[f"shin_{s}"] + [0, -0.43 * leg, -0.02]
        p[f"toe_{s}"] = p[f"foot_{s}"] + [0, -0.06, 0.13]
        p[f"toe_end_{s}"] = p[f"toe_{s}"] + [0, 0, 0.06]
    keys = [k for k in _BONES if k in names]
    parent_key = {}
    for k in keys:
        q = _BONES[k]
        while q is not None and q not in names:  # a bone the style lacks: its parent's
            q = _BONES[q]
        parent_key[k] = q
    parents = tuple(keys.index(parent_key[k]) if parent_key[k] else -1 for k in keys)
    return tuple(names[k] for k in keys), parents, np.array([p[k] for k in keys]) * size


def build_rig(style: str, pose: str, *, seed: int = 0, skin: bool = True):
    """The rig of :func:`body` as a Blender armature, held the ``style``'s way
    (:data:`ARMATURE_SPACE`), random bone rolls (0 for VRM, as its importer makes them),
    with ``skin`` a mesh skinned to it (a box per bone): a character."""
    from mocap.export.blender import _add_bone_boxes
    from mocap.export.retarget import Rig
    from tests.test_retarget import build_rig as build_in_blender

    names, parents, heads = body(style, pose)
    turn, scale, axes = ARMATURE_SPACE[style]
    obj = build_in_blender(Rig(names, parents, heads), name=style, location=(0.4, -0.3, 0.0), seed=seed,
                           turn_x_deg=turn, scale=scale, y_up=axes == "y_up", random_roll=style != "vrm")
    if skin:
        _add_bone_boxes(obj, names)
    return obj


# --- the capture ----------------------------------------------------------------------------

def balance_motion(t: int = FRAMES, fps: float = FPS):
    """A person going from standing on both feet (a wide stance, the first third) to
    balancing on the left foot (the example video's take): the right leg swings up and
    bends, the pelvis tilts, the arms rise and bend, the trunk leans and the head turns
    throughout; the left ankle stays put. Returns (local_quats_wxyz (T, 21, 4),
    root_translation (T, 3), rest_offsets (21, 3)) of MOTION21, metres, +Y up."""
    from mocap.kinematics.ik import forward_kinematics
    from mocap.rotations import axis_angle_to_quat_wxyz
    from mocap.skeletons import MOTION21, rest_offsets

    off = rest_offsets()
    u = np.sin(np.linspace(0.0, np.pi, t))[:, None]  # 0 -> 1 -> 0: the upper body
    x = np.clip(np.arange(t) / t * 3.0 - 1.0, 0.0, 1.0)[:, None]
    lift = x * x * (3.0 - 2.0 * x)  # 0 for the first third, then up to 1: the right leg
    stance = {"left_hip": [-0.1, 0.0, 0.12], "right_hip": [-0.1, 0.0, -0.12], "left_knee": [0.2, 0.0, 0.0],
              "right_knee": [0.2, 0.0, 0.0], "left_ankle": [-0.1, 0.0, 0.0], "right_ankle": [-0.1, 0.0, 0.0]}
    lifted = {"right_hip": [-1.0, 0.1, -0.2], "right_knee": [1.3, 0.0, 0.0], "right_ankle": [0.3, 0.0, 0.0],
              "pelvis": [0.05, 0.3, 0.1]}
    upper = {"spine": [0.2, 0.1, -0.1], "neck": [0.15, 0.0, 0.05], "head": [0.0, 0.6, 0.1],
             "left_shoulder": [0.3, -0.6, 0.7], "left_elbow": [0.0, -1.2, 0.0], "left_wrist": [0.0, 0.0, 0.4],
             "right_shoulder": [0.0, 0.4, -1.1], "right_elbow": [0.0, 0.9, 0.2], "right_wrist": [0.3, 0.0, 0.0]}
    aa = np.zeros((t, 21, 3))
    for name in MOTION21.joint_names:
        a, b = np.array(stance.get(name, [0.0] * 3)), np.array(lifted.get(name, stance.get(name, [0.0] * 3)))
        aa[:, MOTION21.index(name)] = a + lift * (b - a) + u * np.array(upper.get(name, [0.0] * 3))
    q = axis_angle_to_quat_wxyz(aa)
    joints = forward_kinematics(q, np.zeros((t, 3)), off, MOTION21.parents)
    root = np.array([0.2, 0.08, -0.1]) - joints[:, MOTION21.index("left_ankle")]  # the left ankle still
    return q, root, off


def write_capture(path: Path, t: int = FRAMES, fps: float = FPS) -> None:
    """:func:`balance_motion` as a motion.npz."""
    from mocap.formats import Motion, save_motion
    from mocap.kinematics.ik import forward_kinematics
    from mocap.skeletons import MOTION21

    q, root, off = balance_motion(t, fps)
    save_motion(path, Motion(joints=forward_kinematics(q, root, off, MOTION21.parents), joint_names=MOTION21.joint_names,
                             parents=MOTION21.parents, fps=fps, local_quats_wxyz=q, root_translation=root,
                             rest_offsets=off))


# --- the bench ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchRow:
    """One rig, one file format: limb error (degrees), planted feet's slide (metres), frames and rate read back."""

    style: str
    pose: str
    suffix: str
    mean_deg: float
    p95_deg: float
    max_deg: float
    limbs: int
    slide_m: float
    frames: int
    fps: float
    frame_start: int
    line: str


def run_bench(motion_path: Path, style: str, pose: str, folder: Path, suffixes=OUTPUTS) -> list[BenchRow]:
    """Build the rig, retarget ``motion_path`` onto it (``mocap retarget``'s defaults) as each
    of ``suffixes``, read each back with Blender's importer and measure it."""
    from mocap.export.blender import new_scene, read_animation, retarget_to_file, write_scene
    from mocap.export.fidelity import retarget_fidelity
    from mocap.export.retarget import auto_bone_map, motion_to_source
    from mocap.formats import load_motion

    m = load_motion(motion_path)
    source, gs, ps = motion_to_source(m.joint_names, m.parents, m.rest_offsets, m.local_quats_wxyz, m.root_translation)
    smap = auto_bone_map(source.bone_names)
    new_scene(30)
    build_rig(style, pose)
    rig_path = folder / f"{style}_{pose}.blend"
    write_scene(rig_path)
    rows = []
    for suffix in suffixes:
        out = folder / f"{style}_{pose}_out{suffix}"
        res = retarget_to_file(motion_path, rig_path, out)
        anim = read_animation(out)
        rig, pos = anim.as_rig(leaf_tails=True)
        fid = retarget_fidelity(source, smap, gs, ps, rig, auto_bone_map(rig.bone_names), pos, planted=res.planted)
        rows.append(BenchRow(style, pose, suffix, fid.mean_deg, fid.p95_deg, fid.max_deg, len(fid.limbs), fid.slide_m,
                             anim.positions.shape[0], anim.fps, anim.frame_start, fid.line()))
    return rows


@pytest.fixture(scope="module")
def capture_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "motion.npz"
    write_capture(path)
    return path


def test_balance_motion_plants_the_left_foot():
    """The capture the bench uses: both feet planted for the first third, then the left
    foot alone, the right one lifted."""
    from mocap.export.retarget import planted_feet
    from mocap.kinematics.ik import forward_kinematics
    from mocap.skeletons import MOTION21

    q, root, off = balance_motion()
    j = forward_kinematics(q, root, off, MOTION21.parents)
    ankles = j[:, [MOTION21.index("left_ankle"), MOTION21.index("right_ankle")]]
    planted = planted_feet(ankles, fps=FPS)
    assert planted[:, 0].all() and planted[:FRAMES // 3, 1].all() and not planted[FRAMES // 2:, 1].any()
    assert ankles[-1, 1, 1] - ankles[0, 1, 1] > 0.15  # the right foot rises


@pytest.mark.parametrize("style,pose", RIGS)
def test_retarget_bench(capture_file, tmp_path, style, pose):
    rows = run_bench(capture_file, style, pose, tmp_path)
    for r in rows:
        print(f"{style:7s} {pose} {r.suffix:6s} {r.line}")
        assert r.limbs == 15, r
        assert r.mean_deg <= 2.0 and r.p95_deg <= 6.0, r
        assert r.slide_m < 0.01, r
        assert r.frames == FRAMES and r.fps == pytest.approx(FPS) and r.frame_start == 1, r


@pytest.mark.parametrize("style", ["mixamo", "rigify"])
def test_fbx_of_a_rig_without_skin_keeps_its_rest_pose(capture_file, tmp_path, style):
    """Without a skinned mesh an FBX has no bind pose, and Blender's importer takes the
    bones' nodes as the rest pose: they are written at rest (not in the current frame's
    pose), and the animation is unchanged (bones within 0.01 mm of the retarget's)."""
    from mocap.export.blender import new_scene, read_animation, retarget_to_file, write_scene

    new_scene(30)
    build_rig(style, "A", skin=False)
    write_scene(tmp_path / "rig.blend")
    res = retarget_to_file(capture_file, tmp_path / "rig.blend", tmp_path / "out.fbx")
    rig, pos = read_animation(tmp_path / "out.fbx").as_rig()
    names, _, heads = body(style, "A")
    rest = rig.rest_positions[[rig.bone_names.index(n) for n in names]]
    np.testing.assert_allclose(rest - rest.mean(0), heads - heads.mean(0), atol=1e-5)
    got = pos[:, [rig.bone_names.index(n) for n in res.bone_names]]
    assert np.abs(got - res.positions).max() < 1e-5
