"""Pictures for people: 2D skeletons over video, and previews of 3D motion.

Colours say the side of the body: the person's left is orange, their right is blue and
joints on the midline (nose, pelvis, spine ...) are white in 2D / dark grey in 3D. Sides
come from the skeleton table (``left_right`` pairs, or ``left_``/``right_`` joint names).

* :func:`draw_skeleton_2d` draws one frame's keypoints on a copy of an RGB image.
* :func:`mocap.export.overlay.render_overlay` writes the source video with the 2D skeleton
  drawn on every frame (its own module, with the writer and the background job).
* :func:`render_preview_3d` writes a PNG with front, side and top views of a few poses.
* :func:`render_preview_video` writes an mp4 of the 3D skeleton moving (front and side).

Images are RGB ``(H, W, 3) uint8``; pixel coordinates are x right, y down. 3D joints are
metres, right-handed, +Y up, the character facing +Z with its left on +X. Videos are
written with OpenCV's writer (:func:`mocap.io.video.open_video_writer`); every file is
written to a temporary name and renamed into place.
"""
from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np

from mocap.export.bones2d import draw_bones, edge_side
from mocap.formats import atomic_path
from mocap.io.video import even_size, open_video_writer
from mocap.skeletons import MOTION21, Skeleton, get_layout

#: RGB colours by side: 0 = centre, 1 = left, 2 = right.
LEFT_RGB = (255, 140, 20)
RIGHT_RGB = (40, 130, 255)
CENTRE_RGB = (240, 240, 240)
_SIDE_RGB_2D = (CENTRE_RGB, LEFT_RGB, RIGHT_RGB)
_SIDE_RGB_3D = ((70, 70, 70), LEFT_RGB, RIGHT_RGB)

_FRONT_SIDE_TOP = ("front (x-y)", "side (z-y)", "top (x-z)")


# --- sides and edges ----------------------------------------------------------------------
def _sides_from_pairs(num_joints: int, left_right: Sequence[tuple[int, int]]) -> np.ndarray:
    """(J,) int8: 0 centre, 1 left, 2 right."""
    side = np.zeros(num_joints, dtype=np.int8)
    for left, right in left_right:
        side[left], side[right] = 1, 2
    return side


def _sides_from_names(names: Sequence[str]) -> np.ndarray:
    """(J,) int8 from ``left_``/``right_`` prefixes and ``_left``/``_right`` suffixes."""
    side = np.zeros(len(names), dtype=np.int8)
    for j, n in enumerate(names):
        if n.startswith("left_") or n.endswith("_left"):
            side[j] = 1
        elif n.startswith("right_") or n.endswith("_right"):
            side[j] = 2
    return side


def _line_width(height: int, width: int) -> int:
    """Line thickness in pixels for an image: 2 px up to ~440 px, ~5 px on a 1080p frame."""
    return max(2, int(round(min(height, width) / 220)))


