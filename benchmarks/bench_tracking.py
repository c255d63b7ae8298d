"""Multi-person tracking with one camera: identity switches on synthetic scenes, speed of the
multi-person 2D stage, and the people found in each camera of pose2sim_two_people.

    python benchmarks/bench_tracking.py [--seeds 5] [--skip-video] [--video-only]

1. Synthetic, known truth (tests/people_scene.py): three people (synthetic motion; the
   held-out CMU takes are not unpacked here) walk round each other, cross in front of each
   other, one is hidden behind another, one walks out of the picture for about 2.6 s and
   comes back; one 1920x1080 camera, 2 px noise, 10 % missed detections, 5 % left/right
   swaps, torso colour histograms sampled from 300 pixels. Identity switches (MOT-style) and
   tracks made, with and without the appearance cue.
2. Speed: the multi-person 2D stage (PyTorch BlazePose tracking every person, torso
   histograms, tracker) on ../shared/data/video/pose2sim_two_people/videos/cam01.mp4 (1088x1920,
   60 fps, 100 frames, two people), against decoding alone. The load average is printed: on
   a shared machine a timing is only a figure when the machine is otherwise idle.
3. Each camera of pose2sim_two_people on its own: the tracks found (id, frames, median box).
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
TWO = ROOT.parent / "shared" / "data" / "video" / "pose2sim_two_people" / "videos"


def synthetic(seeds: int) -> None:
    from mocap.detect2d.tracking import identity_switches, track_people
    from tests.people_scene import people_scene

    print("synthetic, one camera: 3 people, crossings, an occlusion, one leaves for ~2.6 s and returns;")
    print("2 px noise, 10 % missed detections, 5 % left/right swaps (300 frames at 30 fps each)")
    totals = {"with appearance": [0, 0], "without": [0, 0]}
    for seed in range(seeds):
        s = people_scene(seed)
        row = []
        for label, look in (("with appearance", s.appearance), ("without", None)):
            t0 = time.perf_counter()
            ids = track_people(s.keypoints, s.confidence, s.scores, appearance=look)
            dt = time.perf_counter() - t0
            sw, n = identity_switches(ids, s.true_ids), int(ids.max()) + 1
            totals[label][0] += sw
            totals[label][1] += n
            row.append(f"{label}: {sw} switches, {n} tracks ({len(ids) / dt:.0f} frames/s)")
        print(f"  seed {seed}: " + "; ".join(row))
    for label, (sw, n) in totals.items():
        print(f"  total {label}: {sw} identity switches, {n} tracks for {3 * seeds} people")


def _load() -> str:
    return "load average %.2f %.2f %.2f on %d cores" % (*os.getloadavg(), os.cpu_count() or 0)


def speed(video: Path, device: str) -> None:
    import contextlib

    from mocap.detect2d.estimators import get_estimator
    from mocap.detect2d.mediapipe_pose import _prefetch
    from mocap.detect2d.people import MAX_PEOPLE, detect_people_frames
    from mocap.io.video import iter_frames, probe_video

    info = probe_video(video)
    print(f"speed, {video.name} ({info.size[0]}x{info.size[1]}, {info.fps:.0f} fps, {info.frame_count} frames), "
          f"device {device}; before: {_load()}")
    t0 = time.perf_counter()
    n = sum(1 for _ in iter_frames(video))
    decode = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    estimator = get_estimator("blazepose-torch", device=device, max_people=MAX_PEOPLE)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    with contextlib.closing(_prefetch(iter_frames(video, rgb=True))) as frames:  # as detect_people_video does
        tracks = detect_people_frames(frames, info.fps, info.size, estimator=estimator, progress=False)
    stage = tracks.num_frames / (time.perf_counter() - t0)
    people = len(tracks.people(min_seconds=1.0))
    print(f"  decoding alone: {decode:.1f} frames/s; building the networks: {build:.1f} s (once per run)")
    print(f"  multi-person 2D stage (decode + blazepose-torch tracking + torso histograms + tracker, {people} "
          f"people seen for 1 s or more): {stage:.1f} frames/s ({stage / 30:.2f}x real time for 30 fps)")
    print(f"  after: {_load()}")


def cameras(device: str) -> None:
    from mocap.detect2d.people import detect_people_video
    from mocap.detect2d.tracking import implausible_jumps

    print("pose2sim_two_people, each camera on its own (blazepose-torch):")
    for video in sorted(TWO.glob("cam*.mp4")):
        tracks = detect_people_video(video, detector="blazepose-torch", device=device, progress=False)
        people = tracks.people(min_seconds=0.0)
        print(f"  {video.stem}: {len(tracks.track_list())} tracks; people per frame "
              f"{np.bincount((tracks.track_ids >= 0).sum(1)).tolist()} (frames with 0, 1, 2, ... people)")
        for e in tracks.summary():
            k = people[e["id"]]
            jumps = implausible_jumps(k.keypoints, k.confidence, k.layout, k.fps)
            print(f"    id {e['id']}: frames {e['first_frame']}-{e['last_frame']}, seen in {e['frames_visible']}, "
                  f"median box {e['median_box']}, impossible 2D jumps: {len(jumps)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-video", action="store_true", help="only the synthetic scenes")
    p.add_argument("--video-only", action="store_true", help="only the real videos")
    a = p.parse_args()
    if not a.video_only:
        synthetic(a.seeds)
    if a.skip_video:
        return
    if not TWO.is_dir():
        print(f"{TWO} not found: the real-video parts are skipped")
        return
    speed(TWO / "cam01.mp4", a.device)
    cameras(a.device)


if __name__ == "__main__":
    main()
