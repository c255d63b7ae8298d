"""people.png: a contact sheet of the people found in a video, one crop each with their id.

So that a user can see who is who and pick ``--person ID``. The crops are each
person's ``best_box`` in their ``best_frame`` (:meth:`mocap.detect2d.people.PeopleTracks.summary`).
"""
from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np

from mocap.formats import atomic_path

CROP_HEIGHT = 320  # pixels of each person's picture on the sheet
_LABEL = 44  # pixels of the caption strip under each picture


def person_crop(frame: np.ndarray, box: Sequence[float], *, height: int = CROP_HEIGHT,
                margin: float = 0.15) -> np.ndarray:
    """(H, W, 3) uint8 frame, box (x0, y0, x1, y1) pixels -> (height, w, 3) uint8 crop of the
    box grown by ``margin`` of its size on each side (clipped to the frame), ``height`` tall."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    x0, x1 = int(max(0, np.floor(x0 - mx))), int(min(w, np.ceil(x1 + mx)))
    y0, y1 = int(max(0, np.floor(y0 - my))), int(min(h, np.ceil(y1 + my)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((height, height // 2, 3), np.uint8)
    crop = frame[y0:y1, x0:x1]
    width = max(1, int(round(crop.shape[1] * height / crop.shape[0])))
    return cv2.resize(crop, (min(width, 2 * height), height), interpolation=cv2.INTER_AREA)


def contact_sheet(crops: Sequence[np.ndarray], captions: Sequence[str], *, highlight: Sequence[bool] = ()) -> np.ndarray:
    """Crops side by side with a caption under each -> (H, W, 3) uint8 RGB image; a highlighted
    crop (the captured person) gets a green frame and caption, the others grey."""
    if not crops:
        return np.full((_LABEL, 320, 3), 40, np.uint8)
    height = max(c.shape[0] for c in crops)
    tiles = []
    for i, (crop, caption) in enumerate(zip(crops, captions)):
        on = i < len(highlight) and highlight[i]
        colour = (60, 200, 80) if on else (150, 150, 150)
        text_w = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2)[0][0] + 16  # the caption fits
        tile = np.full((height + 8 + _LABEL, max(crop.shape[1], 160, text_w) + 8, 3), 30, np.uint8)
        x = (tile.shape[1] - crop.shape[1]) // 2
        tile[4:4 + crop.shape[0], x:x + crop.shape[1]] = crop
        cv2.rectangle(tile, (1, 1), (tile.shape[1] - 2, tile.shape[0] - 2), colour, 3)
        cv2.putText(tile, caption, (8, height + 8 + _LABEL - 14), cv2.FONT_HERSHEY_SIMPLEX, 0.8, colour, 2, cv2.LINE_AA)
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)


def write_people_sheet(path: str | os.PathLike, frames: dict[int, np.ndarray], people: Sequence[dict]) -> None:
    """Write people.png.

    Args:
        frames: {frame index: (H, W, 3) uint8 RGB} holding every person's ``best_frame``.
        people: the entries of people.json (``id``, ``best_frame``, ``best_box``, ``captured``).
    """
    crops, captions, flags = [], [], []
    for p in people:
        frame = frames[p["best_frame"]]
        crops.append(person_crop(frame, p["best_box"]))
        captions.append(f"id {p['id']}" + (" (captured)" if p.get("captured") else ""))
        flags.append(bool(p.get("captured")))
    sheet = contact_sheet(crops, captions, highlight=flags)
    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            from mocap.errors import MocapError

            raise MocapError(f"could not write {path}")
