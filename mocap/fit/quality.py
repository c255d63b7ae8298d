"""Faithfulness of a motion to the video: the final motion projected back into the camera and
compared with the 2D keypoints, with the motion's own figures (foot skate, jitter, floor) and
the solved camera. Written as ``quality.json`` (docs/formats.md) and summed up in one line.

Conventions: world metres, +Y up, the ground at y = 0; a :class:`mocap.camera.Camera` maps
world to camera axes (x right, y down, z forward) with ``R`` and ``t``. Its pitch, roll and
height are :func:`camera_angles`.

The reprojection error of a frame is a fraction of the person's 2D height in that frame
(:func:`person_height_px`), so a number means the same for a near and a far person: 0.01 is
1 % of the height, about 1.7 cm on a 1.7 m person. MediaPipe's own 2D error is about 1 %.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mocap import bones
from mocap.camera import Camera
from mocap.cleanup.contact import CONTACT_POINTS, foot_contacts
from mocap.errors import MocapError
from mocap.formats import Keypoints2D, Motion, atomic_path
from mocap.skeletons import MOTION21, Skeleton, map_confidence, map_joints, rest_offsets, rest_positions

#: A frame does not match the video when its reprojection error exceeds this share of the
#: person's 2D height (percent): five times MediaPipe's own 2D error, a limb visibly off.
MISMATCH_PCT = 5.0
#: Such frames are named only in runs of at least this long (seconds): one bad frame is noise.
MISMATCH_MIN_S = 0.2
#: Inside a run, gaps this short (seconds) of frames under the threshold (or unseen) are bridged.
MISMATCH_BRIDGE_S = 0.1
#: A frame is below the floor when a joint is deeper than this under y = 0 (metres).
FLOOR_TOLERANCE_M = 0.03
#: Standing height = heel to the head joint (between the ears) in the rest pose plus this
#: allowance for the top of the head (metres; ear to crown, about 7 % of an adult's stature).
HEAD_TOP_M = 0.12
#: A frame's head-to-foot extent shorter than this share of the clip's median (crouching,
#: lying, feet out of the picture) is replaced by the median (see :func:`person_height_px`).
PARTIAL_SHARE = 0.6
#: ``version`` field of quality.json.
QUALITY_VERSION = 1

_FOOT_POINTS = ("left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index")
#: The body's parts whose share of frames seen quality.json gives (``parts_seen_pct``): a part
#: counts as seen in a frame when any of its keypoints has the confidence the error needs.
PARTS = {"head": ("head", "nose"), "torso": ("left_hip", "right_hip", "left_shoulder", "right_shoulder"),
         **{f"{side} arm": (f"{side}_elbow", f"{side}_wrist") for side in ("left", "right")},
         **{f"{side} leg": (f"{side}_knee",) for side in ("left", "right")},
         **{f"{side} foot": tuple(n for n in _FOOT_POINTS if n.startswith(side)) for side in ("left", "right")}}
_PLURAL = {"arm": "arms", "leg": "legs", "foot": "feet"}
#: A part seen in fewer of the person's frames than this (percent) is named in the summary line:
#: out of the picture or hidden, what it does is the network's guess, not the video's.
UNSEEN_PCT = 50.0


def camera_angles(camera: Camera) -> tuple[float, float, float]:
    """Pitch, roll (degrees) and height (metres) of a camera in the world frame (+Y up, ground y = 0).

    * pitch: the angle of the optical axis (``R[2]``, in world axes) below the horizontal;
      positive looking down, 90 straight down.
    * roll: the rotation about the optical axis: the angle in the image between the world's up
      direction and the image's up (-y); 0 when the image x axis is horizontal, positive when
      the world's vertical appears turned clockwise (its top towards the image's right). NaN
      when the camera looks straight up or down.
    * height: ``camera.position[1]``.
    """
    r = np.asarray(camera.R, dtype=np.float64)
    pitch = math.degrees(math.asin(float(np.clip(-r[2, 1], -1.0, 1.0))))
    up_x, up_y = r[0, 1], r[1, 1]  # world +Y in camera axes
    roll = math.degrees(math.atan2(up_x, -up_y)) if math.hypot(up_x, up_y) > 1e-9 else float("nan")
    return pitch, roll, float(camera.position[1])


# --- the motion's own figures ---------------------------------------------------------------

def jitter(joints: np.ndarray, *, fps: float) -> np.ndarray:
    """(T-2, J) acceleration magnitude in m/s^2 from second differences of ``joints`` (T, J, 3)
    metres (``fps=1`` gives metres per frame^2)."""
    x = np.asarray(joints, dtype=np.float64)
    if len(x) < 3:
        return np.zeros((0, x.shape[1]))
    return np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1) * fps * fps


def foot_skate(joints: np.ndarray, contacts: np.ndarray, *, skeleton: Skeleton = MOTION21) -> np.ndarray:
    """(T-1, 4) horizontal displacement in metres of each contact point between frames t and
    t+1 where it is in contact in both; NaN elsewhere. Columns :data:`CONTACT_POINTS`.

    Args:
        joints: (T, J, 3) metres, +Y up.
        contacts: (T, 4) bool, columns :data:`CONTACT_POINTS`.
    """
    x = np.asarray(joints, dtype=np.float64)[:, [skeleton.index(n) for n in CONTACT_POINTS]]
    c = np.asarray(contacts, bool)
    step = np.linalg.norm((x[1:] - x[:-1])[..., [0, 2]], axis=-1)
    return np.where(c[1:] & c[:-1], step, np.nan)


def standing_height(rest_offsets_m: np.ndarray, *, skeleton: Skeleton = MOTION21) -> float:
    """The person's standing height in metres from the rest pose (``rest_offsets_m`` (J, 3)
    metres, +Y up): from the mean of the heels to the head joint, plus :data:`HEAD_TOP_M`
    scaled by the neck-to-head bone (a smaller head has a lower top). The default MOTION21
    rest pose gives 1.55 + 0.12 = 1.67 m."""
    pos = rest_positions(rest_offsets_m, skeleton.parents)
    heels = np.mean([pos[skeleton.index(n), 1] for n in ("left_heel", "right_heel")])
    head = skeleton.index("head")
    top = HEAD_TOP_M * np.linalg.norm(rest_offsets_m[head]) / np.linalg.norm(rest_offsets(skeleton)[head])
    return float(pos[head, 1] - heels + top)


def motion_height(motion: Motion) -> float:
    """:func:`standing_height` of a MOTION21 motion: of its ``rest_offsets`` or, without them,
    of the default rest pose with the motion's median bone lengths (over its valid frames)."""
    if motion.rest_offsets is not None:
        return standing_height(motion.rest_offsets)
    seen = motion.joints[motion.valid_frames]
    lengths = bones.estimate_bone_lengths(seen if len(seen) else motion.joints, MOTION21.parents,
                                          left_right=MOTION21.left_right)
    return standing_height(bones.rest_offsets_with_lengths(rest_offsets(), lengths))


