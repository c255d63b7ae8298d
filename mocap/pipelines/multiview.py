"""The multi-view pipeline: composes the stages; holds no numerics of its own.

videos -> 2D keypoints of everyone in each view (detect) -> synchronisation checks (and
frame offsets) -> calibration (a file, or from the people in the shot) -> who is who across
views and frames (association, 3D tracking; a calibration fitted to people is fitted again
to one associated person) -> per person: undistortion -> left/right swap
resolution and outlier-rejecting triangulation -> the monocular clean-up: 3D gap filling
and smoothing, world frame (gravity from the calibration's axes, grounded), constant bone
lengths, inverse kinematics, forward kinematics, foot locking -> with --hands / --face, the
hands triangulated and the face from every view -> files, reprojection errors and overlays
per view. One person's part: :mod:`mocap.pipelines.multiview_person`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from mocap.detect2d.estimators import BLAZEPOSE_TORCH
from mocap.detect2d.options import require_person
from mocap.detect2d.people import PeopleTracks
from mocap.errors import MocapError
from mocap.formats import Keypoints2D, atomic_path, save_keypoints
from mocap.multiview import quality, rig
from mocap.multiview.association import prominence, same_person_tracks
from mocap.multiview.main_person import main_person
from mocap.multiview.views import (associate_views, missing_views, person_views, plausible_find,
                                   reproject_to_view, stack_slots)
from mocap.fit.scene import rig_up
from mocap.pipelines.capture import StageTimer, prepare_output_dir
from mocap.pipelines.scene import scene_lines
from mocap.pipelines.multiview_person import (Person, add_hands, capture_person, view_quality, with_hands,
                                              write_face, write_person)
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
    people: list[dict] = field(default_factory=list)
    quality: dict[str, dict] = field(default_factory=dict)  # per view: quality.json's figures
    # frames with the left hand, with the right hand; of those, from one view only (None: not asked for)
    hands: tuple[int, int, int, int] | None = None
    face: int | None = None  # frames with face controls (None: not asked for)

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
        if self.quality:
            from mocap.fit.quality import quality_line

            lines.append("the final motion against each view (quality.json):")
            lines += [f"  {name}: {quality_line(q, one_camera=False)}" for name, q in self.quality.items()]
        if self.people:
            lines.append("people found in two views or more (id: synchronised frames; bone length variation):")
            lines += [f"  {p['id']}: frames {p['first_frame']}-{p['last_frame']} ({p['frames_visible']} seen); "
                      + (f"bones vary by {100 * p['bone_length_cv_median']:.1f} %" if p["captured"] else "not captured")
                      + (" (the main person)" if p["main"] else "")
                      for p in self.people]
        if self.hands is not None:
            left, right, left1, right1 = self.hands
            lines.append(f"hands: left in {left} frames, right in {right} frames (of {self.num_frames}), triangulated "
                         f"except {left1} and {right1} seen well in one view only (read from that view alone)")
        if self.face is not None:
            lines.append(f"face: controls in {self.face} frames (of {self.num_frames}), from the views that saw it "
                         "most squarely" + ("" if self.face else "; is the face visible, and not too small?"))
        lines += [f"note: {n}" for n in self.notes]
        lines.append("time per stage:")
        width = max(len(k) for k in self.seconds)
        lines += [f"  {k:<{width}}  {s:7.2f} s" for k, s in self.seconds.items()]
        lines.append("outputs:")
        lines += [f"  {p}" for p in self.outputs.values()]
        return "\n".join(lines)


def _write_overlay(video: Path, out: Path, keypoints: np.ndarray, *, size, fps: float, max_width: int | None) -> None:
    from mocap.export import overlay
    from mocap.io import video as video_io

    with overlay.OverlayWriter(out, keypoints_size=size, fps=fps, layout=MOTION21, num_frames=len(keypoints),
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
    if not options.detection.whole_video:
        raise MocapError("--start and --end work with one video for now: cut the videos to the same part first "
                         "(e.g. ffmpeg -i in.mp4 -ss 2 -to 5 part.mp4)")
    if options.detection.rotate_deg:
        raise MocapError("--rotate works with one video: a calibration describes the pictures as the videos store "
                         "them (turn a video with e.g. ffmpeg -i in.mp4 -vf transpose=1 out.mp4, and calibrate that)")


def _view_names(videos: Sequence[Path]) -> list[str]:
    names = [v.stem for v in videos]
    if len(set(names)) != len(names):
        names = [f"view{i + 1}_{n}" for i, n in enumerate(names)]
    return names


def _as_people(k) -> PeopleTracks:
    """A view's people: PeopleTracks as they are; one person's Keypoints2D as one slot."""
    if isinstance(k, PeopleTracks):
        return k
    seen = np.isfinite(k.keypoints).all(-1).any(-1)
    return PeopleTracks(keypoints=k.keypoints[:, None], confidence=k.confidence[:, None],
                        scores=seen.astype(np.float32)[:, None], track_ids=np.where(seen, 0, -1)[:, None],
                        layout=k.layout, image_size=k.image_size, fps=k.fps)


def _primary(people: PeopleTracks) -> Keypoints2D:
    """The person of one view that synchronisation and a first calibration go by: its only
    one, or its largest tracked person."""
    if people.keypoints.shape[1] == 1:
        return Keypoints2D(keypoints=people.keypoints[:, 0], confidence=people.confidence[:, 0], layout=people.layout,
                           image_size=people.image_size, fps=people.fps)
    return people.person("largest")


def _same_person(people: Sequence[PeopleTracks], primary: list[Keypoints2D]) -> list[Keypoints2D]:
    """For calibration from people: each view's track (of its three most seen) that one
    epipolar geometry ties best to view 0's largest person (no calibration needed)."""
    t = min(k.num_frames for k in primary)
    cands = [[primary[0]]] + [[p.person(i) for i in p.track_list()[:3]] or [k] for p, k in zip(people[1:], primary[1:])]
    pick = same_person_tracks([[(k.keypoints[:t], k.confidence[:t]) for k in c] for c in cands])
    return [c[i] for c, i in zip(cands, pick)]


