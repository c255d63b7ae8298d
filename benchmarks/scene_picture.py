"""A picture of what the fit reads from the room (docs/scene.png): the straight segments of the
example's frames, the vertical ones that meet at the vanishing point (green), the horizontal ones
that gave the focal length (blue), the people left out (grey boxes), and the horizon.

    python benchmarks/scene_picture.py [--video examples/balance_cam01.mp4] [-o docs/scene.png]

Runs the 2D stage (everyone's boxes), then prints the vertical's pitch and roll and the focal
length, as `mocap capture` finds them before the fit (the fit then moves gravity by up to about
a degree).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    import cv2

    from mocap.camera import intrinsic_matrix
    from mocap.detect2d.people import detect_people_video
    from mocap.fit.ground import camera_pitch_roll, world_from_camera
    from mocap.detect2d.lines import people_boxes
    from mocap.fit.scene import focal_from_scene, horizontal_points, toward, vertical_up
    from mocap.io.video import iter_frames, probe_video
    from mocap.lift.lifters import default_focal_px
    from mocap.pipelines.scene import scene_frames, scene_lines

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(ROOT / "examples" / "balance_cam01.mp4"))
    p.add_argument("-o", "--output", default=str(ROOT / "docs" / "scene.png"))
    args = p.parse_args(argv)
    info = probe_video(args.video)
    tracks = detect_people_video(args.video, detector="blazepose-torch", progress=False)
    span = (0, info.frame_count)
    lines = scene_lines(args.video, tracks.keypoints, span)
    w, h = info.size
    focal = focal_from_scene(lines, info.size)
    f = focal if focal is not None else default_focal_px(info.size)
    k = intrinsic_matrix(f, (w / 2, h / 2))
    found = vertical_up(lines, k, np.array([0.0, -1.0, 0.0]), max_turn=np.radians(45.0))
    first = scene_frames(span)[0]
    image = cv2.cvtColor(next(iter(iter_frames(args.video, start=first, stop=first + 1))), cv2.COLOR_RGB2BGR)
    picture = (0.6 * image).astype(np.uint8)
    for box in people_boxes(tracks.keypoints[first]):
        x0, y0, x1, y1 = box.astype(int)
        cv2.rectangle(picture, (x0, y0), (x1, y1), (160, 160, 160), 4)
    for s in lines.astype(int):
        cv2.line(picture, tuple(s[:2]), tuple(s[2:]), (0, 200, 255), 2)  # every segment: orange
    title = "no clear vertical"
    if found is not None:
        vv = k @ found.up
        for s in lines[toward(lines, vv)].astype(int):
            cv2.line(picture, tuple(s[:2]), tuple(s[2:]), (0, 255, 0), 5)
        for point, _, _ in horizontal_points(lines, vv)[:2]:
            for s in lines[toward(lines, point)].astype(int):
                cv2.line(picture, tuple(s[:2]), tuple(s[2:]), (255, 120, 0), 5)
        # the horizon: image points whose ray is at right angles to up
        hx = np.array([0.0, w - 1.0])
        a, b, c = np.linalg.inv(k).T @ found.up  # the horizon line a x + b y + c = 0 in pixels
        if abs(b) > 1e-9:
            hy = -(a * hx + c) / b
            cv2.line(picture, (0, int(hy[0])), (w - 1, int(hy[1])), (255, 255, 255), 3)
        pitch, roll = (np.degrees(v) for v in camera_pitch_roll(world_from_camera(found.up)))
        title = f"pitch {pitch:.1f} deg, roll {roll:.1f} deg: {found.lines} vertical segments"
    title += f"; focal length {f:.0f} px" + (" from the room" if focal is not None else " (default)")
    print(title)
    scale = 720 / h
    small = cv2.resize(picture, (int(w * scale), 720), interpolation=cv2.INTER_AREA)
    band = np.full((40, small.shape[1], 3), 255, np.uint8)
    for i, text in enumerate(title.split("; ")[:2]):
        cv2.putText(band, text, (6, 16 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(args.output, np.vstack([band, small]))
    print(f"-> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
