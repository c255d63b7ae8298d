"""The README's picture of a retargeted rig beside the video frame (docs/retarget.png).

The example video is captured (or a capture folder's keypoints2d.npz reused), its motion
retargeted with ``mocap retarget``'s defaults onto the test bench's Mixamo-style rig (as
Blender imports a Mixamo FBX: Y-up armature in centimetres, object turned 90 degrees, scale
0.01; proportions 20 % off ours, random bone rolls; a box per bone for a body), and one frame
of the rig rendered headless with Blender's Workbench engine, seen through the camera the
fit solved, beside the same frame of the video.

    python benchmarks/retarget_picture.py [--capture DIR] [--frame 50] [-o docs/retarget.png]

Prints the retarget's fidelity line and where the picture went. No timings.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: our world axes (+Y up) -> Blender's (+Z up): (x, y, z) -> (x, -z, y)
TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def blender_camera_matrix(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(4, 4) ``matrix_world`` of a Blender camera that sees what the camera ``x_cam = R X + t``
    sees (ours: x right, y down, z forward, world +Y up; Blender's camera looks down its -Z
    with +Y up, its world +Z up)."""
    m = np.eye(4)
    m[:3, :3] = TO_BLENDER @ np.stack([R[0], -R[1], -R[2]], axis=1)
    m[:3, 3] = TO_BLENDER @ (-R.T @ t)
    return m


def _side_rgba(name: str) -> tuple[float, float, float, float]:
    """The overlay's colour of a bone's side (:data:`mocap.export.draw.LEFT_RGB`, ...), linear RGBA."""
    from mocap.export.draw import LEFT_RGB, RIGHT_RGB

    srgb = LEFT_RGB if name.startswith("Left") else RIGHT_RGB if name.startswith("Right") else (150, 150, 150)
    return (*((np.array(srgb) / 255.0) ** 2.2), 1.0)


def _add_limbs(arm, scene) -> None:
    """A stick figure of the posed rig (world space, this frame): a cylinder from each bone's
    head to its parent's, coloured by side as the video overlay is (trunk and head thicker;
    the fingers left out); and the floor."""
    import bpy
    import mathutils

    for b in arm.pose.bones:
        name = b.name.split(":")[-1]
        if b.parent is None or any(w in name for w in ("Thumb", "Middle", "Index")):
            continue
        head, tail = arm.matrix_world @ b.parent.head, arm.matrix_world @ b.head
        if (tail - head).length < 1e-3:
            continue
        radius = 0.08 if name == "HeadTop_End" else 0.035 if name.startswith(("Left", "Right")) else 0.06
        bpy.ops.mesh.primitive_cylinder_add(radius=radius, depth=(tail - head).length, vertices=12,
                                            location=(head + tail) / 2)
        obj = bpy.context.active_object
        obj.rotation_mode = "QUATERNION"
        obj.rotation_quaternion = mathutils.Vector((0.0, 0.0, 1.0)).rotation_difference(tail - head)
        obj.color = _side_rgba(name)
    bpy.ops.mesh.primitive_plane_add(size=6.0, location=(0.0, 0.0, 0.0))
    bpy.context.active_object.color = (0.55, 0.55, 0.5, 1.0)


