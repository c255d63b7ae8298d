"""The README picture: the example video captured through the add-on, one frame rendered
headless with Workbench next to the video frame.

    .venv/bin/python blender_addon/render_readme_frame.py [--frame 60] [-o docs/blender_addon_frame.png]

Builds the extension zip, installs it into a temporary Blender user folder, runs its
Capture operator on ``examples/balance_cam01.mp4`` (the ``mocap`` pipeline of ``.venv`` as a
subprocess), which imports the motion onto a new armature, then renders the chosen frame
from the front and puts it beside the video frame. Needs bpy and OpenCV (the venv has both).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MOD = "bl_ext.user_default.mocap_lift"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", default=str(REPO / "examples" / "balance_cam01.mp4"))
    parser.add_argument("--frame", type=int, default=60, help="video frame (0-based) to show")
    parser.add_argument("--height", type=int, default=480, help="picture height in pixels")
    parser.add_argument("-o", "--output", default=str(REPO / "docs" / "blender_addon_frame.png"))
    args = parser.parse_args(argv)

    import cv2
    import numpy as np

    sys.path.insert(0, str(HERE))
    import build

    work = Path(tempfile.mkdtemp(prefix="mocap_readme_"))
    os.environ["BLENDER_USER_RESOURCES"] = str(work / "blender_user")
    import bpy

    zip_path = build.build(work / "dist")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    bpy.context.preferences.addons[MOD].preferences.mocap_executable = str(REPO / ".venv" / "bin" / "mocap")
    bpy.ops.mocap.capture_video(filepath=args.video, output_dir=str(work / "capture"))
    arm = bpy.context.active_object

    scene = bpy.context.scene
    scene.frame_set(scene.frame_start + args.frame)
    body = next(o for o in scene.objects if o.type == "MESH" and o.parent == arm)
    material = bpy.data.materials.new("body")
    material.diffuse_color = (0.85, 0.45, 0.2, 1.0)
    body.data.materials.append(material)
    bpy.ops.mesh.primitive_plane_add(size=4.0)
    # Our world: the person faced the camera, which looked along -Z (Blender: the camera
    # stands at -Y and looks along +Y); the first frame's pelvis is over the origin.
    cam_data = bpy.data.cameras.new("camera")
    cam_data.sensor_fit, cam_data.angle = "VERTICAL", math.radians(40)
    cam = bpy.data.objects.new("camera", cam_data)
    scene.collection.objects.link(cam)
    pelvis = arm.matrix_world @ arm.pose.bones[0].head
    cam.location = (pelvis.x, pelvis.y - 4.0, 1.0)
    cam.rotation_euler = (math.radians(88), 0.0, 0.0)
    scene.camera = cam
    width = int(round(args.height * 9 / 16))
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.display.shading.show_shadows = True
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, args.height, 100
    scene.render.film_transparent = False
    scene.world = bpy.data.worlds.new("world")
    scene.world.color = (0.75, 0.78, 0.82)
    scene.render.image_settings.file_format = "PNG"
    render_path = work / "render.png"
    scene.render.filepath = str(render_path)
    bpy.ops.render.render(write_still=True)

    video = cv2.VideoCapture(args.video)
    video.set(cv2.CAP_PROP_POS_FRAMES, args.frame)
    ok, frame = video.read()
    if not ok:
        raise SystemExit(f"cannot read frame {args.frame} of {args.video}")
    h, w = frame.shape[:2]
    frame = cv2.resize(frame, (int(round(w * args.height / h)), args.height), interpolation=cv2.INTER_AREA)
    render = cv2.imread(str(render_path))
    picture = np.concatenate([frame, render], axis=1)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{out} ({out.stat().st_size // 1024} KB, {picture.shape[1]}x{picture.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
