"""Animator-facing quality metrics of a motion (``mocap report motion.npz``), and a PNG plot;
with a quality.json (:mod:`mocap.fit.quality`) also how well the motion matches the video.

Metrics (all from joint positions (T, J, 3) metres, +Y up, ground at y = 0):

* ``jitter_m_s2``: mean acceleration magnitude over joints and frames (second differences
  times fps squared; :func:`mocap.fit.quality.jitter`). Smooth motion is low; noise raises it.
* ``foot_skate_mm``: mean horizontal distance a foot point moves between two consecutive
  frames in which it is in contact (mm per contact frame; :func:`mocap.fit.quality.foot_skate`).
* ``bone_length_cv_pct``: mean and max over bones of the coefficient of variation of the
  bone's length over time (percent).
* ``penetration_mm``: mean and max depth of foot points below y = 0 (mm); ``float_mm``:
  mean height of the lowest foot point above y = 0 (mm), how far the feet hover.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mocap.cleanup.contact import CONTACT_POINTS, foot_contacts
from mocap.fit.quality import foot_skate, jitter
from mocap.skeletons import MOTION21, Skeleton

_FOOT = ("left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index")


@dataclass(frozen=True)
class MotionReport:
    """Quality figures of one motion; see the module docstring for definitions and units."""

    num_frames: int
    fps: float
    jitter_m_s2: float
    foot_skate_mm: float
    contact_fraction: float
    bone_length_cv_mean_pct: float
    bone_length_cv_max_pct: float
    penetration_mean_mm: float
    penetration_max_mm: float
    float_mm: float

    def summary(self) -> str:
        return "\n".join([
            f"frames: {self.num_frames} at {self.fps:g} fps",
            f"jitter (mean acceleration): {self.jitter_m_s2:.3f} m/s^2",
            f"foot skate: {self.foot_skate_mm:.2f} mm per contact frame "
            f"(foot points in contact {100 * self.contact_fraction:.0f} % of the time)",
            f"bone-length variation: mean {self.bone_length_cv_mean_pct:.3f} %, max {self.bone_length_cv_max_pct:.3f} %",
            f"ground penetration: mean {self.penetration_mean_mm:.2f} mm, max {self.penetration_max_mm:.2f} mm",
            f"feet above the ground: {self.float_mm:.1f} mm on average (lowest foot point)",
        ])

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _bone_cv(joints: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    p = np.asarray(parents)
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, p[1:]], axis=-1)
    mean = np.nanmean(lengths, 0)
    return np.nanstd(lengths, 0) / np.maximum(mean, 1e-9)


def _body_of(motion):
    """A MOTION61 motion's body: its first 21 joints (MOTION21, same order and rest offsets)."""
    import dataclasses

    from mocap.skeletons import MOTION21

    j = MOTION21.num_joints
    cut = lambda a: None if a is None else a[:, :j]  # noqa: E731
    return dataclasses.replace(motion, joints=motion.joints[:, :j], joint_names=MOTION21.joint_names,
                               parents=MOTION21.parents, local_quats_wxyz=cut(motion.local_quats_wxyz),
                               rest_offsets=None if motion.rest_offsets is None else motion.rest_offsets[:j],
                               hand_valid=None)


def _fingers_back(with_fingers, body):
    """``with_fingers`` (MOTION61) with ``body``'s (MOTION21) rotations, root and joints; its wrists'
    and fingers' rotations kept, the fingers moved with the body (forward kinematics)."""
    import dataclasses

    from mocap.kinematics.ik import forward_kinematics
    from mocap.skeletons import MOTION21

    j = MOTION21.num_joints
    local = with_fingers.local_quats_wxyz.copy()
    wrists = [MOTION21.index("left_wrist"), MOTION21.index("right_wrist")]
    keep = local[:, wrists].copy()
    local[:, :j] = body.local_quats_wxyz
    local[:, wrists] = keep
    off = with_fingers.rest_offsets.copy()
    off[:j] = body.rest_offsets
    joints = forward_kinematics(local, body.root_translation, off, with_fingers.parents)
    joints[:, :j] = body.joints
    return dataclasses.replace(with_fingers, joints=joints, local_quats_wxyz=local, root_translation=body.root_translation,
                               rest_offsets=off)


