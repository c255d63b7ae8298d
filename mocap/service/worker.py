"""The worker pool: each job runs ``mocap.pipelines.capture.capture`` (or the multi-view capture) in
its own child process, at most ``workers`` at a time.

Parent side (:class:`WorkerPool`, inside the server): threads take job ids from a queue,
mark the job ``running``, start ``python -m mocap.service.worker <job folder>`` and read
its progress reports (JSON lines on the child's stdout) into the job row. Cancelling kills
the child's process group. A crashing child (a segfault in a native library, out of
memory) fails its job, never the server.

Child side (:func:`child_main`): reads ``job.json``, captures into a fresh hidden folder
``.out-XXXX`` beside ``out/`` and renames it to ``out/`` only once every file is written,
so ``out/`` is complete or absent. Progress: frames detected / frames in the video, read
from the pipeline's tqdm bars (capture has no progress callback), then stage-level steps.
The child reads its stdin, which the parent never writes: end of file means the server is
gone (even killed with SIGKILL), and the child exits at once.

Restart: jobs found ``running`` or ``queued`` when the pool starts are queued again and
run from the start; a job whose ``out/`` is already complete is simply marked done.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from mocap.config import from_json, json_defaults, to_json
from mocap.pipelines.options import CaptureOptions
from mocap.service.store import Store

log = logging.getLogger("mocap.service")

#: the ``options`` a job accepts, with their defaults: every capture option the service's
#: clients may set (the JSON fields of :class:`mocap.pipelines.options.CaptureOptions`, see
#: each stage's options module for its meaning, range and unit), plus ``formats``: extra
#: exports, "fbx", "glb" (need bpy); motion.npz and motion.bvh are always written.
#: ``calibration`` is null or "auto" here: a calibration file is uploaded beside the videos.
DEFAULT_OPTIONS: dict[str, Any] = {**json_defaults(CaptureOptions), "formats": []}
EXPORT_FORMATS = ("fbx", "glb")
_ALWAYS_WRITTEN = ("npz", "bvh")
_EXAMPLE = '{"lifter": "mediapipe", "formats": ["fbx"], "overlay": false}'
_TQDM = re.compile(r"([^\r\n]*?):\s+\d+%\|[^|\r\n]*\|\s*(\d+)/(\d+)")
_VIEW = re.compile(r"video_(\d+)")
DETECT_SPAN = (0.05, 0.80)  # share of the job's progress taken by 2D detection


def parse_options(text: str | None) -> dict[str, Any]:
    """The ``options`` form field (a JSON object) -> every option, defaults filled in.

    ValueError with a message for the client when the JSON is malformed, a key is
    unknown or a value is out of range (the checks of the options' dataclasses).
    """
    raw: Any = {}
    if text is not None and text.strip():
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"options is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
                             f"send a JSON object such as {_EXAMPLE}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"options must be a JSON object such as {_EXAMPLE}, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(DEFAULT_OPTIONS)}")
    if raw.get("calibration") not in (None, "auto"):
        raise ValueError(f'option calibration must be null or "auto" (upload a calibration file beside the '
                         f'videos instead), got {raw["calibration"]!r}')
    options = from_json(CaptureOptions, raw)
    formats = raw.get("formats", [])
    if not isinstance(formats, list) or any(f not in EXPORT_FORMATS + _ALWAYS_WRITTEN for f in formats):
        raise ValueError(f"option formats must be a list drawn from {', '.join(EXPORT_FORMATS + _ALWAYS_WRITTEN)} "
                         f"(npz and bvh are always written), got {formats!r}")
    return {**to_json(options), "formats": [f for f in EXPORT_FORMATS if f in formats]}


# -- child process --------------------------------------------------------------------------


class _Reporter:
    """Writes progress events as JSON lines to the parent; drops repeats and tiny steps."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._last: tuple[float, str] = (-1.0, "")

    def progress(self, fraction: float, message: str) -> None:
        with self._lock:
            last_fraction, last_message = self._last
            if message == last_message and fraction - last_fraction < 0.01:
                return
            self._last = (fraction, message)
            self._send({"progress": round(min(max(fraction, 0.0), 1.0), 4), "message": message})

    def error(self, message: str) -> None:
        with self._lock:
            self._send({"error": message})

    def _send(self, event: dict) -> None:
        try:
            self._stream.write(json.dumps(event) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            os._exit(1)  # the parent is gone


class _TqdmTee:
    """A stand-in for sys.stderr: passes text through and reports the tqdm bars' frame counts."""

    def __init__(self, stream, on_count: Callable[[str, int, int], None]) -> None:
        self._stream = stream
        self._on_count = on_count

    def write(self, text: str) -> int:
        matches = _TQDM.findall(text)
        if matches:
            desc, n, total = matches[-1]
            if int(total) > 0:
                self._on_count(desc.strip(), int(n), int(total))
        return self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _exit_when_parent_dies() -> None:
    def watch() -> None:
        try:
            while os.read(0, 4096):  # raw reads: no buffer lock to trip the interpreter's shutdown
                pass
        finally:
            os._exit(1)

    threading.Thread(target=watch, name="mocap-parent-watch", daemon=True).start()


def _run_capture(spec: dict, job_dir: Path, tmp: Path, report: _Reporter) -> dict[str, Any]:
    """Run the capture for ``spec`` into ``tmp``; return the result summary."""
    import dataclasses

    o = spec["options"]
    options = from_json(CaptureOptions, {k: v for k, v in o.items() if k != "formats"})
    videos = [job_dir / "input" / name for name in spec["videos"]]
    report.progress(0.02, "starting the capture")
    if len(videos) == 1:
        from mocap.pipelines.capture import capture

        r = capture(videos[0], tmp, options, progress=True)
        if (tmp / "overlay.mp4").is_file():  # browsers cannot play mp4v: a small VP8 copy for the viewer
            from mocap.io.webvideo import transcode_for_web

            report.progress(0.86, "making the overlay playable in browsers")
            transcode_for_web(tmp / "overlay.mp4", tmp / "overlay.webm", max_width=360)
        summary = {"frames": r.num_frames, "fps": r.fps, "lifter": r.lifter,
                   "detection_rate": round(r.detection_rate, 4), "seconds": r.seconds}
        message = f"done: {r.num_frames} frames at {r.fps:.2f} fps, lifter {r.lifter}"
    else:
        from mocap.pipelines.multiview import capture_multiview

        calibration = job_dir / "input" / spec["calibration"] if spec.get("calibration") else "auto"
        options = dataclasses.replace(options, multiview=dataclasses.replace(options.multiview,
                                                                             calibration=str(calibration)))
        r = capture_multiview(videos, tmp, options, progress=True)
        summary = {"frames": r.num_frames, "fps": r.fps, "views": r.names, "frame_offsets": r.offsets,
                   "reprojection": r.reprojection, "notes": r.notes, "seconds": r.seconds}
        message = f"done: {r.num_frames} frames at {r.fps:.2f} fps from {len(videos)} views"
    warnings = _exports(o["formats"], tmp, report)
    if warnings:
        message += "; " + "; ".join(warnings)
    return {"message": message, "summary": summary, "warnings": warnings}


def _exports(formats: list[str], tmp: Path, report: _Reporter) -> list[str]:
    """Write motion.<fmt> for each requested Blender format; messages for those that failed."""
    from mocap.errors import MocapError
    from mocap.formats import load_motion

    failed = []
    for i, fmt in enumerate(formats):
        report.progress(0.9 + 0.08 * i / len(formats), f"exporting {fmt}")
        try:
            from mocap.export import blender as export_blender

            m = load_motion(tmp / "motion.npz")
            export_blender.export_motion(tmp / f"motion.{fmt}", joint_names=m.joint_names, parents=m.parents,
                                         rest_offsets=m.rest_offsets, local_quats_wxyz=m.local_quats_wxyz,
                                         root_translation=m.root_translation, fps=m.fps)
        except (ImportError, MocapError) as e:
            failed.append(f"motion.{fmt} not written: {e}")
    return failed


def child_main(argv: list[str]) -> int:
    """Entry point of a job's child process: ``python -m mocap.service.worker JOB_DIR``."""
    import traceback

    from mocap.errors import MocapError

    if len(argv) != 1:
        print("usage: python -m mocap.service.worker JOB_DIR", file=sys.stderr)
        return 2
    job_dir = Path(argv[0]).resolve()
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to the log, not into the event stream
    report = _Reporter(events)
    _exit_when_parent_dies()
    spec = json.loads((job_dir / "job.json").read_text())
    views = max(1, len(spec["videos"]))

    def on_count(desc: str, n: int, total: int) -> None:
        m = _VIEW.search(desc)
        view = min(int(m.group(1)), views - 1) if m else 0
        lo, hi = DETECT_SPAN
        if n >= total and view == views - 1:
            report.progress(hi, "lifting to 3D and cleaning up")
        else:
            report.progress(lo + (hi - lo) * (view + n / total) / views,
                            f"detecting 2D: {n}/{total} frames" + (f" of view {view + 1}/{views}" if views > 1 else ""))

    sys.stderr = _TqdmTee(sys.stderr, on_count)
    tmp = Path(tempfile.mkdtemp(prefix=".out-", dir=job_dir))

    def public(text: str) -> str:  # no server paths in messages shown to clients
        return text.replace(str(tmp), "out").replace(str(job_dir) + os.sep, "")

    try:
        result = _run_capture(spec, job_dir, tmp, report)
        result["message"] = public(result["message"])
        result["warnings"] = [public(w) for w in result["warnings"]]
        (tmp / "result.json").write_text(json.dumps(result, indent=1))
        os.rename(tmp, job_dir / "out")  # the results appear complete, or not at all
        report.progress(1.0, result["message"])
        return 0
    except (MocapError, ValueError, ImportError) as e:
        traceback.print_exc()
        report.error(public(str(e)))
        return 1
    except Exception as e:  # noqa: BLE001 - any other failure fails this job only, with its name
        traceback.print_exc()
        report.error(f"internal error ({type(e).__name__}: {public(str(e))}); the server's worker.log has details")
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- parent side ----------------------------------------------------------------------------


def result_files(out: Path) -> list[str]:
    """Names of the regular files in a job's ``out/`` (what clients may download)."""
    return sorted(p.name for p in out.iterdir() if p.is_file() and not p.is_symlink() and p.name != "result.json")


def _exit_message(rc: int) -> str:
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = str(-rc)
        return f"the worker process was killed by signal {name} (out of memory?); see the server's worker.log"
    return f"the worker process failed (exit status {rc}); see the server's worker.log"


class WorkerPool:
    """Runs queued jobs, ``workers`` at a time, each in a child process."""

    def __init__(self, store: Store, *, workers: int = 2, python: str | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.store = store
        self.workers = workers
        self.python = python or sys.executable
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._cancelled: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._lock_file = None

    def start(self) -> None:
        """Queue again the jobs a previous server left unfinished, then start the threads.

        RuntimeError if another server's pool runs on the same data directory (a lock file
        that the operating system releases when its process ends, even killed).
        """
        self.acquire_data_dir()
        for job_id in self.store.requeue_unfinished():
            self._queue.put(job_id)
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, name=f"mocap-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def acquire_data_dir(self) -> None:
        """Lock the data directory for this pool (no-op if already held); RuntimeError if another has it."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        if self._lock_file is not None:
            return
        self._lock_file = open(self.store.data_dir / "workers.lock", "a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            self._lock_file = None
            raise RuntimeError(f"another mocap serve is running on {self.store.data_dir}; stop it, or give this "
                               "one its own --data-dir") from None

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job (killing its child); False if it had already finished."""
        now = time.time()
        with self._lock:
            if self.store.update_job(job_id, status="cancelled", message="cancelled before it started",
                                     finished=now, only_if_status=("queued",)):
                return True
            if not self.store.update_job(job_id, status="cancelled", message="cancelled while running",
                                         finished=now, only_if_status=("running",)):
                return False
            self._cancelled.add(job_id)
            proc = self._procs.get(job_id)
        if proc is not None:
            _kill(proc)
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Kill the running children (their jobs go back to the queue for the next start)."""
        with self._lock:
            self._stopping = True
            procs = list(self._procs.values())
        for proc in procs:
            _kill(proc, wait=False)
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._run(job_id)
            except Exception as e:  # noqa: BLE001 - one broken job must not stop this worker thread
                log.exception("job %s: worker error", job_id)
                self.store.update_job(job_id, status="failed", message=f"internal error in the worker: {e}",
                                      finished=time.time(), only_if_status=("running",))
            finally:
                with self._lock:
                    self._cancelled.discard(job_id)

    def _run(self, job_id: str) -> None:
        with self._lock:
            if self._stopping or not self.store.claim_job(job_id):
                return
        job_dir = self.store.job_dir(job_id)
        out = job_dir / "out"
        if (out / "result.json").is_file():  # finished before the server could record it
            self._finish(job_id, out)
            return
        shutil.rmtree(out, ignore_errors=True)
        for stale in job_dir.glob(".out-*"):
            shutil.rmtree(stale, ignore_errors=True)
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        with open(job_dir / "worker.log", "ab") as log_file, self._lock:
            if job_id in self._cancelled or self._stopping:
                proc = None
            else:
                proc = subprocess.Popen([self.python, "-m", "mocap.service.worker", str(job_dir)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=log_file, env=env, start_new_session=True)
                self._procs[job_id] = proc
        if proc is None:
            self._after_stop(job_id)
            return
        error = self._follow(job_id, proc)
        rc = proc.wait()
        proc.stdin.close()
        with self._lock:
            self._procs.pop(job_id, None)
            cancelled, stopping = job_id in self._cancelled, self._stopping
        for stale in job_dir.glob(".out-*"):  # left by a killed child
            shutil.rmtree(stale, ignore_errors=True)
        if cancelled:
            return
        if stopping:
            self._after_stop(job_id)
        elif rc == 0 and (out / "result.json").is_file():
            self._finish(job_id, out)
        else:
            self.store.update_job(job_id, status="failed", message=error or _exit_message(rc), finished=time.time(),
                                  only_if_status=("running",))

    def _follow(self, job_id: str, proc: subprocess.Popen) -> str | None:
        """Copy the child's progress events into the job row until it closes stdout; its error, if any.

        The child sends at most ~10 events a second (tqdm's refresh, steps of 1 % or a new message).
        """
        error = None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if "error" in event:
                error = str(event["error"])
            else:
                self.store.update_job(job_id, progress=float(event.get("progress", 0.0)),
                                      message=str(event.get("message", "")), only_if_status=("running",))
        return error

    def _after_stop(self, job_id: str) -> None:
        self.store.update_job(job_id, status="queued", progress=0.0, started=None,
                              message="queued again: the server stopped during the run", only_if_status=("running",))

    def _finish(self, job_id: str, out: Path) -> None:
        try:
            message = json.loads((out / "result.json").read_text()).get("message", "done")
        except (OSError, ValueError):
            message = "done"
        self.store.update_job(job_id, status="done", progress=1.0, message=message, files=result_files(out),
                              finished=time.time(), only_if_status=("running",))


def _kill(proc: subprocess.Popen, *, wait: bool = True) -> None:
    """SIGKILL the child's whole process group (it runs in its own session)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    if wait:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning("worker process %d did not exit after SIGKILL", proc.pid)


if __name__ == "__main__":
    code = child_main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)  # skip the native libraries' teardown (MediaPipe, Blender): the results are written
