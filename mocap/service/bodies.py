"""Reading request bodies with a size limit and a read timeout (shared by every upload route).

A client that stops sending part-way must not hold a connection, memory or a job folder
for long: :func:`body_chunks` gives up with 408 when no bytes arrive for ``idle_timeout_s``
seconds, and with 413 as soon as the body passes ``limit`` bytes (or declares more).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request


async def body_chunks(request: Request, *, limit: int, idle_timeout_s: float,
                      too_large: str) -> AsyncIterator[bytes]:
    """The body of ``request`` chunk by chunk.

    Raises:
        HTTPException: 413 (message ``too_large``) if Content-Length or the bytes received pass
            ``limit``; 408 if ``idle_timeout_s`` seconds pass without a byte; 400 if the client
            disconnects part-way.
    """
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise HTTPException(413, too_large)
    stream = request.stream().__aiter__()
    received = 0
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), idle_timeout_s)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise HTTPException(408, f"no body bytes for {idle_timeout_s:g} s: the upload was abandoned") from None
        except ClientDisconnect:
            raise HTTPException(400, "the client disconnected during the upload") from None
        received += len(chunk)
        if received > limit:
            raise HTTPException(413, too_large)
        yield chunk


async def read_body(request: Request, *, limit: int, idle_timeout_s: float, too_large: str) -> bytes:
    """The whole body of ``request`` (see :func:`body_chunks` for the errors)."""
    return b"".join([chunk async for chunk in body_chunks(request, limit=limit, idle_timeout_s=idle_timeout_s,
                                                          too_large=too_large)])
