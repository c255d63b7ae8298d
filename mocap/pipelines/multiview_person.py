"""One associated person of a multi-view capture (:mod:`mocap.pipelines.multiview`): their
triangulation and clean-up, the final motion against each view, their hands and face from
every view, and their files. Composes the stages; holds no numerics of its own."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mocap.cleanup import motion as cleanup_motion
from mocap.formats import Keypoints2D, atomic_path, save_keypoints, save_motion
from mocap.multiview import quality
from mocap.multiview.rig import world_holds_gravity
from mocap.multiview.views import triangulate_views
from mocap.pipelines.options import CaptureOptions


@dataclass
class Person:
    """One associated person's capture: frames first..last of the synchronised clip."""

    id: int
    first: int
    views: list
    tri: object
    motion: object
    rotation: np.ndarray
    offset: np.ndarray
    reprojection: dict
    bone_cv: float
    quality: dict | None = None  # quality.json: per view, the final motion against that view's 2D
    # with --hands: frames with the left hand, with the right hand; of those, the frames from one view only
    hands: tuple[int, int, int, int] | None = None


def capture_person(pid: int, frames: np.ndarray, views: list[Keypoints2D], cameras, options: CaptureOptions,
                   stage, up: np.ndarray | None = None, shared: Person | None = None) -> Person:
    """Triangulate and clean one person's views over their first to last observed frame (``up``:
    gravity in the rig's world when the rooms' lines gave it, :func:`mocap.fit.scene.rig_up`;
    ``shared``: a person captured before, whose world, levelled and grounded, this one shares)."""
    seen = np.nonzero(frames)[0]
    first, last = int(seen[0]), int(seen[-1]) + 1
    views = [dataclasses.replace(v, keypoints=v.keypoints[first:last], confidence=v.confidence[first:last])
             for v in views]
    with stage("triangulate"):
        tri = triangulate_views(views, cameras, **dataclasses.asdict(options.multiview.triangulation))
    c = options.cleanup
    up_known = world_holds_gravity(cameras, auto=options.multiview.auto_calibration)
    motion, rot, offset = cleanup_motion.motion_from_points(tri.points, views[0].layout, fps=views[0].fps,
                                                            max_gap_s=c.max_gap_s, cutoff_hz=c.cutoff_hz,
                                                            level=c.level, lock_feet=c.lock_feet, stage=stage,
                                                            calibrated_up=up_known, up=up,
                                                            frame=None if shared is None else
                                                            (shared.rotation, shared.offset))
    return Person(pid, first, views, tri, motion, rot, offset, {}, quality.median_bone_length_cv(tri.points, views[0].layout))


def write_person(folder: Path, person: Person, names: Sequence[str], extra: dict, *,
                 units: str = "cm") -> dict[str, Path]:
    """motion.npz, motion.bvh, keypoints2d_<view>.npz and reprojection.json of one person into ``folder``."""
    from mocap.io import bvh

    folder.mkdir(parents=True, exist_ok=True)
    out = {"motion": folder / "motion.npz", "bvh": folder / "motion.bvh", "reprojection": folder / "reprojection.json"}
    save_motion(out["motion"], person.motion)
    bvh.write_motion_bvh(out["bvh"], person.motion, units=units)
    for name, k in zip(names, person.views):
        out[f"keypoints_{name}"] = folder / f"keypoints2d_{name}.npz"
        save_keypoints(out[f"keypoints_{name}"], k)
    with atomic_path(out["reprojection"]) as tmp:
        dropped = person.tri.dropped
        tmp.write_text(json.dumps({"person": person.id, "views": person.reprojection,
                                   "bone_length_cv_median": person.bone_cv,
                                   # points the views agreed on, but too far off the body's bones to keep
                                   "joints_dropped_off_bones": None if dropped is None else int(dropped.sum()),
                                   **extra}, indent=2))
    if person.quality is not None:
        from mocap.fit.quality import write_quality_json

        out["quality"] = folder / "quality.json"
        write_quality_json(out["quality"], {"person": person.id, "start_frame": person.first, "views": person.quality})
    return out