# --- reprojection -----------------------------------------------------------------------------

def _check_2d(keypoints_px: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kp = np.asarray(keypoints_px, dtype=np.float64)
    conf = np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0)
    if kp.ndim != 3 or kp.shape[1:] != (MOTION21.num_joints, 2) or conf.shape != kp.shape[:2]:
        raise ValueError(f"keypoints_px must be (T, {MOTION21.num_joints}, 2) MOTION21 pixels and confidence "
                         f"(T, {MOTION21.num_joints}); got {kp.shape} and {conf.shape} (map them with "
                         "mocap.skeletons.map_joints / map_confidence)")
    return kp, conf


def person_height_px(keypoints_px: np.ndarray, confidence: np.ndarray, *, min_confidence: float = 0.3) -> np.ndarray:
    """The person's 2D height per frame, pixels: the distance from the head keypoint to the
    lowest foot point (ankle, heel or toe with the largest image y), among keypoints with
    confidence >= ``min_confidence``.

    Robust to pose and partial views: in a frame without the head or any foot point, or whose
    distance is under :data:`PARTIAL_SHARE` of the clip's median (crouching, lying, feet out of
    the picture), the clip's median distance is used instead, so the height follows the person's
    distance from the camera but not their pose.

    Args:
        keypoints_px: (T, 21, 2) MOTION21 pixels, NaN where missing.
        confidence: (T, 21) in [0, 1].
    Returns:
        (T,) float pixels; NaN in frames with no keypoint at ``min_confidence`` and everywhere
        when no frame has both the head and a foot point.
    """
    kp, conf = _check_2d(keypoints_px, confidence)
    ok = (conf >= min_confidence) & np.isfinite(kp).all(-1)
    head = np.where(ok[:, [MOTION21.index("head")]], kp[:, MOTION21.index("head")], np.nan)
    feet = [MOTION21.index(n) for n in _FOOT_POINTS]
    foot_y = np.where(ok[:, feet], kp[:, feet, 1], -np.inf)
    lowest = kp[np.arange(len(kp)), np.asarray(feet)[np.argmax(foot_y, axis=1)]]
    lowest[~ok[:, feet].any(1)] = np.nan
    extent = np.linalg.norm(lowest - head, axis=-1)
    if not np.isfinite(extent).any():
        return np.full(len(kp), np.nan)
    median = float(np.nanmedian(extent))
    with np.errstate(invalid="ignore"):
        whole = extent >= PARTIAL_SHARE * median
    return np.where(~ok.any(1), np.nan, np.where(whole, extent, median))


