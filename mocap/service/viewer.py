"""Browser viewer for finished capture jobs: the 3D skeleton beside the overlay video.

Routes (see :func:`make_router`):

``GET /viewer/{job_id}``
    The viewer page (public: the page itself holds no data). It reads the API key from the
    URL fragment ``#key=...`` (never sent to the server) or asks for it, keeps it in
    ``sessionStorage`` and sends it as the ``X-API-Key`` header on the two calls below.
``GET /viewer/static/{name}``
    The page's script and style sheet; only the names in :data:`STATIC_FILES`.
``GET /v1/jobs/{job_id}/skeleton``
    JSON from the job's ``motion.npz`` (:func:`skeleton_payload`); key needed (``X-API-Key``
    header, or ``Authorization: Bearer KEY`` as elsewhere in the service).
``GET /v1/jobs/{job_id}/overlay``
    The job's ``overlay.mp4``; key needed. The page fetches it with the key header and
    plays it from a blob URL, as a ``<video>`` tag cannot send headers.

Errors are JSON ``{"error": message}`` with the HTTP status. The page draws the skeleton
on a 2D canvas with its own small perspective camera (no external library, no CDN).

FastAPI is imported inside :func:`make_router`, so importing this module stays light.
"""
# No ``from __future__ import annotations``: FastAPI reads the route functions' annotations,
# and ``Request`` is imported inside make_router.
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from mocap.errors import MocapError
from mocap.formats import Motion, load_motion

if TYPE_CHECKING:
    from fastapi import APIRouter

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: The files ``/viewer/static/{name}`` may serve, with their media types. A request names a
#: key of this table; it is never joined onto a path.
STATIC_FILES: dict[str, str] = {
    "viewer.js": "text/javascript; charset=utf-8",
    "viewer.css": "text/css; charset=utf-8",
}
PAGE_FILE = "viewer.html"
MOTION_FILE = "motion.npz"
OVERLAY_FILE = "overlay.mp4"
WEB_OVERLAY_FILE = "overlay.webm"  # browser-playable copy (VP8), preferred when present

#: Headers for the page: scripts, styles and fetches only from this server, the video from
#: a blob URL; no referrer is sent anywhere.
PAGE_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "connect-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:; "
                                "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
#: Headers for the key-protected answers: never kept by a shared cache.
PRIVATE_HEADERS = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


#: The JSON schema of :func:`skeleton_payload`'s answer (the OpenAPI description of the route).
SKELETON_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["fps", "joint_names", "parents", "frames", "positions", "has_overlay"],
    "properties": {
        "fps": {"type": "number"}, "joint_names": {"type": "array", "items": {"type": "string"}},
        "parents": {"type": "array", "items": {"type": "integer"}}, "frames": {"type": "integer"},
        "positions": {"type": "array", "items": {"type": "array", "items": {
            "type": "array", "items": {"type": ["number", "null"]}, "minItems": 3, "maxItems": 3}}},
        "has_overlay": {"type": "boolean"},
    }}


def skeleton_payload(motion: Motion, *, has_overlay: bool = False) -> dict[str, Any]:
    """The JSON the viewer page draws, from one motion.

    Args:
        motion: joints (T, J, 3) float metres, right-handed, +Y up; names and parents (J,).
        has_overlay: whether the job has an overlay video to play beside the skeleton.

    Returns:
        ``{"fps": float, "joint_names": [J str], "parents": [J int], "frames": T,
        "positions": T x J x 3 metres rounded to the millimetre (``None`` where a joint is
        missing, as JSON has no NaN), "has_overlay": bool}``.
    """
    joints = np.round(np.asarray(motion.joints, dtype=np.float64), 3)
    positions = joints.tolist()
    if not np.isfinite(joints).all():
        positions = [[[v if math.isfinite(v) else None for v in joint] for joint in frame] for frame in positions]
    return {
        "fps": float(motion.fps),
        "joint_names": list(motion.joint_names),
        "parents": [int(p) for p in motion.parents],
        "frames": int(motion.num_frames),
        "positions": positions,
        "has_overlay": bool(has_overlay),
    }


def _read_static(name: str) -> bytes:
    path = STATIC_DIR / name
    if not path.is_file():
        raise MocapError(f"viewer file {path} is missing from the installation; reinstall mocap-lift "
                         "(its package data must include mocap/service/static/*)")
    return path.read_bytes()


