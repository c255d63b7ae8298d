"""File I/O: video frames, BVH, camera-set files (TOML, Qualisys, OpenCV), model files and the cache.

Uses only the foundations (:mod:`mocap.errors`, :mod:`mocap.formats`, ...); every stage may use it.
"""
