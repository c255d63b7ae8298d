"""Gravity from the room's vertical lines (mocap.fit.scene) on the eight real Pose2Sim cameras.

    python benchmarks/bench_scene.py [--data ../shared/data/video]

For each camera of pose2sim_single and pose2sim_two_people: the three frames `mocap capture`
looks at (start, middle, end), their straight segments (no people left out: no detection is
run here), and the vertical vanishing point from a level camera's first guess (up to 40 deg
off), with the calibration's focal length and with the default one `mocap capture` assumes
(55 deg across the long side). Prints the pitch and roll against the Qualisys calibration's,
and the time the segments and the vanishing point take (run it on an idle machine for that).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from mocap.camera import intrinsic_matrix
    from mocap.fit.ground import camera_pitch_roll, world_from_camera
    from mocap.fit.scene import vertical_up
    from mocap.io.calibration_files import load_calibration
    from mocap.io.video import probe_video
    from mocap.lift.lifters import default_focal_px
    from mocap.pipelines.scene import scene_lines

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "video"))
    args = p.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'clip':<20} {'camera':<6} {'calibration':>16} {'scene, its focal':>18} {'scene, default focal':>21} "
          f"{'lines':>6} {'segments s':>11} {'vertical s':>11}")
    errors = {"its": [], "default": []}
    for clip in ("pose2sim_single", "pose2sim_two_people"):
        data = Path(args.data) / clip
        if not data.is_dir():
            print(f"{clip}: not found under {args.data}")
            continue
        for cam in load_calibration(data / "calibration" / "Calib.qca.txt"):
            video = data / "videos" / f"{cam.name}.mp4"
            info = probe_video(video)
            t0 = time.perf_counter()
            seg = scene_lines(video, np.full((info.frame_count, 0, 33, 2), np.nan), (0, info.frame_count))
            t1 = time.perf_counter()
            truth = [np.degrees(v) for v in camera_pitch_roll(world_from_camera(cam.R @ np.array([0.0, 0.0, 1.0])))]
            cells, lines, t_vp = [], 0, 0.0
            for key, focal in (("its", cam.K[0, 0]), ("default", default_focal_px(info.size))):
                k = intrinsic_matrix(focal, (cam.K[0, 2], cam.K[1, 2]))
                t2 = time.perf_counter()
                found = vertical_up(seg, k, np.array([0.0, -1.0, 0.0]), max_turn=np.radians(40.0))
                t_vp = time.perf_counter() - t2
                if found is None:
                    cells.append("none")
                    continue
                pitch, roll = (np.degrees(v) for v in camera_pitch_roll(world_from_camera(found.up)))
                errors[key].append((pitch - truth[0], roll - truth[1]))
                cells.append(f"{pitch:5.1f} / {roll:5.1f}")
                lines = found.lines
            print(f"{clip:<20} {cam.name:<6} {truth[0]:7.1f} / {truth[1]:5.1f} {cells[0]:>18} {cells[1]:>21} {lines:6d} "
                  f"{t1 - t0:11.2f} {t_vp:11.2f}")
    for key, label in (("its", "the calibration's focal"), ("default", "the default focal")):
        e = np.abs(np.array(errors[key]))
        if len(e):
            print(f"{label}: pitch off by {e[:, 0].mean():.2f} deg mean, {e[:, 0].max():.2f} worst; roll "
                  f"{e[:, 1].mean():.2f} mean, {e[:, 1].max():.2f} worst ({len(e)} cameras)")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