# --- 2D ---------------------------------------------------------------------------------
def draw_skeleton_2d(
    frame: np.ndarray,
    keypoints: np.ndarray,
    confidence: np.ndarray | None,
    layout: Skeleton | str,
    *,
    min_confidence: float = 0.3,
) -> np.ndarray:
    """Return a copy of ``frame`` with the 2D skeleton drawn on it.

    Args:
        frame: (H, W, 3) uint8 RGB image; not modified.
        keypoints: (J, 2) float pixels (x right, y down), NaN where missing.
        confidence: (J,) float in [0, 1], or None to trust every finite keypoint.
        layout: keypoint layout (a :class:`Skeleton` or its name, e.g. ``"mediapipe33"``).
        min_confidence: joints below this confidence, and edges touching them, are not drawn.

    Returns:
        (H, W, 3) uint8 RGB: left side orange, right side blue, midline white, with a dark
        outline; line width scales with the image size.
    """
    skeleton = get_layout(layout) if isinstance(layout, str) else layout
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be an (H, W, 3) uint8 image, got shape {frame.shape} dtype {frame.dtype}")
    kp = np.asarray(keypoints, dtype=np.float64)
    j = skeleton.num_joints
    if kp.shape != (j, 2):
        raise ValueError(f"keypoints must have shape ({j}, 2) for layout {skeleton.name}, got {kp.shape}")
    valid = np.isfinite(kp).all(axis=1)
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64)
        if conf.shape != (j,):
            raise ValueError(f"confidence must have shape ({j},), got {conf.shape}")
        valid &= np.isfinite(conf) & (conf >= min_confidence)
    out = frame.copy()
    side = _sides_from_pairs(j, skeleton.left_right)
    width = _line_width(*frame.shape[:2])
    fine = np.isin(np.arange(j), skeleton.fine_joints)  # hands: thin lines, small next to the body
    for part, w in ((~fine, width), (fine, max(1, width // 3))):
        if part.any():
            edges = [(a, b) for a, b in skeleton.edges if part[a] and part[b]]
            draw_bones(out, kp, valid & part, edges, _SIDE_RGB_2D, side, w)
    return out


# --- 3D -----------------------------------------------------------------------------------
def _check_joints(
    joints: np.ndarray, parents: Sequence[int], joint_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate; return joints (T, J, 3) float64, edges (E, 2) int, sides (J,) int8."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[2] != 3 or joints.shape[0] == 0:
        raise ValueError(f"joints must have shape (T, J, 3) with T >= 1, got {joints.shape}")
    j = joints.shape[1]
    parents = [int(p) for p in parents]
    if len(parents) != j:
        raise ValueError(f"{len(parents)} parents for {j} joints")
    if not np.isfinite(joints).any():
        raise ValueError("joints are all NaN; nothing to draw")
    edges = np.array([(p, c) for c, p in enumerate(parents) if 0 <= p < j], dtype=np.int64).reshape(-1, 2)
    if joint_names is None and j == MOTION21.num_joints and tuple(parents) == MOTION21.parents:
        joint_names = MOTION21.joint_names
    if joint_names is not None and len(joint_names) != j:
        raise ValueError(f"{len(joint_names)} joint names for {j} joints")
    side = _sides_from_names(joint_names) if joint_names is not None else np.zeros(j, dtype=np.int8)
    return joints, edges, side


def _root_indices(parents: Sequence[int]) -> list[int]:
    """The joints without a parent (one per skeleton: several people side by side have several)."""
    return [j for j, p in enumerate(parents) if int(p) < 0] or [0]


def _root_index(parents: Sequence[int]) -> int:
    return _root_indices(parents)[0]


def _limits(values: np.ndarray, *, include: float | None = None, margin: float = 0.15) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    lo, hi = float(v.min()), float(v.max())
    if include is not None:
        lo, hi = min(lo, include), max(hi, include)
    return lo - margin, hi + margin


def render_preview_3d(
    joints: np.ndarray,
    parents: Sequence[int],
    out_png: str | os.PathLike,
    *,
    fps: float,
    num_poses: int = 6,
    title: str | None = None,
    joint_names: Sequence[str] | None = None,
) -> None:
    """Write ``out_png``: front (x-y), side (z-y) and top (x-z) views of a few poses, 1500 x 540 px.

    ``num_poses`` evenly spaced frames are drawn, older ones lighter; the ground line y = 0
    is drawn in the front and side views, the root's trajectory (start ○, end △) in the
    top view, which looks down with +Z towards the bottom (where the front view's viewer
    stands). Each panel has equal metre scales on both axes. Written atomically. Several
    people in one world are several skeletons side by side in ``joints`` (each root's
    parent -1; NaN where a person is not there): each one's path is drawn.

    Args:
        joints: (T, J, 3) float metres, +Y up; NaN joints are skipped.
        parents: (J,) parent index per joint, root = -1.
        out_png: the .png to write.
        fps: frames per second of ``joints`` (for the time labels).
        num_poses: how many poses to draw (at most T).
        title: text above the panels.
        joint_names: (J,) names, used for the left/right colours; defaults to MOTION21's when
            ``parents`` is MOTION21's, else every bone is drawn in the midline colour.
    """
    joints, edges, side = _check_joints(joints, parents, joint_names)
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if num_poses < 1:
        raise ValueError(f"num_poses must be at least 1, got {num_poses}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    t = joints.shape[0]
    frames = np.unique(np.round(np.linspace(0, t - 1, min(num_poses, t))).astype(int))
    roots = _root_indices(parents)
    root = joints[:, roots].reshape(-1, 3)  # every root's path, for the top view's limits
    fig = Figure(figsize=(15.0, 5.4), dpi=100)
    FigureCanvasAgg(fig)  # attaches an Agg canvas to this figure only; pyplot's backend is untouched
    axes = fig.subplots(1, 3)
    fig.subplots_adjust(left=0.05, right=0.99, top=0.84 if title else 0.88, bottom=0.17, wspace=0.25)
    views = ((0, 1), (2, 1), (0, 2))  # (horizontal, vertical) coordinate per panel
    for k, f in enumerate(frames):
        strength = 1.0 if len(frames) == 1 else 0.3 + 0.7 * k / (len(frames) - 1)
        last = k == len(frames) - 1
        for ax, (h, v) in zip(axes, views):
            for a, b in edges:
                pa, pb = joints[f, a], joints[f, b]
                if not (np.isfinite(pa).all() and np.isfinite(pb).all()):
                    continue
                rgb = np.array(_SIDE_RGB_3D[edge_side(side, a, b)]) / 255.0
                colour = 1.0 - strength * (1.0 - rgb)  # blend towards white for older poses
                ax.plot([pa[h], pb[h]], [pa[v], pb[v]], color=colour, lw=2.6 if last else 1.6,
                        solid_capstyle="round", zorder=2 + k)
    for ax, name, (h, v) in zip(axes, _FRONT_SIDE_TOP, views):
        drawn = joints[frames]
        horiz = np.concatenate([drawn[..., h].ravel(), root[:, h]]) if v == 2 else drawn[..., h].ravel()
        vert = np.concatenate([drawn[..., v].ravel(), root[:, v]]) if v == 2 else drawn[..., v].ravel()
        (h_lo, h_hi), (v_lo, v_hi) = _limits(horiz), _limits(vert, include=0.0 if v == 1 else None)
        box = ax.get_position()
        box_ratio = (box.width * fig.get_figwidth()) / (box.height * fig.get_figheight())
        # equal metres per pixel on both axes: widen the narrower range to fill the panel,
        # horizontally about its centre, vertically upwards only when y is height
        if (h_hi - h_lo) / (v_hi - v_lo) < box_ratio:
            grow = (v_hi - v_lo) * box_ratio - (h_hi - h_lo)
            h_lo, h_hi = h_lo - grow / 2, h_hi + grow / 2
        else:
            grow = (h_hi - h_lo) / box_ratio - (v_hi - v_lo)
            v_lo, v_hi = (v_lo, v_hi + grow) if v == 1 else (v_lo - grow / 2, v_hi + grow / 2)
        ax.set_xlim(h_lo, h_hi)
        ax.set_ylim(v_lo, v_hi)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(f"{'xyz'[h]} (m)")
        ax.set_ylabel(f"{'xyz'[v]} (m)")
        ax.set_title(name)
        ax.grid(True, color="0.9", lw=0.6, zorder=0)
        if v == 1:
            ax.axhline(0.0, color="0.45", lw=1.5, zorder=1)
    top = axes[2]
    top.invert_yaxis()  # seen from above: +Z (the character's front) towards the bottom
    for path in joints[:, roots].transpose(1, 0, 2):
        ok = np.isfinite(path).all(axis=1)
        top.plot(path[ok, 0], path[ok, 2], color="0.35", lw=1.2, zorder=1)
        if ok.any():
            first, final = path[ok][0], path[ok][-1]
            top.plot(first[0], first[2], "o", mfc="white", mec="0.2", ms=7, zorder=50)
            top.plot(final[0], final[2], "^", mfc="0.2", mec="0.2", ms=7, zorder=50)
    handles = [Line2D([], [], color=np.array(c) / 255.0, lw=2.6, label=n)
               for n, c in zip(("midline", "left", "right"), _SIDE_RGB_3D)]
    handles += [Line2D([], [], color="0.45", lw=1.5, label="ground y=0"),
                Line2D([], [], color="0.35", lw=1.2, marker="o", mfc="white", mec="0.2", label="root path, start"),
                Line2D([], [], color="none", marker="^", mfc="0.2", mec="0.2", label="end")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)
    times = ", ".join(f"{f / fps:.2f}" for f in frames)
    heading = f"{title}\n" if title else ""
    fig.suptitle(f"{heading}{t} frames at {fps:g} fps; poses at t = {times} s (older poses lighter)", fontsize=11)
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def render_preview_video(
    joints: np.ndarray,
    parents: Sequence[int],
    out_mp4: str | os.PathLike,
    *,
    fps: float,
    size: tuple[int, int] = (640, 360),
    joint_names: Sequence[str] | None = None,
) -> None:
    """Write ``out_mp4``: the skeleton moving, front view (x-y) left and side view (z-y) right.

    One video frame per pose (T frames at ``fps``), both views at the same metres-per-pixel
    scale. A view whose horizontal travel fits the panel keeps a fixed framing; otherwise the
    view follows the root horizontally. The ground y = 0 has ticks every 0.5 m fixed to the
    world, so travel, drift and foot sliding show. Drawn with OpenCV; written atomically.

    Args:
        joints: (T, J, 3) float metres, +Y up; NaN joints are skipped.
        parents: (J,) parent index per joint, root = -1.
        out_mp4: the .mp4 to write.
        fps: frames per second.
        size: (width, height) of the video in pixels; rounded down to even numbers.
        joint_names: see :func:`render_preview_3d`.
    """
    joints, edges, side = _check_joints(joints, parents, joint_names)
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    width, height = even_size(int(size[0])), even_size(int(size[1]))
    if width < 64 or height < 64:
        raise ValueError(f"size must be at least 64 x 64 pixels, got {size}")
    t = joints.shape[0]
    panel_w = width // 2
    margin = max(8, height // 16)
    label_h = max(14, height // 12)
    font_scale = height / 720
    text_w = max(1, int(round(height / 360)))
    grey = (150, 150, 150)

    root = _fill_gaps(joints[:, _root_index(parents)])  # (T, 3), NaN frames take the last known value
    y_lo, y_hi = _limits(joints[..., 1], include=0.0, margin=0.05)
    scale = (height - label_h - 2 * margin) / (y_hi - y_lo)  # pixels per metre
    centres = []  # per view: (T,) horizontal world coordinate at the panel's centre
    for h in (0, 2):
        reach = np.nanmax(np.abs(joints[..., h] - root[:, None, h])) + 0.1
        scale = min(scale, (panel_w / 2 - margin) / reach)
    for h in (0, 2):
        lo, hi = _limits(joints[..., h], margin=0.1)
        fits = (hi - lo) * scale <= panel_w - 2 * margin
        centres.append(np.full(t, (lo + hi) / 2) if fits else root[:, h])
    ground_y = int(round(height - margin + scale * y_lo))  # pixel row of y = 0
    thickness = _line_width(height, panel_w)

    background = np.full((height, width, 3), 40, dtype=np.uint8)
    cv2.line(background, (panel_w, 0), (panel_w, height), (90, 90, 90), 1)
    for k, name in enumerate(("front (x-y)", "side (z-y)")):
        cv2.line(background, (k * panel_w + margin // 2, ground_y), ((k + 1) * panel_w - margin // 2, ground_y),
                 grey, 1, cv2.LINE_AA)
        cv2.putText(background, name, (k * panel_w + margin, label_h), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, (200, 200, 200), text_w, cv2.LINE_AA)
    tick = max(3, height // 90)
    half_m = (panel_w / 2 - margin // 2) / scale  # half the panel width in metres
    edge_list = [tuple(int(i) for i in e) for e in edges]
    with atomic_path(out_mp4, suffix=".mp4") as tmp:
        writer = open_video_writer(tmp, fps, width, height)
        try:
            for f in range(t):
                img = background.copy()
                for k, h in enumerate((0, 2)):
                    x_mid = k * panel_w + panel_w / 2
                    c = centres[k][f]
                    for m in np.arange(np.ceil((c - half_m) * 2) / 2, c + half_m, 0.5):
                        px = int(round(x_mid + scale * (m - c)))
                        cv2.line(img, (px, ground_y), (px, ground_y + tick), grey, 1, cv2.LINE_AA)
                    pts = np.stack([x_mid + scale * (joints[f, :, h] - c), ground_y - scale * joints[f, :, 1]], axis=1)
                    draw_bones(img, pts, np.isfinite(pts).all(axis=1), edge_list, _SIDE_RGB_2D, side, thickness)
                cv2.putText(img, f"t = {f / fps:.2f} s", (width - margin - int(170 * font_scale), label_h),
                            cv2.FONT_HERSHEY_SIMPLEX, font_scale, (200, 200, 200), text_w, cv2.LINE_AA)
                writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            writer.release()
        finally:
            writer.release()


def _fill_gaps(x: np.ndarray) -> np.ndarray:
    """(T, D) copy with NaN rows replaced by the last finite row (the first finite one at the start)."""
    x = np.array(x, dtype=np.float64)
    ok = np.isfinite(x).all(axis=1)
    if not ok.any():
        return np.zeros_like(x)
    idx = np.where(ok, np.arange(len(x)), 0)
    np.maximum.accumulate(idx, out=idx)
    idx[: np.argmax(ok)] = np.argmax(ok)
    return x[idx]
