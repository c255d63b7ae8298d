"""Finger motion on renders: the anny character's hand in known poses, rendered with bpy, read by our
hand network, turned into finger rotations, compared with the pose the character holds.

1. A MOTION61 motion holds one known hand pose a frame (open, fist, pointing, pinch and random
   poses within the limits; the wrists turned differently each frame); ``retarget_to_file`` puts
   it on the anny character (:func:`mocap.export.avatar.retarget_to_avatar`: the finger bones by
   name), as ``mocap capture --avatar anny`` does.
2. Each frame is rendered at 1920x1080 (Workbench, ``mocap.export.avatar.render_frame``'s look)
   by a 50 mm camera 2 m from the left hand, from several directions.
3. The hand network (:class:`~mocap.detect2d.estimators.hands_torch.HandLandmarksTorch`) reads the
   hand in a region from the true hand's 2D points (as when tracking; the body's wrists are not
   used here), with its second pass; then the finger stage users run
   (:func:`mocap.cleanup.fingers.motion_with_fingers`, no smoothing: every frame is another pose).
4. Truth: anny's posed finger bones (heads, and the last bone's tail for the tip) read by the same
   angle functions (:func:`mocap.kinematics.fingers.finger_angles`, :func:`palm_rotmats`), so
   both sides are measured the same way on anny's own hand shape.

5. The same 2D points of all the views (and of three of them) triangulated per pose, as a
   multi-view capture with ``--hands`` does, then the same finger stage.

    python benchmarks/bench_fingers_render.py [--views 5] [--random 4] [--look grey|skin|photo] [--keep DIR]

Needs the blender and avatar extras (bpy, anny) and torch.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mocap.camera import Camera, intrinsic_matrix  # noqa: E402
from mocap.cleanup.fingers import FingerOptions, angles_of_motion, motion_with_fingers  # noqa: E402
from mocap.formats import Motion, save_motion  # noqa: E402
from mocap.kinematics import fingers as fk  # noqa: E402
from mocap.rotations import geodesic_angle, matrix_to_quat_wxyz  # noqa: E402
from mocap.skeletons import MOTION61, rest_offsets  # noqa: E402
from tests.hand_synthetic import POSES, hand_scene, random_pose  # noqa: E402

#: Blender's Z-up world -> ours (+Y up): (x, y, z) -> (x, z, -y)
B2Y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
#: directions from the left hand to the camera, our axes (the person faces +Z, their left is +X)
VIEWS = {"front": (0.0, 0.3, 1.0), "front-left": (0.8, 0.3, 0.7), "above": (0.1, 1.0, 0.5),
         "left": (1.0, 0.15, 0.0), "front-right": (-0.5, 0.3, 1.0)}
#: anny's bones of HAND21's points (wrist, then per finger from the palm out; the tip is the last bone's tail)
ANNY_CHAINS = {"thumb": "finger1", "index_finger": "finger2", "middle_finger": "finger3", "ring_finger": "finger4",
               "pinky": "finger5"}
W, H, LENS_MM = 1920, 1080, 50.0


def anny_hand_points(arm, side: str = "L") -> np.ndarray:
    """(21, 3) our world metres: the posed anny hand's HAND21 points at the current frame."""
    mw = np.array(arm.matrix_world)
    pts = [arm.pose.bones[f"wrist.{side}"].head]
    for f in ANNY_CHAINS.values():
        bones = [arm.pose.bones[f"{f}-{k}.{side}"] for k in (1, 2, 3)]
        pts += [b.head for b in bones] + [bones[-1].tail]
    p = np.array([list(v) for v in pts])
    return (p @ mw[:3, :3].T + mw[:3, 3]) @ B2Y.T