def _people_arrays(people: Sequence[PeopleTracks], starts, t: int):
    """(C, T, P, J, 2) pixels, (C, T, P, J) confidences, (C, T, P) track ids of the synchronised frames."""
    kp = stack_slots([p.keypoints[s:s + t] for p, s in zip(people, starts)], np.nan)
    conf = np.nan_to_num(stack_slots([p.confidence[s:s + t] for p, s in zip(people, starts)], 0.0))
    ids = stack_slots([p.track_ids[s:s + t] for p, s in zip(people, starts)], -1).astype(np.int64)
    return kp, conf, ids


def _look_again(videos: Sequence[Path], starts, assoc, cameras, kp: np.ndarray, conf: np.ndarray, ids2d: np.ndarray, *,
                layout: str, detector: str, device: str):
    """Each view's frames where a person triangulated from the other views has no detection:
    the landmark network where they should be (:func:`mocap.detect2d.views.landmarks_where_expected`),
    its finds appended as detection slots. Returns kp, conf, ids2d and how many were found."""
    from mocap.detect2d.views import landmarks_where_expected

    wanted = missing_views(assoc, cameras, layout=layout)
    c, t, p = kp.shape[:3]
    slot: dict[tuple[int, int], int] = {}
    place = []
    for view, frame, _, _ in wanted:
        place.append(slot.get((view, frame), 0))
        slot[(view, frame)] = place[-1] + 1
    extra = max(slot.values(), default=0)
    if not extra:
        return kp, conf, ids2d, 0
    kp = np.concatenate([kp, np.full((c, t, extra) + kp.shape[3:], np.nan)], 2)
    conf = np.concatenate([conf, np.zeros((c, t, extra) + conf.shape[3:])], 2)
    ids2d = np.concatenate([ids2d, np.full((c, t, extra), -1, ids2d.dtype)], 2)
    found = 0
    for view in range(c):
        rows = [i for i, w in enumerate(wanted) if w[0] == view]
        if not rows:
            continue
        frames = np.array([wanted[i][1] for i in rows])
        got, cf = landmarks_where_expected(videos[view], frames + starts[view], np.stack([wanted[i][3] for i in rows]),
                                           detector=detector, device=device)
        for i, f, g, k in zip(rows, frames, got, cf):
            if plausible_find(g, k, wanted[i][3], kp[view, f], conf[view, f]):
                kp[view, f, p + place[i]], conf[view, f, p + place[i]] = g, k
                found += 1
    return kp, conf, ids2d, found


