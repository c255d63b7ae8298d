# SPDX-License-Identifier: GPL-3.0-or-later
"""Run ``mocap capture`` outside Blender's process and follow it (no bpy here).

:class:`CaptureJob` starts the configured ``mocap`` executable as a subprocess; threads
only read its output pipes into a queue, and :meth:`CaptureJob.poll` (called from the
operator's modal timer, in Blender's main thread) turns what arrived into a progress
fraction, a status line and, when it fails, the pipeline's own one-line error.
"""
from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from .core.errors import MocapError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
_BAR = re.compile(r"^(?P<desc>.*?):\s*\d+%\|.*?\|\s*(?P<n>\d+)/(?P<total>\d+)")
_NOISE = re.compile(r"^([IWEF]\d{4} |INFO:|WARNING: All log messages|\S+: +\d+%\|)")
_DETECT_SHARE = 0.9  # of the progress bar: the 2D detection; the rest: lifting, clean-up, files
#: the pipeline's flags -> the names of the panel's fields, for its messages in the report area
PANEL_NAMES = {"--height": "Body Height", "--body-height": "Body Height", "--calibration": "Calibration",
               "--output": "Output", "-o": "Output"}
_OPTION = re.compile(r"\b\w+ \((--[\w-]+)\)")  # "height_m (--height)": the option's field and its flag
_PASS = re.compile(r"\b(?:pass|give|add) (--[\w-]+)(?: [A-Z]+\b)?")  # "pass --body-height METRES"
_FLAG = re.compile(r"(?<![\w-])(--[\w-]+)")


def plain_words(message: str) -> str:
    """The pipeline's one-line error with its command-line flags named as the panel names them:
    ``height_m (--height) must be ...`` -> ``Body Height must be ...``, ``pass --body-height
    METRES`` -> ``set Body Height``; flags the panel does not show are left as they are."""
    def name(flag: str, default: str) -> str:
        return PANEL_NAMES.get(flag, default)

    message = _OPTION.sub(lambda m: name(m[1], m[0]), message)
    message = _PASS.sub(lambda m: f"set {PANEL_NAMES[m[1]]}" if m[1] in PANEL_NAMES else m[0], message)
    return _FLAG.sub(lambda m: name(m[1], m[1]), message)


def find_executable(configured: str = "") -> str:
    """The ``mocap`` command to run: the configured path, else ``mocap`` on PATH."""
    if configured:
        path = Path(os.path.expanduser(configured))
        if path.is_dir():
            raise MocapError(f"the mocap executable is set to a folder ({path}); point it at the 'mocap' file "
                             "inside it, e.g. .venv/bin/mocap (Preferences > Add-ons > Mocap Lift)")
        if not path.is_file():
            raise MocapError(f"the mocap executable {path} does not exist; fix its path in "
                             "Preferences > Add-ons > Mocap Lift (e.g. /path/to/.venv/bin/mocap)")
        if not os.access(path, os.X_OK):
            raise MocapError(f"{path} is not executable; point Preferences > Add-ons > Mocap Lift at the 'mocap' command")
        return str(path)
    found = shutil.which("mocap")
    if found is None:
        raise MocapError("no mocap executable configured and none on PATH: install mocap-lift "
                         "(pip install 'mocap-lift[all]') and set its path in Preferences > Add-ons > Mocap Lift")
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)  # Blender's own Python must not leak into the pipeline's
    env["PYTHONUNBUFFERED"] = "1"
    return env


def check_executable(configured: str = "", timeout_s: float = 60.0) -> str:
    """Run ``mocap --version``; return its answer (``"mocap-lift 0.1.0 at PATH"``) or raise MocapError."""
    exe = find_executable(configured)
    try:
        done = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=timeout_s, env=_env())
    except subprocess.TimeoutExpired:
        raise MocapError(f"{exe} --version did not answer within {timeout_s:.0f} s") from None
    except OSError as e:
        raise MocapError(f"cannot run {exe}: {e.strerror or e}") from None
    answer = (done.stdout.strip() or done.stderr.strip()).splitlines()
    if done.returncode != 0 or not answer or "mocap-lift" not in answer[-1]:
        last = answer[-1] if answer else "no output"
        raise MocapError(f"{exe} is not a working mocap-lift command (exit status {done.returncode}: {last})")
    return f"{answer[-1]} at {exe}"