def place_camera(bpy, target_ours: np.ndarray, direction_ours, distance: float) -> Camera:
    """A Blender camera ``distance`` from ``target`` along ``direction`` (our axes), aimed at it;
    returns it as our :class:`Camera` in our world (+Y up)."""
    from mathutils import Vector

    d = np.asarray(direction_ours, float)
    eye_ours = target_ours + distance * d / np.linalg.norm(d)
    eye_b, target_b = B2Y.T @ eye_ours, B2Y.T @ target_ours
    scene = bpy.context.scene
    cam = scene.camera
    if cam is None:
        cam = bpy.data.objects.new("hand_camera", bpy.data.cameras.new("hand_camera"))
        scene.collection.objects.link(cam)
        scene.camera = cam
    cam.data.lens, cam.data.sensor_width, cam.data.sensor_fit = LENS_MM, 36.0, "HORIZONTAL"
    cam.location = Vector(eye_b.tolist())
    cam.rotation_euler = (Vector(target_b.tolist()) - Vector(eye_b.tolist())).to_track_quat("-Z", "Y").to_euler()
    bpy.context.view_layer.update()
    m = np.array(cam.matrix_world)
    r_b = np.diag([1.0, -1.0, -1.0]) @ m[:3, :3].T  # world (Blender) -> camera (x right, y down, z forward)
    r = r_b @ B2Y.T
    return Camera(name="render", size=(W, H), K=intrinsic_matrix(LENS_MM / 36.0 * W, (W / 2.0, H / 2.0)), R=r,
                  t=-r @ eye_ours, dist=np.zeros(5))


#: a light skin tone, linear RGB (sRGB about (225, 180, 150))
SKIN_RGB = (0.75, 0.46, 0.30)


def skin_look(bpy) -> None:
    """The ``--look skin`` renders: every mesh material skin-coloured, with some specular
    highlight (Workbench shows a material's diffuse colour, specular and roughness), and a
    darker background, for a hand that looks more like the photographs the network learned on
    than the default grey does. Nothing here depends on the poses."""
    for mat in bpy.data.materials:
        mat.diffuse_color = (*SKIN_RGB, 1.0)
        mat.specular_intensity = 0.3
        mat.roughness = 0.6
    for obj in bpy.context.scene.objects:
        if obj.type == "MESH" and not obj.data.materials:
            mat = bpy.data.materials.new("skin")
            obj.data.materials.append(mat)
            mat.diffuse_color = (*SKIN_RGB, 1.0)


