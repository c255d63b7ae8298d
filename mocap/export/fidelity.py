"""How faithfully a retargeted character moves like the capture: the fidelity line of
``mocap retarget`` and of the Blender add-on (pure numpy).

Each *limb* is a direction between two points (:data:`LIMBS`): canonical joints of
:mod:`mocap.export.retarget` and three end points the skeletons do not share as joints, the
hands' and the head's ends (:func:`source_points`, :func:`target_points`). The error of a
limb at a frame is the angle between the character's limb and the capture's, after one
rotation for the whole clip (:func:`limb_angle_errors`), so that the two files' axis
conventions do not count. The planted feet's slide is how far an ankle moves horizontally
during a contact (:func:`planted_slide`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mocap.export.retarget import Rig, _runs, auto_bone_map, motion_to_source, planted_feet
from mocap.kinematics.ik import kabsch_rotations
from mocap.rotations import rotation_matrix_between_vectors

#: The points beyond the joints: a hand's end continues the forearm in the rest pose, the
#: head's end the neck.
END_POINTS = {"left_hand_end": ("left_elbow", "left_wrist"), "right_hand_end": ("right_elbow", "right_wrist"),
              "head_end": ("neck", "head")}
#: Limb -> (from point, to point).
LIMBS: dict[str, tuple[str, str]] = {
    "spine": ("spine", "neck"), "neck": ("neck", "head"), "head": ("head", "head_end"),
    **{f"{s}_{limb}": (f"{s}_{a}", f"{s}_{b}") for s in ("left", "right") for limb, a, b in (
        ("upper_arm", "shoulder", "elbow"), ("forearm", "elbow", "wrist"), ("hand", "wrist", "hand_end"),
        ("thigh", "hip", "knee"), ("shin", "knee", "ankle"), ("foot", "ankle", "foot_index"))}}
#: How far an end point is from its joint in :func:`source_points` (any length gives the same direction).
_END_M = 0.1
#: A child bone is a hand's or the head's end when its rest direction is within this of the forearm's / neck's.
_END_MAX_DEG = 40.0


def limb_directions(points: Mapping[str, np.ndarray], limbs: Sequence[str] = tuple(LIMBS)) -> np.ndarray:
    """Unit directions (T, L, 3) of ``limbs`` (names of :data:`LIMBS`) from ``points``
    (name -> (T, 3) positions, any length unit); NaN for a limb whose points are missing
    or coincide."""
    t = len(next(iter(points.values())))
    out = np.full((t, len(limbs), 3), np.nan)
    for i, limb in enumerate(limbs):
        a, b = LIMBS[limb]
        if a in points and b in points:
            d = np.asarray(points[b], dtype=np.float64) - np.asarray(points[a], dtype=np.float64)
            n = np.linalg.norm(d, axis=-1, keepdims=True)
            out[:, i] = np.where(n > 1e-9, d / np.where(n > 1e-9, n, 1.0), np.nan)
    return out


def limb_angle_errors(source_dirs: np.ndarray, target_dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angles (T, L) in degrees between the target's limbs and the source's turned by the
    one rotation R (3, 3) that best aligns them over the whole clip (least squares over
    every frame and limb); NaN where either is NaN.

    Args:
        source_dirs, target_dirs: (T, L, 3) unit vectors.
    Returns:
        (angles (T, L) degrees, R (3, 3) with ``R @ source`` ~ ``target``).
    """
    s = np.asarray(source_dirs, dtype=np.float64)
    d = np.asarray(target_dirs, dtype=np.float64)
    if s.shape != d.shape or s.ndim != 3 or s.shape[-1] != 3:
        raise ValueError(f"source_dirs {s.shape} and target_dirs {d.shape} must both be (T, L, 3)")
    ok = np.isfinite(s).all(-1) & np.isfinite(d).all(-1)
    if not ok.any():
        return np.full(s.shape[:2], np.nan), np.eye(3)
    rot = kabsch_rotations(s[ok][None], d[ok][None, None], np.ones((1, 1, int(ok.sum()))))[0][0, 0]
    cos = np.einsum("tli,tli->tl", d, s @ rot.T)
    return np.where(ok, np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))), np.nan), rot