def model_height_px(joints_world: np.ndarray, camera: Camera, height_m: float) -> np.ndarray:
    """The person's 2D height per frame as the motion puts them: ``height_m`` standing at the
    depth of their pelvis, seen by ``camera`` (its focal length ``K[1, 1]``).

    For clips whose keypoints never show the head and a foot together (legs out of the
    picture, a close-up), where :func:`person_height_px` has nothing to go on. One camera
    cannot tell a small near person from a tall far one, but it sees both at the same size in
    pixels, so this height does not depend on the fit's scale.

    Args:
        joints_world: (T, 21, 3) MOTION21 world metres. height_m: standing height, metres.
    Returns:
        (T,) float pixels; NaN where the pelvis is missing or behind the camera.
    """
    x = np.asarray(joints_world, dtype=np.float64)
    depth = camera.world_to_camera(x[:, MOTION21.index("pelvis")])[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(depth > 0, float(camera.K[1, 1]) * float(height_m) / depth, np.nan)


def parts_seen(keypoints_px: np.ndarray, confidence: np.ndarray, *, min_confidence: float = 0.3) -> dict[str, float]:
    """The share of the person's frames (those with any keypoint at ``min_confidence``) in which
    each of :data:`PARTS` is seen (any of its keypoints at ``min_confidence``), percent.

    Args:
        keypoints_px: (T, 21, 2) MOTION21 pixels, NaN where missing. confidence: (T, 21).
    Returns:
        {part: percent}; NaN for every part when the person is never seen.
    """
    kp, conf = _check_2d(keypoints_px, confidence)
    ok = (conf >= min_confidence) & np.isfinite(kp).all(-1)
    frames = ok.any(1)
    if not frames.any():
        return {part: float("nan") for part in PARTS}
    return {part: float(100.0 * ok[frames][:, [MOTION21.index(n) for n in names]].any(1).mean())
            for part, names in PARTS.items()}


#: :func:`across_picture`: a torso pointing further than this (degrees) from the picture's up lies across it
ACROSS_DEG = 60.0
#: :func:`quality_line` names a person lying across the picture in at least this share of frames (percent)
ACROSS_PCT = 50.0


def across_picture(keypoints_px: np.ndarray, confidence: np.ndarray, *, min_confidence: float = 0.3) -> float:
    """The share of frames (percent, of those with both hips and both shoulders seen) whose torso
    (the hips' centre to the shoulders' centre) points more than :data:`ACROSS_DEG` from the
    picture's up: a person lying down, or a picture turned on its side; NaN when never seen.

    Args:
        keypoints_px: (T, 21, 2) MOTION21 pixels, NaN where missing. confidence: (T, 21).
    """
    kp, conf = _check_2d(keypoints_px, confidence)
    hips = [MOTION21.index(n) for n in ("left_hip", "right_hip")]
    shoulders = [MOTION21.index(n) for n in ("left_shoulder", "right_shoulder")]
    ok = ((conf[:, hips + shoulders] >= min_confidence) & np.isfinite(kp[:, hips + shoulders]).all(-1)).all(1)
    if not ok.any():
        return float("nan")
    axis = kp[ok][:, shoulders].mean(1) - kp[ok][:, hips].mean(1)  # pixels, y down
    angle = np.degrees(np.arctan2(np.abs(axis[:, 0]), -axis[:, 1]))  # 0: upright, 180: upside down
    return float(100.0 * (angle > ACROSS_DEG).mean())


def _reprojection_px(joints_world: np.ndarray, kp: np.ndarray, conf: np.ndarray, camera: Camera,
                     min_confidence: float) -> np.ndarray:
    """(T,) confidence-weighted mean pixel distance between projected joints and keypoints."""
    x = np.asarray(joints_world, dtype=np.float64)
    if x.shape != kp.shape[:2] + (3,):
        raise ValueError(f"joints_world must have shape {kp.shape[:2] + (3,)} (T, 21, 3) to match the keypoints, "
                         f"got {x.shape}")
    dist = np.linalg.norm(camera.project(x) - kp, axis=-1)
    w = np.where((conf >= min_confidence) & np.isfinite(dist), conf, 0.0)
    total = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w * np.nan_to_num(dist)).sum(1) / total, np.nan)


