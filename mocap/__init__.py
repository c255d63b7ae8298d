"""mocap-lift: markerless motion capture from video.

``import mocap`` is light: it imports numpy only. Torch, MediaPipe and Blender are
imported inside the functions that need them.
"""
from mocap.errors import MocapError

__version__ = "0.1.0"
__all__ = ["MocapError", "__version__"]
