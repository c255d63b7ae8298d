"""Safe look inside an ``.npz`` before loading it: array headers without the array data.

An ``.npz`` is a zip of ``.npy`` members. :func:`numpy.load` allocates each array from the
shape its header declares before reading a byte of data, and a few MB of compressed zeros
can declare gigabytes. :func:`read_npz_headers` reads only each member's header (the
first few hundred decompressed bytes) and the zip's directory; :func:`check_npz` then
refuses absurd shapes, sizes and frame counts with a :class:`mocap.errors.MocapError`
that says what is wrong, before anything is allocated.

Pure: a path, bytes or a binary file in, headers out; nothing is written.
"""
from __future__ import annotations

import ast
import io
import os
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mocap.errors import MocapError

#: most members an npz may hold (keypoints and motion files hold fewer than 10)
MAX_ARRAYS = 64
#: most dimensions of one array
MAX_NDIM = 8
#: largest one array may be once loaded, bytes (a 10-minute 60 fps mediapipe33 clip
#: with world landmarks is ~28 MB)
MAX_ARRAY_BYTES = 512 * 1024 * 1024
_MAX_HEADER_BYTES = 64 * 1024  # numpy writes headers of 128 bytes or a little more


@dataclass(frozen=True)
class ArrayHeader:
    """What one ``.npy`` member of an npz declares.

    Attributes:
        name: the array's name (member name without ``.npy``).
        shape: declared shape.
        dtype: declared dtype.
        fortran_order: declared memory order.
        nbytes: bytes the array would take once loaded (product of shape x itemsize).
        header_bytes: length of the member's ``.npy`` header.
        stored_bytes: the member's decompressed size in the zip directory, header included.
    """

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    nbytes: int
    header_bytes: int
    stored_bytes: int


def _source(source: str | os.PathLike | bytes | bytearray | memoryview | io.IOBase):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return source


def _parse_header(raw: bytes, name: str) -> tuple[dict, int]:
    """Raw start of an ``.npy`` member -> (header dict, header length in bytes)."""
    if len(raw) < 10 or raw[:6] != b"\x93NUMPY":
        raise MocapError(f"array {name!r} is not a .npy array (bad magic)")
    major = raw[6]
    if major == 1:
        length, start = int.from_bytes(raw[8:10], "little"), 10
    elif major in (2, 3):
        if len(raw) < 12:
            raise MocapError(f"array {name!r} has a truncated header")
        length, start = int.from_bytes(raw[8:12], "little"), 12
    else:
        raise MocapError(f"array {name!r} uses .npy format version {major}, which is not supported")
    if length > _MAX_HEADER_BYTES:
        raise MocapError(f"array {name!r} declares a header of {length} bytes; a .npy header is a few hundred")
    if len(raw) < start + length:
        raise MocapError(f"array {name!r} has a truncated header")
    text = raw[start:start + length].decode("utf-8" if major == 3 else "latin1", errors="replace")
    try:
        header = ast.literal_eval(text)  # a dict of literals only, as numpy itself parses it
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        raise MocapError(f"array {name!r} has an unreadable header") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise MocapError(f"array {name!r} has a malformed header (expected descr, fortran_order and shape)")
    return header, start + length


