"""The README's before/after picture of the fit on the example (docs/lean.png), and its figures.

For two frames of ``examples/balance_cam01.mp4``: the video frame with the final motion (the
one in motion.bvh) reprojected through the solved camera, and a side view of the person
(from the side their torso leans to) without the fit (``--no-fit``: the clip levelled from its
median torso axis) and with it, each with the torso's lean from vertical.

    python benchmarks/fit_picture.py [--video examples/balance_cam01.mp4] [--frames 0 50] [-o docs/lean.png]

Prints the lean per frame both ways, the solved camera and the reprojection error.
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def lean_deg(joints: np.ndarray) -> np.ndarray:
    """(T, 21, 3) MOTION21 world joints -> (T,) angle of pelvis->neck from +Y, degrees."""
    from mocap.skeletons import MOTION21

    v = joints[:, MOTION21.index("neck")] - joints[:, MOTION21.index("pelvis")]
    return np.degrees(np.arccos(np.clip(v[:, 1] / np.linalg.norm(v, axis=-1), -1, 1)))


def _side(ax, joints: np.ndarray, title: str, color: str) -> None:
    """Draw one frame's skeleton (21, 3) seen from the side the torso leans to (the plane of
    the vertical and the lean, so the lean shows at its full angle)."""
    from mocap.skeletons import MOTION21

    forward = joints[MOTION21.index("neck")] - joints[MOTION21.index("pelvis")]
    forward[1] = 0.0
    if np.linalg.norm(forward) < 1e-3:  # upright: the facing direction
        hip = joints[MOTION21.index("left_hip")] - joints[MOTION21.index("right_hip")]
        forward = np.cross(hip * [1.0, 0.0, 1.0], [0.0, 1.0, 0.0])
    forward /= np.linalg.norm(forward)
    x = (joints - joints[0]) @ forward
    y = joints[:, 1]
    for a, b in MOTION21.edges:
        ax.plot([x[a], x[b]], [y[a], y[b]], color=color, lw=2.5)
    ax.axhline(0.0, color="0.5", lw=1)
    ax.axvline(0.0, color="0.8", lw=0.8, ls="--")
    ax.set_xlim(-1.0, 1.0)
    ax.set_ylim(-0.1, 1.9)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(ROOT / "examples" / "balance_cam01.mp4"))
    p.add_argument("--frames", type=int, nargs="+", default=[0, 50])
    p.add_argument("-o", "--output", default=str(ROOT / "docs" / "lean.png"))
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mocap.export.draw import draw_skeleton_2d
    from mocap.fit.options import FitOptions
    from mocap.fit.quality import motion_quality
    from mocap.formats import load_keypoints
    from mocap.io.video import iter_frames
    from mocap.pipelines.capture import capture, lift_and_fit
    from mocap.pipelines.options import CaptureOptions, ExportOptions

    with tempfile.TemporaryDirectory() as tmp:
        capture(args.video, tmp, CaptureOptions(export=ExportOptions(overlay=False, preview=False)), progress=False)
        keypoints = load_keypoints(Path(tmp) / "keypoints2d.npz")
    before, _ = lift_and_fit(keypoints, fit=FitOptions(fit=False))
    after, fitted = lift_and_fit(keypoints)
    pitch, roll, height = fitted.pitch_roll_height
    q = motion_quality(after, keypoints, fitted.camera, contacts=fitted.contacts)
    print(f"camera: pitch {pitch:.1f} deg, roll {roll:.1f} deg, {height:.2f} m above the floor; "
          f"person {q['person_height_m']:.2f} m")
    print(f"reprojection of the final motion: median {q['reprojection_median_pct']:.2f} % of the person's height "
          f"(95th pct {q['reprojection_p95_pct']:.2f} %)")
    lb, la = lean_deg(before.joints), lean_deg(after.joints)
    for f in args.frames:
        print(f"frame {f}: torso lean without the fit {lb[f]:.1f} deg, with the fit {la[f]:.1f} deg")

    wanted = set(args.frames)
    frames = {}
    with contextlib.closing(iter_frames(args.video, rgb=True)) as it:
        for i, img in enumerate(it):
            if i in wanted:
                frames[i] = img
            if i >= max(wanted):
                break
    fig, axes = plt.subplots(len(args.frames), 3, figsize=(9, 4.6 * len(args.frames)),
                             gridspec_kw={"width_ratios": [1.1, 1, 1]})
    axes = np.atleast_2d(axes)
    proj = fitted.camera.project(after.joints)
    for row, f in zip(axes, args.frames):
        img = draw_skeleton_2d(frames[f], proj[f], None, "motion21")
        row[0].imshow(img)
        row[0].set_axis_off()
        row[0].set_title(f"frame {f}: the fitted 3D over the video", fontsize=9)
        _side(row[1], before.joints[f], f"before (--no-fit): lean {lb[f]:.0f} deg", "tab:red")
        _side(row[2], after.joints[f], f"with the fit: lean {la[f]:.0f} deg", "tab:green")
    fig.suptitle(f"{Path(args.video).name}: camera solved {pitch:.0f} deg down, {height:.2f} m high", fontsize=10)
    fig.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=80)
    print(f"-> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
