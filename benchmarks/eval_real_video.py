"""Monocular lifters against multi-view triangulation on real video.

    python benchmarks/eval_real_video.py [--data ../shared/data/video/pose2sim_single] [--keypoints-dir DIR]
                                         [--targets-only] [--known-focal] [--work DIR] [--lift-args "--no-fit"]
                                         [--detector mediapipe|blazepose-torch]

The Pose2Sim demo has 4 synchronised, calibrated cameras (Qualisys calibration). The
reference 3D is the confidence-weighted DLT triangulation of MediaPipe's 2D keypoints from
all four views (by default with the file's camera poses refined to the keypoints: the file's
cam03 and cam04 poses do not fit the videos; ``--calibration given`` uses the file as it is),
with left/right swaps of the detector resolved per view and frame and
outlier views dropped per joint. Each camera's monocular lift (MediaPipe's world landmarks, and our network)
is compared with it on the 12 limb joints (shoulders, elbows, wrists, hips, knees, ankles)
after a per-frame similarity Procrustes alignment (PA-MPJPE), and per clip after
removing only the pelvis, a global rotation and a scale (clip-aligned MPJPE). Also the
jitter (mean acceleration, mm/frame^2) of each lifter. Rows marked ``+swp`` read the 2D after
the one-view left/right swap repair that ``mocap capture`` applies by default (mocap.detect2d.swaps).

Note: the reference is built from MediaPipe's own 2D joint definitions, which favours
MediaPipe's world landmarks (same joint semantics) over a network trained on mocap joints.

Issue 21's real-video targets (the last table; ``--targets-only`` prints only it): each camera's
keypoints lifted by the command line as a user would (``mocap lift camXX.npz -o motion.npz``, no
``--height``; ``--known-focal`` adds the calibration's ``--focal-px``), with our network and with
MediaPipe's world landmarks (``--lifter mediapipe``), against the triangulation levelled by the
calibration (Qualisys' world is Z up with the floor at z = 0; checked by the feet): MPJPE of the
12 limb joints after ONE similarity per clip (rotation, translation, scale over all frames;
target: network <= 0.7 x MediaPipe), the torso's lean (pelvis -> neck against the vertical,
in the output's own world) in the middle frame against the triangulated lean (target within
5 degrees; the median over frames of the difference too), the body height
(:func:`mocap.multiview.calibration.body_height`, from leg and trunk lengths) against the
triangulated one (target within 5 %; in brackets the height the quality file states, if any),
and the camera pitch and height the fit solved
(``camera`` in motion.quality.json / quality.json, when written) against the calibration.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LIMBS = [f"{s}_{j}" for s in ("left", "right") for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]


def _procrustes_clip(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Align the whole clip ``pred`` (T, J, 3) to ``target`` with one rotation + scale after
    centring each frame on its mean joint (:func:`lifting.evaluate.procrustes_align` over all
    the clip's centred points); returns the aligned (T, J, 3)."""
    from lifting.evaluate import procrustes_align

    p = pred - pred.mean(1, keepdims=True)
    q = target - target.mean(1, keepdims=True)
    return procrustes_align(p.reshape(-1, 3), q.reshape(-1, 3)).reshape(p.shape) + target.mean(1, keepdims=True)