def view_quality(person: Person, cameras, names: Sequence[str], *, min_confidence: float = 0.3) -> dict[str, dict]:
    """quality.json's figures per view: the final motion (in its levelled world) through each
    calibrated camera against that view's 2D (:func:`mocap.fit.quality.motion_quality`), its
    left/right swaps undone as the triangulation undid them. Each stretch that does not match
    gets ``outvoted``: the share of its frames where that view saw a joint the triangulation
    rejected while other views agreed on it (so there the view's 2D is what is off)."""
    from mocap.detect2d.swaps import mirror_frames
    from mocap.fit.quality import motion_quality
    from mocap.skeletons import MOTION21, map_confidence

    agreed = np.isfinite(person.tri.points).all(-1)  # (T, J)
    out = {}
    for c, (name, k, camera, swapped) in enumerate(zip(names, person.views, cameras, person.tri.swapped)):
        k = mirror_frames(k, swapped)
        q = motion_quality(dataclasses.replace(person.motion, start_frame=0), k, camera.moved(person.rotation, person.offset))
        kept = ~((k.confidence >= min_confidence) & agreed & ~person.tri.inliers[c])  # (T, J) not rejected
        rejected = (map_confidence(kept.astype(np.float64), k.layout, MOTION21) < 1.0).any(-1)  # (T,)
        for r in q["mismatched_frames"]:
            r["outvoted"] = float(rejected[r["first"]:r["last"] + 1].mean())
        out[name] = q
    return out


def add_hands(videos: Sequence[Path], frame_counts: Sequence[int], starts, captured: dict[int, Person], cameras,
              options: CaptureOptions, *, progress: bool) -> None:
    """Each captured person's hands: found in every view at that view's body
    (:func:`mocap.detect2d.hands.detect_people_hands_video`, everyone in one pass over each
    video), triangulated (:func:`mocap.multiview.views.triangulate_hands`, the body's
    left/right swaps applied to the hands), put at the motion's wrists and turned into wrist and
    finger rotations (:func:`mocap.cleanup.fingers.motion_with_hand_points`). Sets each
    person's ``views`` (with their hands), ``motion`` (MOTION61) and ``hands``."""
    from mocap.cleanup.fingers import (FingerOptions, fill_hands, hand_joints_world, hands_at_wrists,
                                       motion_with_hand_points)
    from mocap.detect2d.estimators.hands_torch import HandLandmarksTorch
    from mocap.detect2d.hands import detect_people_hands_video
    from mocap.kinematics.fingers import plan_hands
    from mocap.multiview.views import hands_unswapped, triangulate_hands
    from mocap.skeletons import MOTION61, rest_offsets

    people = list(captured.values())
    estimator = HandLandmarksTorch(options.detection.device)
    with_hands: list[list[Keypoints2D]] = [[] for _ in people]
    for c, (video, n, start) in enumerate(zip(videos, frame_counts, starts)):
        bodies = [whole_video(p.views[c], n, int(start) + p.first) for p in people]
        span = (min(int(start) + p.first for p in people),
                max(int(start) + p.first + p.views[c].num_frames for p in people))
        found = detect_people_hands_video(video, bodies, device=options.detection.device, frames=span,
                                          progress=progress, estimator=estimator)
        for i, (person, k) in enumerate(zip(people, found)):
            at = int(start) + person.first
            with_hands[i].append(k.frames(at, at + person.views[c].num_frames))
    plan = plan_hands(MOTION61, rest_offsets(MOTION61))
    o = FingerOptions()
    for person, views in zip(people, with_hands):
        person.views = views
        tri = triangulate_hands(views, cameras, person.tri.swapped, min_confidence=o.min_confidence)
        t = len(tri.points)
        wrists, elbows = person.motion.joints[:, plan.wrists], person.motion.joints[:, plan.forearms]
        hands = hands_at_wrists((tri.points @ person.rotation.T + person.offset).reshape(t, 2, -1, 3), wrists)
        # a hand fewer than two views agree on: the monocular hand of the view most sure of it
        kp, conf, world = hands_unswapped(views, person.tri.swapped)
        if world is not None:
            mono = np.stack([hand_joints_world(k, w, cf, wrists, cam.moved(person.rotation, person.offset),
                                               min_confidence=o.min_confidence, unmirror=o.unmirror, elbows=elbows)
                             for k, w, cf, cam in zip(kp, world, conf, cameras)])
            hands, one_view = fill_hands(hands, mono, conf.reshape(len(views), t, 2, -1).min(-1))
        else:
            one_view = np.zeros((t, 2), bool)
        person.motion = motion_with_hand_points(person.motion, hands, options=o)
        seen = person.motion.hand_valid
        person.hands = (int(seen[:, 0].sum()), int(seen[:, 1].sum()), int(one_view[:, 0].sum()),
                        int(one_view[:, 1].sum()))


