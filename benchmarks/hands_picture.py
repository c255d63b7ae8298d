"""The README's picture of a captured hand: the video's hand with its detected keypoints beside
the same frame's hand of a retargeted Mixamo-style rig (docs/hands.png).

The example video is captured with ``--hands`` (or a capture folder of it reused: its
keypoints2d.npz and motion.npz, the fingers on MOTION61), the motion retargeted with
``mocap retarget``'s path (:func:`mocap.export.blender.retarget_to_file`) onto the test bench's
Mixamo-named rig with finger bones (an A-pose, fingers 20 % longer and curled 15 degrees at
rest: ``tests/test_fingers.py``), and one frame of the rig's hand rendered headless with
Blender's Workbench engine, seen through the camera the fit solved, cropped to the same box
around the hand as the video's half.

    python benchmarks/hands_picture.py [--capture DIR] [--frame N] [--side left|right] [-o docs/hands.png]

Without ``--frame`` the frame is the one where the chosen hand (default: the one seen in
more frames) is seen and its fingers bend most (mean flexion of its joints). Prints the
frame, the hand's size in the video and where the picture went. No timings.
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

from benchmarks.retarget_picture import _side_rgba, blender_camera_matrix  # noqa: E402


def pick_frame(motion, side: int) -> int:
    """The motion frame where hand ``side`` (0 left, 1 right) is seen and bends most."""
    from mocap.cleanup.fingers import angles_of_motion

    flex = angles_of_motion(motion)[:, side, :, 0].mean(-1)  # (T,) radians
    flex = np.where(motion.hand_valid[:, side], flex, -np.inf)
    return int(np.argmax(flex))


def hand_box(points: np.ndarray, image_size: tuple[int, int], *, margin: float = 0.6) -> tuple[int, int, int, int]:
    """A square (x0, y0, x1, y1) pixel box around (21, 2) hand points, ``margin`` of the hand's
    size added on each side, kept inside the image."""
    lo, hi = points.min(0), points.max(0)
    centre, size = (lo + hi) / 2, float((hi - lo).max()) * (1 + 2 * margin)
    size = min(size, *image_size)
    x0 = int(round(np.clip(centre[0] - size / 2, 0, image_size[0] - size)))
    y0 = int(round(np.clip(centre[1] - size / 2, 0, image_size[1] - size)))
    return x0, y0, x0 + int(round(size)), y0 + int(round(size))


def _hand_rig(folder: Path, fps: float) -> Path:
    """The Mixamo-named rig with fingers of ``tests/test_fingers.py`` as an FBX (Blender imports
    it as a Mixamo FBX is imported)."""
    from mocap.export.blender import export_motion
    from tests.test_fingers import _mixamo_hand_rig

    rig, names = _mixamo_hand_rig()
    par = np.asarray(rig.parents)
    off = rig.rest_positions - np.where(par[:, None] >= 0, rig.rest_positions[np.maximum(par, 0)], 0.0)
    export_motion(folder / "rig.fbx", joint_names=names, parents=rig.parents, rest_offsets=off,
                  local_quats_wxyz=np.tile([1.0, 0.0, 0.0, 0.0], (1, len(names), 1)),
                  root_translation=np.zeros((1, 3)), fps=fps)
    return folder / "rig.fbx"


def _add_hand(arm, side: str) -> None:
    """A stick hand of the posed rig (world space, this frame): a cylinder from each finger
    bone's head to its parent's and a ball at each joint, the forearm too, coloured by side."""
    import bpy
    import mathutils

    prefix = "Left" if side == "left" else "Right"
    for b in arm.pose.bones:
        name = b.name.split(":")[-1]
        if b.parent is None or not (name.startswith(prefix + "Hand") or name == prefix + "ForeArm"):
            continue
        head, tail = arm.matrix_world @ b.parent.head, arm.matrix_world @ b.head
        if (tail - head).length < 1e-4:
            continue
        thick = name.endswith(("Hand", "ForeArm"))
        radius = 0.009 if thick else 0.0055
        bpy.ops.mesh.primitive_cylinder_add(radius=radius, depth=(tail - head).length, vertices=16,
                                            location=(head + tail) / 2)
        obj = bpy.context.active_object
        obj.rotation_mode = "QUATERNION"
        obj.rotation_quaternion = mathutils.Vector((0.0, 0.0, 1.0)).rotation_difference(tail - head)
        obj.color = _side_rgba(prefix)
        bpy.ops.mesh.primitive_uv_sphere_add(radius=radius * 1.25, location=tail, segments=16, ring_count=8)
        bpy.context.active_object.color = (0.9, 0.9, 0.9, 1.0)


def _render_hand(motion_path: Path, camera, box, frame: int, side: str, folder: Path, width: int) -> np.ndarray:
    """(width, width, 3) uint8 Workbench render of the retargeted rig's hand at motion frame
    ``frame``, through ``camera`` cropped to ``box`` (pixels of the video)."""
    import bpy
    import mathutils

    from mocap.export.blender import find_armature, load_scene, retarget_to_file
    from mocap.formats import load_motion

    motion = load_motion(motion_path)
    rig = _hand_rig(folder, motion.fps)
    retarget_to_file(motion_path, rig, folder / "retargeted.blend")
    load_scene(folder / "retargeted.blend")
    scene = bpy.context.scene
    arm = find_armature()
    scene.frame_set(scene.frame_start + frame)
    for obj in list(scene.objects):
        if obj.type == "MESH":
            obj.hide_render = True
    _add_hand(arm, side)

    x0, y0, x1, y1 = box
    w = x1 - x0
    data = bpy.data.cameras.new("video camera, cropped")
    data.sensor_fit, data.sensor_width = "HORIZONTAL", 36.0
    data.lens = float(camera.K[0, 0]) * 36.0 / w
    data.shift_x = (w / 2 - (float(camera.K[0, 2]) - x0)) / w
    data.shift_y = ((float(camera.K[1, 2]) - y0) - (y1 - y0) / 2) / w
    data.clip_start = 0.01
    cam = bpy.data.objects.new("video camera, cropped", data)
    scene.collection.objects.link(cam)
    cam.matrix_world = mathutils.Matrix(blender_camera_matrix(camera.R, camera.t).tolist())
    scene.camera = cam
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "OBJECT"
    scene.render.resolution_x = scene.render.resolution_y = width
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    if scene.world is None:
        scene.world = bpy.data.worlds.new("World")
    scene.world.color = (0.92, 0.92, 0.92)
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(folder / "hand.png")
    bpy.ops.render.render(write_still=True)

    import matplotlib.image as mpimg

    return (mpimg.imread(folder / "hand.png")[..., :3] * 255).round().astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(ROOT / "examples" / "balance_cam01.mp4"))
    p.add_argument("--capture", type=Path, default=None,
                   help="a capture folder of the video made with --hands (keypoints2d.npz, motion.npz); "
                        "default: capture the video first")
    p.add_argument("--frame", type=int, default=None, help="video frame to show (default: picked, see above)")
    p.add_argument("--side", choices=("left", "right"), default=None, help="which hand (default: seen more)")
    p.add_argument("--width", type=int, default=320, help="width of each half, pixels (default 320)")
    p.add_argument("-o", "--output", default=str(ROOT / "docs" / "hands.png"))
    args = p.parse_args(argv)

    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mocap.export.draw import draw_skeleton_2d
    from mocap.formats import load_keypoints, load_motion
    from mocap.io.video import iter_frames
    from mocap.pipelines.capture import capture, lift_seen
    from mocap.pipelines.options import CaptureOptions, DetectionOptions, ExportOptions

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = args.capture
        if folder is None:
            folder = tmp / "capture"
            capture(args.video, folder, CaptureOptions(detection=DetectionOptions(hands=True),
                                                       export=ExportOptions(overlay=False, preview=False)),
                    progress=False)
        keypoints = load_keypoints(folder / "keypoints2d.npz")
        motion = load_motion(folder / "motion.npz")
        if keypoints.hand_keypoints is None or motion.hand_valid is None:
            raise SystemExit(f"{folder} was captured without --hands: no hands to show")
        _, fitted = lift_seen(keypoints)  # the camera the capture's fit solved
        if fitted is None:
            raise SystemExit("the capture was not fitted to the video (--no-fit): no camera to look through")
        h = ("left", "right").index(args.side) if args.side else int(np.argmax(motion.hand_valid.sum(0)))
        side = ("left", "right")[h]
        if args.frame is None:
            frame = motion.start_frame + pick_frame(motion, h)
        else:
            frame = args.frame
            if not (motion.start_frame <= frame < motion.start_frame + motion.num_frames
                    and motion.hand_valid[frame - motion.start_frame, h]):
                raise SystemExit(f"the {side} hand is not seen in frame {frame}")
        points = keypoints.hand_keypoints[frame, 21 * h:21 * h + 21].astype(np.float64)
        box = hand_box(points, keypoints.image_size)
        rig = _render_hand(folder / "motion.npz", fitted.camera, box, frame - motion.start_frame, side, tmp,
                           args.width)
        with contextlib.closing(iter_frames(args.video, rgb=True, start=frame, stop=frame + 1)) as it:
            video_frame = next(it)

    x0, y0, x1, y1 = box
    scale = args.width / (x1 - x0)
    crop = cv2.resize(np.ascontiguousarray(video_frame[y0:y1, x0:x1]), (args.width, args.width),
                      interpolation=cv2.INTER_CUBIC)
    hand = np.full((42, 2), np.nan)
    hand[21 * h:21 * h + 21] = (points - [x0, y0]) * scale
    drawn = draw_skeleton_2d(crop, hand, None, "hands42")
    print(f"frame {frame}, {side} hand, {np.ptp(points, 0).max():.0f} px in the video (box {x1 - x0} px, "
          f"shown x{scale:.1f})")
    fig, axes = plt.subplots(1, 2, figsize=(2 * args.width / 80, args.width / 80 + 0.45))
    axes[0].imshow(drawn)
    axes[0].set_title(f"{Path(args.video).name}, frame {frame}: {side} hand, keypoints", fontsize=8)
    axes[1].imshow(rig)
    axes[1].set_title("retargeted: Mixamo-style rig's hand, same view", fontsize=8)
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
