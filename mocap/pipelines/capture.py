"""The monocular pipeline: composes the stages; holds no numerics of its own.

video -> 2D keypoints (detect) -> 2D gap filling -> lifter (root-relative 3D, camera frame)
-> root trajectory -> world frame, levelled and grounded -> 3D gap filling and smoothing
-> constant bone lengths -> inverse kinematics -> forward kinematics -> planted feet locked
on the ground -> (with the hands) wrist and finger rotations -> files.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from mocap.cleanup import motion as cleanup_motion
from mocap.cleanup.options import CleanupConfig
from mocap.detect2d import swaps
from mocap.detect2d.background import BackgroundFlow, CameraMotion, camera_motion, steadied
from mocap.detect2d.hands import hand_frames
from mocap.detect2d.options import DetectionOptions, require_person
from mocap.detect2d.people import PeopleTracks
from mocap.detect2d.shots import ShotCuts
from mocap.detect2d.tracking import implausible_jumps
from mocap.errors import MocapError
from mocap.export.character import check_character, export_character
from mocap.export.options import ExportOptions
from mocap.formats import Keypoints2D, Motion, save_keypoints, save_motion
from mocap.lift import trajectory
from mocap.fit.options import FitOptions
from mocap.lift.lifters import Lifter, default_focal_px, get_lifter
from mocap.pipelines.capture_report import CaptureReport
from mocap.pipelines.options import CaptureOptions
from mocap.pipelines.scene import FrameKeeper, scene_frames, scene_of
from mocap.skeletons import MOTION21, map_confidence, map_joints

if TYPE_CHECKING:
    from mocap.fit.fit import FitResult

__all__ = ["CaptureOptions", "CaptureReport", "CleanupConfig", "StageTimer", "add_fingers", "capture", "lift_and_fit",
           "lift_keypoints", "lift_seen",
           "prepare_output_dir", "write_people_files"]


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


def lift_keypoints(keypoints: Keypoints2D, **kwargs) -> Motion:
    """2D keypoints -> clean 3D motion of MOTION21 with IK: :func:`lift_and_fit`'s motion
    (the same keyword arguments)."""
    return lift_and_fit(keypoints, **kwargs)[0]


def lift_and_fit(
    keypoints: Keypoints2D,
    *,
    lifter: str | Lifter = "auto",
    focal_px: float | None = None,
    cleanup: CleanupConfig = CleanupConfig(),
    fit: FitOptions = FitOptions(),
    timer: StageTimer | None = None,
    shared: FitResult | None = None,
) -> tuple[Motion, FitResult | None]:
    """2D keypoints -> clean 3D motion of MOTION21 with IK (local rotations, root translation).

    Args:
        keypoints: 2D keypoints (any supported layout) of T frames.
        lifter: ``auto``, ``network`` or ``mediapipe``, or a lifter already built.
        focal_px: camera focal length in pixels; default: with the fit, from the room's vanishing
            points when ``keypoints.scene_lines`` show them clearly
            (:func:`mocap.fit.scene.focal_from_scene`), else from a 55 degree field of view.
        cleanup: the clean-up settings (swap repair, gap filling, smoothing, levelling, feet).
        fit: the fitting stage's options; with ``fit.fit`` the clip is fitted to the 2D
            (:func:`mocap.fit.fit.fit_person`: camera, world frame, contacts, bones, poses),
            else levelled from the body axis and its planted feet locked. A camera rolled by
            more than :data:`mocap.lift.trajectory.UPRIGHT_ROLL_DEG` where the fit starts
            gravity (:func:`mocap.fit.fit.first_roll_deg`) is lifted again with its picture
            turned upright (:func:`mocap.lift.trajectory.lift_camera_joints`), then fitted.
        shared: the fit of another person of the same video: its camera (focal length,
            gravity, height above the floor) and world are kept, and this person is sized by
            where their feet meet its floor (:func:`mocap.fit.fit.fit_person`'s ``camera``);
            its roll turns the picture upright for the lift at once.
    Returns:
        (Motion with joints (T, 21, 3) metres, +Y up, the floor at y = 0, constant bone
        lengths; the fit's result (the solved camera, contacts) or None without the fit).
    """
    timer = timer or StageTimer()
    c = cleanup
    keypoints = steadied(keypoints)  # a camera that turned: everything in its reference frame's picture
    scene_lines = keypoints.scene_lines  # the background's straight lines: gravity for the fit
    if c.resolve_swaps:
        with timer.stage("left/right swaps"):
            keypoints, _ = swaps.resolve_swaps(keypoints, min_confidence=c.min_confidence)
    with timer.stage("fill 2D gaps"):
        filled = cleanup_motion.fill_keypoint_gaps(keypoints, min_confidence=c.min_confidence, max_gap_s=c.max_gap_s)
    f, focal_from = focal_px, "given"
    if shared is not None and fit.fit:
        f, focal_from = float(shared.camera.K[0, 0]), shared.focal_from
    if f is None and scene_lines is not None and fit.fit:  # the room's vanishing points, when they agree
        from mocap.fit.scene import focal_from_scene

        with timer.stage("scene lines"):
            f, focal_from = focal_from_scene(scene_lines, keypoints.image_size), "scene"
    if f is None:
        f, focal_from = default_focal_px(keypoints.picture_size), "default"  # across the picture, bars left out
    lifter = get_lifter(lifter) if isinstance(lifter, str) else lifter

    def lifted_camera_joints(turn_rad: float = 0.0):
        with timer.stage("lift 3D"):
            lifted = trajectory.lift_camera_joints(lifter, keypoints, filled, focal_px=f, turn_rad=turn_rad)
        with timer.stage("root trajectory"):
            root = trajectory.root_trajectory(lifted, filled, focal_px=f, min_confidence=c.min_confidence)
        with timer.stage("smooth"):
            return cleanup_motion.smooth_camera_joints(lifted.joints_cam, root, fps=keypoints.fps,
                                                       max_gap_s=c.max_gap_s, cutoff_hz=c.cutoff_hz,
                                                       root_cutoff_hz=c.root_cutoff_hz)

    rel, root = lifted_camera_joints()
    if fit.fit:
        from mocap.fit.fit import first_roll_deg, fit_person

        keypoints_m21 = map_joints(keypoints.keypoints, keypoints.layout, MOTION21)
        confidence_m21 = map_confidence(keypoints.confidence, keypoints.layout, MOTION21)
        if shared is not None:  # the camera is known: its roll
            roll = shared.pitch_roll_height[1]
        else:  # where the fit will start gravity
            with timer.stage("fit to the video"):
                roll = first_roll_deg(rel, root, keypoints_m21, confidence_m21, fps=keypoints.fps, focal_px=f,
                                      image_size=keypoints.image_size, min_confidence=c.min_confidence,
                                      scene_lines=scene_lines)
        if abs(roll) > trajectory.UPRIGHT_ROLL_DEG:  # a rolled camera: lifted again, its picture upright
            rel, root = lifted_camera_joints(-np.radians(roll))
        with timer.stage("fit to the video"):
            result = fit_person(rel, root, keypoints_m21, confidence_m21, fps=keypoints.fps,
                                focal_px=f, image_size=keypoints.image_size, height_m=fit.height_m,
                                min_confidence=c.min_confidence, hold_feet=c.lock_feet,
                                max_iterations=fit.max_iterations, scene_lines=scene_lines,
                                camera=None if shared is None else shared.camera)
        return result.motion, dataclasses.replace(result, focal_from=focal_from)
    with timer.stage("world frame"):
        joints_world = cleanup_motion.world_joints_from_camera(rel, root, level=c.level)
    return cleanup_motion.motion_from_world_joints(joints_world, fps=keypoints.fps, lock_feet=c.lock_feet,
                                                   stage=timer.stage), None


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


def _detect(video: str | os.PathLike, info, detection: DetectionOptions, export: ExportOptions, out: Path,
            outputs: dict[str, Path], *, span: tuple[int, int], timer: StageTimer, progress: bool, scene: bool = False):
    """(the person's 2D keypoints, everyone's tracks, the captured track id, the detection rate,
    everyone's keypoints by track id, the camera's own motion).

    Everyone is detected and tracked when ``detection.tracks_people``, else MediaPipe's own
    tracking follows one person (then the tracks hold that one person, id 0). The person's
    keypoints cover every frame, NaN where they are not seen. With ``detection.all_people``
    everyone seen for ``min_person_s`` is returned too, by track id, each over every frame.
    With ``detection.hands`` everyone's hands are added (:mod:`mocap.detect2d.hands`, one pass
    over the video for all). overlay.mp4 only with MediaPipe's own tracking (drawn as it detects; else
    :func:`capture` draws it alongside the lifting); MocapError if nobody is found (then no overlay is kept). ``span``: (first, stop), the
    video frames chosen (--start/--end); only they are detected, drawn and counted in the rate.
    With ``scene`` everyone's keypoints carry the background's straight lines (:func:`scene_lines`;
    the frames it looks at kept as the 2D stage decodes them). The background is followed from
    frame to frame as the frames go by (:mod:`mocap.detect2d.background`); where the camera moved,
    everyone's keypoints carry the homographies onto the first chosen frame's picture
    (``background_homography``), and the straight lines are in that picture too.
    """
    from mocap.detect2d.people import detect_person_video
    from mocap.export import overlay

    detector = detection.detector_for(1)
    frames = None if detection.whole_video else span
    # MediaPipe's own tracking: drawn as it detects (unless the hands, found afterwards, are to be drawn too)
    drawing = export.overlay and not detection.tracks_people and not detection.hands
    with contextlib.ExitStack() as stack:
        stack.enter_context(timer.stage(f"detect 2D ({detector})" if detection.tracks_people
                                        else "detect 2D" + (" + overlay" if drawing else "")))
        on_frame = None
        if drawing:
            outputs["overlay"] = out / "overlay.mp4"
            writer = stack.enter_context(overlay.OverlayWriter(
                outputs["overlay"], keypoints_size=info.size, fps=info.fps, layout="mediapipe33",
                max_width=export.overlay_max_width, threaded=True, source=str(video)))
            on_frame = writer.write
        kept = FrameKeeper(scene_frames(span))
        flow = BackgroundFlow(span[0], span[1], info.fps)
        cuts = ShotCuts()

        def keep_frame(index: int, frame: np.ndarray) -> None:
            flow(index, frame)
            cuts(index, frame)
            if scene:
                kept(index, frame)

        keypoints, tracks, chosen = detect_person_video(video, detector=detector, person=detection.person,
                                                        track_everyone=detection.tracks_people,
                                                        device=detection.device, progress=progress,
                                                        on_frame=on_frame, frames=frames, keep_frame=keep_frame)
        shots = [span]
        if detection.tracks_people:  # an edited video: the capture keeps to one shot
            span, shots, tracks, keypoints, chosen = in_one_shot(cuts, span, tracks, keypoints, chosen,
                                                                 detection.person)
            frames = span if len(shots) > 1 else frames
        in_span = keypoints if keypoints is None or frames is None else _frames(keypoints, span[0], span[1] - 1)
        (rate,) = require_person([in_span], [video])  # raised inside: the overlay is not kept
    everyone: dict[int, Keypoints2D] = {}
    if detection.all_people:
        everyone = tracks.people(min_seconds=detection.min_person_s)
    if detection.hands:
        from mocap.detect2d.hands import detect_people_hands_video

        others = [tid for tid in everyone if tid != chosen]
        with timer.stage("hands"):  # everyone's hands in one pass over the video
            keypoints, *found = detect_people_hands_video(video, [keypoints, *(everyone[i] for i in others)],
                                                          device=detection.device, frames=frames, progress=progress)
        everyone.update(zip(others, found))
        if chosen in everyone:  # the captured person's hands, found once
            everyone[chosen] = dataclasses.replace(everyone[chosen], hand_keypoints=keypoints.hand_keypoints,
                                                   hand_confidence=keypoints.hand_confidence,
                                                   hand_world=keypoints.hand_world)
    with timer.stage("camera motion"):
        moving = camera_motion_within(flow, span, keypoints.num_frames, info.size, tracks.keypoints)
    if moving.moved:  # everyone in the first chosen frame's picture when lifted
        keypoints = dataclasses.replace(keypoints, background_homography=moving.homography)
        everyone = {tid: dataclasses.replace(k, background_homography=moving.homography) for tid, k in everyone.items()}
    if scene:  # gravity from the room's vertical lines (mocap.fit.scene), for everyone's fit
        with timer.stage("scene lines"):
            lines, box = scene_of(video, tracks.keypoints, span, frames=kept.frames,
                                  homography=moving.homography if moving.moved else None)
        keypoints = dataclasses.replace(keypoints, scene_lines=lines, picture_box=box)
        everyone = {tid: dataclasses.replace(k, scene_lines=lines, picture_box=box) for tid, k in everyone.items()}
    if detection.face:
        with timer.stage("face"):
            _write_face(video, keypoints, out, outputs, device=detection.device, frames=frames, progress=progress)
    return keypoints, tracks, chosen, rate, everyone, moving, span, shots


def in_one_shot(cuts: ShotCuts, span: tuple[int, int], tracks: PeopleTracks, keypoints: Keypoints2D | None,
                chosen: int, person: str | int = "auto"):
    """Where a video cuts between shots (``cuts``, the 2D stage's :class:`ShotCuts`), only the
    shot :func:`one_shot` picks: (its span (first, stop), the shots, the tracks in it only, the
    chosen person's keypoints and track id chosen again in it); all as given without a cut."""
    shots = cuts.shots(*span)
    if len(shots) < 2:
        return span, shots, tracks, keypoints, chosen
    span = one_shot(shots, tracks, person)
    tracks = tracks.within(*span)
    if tracks.track_list():
        chosen = tracks.choose(person)
        keypoints = tracks.person(chosen)
    return span, shots, tracks, keypoints, chosen


def camera_motion_within(flow: BackgroundFlow, span: tuple[int, int], num_frames: int, size: tuple[int, int],
                         people_px: np.ndarray) -> CameraMotion:
    """:func:`camera_motion` from ``flow``'s pairs of frames within ``span`` (first, stop) (one
    shot: a pair across a cut is two cameras' pictures), its first frame looked at the reference."""
    pairs = {k: v for k, v in flow.pairs.items() if span[0] <= k[0] and k[1] < span[1]}
    return camera_motion(pairs, num_frames, size, people_px, first=min((a for a, _ in pairs), default=span[0]))


def one_shot(shots: list[tuple[int, int]], tracks: PeopleTracks, person: str | int = "auto") -> tuple[int, int]:
    """The shot (first, stop) to capture of a video that cuts (:mod:`mocap.detect2d.shots`): the
    one with the most frames where someone is seen (``person``, a track id: that person), the
    longer of two such."""
    seen = (tracks.track_ids == person) if isinstance(person, int) else (tracks.track_ids >= 0)
    per_frame = seen.any(1)
    return max(shots, key=lambda s: (int(per_frame[s[0]:s[1]].sum()), s[1] - s[0]))


def _write_face(video, keypoints: Keypoints2D, out: Path, outputs: dict[str, Path], *, device: str,
                frames: tuple[int, int] | None, progress: bool) -> None:
    """face.npz and face.csv of the captured person (:mod:`mocap.detect2d.face`, :mod:`mocap.face.controls`)."""
    from mocap.detect2d.face import detect_face_video
    from mocap.face.controls import face_data
    from mocap.face.options import FaceOptions
    from mocap.formats import save_face, write_face_csv

    face = detect_face_video(video, keypoints, device=device, frames=frames, progress=progress)
    o = FaceOptions()
    data = face_data(face.keypoints, face.z, face.score, fps=keypoints.fps, cutoff_hz=o.cutoff_hz,
                     rest_percentile=o.rest_percentile)
    outputs["face"], outputs["face_csv"] = out / "face.npz", out / "face.csv"
    save_face(outputs["face"], data)
    write_face_csv(outputs["face_csv"], data)


def _face_frames(path: Path | None) -> int | None:
    """Frames with the face in face.npz at ``path``; None without one."""
    if path is None:
        return None
    from mocap.formats import load_face

    return int(np.isfinite(load_face(path).controls).all(-1).sum())


def _seen_span(keypoints: Keypoints2D) -> tuple[int, int, np.ndarray]:
    """(first, last) frame where the person is seen, and (T,) bool: seen in each frame."""
    seen = np.isfinite(keypoints.keypoints).all(-1).any(-1)
    frames = np.nonzero(seen)[0]
    if not len(frames):
        raise MocapError("the keypoints hold no person in any frame")
    return int(frames[0]), int(frames[-1]), seen


def lift_seen(keypoints: Keypoints2D, **kwargs) -> tuple[Motion, FitResult | None]:
    """:func:`lift_and_fit` (same keyword arguments) of the frames from the person's first to
    their last sighting: the motion starts where the person first is (``start_frame``), and
    ``valid`` is False in the frames between where they were not seen (docs/formats.md)."""
    a, b, visible = _seen_span(keypoints)
    motion, fitted = lift_and_fit(_frames(keypoints, a, b), **kwargs)
    return dataclasses.replace(motion, start_frame=a, valid=visible[a:b + 1].copy()), fitted


def add_fingers(motion: Motion, hands: Keypoints2D, fitted: FitResult | None, *, focal_px: float | None = None,
                timer: StageTimer | None = None) -> Motion:
    """``motion`` (MOTION21) with the wrists and fingers of the hands in ``hands`` (keypoints of the
    motion's own frames, left/right swaps undone as for the body), on MOTION61
    (:func:`mocap.cleanup.fingers.motion_with_fingers`, through the fit's camera, else a level
    camera of ``focal_px``); ``motion`` itself when the keypoints hold no hands' world landmarks."""
    if hands.hand_world is None:
        return motion
    from mocap.cleanup.fingers import level_camera, motion_with_fingers

    if hands.num_frames != motion.num_frames:
        raise MocapError(f"{hands.num_frames} frames of hands for a motion of {motion.num_frames}")
    with (timer or StageTimer()).stage("fingers"):
        camera = fitted.camera if fitted is not None else level_camera(
            focal_px or default_focal_px(hands.picture_size), hands.image_size)
        return motion_with_fingers(motion, hands.hand_keypoints, hands.hand_world, hands.hand_confidence, camera)


@dataclass(frozen=True)
class _Lifted:
    """One person lifted: the span they are seen in (first, last frame; (T,) bool seen), the
    frames lifted (left/right swaps undone, hands with them), the frames whose swap was undone,
    the body (MOTION21), the fit's result and the final motion (MOTION61 with hands)."""

    first: int
    last: int
    seen: np.ndarray
    to_lift: Keypoints2D
    swapped: np.ndarray
    body: Motion
    fitted: FitResult | None
    motion: Motion


def _lift_person(keypoints: Keypoints2D, *, lifter: Lifter, focal_px: float | None, cleanup: CleanupConfig,
                 fit: FitOptions, timer: StageTimer, shared: FitResult | None = None) -> _Lifted:
    """One person's keypoints (every frame of the video) -> their motion, from their first to
    their last sighting: swaps undone (here rather than in :func:`lift_keypoints`, to report the
    count, and so that the hands swap with the body), :func:`lift_seen`, :func:`add_fingers`.
    ``shared``: the fit of the person captured first, whose camera and world this one shares."""
    first, last, seen = _seen_span(keypoints)
    swapped = np.zeros(last - first + 1, bool)
    to_lift = _frames(keypoints, first, last)  # only the frames from the person's first to last sighting
    if cleanup.resolve_swaps:
        with timer.stage("left/right swaps"):
            to_lift, swapped = swaps.resolve_swaps(to_lift, min_confidence=cleanup.min_confidence)
    motion, fitted = lift_seen(to_lift, lifter=lifter, focal_px=focal_px,
                               cleanup=dataclasses.replace(cleanup, resolve_swaps=False), fit=fit, timer=timer,
                               shared=shared)
    body = dataclasses.replace(motion, start_frame=first)
    with_hands = add_fingers(body, to_lift, fitted, focal_px=focal_px, timer=timer)  # --hands: MOTION61
    return _Lifted(first, last, seen, to_lift, swapped, body, fitted, with_hands)


def side_by_side(motions: list[Motion]) -> tuple[np.ndarray, list[int], list[str]]:
    """People of one world (MOTION21 motions of one video) as one skeleton per person side by
    side, over the video frames from the first one's first frame to the last one's last:
    (joints (T, P * 21, 3) metres, NaN where a person is not there; parents; joint names)."""
    first = min(m.start_frame for m in motions)
    stop = max(m.start_frame + m.num_frames for m in motions)
    j = MOTION21.num_joints
    joints = np.full((stop - first, len(motions) * j, 3), np.nan)
    parents: list[int] = []
    for k, m in enumerate(motions):
        if m.joints.shape[1] != j:
            raise ValueError(f"side_by_side takes MOTION21 motions, got {m.joints.shape[1]} joints")
        joints[m.start_frame - first:m.start_frame - first + m.num_frames, k * j:(k + 1) * j] = m.joints
        parents += [p + k * j if p >= 0 else -1 for p in MOTION21.parents]
    return joints, parents, list(MOTION21.joint_names) * len(motions)


def _frames(k: Keypoints2D, first: int, last: int) -> Keypoints2D:
    """Frames ``first`` to ``last`` (inclusive) of ``k``."""
    return k.frames(first, last + 1)


def write_people_files(video, out: Path, tracks: PeopleTracks, captured: dict[int, str | None], chosen: int,
                       outputs: dict[str, Path]) -> tuple[list[dict], int]:
    """people.json (:meth:`mocap.detect2d.people.PeopleTracks.listing`) and people.png (a crop
    of each person listed) in ``out``, their paths added to ``outputs``; returns the
    people.json entries and how many short tracks were left out."""
    import json

    from mocap.export.contact_sheet import write_people_sheet
    from mocap.formats import atomic_path
    from mocap.io.video import read_frames

    listing = tracks.listing(captured, chosen)
    people = listing["people"]
    outputs["people"] = out / "people.json"
    with atomic_path(outputs["people"]) as tmp:
        tmp.write_text(json.dumps(listing, indent=1))
    frames = read_frames(video, [p["best_frame"] for p in people])
    if all(p["best_frame"] in frames for p in people):
        outputs["people_sheet"] = out / "people.png"
        write_people_sheet(outputs["people_sheet"], frames, people)
    return people, listing["short_tracks_not_listed"]


def _placed(video_keypoints: Keypoints2D, part: Keypoints2D, first: int) -> Keypoints2D:
    """``video_keypoints`` with frames ``first`` onwards replaced by ``part`` (the lifted frames,
    their left/right swaps undone)."""
    kp, conf = video_keypoints.keypoints.copy(), video_keypoints.confidence.copy()
    kp[first:first + part.num_frames] = part.keypoints
    conf[first:first + part.num_frames] = part.confidence
    return dataclasses.replace(video_keypoints, keypoints=kp, confidence=conf)


def write_quality(path: Path, motion: Motion, keypoints: Keypoints2D, fitted: FitResult,
                  moving: CameraMotion | None = None, shots: list[tuple[int, int]] | None = None) -> dict:
    """quality.json of the final motion against the 2D (:func:`mocap.fit.quality.motion_quality`;
    where the camera moved, against the keypoints in the reference frame's picture), with where
    the fit's gravity and focal length came from and the camera's own motion; where the video
    cuts, its ``shots`` (first and last frame of each); returns its dict."""
    from mocap.fit.quality import motion_quality, write_quality_json

    quality = motion_quality(motion, steadied(keypoints), fitted.camera, contacts=fitted.contacts)
    quality["gravity_from"] = fitted.up_source
    quality["focal_from"] = fitted.focal_from
    if moving is not None:
        quality["camera_motion"] = moving.as_dict()
    if shots:
        quality["shots"] = [[int(a), int(b) - 1] for a, b in shots]
    write_quality_json(path, quality)
    return quality


def _write_motion(folder: Path, motion: Motion, keypoints: Keypoints2D | None = None, units: str = "cm") -> dict[str, Path]:
    """motion.npz and motion.bvh (and keypoints2d.npz) in ``folder``."""
    from mocap.io import bvh

    written = {}
    if keypoints is not None:
        written["keypoints"] = folder / "keypoints2d.npz"
        save_keypoints(written["keypoints"], keypoints)
    written["motion"] = folder / "motion.npz"
    save_motion(written["motion"], motion)
    written["bvh"] = folder / "motion.bvh"
    bvh.write_motion_bvh(written["bvh"], motion, units=units)
    return written


def capture(video: str | os.PathLike, outdir: str | os.PathLike, options: CaptureOptions = CaptureOptions(), *,
            progress: bool = True) -> CaptureReport:
    """Run the whole monocular capture of ``video`` and write its files into ``outdir``.

    Writes keypoints2d.npz, motion.npz, motion.bvh and, unless turned off, overlay.mp4
    (the 2D skeleton over the video, at most ``overlay_max_width`` pixels wide, drawn on a
    second thread: with MediaPipe during detection, else while the lift, fit and previews run), preview.png and preview.mp4 (the 3D motion).
    With a ``target`` (a rigged character: .fbx, .glb/.gltf or .blend) also
    ``character.<fbx|glb|blend>``: the motion retargeted onto it (needs the blender extra);
    ``avatar="anny"`` puts it on the built-in anny character instead (``character.glb``:
    a skinned mesh; needs the avatar and blender extras).

    A ``detector`` other than ``"mediapipe"`` (see :data:`mocap.detect2d.estimators.ESTIMATORS`),
    a ``person`` other than ``"auto"`` or ``"largest"``, or ``all_people``, detect everyone
    with that estimator and track them (:mod:`mocap.detect2d.people`); ``person`` picks who
    goes into motion.npz (``"auto"``: present longest, weighted by size; ``"largest"``,
    ``"most-present"`` or a track id), and ``all_people`` also writes ``person_<id>/``
    (keypoints2d.npz, motion.npz, motion.bvh) for everyone seen for at least
    ``min_person_s``. With MediaPipe (and ``auto``/``largest``), MediaPipe's own video
    tracking follows one person.

    keypoints2d.npz holds every frame of the video, NaN where the captured person is not
    seen (never someone else); a motion spans the person's first to last visible frame
    (``start_frame``, and ``valid`` False where they were not seen: docs/formats.md).
    people.json and people.png say who was found (every track: id, frames, median box,
    whether captured) and show a crop of each. The report warns when the captured
    person's 2D jumps further than a body can move from one frame to the next.

    Args:
        options: the options of every stage (:class:`mocap.pipelines.options.CaptureOptions`).
        progress: progress bars on stderr.
    """
    from mocap.io import video as video_io

    with video_io.turned(video, options.detection.rotate_deg):  # a lost rotation tag: every reader turns it
        return _capture(video, outdir, options, progress=progress)


def _capture(video: str | os.PathLike, outdir: str | os.PathLike, options: CaptureOptions, *,
             progress: bool) -> CaptureReport:
    """:func:`capture`, its video turned as ``options`` say."""
    from mocap.export import overlay
    from mocap.io import video as video_io

    o = options
    info = video_io.probe_video(video)
    span = o.detection.frame_range(info.fps, info.frame_count, video)  # (first, stop) frames: --start/--end
    check_character(o.export)
    out = prepare_output_dir(outdir)
    timer = StageTimer()
    outputs: dict[str, Path] = {}

    outputs["keypoints"] = out / "keypoints2d.npz"
    keypoints, tracks, chosen, rate, everyone, moving, span, shots = _detect(
        video, info, o.detection, o.export, out, outputs, span=span, timer=timer, progress=progress, scene=o.fit.fit)
    with contextlib.ExitStack() as stack:
        job = None
        if o.export.overlay and "overlay" not in outputs:  # drawn on a second thread while the rest runs
            outputs["overlay"] = out / "overlay.mp4"
            job = stack.enter_context(overlay.BackgroundOverlay(
                video, keypoints, outputs["overlay"], progress=False, max_width=o.export.overlay_max_width,
                frames=None if o.detection.whole_video else span))
        report = _lift_and_write(video, o, out, outputs, info, span, keypoints, tracks, chosen, rate, everyone,
                                 moving, timer=timer, shots=shots)
        if job is not None:
            with timer.stage("overlay (the rest of it)"):
                job.wait()
    return report


def _lift_and_write(video, o: CaptureOptions, out: Path, outputs: dict[str, Path], info, span: tuple[int, int],
                    keypoints: Keypoints2D, tracks: PeopleTracks, chosen: int, rate: float,
                    everyone: dict[int, Keypoints2D], moving: CameraMotion, *, timer: StageTimer,
                    shots: list[tuple[int, int]] | None = None) -> CaptureReport:
    """Everything of :func:`capture` after the 2D stage: lift, fit, files, people, previews.
    ``shots``: the video's shots (first, stop) where it cuts; ``span`` is then the one captured."""
    from mocap.export import draw

    save_keypoints(outputs["keypoints"], keypoints)  # as detected (with the camera's motion, if it moved)
    # a camera that moved: everyone in the reference frame's picture from here on (its motion is not theirs)
    detected, keypoints = keypoints, steadied(keypoints)
    jumps = implausible_jumps(keypoints.keypoints, keypoints.confidence, keypoints.layout, keypoints.fps,
                              min_confidence=o.cleanup.min_confidence)

    cleanup = o.cleanup
    with timer.stage("lift 3D"):
        lifter = get_lifter(o.lifting.lifter)  # built once: the network loads its weights here

    def lift(k: Keypoints2D, shared: FitResult | None = None) -> _Lifted:
        fit = o.fit if shared is None else dataclasses.replace(o.fit, height_m=None)
        return _lift_person(k, lifter=lifter, focal_px=o.lifting.focal_px, cleanup=cleanup, fit=fit, timer=timer,
                            shared=shared)

    main = lift(keypoints)
    first, last, seen, to_lift, body, fitted = main.first, main.last, main.seen, main.to_lift, main.body, main.fitted
    motion = main.motion  # with --hands: MOTION61
    with timer.stage("write files"):
        outputs.update(_write_motion(out, motion, units=o.export.bvh_units))
    quality = None
    if fitted is not None:
        with timer.stage("quality"):
            quality = write_quality(out / "quality.json", body, _placed(keypoints, to_lift, first), fitted, moving,
                                    shots=shots if shots and len(shots) > 1 else None)
            outputs["quality"] = out / "quality.json"
    captured: dict[int, str | None] = {chosen: None}
    everyone_lifted: list[_Lifted] = []
    others_quality: dict[int, dict] = {}
    if o.detection.all_people:
        for tid, person_kp in everyone.items():
            folder = out / f"person_{tid}"
            folder.mkdir(exist_ok=True)
            # everyone in the captured person's world: one camera, one floor (with --hands: their own fingers)
            # (--height is the captured person's: the others are sized by the floor they share)
            steady_kp = steadied(person_kp)  # in the reference frame's picture (a camera that moved), once
            person = main if tid == chosen else lift(steady_kp, shared=fitted)
            with timer.stage("write files"):
                outputs[f"person_{tid}"] = _write_motion(folder, person.motion, person_kp, o.export.bvh_units)["motion"]
            if person.fitted is not None and tid != chosen:
                with timer.stage("quality"):
                    others_quality[tid] = write_quality(folder / "quality.json", person.body,
                                                        _placed(steady_kp, person.to_lift, person.first),
                                                        person.fitted, moving)
            elif person.fitted is not None:  # the captured person's, as at the top
                shutil.copyfile(out / "quality.json", folder / "quality.json")
            captured[tid] = folder.name
            everyone_lifted.append(person)
    with timer.stage("people"):
        people, short = write_people_files(video, out, tracks, captured, chosen, outputs)
    if o.export.target is not None or o.export.avatar is not None:
        with timer.stage("retarget" if o.export.target is not None else "avatar"):
            outputs["character"] = export_character(outputs["motion"], out, o.export)
            for tid, name in captured.items():  # --all-people: everyone on the character, in their own folder
                if name is None:
                    continue
                folder = out / name
                if tid == chosen:  # the captured person's is the one above
                    outputs[f"character_{tid}"] = folder / outputs["character"].name
                    shutil.copyfile(outputs["character"], outputs[f"character_{tid}"])
                else:
                    outputs[f"character_{tid}"] = export_character(folder / "motion.npz", folder, o.export)
    if o.export.preview:
        with timer.stage("render preview"):
            shown, parents, names, title = motion.joints, motion.parents, None, f"{motion.num_frames} frames"
            if len(everyone_lifted) > 1 and all(p.fitted is not None for p in everyone_lifted):  # one world: all in it
                shown, parents, names = side_by_side([p.body for p in everyone_lifted])
                title = f"{len(everyone_lifted)} people in one world, {len(shown)} frames"
            outputs["preview"] = out / "preview.png"
            draw.render_preview_3d(shown, parents, outputs["preview"], fps=motion.fps, joint_names=names,
                                   title=f"{Path(video).name}: {title}, lifter {lifter.name}")
            outputs["preview_video"] = out / "preview.mp4"
            draw.render_preview_video(shown, parents, outputs["preview_video"], fps=motion.fps, joint_names=names)
    num_frames = keypoints.num_frames if o.detection.whole_video else span[1] - span[0]
    return CaptureReport(outputs=outputs, num_frames=num_frames, fps=info.fps,
                         detection_rate=rate, lifter=lifter.name, seconds=timer.seconds,
                         swapped_frames=int(main.swapped.sum()), people=people, captured=chosen,
                         motion_span=(first, last, int((~seen[first:last + 1]).sum())), jumps=jumps,
                         short_tracks=short, quality=quality, others_quality=others_quality, hands=hand_frames(detected),
                         face=_face_frames(outputs.get("face")), camera_motion=moving.as_dict(),
                         shots=list(shots or []), shot=span if shots and len(shots) > 1 else None)