def photo_look(bpy) -> None:
    """The ``--look photo`` renders: Cycles (path tracing) with a skin material (Principled BSDF,
    skin base colour, some subsurface scattering) on every mesh, a key and a fill area light that
    follow the camera (:func:`light_from_camera`), a grey background. Nothing depends on the poses."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 24
    scene.cycles.use_denoising = True
    materials = set(bpy.data.materials)
    for obj in scene.objects:
        if obj.type == "MESH" and not obj.data.materials:
            mat = bpy.data.materials.new("skin")
            obj.data.materials.append(mat)
            materials.add(mat)
    for mat in materials:
        mat.use_nodes = True
        bsdf = next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
        if bsdf is None:
            bsdf = mat.node_tree.nodes.new("ShaderNodeBsdfPrincipled")
            out = next((n for n in mat.node_tree.nodes if n.type == "OUTPUT_MATERIAL"), None) \
                or mat.node_tree.nodes.new("ShaderNodeOutputMaterial")
            mat.node_tree.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
        for link in list(bsdf.inputs["Base Color"].links):  # a texture, if any, gives way to the skin tone
            mat.node_tree.links.remove(link)
        bsdf.inputs["Base Color"].default_value = (*SKIN_RGB, 1.0)
        bsdf.inputs["Roughness"].default_value = 0.5
        if "Subsurface Weight" in bsdf.inputs:
            bsdf.inputs["Subsurface Weight"].default_value = 0.15
            bsdf.inputs["Subsurface Radius"].default_value = (0.01, 0.004, 0.002)
    for name, energy, size in (("key", 40.0, 1.0), ("fill", 12.0, 2.0)):
        data = bpy.data.lights.new(name, "AREA")
        data.energy, data.size = energy, size
        scene.collection.objects.link(bpy.data.objects.new(name, data))
    if scene.world is None:
        scene.world = bpy.data.worlds.new("background")
    scene.world.use_nodes = True
    background = next(n for n in scene.world.node_tree.nodes if n.type == "BACKGROUND")
    background.inputs["Color"].default_value = (0.3, 0.32, 0.35, 1.0)
    background.inputs["Strength"].default_value = 0.6


def light_from_camera(bpy, target_ours: np.ndarray) -> None:
    """Aim the ``--look photo`` lights at ``target`` (our axes): the key light 2 m from it, up
    and to the camera's left, the fill light on the camera's other side."""
    from mathutils import Vector

    cam = bpy.context.scene.camera
    m = np.array(cam.matrix_world)
    right, up, back = m[:3, 0], m[:3, 1], m[:3, 2]  # the camera's axes, Blender world
    target_b = B2Y.T @ target_ours
    for name, offset in (("key", -0.7 * right + 0.8 * up + back), ("fill", 0.9 * right - 0.2 * up + back)):
        light = bpy.data.objects[name]
        eye = target_b + 2.0 * offset / np.linalg.norm(offset)
        light.location = Vector(eye.tolist())
        light.rotation_euler = (Vector(target_b.tolist()) - Vector(eye.tolist())).to_track_quat("-Z", "Y").to_euler()


def render(bpy, path: Path, look: str = "grey", border_px: np.ndarray | None = None) -> np.ndarray:
    """Render the scene to ``path`` and read it back ((H, W, 3) uint8 RGB). ``look`` "photo"
    renders with Cycles only inside ``border_px`` (x0, y0, x1, y1 pixels; black outside)."""
    import cv2

    scene = bpy.context.scene
    if look == "photo":
        scene.view_settings.view_transform = "Standard"
        scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
        scene.render.image_settings.file_format = "PNG"
        scene.render.use_border, scene.render.use_crop_to_border = border_px is not None, False
        if border_px is not None:
            x0, y0, x1, y1 = np.clip(border_px, 0, [W, H, W, H]).astype(float)
            scene.render.border_min_x, scene.render.border_max_x = x0 / W, x1 / W
            scene.render.border_min_y, scene.render.border_max_y = 1 - y1 / H, 1 - y0 / H  # Blender: y up
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.display.shading.show_shadows = True
    if look == "skin":  # a key light from above the camera, shadows and cavities for the finger creases
        scene.display.shading.show_specular_highlight = True
        scene.display.shading.show_cavity = True
        scene.display.shading.cavity_type = "BOTH"
    scene.view_settings.view_transform = "Standard"
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
    scene.render.image_settings.file_format = "PNG"
    if scene.world is None:
        scene.world = bpy.data.worlds.new("background")
    scene.world.color = (0.8, 0.85, 0.9) if look == "grey" else (0.25, 0.27, 0.3)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _draw(path: Path, image: np.ndarray, truth_px: np.ndarray, found_px: np.ndarray) -> None:
    """A crop of ``image`` around the hand with the true points (green) and the network's (red)."""
    import cv2

    lo, hi = truth_px.min(0), truth_px.max(0)
    c, half = (lo + hi) / 2, max(hi - lo) * 0.8
    x0, y0 = int(max(c[0] - half, 0)), int(max(c[1] - half, 0))
    crop = cv2.cvtColor(image[y0:int(c[1] + half), x0:int(c[0] + half)], cv2.COLOR_RGB2BGR).copy()
    for pts, colour in ((truth_px, (0, 160, 0)), (found_px, (0, 0, 220))):
        for p in pts:
            cv2.circle(crop, (int(p[0] - x0), int(p[1] - y0)), 3, colour, -1)
    cv2.imwrite(str(path), crop)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=len(VIEWS), help="camera directions (of %d)" % len(VIEWS))
    ap.add_argument("--random", type=int, default=4, help="random poses within the limits, besides the named four")
    ap.add_argument("--distance", type=float, default=2.0, help="camera to hand, metres")
    ap.add_argument("--keep", type=Path, default=None, help="keep the renders in this folder")
    ap.add_argument("--look", choices=("grey", "skin", "photo"), default="grey",
                    help="grey: anny's untextured grey on a light background (the figures in docs/hands.md); "
                         "skin: skin-coloured materials, specular highlights and cavity shading, darker background; "
                         "photo: Cycles, a skin material with subsurface scattering, key and fill area lights")
    args = ap.parse_args(argv)
    import bpy

    from mocap.detect2d.estimators.hands_torch import HandLandmarksTorch, hand_rois_from_landmarks
    from mocap.export.avatar import retarget_to_avatar
    from mocap.export.blender import find_armature

    plan = fk.plan_hands(MOTION61, rest_offsets(MOTION61))
    rng = np.random.default_rng(7)
    names = list(POSES) + [f"random {k}" for k in range(args.random)]
    angles = np.stack([POSES[n] for n in POSES] + [random_pose(rng, plan) for _ in range(args.random)])
    t = len(angles)
    scene = hand_scene(angles, frames=t, pixel_noise=0.0, world_noise_m=0.0)
    source = Motion(joints=scene.truth_joints, joint_names=MOTION61.joint_names, parents=MOTION61.parents, fps=30.0,
                    local_quats_wxyz=scene.truth_quats, root_translation=scene.body.root_translation,
                    rest_offsets=rest_offsets(MOTION61))
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_fingers_render_"))
    folder.mkdir(parents=True, exist_ok=True)
    save_motion(folder / "motion.npz", source)
    retarget_to_avatar(folder / "motion.npz", folder / "anny.blend", pin_feet=False)
    arm = find_armature()
    if args.look == "skin":
        skin_look(bpy)
    elif args.look == "photo":
        photo_look(bpy)

    truth = np.empty((t, 21, 3))
    for f in range(t):
        bpy.context.scene.frame_set(f + 1)
        truth[f] = anny_hand_points(arm)
    observed = np.full((t, MOTION61.num_joints, 3), np.nan)
    observed[:, plan.hand_points[0]] = truth
    true_wrist = fk.palm_rotmats(plan, observed)[:, 0]
    true_angles = fk.finger_angles(plan, observed, fk.palm_rotmats(plan, observed))[:, 0]

    est = HandLandmarksTorch()
    rows = []
    per_view = {}  # view -> (2D points (T, 21, 2), confidence (T, 21), the camera of each frame)
    print(f"anny's left hand, {t} poses x {args.views} views, 1920x1080, 50 mm lens at {args.distance:g} m, "
          f"look {args.look}")
    for view in list(VIEWS)[:args.views]:
        kp = np.full((t, 42, 2), np.nan, np.float32)
        world = np.full((t, 42, 3), np.nan, np.float32)
        conf = np.zeros((t, 42), np.float32)
        sizes, cams, err2d, err3d = [], [], [], []
        for f in range(t):
            bpy.context.scene.frame_set(f + 1)
            cam = place_camera(bpy, truth[f].mean(0), VIEWS[view], args.distance)
            cams.append(cam)
            px = cam.project(truth[f])
            border = None
            if args.look == "photo":  # Cycles renders only a box around the hand (4 hand sizes wide)
                light_from_camera(bpy, truth[f].mean(0))
                c, half = (px.min(0) + px.max(0)) / 2, 2.0 * (px.max(0) - px.min(0)).max()
                border = np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])
            image = render(bpy, folder / f"{view}_{f:02d}.png", args.look, border)
            sizes.append(float((px.max(0) - px.min(0)).max()))
            roi = hand_rois_from_landmarks(px[None])
            lm = est.landmarks([image], np.zeros(1, np.int64), roi)
            lm2 = est.landmarks([image], np.zeros(1, np.int64), lm.next_roi)
            if lm2.score[0] >= lm.score[0]:
                lm = lm2
            if lm.score[0] >= est.min_confidence:
                kp[f, :21], world[f, :21], conf[f, :21] = lm.keypoints[0], lm.world[0], lm.score[0]
            if args.keep is not None:  # the truth (green) and the network's points (red) on the hand
                _draw(folder / f"{view}_{f:02d}_points.png", image, px, lm.keypoints[0])
            # the network against the truth: 2D, % of the hand's size; 3D shape (centred), mm
            err2d.append(100 * float(np.linalg.norm(lm.keypoints[0] - px, axis=-1).mean()) / sizes[-1])
            true_cam = cam.world_to_camera(truth[f])
            err3d.append(1000 * float(np.linalg.norm((lm.world[0] - lm.world[0].mean(0))
                                                     - (true_cam - true_cam.mean(0)), axis=-1).mean()))
        per_view[view] = (kp[:, :21].copy(), conf[:, :21].copy(), cams)
        for f in range(t):  # the finger stage takes one camera a clip: each frame is a clip of one frame
            one = Motion(joints=scene.body.joints[f:f + 1], joint_names=scene.body.joint_names,
                         parents=scene.body.parents, fps=30.0, local_quats_wxyz=scene.body.local_quats_wxyz[f:f + 1],
                         root_translation=scene.body.root_translation[f:f + 1], rest_offsets=scene.body.rest_offsets)
            m = motion_with_fingers(one, kp[f:f + 1], world[f:f + 1], conf[f:f + 1], cams[f],
                                    options=FingerOptions(cutoff_hz=0.0, max_gap_s=0.0))
            if not m.hand_valid[0, 0]:
                rows.append((view, names[f], np.nan, np.nan, sizes[f], err2d[f], err3d[f]))
                continue
            got = angles_of_motion(m)[0, 0]
            flex_err = np.degrees(np.abs(got[:, 0] - true_angles[f, :, 0]))
            wrist = fk.palm_rotmats(plan, m.joints)[0, 0]
            w_err = float(np.degrees(geodesic_angle(matrix_to_quat_wxyz(wrist), matrix_to_quat_wxyz(true_wrist[f]))))
            rows.append((view, names[f], float(flex_err.mean()), w_err, sizes[f], err2d[f], err3d[f]))
    print(f"{'view':<12} {'pose':<10} {'hand px':>7} {'2D err %':>8} {'3D err mm':>9} {'flexion err':>11} {'wrist err':>9}")
    for view, pose, fe, we, size, e2, e3 in rows:
        print(f"{view:<12} {pose:<10} {size:7.0f} {e2:8.1f} {e3:9.1f} " + (f"{fe:10.1f}° {we:8.1f}°" if np.isfinite(fe)
                                                                          else "  not found"))
    print(f"hand network against anny's bones: 2D mean {np.mean([r[5] for r in rows]):.1f} % of the hand's size, "
          f"world landmarks (centred) {np.mean([r[6] for r in rows]):.1f} mm mean per point")
    fe = np.array([r[2] for r in rows])
    we = np.array([r[3] for r in rows])
    found = np.isfinite(fe)
    print(f"found {found.sum()} of {len(rows)} hands; flexion error mean {np.nanmean(fe):.1f}° (per pose, "
          f"mean over its 15 joints), median {np.nanmedian(fe):.1f}°; wrist orientation error mean {np.nanmean(we):.1f}°, "
          f"median {np.nanmedian(we):.1f}°  (targets: 12° and 10°)")
    for pose in names:
        sel = np.array([r[1] == pose for r in rows]) & found
        print(f"  {pose:<10} flexion {np.mean(fe[sel]) if sel.any() else np.nan:5.1f}°  wrist "
              f"{np.mean(we[sel]) if sel.any() else np.nan:5.1f}°  ({sel.sum()} views)")
    for used in _view_sets(list(per_view)):
        fe, we, bias = triangulated_errors(per_view, used, scene.body, true_angles, true_wrist)
        print(f"triangulated from {len(used)} views ({', '.join(used)}), as `mocap capture VIDEOS --calibration ... "
              f"--hands` does: found {np.isfinite(fe).sum()} of {t}; flexion error mean {np.nanmean(fe):.1f}°, "
              f"median {np.nanmedian(fe):.1f}°; wrist orientation error mean {np.nanmean(we):.1f}°, "
              f"median {np.nanmedian(we):.1f}°")
        print("  per pose: " + "; ".join(f"{n} {e:.1f}° (signed {b:+.1f}°)" for n, e, b in zip(names, fe, bias)
                                         if np.isfinite(e)) + "  (signed: detected minus true flexion, mean)")
    print(f"renders in {folder}")
    return 0


