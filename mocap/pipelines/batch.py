"""Batch capture: many videos -> one output folder per video; resumable; local processes or Ray.

Layout of the output folder ``OUT``::

    OUT/<name>/           one finished capture per video (keypoints2d.npz, motion.npz, ...)
    OUT/<name>/done.json  the completion marker: the capture report, written last
    OUT/.partial/         captures in progress (each renamed to OUT/<name> only on success)
    OUT/summary.csv       one row per video: status, frames, detection %, seconds, error
    OUT/batch.log         what the worker processes printed (MediaPipe logs, tracebacks)

``<name>`` is the video's stem; stems that clash (two ``walk.mp4`` in different folders,
or a folder already holding another video's capture) get ``-`` plus 8 hex digits of a
hash of the video's absolute path, so names never depend on the order of the list.

A folder counts as finished only when its ``done.json`` is there. Because each capture is
written into ``.partial/`` and renamed into place after the marker, a killed run never
leaves a half-written folder that looks finished; a re-run skips the finished ones.

One batch per output folder at a time (a lock file, ``OUT/.batch.lock``, enforces it).
With Ray on several machines, the videos and ``OUT`` must be on storage that every node
mounts at the same path.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import shutil
import sys
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from mocap.errors import MocapError, missing_extra
from mocap.formats import atomic_path
from mocap.config import add_arguments, from_namespace
from mocap.pipelines.options import CaptureOptions, ExportOptions, add_lift_arguments

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")
MARKER = "done.json"
PARTIAL = ".partial"
LOG = "batch.log"
SUMMARY = "summary.csv"
_LOCK = ".batch.lock"
# files a capture writes (plus atomic_path's hidden temporaries); a folder holding anything
# else was not written by us and is never deleted
_CAPTURE_FILES = {"keypoints2d.npz", "motion.npz", "motion.bvh", "overlay.mp4", "preview.png", "preview.mp4",
                  "people.json", "people.png", "quality.json",
                  "character.fbx", "character.glb", "character.blend", MARKER}


@dataclass(frozen=True)
class VideoResult:
    """The outcome for one video. ``status`` is ``done``, ``skipped`` (finished earlier) or ``failed``."""

    video: Path
    name: str
    status: str
    frames: int | None = None
    detection_rate: float | None = None  # fraction of frames with a person, in [0, 1]
    seconds: float | None = None  # wall-clock seconds of the capture (in its worker)
    error: str = ""


@dataclass
class BatchSummary:
    """All videos' results (in input order) and the batch's wall-clock seconds."""

    out: Path
    results: list[VideoResult]
    wall_s: float = 0.0
    counts: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.counts = Counter(r.status for r in self.results)

    @property
    def num_failed(self) -> int:
        return self.counts["failed"]

    def table(self) -> str:
        """A text table: video, status, frames, detection %, seconds, error; then the totals."""
        rows = [("video", "status", "frames", "detect %", "seconds", "error")]
        for r in self.results:
            rows.append((r.name, r.status, "" if r.frames is None else str(r.frames),
                         "" if r.detection_rate is None else f"{100 * r.detection_rate:.1f}",
                         "" if r.seconds is None else f"{r.seconds:.2f}",
                         r.error if len(r.error) <= 70 else r.error[:67] + "..."))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = ["  ".join(f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(row, widths)))
                 + "  " + row[5] for row in rows]
        lines.insert(1, "-" * max(len(line) for line in lines))
        lines.append(f"{len(self.results)} videos: {self.counts['done']} done, {self.counts['skipped']} skipped, "
                     f"{self.counts['failed']} failed in {self.wall_s:.1f} s -> {self.out}")
        return "\n".join(line.rstrip() for line in lines)

    def write_csv(self, path: str | os.PathLike | None = None) -> Path:
        """Write the table to ``OUT/summary.csv`` (or ``path``), atomically; detection in percent."""
        path = Path(path) if path is not None else self.out / SUMMARY
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["video", "output", "status", "frames", "detection_pct", "seconds", "error"])
            for r in self.results:
                w.writerow([str(r.video), r.name, r.status, "" if r.frames is None else r.frames,
                            "" if r.detection_rate is None else round(100 * r.detection_rate, 2),
                            "" if r.seconds is None else round(r.seconds, 3), r.error])
        return path


# ---------------------------------------------------------------------------------------------
# finding the videos and naming their outputs


def find_videos(spec: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """The videos named by ``spec``, absolute paths, in a fixed order.

    ``spec`` is a folder (its videos with the extensions of ``VIDEO_EXTENSIONS``, any case,
    sorted by path; hidden files skipped; sub-folders only with ``recursive``), a text file
    listing one video per line (``#`` comments and blank lines ignored, relative paths
    relative to the list file, duplicates dropped), or one video file.
    """
    path = Path(spec).expanduser()
    if not path.exists():
        raise MocapError(f"{path} not found: give a folder of videos or a text file listing one video per line")
    if path.is_dir():
        pattern = path.rglob("*") if recursive else path.iterdir()
        videos = sorted((p for p in pattern if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
                         and not any(part.startswith(".") for part in p.relative_to(path).parts)),
                        key=lambda p: p.relative_to(path).as_posix())
        if not videos:
            hint = ""
            if not recursive and any(p.suffix.lower() in VIDEO_EXTENSIONS for p in path.rglob("*")):
                hint = "; its sub-folders have some: add --recursive"
            raise MocapError(f"no videos ({' '.join(VIDEO_EXTENSIONS)}) in {path}{hint}")
        return [p.resolve() for p in videos]
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return [path.resolve()]
    return _read_video_list(path)


def _read_video_list(path: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MocapError(f"{path} is neither a video ({' '.join(VIDEO_EXTENSIONS)}) nor a UTF-8 text list "
                         "of videos") from None
    videos: list[Path] = []
    missing: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        p = (p if p.is_absolute() else path.parent / p).resolve()
        if not p.is_file():
            missing.append(f"line {number}: {p}")
        elif p not in videos:
            videos.append(p)
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise MocapError(f"{len(missing)} videos listed in {path} not found: " + "; ".join(missing[:5]) + more
                         + " (relative paths are relative to the list file)")
    if not videos:
        raise MocapError(f"{path} lists no videos (one path per line; # starts a comment)")
    return videos


def _path_hash(video: Path) -> str:
    return hashlib.sha1(str(video).encode("utf-8")).hexdigest()[:8]


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The completion marker of a finished capture folder, or None if it is not finished."""
    folder = Path(folder)
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or "frames" not in marker or "video" not in marker:
        return None
    if not all((folder / name).is_file() for name in marker.get("outputs", [])):
        return None
    return marker


