"""The FastAPI application of ``mocap serve``: batch capture jobs over HTTP.

Every error is JSON ``{"error": "message"}`` with a 4xx/5xx status, FastAPI's own errors
(unknown route, validation) included. Every route needs an API key (see
:mod:`mocap.service.auth`) except ``/health`` and the API description (``/docs``,
``/openapi.json``: public, they hold no data); a key sees only its own jobs (others' are
404). Wrong keys are limited per client address (:class:`mocap.service.auth.FailedAuthGate`).

Uploads are streamed to disk in chunks and stopped with 413 as soon as the body passes
``max_upload_bytes``, with 408 when no byte arrives for ``body_timeout_s`` (the job folder
is removed either way). Client file names are never used as paths: files are stored as
``video_0.mp4``, ``video_1.mov``, ``calibration.toml`` ... from a whitelist of extensions,
and downloads are served only for names in the job's own file listing.

The realtime (``mocap.service.realtime``) and viewer (``mocap.service.viewer``) routers are
included when those modules are installed; they get ``verify_key`` (and ``job_outdir``).
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import mimetypes
import re
import shutil
import threading
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mocap import __version__
from mocap.service.api_docs import error_responses, key_schemes
from mocap.service.auth import FailedAuthGate, KeyVerifier, key_from_headers
from mocap.service.bodies import body_chunks
from mocap.service.store import JobRecord, Store, is_job_id
from mocap.service.worker import WorkerPool, parse_options

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm")
CALIBRATION_SUFFIXES = (".qca.txt", ".toml", ".yml", ".yaml", ".xml", ".qca", ".txt")
MAX_VIDEOS = 16
MAX_FIELD_BYTES = 64 * 1024


@dataclass(frozen=True)
class ServiceConfig:
    """Settings of one service instance.

    Attributes:
        data_dir: folder of the database and the job files.
        workers: jobs run at the same time (each in its own process).
        max_upload_bytes: largest request body of a job submission, bytes.
        max_video_seconds: longest accepted video, seconds.
        rate_limit_per_minute: requests a minute per API key (<= 0: no limit).
        retention_days: finished jobs older than this are deleted (<= 0: kept for ever).
        retention_interval_s: how often the retention runs, seconds (also once at start).
        body_timeout_s: an upload that sends no byte for this long is dropped with 408, seconds.
        failed_auth_per_minute: refused keys a client address may send a minute (also the
            burst) before it gets 429 without a check (<= 0: no limit).
    """

    data_dir: Path
    workers: int = 2
    max_upload_bytes: int = 500 * 1024 * 1024
    max_video_seconds: float = 600.0
    rate_limit_per_minute: float = 600.0
    retention_days: float = 30.0
    retention_interval_s: float = 3600.0
    body_timeout_s: float = 10.0
    failed_auth_per_minute: float = 20.0


class JobOut(BaseModel):
    id: str
    status: str
    progress: float
    message: str
    created: str
    started: str | None
    finished: str | None
    options: dict[str, Any]
    inputs: list[dict[str, Any]]
    files: list[str]


class SubmittedOut(BaseModel):
    id: str
    status: str


# every route's errors; 422 too, as the app's handler answers FastAPI's validation errors as ErrorOut
_ERRORS = error_responses(401, 403, 404, 422, 429)
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["video"], "properties": {
        "video": {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1,
                  "maxItems": MAX_VIDEOS,
                  "description": f"one video (monocular) or several, one per camera ({', '.join(VIDEO_SUFFIXES)})"},
        "calibration": {"type": "string", "format": "binary",
                        "description": "multi-view: camera calibration (.toml, .qca.txt, OpenCV .yml)"},
        "options": {"type": "string", "description": 'JSON object, e.g. {"lifter": "mediapipe", "formats": ["fbx"], '
                                                     '"overlay": false}; see mocap.service.worker.DEFAULT_OPTIONS'},
    }}}}}}


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def _job_json(job: JobRecord) -> dict[str, Any]:
    return {"id": job.id, "status": job.status, "progress": round(job.progress, 4), "message": job.message,
            "created": _iso(job.created), "started": _iso(job.started), "finished": _iso(job.finished),
            "options": job.options, "inputs": [{k: v for k, v in i.items() if k != "name"} for i in job.inputs],
            "files": job.files if job.status == "done" else []}


def _client_name(raw: bytes | None) -> str:
    """A display-only version of a client's file name: its last component, harmless characters."""
    name = (raw or b"").decode("utf-8", errors="replace").replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[^\w.\- ]", "_", name)[:120] or "unnamed"


