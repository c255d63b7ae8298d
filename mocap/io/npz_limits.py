"""Where :mod:`mocap.npz_limits` was first published; its names stay importable from here.

The code lives in :mod:`mocap.npz_limits`, a foundation, so that :mod:`mocap.formats` can
check every npz it loads.
"""
from mocap.npz_limits import MAX_ARRAY_BYTES, MAX_ARRAYS, MAX_NDIM, ArrayHeader, check_npz, read_npz_headers

__all__ = ["MAX_ARRAYS", "MAX_ARRAY_BYTES", "MAX_NDIM", "ArrayHeader", "check_npz", "read_npz_headers"]