def output_names(videos: Sequence[Path], out: str | os.PathLike) -> list[str]:
    """Output folder name under ``out`` for each of ``videos`` (absolute paths).

    The stem, unless another video of the list has the same stem (ignoring case), the
    stem is a file name of ours, ``out/<stem>`` holds a finished capture of another video,
    or the hashed name holds one already: then ``<stem>-<8 hex digits of the path's SHA-1>``.
    """
    out = Path(out)
    counts = Counter(v.stem.lower() for v in videos)
    names = []
    for v in videos:
        stem = "_" + v.stem[1:] if v.stem.startswith(".") else v.stem
        hashed = f"{stem}-{_path_hash(v)}"
        marker = read_marker(out / stem)
        if (counts[v.stem.lower()] > 1 or stem in (SUMMARY, LOG) or read_marker(out / hashed) is not None
                or (marker is not None and Path(marker["video"]) != v)):
            stem = hashed
        names.append(stem)
    return names


# ---------------------------------------------------------------------------------------------
# one video (runs in a worker process or a Ray task)


def _limit_threads(threads: int) -> None:
    """Cap the math libraries' thread pools of this process at ``threads``."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)  # read by torch / BLAS when they are first imported
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)


def _worker_init(threads: int, log: str) -> None:
    """Process-pool initializer: thread caps, and the C++ libraries' chatter into ``log``."""
    _limit_threads(threads)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 2)
    os.close(fd)


