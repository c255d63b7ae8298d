"""Several people, several cameras: cross-view association, 3D tracking, per-person triangulation.

    python benchmarks/bench_multiperson.py [--frames 600] [--seed 0]          # synthetic, known truth
    python benchmarks/bench_multiperson.py --real [--keypoints-dir DIR]       # the Pose2Sim rig

Synthetic: 3 people walking around each other (two circling the room in opposite directions,
crossing twice a lap; one walking to and fro, who leaves for the middle fifth of the clip and
comes back), 4 known cameras on a ring (5 m), 2D keypoints with 2 px noise, 10 % missed
detections and 5 % left/right swaps, in shuffled detection slots. Their motion comes from
held-out CMU takes (``lifting/split.json``'s test subjects, via ``lifting.data``) when
``../shared/data`` is there, else from the synthetic walker of the tests at three heights.
Prints the share of person-frames whose detections were associated exactly right, the
identity switches, and each person's triangulation error against the truth.

Real (``--real``): ``pose2sim_two_people`` through ``mocap capture``'s multi-view pipeline
with ``--all-people``, with the Qualisys file as given and with ``--refine-calibration``:
per person and view the median reprojection error, and the bone-length variation of the
triangulated joints; whether both people were found and kept apart; then each camera alone
through the one-camera path (``mocap capture cam0N.mp4``: everyone tracked in that view),
its track ids judged against the multi-view association (identity switches of each
associated person, whose triangulated joints, projected into the view, tell which one-camera
detection is theirs in each frame; ``pose2sim_single`` too), and the 3D of its motion.npz
against the refined rig's triangulation (limb error after one similarity per clip, and the
frames it lies nearer the mirrored body), and, with ``--all-people``, whether the other person
lands in the captured person's world (their hip centre after the captured person's similarity,
their height against the captured person's). Then ``pose2sim_single``
both ways: everyone detected and associated (the pipeline now) and one person per view (the
path before), and how far apart the two main-person captures are. 2D keypoints are cached in
``--keypoints-dir`` (everyone: ``<clip>_<cam>.npz``; one person: ``<clip>_<cam>_one.npz``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FPS = 30.0
TAKES = ("02_01", "10_04", "12_01")  # walks of three held-out subjects (lifting/split.json: test)


def _loop(x: np.ndarray, t: int) -> np.ndarray:
    """(T0, ...) played forwards and backwards until ``t`` frames (no jump at the seams)."""
    out = x
    while len(out) < t:
        out = np.concatenate([out, out[::-1][1:]])
    return out[:t]


def people_motions(t: int) -> tuple[list[np.ndarray], str]:
    """Three (T, 33, 3) mediapipe33 motions (world metres, +Y up) and where they come from."""
    from tests.synthetic import motion21_to_mediapipe33, waving_walker

    try:
        from lifting.data import list_takes, load_split, load_take, resample, shared_data_dir

        if not (shared_data_dir() / "mocap").exists():
            raise FileNotFoundError(shared_data_dir())
        test = set(load_split()["test"])
        takes = {k.take_id: k for k in list_takes()}
        out = []
        for take_id in TAKES:
            if take_id not in test:
                raise ValueError(f"{take_id} is not a held-out take")
            x = resample(load_take(takes[take_id]).astype(np.float64), 120.0, FPS)[:, :21]  # MOTION21 joints
            x[..., 1] -= np.nanmin(x[:, :, 1])
            out.append(motion21_to_mediapipe33(_loop(x, t)))
        return out, f"CMU held-out takes {', '.join(TAKES)}"
    except (ImportError, FileNotFoundError, OSError, ValueError, KeyError) as e:
        print(f"(no CMU data: {e}; synthetic walkers instead)")
        return [motion21_to_mediapipe33(waving_walker(t, FPS) * s) for s in (0.92, 1.0, 1.08)], "synthetic walkers"


def synthetic(frames: int, seed: int) -> None:
    from mocap.formats import Keypoints2D
    from mocap.multiview.association import associate_people, person_keypoints
    from mocap.multiview.views import triangulate_views
    from tests.multiview_helpers import association_scores, crowd_paths, crowd_scene, ring_rig

    cams = ring_rig(4, radius=5.0)
    motions, source = people_motions(frames)
    paths, present = crowd_paths(frames, FPS)
    joints, px, conf, truth = crowd_scene(cams, motions, paths, present, layout="mediapipe33", noise_px=2.0,
                                          miss=0.1, swap=0.05, seed=seed)
    und = np.stack([c.undistort_pixels(p) for c, p in zip(cams, px)])
    proj = np.stack([c.projection for c in cams])
    t0 = time.perf_counter()
    assoc = associate_people(und, conf, proj, layout="mediapipe33", fps=FPS)
    seconds = time.perf_counter() - t0
    scores = association_scores(assoc.labels, truth)
    print(f"synthetic: 3 people ({source}), {frames} frames at {FPS:.0f} fps, 4 cameras, 2 px noise, "
          f"10 % missed detections, 5 % left/right swaps, seed {seed}")
    print(f"  cross-view association correct: {100 * scores['accuracy']:.2f} % of {scores['person_frames']} "
          f"person-frames (target >= 99 %)")
    print(f"  identity switches: {scores['switches']} (target 0); people found: {len(assoc.ids)} (truth 3)")
    print(f"  association time: {seconds:.1f} s ({frames / seconds:.0f} frames/s; a shared machine: not a timing figure)")
    for pid, who in sorted(scores["owner"].items(), key=lambda kv: kv[1]):
        kp, cf = person_keypoints(px, conf, assoc.labels, pid)
        views = [Keypoints2D(keypoints=k.astype(np.float32), confidence=c.astype(np.float32), layout="mediapipe33",
                             image_size=cams[0].size, fps=FPS) for k, c in zip(kp, cf)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            tri = triangulate_views(views, cams)
            err = np.linalg.norm(tri.points - joints[who], axis=-1)
            print(f"  person {who} (id {pid}): triangulation error mean {100 * np.nanmean(err):.2f} cm, median "
                  f"{100 * np.nanmedian(err):.2f} cm over {int(np.isfinite(err).any(-1).sum())} frames "
                  f"(in the room {int(present[who].sum())}); target < 2 cm")


def _people_tracks(path: Path):
    from mocap.detect2d.people import PeopleTracks

    z = np.load(path)
    return PeopleTracks(keypoints=z["keypoints"], confidence=z["confidence"], scores=z["scores"],
                        track_ids=z["track_ids"], layout=str(z["layout"]),
                        image_size=tuple(int(v) for v in z["image_size"]), fps=float(z["fps"]))


def detect_cached(clip: Path, cache: Path, *, one: bool):
    """Each view's 2D keypoints: everyone (PeopleTracks) or the one person of the path before."""
    from mocap.detect2d.views import detect_view, detect_view_people
    from mocap.formats import load_keypoints, save_keypoints

    out = []
    cache.mkdir(parents=True, exist_ok=True)
    for video in sorted((clip / "videos").glob("cam*.mp4")):
        path = cache / f"{clip.name}_{video.stem}{'_one' if one else ''}.npz"
        if not path.exists():
            if one:
                save_keypoints(path, detect_view(video, progress=False))
            else:
                p = detect_view_people(video, progress=False)
                np.savez(path, keypoints=p.keypoints, confidence=p.confidence, scores=p.scores, track_ids=p.track_ids,
                         layout=p.layout, image_size=np.array(p.image_size), fps=p.fps)
        out.append(load_keypoints(path) if one else _people_tracks(path))
    return out


