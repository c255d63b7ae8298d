"""The monocular pipeline: composes the stages; holds no numerics of its own.

video -> 2D keypoints (detect) -> 2D gap filling -> lifter (root-relative 3D, camera frame)
-> root trajectory -> world frame, levelled and grounded -> 3D gap filling and smoothing
-> constant bone lengths -> inverse kinematics -> forward kinematics -> planted feet locked
on the ground -> files.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from mocap import bones
from mocap.cleanup import contact
from mocap.cleanup import filters
from mocap.kinematics import ik as kinematics
from mocap.detect2d import swaps
from mocap.cleanup import world
from mocap.errors import MocapError
from mocap.formats import Keypoints2D, Motion, save_keypoints, save_motion
from mocap.lift.lifters import Lifter, default_focal_px, estimate_root_translation, get_lifter
from mocap.skeletons import MOTION21, map_confidence, map_joints, rest_offsets


@dataclass(frozen=True)
class CleanupConfig:
    """Clean-up settings; the fields mirror the stages' keyword arguments."""

    min_confidence: float = 0.3  # 2D keypoints below this are treated as missing
    max_gap_s: float = 0.5  # gaps up to this long are interpolated; longer ones are held
    cutoff_hz: float = 6.0  # Butterworth low-pass of the root-relative joints
    root_cutoff_hz: float = 3.0  # Butterworth low-pass of the root trajectory (depth is noisy)
    level: bool = True  # correct camera pitch/roll from the body axis
    lock_feet: bool = True  # pin planted feet on the ground (mocap.cleanup.contact)
    resolve_swaps: bool = True  # undo the 2D detector's left/right swaps from motion continuity (mocap.detect2d.swaps)