def reprojection_error(joints_world: np.ndarray, keypoints_px: np.ndarray, confidence: np.ndarray, camera: Camera,
                       *, min_confidence: float = 0.3) -> np.ndarray:
    """Per frame, how far the motion seen through ``camera`` lies from the 2D keypoints, as a
    fraction of the person's 2D height.

    The joints are projected with ``camera.project``; the error of a frame is the
    confidence-weighted mean over the joints of the pixel distance to their keypoints (joints
    whose keypoint has confidence under ``min_confidence``, is missing, or that lie behind the
    camera do not count), divided by :func:`person_height_px` of that frame.

    Args:
        joints_world: (T, 21, 3) MOTION21 world metres.
        keypoints_px: (T, 21, 2) MOTION21 pixels, NaN where missing.
        confidence: (T, 21) in [0, 1].
        camera: the camera that saw them.
    Returns:
        (T,) float (0.01 = 1 % of the height); NaN where no joint counts (the person is not seen).
    """
    kp, conf = _check_2d(keypoints_px, confidence)
    return _reprojection_px(joints_world, kp, conf, camera, min_confidence) / person_height_px(
        kp, conf, min_confidence=min_confidence)


def mismatched_ranges(error_pct: np.ndarray, *, fps: float, threshold_pct: float = MISMATCH_PCT,
                      min_s: float = MISMATCH_MIN_S) -> list[tuple[int, int]]:
    """Frame ranges where the motion does not match the video.

    Frames whose ``error_pct`` exceeds ``threshold_pct`` form runs; gaps of up to
    :data:`MISMATCH_BRIDGE_S` (at least one frame) between them are bridged; runs of at least
    ``min_s`` seconds (at least one frame) are kept.

    Args:
        error_pct: (T,) reprojection error in percent of the person's height; NaN where unseen.
        fps: frames per second.
    Returns:
        [(first, last)] inclusive frame indices into ``error_pct``, in order.
    """
    over = np.nan_to_num(np.asarray(error_pct, dtype=np.float64), nan=-np.inf) > threshold_pct
    bridge, shortest = max(1, round(MISMATCH_BRIDGE_S * fps)), max(1, round(min_s * fps))
    bad = np.flatnonzero(over)
    if not bad.size:
        return []
    cut = np.flatnonzero(np.diff(bad) > bridge + 1)
    firsts, lasts = bad[np.r_[0, cut + 1]], bad[np.r_[cut, len(bad) - 1]]
    return [(int(a), int(b)) for a, b in zip(firsts, lasts) if b - a + 1 >= shortest]


def _finite_stat(values: np.ndarray, fn, *args) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(fn(v, *args)) if v.size else float("nan")