def _foreign_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in _CAPTURE_FILES and not p.name.startswith("."))


def capture_one(video: str | os.PathLike, out: str | os.PathLike, name: str, options: CaptureOptions,
                threads: int = 1) -> VideoResult:
    """Capture ``video`` into ``out/<name>/`` atomically; any error becomes a ``failed`` result.

    The capture is written into ``out/.partial/<pid>/<name>/`` with ``done.json`` last,
    then renamed onto ``out/<name>`` (replacing an older capture of ours). The per-video
    task of both the process pool and Ray.
    """
    from mocap import __version__
    from mocap.pipelines.capture import capture

    start = time.perf_counter()
    video, out = Path(video), Path(out)
    final = out / name
    partial = out / PARTIAL / str(os.getpid()) / name
    try:
        _limit_threads(threads)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        report = capture(video, partial, options, progress=False)
        seconds = time.perf_counter() - start
        torch = sys.modules.get("torch")
        marker = {"video": str(video), "name": name, "frames": report.num_frames, "fps": report.fps,
                  "detection_rate": report.detection_rate, "lifter": report.lifter, "seconds": seconds,
                  "stage_seconds": report.seconds, "outputs": sorted(p.name for p in report.outputs.values()),
                  "torch_threads": torch.get_num_threads() if torch is not None else None,
                  "options": asdict(options), "mocap_version": __version__,
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with atomic_path(partial / MARKER) as tmp:
            tmp.write_text(json.dumps(marker, indent=2, default=str), encoding="utf-8")
        if final.exists():
            foreign = _foreign_files(final) if final.is_dir() else [final.name]
            if foreign:
                raise MocapError(f"{final} holds files mocap batch did not write ({', '.join(foreign[:3])}); "
                                 "move them away or choose another output folder")
            old = partial.with_name("." + name + ".old")
            os.replace(final, old)  # only ours is replaced: a finished or an unfinished capture
            os.replace(partial, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, final)
    except Exception as e:  # noqa: BLE001 - one bad video must not stop the batch: the error is its result
        shutil.rmtree(partial, ignore_errors=True)
        if not isinstance(e, MocapError):
            traceback.print_exc()  # into batch.log for the local pool
        text = str(e) if isinstance(e, MocapError) else f"{type(e).__name__}: {e}"
        return VideoResult(video, name, "failed", seconds=time.perf_counter() - start, error=text.replace("\n", " "))
    return VideoResult(video, name, "done", frames=report.num_frames, detection_rate=report.detection_rate,
                       seconds=seconds)


# ---------------------------------------------------------------------------------------------
# the batch


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _output_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.batch.lock`` so two batches never write one output folder."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(out / _LOCK, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise MocapError(f"another mocap batch is writing to {out}; wait for it or choose another -o") from None
        yield


def run_batch(
    videos: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    ray_cpus: float = 1.0,
    ray_gpus: float = 0.0,
    force: bool = False,
    options: CaptureOptions = CaptureOptions(),
    progress: bool = True,
) -> BatchSummary:
    """Capture every video into ``out/<name>/``; skip finished ones unless ``force``.

    Args:
        videos: video files (see :func:`find_videos`).
        out: output folder, created if needed.
        workers: local worker processes (default: the CPU cores, at most one per video);
            each caps torch / OpenCV at cores // workers threads. With ``ray_address="local"``
            the CPUs of the local Ray instance.
        ray_address: None for the local process pool; ``"local"`` starts a Ray instance
            here, ``"auto"`` joins the running cluster, else a cluster address
            (``ray://host:10001`` or ``host:6379``). Ignored if Ray is already initialised.
        ray_cpus, ray_gpus: Ray resources each video's task asks for.
        options: capture options for every video.
    Returns:
        BatchSummary; ``out/summary.csv`` written. Videos that fail are in it with their error.
    """
    from mocap.pipelines.capture import prepare_output_dir

    start = time.perf_counter()
    paths = list(dict.fromkeys(Path(v).resolve() for v in videos))  # each video once
    if not paths:
        raise MocapError("no videos to capture")
    if workers is not None and workers < 1:
        raise MocapError(f"--workers must be at least 1, got {workers}")
    out = prepare_output_dir(out).resolve()
    with _output_lock(out):
        shutil.rmtree(out / PARTIAL, ignore_errors=True)  # leftovers of killed runs
        results: dict[str, VideoResult] = {}
        todo: list[tuple[Path, str]] = []
        names = output_names(paths, out)
        for video, name in zip(paths, names):
            marker = None if force else read_marker(out / name)
            if marker is None:
                todo.append((video, name))
            else:
                results[name] = VideoResult(video, name, "skipped", frames=marker["frames"],
                                            detection_rate=marker.get("detection_rate"), seconds=marker.get("seconds"))
        if results and progress:
            print(f"{len(results)} of {len(paths)} videos already finished in {out}: skipped "
                  "(--force captures them again)", file=sys.stderr)
        if todo:
            from tqdm import tqdm

            with tqdm(total=len(todo), desc="videos", unit="video", file=sys.stderr, disable=not progress) as bar:
                def record(r: VideoResult) -> None:
                    results[r.name] = r
                    bar.update(1)
                    if r.status == "failed":
                        bar.write(f"{r.video.name}: failed: {r.error}", file=sys.stderr)

                if ray_address is None:
                    workers = min(workers or cpu_count(), len(todo))
                    _run_local(todo, out, options, workers=workers, threads=max(1, cpu_count() // workers),
                               record=record)
                else:
                    _run_ray(todo, out, options, address=ray_address, workers=workers, cpus=ray_cpus, gpus=ray_gpus,
                             record=record)
        shutil.rmtree(out / PARTIAL, ignore_errors=True)
        summary = BatchSummary(out, [results[name] for name in names], wall_s=time.perf_counter() - start)
        summary.write_csv()
    return summary


def _run_local(todo: list[tuple[Path, str]], out: Path, options: CaptureOptions, *, workers: int, threads: int,
               record: Callable[[VideoResult], None], task: Callable[..., VideoResult] = capture_one) -> None:
    """Run ``task`` over ``todo`` in spawned worker processes.

    A worker that dies (a crash in a native library, the out-of-memory killer) breaks the
    whole pool. The videos whose capture had started (their ``.partial`` folder exists)
    are then suspects: each runs again alone in a fresh process, and fails only if that
    one dies too; the videos that had not started go to a new pool.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    log = str(out / LOG)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"--- mocap batch: {len(todo)} videos, {workers} workers, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    queue, suspects = list(todo), []
    while queue or suspects:
        isolated = not queue
        batch = [suspects.pop(0)] if isolated else queue
        queue = []
        broken = []
        with ProcessPoolExecutor(max_workers=1 if isolated else min(workers, len(batch)),
                                 mp_context=get_context("spawn"), initializer=_worker_init,
                                 initargs=(threads, log)) as pool:
            futures = {pool.submit(task, video, out, name, options, threads): (video, name) for video, name in batch}
            try:
                for fut in as_completed(futures):
                    try:
                        record(fut.result())
                    except BrokenProcessPool:
                        broken.append(futures[fut])
            except KeyboardInterrupt:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        started = {p.name for p in (out / PARTIAL).glob("*/*") if not p.name.startswith(".")}
        shutil.rmtree(out / PARTIAL, ignore_errors=True)
        for video, name in broken:
            if isolated:
                record(VideoResult(video, name, "failed", error=f"the worker process died capturing this video "
                                   f"(a crash in a native library or out of memory); see {out / LOG}"))
            elif name in started or len(broken) == len(batch):
                suspects.append((video, name))  # started, or the pool never worked: run alone
            else:
                queue.append((video, name))


def _run_ray(todo: list[tuple[Path, str]], out: Path, options: CaptureOptions, *, address: str,
             workers: int | None, cpus: float, gpus: float, record: Callable[[VideoResult], None]) -> None:
    """Run :func:`capture_one` over ``todo`` as Ray tasks (``address``: see :func:`run_batch`)."""
    try:
        import ray
    except ImportError:
        raise missing_extra("ray", "ray") from None

    started = False
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(num_cpus=workers or cpu_count(), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise MocapError(f"cannot start or reach Ray at {address!r} ({e}); use --ray local, --ray auto on a "
                             "cluster node, or the cluster's address") from None
        started = True
    try:
        threads = max(1, int(cpus))
        task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=1)(capture_one)
        refs = {task.remote(str(video), str(out), name, options, threads): (video, name) for video, name in todo}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            video, name = refs[done[0]]
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayError as e:
                result = VideoResult(video, name, "failed", error=f"Ray task failed: {type(e).__name__}: {e}"[:500])
            if result.status == "done" and read_marker(out / name) is None:
                result = VideoResult(video, name, "failed", error=f"the Ray worker finished but {out / name} is "
                                     "not visible here: put the output folder on storage every node mounts")
            record(result)
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mocap batch", description="Capture many videos: one output folder per video, "
                                "resumable (finished videos are skipped), on local processes or a Ray cluster.")
    p.add_argument("videos", metavar="DIR_OR_LIST",
                   help="a folder of videos (mp4, mov, avi, mkv, webm) or a text file listing one video per line")
    p.add_argument("-o", "--output", required=True, help="output folder: OUT/<video name>/ per video, OUT/summary.csv")
    p.add_argument("--workers", type=int, default=None,
                   help=f"parallel captures (default: the CPU cores, here {cpu_count()}); "
                        "with --ray local, the CPUs of the local Ray instance")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run on Ray: 'local' starts an instance here, 'auto' joins this node's cluster, "
                        "or an address (ray://HOST:10001); needs pip install 'mocap-lift[ray]'")
    p.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs per video's Ray task (default 1)")
    p.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs per video's Ray task (default 0)")
    p.add_argument("--force", action="store_true", help="capture finished videos again")
    p.add_argument("--recursive", action="store_true", help="also look for videos in sub-folders")
    add_lift_arguments(p)
    add_arguments(p, ExportOptions, ("target", "overlay", "preview", "bvh_units"), help={
        "target": "also retarget each motion onto this rigged character (.fbx, .glb, .blend)",
        "overlay": "skip overlay.mp4 (faster)", "preview": "skip preview.png / preview.mp4 (faster)"})
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def batch_main(argv: list[str]) -> int:
    """``mocap batch``: 0 if every video is captured (or was already), 1 otherwise."""
    from mocap.export.character import check_character

    args = build_parser().parse_args(argv)
    try:
        if args.target is not None:
            args.target = str(Path(args.target).resolve())  # the workers may run elsewhere
        options = from_namespace(CaptureOptions, args)
        check_character(options.export)
        videos = find_videos(args.videos, recursive=args.recursive)
        summary = run_batch(videos, args.output, workers=args.workers, ray_address=args.ray, ray_cpus=args.ray_cpus,
                            ray_gpus=args.ray_gpus, force=args.force, options=options, progress=not args.quiet)
    except (MocapError, ImportError) as e:
        if os.environ.get("MOCAP_DEBUG"):
            raise
        print(f"mocap: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mocap: interrupted; the finished videos are kept: run the same command again to go on",
              file=sys.stderr)
        return 130
    print(summary.table())
    if summary.num_failed:
        print(f"{summary.num_failed} videos failed; their errors are in {summary.out / SUMMARY} and "
              f"{summary.out / LOG}; re-run the same command to retry them", file=sys.stderr)
    return 1 if summary.num_failed else 0


if __name__ == "__main__":
    sys.exit(batch_main(sys.argv[1:]))
