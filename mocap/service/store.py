"""The service's state: an SQLite database (WAL mode) and one folder per job.

Layout of a data directory::

    <data_dir>/mocap.db                 API keys (salted hashes only) and jobs
    <data_dir>/jobs/<job_id>/input/     the uploaded files, under names we chose (video_0.mp4 ...)
    <data_dir>/jobs/<job_id>/job.json   what the worker runs (inputs and options)
    <data_dir>/jobs/<job_id>/out/       the results, present only once complete
    <data_dir>/jobs/<job_id>/worker.log the worker's stderr (progress bars, library logs)

Job ids are 32 lowercase hex digits (a random UUID); :meth:`Store.job_dir` refuses
anything else, so a job id from a URL can never name another path. Timestamps are
Unix seconds (UTC). One connection is shared by all threads behind a lock; other
processes (``mocap serve keys create`` while the server runs) are safe through
SQLite's own locking (WAL, 10 s busy timeout).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_KEY_ID = re.compile(r"[0-9a-f]{12}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created REAL NOT NULL,
    revoked REAL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES api_keys(id),
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress REAL NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    message TEXT NOT NULL DEFAULT '',
    options TEXT NOT NULL,
    inputs TEXT NOT NULL,
    files TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_key ON jobs (key_id, created);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created);
"""


def is_job_id(value: str) -> bool:
    """True if ``value`` has the form of a job id (32 lowercase hex digits)."""
    return isinstance(value, str) and _JOB_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class KeyRecord:
    """One API key: its public id and name; the secret is stored only as ``hash`` (salted)."""

    id: str
    name: str
    salt: bytes
    hash: bytes
    created: float
    revoked: float | None


@dataclass(frozen=True)
class JobRecord:
    """One job row. ``inputs``: [{"name": stored file name, "client_name": ..., "kind": ...}]."""

    id: str
    key_id: str
    status: str
    progress: float
    message: str
    options: dict[str, Any]
    inputs: list[dict[str, Any]]
    files: list[str]
    created: float
    started: float | None
    finished: float | None
    attempts: int


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(id=row["id"], key_id=row["key_id"], status=row["status"], progress=float(row["progress"]),
                     message=row["message"], options=json.loads(row["options"]), inputs=json.loads(row["inputs"]),
                     files=json.loads(row["files"]), created=row["created"], started=row["started"],
                     finished=row["finished"], attempts=int(row["attempts"]))


