"""Face controls from face landmarks: head orientation and ARKit-named curves in [0, 1].

Pure numpy. The input is MediaPipe's refined face mesh (``face478``: 468 mesh points and
10 iris points) as (T, 478, 3): x, y image pixels and the network's depth z in the same
pixel units (z grows away from the camera). Steps:

1. **Pose and scale** (:func:`normalise_face`): the head's rigid points (eye corners, nose,
   forehead, cheeks; :data:`RIGID`) give each frame's rotation, by Kabsch onto the clip's own
   median rigid shape (:func:`mocap.kinematics.ik.kabsch_rotations`), and its scale, the
   distance between the eye centres (the *IOD*). Every landmark is then expressed in the head
   frame (x: the person's left, y: up, z: out of the face) in IOD units, so that the
   measures below do not change when the head turns or moves closer.
2. **Measures** (:func:`face_measures`, :data:`MEASURES`): distances between landmarks in
   that frame, each signed so that it grows with its expression (the jaw's drop, the eyelids'
   closing as a fraction of the eye's width, the brows' height above the eye corners, the
   mouth corners' rise and spread, the mouth's narrowing and the lips' parting).
3. **Calibration per person** (:func:`calibrate`): each measure's rest is a low percentile of
   its values over the clip (the person's neutral face, whatever their features); a control is
   ``(measure - rest) / span`` clipped to [0, 1], with ``span`` a fixed range in IOD units
   (:data:`SPANS`) so that the same movement gives the same value on any face.
4. **Smoothing**: the measures are low-passed (zero-phase Butterworth,
   :func:`mocap.cleanup.filters.lowpass`) before calibration, per run of frames with a face.

Frames without a face (a rigid point missing) give NaN controls and a NaN head rotation; a
control whose own landmarks are missing (an eyelid point ...) is NaN on its own. Names: ARKit's blendshapes (``jawOpen`` ...); *Left* / *Right* are the person's
own sides, as in ARKit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mocap.cleanup.filters import lowpass
from mocap.formats import FaceData
from mocap.kinematics.ik import kabsch_rotations
from mocap.rotations import matrix_to_euler

# ------------------------------------------------------------------ landmarks (MediaPipe face mesh indices)

#: the eyes' (outer corner, inner corner, [upper lid, lower lid] pairs), the person's right then left
EYES = {"right": (33, 133, ((159, 145), (158, 153), (160, 144))),
        "left": (263, 362, ((386, 374), (385, 380), (387, 373)))}
#: the brows' (inner, outer) upper points, the person's right then left
BROWS = {"right": (107, 70), "left": (336, 300)}
#: mouth corners (the person's right, left), inner lips (upper, lower)
MOUTH_CORNERS = (61, 291)
INNER_LIPS = (13, 14)
#: points that move with the skull only: eye corners, nose bridge and tip, forehead, cheeks
RIGID = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 10, 151, 9, 234, 454, 127, 356)
#: the midline points that give the head's up axis (forehead -> under the nose) before fitting
UP_POINTS = (10, 2)
#: the point under the nose and the chin: the jaw's opening
NOSE_BASE, CHIN = 2, 152

#: the raw measures, in the order of :func:`face_measures`' columns
MEASURES = ("jaw", "eye_close_left", "eye_close_right", "brow_inner", "brow_outer_left", "brow_outer_right",
            "smile_left", "smile_right", "mouth_narrow", "lips_apart")
#: how far (IOD units; eye closing: fraction of the eye's width) a measure moves from rest to
#: full activation: jaw 0.45 IOD (about 3 cm for a 6.3 cm IOD), eyelids 0.2 eye widths (open
#: eye about 0.3, closed about 0.05), brows and smile 0.15 IOD (1 cm), mouth narrowing 0.25 IOD,
#: lips parting 0.3 IOD
SPANS = {"jaw": 0.45, "eye_close_left": 0.2, "eye_close_right": 0.2, "brow_inner": 0.15, "brow_outer_left": 0.15,
         "brow_outer_right": 0.15, "smile_left": 0.15, "smile_right": 0.15, "mouth_narrow": 0.25, "lips_apart": 0.3}
#: the controls (ARKit blendshape names), in the order of :attr:`FaceControls.values`' columns
CONTROLS = ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
            "mouthSmileLeft", "mouthSmileRight", "mouthPucker", "mouthFunnel")
#: how much a mouth corner's outward move counts towards a smile, next to its rise
SMILE_SPREAD_WEIGHT = 0.5
#: the head facing the camera: head axes (left, up, out of the face) in camera axes (x right, y down, z away)
FACING_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass(frozen=True)
class FaceControls:
    """Face controls over T frames.

    Attributes:
        names: the K = 10 control names (:data:`CONTROLS`).
        values: (T, K) float in [0, 1], NaN where there is no face.
        head_rotmats: (T, 3, 3) the head's axes (left, up, out of the face) in the camera's
            (x right, y down, z away), NaN where there is no face.
        head_ypr: (T, 3) yaw, pitch, roll in radians relative to facing the camera
            (:func:`head_angles`): yaw > 0 turned to the person's left, pitch > 0 chin down,
            roll > 0 head tilted towards its right shoulder.
        measures: (T, M) the smoothed raw measures (:data:`MEASURES`).
        rest: (M,) each measure's rest (calibration).
    """

    names: tuple[str, ...]
    values: np.ndarray
    head_rotmats: np.ndarray
    head_ypr: np.ndarray
    measures: np.ndarray
    rest: np.ndarray


def _check_points(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, np.float64)
    if p.ndim != 3 or p.shape[1] < 468 or p.shape[2] != 3:
        raise ValueError(f"points must be (T, 478, 3) face landmarks (x, y, z pixels), got {p.shape}")
    return p


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, np.nan)


def _axes(points: np.ndarray) -> np.ndarray:
    """(..., 478, 3) -> (..., 3, 3) head axes (columns: left, up, out of the face) from the eye
    centres and the midline, by Gram-Schmidt."""
    right = points[..., [EYES["right"][0], EYES["right"][1]], :].mean(-2)
    left = points[..., [EYES["left"][0], EYES["left"][1]], :].mean(-2)
    x = _unit(left - right)
    up = points[..., UP_POINTS[0], :] - points[..., UP_POINTS[1], :]  # forehead above the nose: the head's up
    y = _unit(up - (up * x).sum(-1, keepdims=True) * x)
    z = np.cross(x, y)
    return np.stack([x, y, z], -1)


def interocular(points: np.ndarray) -> np.ndarray:
    """(..., 478, 3) -> (...,) the distance between the eye centres (mean of each eye's corners), pixels."""
    right = points[..., [EYES["right"][0], EYES["right"][1]], :].mean(-2)
    left = points[..., [EYES["left"][0], EYES["left"][1]], :].mean(-2)
    return np.linalg.norm(left - right, axis=-1)


def normalise_face(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Landmarks in the head's frame, in IOD units.

    Args:
        points: (T, 478, 3) x, y, z pixels (z: the network's depth, away from the camera), NaN where missing.

    Returns:
        local (T, 478, 3) head frame (x: the person's left, y: up, z: out of the face), IOD units;
        rotmats (T, 3, 3) head axes in camera axes; centre (T, 3) the rigid points' mean, pixels;
        scale (T,) IOD, pixels. NaN in frames where a rigid point or an eye corner is missing.
    """
    p = _check_points(points)
    ok, centre, scale, rel = _rigid_points(p)
    t = len(p)
    rot = np.full((t, 3, 3), np.nan)
    local = np.full(p.shape, np.nan)
    if not ok.any():
        return local, rot, centre, scale
    template = rigid_template(_upright_rigid(p[ok], rel[ok]))
    rot[ok], local[ok] = _head_frame(p[ok], rel[ok], centre[ok], scale[ok], template)
    return local, rot, centre, scale


def _rigid_points(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(T, 478, 3) faces -> (T,) whether each has a head frame (its rigid points, midline and
    eyes seen), the rigid points' mean (T, 3) pixels, the IOD (T,) pixels, and the rigid points
    about their mean in IOD units (T, R, 3)."""
    rigid = p[:, RIGID]
    centre = rigid.mean(1)
    scale = interocular(p)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(rigid).all((1, 2)) & np.isfinite(p[:, UP_POINTS]).all((1, 2)) & (scale > 0)
        rel = (rigid - centre[:, None]) / scale[:, None, None]
    return ok, centre, scale, rel


def _upright_rigid(points: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """(N, 478, 3) faces and (N, R, 3) their rigid points about their mean (IOD units) -> the
    rigid points turned by each face's own axes (:func:`_axes`): comparable across frames."""
    return np.einsum("tji,tkj->tki", _axes(points), rel)


def rigid_template(upright: np.ndarray) -> np.ndarray:
    """(N, R, 3) upright rigid points of N frames -> (R, 3) the head's rigid shape: their median, centred."""
    template = np.median(upright, axis=0)
    return template - template.mean(0)


def _head_frame(points: np.ndarray, rel: np.ndarray, centre: np.ndarray, scale: np.ndarray,
                template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 478, 3) faces -> (N, 3, 3) head axes (Kabsch of the rigid points onto ``template``) and
    (N, 478, 3) the landmarks in the head frame, IOD units."""
    r, _ = kabsch_rotations(template[None], rel[:, None], np.ones((len(rel), 1, len(RIGID))))
    rot = r[:, 0]
    return rot, np.einsum("tji,tkj->tki", rot, (points - centre[:, None]) / scale[:, None, None])


def head_angles(rotmats: np.ndarray) -> np.ndarray:
    """(T, 3, 3) head axes in camera axes -> (T, 3) yaw, pitch, roll radians relative to facing
    the camera: the YXZ Euler angles of ``FACING_CAMERA.T @ rotmats`` (axes: x the person's
    left, y up, z towards the camera), so yaw turns about the up axis, pitch about the
    left axis, roll about the line of sight."""
    rel = np.einsum("ji,tjk->tik", FACING_CAMERA, np.asarray(rotmats, np.float64))
    return matrix_to_euler(rel, order="YXZ")


def face_measures(local: np.ndarray) -> np.ndarray:
    """(T, 478, 3) landmarks in the head frame (IOD units, :func:`normalise_face`) -> (T, M)
    measures (:data:`MEASURES`), each growing with its expression."""
    q = np.asarray(local, np.float64)
    y = q[..., 1]

    def dist(a, b):
        return np.linalg.norm(q[:, a] - q[:, b], axis=-1)

    def eye_close(side):
        outer, inner, lids = EYES[side]
        aperture = np.mean([dist(u, d) for u, d in lids], axis=0)
        return -aperture / dist(outer, inner)

    r_in, r_out = BROWS["right"]
    l_in, l_out = BROWS["left"]
    brow_inner = 0.5 * (y[:, r_in] - y[:, EYES["right"][1]] + y[:, l_in] - y[:, EYES["left"][1]])
    mouth_r, mouth_l = MOUTH_CORNERS
    upper = INNER_LIPS[0]

    def smile(corner, outward):
        return (y[:, corner] - y[:, upper]) + SMILE_SPREAD_WEIGHT * outward * (q[:, corner, 0] - q[:, upper, 0])

    return np.stack([
        dist(NOSE_BASE, CHIN),
        eye_close("left"), eye_close("right"),
        brow_inner,
        y[:, l_out] - y[:, EYES["left"][0]], y[:, r_out] - y[:, EYES["right"][0]],
        smile(mouth_l, 1.0), smile(mouth_r, -1.0),
        -dist(mouth_r, mouth_l),
        dist(*INNER_LIPS),
    ], -1)


def calibrate(measures: np.ndarray, *, rest_percentile: float = 20.0) -> np.ndarray:
    """(T, M) measures -> (M,) the person's rest: the ``rest_percentile`` of each over the
    frames where it is known (NaN if none)."""
    m = np.asarray(measures, np.float64)
    if not 0.0 <= rest_percentile <= 100.0:
        raise ValueError(f"rest_percentile must lie in [0, 100], got {rest_percentile}")
    if not np.isfinite(m).any():
        return np.full(m.shape[-1], np.nan)
    with np.errstate(invalid="ignore"):
        return np.nanpercentile(m, rest_percentile, axis=0)


def controls_from_measures(measures: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """(T, M) measures and (M,) rest -> (T, 10) controls (:data:`CONTROLS`) in [0, 1], NaN where a measure is."""
    m = np.asarray(measures, np.float64)
    spans = np.array([SPANS[k] for k in MEASURES])
    a = np.clip((m - rest) / spans, 0.0, 1.0)
    a[~np.isfinite(m)] = np.nan
    k = {name: a[:, i] for i, name in enumerate(MEASURES)}
    narrow, apart = k["mouth_narrow"], k["lips_apart"]
    return np.stack([k["jaw"], k["eye_close_left"], k["eye_close_right"], k["brow_inner"], k["brow_outer_left"],
                     k["brow_outer_right"], k["smile_left"], k["smile_right"], narrow * (1.0 - apart), narrow * apart],
                    -1)


def face_controls(points: np.ndarray, *, fps: float, cutoff_hz: float = 8.0, rest_percentile: float = 20.0,
                  rest: np.ndarray | None = None) -> FaceControls:
    """Head orientation and the ARKit-named controls of one person's face over a clip.

    Args:
        points: (T, 478, 3) face landmarks (x, y, z pixels), NaN where the face is missing.
        fps: frames per second (for the smoothing).
        cutoff_hz: low-pass cutoff of the measures, Hz (0: no smoothing; blinks last about
            0.1-0.3 s, so keep it above about 5 Hz).
        rest_percentile: the percentile of each measure over the clip taken as the person's rest.
        rest: (M,) rests to use instead (e.g. calibrated on another clip of the same person).

    Returns:
        :class:`FaceControls`.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if rest is not None and np.shape(rest) != (len(MEASURES),):
        raise ValueError(f"rest must hold {len(MEASURES)} values ({', '.join(MEASURES)}), got shape {np.shape(rest)}")
    local, rot, _, _ = normalise_face(points)
    raw = face_measures(local)
    smooth = lowpass(raw, fps=fps, cutoff_hz=cutoff_hz) if cutoff_hz > 0 else raw
    rest = calibrate(smooth, rest_percentile=rest_percentile) if rest is None else np.asarray(rest, np.float64)
    return FaceControls(CONTROLS, controls_from_measures(smooth, rest), rot, head_angles(rot), smooth, rest)


#: a view sees the face too much from the side beyond this head turn (yaw or pitch), degrees
MAX_TURN_DEG = 60.0


def combine_views(views: Sequence[FaceControls], to_first: Sequence[np.ndarray], *, rest_percentile: float = 20.0,
                  max_turn_deg: float = MAX_TURN_DEG) -> FaceControls:
    """One face from C cameras' :class:`FaceControls` of the same T frames (several views of one person).

    The measures are taken in the head's own frame, so every view measures the same face: per
    frame they are averaged over the views weighted by how squarely each saw it
    ((cos yaw cos pitch)^2 of that view's head angles; 0 beyond ``max_turn_deg`` or without a
    face), then calibrated once over the clip (``rest_percentile``, as :func:`face_controls`).
    The head's orientation is that of the view with the largest weight, turned into the first
    camera's axes.

    Args:
        views: C FaceControls (:func:`face_controls` of each view; the same smoothing).
        to_first: C (3, 3) rotations from each camera's axes to the first camera's
            (``R_first @ R_c.T`` for world-to-camera rotations R).
    Returns:
        FaceControls whose head angles are relative to facing the first camera; NaN in frames
        no view saw squarely enough.
    """
    if not views or len(views) != len(to_first):
        raise ValueError(f"combine_views needs one rotation per view and at least one view, got {len(views)} views "
                         f"and {len(to_first)} rotations")
    ypr = np.stack([v.head_ypr for v in views])  # (C, T, 3)
    m = np.stack([v.measures for v in views])  # (C, T, M)
    w = (np.cos(ypr[..., 0]) * np.cos(ypr[..., 1])) ** 2
    turned = np.maximum(np.abs(ypr[..., 0]), np.abs(ypr[..., 1])) > np.radians(max_turn_deg)
    w = np.where(np.isfinite(w) & ~turned & np.isfinite(m).all(-1), w, 0.0)
    total = w.sum(0)  # (T,)
    seen = total > 0
    measures = np.full(m.shape[1:], np.nan)
    measures[seen] = np.einsum("ct,ctm->tm", w[:, seen], np.nan_to_num(m[:, seen])) / total[seen, None]
    best = np.argmax(w, axis=0)  # (T,)
    rot = np.einsum("tij,tjk->tik", np.asarray(to_first, np.float64)[best],
                    np.stack([v.head_rotmats for v in views])[best, np.arange(len(best))])
    rot[~seen] = np.nan
    rest = calibrate(measures, rest_percentile=rest_percentile)
    return FaceControls(CONTROLS, controls_from_measures(measures, rest), rot, head_angles(rot), measures, rest)


def face_points(keypoints: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(T, 478, 2) pixels and (T, 478) depth pixels -> (T, 478, 3) float64 (what :func:`face_controls` reads)."""
    return np.concatenate([np.asarray(keypoints, np.float64), np.asarray(z, np.float64)[..., None]], -1)


def face_data(keypoints: np.ndarray, z: np.ndarray, score: np.ndarray, *, fps: float, start_frame: int = 0,
              cutoff_hz: float = 8.0, rest_percentile: float = 20.0, controls: FaceControls | None = None) -> FaceData:
    """A :class:`mocap.formats.FaceData` (what face.npz holds) from face landmarks.

    Args:
        keypoints: (T, 478, 2) pixels, NaN where the face is not found; z: (T, 478) pixels; score: (T,).
        fps, cutoff_hz, rest_percentile: as in :func:`face_controls`.
        controls: the controls to write instead of those of these landmarks (e.g. several views'
            :func:`combine_views`).
    """
    fc = controls if controls is not None else face_controls(face_points(keypoints, z), fps=fps, cutoff_hz=cutoff_hz,
                                                              rest_percentile=rest_percentile)
    return FaceData(keypoints=np.asarray(keypoints, np.float32), z=np.asarray(z, np.float32),
                    score=np.asarray(score, np.float32), names=fc.names, controls=fc.values.astype(np.float32),
                    head_rotmats=fc.head_rotmats.astype(np.float32), head_ypr=fc.head_ypr.astype(np.float32),
                    rest=fc.rest, fps=float(fps), start_frame=int(start_frame))


class LiveFace:
    """:func:`face_controls` one frame at a time, for a live stream: causal throughout.

    The head's rigid shape and the person's rest are taken from the frames seen so far (the
    last ``history_s`` seconds; the rest is the ``rest_percentile`` of each measure there, so
    the controls start at 0 and calibrate themselves within the first seconds), and the
    measures are smoothed by a one-pole low-pass at ``cutoff_hz`` (0: none) instead of the
    offline zero-phase filter.
    """

    def __init__(self, fps: float, *, cutoff_hz: float = 8.0, rest_percentile: float = 20.0,
                 history_s: float = 10.0) -> None:
        if fps <= 0 or cutoff_hz < 0 or history_s <= 0 or not 0.0 <= rest_percentile <= 100.0:
            raise ValueError(f"LiveFace needs fps > 0, cutoff_hz >= 0, history_s > 0 and rest_percentile in "
                             f"[0, 100]; got {fps}, {cutoff_hz}, {history_s}, {rest_percentile}")
        self.alpha = 1.0 - float(np.exp(-2.0 * np.pi * cutoff_hz / fps)) if cutoff_hz > 0 else 1.0
        self.rest_percentile = float(rest_percentile)
        self.size = max(1, int(round(history_s * fps)))
        self.reset()

    def reset(self) -> None:
        self._upright = np.full((self.size, len(RIGID), 3), np.nan)
        self._measures = np.full((self.size, len(MEASURES)), np.nan)
        self._count = 0
        self._smooth: np.ndarray | None = None

    def step(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(478, 3) landmarks (x, y, z pixels; NaN missing) -> ((10,) controls in [0, 1] as
        :data:`CONTROLS`, (3,) head yaw, pitch, roll radians); NaN without a face."""
        p = _check_points(np.asarray(points, np.float64)[None])
        ok, centre, scale, rel = _rigid_points(p)
        if not ok[0]:
            return np.full(len(CONTROLS), np.nan), np.full(3, np.nan)
        slot = self._count % self.size
        self._count += 1
        self._upright[slot] = _upright_rigid(p, rel)[0]
        seen = self._upright[:min(self._count, self.size)]
        rot, local = _head_frame(p, rel, centre, scale, rigid_template(seen))
        m = face_measures(local)[0]
        prev = m if self._smooth is None else self._smooth
        prev = np.where(np.isfinite(prev), prev, m)  # a measure seen for the first time starts where it is
        self._smooth = np.where(np.isfinite(m), prev + self.alpha * (m - prev), prev)
        self._measures[slot] = self._smooth
        rest = calibrate(self._measures[:min(self._count, self.size)], rest_percentile=self.rest_percentile)
        return controls_from_measures(self._smooth[None], rest)[0], head_angles(rot)[0]