@dataclass
class StageTimer:
    """Wall-clock seconds per stage, in the order the stages ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def lift_keypoints(
    keypoints: Keypoints2D,
    *,
    lifter: str | Lifter = "auto",
    focal_px: float | None = None,
    cleanup: CleanupConfig = CleanupConfig(),
    timer: StageTimer | None = None,
) -> Motion:
    """2D keypoints -> clean 3D motion of MOTION21 with IK (local rotations, root translation).

    Args:
        keypoints: 2D keypoints (any supported layout) of T frames.
        lifter: ``auto``, ``network`` or ``mediapipe``, or a lifter already built.
        focal_px: camera focal length in pixels; default from a 55 degree field of view.
    Returns:
        Motion with joints (T, 21, 3) metres, +Y up, feet on y = 0, constant bone lengths.
    """
    timer = timer or StageTimer()
    fps = keypoints.fps
    f = focal_px if focal_px is not None else default_focal_px(keypoints.image_size)
    principal = (keypoints.image_size[0] / 2.0, keypoints.image_size[1] / 2.0)

    if cleanup.resolve_swaps:
        with timer.stage("left/right swaps"):
            keypoints, _ = swaps.resolve_swaps(keypoints, min_confidence=cleanup.min_confidence)

    with timer.stage("fill 2D gaps"):
        conf = keypoints.confidence
        kp = filters.fill_gaps(keypoints.keypoints, confidence=conf, min_confidence=cleanup.min_confidence,
                               max_gap_s=cleanup.max_gap_s, fps=fps)
        conf_filled = np.where(np.isfinite(kp).all(-1), np.maximum(conf, cleanup.min_confidence), 0.0)
        wl = keypoints.world_landmarks
        if wl is not None:
            wl = filters.fill_gaps(wl, confidence=conf, min_confidence=cleanup.min_confidence,
                                   max_gap_s=cleanup.max_gap_s, fps=fps)
        filled = Keypoints2D(keypoints=kp.astype(np.float32), confidence=conf_filled.astype(np.float32),
                             layout=keypoints.layout, image_size=keypoints.image_size, fps=fps,
                             world_landmarks=None if wl is None else wl.astype(np.float32))

    with timer.stage("lift 3D"):
        lifter = get_lifter(lifter) if isinstance(lifter, str) else lifter
        # a lifter trained on low-confidence and missing points reads the detector's own 2D:
        # on the real Pose2Sim video, cam03, interpolating the points under min_confidence
        # first costs the network 9 mm PA-MPJPE (70.2 -> 79.5)
        result = lifter.lift(keypoints if getattr(lifter, "reads_confidence", False) else filled)

    with timer.stage("root trajectory"):
        rel = result.joints_cam
        root = result.root_translation_cam
        if root is None:
            kp_m = map_joints(filled.keypoints, filled.layout, MOTION21)
            conf_m = map_confidence(filled.confidence, filled.layout, MOTION21)
            root = estimate_root_translation(rel, kp_m, conf_m, focal_px=f, principal_px=principal,
                                             min_confidence=cleanup.min_confidence)

    with timer.stage("smooth"):
        rel = filters.hold_nearest(filters.fill_gaps(rel, max_gap_s=cleanup.max_gap_s, fps=fps))
        root = filters.hold_nearest(filters.fill_gaps(root, max_gap_s=cleanup.max_gap_s, fps=fps))
        if not np.isfinite(rel).all() or not np.isfinite(root).all():
            raise MocapError("no usable 3D in any frame: the person was never fully detected")
        rel = filters.lowpass(rel, fps=fps, cutoff_hz=cleanup.cutoff_hz)
        root = filters.lowpass(root, fps=fps, cutoff_hz=cleanup.root_cutoff_hz)

    with timer.stage("world frame"):
        joints_world = world.camera_to_world(rel + root[:, None, :])
        joints_world, _, _ = world.level_and_ground(joints_world, level=cleanup.level)

    return motion_from_world_joints(joints_world, fps=fps, cleanup=cleanup, timer=timer)


def motion_from_world_joints(
    joints_world: np.ndarray,
    *,
    fps: float,
    cleanup: CleanupConfig = CleanupConfig(),
    timer: StageTimer | None = None,
) -> Motion:
    """Clean world joints -> Motion: constant bone lengths, IK, FK, planted feet locked.

    Args:
        joints_world: (T, 21, 3) MOTION21 joints, metres, +Y up, NaN-free.
    Returns:
        Motion with local rotations, root translation and the subject's rest offsets.
    """
    timer = timer or StageTimer()
    parents = np.array(MOTION21.parents)
    with timer.stage("bone lengths"):
        lengths = bones.estimate_bone_lengths(joints_world, parents, left_right=MOTION21.left_right)
        offsets = bones.rest_offsets_with_lengths(rest_offsets(MOTION21), lengths)

    with timer.stage("inverse kinematics"):
        quats, root_translation = kinematics.inverse_kinematics(
            joints_world, parents=parents, rest_offsets=offsets, skeleton=MOTION21)
        joints = kinematics.forward_kinematics(quats, root_translation, offsets, parents)

    if cleanup.lock_feet:
        with timer.stage("foot contacts"):
            quats, root_translation, joints, _ = contact.clean_motion(joints, fps=fps, rest_offsets=offsets)

    return Motion(joints=joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=fps,
                  local_quats_wxyz=quats, root_translation=root_translation, rest_offsets=offsets)


@dataclass
class CaptureReport:
    """What ``capture`` did: files written, frames, detection rate and time per stage."""

    outputs: dict[str, Path]
    num_frames: int
    fps: float
    detection_rate: float
    lifter: str
    seconds: dict[str, float]
    swapped_frames: int = 0  # frames whose left/right labels were mirrored back (mocap.detect2d.swaps)

    def summary(self) -> str:
        total = sum(self.seconds.values())
        lines = [
            f"frames: {self.num_frames} at {self.fps:.2f} fps ({self.num_frames / self.fps:.1f} s of video)",
            f"person detected in {100 * self.detection_rate:.1f} % of frames",
            f"left/right swaps of the 2D detector undone in {self.swapped_frames} frames",
            f"lifter: {self.lifter}",
            "time per stage:",
        ]
        width = max(len(k) for k in self.seconds)
        for name, s in self.seconds.items():
            rate = self.num_frames / s if s > 0 else float("inf")
            lines.append(f"  {name:<{width}}  {s:7.2f} s  {rate:10.0f} frames/s")
        speed = (self.num_frames / self.fps) / total if total > 0 else float("inf")
        lines.append(f"  {'total':<{width}}  {total:7.2f} s  ({speed:.2f}x real time)")
        lines.append("outputs:")
        lines += [f"  {p}" for p in self.outputs.values()]
        return "\n".join(lines)


def prepare_output_dir(outdir: str | os.PathLike) -> Path:
    """Create ``outdir`` if needed; MocapError if it cannot be created or written."""
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise MocapError(f"output path {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MocapError(f"cannot create output folder {out}: {e.strerror}") from None
    if not os.access(out, os.W_OK):
        raise MocapError(f"output folder {out} is not writable")
    return out


def capture(
    video: str | os.PathLike,
    outdir: str | os.PathLike,
    *,
    lifter: str = "auto",
    focal_px: float | None = None,
    cleanup: CleanupConfig = CleanupConfig(),
    overlay: bool = True,
    overlay_max_width: int | None = 720,
    preview: bool = True,
    progress: bool = True,
    target: str | os.PathLike | None = None,
    detector: str = "mediapipe",
    person: str | int = "largest",
    all_people: bool = False,
    device: str = "cpu",
    avatar: str | None = None,
) -> CaptureReport:
    """Run the whole monocular capture of ``video`` and write its files into ``outdir``.

    Writes keypoints2d.npz, motion.npz, motion.bvh and, unless turned off, overlay.mp4
    (the 2D skeleton over the video, at most ``overlay_max_width`` pixels wide, drawn in a
    second thread during detection), preview.png and preview.mp4 (the 3D motion).
    With ``target`` (a rigged character: .fbx, .glb/.gltf or .blend) also
    ``character.<fbx|glb|blend>``: the motion retargeted onto it (needs the blender extra).

    ``detector`` other than ``"mediapipe"`` (see :data:`mocap.detect2d.estimators.ESTIMATORS`), or a
    ``person`` other than ``"largest"``, or ``all_people``, detect everyone with that
    estimator and track them (:mod:`mocap.detect2d.people`); ``person`` picks who goes into
    motion.npz (``"largest"``, ``"most-present"`` or a track id), and ``all_people`` also
    writes ``person_<id>/motion.npz`` and ``.bvh`` for everyone tracked in at least a fifth
    of the frames. The default (MediaPipe, largest, one person) uses MediaPipe's own video
    tracking.

    ``avatar="anny"`` puts the motion on the built-in anny character (``character.glb``:
    a skinned mesh; needs the avatar and blender extras) instead of a ``target`` file.
    """
    from mocap.io import bvh
    from mocap.detect2d import mediapipe_pose as detect
    from mocap.export import draw
    from mocap.io import video as video_io

    info = video_io.probe_video(video)
    if avatar is not None:
        if avatar != "anny":
            raise MocapError(f"unknown avatar {avatar!r}; the built-in one is 'anny'")
        if target is not None:
            raise MocapError("give either a target character or --avatar, not both")
    if target is not None and not Path(target).is_file():
        raise MocapError(f"character file not found: {target}")
    out = prepare_output_dir(outdir)
    timer = StageTimer()
    outputs: dict[str, Path] = {}

    outputs["keypoints"] = out / "keypoints2d.npz"
    tracks = None
    if detector != "mediapipe" or person != "largest" or all_people:
        from mocap.detect2d.people import detect_people_video

        with timer.stage(f"detect 2D ({detector})"):
            tracks = detect_people_video(video, detector=detector, device=device, progress=progress)
            if not tracks.track_list():
                raise MocapError(f"no person found in any frame of {video}")
            keypoints = tracks.person(person)
        if overlay:
            with timer.stage("overlay"):
                outputs["overlay"] = out / "overlay.mp4"
                draw.render_overlay(video, keypoints, outputs["overlay"], progress=progress,
                                    max_width=overlay_max_width)
    else:
        with timer.stage("detect 2D" + (" + overlay" if overlay else "")), contextlib.ExitStack() as stack:
            on_frame = None
            if overlay:
                outputs["overlay"] = out / "overlay.mp4"
                writer = stack.enter_context(draw.OverlayWriter(
                    outputs["overlay"], keypoints_size=info.size, fps=info.fps, layout="mediapipe33",
                    max_width=overlay_max_width, threaded=True, source=str(video)))
                on_frame = writer.write
            keypoints = detect.detect_video(video, progress=progress, on_frame=on_frame)
            if keypoints.detection_rate() == 0.0:  # raised inside: the overlay is not kept
                raise MocapError(f"no person found in any frame of {video}")
    rate = keypoints.detection_rate()
    if rate == 0.0:
        raise MocapError(f"no person found in any frame of {video}")
    save_keypoints(outputs["keypoints"], keypoints)

    swapped = np.zeros(keypoints.num_frames, bool)
    to_lift = keypoints
    if cleanup.resolve_swaps:  # here rather than in lift_keypoints, to report the count
        with timer.stage("left/right swaps"):
            to_lift, swapped = swaps.resolve_swaps(keypoints, min_confidence=cleanup.min_confidence)
    with timer.stage("lift 3D"):
        lifter_obj = get_lifter(lifter)  # built once: the network loads its weights here
    motion = lift_keypoints(to_lift, lifter=lifter_obj, focal_px=focal_px,
                            cleanup=dataclasses.replace(cleanup, resolve_swaps=False), timer=timer)

    with timer.stage("write files"):
        outputs["motion"] = out / "motion.npz"
        save_motion(outputs["motion"], motion)
        outputs["bvh"] = out / "motion.bvh"
        bvh.write_motion_bvh(outputs["bvh"], motion)
    if all_people and tracks is not None:
        for tid, person_kp in tracks.people().items():
            folder = out / f"person_{tid}"
            folder.mkdir(exist_ok=True)
            person_motion = lift_keypoints(person_kp, lifter=lifter_obj, focal_px=focal_px, cleanup=cleanup, timer=timer)
            with timer.stage("write files"):
                save_keypoints(folder / "keypoints2d.npz", person_kp)
                outputs[f"person_{tid}"] = folder / "motion.npz"
                save_motion(folder / "motion.npz", person_motion)
                bvh.write_motion_bvh(folder / "motion.bvh", person_motion)
    if target is not None:
        with timer.stage("retarget"):
            from mocap.export import blender as export_blender

            suffix = {".gltf": ".glb"}.get(Path(target).suffix.lower(), Path(target).suffix.lower())
            outputs["character"] = out / f"character{suffix}"
            export_blender.retarget_to_file(outputs["motion"], target, outputs["character"])
    if avatar is not None:
        with timer.stage("avatar"):
            from mocap.export.avatar import retarget_to_avatar

            outputs["character"] = out / "character.glb"
            retarget_to_avatar(outputs["motion"], outputs["character"])
    if preview:
        with timer.stage("render preview"):
            outputs["preview"] = out / "preview.png"
            draw.render_preview_3d(motion.joints, motion.parents, outputs["preview"], fps=motion.fps,
                                   title=f"{Path(video).name}: {motion.num_frames} frames, lifter {lifter_obj.name}")
            outputs["preview_video"] = out / "preview.mp4"
            draw.render_preview_video(motion.joints, motion.parents, outputs["preview_video"], fps=motion.fps)
    return CaptureReport(outputs=outputs, num_frames=keypoints.num_frames, fps=info.fps,
                         detection_rate=rate, lifter=lifter_obj.name, seconds=timer.seconds,
                         swapped_frames=int(swapped.sum()))