#: Qualisys world (Z up, floor at z = 0) -> ours (+Y up): (x, y, z) -> (x, z, -y), a proper rotation.
QUALISYS_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def fit_targets(cams, keypoints, ref33: np.ndarray, *, known_focal: bool, work: Path, lift_args: str = "") -> None:
    """Issue 21's real-video figures (see the module docstring): each camera's ``mocap lift``
    output, network and MediaPipe, against the levelled triangulation ``ref33`` (T, 33, 3)."""
    from benchmarks.bench_fit import joints_on_input_frames, read_fit_camera, read_fit_height, run_lift, torso_lean_deg
    from lifting.evaluate import procrustes_align
    from mocap.formats import save_keypoints
    from mocap.multiview.calibration import body_height
    from mocap.skeletons import MOTION21, map_joints

    ref = map_joints(ref33, "mediapipe33", MOTION21) @ QUALISYS_TO_Y_UP.T
    feet = ref[:, [MOTION21.index(n) for n in ("left_heel", "right_heel", "left_foot_index", "right_foot_index")], 1]
    floor = float(np.percentile(feet[np.isfinite(feet)], 2.0))  # the lowest foot points over the clip
    work.mkdir(parents=True, exist_ok=True)
    sel = [MOTION21.index(n) for n in LIMBS]
    ref_lean, ref_height = torso_lean_deg(ref), body_height(ref, MOTION21)
    mid = len(ref) // 2
    print(f"\nIssue 21, real video: each camera's `mocap lift` (no --height{', --focal-px from the calibration' if known_focal else ''}) "
          f"against the 4-view triangulation levelled by the calibration (foot points' 2nd percentile: "
          f"{100 * floor:.1f} cm above the calibration's floor; triangulated lean {ref_lean[mid]:.1f} deg in the middle "
          f"frame {mid}, height {ref_height:.3f} m); outputs in {work}")
    print(f"{'camera':<7} {'lifter':<10} {'MPJPE mm':>9} {'lean deg (tri)':>15} {'lean err med':>12} "
          f"{'height m':>14} {'height err':>10} {'fit pitch (cal)':>16} {'fit height (cal)':>17}")
    mpjpe: dict[str, list[float]] = {"network": [], "mediapipe": []}
    parts: dict[str, list[float]] = {"network": [], "mediapipe": []}  # the same, each frame's centre on the reference's
    checks: dict[str, list[float]] = {"lean": [], "lean_median": [], "height": []}
    for cam, k in zip(cams, keypoints):
        path = work / f"{cam.name}.npz"
        save_keypoints(path, k)
        cal_pitch = float(np.degrees(np.arcsin(np.clip(-cam.R[2, 2], -1, 1))))
        outs = {}
        for lifter in ("network", "mediapipe") if k.world_landmarks is not None else ("network",):
            out_dir = work / f"{cam.name}_{lifter}"
            out_dir.mkdir(parents=True, exist_ok=True)
            motion, _, error = run_lift(path, out_dir, float(cam.K[0, 0]) if known_focal else None, "--lifter", lifter,
                                        *shlex.split(lift_args))
            if motion is None:
                print(f"{cam.name:<7} {lifter:<10} mocap lift failed: {error}")
                continue
            outs[lifter] = joints_on_input_frames(motion, len(ref))
        ok = np.isfinite(ref[:, sel]).all((1, 2))  # the same frames for both lifters
        for out in outs.values():
            ok &= np.isfinite(out[:, sel]).all((1, 2))
        for lifter, out in outs.items():
            out_dir = work / f"{cam.name}_{lifter}"
            aligned = procrustes_align(out[ok][:, sel].reshape(-1, 3), ref[ok][:, sel].reshape(-1, 3)).reshape(-1, len(sel), 3)
            err = 1000 * float(np.linalg.norm(aligned - ref[ok][:, sel], axis=-1).mean())
            mpjpe[lifter].append(err)
            # the same alignment, each frame's mean joint then put on the reference's: what is left
            # is the pose and its orientation, not the path through the room
            centred = aligned - aligned.mean(1, keepdims=True) + ref[ok][:, sel].mean(1, keepdims=True)
            parts[lifter].append(1000 * float(np.linalg.norm(centred - ref[ok][:, sel], axis=-1).mean()))
            lean = torso_lean_deg(out)
            lean_med = float(np.nanmedian(np.abs(lean - ref_lean)))
            height = body_height(out, MOTION21)
            stated = read_fit_height(out_dir)
            height_text = f"{height:.3f}" if stated is None else f"{height:.3f} ({stated:.2f})"
            fit = read_fit_camera(out_dir)
            fit_text = ("n/a", "n/a") if fit is None else (
                f"{fit['pitch_deg']:.1f} ({cal_pitch:.1f})",
                f"{fit['height_m']:.2f} ({cam.position[2] - floor:.2f})" if "height_m" in fit else "n/a")
            if lifter == "network":
                checks["lean"].append(abs(lean[mid] - ref_lean[mid]))
                checks["lean_median"].append(lean_med)
                checks["height"].append(abs(height / ref_height - 1))
            print(f"{cam.name:<7} {lifter:<10} {err:9.1f} {f'{lean[mid]:.1f} ({ref_lean[mid]:.1f})':>15} {lean_med:12.1f} "
                  f"{height_text:>14} {100 * (height / ref_height - 1):+9.1f}% {fit_text[0]:>16} {fit_text[1]:>17}")
    if mpjpe["network"] and mpjpe["mediapipe"]:
        ratio = np.mean(mpjpe["network"]) / np.mean(mpjpe["mediapipe"])
        print(f"MPJPE after one similarity per clip: network {np.mean(mpjpe['network']):.1f} mm, MediaPipe world landmarks "
              f"{np.mean(mpjpe['mediapipe']):.1f} mm, ratio {ratio:.2f} (target <= 0.7: {'met' if ratio <= 0.7 else 'NOT met'})")
        print(f"  of which the pose and its orientation (the same alignment, each frame's centre put on the "
              f"reference's): network {np.mean(parts['network']):.1f} mm, MediaPipe {np.mean(parts['mediapipe']):.1f} mm "
              f"(per camera: network {', '.join(f'{e:.0f}' for e in parts['network'])}; MediaPipe "
              f"{', '.join(f'{e:.0f}' for e in parts['mediapipe'])})")
    if checks["lean"]:
        worst_lean, worst_height = max(checks["lean"]), max(checks["height"])
        worst_median = max(checks["lean_median"])
        print(f"network: torso lean in the middle frame off by at most {worst_lean:.1f} deg (target 5: "
              f"{'met' if worst_lean <= 5 else 'NOT met'}); in the median frame (the median over frames of the "
              f"error) at most {worst_median:.1f} deg ({'met' if worst_median <= 5 else 'NOT met'}); height off by at "
              f"most {100 * worst_height:.1f} % (target 5 %: {'met' if worst_height <= 0.05 else 'NOT met'})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "video" / "pose2sim_single"))
    ap.add_argument("--keypoints-dir", default=None, help="reuse/store camXX.npz keypoints here (default: detect anew)")
    ap.add_argument("--calibration", choices=("given", "refined"), default="refined",
                    help="reference rig: the Qualisys file as given, or its camera poses refined to the keypoints "
                         "(mocap.multiview.calibration.refine_extrinsics; the file's cam03/cam04 poses do not fit the videos, "
                         "see benchmarks/bench_multiview.py)")
    ap.add_argument("--weights", default=None, help="network weights to evaluate (default: the shipped ones)")
    ap.add_argument("--causal", action="store_true", help="evaluate the causal (live) network instead of the offline one")
    ap.add_argument("--one-pass", action="store_true",
                    help="no flip averaging (NetworkLifter(flip_average=False)); by default the offline network "
                         "also lifts the mirrored 2D and averages, as mocap capture does")
    ap.add_argument("--targets-only", action="store_true", help="print only issue 21's table (the last one)")
    ap.add_argument("--no-scene-lines", action="store_true",
                    help="do not give the fit the room's vertical lines (gravity from the body alone, as before 2026-12-07)")
    ap.add_argument("--known-focal", action="store_true",
                    help="issue 21's table: give mocap lift the calibration's focal length (default: none, as a user would)")
    ap.add_argument("--work", default=None, help="issue 21's table: write each camera's keypoints and mocap lift output here")
    ap.add_argument("--lift-args", default="", help="issue 21's table: more flags for mocap lift, e.g. '--no-fit'")
    ap.add_argument("--detector", choices=("mediapipe", "blazepose-torch"), default="mediapipe",
                    help="the 2D of every camera (and so of the reference): MediaPipe's VIDEO mode (its world landmarks "
                         "are the baseline lifter), or the PyTorch BlazePose that `mocap capture` uses by default "
                         "(the main person; no world landmarks, so only our network is measured)")
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not (data / "calibration" / "Calib.qca.txt").exists():
        print(f"eval_real_video: needs the Pose2Sim demo at {data} (videos/camXX.mp4, calibration/Calib.qca.txt); "
              "not found, nothing measured")
        return 1

    from lifting.evaluate import pa_mpjpe
    from mocap.camera import load_qualisys
    from mocap.detect2d.mediapipe_pose import detect_video
    from mocap.formats import load_keypoints, save_keypoints
    from mocap.lift.lifters import MediaPipeWorldLifter
    from mocap.skeletons import MOTION21, map_joints
    from mocap.skeletons import MEDIAPIPE33
    from mocap.multiview.triangulate import reprojection_errors, triangulate_resolving_swaps

    cams = load_qualisys(data / "calibration" / "Calib.qca.txt")
    keypoints = []
    for cam in cams:
        video = data / "videos" / f"{cam.name}.mp4"
        cached = Path(args.keypoints_dir) / f"{cam.name}.npz" if args.keypoints_dir else None
        if cached is not None and cached.exists():
            keypoints.append(load_keypoints(cached))
            continue
        if args.detector == "mediapipe":
            k = detect_video(video, progress=False)
            everyone = k.keypoints[:, None]
        else:
            from mocap.detect2d.people import detect_person_video

            k, tracks, _ = detect_person_video(video, detector=args.detector, progress=False)
            everyone = tracks.keypoints
        if not args.no_scene_lines:  # as `mocap capture` does: the fit reads gravity from the room's verticals
            import dataclasses

            from mocap.pipelines.scene import scene_lines

            k = dataclasses.replace(k, scene_lines=scene_lines(video, everyone, (0, k.num_frames)))
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            save_keypoints(cached, k)
        keypoints.append(k)

    if args.calibration == "refined":
        from mocap.multiview.calibration import refine_extrinsics

        cams, _ = refine_extrinsics(cams, np.stack([k.keypoints for k in keypoints]).astype(np.float64),
                                    np.stack([k.confidence for k in keypoints]).astype(np.float64),
                                    layout="mediapipe33")
    px = np.stack([c.undistort_pixels(k.keypoints) for c, k in zip(cams, keypoints)])  # (C, T, 33, 2)
    conf = np.stack([k.confidence for k in keypoints])
    proj = np.stack([c.projection for c in cams])
    ref33, swapped = triangulate_resolving_swaps(px, proj, conf, MEDIAPIPE33.mirror_permutation())
    reproj = reprojection_errors(ref33, cams, np.stack([k.keypoints for k in keypoints]))
    if args.targets_only:
        fit_targets(cams, keypoints, ref33, known_focal=args.known_focal, lift_args=args.lift_args,
                    work=Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="eval_real_video_")))
        return 0
    sel = [MOTION21.index(n) for n in LIMBS]
    ref = map_joints(ref33, "mediapipe33", MOTION21)[:, sel]
    print(f"reference: DLT over {len(cams)} views, {ref.shape[0]} frames; median reprojection error per view: "
          + ", ".join(f"{c.name} {np.nanmedian(e):.1f} px" for c, e in zip(cams, reproj)))
    print("frames where a view's left/right were swapped by the detector: "
          + ", ".join(f"{c.name} {int(s.sum())}" for c, s in zip(cams, swapped)))

    from mocap.detect2d.swaps import resolve_swaps

    repaired = [resolve_swaps(k) for k in keypoints]
    print("frames mirrored back by the one-view swap repair (mocap.detect2d.swaps): "
          + ", ".join(f"{c.name} {int(s.sum())} (agrees with the 4-view flags in {100 * np.mean(s == g):.0f} % of frames)"
                      for c, (_, s), g in zip(cams, repaired, swapped)))

    # (name, lifter, the 2D it reads): as the detector gave it, and with the one-view swap
    # repair that `mocap capture` applies by default (for MediaPipe: its world landmarks mirrored too)
    lifters = {"mediapipe": (MediaPipeWorldLifter(), keypoints),
               "mediapipe+swp": (MediaPipeWorldLifter(), [k for k, _ in repaired])}
    try:
        from mocap.lift.network import NetworkLifter

        # weights None: the shipped ones; flip_average None: NetworkLifter's default (on for the offline model)
        network = NetworkLifter(args.weights, causal=args.causal, flip_average=False if args.one_pass else None)
        lifters["network"] = (network, keypoints)
        lifters["network+swp"] = (network, [k for k, _ in repaired])
    except Exception as e:  # noqa: BLE001 - report it and evaluate what is there
        print(f"network lifter unavailable: {e}")

    def jitter(x):
        return 1000 * np.nanmean(np.linalg.norm(np.diff(x, 2, axis=0), axis=-1))

    print(f"\n{'camera':<8} {'lifter':<14} {'PA-MPJPE mm':>12} {'clip-aligned MPJPE mm':>22} {'jitter mm/f^2':>14} "
          f"{'PA-MPJPE, unswapped frames':>27}")
    totals: dict[str, list[float]] = {name: [] for name in lifters}
    unswapped: dict[str, list[float]] = {name: [] for name in lifters}
    ref_jitter = jitter(ref)
    for i, (cam, swap) in enumerate(zip(cams, swapped)):
        for name, (lifter, inputs) in lifters.items():
            pred = lifter.lift(inputs[i]).joints_cam[:, sel]
            ok = np.isfinite(pred).all((1, 2)) & np.isfinite(ref).all((1, 2))
            per_frame = 1000 * pa_mpjpe(pred[ok], ref[ok])
            pa = float(np.mean(per_frame))
            aligned = _procrustes_clip(pred[ok], ref[ok])
            clip = 1000 * float(np.linalg.norm(aligned - ref[ok], axis=-1).mean())
            totals[name].append(pa)
            unswapped[name].append(float(np.mean(per_frame[~swap[ok]])))
            print(f"{cam.name:<8} {name:<14} {pa:12.1f} {clip:22.1f} {jitter(pred):14.2f} {unswapped[name][-1]:27.1f}")
    print(f"(reference jitter {ref_jitter:.2f} mm/frame^2; 'unswapped frames': the frames where the detector did not "
          "swap that view's left and right, as the 4-view geometry tells)")
    from mocap.pipelines.capture import lift_keypoints

    print("\nThe whole monocular path (`mocap capture`'s motion.npz joints: swap repair, smoothing, constant "
          "bones by IK, feet locked), PA-MPJPE mm per camera:")
    for name, lifter in (("mediapipe", lifters["mediapipe"][0]), ("network", lifters.get("network", (None,))[0])):
        if lifter is None:
            continue
        per_cam = []
        for k in keypoints:
            pred = lift_keypoints(k, lifter=lifter).joints[:, sel]
            ok = np.isfinite(pred).all((1, 2)) & np.isfinite(ref).all((1, 2))
            per_cam.append(float(np.mean(1000 * pa_mpjpe(pred[ok], ref[ok]))))
        totals[f"{name} (capture)"] = per_cam
        print(f"  {name:<10} " + " ".join(f"{v:6.1f}" for v in per_cam) + f"   mean {np.mean(per_cam):.1f}")
    print()
    for name, values in totals.items():
        extra = f" (unswapped frames {np.mean(unswapped[name]):.1f} mm)" if name in unswapped else ""
        print(f"mean PA-MPJPE over cameras, {name}: {np.mean(values):.1f} mm{extra}")
    if "network" in totals:
        ratio = np.mean(totals["network"]) / np.mean(totals["mediapipe"])
        ratio_u = np.mean(unswapped["network"]) / np.mean(unswapped["mediapipe"])
        print(f"ratio network / mediapipe: {ratio:.2f} (target <= 0.80); unswapped frames: {ratio_u:.2f}")
        for a, b in (("network+swp", "mediapipe"), ("network+swp", "mediapipe+swp"),
                     ("network (capture)", "mediapipe"), ("network (capture)", "mediapipe (capture)")):
            print(f"ratio {a} / {b}: {np.mean(totals[a]) / np.mean(totals[b]):.2f}")
        print("('+swp': the lift after the one-view left/right swap repair that `mocap capture` applies by default; "
              "'(capture)': the joints `mocap capture` writes; '/ mediapipe': against MediaPipe's world landmarks "
              "as MediaPipe gives them)")
    fit_targets(cams, keypoints, ref33, known_focal=args.known_focal, lift_args=args.lift_args,
                work=Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="eval_real_video_")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