def _suffix(name: str, allowed: tuple[str, ...]) -> str | None:
    lower = name.lower()
    return next((s for s in allowed if lower.endswith(s)), None)


class _Upload:
    """Streams a multipart/form-data body into ``input_dir`` under names we choose."""

    def __init__(self, input_dir: Path) -> None:
        self.input_dir = input_dir
        self.videos: list[dict[str, Any]] = []
        self.calibration: dict[str, Any] | None = None
        self.options_text: str | None = None
        self.complete = False
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value = b"", b""
        self._file = None
        self._text: bytearray | None = None

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done, "on_part_data": self._data,
                "on_part_end": self._end, "on_end": self._finish}

    def _begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field, self._value = b"", b""

    def _headers_done(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        field = params.get(b"name", b"").decode("utf-8", errors="replace")
        filename = params.get(b"filename")
        if field == "options" and filename is None:
            self._text = bytearray()
            return
        if field not in ("video", "calibration") or filename is None:
            raise HTTPException(422, f"unexpected form field {field[:40]!r}: send one or more `video` files, "
                                     "an optional `calibration` file and an optional `options` JSON string")
        client = _client_name(filename)
        if field == "video":
            suffix = _suffix(client, VIDEO_SUFFIXES)
            if suffix is None:
                raise HTTPException(415, f"video {client!r} is not a supported video file: use one of "
                                         f"{', '.join(VIDEO_SUFFIXES)}")
            if len(self.videos) >= MAX_VIDEOS:
                raise HTTPException(422, f"at most {MAX_VIDEOS} videos per job")
            entry = {"name": f"video_{len(self.videos)}{suffix}", "client_name": client, "kind": "video"}
            self.videos.append(entry)
        else:
            suffix = _suffix(client, CALIBRATION_SUFFIXES)
            if suffix is None:
                raise HTTPException(415, f"calibration {client!r}: use a .toml, .qca.txt, .yml/.yaml or .xml file")
            if self.calibration is not None:
                raise HTTPException(422, "send at most one calibration file")
            entry = self.calibration = {"name": f"calibration{suffix}", "client_name": client, "kind": "calibration"}
        self._file = open(self.input_dir / entry["name"], "xb")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._file.write(data[start:end])
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise HTTPException(413, f"the options field is over {MAX_FIELD_BYTES // 1024} KiB")

    def _end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._text is not None:
            self.options_text = self._text.decode("utf-8", errors="replace")
            self._text = None

    def _finish(self) -> None:
        self.complete = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def _receive(request: Request, input_dir: Path, limit: int, idle_timeout_s: float) -> _Upload:
    """Parse the multipart body into ``input_dir``; 413 as soon as it passes ``limit`` bytes,
    408 when no byte arrives for ``idle_timeout_s`` seconds."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise HTTPException(415, "send the job as multipart/form-data: one or more `video` files, "
                                 "an optional `calibration` file and an optional `options` JSON string")
    upload = _Upload(input_dir)
    try:
        parser = MultipartParser(params[b"boundary"], upload.callbacks())  # refuses a boundary over 256 bytes
        async for chunk in body_chunks(request, limit=limit, idle_timeout_s=idle_timeout_s,
                                       too_large=f"upload too large: the limit is {limit / 1e6:g} MB "
                                                 "(server option --max-upload-mb)"):
            parser.write(chunk)
        parser.finalize()
    except FormParserError as e:
        raise HTTPException(400, f"malformed multipart body: {str(e)[:200]}") from None
    finally:
        upload.close()
    if not upload.complete:
        raise HTTPException(400, "incomplete multipart body (the upload was cut short)")
    return upload


def _check_video(path: Path, entry: dict[str, Any], max_seconds: float) -> None:
    """415 unless ``path`` decodes as a video (first frame read); 413 if it is too long."""
    from mocap.errors import MocapError
    from mocap.io.video import probe_video

    try:
        info = probe_video(path)
    except MocapError:
        raise HTTPException(415, f"{entry['client_name']!r} is not a video OpenCV can decode (not a video, "
                                 "corrupt or truncated, or an unsupported codec); convert it to H.264 mp4") from None
    if info.duration_s > max_seconds:
        raise HTTPException(413, f"{entry['client_name']!r} is {info.duration_s:.0f} s long; the limit is "
                                 f"{max_seconds:g} s (server option --max-video-seconds): cut it shorter")
    entry.update(frames=info.frame_count, fps=round(info.fps, 3), size=[info.width, info.height])


def _check_calibration(path: Path, entry: dict[str, Any], num_videos: int) -> None:
    from mocap.io.calibration_files import load_calibration
    from mocap.errors import MocapError

    try:
        cameras = load_calibration(path)
    except MocapError as e:
        message = str(e).replace(str(path), entry["client_name"])
        raise HTTPException(422, f"calibration {entry['client_name']!r} cannot be read: {message}") from None
    if len(cameras) != num_videos:
        raise HTTPException(422, f"the calibration has {len(cameras)} cameras but {num_videos} videos were sent; "
                                 "send one video per calibrated camera, in the calibration's order")


class _Retention(threading.Thread):
    """Deletes old finished jobs at start, then every ``interval_s`` seconds."""

    def __init__(self, store: Store, days: float, interval_s: float) -> None:
        super().__init__(name="mocap-retention", daemon=True)
        self.store, self.days, self.interval_s = store, days, interval_s
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.days > 0:
                self.store.purge_finished(older_than_days=self.days)
            self.store.remove_orphan_dirs()
            self.stop.wait(self.interval_s)


def create_app(config: ServiceConfig) -> FastAPI:
    """The service's FastAPI application for ``config`` (state in ``config.data_dir``)."""
    store = Store(config.data_dir)
    pool = WorkerPool(store, workers=config.workers)
    verify_key = KeyVerifier(store, rate_limit_per_minute=config.rate_limit_per_minute)
    retention = _Retention(store, config.retention_days, config.retention_interval_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool.start()
        retention.start()
        yield
        retention.stop.set()
        await run_in_threadpool(pool.stop)

    app = FastAPI(title="mocap-lift service", version=__version__, lifespan=lifespan,
                  description="Markerless motion capture jobs: upload videos, poll the job, download "
                              "motion.npz / motion.bvh (and FBX / GLB). Send your API key in the X-API-Key "
                              "header or as `Authorization: Bearer <key>`. Errors are `{\"error\": message}`.")
    app.state.config, app.state.store, app.state.pool = config, store, pool
    app.state.verify_key = verify_key
    app.add_middleware(FailedAuthGate, verifier=verify_key, per_minute=config.failed_auth_per_minute)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
        return JSONResponse({"error": "invalid request: " + "; ".join(parts)}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "internal server error; the server log has details"}, status_code=500)

    api_key, bearer = key_schemes()

    def require_key(request: Request, _key: str | None = Security(api_key), _bearer: Any = Security(bearer)) -> str:
        return verify_key(key_from_headers(request.headers))

    def own_job(job_id: str, key_id: str) -> JobRecord:
        job = store.get_job(job_id) if is_job_id(job_id) else None
        if job is None or job.key_id != key_id:
            raise HTTPException(404, f"no job {job_id[:40]!r} for this API key")
        return job

    def job_outdir(job_id: str, key_id: str) -> Path:
        """The ``out/`` folder of a finished job of ``key_id``; 404 if not theirs, 409 if not done."""
        job = own_job(job_id, key_id)
        if job.status != "done":
            raise HTTPException(409, f"job {job_id} is {job.status}, not done: its results are not ready")
        return store.job_dir(job_id) / "out"

    app.state.job_outdir = job_outdir

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness check (no key needed)."""
        return {"status": "ok", "version": __version__}

    @app.post("/v1/jobs", status_code=201, response_model=SubmittedOut, tags=["jobs"], openapi_extra=_UPLOAD_BODY,
              responses={**_ERRORS, **error_responses(400, 408, 413, 415)})
    async def submit_job(request: Request, key_id: str = Depends(require_key)) -> JSONResponse:
        """Submit videos (and a calibration for several views); the job is queued."""
        job_id = uuid.uuid4().hex
        job_dir = store.job_dir(job_id)
        (job_dir / "input").mkdir(parents=True)
        try:
            upload = await _receive(request, job_dir / "input", config.max_upload_bytes, config.body_timeout_s)
            try:
                options = parse_options(upload.options_text)
            except ValueError as e:
                raise HTTPException(422, str(e)) from None
            if not upload.videos:
                raise HTTPException(422, "send at least one `video` file")
            several = len(upload.videos) > 1
            if several and upload.calibration is None and options["calibration"] != "auto":
                raise HTTPException(422, f"{len(upload.videos)} videos need a `calibration` file (.toml, .qca.txt, "
                                         'OpenCV .yml), or options {"calibration": "auto", "body_height_m": 1.75}')
            if not several and (upload.calibration is not None or options["calibration"] == "auto"):
                raise HTTPException(422, "a calibration is for several views: send two or more videos")
            for entry in upload.videos:
                await run_in_threadpool(_check_video, job_dir / "input" / entry["name"], entry,
                                        config.max_video_seconds)
            if upload.calibration is not None:
                await run_in_threadpool(_check_calibration, job_dir / "input" / upload.calibration["name"],
                                        upload.calibration, len(upload.videos))
            spec = {"videos": [v["name"] for v in upload.videos], "options": options,
                    "calibration": upload.calibration["name"] if upload.calibration else None}
            (job_dir / "job.json").write_text(json.dumps(spec, indent=1))
            inputs = upload.videos + ([upload.calibration] if upload.calibration else [])
            store.create_job(job_id, key_id, options=options, inputs=inputs)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        pool.submit(job_id)
        return JSONResponse({"id": job_id, "status": "queued"}, status_code=201,
                            headers={"Location": f"/v1/jobs/{job_id}"})

    @app.get("/v1/jobs", response_model=list[JobOut], tags=["jobs"], responses=_ERRORS)
    def list_jobs(limit: int = Query(100, ge=1, le=1000), key_id: str = Depends(require_key)) -> list[dict]:
        """This key's jobs, newest first."""
        return [_job_json(j) for j in store.list_jobs(key_id, limit=limit)]

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, tags=["jobs"], responses=_ERRORS)
    def get_job(job_id: str, key_id: str = Depends(require_key)) -> dict:
        """Status, progress (0..1), message and, once done, the result files."""
        return _job_json(own_job(job_id, key_id))

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"],
              responses={**_ERRORS, **error_responses(409)})
    def cancel_job(job_id: str, key_id: str = Depends(require_key)) -> dict:
        """Cancel a queued or running job (its worker process is killed)."""
        job = own_job(job_id, key_id)
        if not pool.cancel(job_id):
            raise HTTPException(409, f"job {job_id} is already {job.status}")
        return _job_json(own_job(job_id, key_id))

    @app.delete("/v1/jobs/{job_id}", tags=["jobs"], responses=_ERRORS)
    def delete_job(job_id: str, key_id: str = Depends(require_key)) -> dict:
        """Delete a job and its files (a running job is cancelled first)."""
        own_job(job_id, key_id)
        pool.cancel(job_id)
        store.delete_job(job_id)
        return {"id": job_id, "deleted": True}

    @app.get("/v1/jobs/{job_id}/files/{name}", tags=["jobs"], response_class=FileResponse,
             responses={**_ERRORS, **error_responses(409)})
    def download(job_id: str, name: str, key_id: str = Depends(require_key)) -> FileResponse:
        """Download one of the files listed for a finished job."""
        out = job_outdir(job_id, key_id)
        files = own_job(job_id, key_id).files
        if name not in files:
            raise HTTPException(404, f"no file {name[:80]!r} in job {job_id}; its files are: {', '.join(files)}")
        path = out / name
        if path.parent.resolve() != out.resolve() or not path.is_file():
            raise HTTPException(404, f"file {name!r} of job {job_id} is gone")
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, filename=name, headers={"X-Content-Type-Options": "nosniff"})

    for module, args, kwargs in (("mocap.service.realtime", (verify_key,), {"body_timeout_s": config.body_timeout_s}),
                                 ("mocap.service.viewer", (verify_key, job_outdir), {})):
        if importlib.util.find_spec(module) is not None:
            app.include_router(importlib.import_module(module).make_router(*args, **kwargs))
    return app