def whole_video(k: Keypoints2D, n: int, at: int) -> Keypoints2D:
    """A person's body keypoints ``k`` of one view (their own frames) placed at video frame
    ``at`` of that view's ``n`` frames, NaN (confidence 0) elsewhere: what the hand and face
    stages read."""
    kp = np.full((n,) + k.keypoints.shape[1:], np.nan, np.float32)
    conf = np.zeros((n,) + k.confidence.shape[1:], np.float32)
    kp[at:at + k.num_frames], conf[at:at + k.num_frames] = k.keypoints, k.confidence
    return dataclasses.replace(k, keypoints=kp, confidence=conf, hand_keypoints=None, hand_confidence=None,
                               hand_world=None)


def write_face(videos: Sequence[Path], frame_counts: Sequence[int], starts, person: Person, cameras, out: Path,
               outputs: dict[str, Path], options: CaptureOptions, *, progress: bool) -> int:
    """face.npz and face.csv of ``person`` from every view: the face found in each view at that
    view's body (:func:`mocap.detect2d.face.detect_face_video`), each view's measures, combined
    by how squarely each view saw the face (:func:`mocap.face.controls.combine_views`); the
    landmarks written are the first view's, the head's angles relative to facing the first
    camera. Returns the frames with controls."""
    from mocap.detect2d.estimators.face_torch import FaceLandmarksTorch
    from mocap.detect2d.face import detect_face_video
    from mocap.face.controls import combine_views, face_controls, face_data, face_points
    from mocap.face.options import FaceOptions
    from mocap.formats import save_face, write_face_csv

    o = FaceOptions()
    estimator = FaceLandmarksTorch(options.detection.device)
    t = person.views[0].num_frames
    faces, views = [], []
    for c, (video, n, start) in enumerate(zip(videos, frame_counts, starts)):
        at = int(start) + person.first
        face = detect_face_video(video, whole_video(person.views[c], n, at), device=options.detection.device,
                                 frames=(at, at + t), progress=progress, estimator=estimator)
        faces.append((face.keypoints[at:at + t], face.z[at:at + t], face.score[at:at + t]))
        views.append(face_controls(face_points(*faces[-1][:2]), fps=person.motion.fps, cutoff_hz=o.cutoff_hz,
                                   rest_percentile=o.rest_percentile))
    combined = combine_views(views, [cameras[0].R @ cam.R.T for cam in cameras], rest_percentile=o.rest_percentile)
    data = face_data(*faces[0], fps=person.motion.fps, start_frame=person.first, controls=combined)
    outputs["face"], outputs["face_csv"] = out / "face.npz", out / "face.csv"
    save_face(outputs["face"], data)
    write_face_csv(outputs["face_csv"], data)
    return int(np.isfinite(combined.values).all(-1).sum())


def with_hands(k: Keypoints2D, view: Keypoints2D, first: int) -> Keypoints2D:
    """A view's keypoints of the synchronised span ``k`` with the hands of ``view`` (the same
    view over a person's own frames, from synchronised frame ``first``) put in their frames;
    ``k`` itself when ``view`` has no hands."""
    if view.hand_keypoints is None:
        return k
    t, a = k.num_frames, first
    out = {}
    for name, fill in (("hand_keypoints", np.nan), ("hand_confidence", 0.0), ("hand_world", np.nan)):
        x = getattr(view, name)
        full = np.full((t,) + x.shape[1:], fill, np.float32)
        full[a:a + len(x)] = x
        out[name] = full
    return dataclasses.replace(k, **out)