def _request_key(headers: Any) -> str | None:
    """The API key from ``X-API-Key`` (what the page sends) or ``Authorization: Bearer ...``."""
    key = (headers.get("x-api-key") or "").strip()
    if key:
        return key
    scheme, _, value = (headers.get("authorization") or "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def make_router(verify_key: Callable[[str | None], str],
                job_outdir: Callable[[str, str], Path]) -> "APIRouter":
    """The viewer's routes (see the module docstring), for ``app.include_router``.

    Args:
        verify_key: ``verify_key(key or None) -> key id``; raises ``fastapi.HTTPException``
            (401 no key, 403 bad key, 429 too many requests).
        job_outdir: ``job_outdir(job_id, key_id) -> Path`` of a finished job's result folder
            (holding motion.npz and, when made, overlay.mp4); raises ``HTTPException`` 404
            (no such job for this key) or 409 (not finished).
    """
    from fastapi import APIRouter, HTTPException, Request, Security
    from fastapi.responses import FileResponse, JSONResponse, Response

    from mocap.service.api_docs import error_responses, key_schemes

    router = APIRouter()
    key_security = [Security(scheme) for scheme in key_schemes()]  # described only: result_dir reads the key
    errors = error_responses(401, 403, 404, 409, 422, 429)

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def result_dir(request: Request, job_id: str) -> Path | JSONResponse:
        """The job's result folder, or the JSON error to send back."""
        try:
            key_id = verify_key(_request_key(request.headers))
            return Path(job_outdir(job_id, key_id))
        except HTTPException as e:
            message = e.detail if isinstance(e.detail, str) else str(e.detail)
            return error(e.status_code, message, dict(e.headers or {}))

    @router.get("/viewer/static/{name}", include_in_schema=False)
    def viewer_static(name: str) -> Response:
        media_type = STATIC_FILES.get(name)
        if media_type is None:
            return error(404, f"no viewer file {name!r}; the viewer serves {', '.join(STATIC_FILES)}")
        return Response(_read_static(name), media_type=media_type, headers={"Cache-Control": "no-cache"})

    @router.get("/viewer/{job_id}", include_in_schema=False)
    def viewer_page(job_id: str) -> Response:
        # The page finds the job id in its own URL: nothing from the request goes into the HTML.
        return Response(_read_static(PAGE_FILE), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @router.get("/v1/jobs/{job_id}/skeleton", dependencies=key_security,
                responses={200: {"content": {"application/json": {"schema": SKELETON_SCHEMA}}},
                           **errors, **error_responses(500)})
    def job_skeleton(job_id: str, request: Request) -> Response:
        """The job's 3D skeleton as JSON (X-API-Key header needed)."""
        folder = result_dir(request, job_id)
        if isinstance(folder, JSONResponse):
            return folder
        path = folder / MOTION_FILE
        if not path.is_file():
            return error(404, f"job {job_id} has no {MOTION_FILE}; it finished without a 3D result")
        try:
            motion = load_motion(path)
        except MocapError as e:
            return error(500, f"job {job_id}: cannot read its motion: {e}")
        has_overlay = (folder / WEB_OVERLAY_FILE).is_file() or (folder / OVERLAY_FILE).is_file()
        payload = skeleton_payload(motion, has_overlay=has_overlay)
        return JSONResponse(payload, headers=PRIVATE_HEADERS)

    @router.get("/v1/jobs/{job_id}/overlay", dependencies=key_security, response_class=FileResponse,
                responses={200: {"content": {media: {"schema": {"type": "string", "format": "binary"}}
                                             for media in ("video/webm", "video/mp4")}}, **errors})
    def job_overlay(job_id: str, request: Request) -> Response:
        """The job's overlay video, video/mp4 (X-API-Key header needed)."""
        folder = result_dir(request, job_id)
        if isinstance(folder, JSONResponse):
            return folder
        web = folder / WEB_OVERLAY_FILE
        if web.is_file():
            return FileResponse(web, media_type="video/webm", headers=PRIVATE_HEADERS)
        path = folder / OVERLAY_FILE
        if not path.is_file():
            return error(404, f"job {job_id} has no {OVERLAY_FILE}; submit it with the overlay video turned on")
        return FileResponse(path, media_type="video/mp4", headers=PRIVATE_HEADERS)

    return router
