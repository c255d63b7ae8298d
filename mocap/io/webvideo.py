"""A copy of a video that web browsers can play.

OpenCV's wheels here cannot encode H.264, and browsers do not play the MPEG-4 Part 2
(``mp4v``) video that :mod:`mocap.export.overlay` and :mod:`mocap.export.draw` write; they
do play VP8 in WebM, which OpenCV writes. VP8 encoding is slow (measured ~40 frames/s at 360x640 on a busy 2-core machine,
against ~700 for mp4v), so the capture itself keeps ``mp4v`` and only the service makes
this smaller web copy, once, for its viewer page.
"""
from __future__ import annotations

import os
from pathlib import Path

from mocap.errors import MocapError
from mocap.formats import atomic_path


def transcode_for_web(src: str | os.PathLike, dst: str | os.PathLike, *, max_width: int = 480) -> Path:
    """Write ``src`` as VP8/WebM at most ``max_width`` pixels wide (even sizes) to ``dst``.

    Keeps every frame and the frame rate. Raises MocapError if ``src`` cannot be read or
    this OpenCV cannot write VP8.
    """
    import cv2

    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise MocapError(f"cannot read video {src}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    dst = Path(dst)
    try:
        with atomic_path(dst, ".webm") as tmp:
            writer = None
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                h, w = frame.shape[:2]
                scale = min(1.0, max_width / w)
                size = (max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2))
                if writer is None:
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"VP80"), fps, size)
                    if not writer.isOpened():
                        raise MocapError("this OpenCV build cannot write VP8/WebM video")
                writer.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if size != (w, h) else frame)
            if writer is None:
                raise MocapError(f"{src} has no frames")
            writer.release()
    finally:
        cap.release()
    return dst
