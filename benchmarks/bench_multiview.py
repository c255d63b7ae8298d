"""Multi-view capture figures: triangulation speed and accuracy, calibration from people,
and the real 4-camera rig.

    python benchmarks/bench_multiview.py [--data ../shared/data/video/pose2sim_single]
                                         [--keypoints-dir DIR] [--height 1.72] [--skip-real]
                                         [--detector blazepose-torch|mediapipe|...]
                                         [--other-calibration FILE ...]

Synthetic: 4 portrait cameras on a ring, a known moving person, 1 px Gaussian noise.
Real (Pose2Sim demo, 4 cameras, Qualisys calibration): 2D keypoints per view from
``--detector`` (cached in ``--keypoints-dir`` as camXX.npz), triangulated with left/right swap resolution and
outlier-view rejection; reprojection error per view, bone-length variation; then the rig
calibrated from the person alone (Qualisys intrinsics, poses from the keypoints, scale
from ``--height``) and compared with the Qualisys rig in camera 1's frame. Each
``--other-calibration`` (another calibration of the same rig, for example the scene
calibration in the Pose2Sim repository, Pose2Sim/Demo_SinglePerson/calibration/Calib_scene.toml)
is compared with those rigs and triangulated with as given.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _timed(fn, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def synthetic() -> None:
    from mocap.multiview.calibration import body_height, calibrate_from_people, compare_rigs
    from mocap.multiview.triangulate import triangulate_dlt, triangulate_robust
    from tests.multiview_helpers import observe, ring_rig
    from tests.synthetic import waving_walker

    cams = ring_rig(4)
    proj = np.stack([c.projection for c in cams])
    x = waving_walker(300)
    px, conf = observe(cams, x, noise_px=1.0, seed=0)
    und = np.stack([c.undistort_pixels(p) for c, p in zip(cams, px)])
    big = np.tile(und, (1, 16, 1, 1))  # (4, 4800, 21, 2): 100,800 joint-frames
    n = big.shape[1] * big.shape[2]
    _, s = _timed(lambda: triangulate_robust(big, proj, threshold_px=20.0))
    print(f"triangulation speed (4 views, outlier rejection): {n / s:,.0f} joint-frames/s "
          f"({n} joint-frames in {s * 1000:.0f} ms; target >= 200,000)")
    _, s = _timed(lambda: triangulate_dlt(big, proj))
    print(f"plain weighted DLT (SVD) for comparison:          {n / s:,.0f} joint-frames/s")

    rng = np.random.default_rng(1)
    u = rng.random(px.shape[:-1])
    dropped = np.where((u < 0.2)[..., None], np.nan, px)
    outl = (u >= 0.2) & (u < 0.3)
    angle = rng.uniform(0, 2 * np.pi, outl.sum())
    corrupt = dropped.copy()
    corrupt[outl] += rng.uniform(60, 300, (outl.sum(), 1)) * np.stack([np.cos(angle), np.sin(angle)], -1)
    two_good = (np.isfinite(dropped).all(-1) & ~outl).sum(0) >= 2
    for label, obs in (("20 % of views dropped", dropped), ("20 % dropped + 10 % gross outliers (60-300 px)", corrupt)):
        und_obs = np.stack([c.undistort_pixels(p) for c, p in zip(cams, obs)])
        pts, _ = triangulate_robust(und_obs, proj, conf, threshold_px=10.0)
        err = np.linalg.norm(pts - x, axis=-1)[two_good] * 1000
        print(f"synthetic triangulation, 1 px noise, {label}: joints with >= 2 good views: "
              f"mean {np.nanmean(err):.1f} mm, "
              f"median {np.nanmedian(err):.1f} mm, 99th pct {np.nanpercentile(err, 99):.1f} mm, "
              f"{100 * np.isnan(err).mean():.2f} % NaN (target < 10 mm)")

    x = waving_walker(60)
    px, conf = observe(cams, x, noise_px=1.0, seed=2)
    t0 = time.perf_counter()
    est, rep = calibrate_from_people(px, conf, cams, body_height_m=body_height(x, "motion21"), layout="motion21")
    rot, pos = compare_rigs(est, cams)
    print(f"synthetic calibration from people at 1 px noise ({time.perf_counter() - t0:.1f} s): rotation error max "
          f"{rot.max():.3f} deg, position error max {1000 * pos.max():.1f} mm (targets 1 deg, 20 mm); "
          f"bundle-adjustment median residual {np.round(rep.reprojection_px, 2).tolist()} px")


def real(data: Path, keypoints_dir: Path | None, height: float, detector: str, others: list[Path] = ()) -> None:
    from mocap.bones import bone_length_cv
    from mocap.multiview.calibration import calibrate_from_people, compare_rigs, refine_extrinsics
    from mocap.camera import load_qualisys
    from mocap.formats import load_keypoints, save_keypoints
    from mocap.multiview.quality import reprojection_summary
    from mocap.multiview.rig import check_cameras
    from mocap.multiview.views import triangulate_views
    from mocap.skeletons import MOTION21, map_joints
    from mocap.multiview.sync import apply_offsets, estimate_frame_offsets

    qualisys = load_qualisys(data / "calibration" / "Calib.qca.txt")
    views = []
    for cam in qualisys:
        cached = keypoints_dir / f"{cam.name}.npz" if keypoints_dir else None
        if cached is not None and cached.exists():
            views.append(load_keypoints(cached))
            continue
        from mocap.detect2d.views import detect_view

        k = detect_view(data / "videos" / f"{cam.name}.mp4", detector=detector, progress=False)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            save_keypoints(cached, k)
        views.append(k)
    names = [c.name for c in qualisys]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cams = check_cameras(qualisys, views, names)

    limbs = [MOTION21.index(f"{s}_{j}") for s in ("left", "right") for j in ("hip", "knee", "ankle", "shoulder",
                                                                               "elbow", "wrist")]

    from mocap.skeletons import MEDIAPIPE33

    body = [i for i, n in enumerate(MEDIAPIPE33.joint_names)
            if n.split("_", 1)[-1] in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "heel", "foot_index")]
    segments = [MOTION21.index(f"{s}_{j}") for s in ("left", "right") for j in ("knee", "ankle", "elbow", "wrist")]

    def evaluate(label, cameras, vs, threshold_px=40.0):
        tri = triangulate_views(vs, cameras, threshold_px=threshold_px)
        rep = reprojection_summary(tri, names)
        cv = bone_length_cv(map_joints(tri.points, "mediapipe33", MOTION21), MOTION21.parents)
        body_med = [np.nanmedian(e[:, body]) for e in tri.reprojection_px]
        print(f"{label}: median reprojection error per view, all 33 keypoints "
              + ", ".join(f"{n} {r['median_px']:.1f}" for n, r in rep.items())
              + " px; the 16 body keypoints " + ", ".join(f"{v:.1f}" for v in body_med)
              + " px; over the views each keypoint was triangulated from "
              + ", ".join(f"{r['inlier_median_px']:.1f}" for r in rep.values())
              + f" px; bone-length CV over the 12 limb bones median {100 * np.nanmedian(cv[limbs]):.1f} %, "
              f"max {100 * np.nanmax(cv[limbs]):.1f} %; thighs, shins, upper arms and forearms max "
              f"{100 * np.nanmax(cv[segments]):.1f} %")
        return tri

    print(f"\nreal rig {data.name}: {len(views)} views x {views[0].num_frames} frames, 2D from {detector}, "
          "target < 8 px, CV < 5 %")
    evaluate("Qualisys calibration, threshold 40 px", cams, views)
    evaluate("Qualisys calibration, threshold 20 px", cams, views, threshold_px=20.0)
    kp = [v.keypoints for v in views]
    cf = [v.confidence for v in views]
    off_cal = estimate_frame_offsets(kp, cf, cameras=cams, max_offset=10)
    off_mot = estimate_frame_offsets(kp, cf, max_offset=10)
    print(f"--sync auto frame offsets against {names[0]}: with the calibration {off_cal.tolist()}, "
          f"from keypoints alone {off_mot.tolist()}")
    evaluate(f"Qualisys calibration, offsets {off_cal.tolist()}", cams, apply_offsets(views, off_cal))

    t0 = time.perf_counter()
    px = np.stack(kp).astype(np.float64)
    conf = np.stack(cf).astype(np.float64)
    refined, rep = refine_extrinsics(cams, px, conf, layout="mediapipe33")
    rot, pos = compare_rigs(refined, cams)
    moved = [1000 * np.linalg.norm(a.position - b.position) for a, b in zip(refined, cams)]
    print(f"Qualisys rig refined to the keypoints ({time.perf_counter() - t0:.1f} s; world frame kept): poses moved by "
          + ", ".join(f"{n} {r:.2f} deg {m:.0f} mm" for n, r, m in zip(names, rot, moved)))
    evaluate("Qualisys calibration refined from the person", refined, views)
    # is a view out of step? refine the rig again with cam03 (the view the file fits worst) shifted
    lags = {}
    for lag in (-4, -2, 0, 2, 4):
        shifted = apply_offsets(views, [0, 0, lag, 0])
        _, rep_lag = refine_extrinsics(cams, np.stack([v.keypoints for v in shifted]).astype(np.float64),
                                       np.stack([v.confidence for v in shifted]).astype(np.float64),
                                       layout="mediapipe33", max_nfev=60)
        lags[lag] = float(np.mean(rep_lag.reprojection_px))
    print("cam03 shifted by k frames, rig refined again: mean bundle-adjustment residual "
          + ", ".join(f"k={k} {v:.2f} px" for k, v in lags.items()) + f" (best k={min(lags, key=lags.get)})")
    t0 = time.perf_counter()
    est, rep = calibrate_from_people(px, conf, cams, body_height_m=height, layout="mediapipe33")
    took = time.perf_counter() - t0
    rot, pos = compare_rigs(est, cams)
    _, pos_fit = compare_rigs(est, cams, fit_scale=True)
    print(f"calibration from people ({took:.1f} s, {rep.num_points} points, Qualisys intrinsics, height {height} m) "
          "against Qualisys, in cam01's frame (targets < 3 deg, < 50 mm):")
    for n, r, p, q in zip(names, rot, pos, pos_fit):
        print(f"  {n}: rotation {r:.2f} deg, position {1000 * p:.0f} mm (scale from height), {1000 * q:.0f} mm "
              "(scale fitted)")
    from mocap.multiview.calibration import relative_to_first

    pe = np.stack([c.position for c in relative_to_first(est)])
    pr = np.stack([c.position for c in relative_to_first(cams)])
    print(f"  scale from the stated height / Qualisys scale: {np.linalg.norm(pe) / np.linalg.norm(pr):.3f}")
    baseline = np.linalg.norm(np.stack([c.position for c in cams])[:, None] - np.stack([c.position for c in cams]),
                              axis=-1)
    print(f"  (camera baselines {1000 * baseline[baseline > 0].min():.0f}-{1000 * baseline.max():.0f} mm; "
          f"bundle-adjustment residual median {np.round(rep.reprojection_px, 1).tolist()} px)")
    rot_r, pos_r = compare_rigs(est, refined, fit_scale=True)
    print("  against the Qualisys rig refined from the person (scale fitted): "
          + ", ".join(f"{n} {r:.2f} deg {1000 * p:.0f} mm" for n, r, p in zip(names[1:], rot_r[1:], pos_r[1:])))
    evaluate("calibration from people", est, views)

    from mocap.multiview.calibration import guess_intrinsics

    t0 = time.perf_counter()
    guessed = [guess_intrinsics(v.image_size, name=n) for n, v in zip(names, views)]
    est2, rep2 = calibrate_from_people(px, conf, guessed, body_height_m=height, layout="mediapipe33", refine_focal=True)
    rot, pos = compare_rigs(est2, cams, fit_scale=True)
    print(f"calibration from people with no intrinsics (55 deg guess, shared focal length adjusted: "
          f"{guessed[0].K[0, 0]:.0f} -> {est2[0].K[0, 0]:.0f} px, Qualisys {cams[0].K[0, 0]:.0f} px; "
          f"{time.perf_counter() - t0:.1f} s): rotation error " + ", ".join(f"{r:.2f}" for r in rot[1:])
          + " deg, position error (scale fitted) " + ", ".join(f"{1000 * p:.0f}" for p in pos[1:]) + " mm")
    evaluate("calibration from people, no intrinsics", est2, views)

    from mocap.io.calibration_files import load_calibration

    for path in others:  # another calibration of the same rig, e.g. one made from a scene or a board
        other = load_calibration(path)
        by_name = {c.name: c for c in other}
        other = [by_name[n] for n in names] if set(by_name) == set(names) else list(other)
        print(f"{path.name} ({', '.join(c.name for c in other)} taken as {', '.join(names)}), in cam01's frame:")
        for label, rig in (("Qualisys file", cams), ("Qualisys rig refined from the person", refined),
                           ("calibration from people (scale fitted)", est)):
            rot, pos = compare_rigs(rig, other, fit_scale=rig is est)
            print(f"  {label} against it: " + ", ".join(f"{n} {r:.2f} deg {1000 * q:.0f} mm"
                                                        for n, r, q in zip(names[1:], rot[1:], pos[1:])))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = check_cameras(other, views, names)
        evaluate(f"{path.name} as given", other, views)

    from mocap.multiview.board import Board, calibrate_intrinsics

    board = Board("checkerboard", (4, 7), 0.06)  # the Pose2Sim demo's board: 4 x 7 inner corners
    print("checkerboard intrinsics from calibration/intrinsics/int_camXX_img against Qualisys:")
    for q in qualisys:
        images = sorted((data / "calibration" / "intrinsics" / f"int_{q.name}_img").glob("*.jpg"))
        t0 = time.perf_counter()
        cam, rep = calibrate_intrinsics(images, board, name=q.name)
        print(f"  {q.name}: {len(rep.used)}/{len(images)} images, RMS {rep.rms_px:.2f} px, fx {cam.K[0, 0]:.1f} "
              f"(Qualisys {q.K[0, 0]:.1f}), principal point ({cam.K[0, 2]:.1f}, {cam.K[1, 2]:.1f}) "
              f"(Qualisys ({q.K[0, 2]:.1f}, {q.K[1, 2]:.1f})), {time.perf_counter() - t0:.1f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "video" / "pose2sim_single"))
    ap.add_argument("--keypoints-dir", default=None, help="reuse/store camXX.npz keypoints here")
    ap.add_argument("--height", type=float, default=1.72,
                    help="the subject's height in metres (scale of people calibration)")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--detector", default="blazepose-torch",
                    help="2D estimator for the real rig (default: blazepose-torch, the multi-view default)")
    ap.add_argument("--other-calibration", action="append", default=[], metavar="FILE",
                    help="also compare this calibration of the same rig (e.g. Pose2Sim's Calib_scene.toml) with the "
                         "Qualisys file, the refined rig and the calibration from people, and triangulate with it")
    args = ap.parse_args(argv)
    synthetic()
    data = Path(args.data)
    if args.skip_real:
        return 0
    if not data.exists():
        print(f"\nreal rig skipped: {data} not found")
        return 0
    real(data, Path(args.keypoints_dir) if args.keypoints_dir else None, args.height, args.detector,
         [Path(f) for f in args.other_calibration])
    return 0


if __name__ == "__main__":
    sys.exit(main())