class Store:
    """Keys, jobs and job folders under ``data_dir`` (created, mode 0700, if missing)."""

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.jobs_dir = self.data_dir / "jobs"
        try:
            self.jobs_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.data_dir, 0o700)
        except OSError as e:
            raise ValueError(f"cannot use data directory {self.data_dir}: {e.strerror}; "
                             "pass a writable folder with --data-dir") from None
        self.db_path = self.data_dir / "mocap.db"
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.db_path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        os.chmod(self.db_path, 0o600)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    # -- API keys ------------------------------------------------------------------------

    def add_key(self, key_id: str, name: str, *, salt: bytes, hash: bytes) -> None:
        if not _KEY_ID.fullmatch(key_id):
            raise ValueError(f"bad key id {key_id!r}")
        self._exec("INSERT INTO api_keys (id, name, salt, hash, created) VALUES (?, ?, ?, ?, ?)",
                   (key_id, name, salt, hash, time.time()))

    def get_key(self, key_id: str) -> KeyRecord | None:
        row = self._exec("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return None if row is None else KeyRecord(**dict(row))

    def list_keys(self) -> list[KeyRecord]:
        return [KeyRecord(**dict(r)) for r in self._exec("SELECT * FROM api_keys ORDER BY created").fetchall()]

    def revoke_key(self, key_id: str) -> bool:
        """Mark the key revoked (its jobs stay); False if there is no such active key."""
        cur = self._exec("UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), key_id))
        return cur.rowcount == 1

    # -- jobs ----------------------------------------------------------------------------

    def job_dir(self, job_id: str) -> Path:
        """``<data_dir>/jobs/<job_id>``; ValueError unless ``job_id`` is 32 lowercase hex digits."""
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.jobs_dir / job_id

    def create_job(self, job_id: str, key_id: str, *, options: dict[str, Any], inputs: list[dict[str, Any]]) -> None:
        self.job_dir(job_id)  # validates the id
        self._exec("INSERT INTO jobs (id, key_id, status, message, options, inputs, created) "
                   "VALUES (?, ?, 'queued', 'waiting for a worker', ?, ?, ?)",
                   (job_id, key_id, json.dumps(options), json.dumps(inputs), time.time()))

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._exec("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def list_jobs(self, key_id: str, *, limit: int = 100) -> list[JobRecord]:
        rows = self._exec("SELECT * FROM jobs WHERE key_id = ? ORDER BY created DESC LIMIT ?", (key_id, limit))
        return [_job(r) for r in rows.fetchall()]

    def jobs_with_status(self, *statuses: str) -> list[JobRecord]:
        marks = ", ".join("?" * len(statuses))
        rows = self._exec(f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created", statuses)
        return [_job(r) for r in rows.fetchall()]

    def update_job(self, job_id: str, *, only_if_status: tuple[str, ...] | None = None, **fields: Any) -> bool:
        """Set ``fields`` (status, progress, message, files, started, finished) of a job.

        With ``only_if_status`` the row changes only while its status is one of those
        (e.g. a late progress report cannot undo a cancel). True if a row changed.
        """
        allowed = {"status", "progress", "message", "files", "started", "finished", "attempts"}
        if not fields or not set(fields) <= allowed:
            raise ValueError(f"cannot update job fields {sorted(set(fields) - allowed)}")
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"bad status {fields['status']!r}")
        if "files" in fields:
            fields["files"] = json.dumps(list(fields["files"]))
        if "progress" in fields:
            fields["progress"] = min(1.0, max(0.0, float(fields["progress"])))
        sql = "UPDATE jobs SET " + ", ".join(f"{k} = ?" for k in fields) + " WHERE id = ?"
        params: tuple = (*fields.values(), job_id)
        if only_if_status:
            sql += f" AND status IN ({', '.join('?' * len(only_if_status))})"
            params += tuple(only_if_status)
        return self._exec(sql, params).rowcount == 1

    def claim_job(self, job_id: str) -> bool:
        """queued -> running (started now, attempts + 1); False if the job is no longer queued."""
        cur = self._exec("UPDATE jobs SET status = 'running', started = ?, progress = 0, "
                         "message = 'starting', attempts = attempts + 1 WHERE id = ? AND status = 'queued'",
                         (time.time(), job_id))
        return cur.rowcount == 1

    def requeue_unfinished(self) -> list[str]:
        """Jobs left ``running`` by a stopped server go back to ``queued``; ids of all queued jobs, oldest first."""
        self._exec("UPDATE jobs SET status = 'queued', progress = 0, started = NULL, "
                   "message = 'queued again after a server restart' WHERE status = 'running'")
        return [j.id for j in self.jobs_with_status("queued")]

    def delete_job(self, job_id: str) -> None:
        """Remove the job's row and folder (no error if either is already gone)."""
        self._exec("DELETE FROM jobs WHERE id = ?", (job_id,))
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def purge_finished(self, *, older_than_days: float, now: float | None = None) -> list[str]:
        """Retention: delete finished jobs (done, failed, cancelled) that finished more than
        ``older_than_days`` days ago, rows and files. Returns the deleted ids."""
        if not older_than_days > 0:
            raise ValueError(f"retention must be a positive number of days, got {older_than_days}")
        cutoff = (time.time() if now is None else now) - older_than_days * 86400.0
        rows = self._exec("SELECT id FROM jobs WHERE status IN ('done', 'failed', 'cancelled') "
                          "AND COALESCE(finished, created) < ?", (cutoff,)).fetchall()
        ids = [r["id"] for r in rows]
        for job_id in ids:
            self.delete_job(job_id)
        return ids

    def remove_orphan_dirs(self, *, min_age_s: float = 3600.0) -> list[str]:
        """Delete job folders with no job row (an upload interrupted by a crash), once older than ``min_age_s``."""
        removed = []
        now = time.time()
        for d in self.jobs_dir.iterdir():
            if not is_job_id(d.name) or not d.is_dir() or now - d.stat().st_mtime < min_age_s:
                continue
            if self.get_job(d.name) is None:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d.name)
        return removed
