"""The ``mocap`` command line: one subcommand per pipeline stage.

Every failure prints one line (``mocap: error: ...``) and exits with status 1; no
traceback. ``MOCAP_DEBUG=1`` shows the traceback instead.

A command writes all its outputs or none: each file is written into a temporary folder
beside its destination (:class:`StagedOutputs`) and the files of the run are moved into
place together once it has succeeded, so a failed run leaves no partial file, no new empty
folder, and never replaces the files of an earlier run.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from mocap.config import add_arguments, from_namespace
from mocap.errors import MocapError


class StagedOutputs:
    """The output files of one run, staged beside their destinations and committed together.

    :meth:`file` and :meth:`folder` return where the run should write instead of a
    destination; :meth:`commit` moves every staged file into place (after checking that
    none is blocked, so that a conflict moves nothing), :meth:`discard` removes what is
    left. Each staging folder is hidden (``.mocap-NAME-XXXX``) beside an output file, inside an
    existing output folder or beside a new one: on the same file system, so each move is an
    atomic rename.
    """

    def __init__(self) -> None:
        self._stages: dict[Path, Path] = {}  # destination folder (absolute) -> its staging folder
        self._shown: dict[Path, Path] = {}  # destination folder (absolute) -> as the user wrote it

    def _stage(self, dest: Path, anchor: Path) -> Path:
        key = Path(os.path.abspath(dest))
        if key not in self._stages:
            try:
                self._stages[key] = Path(tempfile.mkdtemp(prefix=f".mocap-{key.name or 'out'}-", dir=anchor))
            except OSError as e:
                raise MocapError(f"cannot write into {anchor}: {e.strerror}") from None
            self._shown[key] = dest
        return self._stages[key]

    def file(self, path: str | os.PathLike) -> Path:
        """Where to write the output file ``path`` (its name kept: writers look at the suffix)."""
        dest = Path(path)
        if dest.is_dir():
            raise MocapError(f"cannot write {dest}: a folder of that name is in the way")
        parent = dest.parent if str(dest.parent) else Path(".")
        if not parent.is_dir():
            raise MocapError(f"cannot write {dest}: folder {parent} does not exist")
        return self._stage(parent, parent) / dest.name

    def folder(self, path: str | os.PathLike) -> Path:
        """Where to write the files of the output folder ``path`` (created at commit if new)."""
        dest = Path(path)
        if dest.exists() and not dest.is_dir():
            raise MocapError(f"output path {dest} exists and is not a folder")
        if dest.is_dir():  # inside it: the folder above may not be ours to write
            return self._stage(dest, dest)
        anchor = Path(os.path.abspath(dest)).parent
        while not anchor.is_dir():  # the nearest existing folder above: new folders appear at commit
            if anchor.exists() or anchor == anchor.parent:
                raise MocapError(f"cannot create output folder {dest}: {anchor} is not a folder")
            anchor = anchor.parent
        return self._stage(dest, anchor)

    def commit(self) -> None:
        """Move every staged file onto its destination; MocapError, moving nothing, if one is blocked."""
        moves = []
        for dest, stage in self._stages.items():
            for src in sorted(stage.rglob("*")):
                if src.is_file():
                    target = dest / src.relative_to(stage)
                    for above in [target, *target.parents]:
                        if above == dest.parent:
                            break
                        blocked = above.is_dir() if above == target else (above.exists() and not above.is_dir())
                        if blocked:
                            shown = self._shown[dest] / above.relative_to(dest)
                            raise MocapError(f"cannot write {shown}: {'a folder' if above == target else 'a file'} "
                                             f"of that name is in the way; nothing was written")
                    moves.append((src, target))
        try:
            for src, target in moves:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, target)
        except OSError as e:
            raise MocapError(f"cannot move the outputs into place: {e}") from None

    def discard(self) -> None:
        """Remove the staging folders and whatever is still in them."""
        for stage in self._stages.values():
            shutil.rmtree(stage, ignore_errors=True)
        self._stages.clear()
        self._shown.clear()

    def published(self, text: str) -> str:
        """``text`` with staged paths replaced by their destinations (for the run's summary)."""
        for dest, stage in self._stages.items():
            shown = self._shown[dest]
            text = text.replace(str(stage) + os.sep, "" if shown == Path(".") else str(shown) + os.sep)
            text = text.replace(str(stage), str(shown))
        return text


@contextlib.contextmanager
def staged_outputs():
    """``with staged_outputs() as out:`` write to ``out.file(...)``/``out.folder(...)``; the files
    are committed when the block ends without error, and removed if it raises."""
    outputs = StagedOutputs()
    try:
        yield outputs
        outputs.commit()
    finally:
        outputs.discard()


def _cmd_capture(args: argparse.Namespace) -> int:
    from mocap.pipelines.capture import capture
    from mocap.pipelines.options import CaptureOptions

    videos = args.video if isinstance(args.video, list) else [args.video]
    with staged_outputs() as staged:
        if len(videos) > 1 or args.calibration is not None:
            from mocap.pipelines.multiview import capture_multiview, check_view_count

            check_view_count(videos)  # before the options, whose checks assume several views
            options = from_namespace(CaptureOptions, args)
            report = capture_multiview(videos, staged.folder(args.output), options, progress=not args.quiet)
        else:
            options = from_namespace(CaptureOptions, args)
            report = capture(videos[0], staged.folder(args.output), options, progress=not args.quiet)
        summary = staged.published(report.summary())
    print(summary)
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from mocap.detect2d.options import DetectionOptions, require_person
    from mocap.detect2d.people import detect_person_video
    from mocap.formats import save_keypoints

    detection = from_namespace(DetectionOptions, args)
    out = Path(args.output)
    if out.suffix != ".npz":
        raise MocapError(f"output {out} must end in .npz")
    from mocap.io.video import turned

    with staged_outputs() as staged, turned(args.video, detection.rotate_deg):
        target = staged.file(out)
        from mocap.detect2d.background import BackgroundFlow
        from mocap.detect2d.shots import ShotCuts
        from mocap.io.video import probe_video
        from mocap.pipelines import scene
        from mocap.pipelines.capture import camera_motion_within, in_one_shot

        info = probe_video(args.video)
        flow, cuts = BackgroundFlow(0, info.frame_count, info.fps), ShotCuts()

        def keep_frame(index, frame) -> None:
            flow(index, frame)
            cuts(index, frame)

        keypoints, tracks, chosen = detect_person_video(
            args.video, detector=detection.detector_for(1), person=detection.person,
            track_everyone=detection.tracks_people, device=detection.device, progress=not args.quiet,
            keep_frame=keep_frame)
        span, shots = (0, info.frame_count), [(0, info.frame_count)]
        if detection.tracks_people and keypoints is not None:  # as mocap capture: one shot of a video that cuts
            span, shots, tracks, keypoints, chosen = in_one_shot(cuts, (0, keypoints.num_frames), tracks, keypoints,
                                                                 chosen, detection.person)
        (rate,) = require_person([keypoints if len(shots) < 2 else keypoints.frames(*span)], [args.video])
        # as mocap capture's keypoints2d.npz: the camera's own motion and the background's lines, for `mocap lift`
        moving = camera_motion_within(flow, span, keypoints.num_frames, info.size, tracks.keypoints)
        if moving.moved:
            keypoints = dataclasses.replace(keypoints, background_homography=moving.homography)
        lines, box = scene.scene_of(args.video, tracks.keypoints, span,
                                    homography=moving.homography if moving.moved else None)
        keypoints = dataclasses.replace(keypoints, scene_lines=lines, picture_box=box)
        if detection.hands:
            from mocap.detect2d.hands import detect_hands_video

            keypoints = detect_hands_video(args.video, keypoints, device=detection.device, progress=not args.quiet)
        save_keypoints(target, keypoints)
        people = ""
        if args.people:  # as mocap capture's: people.json and people.png beside the keypoints
            from mocap.pipelines.capture import write_people_files

            written: dict[str, Path] = {}
            listed, _ = write_people_files(args.video, target.parent, tracks, {chosen: None}, chosen, written)
            people = (f"; {len(listed)} people listed, id {chosen} written -> "
                      + ", ".join(str(out.parent / p.name) for p in written.values()))
    cut = (f"; the video cuts between {len(shots)} shots (frames " + ", ".join(f"{a}-{b - 1}" for a, b in shots)
           + f"): only frames {span[0]}-{span[1] - 1} kept, the shot where people are seen longest") if len(shots) > 1 else ""
    print(f"{keypoints.num_frames} frames, person detected in {100 * rate:.1f} %{cut} -> {out}{people}")
    return 0


def _cmd_lift(args: argparse.Namespace) -> int:
    from mocap.formats import load_keypoints, save_motion
    from mocap.pipelines.capture import StageTimer, lift_seen
    from mocap.pipelines.options import CleanupConfig, FitOptions, LiftOptions
    from mocap.skeletons import map_confidence, map_joints

    lifting, cleanup = from_namespace(LiftOptions, args), from_namespace(CleanupConfig, args)
    fit = from_namespace(FitOptions, args)

    keypoints = load_keypoints(args.keypoints)
    if args.layout and args.layout != keypoints.layout:
        if (keypoints.layout, args.layout) != ("mediapipe33", "coco17"):
            raise MocapError(f"cannot convert keypoints from {keypoints.layout} to {args.layout}")
        from mocap.formats import Keypoints2D

        keypoints = Keypoints2D(
            keypoints=map_joints(keypoints.keypoints, "mediapipe33", "coco17").astype("float32"),
            confidence=map_confidence(keypoints.confidence, "mediapipe33", "coco17").astype("float32"),
            layout="coco17", image_size=keypoints.image_size, fps=keypoints.fps, scene_lines=keypoints.scene_lines,
            background_homography=keypoints.background_homography)
    out = Path(args.output)
    if out.suffix != ".npz":
        raise MocapError(f"output {out} must end in .npz")
    timer = StageTimer()
    with staged_outputs() as staged:
        targets = [staged.file(out)] + ([staged.file(args.bvh)] if args.bvh else [])
        motion, fitted = lift_seen(keypoints, lifter=lifting.lifter, focal_px=lifting.focal_px, cleanup=cleanup,
                                   fit=fit, timer=timer)
        body = motion
        if keypoints.hand_world is not None:  # keypoints with hands (detect --hands): the fingers too
            from mocap.detect2d.background import steadied
            from mocap.detect2d.swaps import resolve_swaps
            from mocap.pipelines.capture import add_fingers

            # in the picture the body was lifted in (a camera that moved: the reference frame's)
            hands = steadied(keypoints).frames(motion.start_frame, motion.start_frame + motion.num_frames)
            if cleanup.resolve_swaps:  # as lift_seen did for the body
                hands = resolve_swaps(hands, min_confidence=cleanup.min_confidence)[0]
            motion = add_fingers(body, hands, fitted, focal_px=lifting.focal_px, timer=timer)
        save_motion(targets[0], motion)
        written = [str(out)]
        quality_text = ""
        if fitted is not None:
            from mocap.fit.quality import quality_line
            from mocap.pipelines.capture import write_quality

            quality_path = out.with_name(out.stem + ".quality.json")
            moving = None
            if keypoints.background_homography is not None:  # the camera moved (mocap capture / detect found it)
                from mocap.detect2d.background import motion_of

                moving = motion_of(keypoints.background_homography, keypoints.image_size)
            quality = write_quality(staged.file(quality_path), body, keypoints, fitted, moving)
            written.append(str(quality_path))
            quality_text = "\n" + quality_line(quality)
            if moving is not None and moving.moved:
                quality_text += (f"\nthe camera moved (the background shifts by up to {moving.max_shift_px:.0f} px): "
                                 f"lifted in frame {moving.reference}'s view")
        if args.bvh:
            from mocap.io.bvh import write_motion_bvh

            write_motion_bvh(targets[1], motion, units=args.units)
            written.append(args.bvh)
    total = sum(timer.seconds.values())
    span = (f" (frames {motion.start_frame}-{motion.start_frame + motion.num_frames - 1} of {keypoints.num_frames}: "
            f"where the person is seen)" if motion.num_frames < keypoints.num_frames else "")
    print(f"{motion.num_frames} frames{span} lifted from {keypoints.layout} in {total:.2f} s "
          f"({motion.num_frames / max(total, 1e-9):.0f} frames/s) -> {', '.join(written)}{quality_text}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from mocap.multiview.board import Board

    try:
        cols, rows = (int(v) for v in args.corners.lower().split("x"))
        board = Board(args.board, (cols, rows), args.square_mm / 1000.0,
                      marker_m=(args.marker_mm or 0.0) / 1000.0)
    except ValueError as e:
        raise MocapError(f"bad board description: {e} (e.g. --board checkerboard --corners 7x5 --square-mm 40)") from None
    out = Path(args.output)
    if out.suffix != ".toml":
        raise MocapError(f"output {out} must end in .toml")
    with staged_outputs() as staged:
        _calibrate_into(args, board, staged.file(out))
    print(f"-> {out}")
    return 0


def _calibrate_into(args: argparse.Namespace, board, out: Path) -> None:
    from mocap.multiview.board import calibrate_intrinsics
    from mocap.io.calibration_files import save_cameras_toml

    cameras = []
    for folder in args.folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise MocapError(f"image folder not found: {folder}")
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
        if not images:
            raise MocapError(f"no .jpg/.png images in {folder}")
        camera, report = calibrate_intrinsics(images, board, name=folder.name)
        cameras.append(camera)
        fx, fy, cx, cy = camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2]
        print(f"{folder.name}: {len(report.used)} images used, {len(report.skipped)} skipped, "
              f"RMS {report.rms_px:.2f} px; f = ({fx:.1f}, {fy:.1f}) px, c = ({cx:.1f}, {cy:.1f}) px")
    save_cameras_toml(out, cameras, metadata={"source": "board intrinsics; extrinsics not calibrated (identity)"})


def _cmd_report(args: argparse.Namespace) -> int:
    from mocap.eval.report import report_file, report_png_path

    with staged_outputs() as staged:
        png = staged.file(args.png if args.png is not None else report_png_path(args.motion))
        cleaned = staged.file(args.cleaned) if args.cleaned is not None else None
        text = staged.published(report_file(args.motion, png=png, cleaned=cleaned, quality=args.quality))
    print(text)
    return 0


def _cmd_retarget(args: argparse.Namespace) -> int:
    if args.avatar is not None and args.target is not None:
        raise MocapError("give either --target or --avatar, not both")
    if args.avatar is not None and Path(args.output).suffix.lower() == ".bvh":
        raise MocapError("the anny character is a skinned mesh: write .glb (or .fbx, .blend), not .bvh")
    with staged_outputs() as staged:
        message = _retarget_into(args, staged.file(args.output))
    print(message)
    return 0


def _retarget_into(args: argparse.Namespace, out: Path) -> str:
    """Run ``mocap retarget`` writing to ``out``; the line to print (naming ``args.output``)."""
    from mocap.export import blender as export_blender

    if args.avatar is not None:
        from mocap.export.avatar import retarget_to_avatar

        if out.suffix.lower() == ".bvh":
            raise MocapError("the anny character is a skinned mesh: write .glb (or .fbx, .blend), not .bvh")
        result = retarget_to_avatar(args.motion, out, pin_feet=not args.no_pin_feet, pin_hands=args.pin_hands)
        return (f"{result.local_quats_wxyz.shape[0]} frames on the anny character (root motion scaled by "
                f"{result.scale:.3f}) -> {args.output}\n{result.fidelity.line()}")
    if args.target is None:
        from mocap.formats import load_motion

        motion = load_motion(args.motion)
        if motion.local_quats_wxyz is None or motion.root_translation is None or motion.rest_offsets is None:
            raise MocapError(f"{args.motion} has no local rotations; re-run mocap lift (it runs IK)")
        if out.suffix.lower() == ".bvh":
            from mocap.io.bvh import write_motion_bvh

            write_motion_bvh(out, motion, units=args.units)
            done = f"{motion.num_frames} frames of the motion21 skeleton -> {args.output}"
        else:
            export_blender.export_motion(out, joint_names=motion.joint_names, parents=motion.parents,
                                         rest_offsets=motion.rest_offsets, local_quats_wxyz=motion.local_quats_wxyz,
                                         root_translation=motion.root_translation, fps=motion.fps)
            done = f"{motion.num_frames} frames on the motion21 armature -> {args.output}"
        from mocap.export.fidelity import motion_fidelity

        return f"{done}\n{motion_fidelity(motion).line()}"
    result = export_blender.retarget_to_file(args.motion, args.target, out, mapping_path=args.mapping,
                                             pin_feet=not args.no_pin_feet, pin_hands=args.pin_hands,
                                             bvh_units=args.units)
    return (f"{result.local_quats_wxyz.shape[0]} frames retargeted onto {len(result.bone_names)} bones of "
            f"{args.target} (root motion scaled by {result.scale:.3f}) -> {args.output}\n{result.fidelity.line()}")


def _cmd_smpl(args: argparse.Namespace) -> int:
    from mocap.kinematics import smpl
    from mocap.formats import load_motion

    model = smpl.load_smpl_model(args.model)
    motion = load_motion(args.motion)
    with staged_outputs() as staged:
        fit = smpl.fit_motion(model, motion, num_betas=args.betas)
        smpl.write_amass_npz(staged.file(args.output), fit, gender=args.gender,
                             rest_pelvis=model.rest_joints(fit.betas)[0])
    print(f"{motion.num_frames} frames fitted with SMPL ({len(fit.betas)} betas): mean joint distance "
          f"{fit.error_m * 1000:.1f} mm to the motion's mapped joints -> {args.output} (AMASS layout, Z up)")
    return 0


def _cmd_passthrough(module: str, function: str, extra: str):
    def run(args: argparse.Namespace) -> int:
        import importlib

        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise MocapError(f"{module} needs an optional dependency ({e}); "
                             f"install it with: pip install 'mocap-lift[{extra}]'") from None
        return int(getattr(mod, function)(args.rest) or 0)

    return run


def build_parser() -> argparse.ArgumentParser:
    from mocap import __version__
    from mocap.pipelines.options import DetectionOptions, ExportOptions, MultiViewOptions, add_lift_arguments

    developer = "\n".join(f"  {name:<14}{_PASSTHROUGH[name][3]}" for name in _DEVELOPER_COMMANDS)
    parser = argparse.ArgumentParser(prog="mocap", description="Markerless motion capture: video in, 3D animation out.",
                                     epilog=f"developer commands:\n{developer}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"mocap-lift {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    p = sub.add_parser("capture", help="video(s) -> keypoints2d.npz, motion.npz, motion.bvh, overlay.mp4, preview")
    p.add_argument("video", nargs="+", help="video file (mp4, mov, avi, mkv); several for multi-view capture")
    add_arguments(p, MultiViewOptions)
    p.add_argument("-o", "--output", required=True, help="output folder")
    add_lift_arguments(p)
    add_arguments(p, ExportOptions, ("target", "avatar"))
    add_arguments(p, DetectionOptions)
    add_arguments(p, ExportOptions, ("overlay", "preview", "bvh_units"))
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, no log lines of the libraries")
    p.set_defaults(func=_cmd_capture)

    p = sub.add_parser("detect", help="video -> keypoints2d.npz (the 2D stage of mocap capture alone)")
    p.add_argument("video")
    p.add_argument("-o", "--output", required=True,
                   help="keypoints2d.npz to write: the chosen person in every frame (NaN where not seen)")
    add_arguments(p, DetectionOptions, ("detector", "person", "rotate_deg", "hands", "device"))
    p.add_argument("--people", action="store_true",
                   help="also write people.json and people.png (who is in the video, as mocap capture does) "
                        "beside the output")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_detect)

    p = sub.add_parser("lift", help="keypoints2d.npz -> motion.npz (and optionally BVH)")
    p.add_argument("keypoints", help="keypoints2d.npz (layout mediapipe33 or coco17)")
    p.add_argument("-o", "--output", required=True, help="motion.npz to write")
    p.add_argument("--layout", choices=["mediapipe33", "coco17"], default=None,
                   help="lift from this layout (a mediapipe33 file can be lifted as coco17)")
    p.add_argument("--bvh", default=None, help="also write this BVH file")
    add_arguments(p, ExportOptions, ("bvh_units",))
    add_lift_arguments(p)
    p.set_defaults(func=_cmd_lift)

    p = sub.add_parser("calibrate", help="camera intrinsics from board images (one folder per camera) -> cameras.toml")
    p.add_argument("folders", nargs="+", help="one folder of board images per camera")
    p.add_argument("-o", "--output", required=True, help="camera-set .toml to write")
    p.add_argument("--board", default="checkerboard", choices=["checkerboard", "charuco"])
    p.add_argument("--corners", required=True,
                   help="checkerboard: inner corners COLSxROWS (e.g. 7x5); charuco: squares COLSxROWS")
    p.add_argument("--square-mm", type=float, required=True, help="side of one square, millimetres")
    p.add_argument("--marker-mm", type=float, default=None, help="ChArUco marker side, millimetres")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("report", help="motion.npz -> quality metrics (jitter, foot skate, bone lengths, ground, "
                                      "match with the video) and a PNG")
    p.add_argument("motion", help="motion.npz")
    p.add_argument("--png", default=None, help="plot to write (default: <motion>_report.png beside the input)")
    p.add_argument("--cleaned", default=None, metavar="OUT.npz",
                   help="also lock planted feet on the ground, write the result here and report it")
    p.add_argument("--quality", default=None, metavar="QUALITY.json",
                   help="how well the motion matches the video, to print and plot (default: quality.json "
                        "beside the motion, if there)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("retarget", help="motion.npz -> an animated rig (.fbx, .glb, .blend, .bvh), on your character or ours")
    p.add_argument("motion", help="motion.npz")
    p.add_argument("--target", default=None, help="character rig (.fbx, .glb, .gltf, .blend); default: our motion21 armature")
    p.add_argument("--avatar", default=None, choices=["anny"], help="the built-in anny character (a skinned body mesh)")
    p.add_argument("-o", "--output", required=True,
                   help="file to write (.fbx, .glb, .gltf, .blend; .bvh: the rig's bone names and rest pose)")
    p.add_argument("--mapping", default=None, help='JSON file {"left_knee": "YourBoneName", ...} for bones not mapped by name')
    p.add_argument("--no-pin-feet", action="store_true",
                   help="let planted feet slide (by default the root, then the smallest leg change, holds them)")
    p.add_argument("--pin-hands", action="store_true",
                   help="bend the arms so the wrists keep their place relative to the shoulders (scaled by arm length)")
    p.add_argument("--no-pin-hands", action="store_false", dest="pin_hands",
                   help="(the default) the arms keep the capture's directions")
    add_arguments(p, ExportOptions, ("bvh_units",))
    p.set_defaults(func=_cmd_retarget)

    p = sub.add_parser("smpl", help="motion.npz -> SMPL pose, shape and translation as an AMASS-style .npz")
    p.add_argument("motion", help="motion.npz")
    p.add_argument("--model", required=True, help="your SMPL model file (SMPL_NEUTRAL.pkl or .npz, from smpl.is.tue.mpg.de)")
    p.add_argument("-o", "--output", required=True, help="AMASS-style .npz to write (poses, trans, betas, mocap_framerate)")
    p.add_argument("--gender", default="neutral", choices=["neutral", "male", "female"], help="stored in the file")
    p.add_argument("--betas", type=int, default=10, help="number of shape components to fit")
    p.set_defaults(func=_cmd_smpl)

    # dispatched in main() with all their arguments; the developer commands are listed apart (epilog)
    for name, (_, _, _, text) in _PASSTHROUGH.items():
        if name in _DEVELOPER_COMMANDS:
            sub.add_parser(name, add_help=False)
        else:
            sub.add_parser(name, help=text, add_help=False)
    return parser


# commands with their own argument parsers: name -> (module, function(argv) -> int, pip extra, help)
_PASSTHROUGH = {
    "batch": ("mocap.pipelines.batch", "batch_main", "detect",
              "many videos -> OUT/<name>/ each, resumable, local processes or Ray (see: mocap batch --help)"),
    "stream-2d": ("mocap.detect2d.stream", "stream2d_main", "detect",
                  "2D keypoints of a video or camera as JSON lines (the /v1/stream protocol; the add-on's Live)"),
    "serve": ("mocap.service.server", "serve_main", "service",
              "run the HTTP capture service (API keys: mocap serve keys create NAME; see: mocap serve --help)"),
    "train-lifter": ("lifting.train", "main", "lift", "train the lifting network (see: mocap train-lifter --help)"),
    "eval-lifter": ("lifting.evaluate", "main", "lift", "evaluate the lifting network (see: mocap eval-lifter --help)"),
    "eval-2d": ("mocap.eval.eval2d_cli", "eval2d_main", "detect",
                "score 2D estimators on COCO keypoints: AP, AR, PCK and speed (see: mocap eval-2d --help)"),
}


#: listed apart from the user commands in ``mocap --help``
_DEVELOPER_COMMANDS = ("train-lifter", "eval-lifter", "eval-2d")


#: Log lines of the native libraries (MediaPipe's absl/glog ``I0000 00:00:... file.cc:85]``
#: and ``W...``, absl's note before its initialisation, TFLite's ``INFO:``) that ``-q`` drops;
#: errors (``E``, ``F`` lines) still pass.
_LIBRARY_LOG = re.compile(rb"^([IW]\d{4} \d\d:\d\d:\d\d[.\d]* +\d+ [^\]]+\] |WARNING: All log messages before absl::"
                          rb"InitializeLog|INFO: )")
#: Environment for the libraries that read one when they load (OpenCV, TensorFlow/TFLite, glog).
_QUIET_ENV = {"OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8", "TF_CPP_MIN_LOG_LEVEL": "3",
              "GLOG_minloglevel": "2"}


@contextlib.contextmanager
def quiet_libraries():
    """Silence the log lines third-party libraries write to stderr (file descriptor 2, so
    also native code and child processes); our own messages and their errors still pass.

    MediaPipe 0.10.21's C++ logging reads no environment variable (GLOG_minloglevel and
    ABSL_MIN_LOG_LEVEL leave it talking), so stderr goes through a filter while the block runs.
    """
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    sys.stderr.flush()
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)

    def relay() -> None:
        with os.fdopen(read_fd, "rb") as lines:
            for line in lines:
                if not _LIBRARY_LOG.match(line):
                    os.write(saved, line)

    thread = threading.Thread(target=relay, name="quiet-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the relay reads to its end
        thread.join(timeout=5)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv and argv[0] in _PASSTHROUGH:  # their own parsers take every argument, --help included
        module, function, extra, _ = _PASSTHROUGH[argv[0]]
        args = argparse.Namespace(func=_cmd_passthrough(module, function, extra), rest=argv[1:])
    else:
        args = parser.parse_args(argv)
    with quiet_libraries() if getattr(args, "quiet", False) else contextlib.nullcontext():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("mocap: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 -- the front end: one line for every failure
        if os.environ.get("MOCAP_DEBUG"):
            raise
        print(f"mocap: error: {_one_line(e)}", file=sys.stderr)
        return 1


def _one_line(e: Exception) -> str:
    """The message of ``e`` on one line: ours and the clear ones (ValueError, OSError, ImportError)
    as they are; anything else named as unexpected, with how to see the traceback."""
    text = " ".join(str(e).split()) or e.__class__.__name__
    if isinstance(e, (MocapError, ImportError, ValueError)):
        return text
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    text = text if len(text) <= 500 else text[:500] + " ..."
    return f"unexpected {e.__class__.__name__}: {text} (run with MOCAP_DEBUG=1 for the traceback, and report it)"


if __name__ == "__main__":
    sys.exit(main())
