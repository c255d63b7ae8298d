"""The multi-view pipeline: composes the stages; holds no numerics of its own.

videos -> 2D keypoints per view (detect) -> synchronisation checks (and frame offsets)
-> calibration (a file, or from the people in the shot) -> undistortion -> left/right swap
resolution and outlier-rejecting triangulation -> the monocular clean-up: 3D gap filling
and smoothing, world frame (levelled, grounded), constant bone lengths, inverse
kinematics, forward kinematics, foot locking -> files, reprojection errors and overlays
per view.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mocap import bones
from mocap.cleanup import filters
from mocap.cleanup import world
from mocap.camera import Camera
from mocap.errors import MocapError
from mocap.formats import Keypoints2D, Motion, atomic_path, save_keypoints, save_motion
from mocap.pipelines.capture import CleanupConfig, StageTimer, motion_from_world_joints, prepare_output_dir
from mocap.skeletons import MOTION21, get_layout, map_joints
from mocap.multiview.triangulate import reprojection_errors, triangulate_resolving_swaps, triangulate_robust


@dataclass(frozen=True)
class TriangulationConfig:
    """Triangulation settings; the fields mirror the stage's keyword arguments."""

    threshold_px: float = 40.0  # a view agrees with a point when it reprojects within this (pixels)
    min_confidence: float = 0.3  # 2D keypoints below this do not vote
    resolve_swaps: bool = True  # undo the detector's left/right swaps per view and frame


@dataclass(frozen=True)
class Triangulated:
    """Triangulated keypoints and their diagnostics.

    Attributes:
        points: (T, J, 3) world metres of the calibration, keypoint layout joints; NaN
            where fewer than two views agree.
        inliers: (C, T, J) bool, the views each point was triangulated from.
        swapped: (C, T) bool, views whose left and right were swapped back in that frame.
        reprojection_px: (C, T, J) pixel distance between the reprojected points and the
            detected keypoints (distorted pixels); NaN where either is missing.
    """

    points: np.ndarray
    inliers: np.ndarray
    swapped: np.ndarray
    reprojection_px: np.ndarray


def check_cameras(cameras: Sequence[Camera], views: Sequence[Keypoints2D], names: Sequence[str]) -> list[Camera]:
    """Cameras matched to the views, with intrinsics scaled to the views' image size.

    MocapError if the counts differ or an image size cannot come from the calibrated
    camera (aspect ratio changed); a warning when sizes differ by a crop of under 2 %.
    """
    if len(cameras) != len(views):
        raise MocapError(f"the calibration has {len(cameras)} cameras but {len(views)} videos were given; "
                         "give one video per calibrated camera, in the calibration's order")
    out = []
    for cam, view, name in zip(cameras, views, names):
        (cw, ch), (vw, vh) = cam.size, view.image_size
        if (cw, ch) == (vw, vh):
            out.append(cam)
            continue
        sx, sy = vw / cw, vh / ch
        if abs(sx - sy) < 0.01 * max(sx, sy) and abs(sx - 1) >= 0.02:
            k = np.diag([sx, sy, 1.0]) @ cam.K
            out.append(Camera(name=cam.name, size=(vw, vh), K=k, R=cam.R, t=cam.t, dist=cam.dist))
        elif abs(sx - 1) < 0.02 and abs(sy - 1) < 0.02:
            warnings.warn(f"{name}: calibrated for {cw}x{ch} pixels, the video is {vw}x{vh}; "
                          "using the calibration as it is (a crop at the right/bottom edge is harmless)")
            out.append(cam)
        else:
            raise MocapError(f"{name}: the calibration's camera {cam.name} is {cw}x{ch} pixels but the video is "
                             f"{vw}x{vh}; check the order of the videos against the calibration")
    return out