def capture_multiview(
    videos: Sequence[str | os.PathLike],
    outdir: str | os.PathLike,
    options: CaptureOptions = CaptureOptions(),
    *,
    keypoints: Sequence[Keypoints2D | PeopleTracks] | None = None,
    progress: bool = True,
) -> MultiViewReport:
    """Capture the people filmed by several cameras; write everything into ``outdir``.

    Everyone is detected in each view; the people are associated across views and tracked
    in 3D (:func:`mocap.multiview.views.associate_views`). The main person (present
    longest, weighted by size) goes to the top of ``outdir``: ``keypoints2d_<view>.npz`` per
    view, ``motion.npz``, ``motion.bvh``, ``calibration.toml`` (the cameras used),
    ``reprojection.json`` (errors per view; ``person``, ``start_frame``: the main person's id
    and first synchronised frame; ``people``: everyone found) and, unless turned off,
    ``overlay_<view>.mp4`` (the final 3D skeleton reprojected). ``people.json`` lists
    everyone found. With ``options.detection.all_people``, every person seen in at least a
    second of frames also gets ``person_<id>/`` with their own ``motion.npz``,
    ``motion.bvh``, ``keypoints2d_<view>.npz`` and ``reprojection.json``.

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
            frame, scale and intrinsics kept) before triangulating. A calibration fitted to
            people is fitted first to each view's largest person, then again to the main
            person's associated keypoints (correspondences of one person only).
        keypoints: C already detected keypoint sets (skips detection): one person per view
            (Keypoints2D) or everyone (:class:`mocap.detect2d.people.PeopleTracks`).
        progress: progress bars on stderr.
    """
    from mocap.detect2d.views import detect_view_people
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
            keypoints = [detect_view_people(v, detector=detector, device=device, max_people=mv.max_people,
                                            progress=progress) for v in videos]
        elif len(keypoints) != len(videos):
            raise ValueError(f"{len(keypoints)} keypoint sets for {len(videos)} videos")
    people = [_as_people(k) for k in keypoints]
    primary = [_primary(p) for p in people]
    require_person(primary, names, hint="every view must see the person "
                   "(remove that video and its camera from the calibration)")
    if cameras is not None:
        cameras, caught = rig.match_cameras(cameras, primary, names)
        notes += caught

    with timer.stage("synchronise"):
        sync_mod.check_views(primary, names, same_length=(mv.sync == "none"))
        offsets = np.zeros(len(videos), dtype=int)
        all_kp, all_conf = [k.keypoints for k in primary], [k.confidence for k in primary]
        if mv.sync == "auto":
            offsets = sync_mod.estimate_frame_offsets(all_kp, all_conf, cameras=cameras, max_offset=mv.max_offset)

    file_cameras = cameras
    adjusts = mv.auto_calibration or mv.refine_calibration
    # several people in a view: a file's rig is refined only to the main person's associated
    # keypoints, after the association (the views' largest people need not be one person)
    several = any(p.keypoints.shape[1] > 1 for p in people)
    if several and mv.auto_calibration:
        primary = _same_person(people, primary)
    fit = dict(auto=mv.auto_calibration, refine=mv.refine_calibration, body_height_m=mv.body_height_m,
               focal_px=options.lifting.focal_px, stage=timer.stage)
    first_fit = dict(fit, refine=mv.refine_calibration and not several)
    tried: list[list[int]] = []
    # A calibration that is fitted to the person (from people, or the file's refined) also
    # checks the offsets: a wrong rig can favour a wrong offset, and a wrong offset a wrong
    # rig, so offsets and rig are estimated again in turn until the offsets hold (3 rounds).
    for _ in range(3):
        tried.append([int(o) for o in offsets])
        starts, t = sync_mod.common_span([k.num_frames for k in primary], offsets)
        views = sync_mod.apply_offsets(primary, offsets)
        cameras, calib_text = rig.fit_rig(views, names, file_cameras, mv.calibration, **first_fit)
        if mv.sync != "auto" or not (first_fit["auto"] or first_fit["refine"]):
            break
        with timer.stage("synchronise"):
            again = sync_mod.estimate_frame_offsets(all_kp, all_conf, cameras=cameras, max_offset=mv.max_offset)
        if np.array_equal(again, offsets):
            break
        offsets = again
    else:
        offsets = np.asarray(tried[-1])  # the offsets the views and the rig were last fitted with
        starts, t = sync_mod.common_span([k.num_frames for k in primary], offsets)
        views = sync_mod.apply_offsets(primary, offsets)
        notes.append(f"frame offsets did not settle: tried {tried}; the rig was fitted with the last")
    if len(tried) > 1:
        notes.append(f"frame offsets {tried[0]} became {tried[-1]} with the cameras fitted to the person")
    fps = views[0].fps
    layout = views[0].layout

    kp, conf, ids2d = _people_arrays(people, starts, t)
    tri_opts = mv.triangulation

    def associate(cams):
        with timer.stage("associate"):
            return associate_views(kp, conf, cams, layout=layout, fps=fps, track_ids=ids2d,
                                   min_confidence=tri_opts.min_confidence, threshold_px=tri_opts.threshold_px)

    assoc = associate(cameras)
    detector = options.detection.detector_for(len(videos))
    if several and mv.look_again and layout == "mediapipe33" and detector in BLAZEPOSE_TORCH:
        with timer.stage("look again"):
            kp, conf, ids2d, added = _look_again(videos, starts, assoc, cameras, kp, conf, ids2d, layout=layout,
                                                 detector=detector, device=options.detection.device)
        if added:
            notes.append(f"the landmark network found {added} people-views the 2D detector had missed, where the "
                         "other views put someone")
            assoc = associate(cameras)
    if adjusts and len(assoc.ids) and several:
        # fit the rig again to associated keypoints only, so that no correspondence mixes two
        # people: from people, the main person's (their height is the scale); a file's rig
        # refined, every associated person's, one after the other
        ranked = assoc.ids[np.argsort(-prominence(assoc, kp, conf), kind="stable")]
        fitted = [person_views(kp, conf, assoc, int(i), views) for i in ranked[:1 if mv.auto_calibration else None]]
        fitted = [dataclasses.replace(v, keypoints=np.concatenate([f[c].keypoints for f in fitted]),
                                      confidence=np.concatenate([f[c].confidence for f in fitted]))
                  for c, v in enumerate(views)]
        cameras, calib_text = rig.fit_rig(fitted, names, file_cameras, mv.calibration, **fit)
        assoc = associate(cameras)
    found, main = main_person(assoc.ids, assoc.observed, prominence(assoc, kp, conf), person=options.detection.person,
                              min_frames=max(2, int(round(fps))))
    wanted = found if options.detection.all_people else [main]

    scene_up = None
    if options.cleanup.level:  # the rooms' verticals: gravity for a world that is not level, a check of one that is
        with timer.stage("scene lines"):
            try:
                scene_up = rig_up([scene_lines(v, p.keypoints, (s, s + t)) for v, p, s in zip(videos, people, starts)],
                                  cameras)
            except MocapError as e:  # a video that cannot be read again: the calibration's axes or the body decide
                notes.append(f"no gravity from the rooms' lines ({e})")
        scene_up, note = rig.gravity_in_world(scene_up, rig.world_holds_gravity(cameras, auto=mv.auto_calibration))
        if note:
            notes.append(note)
    captured: dict[int, Person] = {}
    for pid in sorted(wanted, key=lambda i: i != main):  # the main person first: everyone shares their world
        captured[pid] = capture_person(pid, assoc.frames(pid), person_views(kp, conf, assoc, pid, views), cameras,
                                        options, timer.stage, up=scene_up, shared=captured.get(main))
    adjusted_hint = ("the views may be out of step (try --sync auto) or the person poorly seen there"
                     if mv.sync == "none" else "the person may be poorly seen there")
    hint = adjusted_hint if adjusts else "a camera may have moved since the calibration: try --refine-calibration"
    for pid, person in captured.items():
        person.reprojection = quality.reprojection_summary(person.tri, names)
        with timer.stage("quality"):
            person.quality = view_quality(person, cameras, names, min_confidence=tri_opts.min_confidence)
        who = f"the main person (id {pid})" if pid == main else f"person {pid}"
        misfit = quality.misfit_views(person.reprojection, person.views)
        if misfit and pid == main:
            notes.append(quality.misfit_note(misfit, hint))
        note = quality.bone_note(who, person.bone_cv, person.tri.points, layout, person.first)
        if note:
            notes.append(note)
    counts = [info.frame_count or s + t for info, s in zip(infos, starts)]
    if options.detection.hands:
        with timer.stage("hands"):
            add_hands(videos, counts, starts, captured, cameras, options, progress=progress)
    face_frames = None
    if options.detection.face:
        with timer.stage("face"):
            face_frames = write_face(videos, counts, starts, captured[main], cameras, out, outputs, options,
                                      progress=progress)
    listing = []
    for i, n_seen in zip(assoc.ids, assoc.observed.sum(1)):
        seen = np.nonzero(assoc.observed[list(assoc.ids).index(i)])[0]
        if not seen.size:
            continue
        cv = captured[int(i)].bone_cv if int(i) in captured else None
        listing.append({"id": int(i), "first_frame": int(seen[0]), "last_frame": int(seen[-1]),
                        "frames_visible": int(n_seen), "captured": int(i) in captured, "main": int(i) == main,
                        "bone_length_cv_median": cv})
    if len(found) > 1 and not options.detection.all_people:
        notes.append(f"{len(found)} people were found in two views or more (ids {found}); person {main} was captured "
                     "(present longest, weighted by size); --all-people writes person_<id>/ for everyone")
    me = captured[main]
    notes[:0] = [f"{n}: the person was detected in only {100 * k.detection_rate():.0f} % of the frames"
                 for n, k in zip(names, person_views(kp, conf, assoc, main, views)) if k.detection_rate() < 0.5]

    with timer.stage("write files"):
        extra = {"frame_offsets": [int(o) for o in offsets], "calibration": calib_text}
        for name, k, mine in zip(names, person_views(kp, conf, assoc, main, views), me.views):
            outputs[f"keypoints_{name}"] = out / f"keypoints2d_{name}.npz"
            save_keypoints(outputs[f"keypoints_{name}"], with_hands(k, mine, me.first))
        top = write_person(out, me, [], {"start_frame": me.first, "people": listing, **extra}, units=export.bvh_units)
        outputs.update(motion=top["motion"], bvh=top["bvh"])
        outputs["calibration"] = out / "calibration.toml"
        save_cameras_toml(outputs["calibration"], cameras,
                          metadata={"source": calib_text, "frame_offsets": [int(o) for o in offsets]})
        outputs["reprojection"] = top["reprojection"]
        if "quality" in top:
            outputs["quality"] = top["quality"]
        outputs["people"] = out / "people.json"
        with atomic_path(outputs["people"]) as tmp:
            tmp.write_text(json.dumps({"people": listing, "main": main}, indent=2))
        if options.detection.all_people:
            for pid, person in captured.items():
                files = write_person(out / f"person_{pid}", person, names, {"start_frame": person.first, **extra},
                                      units=export.bvh_units)
                outputs.update({f"person_{pid}_{k}": v for k, v in files.items()})

    if export.overlay:
        with timer.stage("overlays"):
            for name, video, info, cam, s, view in zip(names, videos, infos, cameras, starts, views):
                outputs[f"overlay_{name}"] = out / f"overlay_{name}.mp4"
                px = reproject_to_view(me.motion.joints[:, :MOTION21.num_joints], me.rotation, me.offset, cam, start=s + me.first,
                                       num_frames=info.frame_count)
                _write_overlay(video, outputs[f"overlay_{name}"], px, size=view.image_size, fps=fps,
                               max_width=export.overlay_max_width)
    return MultiViewReport(outputs=outputs, num_frames=me.motion.num_frames, fps=fps, names=names,
                           offsets=[int(o) for o in offsets], reprojection=me.reprojection, calibration=calib_text,
                           bone_length_cv=me.bone_cv, seconds=timer.seconds, notes=notes, people=listing,
                           quality=me.quality or {}, hands=me.hands, face=face_frames)
