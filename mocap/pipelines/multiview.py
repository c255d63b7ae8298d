"""The multi-view pipeline: composes the stages; holds no numerics of its own.

videos -> 2D keypoints per view (detect) -> synchronisation checks (and frame offsets)
-> calibration (a file, or from the people in the shot) -> undistortion -> left/right swap
resolution and outlier-rejecting triangulation -> the monocular clean-up: 3D gap filling
and smoothing, world frame (levelled, grounded), constant bone lengths, inverse
kinematics, forward kinematics, foot locking -> files, reprojection errors and overlays
per view.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mocap.cleanup import motion as cleanup_motion
from mocap.detect2d.options import require_person
from mocap.errors import MocapError
from mocap.formats import Keypoints2D, atomic_path, save_keypoints, save_motion
from mocap.multiview import quality, rig
from mocap.multiview.views import reproject_to_view, triangulate_views
from mocap.pipelines.capture import StageTimer, prepare_output_dir
from mocap.pipelines.options import CaptureOptions
from mocap.skeletons import MOTION21


@dataclass
class MultiViewReport:
    """What the multi-view capture did: files, frames, offsets, errors per view, time per stage."""

    outputs: dict[str, Path]
    num_frames: int
    fps: float
    names: list[str]
    offsets: list[int]
    reprojection: dict[str, dict[str, float]]
    calibration: str
    bone_length_cv: float
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"views: {len(self.names)} ({', '.join(self.names)}), {self.num_frames} synchronised frames "
                 f"at {self.fps:.2f} fps", f"calibration: {self.calibration}",
                 f"frame offsets against {self.names[0]}: {self.offsets}",
                 "reprojection error per view (median / 90th percentile; median over the keypoints the view was "
                 "triangulated from; inliers; swapped frames):"]
        for name, r in self.reprojection.items():
            lines.append(f"  {name}: {r['median_px']:.1f} / {r['p90_px']:.1f} px; {r['inlier_median_px']:.1f} px; "
                         f"{100 * r['inlier_fraction']:.0f} %; {r['swapped_frames']}")
        lines.append(f"bone length variation (median CV over bones of the triangulated joints): "
                     f"{100 * self.bone_length_cv:.1f} %")
        lines += [f"note: {n}" for n in self.notes]
        lines.append("time per stage:")
        width = max(len(k) for k in self.seconds)
        lines += [f"  {k:<{width}}  {s:7.2f} s" for k, s in self.seconds.items()]
        lines.append("outputs:")
        lines += [f"  {p}" for p in self.outputs.values()]
        return "\n".join(lines)


def _write_overlay(video: Path, out: Path, keypoints: np.ndarray, *, size, fps: float, max_width: int | None) -> None:
    from mocap.export import draw
    from mocap.io import video as video_io

    with draw.OverlayWriter(out, keypoints_size=size, fps=fps, layout=MOTION21, num_frames=len(keypoints),
                            max_width=max_width, source=str(video)) as writer:
        for i, frame in enumerate(video_io.iter_frames(video, rgb=True)):
            if i >= len(keypoints):
                break
            writer.write(frame, keypoints[i], None)


def check_view_count(videos: Sequence[str | os.PathLike]) -> None:
    """MocapError unless there are two videos or more (one per camera)."""
    if len(videos) < 2:
        raise MocapError("--calibration is for several views: give two or more videos (one per camera)")


def _check_request(videos: Sequence[Path], options: CaptureOptions) -> None:
    """MocapError for a multi-view request that cannot run, before anything is detected."""
    check_view_count(videos)
    if options.multiview.calibration is None:
        raise MocapError(f"{len(videos)} videos need a calibration: pass --calibration FILE (.toml, .qca.txt, .yml) "
                         "or --calibration auto with --body-height METRES")
    if options.export.target is not None or options.export.avatar is not None:
        raise MocapError("--target and --avatar work with one video for now: retarget the multi-view motion.npz "
                         "with: mocap retarget OUT/motion.npz --target CHARACTER -o OUT/character.fbx")


def _view_names(videos: Sequence[Path]) -> list[str]:
    names = [v.stem for v in videos]
    if len(set(names)) != len(names):
        names = [f"view{i + 1}_{n}" for i, n in enumerate(names)]
    return names


def capture_multiview(
    videos: Sequence[str | os.PathLike],
    outdir: str | os.PathLike,
    options: CaptureOptions = CaptureOptions(),
    *,
    keypoints: Sequence[Keypoints2D] | None = None,
    progress: bool = True,
) -> MultiViewReport:
    """Capture one person filmed by several cameras; write everything into ``outdir``.

    Writes ``keypoints2d_<view>.npz`` per view, ``motion.npz``, ``motion.bvh``,
    ``calibration.toml`` (the cameras used), ``reprojection.json`` (errors per view) and,
    unless turned off, ``overlay_<view>.mp4`` (the final 3D skeleton reprojected).

    Args:
        videos: C >= 2 video files, one per camera.
        options: the options of every stage; ``options.multiview`` (:class:`mocap.multiview.options.MultiViewOptions`):
            ``calibration``, a file (see :func:`mocap.io.calibration_files.load_calibration`)
            or ``"auto"``: calibrate from the person (needs ``body_height_m``; intrinsics
            from ``options.lifting.focal_px``, or a 55 degree field of view whose focal
            length, shared by the cameras, the bundle adjustment then corrects);
            ``sync``, ``"none"`` (the views must have equal lengths) or ``"auto"`` (estimate
            constant frame offsets, keep the frames all views share); ``refine_calibration``,
            adjust the file's camera poses to the person's keypoints (bundle adjustment; world
            frame, scale and intrinsics kept) before triangulating.
        keypoints: C already detected keypoint sets (skips detection).
        progress: progress bars on stderr.
    """
    from mocap.detect2d.views import detect_view
    from mocap.io import bvh
    from mocap.io import video as video_io
    from mocap.io.calibration_files import load_calibration, save_cameras_toml
    from mocap.multiview import sync as sync_mod

    mv, export = options.multiview, options.export
    videos = [Path(v) for v in videos]
    _check_request(videos, options)
    names = _view_names(videos)
    infos = [video_io.probe_video(v) for v in videos]
    cameras = None if mv.auto_calibration else load_calibration(mv.calibration)  # fail early, before detection
    if cameras is not None and len(cameras) != len(videos):
        raise MocapError(f"the calibration {mv.calibration} has {len(cameras)} cameras but {len(videos)} videos were "
                         "given; give one video per calibrated camera, in the calibration's order")
    out = prepare_output_dir(outdir)
    timer = StageTimer()
    outputs: dict[str, Path] = {}
    notes: list[str] = []

    with timer.stage("detect 2D"):
        if keypoints is None:
            detector, device = options.detection.detector_for(len(videos)), options.detection.device
            keypoints = [detect_view(v, detector=detector, device=device, progress=progress) for v in videos]
        elif len(keypoints) != len(videos):
            raise ValueError(f"{len(keypoints)} keypoint sets for {len(videos)} videos")
    for name, k in zip(names, keypoints):
        outputs[f"keypoints_{name}"] = out / f"keypoints2d_{name}.npz"
        save_keypoints(outputs[f"keypoints_{name}"], k)
    rates = require_person(keypoints, names, hint="every view must see the person "
                           "(remove that video and its camera from the calibration)")
    notes += [f"{n}: the person was detected in only {100 * r:.0f} % of the frames"
              for n, r in zip(names, rates) if r < 0.5]
    if cameras is not None:
        cameras, caught = rig.match_cameras(cameras, keypoints, names)
        notes += caught

    with timer.stage("synchronise"):
        sync_mod.check_views(keypoints, names, same_length=(mv.sync == "none"))
        offsets = np.zeros(len(videos), dtype=int)
        all_kp, all_conf = [k.keypoints for k in keypoints], [k.confidence for k in keypoints]
        if mv.sync == "auto":
            offsets = sync_mod.estimate_frame_offsets(all_kp, all_conf, cameras=cameras, max_offset=mv.max_offset)

    file_cameras = cameras
    adjusts = mv.auto_calibration or mv.refine_calibration
    tried: list[list[int]] = []
    # A calibration that is fitted to the person (from people, or the file's refined) also
    # checks the offsets: a wrong rig can favour a wrong offset, and a wrong offset a wrong
    # rig, so offsets and rig are estimated again in turn until the offsets hold (3 rounds).
    for _ in range(3):
        tried.append([int(o) for o in offsets])
        starts, _ = sync_mod.common_span([k.num_frames for k in keypoints], offsets)
        views = sync_mod.apply_offsets(keypoints, offsets)
        cameras, calib_text = rig.fit_rig(views, names, file_cameras, mv.calibration, auto=mv.auto_calibration,
                                          refine=mv.refine_calibration, body_height_m=mv.body_height_m,
                                          focal_px=options.lifting.focal_px, stage=timer.stage)
        if mv.sync != "auto" or not adjusts:
            break
        with timer.stage("synchronise"):
            again = sync_mod.estimate_frame_offsets(all_kp, all_conf, cameras=cameras, max_offset=mv.max_offset)
        if np.array_equal(again, offsets):
            break
        offsets = again
    else:
        offsets = np.asarray(tried[-1])  # the offsets the views and the rig were last fitted with
        notes.append(f"frame offsets did not settle: tried {tried}; the rig was fitted with the last")
    if len(tried) > 1:
        notes.append(f"frame offsets {tried[0]} became {tried[-1]} with the cameras fitted to the person")
    fps = views[0].fps

    with timer.stage("triangulate"):
        tri = triangulate_views(views, cameras, **dataclasses.asdict(mv.triangulation))
    c = options.cleanup
    motion, rot, offset = cleanup_motion.motion_from_points(tri.points, views[0].layout, fps=fps,
                                                            max_gap_s=c.max_gap_s, cutoff_hz=c.cutoff_hz,
                                                            level=c.level, lock_feet=c.lock_feet, stage=timer.stage)

    with timer.stage("write files"):
        outputs["motion"] = out / "motion.npz"
        save_motion(outputs["motion"], motion)
        outputs["bvh"] = out / "motion.bvh"
        bvh.write_motion_bvh(outputs["bvh"], motion, units=export.bvh_units)
        outputs["calibration"] = out / "calibration.toml"
        save_cameras_toml(outputs["calibration"], cameras,
                          metadata={"source": calib_text, "frame_offsets": [int(o) for o in offsets]})
        reproj = quality.reprojection_summary(tri, names)
        misfit = quality.misfit_views(reproj, views)
        if misfit:
            if not adjusts:
                hint = "a camera may have moved since the calibration: try --refine-calibration"
            elif mv.sync == "none":
                hint = "the views may be out of step (try --sync auto) or the person poorly seen there"
            else:
                hint = "the person may be poorly seen there"
            notes.append(quality.misfit_note(misfit, hint))
        cv_med = quality.median_bone_length_cv(tri.points, views[0].layout)
        outputs["reprojection"] = out / "reprojection.json"
        with atomic_path(outputs["reprojection"]) as tmp:
            tmp.write_text(json.dumps({"views": reproj, "frame_offsets": [int(o) for o in offsets],
                                       "bone_length_cv_median": cv_med, "calibration": calib_text}, indent=2))

    if export.overlay:
        with timer.stage("overlays"):
            for name, video, info, cam, s, view in zip(names, videos, infos, cameras, starts, views):
                outputs[f"overlay_{name}"] = out / f"overlay_{name}.mp4"
                px = reproject_to_view(motion.joints, rot, offset, cam, start=s, num_frames=info.frame_count)
                _write_overlay(video, outputs[f"overlay_{name}"], px, size=view.image_size, fps=fps,
                               max_width=export.overlay_max_width)
    return MultiViewReport(outputs=outputs, num_frames=motion.num_frames, fps=fps, names=names,
                           offsets=[int(o) for o in offsets], reprojection=reproj, calibration=calib_text,
                           bone_length_cv=cv_med, seconds=timer.seconds, notes=notes)