def motion_report(joints: np.ndarray, *, fps: float, parents: Sequence[int] = MOTION21.parents,
                  skeleton: Skeleton = MOTION21, contacts: np.ndarray | None = None) -> MotionReport:
    """Quality metrics of ``joints`` (T, J, 3) metres.

    Args:
        contacts: (T, 4) bool per :data:`CONTACT_POINTS`; detected with
            :func:`mocap.cleanup.contact.foot_contacts` when omitted. Pass the same contacts to
            compare two versions of a motion fairly.
    """
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3 or len(x) == 0:
        raise ValueError(f"joints must have shape (T, J, 3) with T > 0, got {x.shape}")
    if contacts is None:
        contacts = foot_contacts(x, fps=fps, skeleton=skeleton)
    acc = jitter(x, fps=fps)
    skate = foot_skate(x, contacts, skeleton=skeleton)
    cv = _bone_cv(x, parents) * 100
    feet = x[:, [skeleton.index(n) for n in _FOOT], 1]
    depth = np.clip(-feet, 0, None)
    return MotionReport(
        num_frames=len(x), fps=float(fps),
        jitter_m_s2=float(np.nanmean(acc)) if acc.size else 0.0,
        foot_skate_mm=float(np.nanmean(skate) * 1000) if np.isfinite(skate).any() else 0.0,
        contact_fraction=float(np.mean(contacts)),
        bone_length_cv_mean_pct=float(np.nanmean(cv)), bone_length_cv_max_pct=float(np.nanmax(cv)),
        penetration_mean_mm=float(np.nanmean(depth) * 1000), penetration_max_mm=float(np.nanmax(depth) * 1000),
        float_mm=float(np.nanmean(np.clip(np.nanmin(feet, 1), 0, None)) * 1000),
    )


def plot_report(path: str | os.PathLike, joints: np.ndarray, *, fps: float, contacts: np.ndarray | None = None,
                skeleton: Skeleton = MOTION21, title: str = "", quality: dict | None = None) -> None:
    """Write a PNG: foot heights with contacts shaded, jitter per frame, foot skate per frame,
    bone lengths over time; with ``quality`` (a quality.json's dict for this motion, frame for
    frame) a fifth panel: the reprojection error per frame in % of the person's height, the
    mismatch threshold (dashed) and the frame ranges that do not match (shaded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mocap.formats import atomic_path

    x = np.asarray(joints, dtype=np.float64)
    if contacts is None:
        contacts = foot_contacts(x, fps=fps, skeleton=skeleton)
    time = np.arange(len(x)) / fps
    rows = 4 if quality is None else 5
    fig, axes = plt.subplots(rows, 1, figsize=(9, 2.5 * rows), sharex=True)
    ax = axes[0]
    for k, name in enumerate(CONTACT_POINTS):
        line, = ax.plot(time, x[:, skeleton.index(name), 1] * 100, label=name)
        ax.fill_between(time, 0, 2 + k, where=contacts[:, k], color=line.get_color(), alpha=0.25, step="mid")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("height (cm)")
    ax.legend(fontsize=7, ncol=4)
    ax.set_title(title or "foot height; shaded: in contact")
    acc = jitter(x, fps=fps)
    axes[1].plot(time[1:-1], acc.mean(1) if acc.size else [], color="C3")
    axes[1].set_ylabel("mean accel. (m/s²)")
    skate = foot_skate(x, contacts, skeleton=skeleton) * 1000
    for k, name in enumerate(CONTACT_POINTS):
        axes[2].plot(time[1:], skate[:, k], ".", ms=3, label=name)
    axes[2].set_ylabel("skate (mm/frame)")
    p = np.asarray(skeleton.parents)
    lengths = np.linalg.norm(x[:, 1:] - x[:, p[1:]], axis=-1)
    axes[3].plot(time, (lengths / np.nanmean(lengths, 0) - 1) * 100, lw=0.8)
    axes[3].set_ylabel("bone length (% of mean)")
    if quality is not None:
        _plot_reprojection(axes[4], quality, time)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def _plot_reprojection(ax, quality: dict, time: np.ndarray) -> None:
    """The panel of :func:`plot_report` for a quality.json: error per frame, threshold, ranges.
    Its y axis runs from 0 to twice the threshold or 10 % above the largest error."""
    error = np.array(quality["reprojection_error_pct"], dtype=np.float64)  # null -> NaN
    threshold = float(quality["mismatch_threshold_pct"])
    fps, start = float(quality["fps"]), int(quality["start_frame"])
    for r in quality["mismatched_frames"]:
        ax.axvspan((r["first"] - start - 0.5) / fps, (r["last"] - start + 0.5) / fps, color="C3", alpha=0.15, lw=0)
    ax.plot(time, error, color="C0", lw=1)
    ax.axhline(threshold, color="C3", ls="--", lw=1)
    top = max(2 * threshold, 1.1 * np.nanmax(error)) if np.isfinite(error).any() else 2 * threshold
    ax.set_ylim(0, top)
    ax.set_ylabel("reprojection (% of height)")


def report_png_path(path: str | os.PathLike):
    """The report plot's default path: ``<stem>_report.png`` beside the motion file ``path``."""
    from pathlib import Path

    return Path(path).with_name(Path(path).stem + "_report.png")


