"""``mocap eval-2d``: run 2D pose estimators on COCO-style images and score them.

    mocap eval-2d [--estimator NAME ...] [--images DIR] [--annotations JSON] [--limit N]
                  [--batch-size B] [--out results.json]

Each estimator (by its name in :data:`mocap.detect2d.estimators.ESTIMATORS`; default: all of them)
runs on every annotated image found in ``--images`` (default ``../shared/data/images/coco_mini``
beside the project, or ``$MOCAP_SHARED_DATA/images/coco_mini``). Its people become COCO
keypoint detections (:func:`mocap.eval.eval2d.estimate_to_detections`) scored with
:func:`mocap.eval.eval2d.coco_keypoint_eval` and PCK@0.2 of the torso (:func:`mocap.eval.eval2d.pck_coco`).

frames/s counts images per second of the estimator's calls only: decoding the images,
building the model and one warm-up call on a blank 256x256 image are excluded.
An estimator that cannot be built (missing extra, missing weights) gets a row that says
so; the others still run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from mocap.errors import MocapError

_REPO = Path(__file__).resolve().parents[1]


def default_images_dir() -> Path:
    """``$MOCAP_SHARED_DATA/images/coco_mini``, else ``../shared/data/images/coco_mini`` beside the project."""
    shared = Path(os.environ.get("MOCAP_SHARED_DATA", _REPO.parent / "shared" / "data"))
    return shared / "images" / "coco_mini"


def load_dataset(images_dir: str | os.PathLike, annotations: str | os.PathLike | None = None, *,
                 limit: int | None = None) -> tuple[dict, list[tuple[int, Path]]]:
    """COCO ground truth and the (image id, path) of each annotated image present on disk, by id.

    ``annotations`` defaults to ``images_dir/person_keypoints.json``; ``limit`` keeps the first N images.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise MocapError(f"image folder {images_dir} not found; pass --images DIR (a folder of COCO images)")
    ann_path = Path(annotations) if annotations is not None else images_dir / "person_keypoints.json"
    if not ann_path.is_file():
        raise MocapError(f"annotations {ann_path} not found; pass --annotations person_keypoints.json")
    try:
        gt = json.loads(ann_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise MocapError(f"cannot read {ann_path} as COCO json ({e})") from None
    if not isinstance(gt, dict) or "images" not in gt or "annotations" not in gt:
        raise MocapError(f"{ann_path} is not a COCO keypoint json (needs 'images' and 'annotations')")
    items = [(int(im["id"]), images_dir / im["file_name"]) for im in sorted(gt["images"], key=lambda im: im["id"])]
    items = [(i, p) for i, p in items if p.is_file()]
    if limit is not None:
        if limit < 1:
            raise MocapError(f"--limit must be at least 1, got {limit}")
        items = items[:limit]
    if not items:
        raise MocapError(f"none of the images listed in {ann_path.name} is in {images_dir}")
    return gt, items


def _read_rgb(path: Path) -> np.ndarray:
    import cv2  # a core dependency (opencv-contrib-python)

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MocapError(f"cannot decode image {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def evaluate_estimator(name: str, gt: dict, items: list[tuple[int, Path]], *, batch_size: int = 1,
                       progress: bool = True) -> dict:
    """Run estimator ``name`` on ``items`` and score it; a row of the table (a dict).

    Returns:
        {"estimator", "status" ("ok" or why not), "ap", "ap50", "ap75", "ap_medium", "ap_large",
        "ar", "ar50", "ar75", "pck", "pck_per_joint", "pck_matched", "people_found", "images",
        "fps", "load_s"}; metrics are None when the estimator did not run.
    """
    from tqdm import tqdm

    from mocap.detect2d.estimators import get_estimator
    from mocap.eval.eval2d import coco_keypoint_eval, estimate_to_detections, pck_coco

    row: dict = {"estimator": name, "status": "ok", "images": len(items)}
    start = time.perf_counter()
    try:
        estimator = get_estimator(name)
        estimator(np.zeros((1, 256, 256, 3), np.uint8))  # warm-up, not timed
    except Exception as e:  # any failure to build is reported in the table instead of stopping the others
        if os.environ.get("MOCAP_DEBUG"):
            raise
        row["status"] = f"failed to load: {type(e).__name__}: {e}"
        return row
    row["load_s"] = time.perf_counter() - start

    detections: list[dict] = []
    run_s = 0.0
    with tqdm(total=len(items), desc=name, unit="img", file=sys.stderr, disable=not progress) as bar:
        for k in range(0, len(items), batch_size):
            chunk = items[k:k + batch_size]
            frames = [_read_rgb(p) for _, p in chunk]
            t0 = time.perf_counter()
            try:
                estimate = estimator(frames)
            except Exception as e:  # a crash on one image is reported as the estimator's result
                if os.environ.get("MOCAP_DEBUG"):
                    raise
                row["status"] = f"failed on {chunk[0][1].name}: {type(e).__name__}: {e}"
                return row
            run_s += time.perf_counter() - t0
            detections += estimate_to_detections(estimate, [i for i, _ in chunk])
            bar.update(len(chunk))
    close = getattr(estimator, "close", None)
    if callable(close):
        close()

    ids = [i for i, _ in items]
    coco = coco_keypoint_eval(gt, detections, image_ids=ids)
    pck = pck_coco(gt, detections, alpha=0.2, image_ids=ids)
    row.update({k: v for k, v in coco.as_dict().items() if k not in ("num_images", "num_people")})
    row.update({"num_people": coco.num_people, "people_found": len(detections), "pck": pck.mean,
                "pck_per_joint": [None if np.isnan(v) else float(v) for v in pck.per_joint],
                "pck_matched": pck.matched, "fps": len(items) / run_s if run_s > 0 else float("nan")})
    return row


def format_table(rows: list[dict]) -> str:
    """The results as a fixed-width text table (one line per estimator)."""
    head = f"{'estimator':<18} {'AP':>6} {'AP50':>6} {'AP75':>6} {'AR':>6} {'PCK@0.2':>8} {'frames/s':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['estimator']:<18} {r['status']}")
            continue
        lines.append(f"{r['estimator']:<18} {r['ap']:6.3f} {r['ap50']:6.3f} {r['ap75']:6.3f} {r['ar']:6.3f} "
                     f"{r['pck']:8.3f} {r['fps']:9.1f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from mocap.detect2d.estimators import ESTIMATORS

    p = argparse.ArgumentParser(prog="mocap eval-2d", description="Score 2D pose estimators on COCO keypoint "
                                "ground truth: AP, AP50, AP75, AR (OKS), PCK@0.2 of the torso, frames/s.")
    p.add_argument("--estimator", action="append", default=None, metavar="NAME",
                   help=f"estimator to run (repeat for several; default: all of {', '.join(ESTIMATORS)})")
    p.add_argument("--images", default=None, metavar="DIR",
                   help=f"folder of COCO images (default: {default_images_dir()})")
    p.add_argument("--annotations", default=None, metavar="JSON",
                   help="COCO person_keypoints json (default: DIR/person_keypoints.json)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use the first N images (by id)")
    p.add_argument("--batch-size", type=int, default=1, metavar="B", help="images per estimator call (default 1)")
    p.add_argument("--out", default=None, metavar="results.json", help="also write every number here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def eval2d_main(argv: list[str] | None = None) -> int:
    """Entry point of ``mocap eval-2d``; prints the table, returns 0 if any estimator ran, else 1."""
    from mocap.detect2d.estimators import ESTIMATORS

    args = build_parser().parse_args(argv)
    names = args.estimator or list(ESTIMATORS)
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown:
        raise MocapError(f"unknown estimator {', '.join(unknown)}; choose from: {', '.join(ESTIMATORS)}")
    if args.batch_size < 1:
        raise MocapError(f"--batch-size must be at least 1, got {args.batch_size}")
    images = Path(args.images) if args.images else default_images_dir()
    gt, items = load_dataset(images, args.annotations, limit=args.limit)
    rows = [evaluate_estimator(n, gt, items, batch_size=args.batch_size, progress=not args.quiet) for n in names]
    ids = {i for i, _ in items}
    people = sum(1 for a in gt["annotations"]
                 if a["image_id"] in ids and not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0)
    print(f"{len(items)} images with {people} people with keypoints ({images})")
    print(format_table(rows))
    if args.out:
        from mocap.formats import atomic_path

        payload = {"images_dir": str(images), "num_images": len(items), "results": rows}
        with atomic_path(args.out) as tmp:
            Path(tmp).write_text(json.dumps(payload, indent=2, allow_nan=True))
    return 0 if any(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(eval2d_main())
    except MocapError as err:
        print(f"mocap eval-2d: error: {err}", file=sys.stderr)
        sys.exit(1)