def _view_sets(views: list[str]) -> list[list[str]]:
    """All the views, and (with 4 or more) three of them without the frontal one."""
    sets = [views] if len(views) >= 2 else []
    three = [v for v in views if v != "front"][:3]
    if len(views) >= 4 and len(three) == 3:
        sets.append(three)
    return sets


def triangulated_errors(per_view: dict, used: list[str], body: Motion, true_angles: np.ndarray,
                        true_wrist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pose (frame): the left hand triangulated from the network's 2D in the views ``used``
    (:func:`mocap.multiview.views.triangulate_arrays`, each frame's own cameras), put at the
    body's wrist and turned into finger rotations (:func:`mocap.cleanup.fingers.motion_with_hand_points`,
    no smoothing) -> (flexion error (T,) degrees, mean over the 15 joints; wrist orientation
    error (T,) degrees; signed flexion error (T,) degrees, mean of detected minus true); NaN where
    fewer than two views agree on every point."""
    from mocap.cleanup.fingers import hands_at_wrists, motion_with_hand_points
    from mocap.multiview.views import triangulate_arrays

    plan = fk.plan_hands(MOTION61, rest_offsets(MOTION61))
    t = len(true_angles)
    fe, we, bias = np.full(t, np.nan), np.full(t, np.nan), np.full(t, np.nan)
    for f in range(t):
        kp = np.stack([per_view[v][0][f] for v in used])[:, None]  # (C, 1, 21, 2)
        conf = np.stack([per_view[v][1][f] for v in used])[:, None]
        tri = triangulate_arrays(kp, conf, [per_view[v][2][f] for v in used], "hand21", threshold_px=30.0,
                                 min_confidence=0.5, resolve_swaps=False, rigid_bones=False)
        if not np.isfinite(tri.points).all():
            continue
        hands = np.full((1, 2, 21, 3), np.nan)
        hands[0, 0] = tri.points[0]
        one = Motion(joints=body.joints[f:f + 1], joint_names=body.joint_names, parents=body.parents, fps=30.0,
                     local_quats_wxyz=body.local_quats_wxyz[f:f + 1], root_translation=body.root_translation[f:f + 1],
                     rest_offsets=body.rest_offsets)
        m = motion_with_hand_points(one, hands_at_wrists(hands, one.joints[:, plan.wrists]),
                                    options=FingerOptions(cutoff_hz=0.0, max_gap_s=0.0))
        got = angles_of_motion(m)[0, 0]
        fe[f] = float(np.degrees(np.abs(got[:, 0] - true_angles[f, :, 0])).mean())
        bias[f] = float(np.degrees(got[:, 0] - true_angles[f, :, 0]).mean())
        wrist = fk.palm_rotmats(plan, m.joints)[0, 0]
        we[f] = float(np.degrees(geodesic_angle(matrix_to_quat_wxyz(wrist), matrix_to_quat_wxyz(true_wrist[f]))))
    return fe, we, bias


if __name__ == "__main__":
    raise SystemExit(main())