def planted_slide(ankles: np.ndarray, planted: np.ndarray) -> float:
    """The planted feet's slide: the largest horizontal distance (metres) an ankle gets
    from where it was at the start of a contact, over every contact; 0 without contacts.

    Args:
        ankles: (T, 2, 3) metres, +Y up: left and right ankle.
        planted: (T, 2) bool (:func:`mocap.export.retarget.planted_feet`).
    """
    a = np.asarray(ankles, dtype=np.float64)
    c = np.asarray(planted, bool)
    out = 0.0
    for f in range(2):
        for lo, hi in _runs(c[:, f]):
            step = a[lo:hi, f, 0::2] - a[lo, f, 0::2]
            out = max(out, float(np.linalg.norm(step, axis=-1).max()))
    return out


def source_points(source: Rig, source_map: Mapping[str, str], source_global_rotmats: np.ndarray,
                  source_positions: np.ndarray, *, end_dirs: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Canonical joint (and end point) -> (T, 3) positions of the capture.

    An end point is its joint plus the joint's global rotation (T, J, 3, 3, rest-relative)
    applied to its rest direction: ``end_dirs[end]`` (3,), in the source's rest pose (the
    character's end bone put there, :func:`target_end_dirs`), else the direction it
    continues (:data:`END_POINTS`)."""
    ps = np.asarray(source_positions, dtype=np.float64)
    out = {c: ps[:, source.index(b)] for c, b in source_map.items()}
    for end, (a, b) in END_POINTS.items():
        if a in source_map and b in source_map:
            ia, ib = source.index(source_map[a]), source.index(source_map[b])
            rest = (end_dirs or {}).get(end, source.rest_positions[ib] - source.rest_positions[ia])
            out[end] = ps[:, ib] + np.asarray(source_global_rotmats)[:, ib] @ (rest / np.linalg.norm(rest) * _END_M)
    return out


def _end_bones(rig: Rig, target_map: Mapping[str, str]) -> dict[str, int]:
    """End point -> the child bone (of the hand, of the head) whose rest direction is nearest
    the one it continues (within 40 degrees); absent when no child is."""
    rest = rig.rest_positions
    out = {}
    for end, (a, b) in END_POINTS.items():
        if a not in target_map or b not in target_map:
            continue
        ia, ib = rig.index(target_map[a]), rig.index(target_map[b])
        along = (rest[ib] - rest[ia]) / np.linalg.norm(rest[ib] - rest[ia])
        best_cos = np.cos(np.radians(_END_MAX_DEG))
        for k, p in enumerate(rig.parents):
            d = rest[k] - rest[ib]
            cos = d @ along / max(np.linalg.norm(d), 1e-12)
            if p == ib and np.linalg.norm(d) > 1e-6 and cos > best_cos:
                out[end], best_cos = k, cos
    return out


def target_points(rig: Rig, target_map: Mapping[str, str], positions: np.ndarray) -> dict[str, np.ndarray]:
    """Canonical joint (and end point) -> (T, 3) positions of the character (``positions``
    (T, B, 3): its bone heads, in any unit). An end point is the head of a child bone of the
    hand or the head (:func:`_end_bones`)."""
    pos = np.asarray(positions)
    out = {c: pos[:, rig.index(b)] for c, b in target_map.items()}
    out.update({end: pos[:, k] for end, k in _end_bones(rig, target_map).items()})
    return out


def target_end_dirs(source: Rig, source_map: Mapping[str, str], rig: Rig, target_map: Mapping[str, str]) -> dict[str, np.ndarray]:
    """End point -> (3,) the character's end bone direction put in the source's rest pose:
    turned by the rotation that lays the character's rest forearm (neck) on the source's,
    as :func:`mocap.export.retarget.retarget` does. A hand or head bent at rest is then not
    counted as an error."""
    rt, rs = rig.rest_positions, source.rest_positions
    out = {}
    for end, k in _end_bones(rig, target_map).items():
        a, b = END_POINTS[end]
        if a in source_map and b in source_map:
            ta, tb = rig.index(target_map[a]), rig.index(target_map[b])
            sa, sb = source.index(source_map[a]), source.index(source_map[b])
            out[end] = rotation_matrix_between_vectors(rt[tb] - rt[ta], rs[sb] - rs[sa]) @ (rt[k] - rt[tb])
    return out


@dataclass(frozen=True)
class Fidelity:
    """Limb errors of a retargeted motion: ``errors_deg`` (T, L) degrees per frame and limb
    of ``limbs`` (NaN: the limb is missing on a side), ``rotation`` (3, 3) the whole clip's
    alignment, ``slide_m`` the planted feet's slide (metres; NaN: no planted feet)."""

    limbs: tuple[str, ...]
    errors_deg: np.ndarray
    rotation: np.ndarray
    slide_m: float

    def _finite(self) -> np.ndarray:
        e = self.errors_deg[np.isfinite(self.errors_deg)]
        return e if e.size else np.array([np.nan])

    @property
    def mean_deg(self) -> float:
        return float(self._finite().mean())

    @property
    def p95_deg(self) -> float:
        return float(np.percentile(self._finite(), 95))

    @property
    def max_deg(self) -> float:
        return float(self._finite().max())

    def worst_limb(self) -> str:
        """The limb with the largest error (the first if several)."""
        per_limb = np.nanmax(np.where(np.isfinite(self.errors_deg), self.errors_deg, -1.0), axis=0)
        return self.limbs[int(np.argmax(per_limb))]

    def line(self) -> str:
        """One line: mean and worst limb angle against the capture, the planted feet's slide."""
        slide = "no planted feet" if not np.isfinite(self.slide_m) else f"planted feet slide {100 * self.slide_m:.1f} cm"
        return (f"fidelity: limbs within {self.mean_deg:.1f} deg of the capture on average, {self.max_deg:.1f} deg "
                f"at worst ({self.worst_limb().replace('_', ' ')}); {slide}")


def fidelity(source: Mapping[str, np.ndarray], target: Mapping[str, np.ndarray], *,
             planted: np.ndarray | None = None) -> Fidelity:
    """:class:`Fidelity` of a character's points against the capture's (both name -> (T, 3)
    from :func:`source_points` / :func:`target_points`; the character's in metres).

    ``planted`` (T, 2) bool: the feet's contacts (:func:`planted_feet` of the capture's
    ankles; :attr:`RetargetResult.planted`); None: the slide is not measured (NaN).
    """
    limbs = tuple(n for n, (a, b) in LIMBS.items() if {a, b} <= set(source) & set(target))
    errors, rot = limb_angle_errors(limb_directions(source, limbs), limb_directions(target, limbs))
    feet = ("left_ankle", "right_ankle")
    slide = np.nan
    if planted is not None and np.asarray(planted).any() and all(f in target for f in feet):
        slide = planted_slide(np.stack([target[f] for f in feet], 1), planted)
    return Fidelity(limbs=limbs, errors_deg=errors, rotation=rot, slide_m=float(slide))


def retarget_fidelity(source: Rig, source_map: Mapping[str, str], source_global_rotmats: np.ndarray,
                      source_positions: np.ndarray, target: Rig, target_map: Mapping[str, str],
                      target_positions: np.ndarray, *, planted: np.ndarray | None = None) -> Fidelity:
    """:func:`fidelity` of a retarget: the source motion (as :func:`mocap.export.retarget.retarget`
    takes it) against the target's bone heads (T, B, 3) metres (its result's ``positions``,
    or the bones read back from a file)."""
    ends = target_end_dirs(source, source_map, target, target_map)
    return fidelity(source_points(source, source_map, source_global_rotmats, source_positions, end_dirs=ends),
                    target_points(target, target_map, target_positions), planted=planted)


def motion_fidelity(motion) -> Fidelity:
    """:class:`Fidelity` of a motion (a :class:`mocap.formats.Motion` with rotations) written
    on its own skeleton: every limb as captured (0 degrees); the planted feet's slide
    (:func:`mocap.export.retarget.planted_feet`) is the capture's own."""
    source, gs, ps = motion_to_source(motion.joint_names, motion.parents, motion.rest_offsets, motion.local_quats_wxyz,
                                      motion.root_translation)
    smap = auto_bone_map(source.bone_names)
    planted = planted_feet(ps[:, [source.index(smap[f]) for f in ("left_ankle", "right_ankle")]], fps=motion.fps)
    return retarget_fidelity(source, smap, gs, ps, source, smap, ps, planted=planted)
