"""How well a rig and its triangulation fit the keypoints: reprojection errors per view,
views that do not fit, the variation of bone lengths."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from mocap import bones
from mocap.formats import Keypoints2D
from mocap.multiview.views import Triangulated
from mocap.skeletons import MOTION21, map_joints


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


def median_bone_length_cv(points: np.ndarray, layout: str) -> float:
    """Median over MOTION21's bones of the coefficient of variation of their lengths.

    Args:
        points: (T, J, 3) metres, triangulated joints of ``layout``; NaN where missing.
    Returns:
        The median CV (0.01 = 1 %); NaN when no bone was ever seen.
    """
    cv = bones.bone_length_cv(map_joints(points, layout, MOTION21), MOTION21.parents)
    return float(np.nanmedian(cv[1:])) if np.isfinite(cv[1:]).any() else float("nan")


def misfit_note(misfit: dict[str, tuple[float, float]], hint: str) -> str:
    """One line for the report about the views of :func:`misfit_views`; ``hint`` says what to try.

    One view off pulls the joints, so the others can show it too: the rig is named, no culprit.
    """
    return ("the calibration does not fit the keypoints well: median reprojection error "
            + ", ".join(f"{n} {e:.1f} px ({100 * e / h:.1f} % of the person's {h:.0f} px height)"
                        for n, (e, h) in misfit.items())
            + f", where about 1 % is usual; {hint}")


#: a person whose triangulated bones vary more than this (median coefficient of variation)
#: is reported: the views then disagree about who is who, or the calibration is off
BONE_CV_LIMIT = 0.10


def bone_outlier_frames(points: np.ndarray, layout: str, tolerance: float = BONE_CV_LIMIT) -> np.ndarray:
    """(T,) bool: frames whose bones differ from their median lengths by more than
    ``tolerance`` (median over the bones seen in that frame of ``|length / median - 1|``).

    Args:
        points: (T, J, 3) metres, triangulated joints of ``layout``; NaN where missing.
    """
    p = map_joints(points, layout, MOTION21)
    par = np.asarray(MOTION21.parents)
    length = np.linalg.norm(p[:, 1:] - p[:, par[1:]], axis=-1)  # (T, B)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bones and frames
        dev = np.nanmedian(np.abs(length / np.nanmedian(length, 0) - 1), 1)
    return np.nan_to_num(dev) > tolerance


def frame_ranges(frames: np.ndarray, offset: int = 0) -> str:
    """'3-7, 12' for a (T,) bool mask (frame numbers plus ``offset``)."""
    idx = np.nonzero(frames)[0] + offset
    if not idx.size:
        return ""
    cuts = np.nonzero(np.diff(idx) > 1)[0]
    starts, ends = np.r_[idx[0], idx[cuts + 1]], np.r_[idx[cuts], idx[-1]]
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(starts, ends))


def bone_note(who: str, cv: float, points: np.ndarray, layout: str, first_frame: int = 0) -> str | None:
    """A plain sentence when ``who``'s bones vary by more than :data:`BONE_CV_LIMIT`, naming the frames."""
    if not np.isfinite(cv) or cv <= BONE_CV_LIMIT:
        return None
    frames = frame_ranges(bone_outlier_frames(points, layout), first_frame)
    return (f"{who}: the triangulated bones vary in length by {100 * cv:.0f} % (median over the bones; a real "
            f"body's do not): the views may mix this person up with someone else, or the calibration may be off"
            + (f"; worst in frames {frames}" if frames else ""))