def _header(name: str, header: dict, header_len: int, stored: int) -> ArrayHeader:
    shape = header["shape"]
    if (not isinstance(shape, tuple) or len(shape) > MAX_NDIM
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2 ** 62 for n in shape)):
        raise MocapError(f"array {name!r} declares an invalid shape {str(shape)[:80]}")
    if not isinstance(header["fortran_order"], bool):
        raise MocapError(f"array {name!r} has a malformed header (fortran_order)")
    try:
        dtype = np.dtype(header["descr"]) if isinstance(header["descr"], str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise MocapError(f"array {name!r} has an unsupported dtype {str(header['descr'])[:40]!r} "
                         "(numbers and strings only)")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    return ArrayHeader(name=name, shape=shape, dtype=dtype, fortran_order=header["fortran_order"],
                       nbytes=nbytes, header_bytes=header_len, stored_bytes=stored)


def read_npz_headers(source, *, max_arrays: int = MAX_ARRAYS) -> dict[str, ArrayHeader]:
    """The declared header of every array in an npz, without reading array data.

    Args:
        source: path, bytes, or a seekable binary file of an ``.npz``.
        max_arrays: most members accepted.

    Returns:
        {name: ArrayHeader}, in the zip's order.

    Raises:
        MocapError: not a zip, too many members, a member that is not ``.npy``, a bad header.
    """
    try:
        with zipfile.ZipFile(_source(source)) as z:
            infos = z.infolist()
            if len(infos) > max_arrays:
                raise MocapError(f"the npz holds {len(infos)} arrays; at most {max_arrays} are accepted")
            headers: dict[str, ArrayHeader] = {}
            for info in infos:
                if not info.filename.endswith(".npy") or info.is_dir():
                    raise MocapError(f"the npz holds {info.filename[:60]!r}, which is not a .npy array")
                name = info.filename[:-4]
                if name in headers:
                    raise MocapError(f"the npz holds array {name[:60]!r} twice")
                with z.open(info) as member:  # decompresses only what read() asks for
                    raw = member.read(12)
                    if len(raw) >= 12:
                        wide = raw[6] in (2, 3)
                        length = int.from_bytes(raw[8:12] if wide else raw[8:10], "little")
                        raw += member.read(min(length, _MAX_HEADER_BYTES + 1) - (0 if wide else 2))
                header, header_len = _parse_header(raw, name)
                headers[name] = _header(name, header, header_len, info.file_size)
            return headers
    except MocapError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
            zlib.error) as e:
        raise MocapError(f"not a readable .npz file ({e.__class__.__name__}: {str(e)[:120]})") from None


def check_npz(source, *, max_frames: int | None = None, frame_arrays: Iterable[str] = (),
              max_array_bytes: int = MAX_ARRAY_BYTES, max_total_bytes: int | None = None,
              max_arrays: int = MAX_ARRAYS) -> dict[str, ArrayHeader]:
    """Refuse an npz whose arrays are too large before it is loaded; return its headers.

    Args:
        source: path, bytes, or a seekable binary file of an ``.npz``.
        max_frames: most frames (first dimension) of each array named in ``frame_arrays``.
        frame_arrays: names of the per-frame arrays (T, ...); absent ones are ignored.
        max_array_bytes: largest one array may be once loaded, bytes.
        max_total_bytes: largest all arrays together may be, bytes (None: no total limit).
        max_arrays: most members accepted.

    Raises:
        MocapError: the file is not a readable npz, breaks a limit (the message names the
        array, its declared shape and the limit), or an array's data is not the size its
        header declares (truncated, or more data than declared).
    """
    headers = read_npz_headers(source, max_arrays=max_arrays)
    if max_frames is not None:
        for name in frame_arrays:
            h = headers.get(name)
            if h is not None and h.shape and h.shape[0] > max_frames:
                raise MocapError(f"array {name!r} holds {h.shape[0]} frames (shape {h.shape}); the limit is "
                                 f"{max_frames}: split the clip")
    total = 0
    for h in headers.values():
        if h.nbytes > max_array_bytes:
            raise MocapError(f"array {h.name!r} declares shape {h.shape} {h.dtype}: {h.nbytes / 1e6:.6g} MB once "
                             f"loaded, over the {max_array_bytes / 1e6:g} MB limit")
        total += h.nbytes
    if max_total_bytes is not None and total > max_total_bytes:
        raise MocapError(f"the npz's arrays take {total / 1e6:.6g} MB once loaded, over the "
                         f"{max_total_bytes / 1e6:g} MB limit")
    for h in headers.values():  # the zip directory's size must match the header's (no hidden data)
        if h.stored_bytes != h.header_bytes + h.nbytes:
            raise MocapError(f"array {h.name!r} declares shape {h.shape} ({h.nbytes} bytes) but the file holds "
                             f"{max(h.stored_bytes - h.header_bytes, 0)} bytes of data: truncated or corrupt")
    return headers