def report_file(path: str | os.PathLike, *, png: str | os.PathLike | None = None,
                cleaned: str | os.PathLike | None = None, quality: str | os.PathLike | None = None) -> str:
    """``mocap report``: the metrics of a motion.npz as text, and its PNG plot.

    Args:
        png: where to write the plot (default ``<stem>_report.png`` beside the input).
        cleaned: if given, also lock planted feet (:func:`mocap.cleanup.contact.clean_motion`),
            write the result there as motion.npz and report it with the same contacts.
        quality: a quality.json of this motion (default: ``quality.json`` beside the input, if
            there): its summary line is printed and its per-frame reprojection error plotted.
            One found beside the input that does not cover the motion's frames is left out
            with a note; a given one raises MocapError.
    Returns:
        The text to print.
    """
    from pathlib import Path

    from mocap.cleanup.contact import clean_motion
    from mocap.errors import MocapError
    from mocap.fit.quality import quality_line, read_quality_json
    from mocap.formats import Motion, load_motion, save_motion
    from mocap.skeletons import MOTION21, MOTION61, rest_offsets

    motion = with_fingers = load_motion(path)
    if motion.joint_names == MOTION61.joint_names:  # a capture with --hands: the body's report (its first 21 joints)
        motion = _body_of(motion)
    if motion.joint_names != MOTION21.joint_names:
        raise MocapError(f"{path}: report needs the motion21 skeleton, got joints {', '.join(motion.joint_names[:5])}, ...")
    if not np.isfinite(motion.joints).all():
        raise MocapError(f"{path}: joints contain NaN; re-run mocap lift, which fills gaps")
    contacts = foot_contacts(motion.joints, fps=motion.fps)
    png = Path(png) if png is not None else report_png_path(path)
    lines = [f"{path}:", motion_report(motion.joints, fps=motion.fps, contacts=contacts).summary()]
    beside = [p for p in (Path(path).with_name(Path(path).stem + ".quality.json"), Path(path).with_name("quality.json"))
              if p.is_file()]  # mocap lift -o m.npz writes m.quality.json; a capture, quality.json
    quality_path = Path(quality) if quality is not None else beside[0] if beside else None
    faithful = read_quality_json(quality_path) if quality_path is not None else None
    if faithful is not None and (len(faithful["reprojection_error_pct"]) != motion.num_frames
                                 or faithful.get("start_frame", 0) != motion.start_frame):
        problem = (f"{quality_path} covers {len(faithful['reprojection_error_pct'])} frames from video frame "
                   f"{faithful.get('start_frame', 0)}, the motion {motion.num_frames} from {motion.start_frame}")
        if quality is not None:
            raise MocapError(f"{problem}: pass the quality.json written with this motion")
        lines.append(f"({problem}: not shown)")
        faithful = None
    if faithful is not None:
        lines.append(quality_line(faithful))
    plot_report(png, motion.joints, fps=motion.fps, contacts=contacts, title=f"{Path(path).name}", quality=faithful)
    written = [str(png)]
    if cleaned is not None:
        offsets = motion.rest_offsets if motion.rest_offsets is not None else rest_offsets()
        quats, root, joints, _ = clean_motion(motion.joints, fps=motion.fps, rest_offsets=offsets, contacts=contacts)
        out = Motion(joints=joints, joint_names=motion.joint_names, parents=motion.parents, fps=motion.fps,
                     local_quats_wxyz=quats, root_translation=root, rest_offsets=offsets)
        if with_fingers is not motion and with_fingers.local_quats_wxyz is not None:  # the fingers kept
            out = _fingers_back(with_fingers, out)
        save_motion(cleaned, out)
        clean_png = report_png_path(cleaned)
        plot_report(clean_png, joints, fps=motion.fps, contacts=contacts, title=f"{Path(cleaned).name} (feet locked)")
        lines += [f"after locking planted feet ({cleaned}, same contacts):",
                  motion_report(joints, fps=motion.fps, contacts=contacts).summary()]
        written += [str(cleaned), str(clean_png)]
    lines.append("wrote " + ", ".join(written))
    return "\n".join(lines)