def motion_quality(motion: Motion, keypoints: Keypoints2D, camera: Camera, *, contacts: np.ndarray | None = None,
                   min_confidence: float = 0.3, threshold_pct: float = MISMATCH_PCT,
                   min_s: float = MISMATCH_MIN_S) -> dict[str, Any]:
    """The quality.json figures of a fitted motion (see docs/formats.md for every field).

    Args:
        motion: the final MOTION21 motion (what the BVH holds), world metres, +Y up; frame i is
            video frame ``motion.start_frame + i``; frames not ``valid`` are not compared with
            the video.
        keypoints: the 2D keypoints of the whole video (any layout), in the camera's pixels.
        camera: the solved camera.
        contacts: (T, 4) bool per :data:`CONTACT_POINTS`; None: detected with
            :func:`mocap.cleanup.contact.foot_contacts`.
    Returns:
        A dict of plain Python values (NaN where a figure cannot be measured), frame ranges in
        video frame numbers.
    """
    if motion.joint_names != MOTION21.joint_names:
        raise MocapError(f"quality needs the motion21 skeleton, got joints {', '.join(motion.joint_names[:5])}, ...")
    x = np.asarray(motion.joints, dtype=np.float64)
    t, start = motion.num_frames, int(motion.start_frame)
    kp = np.full((t, MOTION21.num_joints, 2), np.nan)
    conf = np.zeros((t, MOTION21.num_joints))
    span = slice(start, min(start + t, keypoints.num_frames))
    n = max(0, span.stop - span.start)
    kp[:n] = map_joints(keypoints.keypoints[span], keypoints.layout, MOTION21)
    conf[:n] = map_confidence(keypoints.confidence[span], keypoints.layout, MOTION21)
    conf[~motion.valid_frames] = 0.0
    error_px = _reprojection_px(x, kp, conf, camera, min_confidence)
    height_px = person_height_px(kp, conf, min_confidence=min_confidence)
    height_from = "keypoints"
    if not np.isfinite(height_px).any():  # head and feet never seen together: the motion's size in the image
        height_px, height_from = model_height_px(x, camera, motion_height(motion)), "motion"
    error_pct = 100 * error_px / height_px

    if contacts is None:
        contacts = foot_contacts(x, fps=motion.fps)
    contacts = np.asarray(contacts, bool)
    if contacts.shape != (t, len(CONTACT_POINTS)):
        raise ValueError(f"contacts must have shape {(t, len(CONTACT_POINTS))}, got {contacts.shape}")
    skate_mm = foot_skate(x, contacts) * 1000
    pitch, roll, cam_height = camera_angles(camera)
    lowest = np.nanmin(x[..., 1], axis=1)
    ranges = mismatched_ranges(error_pct, fps=motion.fps, threshold_pct=threshold_pct, min_s=min_s)
    return {
        "version": QUALITY_VERSION,
        "num_frames": t,
        "start_frame": start,
        "fps": float(motion.fps),
        "frames_seen": int(np.isfinite(error_pct).sum()),
        "reprojection_error_pct": [round(float(e), 3) for e in error_pct],
        "reprojection_median_pct": _finite_stat(error_pct, np.median),
        "reprojection_p95_pct": _finite_stat(error_pct, np.percentile, 95),
        "reprojection_max_pct": _finite_stat(error_pct, np.max),
        "reprojection_median_px": _finite_stat(error_px, np.median),
        "person_height_px": _finite_stat(height_px, np.median),
        "person_height_px_from": height_from,
        "parts_seen_pct": parts_seen(kp, conf, min_confidence=min_confidence),
        "torso_across_pct": across_picture(kp, conf, min_confidence=min_confidence),
        "mismatch_threshold_pct": float(threshold_pct),
        "mismatch_min_s": float(min_s),
        "mismatched_frames": [{"first": a + start, "last": b + start, "max_pct": float(np.nanmax(error_pct[a:b + 1]))}
                              for a, b in ranges],
        "foot_skate_mean_mm": _finite_stat(skate_mm, np.mean),
        "foot_skate_max_mm": _finite_stat(skate_mm, np.max),
        "jitter_mm": float(np.mean(jitter(x, fps=1.0)) * 1000) if t >= 3 else float("nan"),
        "camera_pitch_deg": pitch,
        "camera_roll_deg": roll,
        "camera_height_m": cam_height,
        "camera_focal_px": float(camera.K[0, 0]),
        "person_height_m": motion_height(motion),
        "lowest_joint_m": _finite_stat(lowest, np.min),
        "frames_below_floor": int(np.sum(lowest < -FLOOR_TOLERANCE_M)),
    }


# --- the file and the summary line ------------------------------------------------------------

def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def write_quality_json(path: str | os.PathLike, quality: dict[str, Any]) -> None:
    """Write :func:`motion_quality`'s dict to ``path`` as JSON, atomically; NaN becomes null."""
    text = json.dumps(_nan_to_none(quality), indent=1, allow_nan=False)
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def read_quality_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a quality.json (nulls stay None); MocapError if it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise MocapError(f"quality file not found: {path}")
    try:
        quality = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MocapError(f"{path} is not a readable quality.json ({e.__class__.__name__}: {e})") from None
    if not isinstance(quality, dict) or not isinstance(quality.get("reprojection_error_pct"), list):
        raise MocapError(f"{path} is not a quality.json: no per-frame reprojection_error_pct")
    return quality


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _span(r: dict[str, Any]) -> str:
    """A mismatched stretch's frames as text: "12-40", or "12" for one frame."""
    return f"{r['first']}-{r['last']}" if r["last"] > r["first"] else f"{r['first']}"