def _render_rig(motion_path: Path, camera, frame: int, folder: Path, width: int) -> tuple[np.ndarray, str]:
    """(H, W, 3) uint8 Workbench render of the Mixamo-style rig at motion frame ``frame``, and
    the retarget's fidelity line."""
    import bpy
    import mathutils

    from mocap.export.blender import _add_bone_boxes, find_armature, load_scene, new_scene, retarget_to_file, \
        write_scene
    from mocap.export.retarget import Rig
    from mocap.formats import load_motion
    from tests.test_retarget import build_rig
    from tests.test_retarget_bench import ARMATURE_SPACE, body

    motion = load_motion(motion_path)
    new_scene(motion.fps)
    names, parents, heads = body("mixamo", "T")
    turn, scale, axes = ARMATURE_SPACE["mixamo"]
    arm = build_rig(Rig(names, parents, heads), name="mixamo", turn_x_deg=turn, scale=scale, y_up=axes == "y_up")
    _add_bone_boxes(arm, names)  # the character's skinned mesh (retargeting keeps it)
    write_scene(folder / "rig.blend")
    result = retarget_to_file(motion_path, folder / "rig.blend", folder / "retargeted.blend")
    load_scene(folder / "retargeted.blend")
    scene = bpy.context.scene
    arm = find_armature()
    scene.frame_set(scene.frame_start + frame)
    for obj in list(scene.objects):  # the thin boxes read badly at this size: a limb per bone instead
        if obj.type == "MESH":
            obj.hide_render = True
    _add_limbs(arm, scene)

    w, h = camera.size
    data = bpy.data.cameras.new("video camera")
    data.sensor_fit, data.sensor_width = "HORIZONTAL", 36.0
    data.lens = float(camera.K[0, 0]) * 36.0 / w
    data.shift_x = (w / 2 - float(camera.K[0, 2])) / w
    data.shift_y = (float(camera.K[1, 2]) - h / 2) / w
    cam = bpy.data.objects.new("video camera", data)
    scene.collection.objects.link(cam)
    cam.matrix_world = mathutils.Matrix(blender_camera_matrix(camera.R, camera.t).tolist())
    scene.camera = cam
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "OBJECT"
    scene.render.resolution_x, scene.render.resolution_y = width, int(round(width * h / w))
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    if scene.world is None:
        scene.world = bpy.data.worlds.new("World")
    scene.world.color = (0.92, 0.92, 0.92)
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(folder / "rig.png")
    bpy.ops.render.render(write_still=True)

    import matplotlib.image as mpimg

    image = (mpimg.imread(folder / "rig.png")[..., :3] * 255).round().astype(np.uint8)
    return image, result.fidelity.line()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(ROOT / "examples" / "balance_cam01.mp4"))
    p.add_argument("--capture", type=Path, default=None,
                   help="a capture folder of the video (its keypoints2d.npz); default: capture the video first")
    p.add_argument("--frame", type=int, default=50, help="video frame to show (default 50)")
    p.add_argument("--width", type=int, default=270, help="width of each half, pixels (default 270)")
    p.add_argument("-o", "--output", default=str(ROOT / "docs" / "retarget.png"))
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mocap.export.draw import draw_skeleton_2d
    from mocap.formats import load_keypoints, save_motion
    from mocap.io.video import iter_frames
    from mocap.pipelines.capture import capture, lift_seen
    from mocap.pipelines.options import CaptureOptions, ExportOptions

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = args.capture
        if folder is None:
            folder = tmp / "capture"
            capture(args.video, folder, CaptureOptions(export=ExportOptions(overlay=False, preview=False)),
                    progress=False)
        keypoints = load_keypoints(folder / "keypoints2d.npz")
        motion, fitted = lift_seen(keypoints)  # the capture's motion, and the camera it solved
        if fitted is None:
            raise SystemExit("the capture was not fitted to the video (--no-fit): no camera to look through")
        if not motion.start_frame <= args.frame < motion.start_frame + motion.num_frames:
            raise SystemExit(f"frame {args.frame} is outside the motion (video frames {motion.start_frame}-"
                             f"{motion.start_frame + motion.num_frames - 1})")
        save_motion(tmp / "motion.npz", motion)
        rig, line = _render_rig(tmp / "motion.npz", fitted.camera, args.frame - motion.start_frame, tmp, args.width)
        with contextlib.closing(iter_frames(args.video, rgb=True, start=args.frame, stop=args.frame + 1)) as it:
            video_frame = next(it)

    print(line)
    fig, axes = plt.subplots(1, 2, figsize=(2 * args.width / 80, rig.shape[0] / 80 + 0.4))
    joints = motion.joints[args.frame - motion.start_frame]
    axes[0].imshow(draw_skeleton_2d(video_frame, fitted.camera.project(joints), None, "motion21"))
    axes[0].set_title(f"{Path(args.video).name}, frame {args.frame}, with the capture", fontsize=8)
    axes[1].imshow(rig)
    axes[1].set_title("retargeted: Mixamo-style rig, arms +20 %, legs -20 %", fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