def capture(clip: Path, keypoints, out: Path, *, refine: bool):
    from mocap.detect2d.options import DetectionOptions
    from mocap.pipelines.multiview import capture_multiview
    from mocap.pipelines.options import CaptureOptions, ExportOptions, MultiViewOptions

    options = CaptureOptions(multiview=MultiViewOptions(calibration=str(clip / "calibration" / "Calib.qca.txt"),
                                                        refine_calibration=refine),
                             export=ExportOptions(overlay=False), detection=DetectionOptions(all_people=True))
    videos = sorted((clip / "videos").glob("cam*.mp4"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return capture_multiview(videos, out, options, keypoints=keypoints, progress=False)


def _triangulated(out: Path, folder: Path) -> tuple[list, np.ndarray]:
    """The cameras of the capture in ``out`` and a person's joints (T, 33, 3) triangulated again
    from their files in ``folder``, in the calibration's world (each motion.npz has a world frame
    of its own, levelled and grounded for that person)."""
    from mocap.formats import load_keypoints
    from mocap.io.calibration_files import load_calibration
    from mocap.multiview.views import triangulate_views

    cams = load_calibration(out / "calibration.toml")
    views = [load_keypoints(f) for f in sorted(folder.glob("keypoints2d_*.npz"))]  # the cameras' order
    return cams, triangulate_views(views, cams).points


def _hips(out: Path, folder: Path) -> np.ndarray:
    """(T, 3) a person's hip centre triangulated again from their files, in the calibration's world."""
    from mocap.skeletons import MEDIAPIPE33

    points = _triangulated(out, folder)[1]
    return points[:, [MEDIAPIPE33.index("left_hip"), MEDIAPIPE33.index("right_hip")]].mean(1)


def _projected(out: Path, folder: Path) -> list[np.ndarray]:
    """A person's joints triangulated again from their files and projected into each view: per
    view (T, 33, 2) pixels over the person's frames (NaN unseen)."""
    cams, points = _triangulated(out, folder)
    return [cam.project(points) for cam in cams]


def one_camera_ids(clip: Path, out: Path, *, match: float = 0.1) -> None:
    """Each view alone through the one-camera 2D stage against the multi-view association in
    ``out`` (its ``person_<id>/``): per frame, the view's one-camera detections are matched to
    the associated people's projected joints (Hungarian on the median joint distance, the
    mirrored reading too, under ``match`` of the person's projected height); a person's
    identity switches are the changes of the one-camera id that holds them."""
    from scipy.optimize import linear_sum_assignment

    from mocap.detect2d.people import detect_people_video
    from mocap.skeletons import MEDIAPIPE33

    mirror = MEDIAPIPE33.mirror_permutation()
    people = json.loads((out / "people.json").read_text())["people"]
    proj = {p["id"]: _projected(out, out / f"person_{p['id']}") for p in people}
    pids = list(proj)
    starts = {p["id"]: json.loads((out / f"person_{p['id']}" / "reprojection.json").read_text())["start_frame"]
              for p in people}
    total = 0
    for c, video in enumerate(sorted((clip / "videos").glob("cam*.mp4"))):
        tracks = detect_people_video(video, detector="blazepose-torch", progress=False)
        kp, ok, ids = tracks.keypoints, tracks.confidence >= 0.5, tracks.track_ids
        held = {pid: np.full(len(ids), -2) for pid in proj}  # -2 not projected, -1 no detection of theirs
        for t in range(len(ids)):
            slots = np.nonzero(ids[t] >= 0)[0]
            cost = np.full((len(proj), len(slots)), np.inf)
            for i, pid in enumerate(pids):
                f = t - starts[pid]
                if not 0 <= f < len(proj[pid][c]):
                    continue
                a = proj[pid][c][f]
                seen = np.isfinite(a).all(-1)
                if seen.sum() < 5:
                    continue
                held[pid][t] = -1
                height = np.ptp(a[seen, 1])
                for j, s in enumerate(slots):
                    for perm in (np.arange(len(a)), mirror):
                        both = seen & ok[t, s][perm]
                        if both.sum() >= 5:
                            d = np.median(np.linalg.norm(a[both] - kp[t, s][perm][both], axis=-1)) / height
                            cost[i, j] = min(cost[i, j], d)
            if slots.size:
                for i, j in zip(*linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e3))):
                    if cost[i, j] < match:
                        held[pids[i]][t] = ids[t, slots[j]]
        row = []
        for pid, seq in held.items():
            v = seq[seq >= 0]
            switches = int(np.count_nonzero(v[1:] != v[:-1]))
            total += switches
            found, n = np.unique(v, return_counts=True)
            row.append(f"person {pid}: one-camera ids {dict(zip(found.tolist(), n.tolist()))} over "
                       f"{int((seq >= 0).sum())} of {int((seq >= -1).sum())} frames, {switches} switches")
        print(f"  {video.stem} alone ({len(tracks.track_list())} tracks): " + "; ".join(row))
    print(f"  one camera at a time: {total} identity switches against the multi-view association")