def unseen_parts_text(quality: dict[str, Any], *, one_camera: bool = True) -> str:
    """The parts of the body seen in fewer than :data:`UNSEEN_PCT` of the person's frames, as a
    clause for :func:`quality_line` ("" when every part is seen, or for a quality.json that
    predates ``parts_seen_pct``). With one camera, what such a part does is the network's guess
    (and, without either foot, so are the floor and the camera's height); with several, this
    view's share is given and other views may see the part."""
    seen = quality.get("parts_seen_pct") or {}
    few = [(part, _number(seen.get(part))) for part in PARTS if math.isfinite(_number(seen.get(part)))
           and _number(seen.get(part)) < UNSEEN_PCT]
    if not few:
        return ""
    pct = dict(few)
    names = []
    for part, value in few:  # both sides of a limb named once: "the feet (10 %, 8 %)"
        side, _, limb = part.partition(" ")
        if side == "left" and f"right {limb}" in pct:
            names.append(f"the {_PLURAL[limb]} ({value:.0f} %, {pct[f'right {limb}']:.0f} %)")
        elif not (side == "right" and f"left {limb}" in pct):
            names.append(f"the {part} ({value:.0f} %)")
    named = ", ".join(names)
    if not one_camera:
        return f"; seen in few of this view's frames: {named}"
    text = f"; seen in few frames (out of the picture or hidden): {named}: where unseen, their motion is the network's guess"
    if {"left foot", "right foot"} <= {part for part, _ in few}:
        text += ", and so are the floor and the camera's height"
    return text


def quality_line(quality: dict[str, Any], *, most: int = 4, one_camera: bool = True) -> str:
    """One line for a capture's summary: how well the 3D matches the video, the frame ranges
    that do not (the ``most`` worst named), frames below the floor if any, and the parts of the
    body the video seldom shows (:func:`unseen_parts_text`; ``one_camera`` False for one view of
    several).

    ``quality``: :func:`motion_quality`'s dict, or one read back by :func:`read_quality_json`.
    """
    median, p95 = _number(quality["reprojection_median_pct"]), _number(quality["reprojection_p95_pct"])
    threshold = _number(quality["mismatch_threshold_pct"])
    if not math.isfinite(median):
        return "3D against the video: not measured (the person is not seen in any frame of the motion)"
    verdict = ("3D matches the video" if median <= threshold / 2 else
               "3D roughly matches the video" if median <= threshold else "3D does not match the video")
    line = f"{verdict}: median reprojection error {median:.1f} % of the person's height (95th pct {p95:.1f} %)"
    ranges = quality["mismatched_frames"]
    if ranges:
        worst = sorted(sorted(ranges, key=lambda r: -_number(r["max_pct"]))[:most], key=lambda r: r["first"])
        named = ", ".join(_span(r) for r in worst)
        more = f" and {len(ranges) - len(worst)} more" if len(ranges) > len(worst) else ""
        top = max(_number(r["max_pct"]) for r in ranges)
        line += f"; frames {named}{more} do not match (up to {top:.1f} %)"
        outvoted = [r for r in ranges if _number(r.get("outvoted", 0.0)) >= 0.5]  # several views: see docs/formats.md
        if outvoted:
            line += f" ({', '.join(_span(r) for r in outvoted)}: this view's 2D, which the other views outvoted)"
    else:
        line += f"; no stretch of frames off by more than {threshold:g} %"
    below = int(quality.get("frames_below_floor") or 0)
    if below:
        line += f"; {below} frames have a joint more than {100 * FLOOR_TOLERANCE_M:.0f} cm under the floor"
    cam_height = _number(quality.get("camera_height_m"))
    if cam_height < 0.0:  # no camera films a person standing on a floor from under it
        line += (f"; the solved camera is {-cam_height:.2f} m under the floor, which cannot be: gravity and the "
                 f"floor are likely wrong (check preview.png)")
    across = _number(quality.get("torso_across_pct"))
    if one_camera and across >= ACROSS_PCT and quality.get("gravity_from") not in ("scene", "shared camera"):
        line += (f"; the person lies across the picture in {across:.0f} % of the frames and gravity comes from the "
                 f"body, which cannot tell a person lying down from a picture turned on its side: if the video is "
                 f"turned (a phone clip without its rotation tag), mocap capture --rotate 90 or 270 turns it upright")
    return line + unseen_parts_text(quality, one_camera=one_camera)