def triangulate_views(views: Sequence[Keypoints2D], cameras: Sequence[Camera], *,
                      config: TriangulationConfig = TriangulationConfig()) -> Triangulated:
    """Triangulate synchronised keypoints of C views (same layout, same T).

    Args:
        views: C Keypoints2D, distorted pixels.
        cameras: C calibrated cameras, metres.
    """
    layout = get_layout(views[0].layout)
    raw = np.stack([v.keypoints for v in views]).astype(np.float64)  # (C, T, J, 2)
    conf = np.stack([v.confidence for v in views]).astype(np.float64)
    w = np.where(np.isfinite(conf) & (conf >= config.min_confidence), conf, 0.0)
    px = np.stack([cam.undistort_pixels(k) for cam, k in zip(cameras, raw)])
    proj = np.stack([cam.projection for cam in cameras])
    swapped = np.zeros(raw.shape[:2], bool)
    if config.resolve_swaps and layout.left_right and len(cameras) > 2:
        _, swapped = triangulate_resolving_swaps(px, proj, w, layout.mirror_permutation(),
                                                 outlier_px=config.threshold_px)
        mirror = layout.mirror_permutation()
        px = np.where(swapped[..., None, None], px[:, :, mirror], px)
        raw = np.where(swapped[..., None, None], raw[:, :, mirror], raw)
        w = np.where(swapped[..., None], w[:, :, mirror], w)
    points, inliers = triangulate_robust(px, proj, w, threshold_px=config.threshold_px)
    return Triangulated(points=points, inliers=inliers, swapped=swapped,
                        reprojection_px=reprojection_errors(points, cameras, raw))