def _nearest_person(m, refs: dict, ref_idx: list[int]):
    """The triangulated person whose 12 limb joints lie nearest ``m``'s after one similarity per
    clip (each frame centred): (person id, limb error m, frames nearer the mirrored body, frames)."""
    from eval_real_video import LIMBS, _procrustes_clip

    mirror = [LIMBS.index(n.replace("left", "@").replace("right", "left").replace("@", "right")) for n in LIMBS]
    pred = m.joints[:, [list(m.joint_names).index(n) for n in LIMBS]]
    best = None
    for pid, ref in refs.items():
        target = ref[m.start_frame:m.start_frame + len(pred)][:, ref_idx]
        ok = np.isfinite(target).all((1, 2)) & np.isfinite(pred[:len(target)]).all((1, 2))
        if ok.sum() < 10:
            continue
        aligned, target = _procrustes_clip(pred[:len(ok)][ok], target[ok]), target[ok]
        err = np.linalg.norm(aligned - target, axis=-1).mean(-1)
        mirrored = np.linalg.norm(aligned - target[:, mirror], axis=-1).mean(-1)
        if best is None or err.mean() < best[1]:
            best = (pid, err.mean(), int((mirrored < err).sum()), int(ok.sum()))
    return best


def one_camera_motion(clip: Path, out: Path, tmp: Path) -> None:
    """Each view alone through ``mocap capture --all-people`` (the one-camera path) against the
    multi-view triangulation in ``out``: the 12 limb joints of the captured person's motion.npz
    after one similarity per clip, against the associated person it lies nearest (limb MPJPE),
    and the frames where it lies nearer that person's mirror image (left and right traded: a
    motion that matches the mislabelled 2D and not the body). Then whether everyone is in one
    world: the captured person's motion mapped onto their triangulation by ONE similarity over
    the clip (their path kept), the same similarity applied to each other person who matches a
    triangulated one, and their hip centre's mean distance from it (and the part along the
    camera's ray), with the ratio of their standing heights against the triangulated one."""
    from eval_real_video import LIMBS
    from lifting.evaluate import apply_similarity, similarity_fit

    from mocap.fit.quality import standing_height
    from mocap.formats import load_motion
    from mocap.io.calibration_files import load_calibration
    from mocap.multiview.calibration import body_height
    from mocap.pipelines.capture import capture as capture_one
    from mocap.pipelines.options import CaptureOptions, DetectionOptions, ExportOptions
    from mocap.skeletons import MEDIAPIPE33

    people = json.loads((out / "people.json").read_text())["people"]
    refs = {p["id"]: _triangulated(out, out / f"person_{p['id']}")[1] for p in people}
    cams = {c.name: c for c in load_calibration(out / "calibration.toml")}
    ref_idx = [MEDIAPIPE33.index(n) for n in LIMBS]
    hips = [LIMBS.index("left_hip"), LIMBS.index("right_hip")]
    for video in sorted((clip / "videos").glob("cam*.mp4")):
        folder = tmp / f"one_{video.stem}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            capture_one(video, folder, CaptureOptions(detection=DetectionOptions(all_people=True),
                                                      export=ExportOptions(overlay=False, preview=False)),
                        progress=False)
        m = load_motion(folder / "motion.npz")
        best = _nearest_person(m, refs, ref_idx)
        if best is None:
            continue
        print(f"  {video.stem} alone, `mocap capture`: person {best[0]}'s limbs {1000 * best[1]:.1f} mm off the "
              f"multi-view triangulation (one similarity over {best[3]} frames); nearer the mirrored body in "
              f"{best[2]} frames")

        def limbs(motion, pid):
            pred = motion.joints[:, [list(motion.joint_names).index(n) for n in LIMBS]]
            target = refs[pid][motion.start_frame:motion.start_frame + len(pred)][:, ref_idx]
            ok = np.isfinite(target).all((1, 2)) & np.isfinite(pred[:len(target)]).all((1, 2))
            return pred[:len(ok)][ok], target[ok]

        pred, target = limbs(m, best[0])
        world = similarity_fit(pred.reshape(-1, 3), target.reshape(-1, 3))  # the captured person's world -> the rig's
        listing = json.loads((folder / "people.json").read_text())
        for p in listing["people"]:
            if not p.get("folder") or p["id"] == listing["captured"]:
                continue
            other = load_motion(folder / p["folder"] / "motion.npz")
            match = _nearest_person(other, refs, ref_idx)
            if match is None or match[0] == best[0] or match[1] > 0.2:  # a bystander the rig does not see
                continue
            pred_o, target_o = limbs(other, match[0])
            hip_p = apply_similarity(world, pred_o.reshape(-1, 3)).reshape(pred_o.shape)[:, hips].mean(1)
            hip_t = target_o[:, hips].mean(1)
            ray = hip_t - cams[video.stem].position
            ray /= np.linalg.norm(ray, axis=-1, keepdims=True)
            off = hip_p - hip_t
            ratio = standing_height(other.rest_offsets) / standing_height(m.rest_offsets)
            truth = body_height(refs[match[0]], "mediapipe33") / body_height(refs[best[0]], "mediapipe33")
            print(f"    in the same world (--all-people): person {match[0]} (track {p['id']}) placed "
                  f"{1000 * np.linalg.norm(off, axis=-1).mean():.0f} mm off (along the camera's ray "
                  f"{1000 * (off * ray).sum(-1).mean():+.0f} mm, {np.linalg.norm(hip_t - cams[video.stem].position, axis=-1).mean():.1f} m "
                  f"away); height against the captured person's {ratio:.3f} (triangulated {truth:.3f})")