class CaptureJob:
    """``mocap capture VIDEO... -o OUTPUT`` as a subprocess.

    Attributes after :meth:`poll`: ``state`` ("running", "done", "failed", "cancelled"),
    ``progress`` in [0, 1], ``status`` (a short line for the panel), ``error`` (the
    pipeline's message in plain words, when it failed).
    """

    def __init__(self, executable: str, videos: Sequence[str | os.PathLike], output_dir: str | os.PathLike | None = None,
                 *, calibration: str | os.PathLike | None = None, body_height_m: float | None = None,
                 extra_args: Sequence[str] = ()):
        """``body_height_m``: the person's standing height (None or 0: not known), which sets the
        body's size of one video's capture (``--height``) and the scale of several calibrated
        from the person (``--body-height``)."""
        self.videos = [Path(v) for v in videos]
        if not self.videos:
            raise MocapError("choose at least one video")
        for v in self.videos:
            if not v.is_file():
                raise MocapError(f"video not found: {v}")
            if v.suffix.lower() not in VIDEO_SUFFIXES:
                raise MocapError(f"{v.name} is not a video ({', '.join(VIDEO_SUFFIXES)})")
        if len(self.videos) > 1 and not calibration:
            raise MocapError(f"{len(self.videos)} videos need a calibration file (or 'auto') for multi-view capture")
        if str(calibration or "") == "auto" and not (body_height_m and body_height_m > 0):
            raise MocapError("calibration 'auto' needs the person's body height (metres) for the scale")
        self.executable = executable
        self.output_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="mocap_capture_"))
        args = [executable, "capture", *map(str, self.videos), "-o", str(self.output_dir), "--no-overlay", "--no-preview"]
        if calibration:
            args += ["--calibration", str(calibration)]
        if body_height_m and body_height_m > 0:
            args += ["--height" if len(self.videos) == 1 else "--body-height", f"{body_height_m:.3f}"]
        self.args = args + list(extra_args)
        self.state = "new"
        self.progress = 0.0
        self.status = ""
        self.error = ""
        self._proc: subprocess.Popen | None = None
        self._lines: queue.Queue = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=40)
        self._bars: dict[str, tuple[int, int]] = {}
        self._readers: list[threading.Thread] = []

    @property
    def motion_path(self) -> Path:
        return self.output_dir / "motion.npz"

    def start(self) -> None:
        """Start the subprocess; MocapError when it cannot be started."""
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MocapError(f"cannot create the output folder {self.output_dir}: {e.strerror or e}") from None
        try:
            self._proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          stdin=subprocess.DEVNULL, env=_env())
        except OSError as e:
            raise MocapError(f"cannot run {self.executable}: {e.strerror or e}") from None
        self._readers = [threading.Thread(target=self._read, args=(pipe, name), daemon=True)
                         for pipe, name in ((self._proc.stdout, "out"), (self._proc.stderr, "err"))]
        for reader in self._readers:
            reader.start()
        self.state, self.status = "running", "starting the pipeline"

    def _read(self, pipe, name: str) -> None:
        buffer = b""
        while chunk := pipe.read1(4096):
            buffer += chunk
            *lines, buffer = re.split(rb"[\r\n]", buffer)
            for line in lines:
                if line.strip():
                    self._lines.put((name, line.decode("utf-8", "replace").strip()))
        if buffer.strip():
            self._lines.put((name, buffer.decode("utf-8", "replace").strip()))
        pipe.close()

    def _take_lines(self) -> None:
        while True:
            try:
                name, line = self._lines.get_nowait()
            except queue.Empty:
                break
            if name == "err":
                self._stderr.append(line)
            bar = _BAR.match(line)
            if bar:
                self._bars[bar["desc"]] = (int(bar["n"]), int(bar["total"]))
                n, total = self._bars[bar["desc"]]
                self.status = f"detecting people in {bar['desc']}: frame {n} of {total}"
            elif line.startswith("mocap: error:"):
                self.error = plain_words(line[len("mocap: error:"):].strip())
        if self._bars:
            done = sum(n for n, _ in self._bars.values())
            total = sum(t for _, t in self._bars.values()) * max(1, len(self.videos)) / len(self._bars)
            self.progress = _DETECT_SHARE * min(1.0, done / max(total, 1))
            if self.progress >= _DETECT_SHARE - 1e-9:
                self.status = "lifting to 3D, cleaning up, solving joint rotations"

    def poll(self) -> str:
        """Read what the pipeline wrote since the last call; return the new ``state``."""
        if self.state != "running":
            return self.state
        self._take_lines()
        rc = self._proc.poll()
        if rc is None:
            return self.state
        self._proc.wait()
        for reader in self._readers:  # the last lines (the error) may still be in the pipes
            reader.join(timeout=5.0)
        self._take_lines()
        if rc == 0 and self.motion_path.is_file():
            self.state, self.progress, self.status = "done", 1.0, "done"
        else:
            self.state = "failed"
            if not self.error:
                useful = [ln for ln in self._stderr if not _NOISE.match(ln)]
                last = useful[-1] if useful else "no message"
                self.error = (f"the mocap pipeline stopped (exit status {rc}): {last}" if rc != 0 else
                              f"the mocap pipeline wrote no {self.motion_path.name} in {self.output_dir}")
            self.status = "failed"
        return self.state

    def cancel(self) -> None:
        """Stop the pipeline (terminate, then kill after 3 s)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self.state in ("new", "running"):
            self.state, self.status = "cancelled", "cancelled"


_ACTIVE: CaptureJob | None = None  # one capture at a time (the operator's)


def active_job() -> CaptureJob | None:
    return _ACTIVE if _ACTIVE is not None and _ACTIVE.state == "running" else None


def set_active_job(job: CaptureJob | None) -> None:
    global _ACTIVE
    _ACTIVE = job


def cancel_active_job() -> None:
    """Stop a running capture (on cancel, and when the add-on is disabled)."""
    if _ACTIVE is not None:
        _ACTIVE.cancel()