def reprojection_summary(tri: Triangulated, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per view: median, mean and 90th-percentile reprojection error (pixels) over every keypoint
    the view detected; the median over the keypoints that view was triangulated from
    (``inlier_median_px``, the convention of Pose2Sim's reports); the inlier share."""
    out = {}
    for c, name in enumerate(names):
        e = tri.reprojection_px[c]
        used = e[np.isfinite(e) & tri.inliers[c]]
        e = e[np.isfinite(e)]
        seen = np.isfinite(tri.points).all(-1)
        out[name] = {
            "median_px": float(np.median(e)) if e.size else float("nan"),
            "inlier_median_px": float(np.median(used)) if used.size else float("nan"),
            "mean_px": float(np.mean(e)) if e.size else float("nan"),
            "p90_px": float(np.percentile(e, 90)) if e.size else float("nan"),
            "inlier_fraction": float(tri.inliers[c][seen].mean()) if seen.any() else 0.0,
            "swapped_frames": int(tri.swapped[c].sum()),
        }
    return out


#: a view whose keypoints lie further from the reprojected joints than this share of the
#: person's height in that view (median over keypoints) is reported: BlazePose's own 2D
#: error is about 1 % of the height (7-9 px for a 750 px tall person on the Pose2Sim rig
#: with a rig that fits); a camera pose off by 3 degrees there gives 2.4 %.
MISFIT_SHARE = 0.02


def person_height_px(k: Keypoints2D, min_confidence: float = 0.5) -> float:
    """Median over frames of the vertical extent (pixels) of the keypoints detected with at
    least ``min_confidence``; NaN when no frame has two such keypoints."""
    ys = np.where(k.confidence >= min_confidence, k.keypoints[..., 1], np.nan)
    enough = np.isfinite(ys).sum(1) >= 2
    if not enough.any():
        return float("nan")
    return float(np.median(np.nanmax(ys[enough], 1) - np.nanmin(ys[enough], 1)))


def misfit_views(reprojection: dict[str, dict[str, float]], views: Sequence[Keypoints2D],
                 share: float = MISFIT_SHARE) -> dict[str, tuple[float, float]]:
    """Views whose median reprojection error exceeds ``share`` of the person's height there.

    Args:
        reprojection: :func:`reprojection_summary` of the views, in the order of ``views``.
    Returns:
        {view name: (median reprojection error px, person height px)}.
    """
    out = {}
    for (name, r), k in zip(reprojection.items(), views):
        height = person_height_px(k)
        if np.isfinite(r["median_px"]) and np.isfinite(height) and r["median_px"] > share * height:
            out[name] = (r["median_px"], height)
    return out


def motion_from_points(points: np.ndarray, layout: str, *, fps: float, cleanup: CleanupConfig = CleanupConfig(),
                       timer: StageTimer | None = None) -> tuple[Motion, np.ndarray, np.ndarray]:
    """Triangulated keypoints -> clean MOTION21 motion with IK (the monocular clean-up stages).

    Args:
        points: (T, J, 3) metres in the calibration's world, joints of ``layout``.
    Returns:
        (Motion (+Y up, feet on y = 0), rotation (3, 3), offset (3,)) with
        ``motion.joints = calibration_world @ rotation.T + offset``.
    """
    timer = timer or StageTimer()
    with timer.stage("smooth"):
        joints = map_joints(points, layout, MOTION21)
        joints = filters.hold_nearest(filters.fill_gaps(joints, max_gap_s=cleanup.max_gap_s, fps=fps))
        if not np.isfinite(joints).all():
            raise MocapError("no joint was triangulated in any frame: check that the calibration belongs to these "
                             "videos and that the person is visible in at least two views")
        joints = filters.lowpass(joints, fps=fps, cutoff_hz=cleanup.cutoff_hz)
    with timer.stage("world frame"):
        # the calibration's world has its own up axis: the torso sets +Y (unless ``level`` is
        # off: then the calibration's +Y is kept), the feet the floor
        joints, rot, offset = world.level_and_ground(joints, level=cleanup.level)
    motion = motion_from_world_joints(joints, fps=fps, cleanup=cleanup, timer=timer)
    return motion, rot, offset


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


def detect_view(video: str | os.PathLike, *, detector: str = "blazepose-torch", device: str = "cpu",
                progress: bool = True) -> Keypoints2D:
    """The 2D keypoints of the main person in one view.

    ``"blazepose-torch"`` (the multi-view default): MediaPipe's BlazePose networks, tracked
    frame to frame, without MediaPipe's temporal landmark smoothing, whose lag shifts a
    moving joint differently in each view. On the Pose2Sim rig this gave lower reprojection
    errors and steadier bone lengths than MediaPipe's VIDEO mode (benchmarks/bench_multiview.py).
    ``"blazepose-tta"``: the same with test-time augmentation (the median of 12 mirrored,
    scaled, shifted and turned crops per frame; 12 times the landmark cost).
    ``"mediapipe"``: MediaPipe's own VIDEO mode. Any other estimator name: everyone
    detected and tracked, the largest person kept.
    """
    if detector == "mediapipe":
        from mocap.detect2d.mediapipe_pose import detect_video

        return detect_video(video, progress=progress)
    from mocap.detect2d.estimators import BLAZEPOSE_TORCH, get_estimator

    if detector in BLAZEPOSE_TORCH:
        import sys

        from tqdm import tqdm

        from mocap.detect2d.estimators.blazepose_torch import NUM_JOINTS
        from mocap.io.video import iter_frames, probe_video

        info = probe_video(video)
        frames = tqdm(iter_frames(video, rgb=True), total=info.frame_count, desc=f"{Path(video).name} (2D)",
                      unit="frame", file=sys.stderr, disable=not progress)
        est = get_estimator(detector, device=device).video(frames)  # either BlazePose class of the registry
        kp = est.keypoints[:, 0] if est.keypoints.shape[1] else np.full((est.keypoints.shape[0], NUM_JOINTS, 2), np.nan)
        conf = est.confidence[:, 0] if est.confidence.shape[1] else np.zeros(kp.shape[:2])
        return Keypoints2D(keypoints=kp.astype(np.float32), confidence=np.nan_to_num(conf).astype(np.float32),
                           layout="mediapipe33", image_size=info.size, fps=info.fps)
    from mocap.detect2d.people import detect_people_video

    return detect_people_video(video, detector=detector, device=device, progress=progress).person("largest")


def _calibrate(views: Sequence[Keypoints2D], names: Sequence[str], cameras: Sequence[Camera] | None,
               calibration, *, auto: bool, refine: bool, body_height_m: float | None, focal_px: float | None,
               timer: StageTimer) -> tuple[list[Camera], str]:
    """The cameras for synchronised ``views``: from the person (``auto``), the file's
    ``cameras`` refined to the person (``refine``), or the file's as they are; and a line
    saying where they come from."""
    kp = np.stack([v.keypoints for v in views]).astype(np.float64)
    cf = np.stack([v.confidence for v in views]).astype(np.float64)
    if auto:
        from mocap.multiview.calibration import calibrate_from_people, guess_intrinsics

        with timer.stage("calibrate from people"):
            intr = [guess_intrinsics(v.image_size, focal_px=focal_px, name=n) for n, v in zip(names, views)]
            # a guessed field of view is corrected by the adjustment; a stated focal length is kept
            cams, people = calibrate_from_people(kp, cf, intr, body_height_m=body_height_m, layout=views[0].layout,
                                                 refine_focal=focal_px is None)
        return cams, (f"from the person (body height {body_height_m:.2f} m, focal length "
                      f"{cams[0].K[0, 0]:.0f} px, bundle adjustment median "
                      f"{', '.join(f'{e:.1f}' for e in people.reprojection_px)} px)")
    if not refine:
        return list(cameras), str(calibration)
    from mocap.multiview.calibration import compare_rigs, refine_extrinsics

    with timer.stage("refine calibration"):
        refined, _ = refine_extrinsics(cameras, kp, cf, layout=views[0].layout)
        turned, _ = compare_rigs(refined, cameras)
        moved = [float(np.linalg.norm(a.position - b.position)) for a, b in zip(refined, cameras)]
    return refined, (f"{calibration} refined from the person (poses moved by up to "
                     f"{max(turned):.1f} deg, {1000 * max(moved):.0f} mm)")


def capture_multiview(
    videos: Sequence[str | os.PathLike],
    outdir: str | os.PathLike,
    *,
    calibration: str | os.PathLike = "auto",
    sync: str = "none",
    body_height_m: float | None = None,
    focal_px: float | None = None,
    refine_calibration: bool = False,
    cleanup: CleanupConfig = CleanupConfig(),
    triangulation: TriangulationConfig = TriangulationConfig(),
    max_offset: int = 30,
    overlay: bool = True,
    overlay_max_width: int | None = 720,
    progress: bool = True,
    keypoints: Sequence[Keypoints2D] | None = None,
    detector: str = "blazepose-torch",
    device: str = "cpu",
) -> MultiViewReport:
    """Capture one person filmed by several cameras; write everything into ``outdir``.

    Writes ``keypoints2d_<view>.npz`` per view, ``motion.npz``, ``motion.bvh``,
    ``calibration.toml`` (the cameras used), ``reprojection.json`` (errors per view) and,
    unless turned off, ``overlay_<view>.mp4`` (the final 3D skeleton reprojected).

    Args:
        videos: C >= 2 video files, one per camera.
        calibration: a calibration file (see :func:`mocap.io.calibration_files.load_calibration`)
            or ``"auto"``: calibrate from the person (needs ``body_height_m``; intrinsics
            from ``focal_px``, or a 55 degree field of view whose focal length, shared by
            the cameras, the bundle adjustment then corrects).
        sync: ``"none"`` (the views must have equal lengths) or ``"auto"`` (estimate
            constant frame offsets, keep the frames all views share).
        body_height_m: the person's standing height, metres (scale of ``auto``).
        refine_calibration: adjust the file's camera poses to the person's keypoints
            (bundle adjustment; world frame, scale and intrinsics kept) before triangulating.
        keypoints: C already detected keypoint sets (skips detection).
        detector: the 2D estimator (see :func:`detect_view`); ``device`` its torch device.
    """
    from mocap.io import bvh
    from mocap.io import video as video_io
    from mocap.multiview import sync as sync_mod
    from mocap.io.calibration_files import load_calibration, save_cameras_toml

    videos = [Path(v) for v in videos]
    if len(videos) < 2:
        raise MocapError("multi-view capture needs at least two videos")
    if sync not in ("none", "auto"):
        raise MocapError(f"--sync must be 'none' or 'auto', got {sync!r}")
    names = [v.stem for v in videos]
    if len(set(names)) != len(names):
        names = [f"view{i + 1}_{n}" for i, n in enumerate(names)]
    infos = [video_io.probe_video(v) for v in videos]
    auto = str(calibration) == "auto"
    cameras = None if auto else load_calibration(calibration)  # fail early, before detection
    if cameras is not None and len(cameras) != len(videos):
        raise MocapError(f"the calibration {calibration} has {len(cameras)} cameras but {len(videos)} videos were "
                         "given; give one video per calibrated camera, in the calibration's order")
    if auto and body_height_m is None:
        raise MocapError("--calibration auto needs the person's height for the scale: pass --body-height METRES")
    out = prepare_output_dir(outdir)
    timer = StageTimer()
    outputs: dict[str, Path] = {}
    notes: list[str] = []

    with timer.stage("detect 2D"):
        if keypoints is None:
            keypoints = [detect_view(v, detector=detector, device=device, progress=progress) for v in videos]
        elif len(keypoints) != len(videos):
            raise ValueError(f"{len(keypoints)} keypoint sets for {len(videos)} videos")
    for name, k in zip(names, keypoints):
        outputs[f"keypoints_{name}"] = out / f"keypoints2d_{name}.npz"
        save_keypoints(outputs[f"keypoints_{name}"], k)
    rates = [k.detection_rate() for k in keypoints]
    empty = [n for n, r in zip(names, rates) if r == 0.0]
    if empty:
        raise MocapError(f"nobody was found in {', '.join(empty)}; every view must see the person "
                         "(remove that video and its camera from the calibration)")
    for n, r in zip(names, rates):
        if r < 0.5:
            notes.append(f"{n}: the person was detected in only {100 * r:.0f} % of the frames")
    if cameras is not None:
        # match cameras to videos by name when the calibration names them like the videos
        by_name = {c.name: c for c in cameras}
        if set(by_name) == set(names):
            cameras = [by_name[n] for n in names]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cameras = check_cameras(cameras, keypoints, names)
        notes += [str(w.message) for w in caught]

    with timer.stage("synchronise"):
        sync_mod.check_views(keypoints, names, same_length=(sync == "none"))
        offsets = np.zeros(len(videos), dtype=int)
        all_kp, all_conf = [k.keypoints for k in keypoints], [k.confidence for k in keypoints]
        if sync == "auto":
            offsets = sync_mod.estimate_frame_offsets(all_kp, all_conf, cameras=cameras, max_offset=max_offset)

    file_cameras = cameras
    adjusts = auto or refine_calibration
    tried: list[list[int]] = []
    # A calibration that is fitted to the person (from people, or the file's refined) also
    # checks the offsets: a wrong rig can favour a wrong offset, and a wrong offset a wrong
    # rig, so offsets and rig are estimated again in turn until the offsets hold (3 rounds).
    for _ in range(3):
        tried.append([int(o) for o in offsets])
        starts, _ = sync_mod.common_span([k.num_frames for k in keypoints], offsets)
        views = sync_mod.apply_offsets(keypoints, offsets)
        cameras, calib_text = _calibrate(views, names, file_cameras, calibration, auto=auto,
                                         refine=refine_calibration, body_height_m=body_height_m,
                                         focal_px=focal_px, timer=timer)
        if sync != "auto" or not adjusts:
            break
        with timer.stage("synchronise"):
            again = sync_mod.estimate_frame_offsets(all_kp, all_conf, cameras=cameras, max_offset=max_offset)
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
        tri = triangulate_views(views, cameras, config=triangulation)
    motion, rot, offset = motion_from_points(tri.points, views[0].layout, fps=fps, cleanup=cleanup, timer=timer)

    with timer.stage("write files"):
        outputs["motion"] = out / "motion.npz"
        save_motion(outputs["motion"], motion)
        outputs["bvh"] = out / "motion.bvh"
        bvh.write_motion_bvh(outputs["bvh"], motion)
        outputs["calibration"] = out / "calibration.toml"
        save_cameras_toml(outputs["calibration"], cameras,
                          metadata={"source": calib_text, "frame_offsets": [int(o) for o in offsets]})
        reproj = reprojection_summary(tri, names)
        misfit = misfit_views(reproj, views)
        if misfit:  # one view off pulls the joints, so the others can show it too: the rig is named, no culprit
            if not adjusts:
                hint = "a camera may have moved since the calibration: try --refine-calibration"
            elif sync == "none":
                hint = "the views may be out of step (try --sync auto) or the person poorly seen there"
            else:
                hint = "the person may be poorly seen there"
            notes.append("the calibration does not fit the keypoints well: median reprojection error "
                         + ", ".join(f"{n} {e:.1f} px ({100 * e / h:.1f} % of the person's {h:.0f} px height)"
                                     for n, (e, h) in misfit.items())
                         + f", where about 1 % is usual; {hint}")
        joints_tri = map_joints(tri.points, views[0].layout, MOTION21)
        cv = bones.bone_length_cv(joints_tri, MOTION21.parents)
        cv_med = float(np.nanmedian(cv[1:])) if np.isfinite(cv[1:]).any() else float("nan")
        outputs["reprojection"] = out / "reprojection.json"
        with atomic_path(outputs["reprojection"]) as tmp:
            tmp.write_text(json.dumps({"views": reproj, "frame_offsets": [int(o) for o in offsets],
                                       "bone_length_cv_median": cv_med, "calibration": calib_text}, indent=2))

    if overlay:
        with timer.stage("overlays"):
            final_calib = (motion.joints - offset) @ rot  # back into the calibration's world
            for name, video, info, cam, s, view in zip(names, videos, infos, cameras, starts, views):
                outputs[f"overlay_{name}"] = out / f"overlay_{name}.mp4"
                px = cam.project(final_calib)
                frames = np.full((s + len(px),) + px.shape[1:], np.nan)
                frames[s:] = px
                _write_overlay(video, outputs[f"overlay_{name}"], frames[: min(len(frames), info.frame_count)],
                               size=view.image_size, fps=fps, max_width=overlay_max_width)
    return MultiViewReport(outputs=outputs, num_frames=motion.num_frames, fps=fps, names=names,
                           offsets=[int(o) for o in offsets], reprojection=reproj, calibration=calib_text,
                           bone_length_cv=cv_med, seconds=timer.seconds, notes=notes)