def real(data: Path, cache: Path) -> None:
    from mocap.formats import load_motion

    two, single = data / "pose2sim_two_people", data / "pose2sim_single"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        kps = detect_cached(two, cache, one=False)
        print("pose2sim_two_people: people per frame in each view (blazepose-torch, up to 4 followed): "
              + "; ".join(f"cam0{c + 1} {np.bincount((k.track_ids >= 0).sum(1)).tolist()}" for c, k in enumerate(kps)))
        for refine in (False, True):
            label = "--refine-calibration" if refine else "Qualisys file as given"
            out = tmp / f"two_{int(refine)}"
            report = capture(two, kps, out, refine=refine)
            print(f"pose2sim_two_people, {label}: {report.calibration}")
            people = json.loads((out / "people.json").read_text())["people"]
            roots = {}
            for p in people:
                rep = json.loads((out / f"person_{p['id']}" / "reprojection.json").read_text())
                views = ", ".join(f"{n} {v['median_px']:.1f}" for n, v in rep["views"].items())
                print(f"  person {p['id']}{' (main)' if p['main'] else ''}: frames {p['first_frame']}-"
                      f"{p['last_frame']} ({p['frames_visible']} seen); median reprojection px: {views}; "
                      f"bone_length_cv_median {100 * rep['bone_length_cv_median']:.1f} %")
                roots[p["id"]] = (rep["start_frame"], _hips(out, out / f"person_{p['id']}"))
            if len(roots) >= 2:
                (sa, ra), (sb, rb) = list(roots.values())[:2]
                lo, hi = max(sa, sb), min(sa + len(ra), sb + len(rb))
                gap = np.linalg.norm(ra[lo - sa:hi - sa] - rb[lo - sb:hi - sb], axis=-1)
                print(f"  kept apart: hip centres {100 * np.nanmin(gap):.0f} cm apart at the closest (median "
                      f"{100 * np.nanmedian(gap):.0f} cm) over the {hi - lo} frames both were captured")
                (ia, _), (ib, _) = list(roots.items())[:2]
                ma, mb = (load_motion(out / f"person_{i}" / "motion.npz") for i in (ia, ib))
                lo, hi = max(ma.start_frame, mb.start_frame), min(ma.start_frame + ma.num_frames,
                                                                  mb.start_frame + mb.num_frames)
                apart = np.linalg.norm(ma.joints[lo - ma.start_frame:hi - ma.start_frame, 0]
                                       - mb.joints[lo - mb.start_frame:hi - mb.start_frame, 0], axis=-1)
                print(f"  in one world: their motion.npz pelvises {100 * np.median(apart):.0f} cm apart (median), "
                      f"{100 * np.nanmean(np.abs(apart - gap[:len(apart)])):.1f} cm from the triangulated hip "
                      f"centres' distance on average")
            print(f"  people found: {len(people)} (2 in the room, plus a bystander in the background)")
            for n in report.notes:
                print(f"  note: {n}")
            if not refine:
                one_camera_ids(two, out)
            else:
                one_camera_motion(two, out, tmp)
        for refine in (False, True):
            label = "--refine-calibration" if refine else "as given"
            now = capture(single, detect_cached(single, cache, one=False), tmp / f"single_{int(refine)}", refine=refine)
            before = capture(single, detect_cached(single, cache, one=True), tmp / f"one_{int(refine)}", refine=refine)
            a = load_motion(tmp / f"single_{int(refine)}" / "motion.npz").joints
            b = load_motion(tmp / f"one_{int(refine)}" / "motion.npz").joints
            diff = np.linalg.norm(a - b, axis=-1) if a.shape == b.shape else np.array([np.nan])
            print(f"pose2sim_single, {label}: everyone associated: "
                  + ", ".join(f"{v['median_px']:.1f}" for v in now.reprojection.values())
                  + f" px, bones {100 * now.bone_length_cv:.1f} %; one person per view (the path before): "
                  + ", ".join(f"{v['median_px']:.1f}" for v in before.reprojection.values())
                  + f" px, bones {100 * before.bone_length_cv:.1f} %; main-person motion.npz joints differ by "
                  f"{1000 * np.nanmean(diff):.2f} mm mean, {1000 * np.nanmax(diff):.2f} mm max; people found "
                  f"{len(now.people)}")
            if not refine:
                one_camera_ids(single, tmp / "single_0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=600, help="synthetic frames (30 fps)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", action="store_true", help="the Pose2Sim clips instead of the synthetic scene")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "video")
    ap.add_argument("--keypoints-dir", type=Path, default=Path(tempfile.gettempdir()) / "mocap_multiperson")
    args = ap.parse_args()
    if args.real:
        real(args.data, args.keypoints_dir)
    else:
        synthetic(args.frames, args.seed)


if __name__ == "__main__":
    main()
