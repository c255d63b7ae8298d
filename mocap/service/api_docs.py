"""The OpenAPI description shared by the service's routers: the error body and the key schemes.

Every error of the service is JSON ``{"error": message}`` (:class:`ErrorOut`), FastAPI's
validation errors included (the app's handler rewrites them), so each route documents its
4xx statuses with that body (:func:`error_responses`) rather than FastAPI's default
``HTTPValidationError``. Routes that need a key declare the two ways of sending it
(:func:`key_schemes`: ``X-API-Key`` and ``Authorization: Bearer``, what
:func:`mocap.service.auth.key_from_headers` reads); the schemes only describe, the routes
check the key themselves (401 / 403 / 429).

``tests/test_service_schema.py`` fuzzes the routes against this description.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorOut(BaseModel):
    error: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for FastAPI: each status in ``codes`` answers :class:`ErrorOut`."""
    return {code: {"model": ErrorOut} for code in codes}


def key_schemes() -> tuple[Any, Any]:
    """The security schemes of the API key, for ``Security(...)``: (X-API-Key header, bearer token).

    Neither raises (``auto_error=False``): they put the key's two forms in the schema.
    """
    from fastapi.security import APIKeyHeader, HTTPBearer

    return (APIKeyHeader(name="X-API-Key", auto_error=False, description="your API key"),
            HTTPBearer(auto_error=False, description="your API key as a bearer token"))
