"""Cuts between shots (mocap.detect2d.shots): found where an edited video cuts, not where the
camera pans, a flash goes off or the exposure changes; a capture across a cut keeps to one shot."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mocap.detect2d.shots import CUT_LEVEL, ShotCuts, difference, shot_starts, shots_of, signature

cv2 = pytest.importorskip("cv2")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "balance_cam01.mp4"


def scene(seed: int, size=(1400, 900)) -> np.ndarray:
    """(H, W, 3) uint8: a room-like picture (smooth blobs of colour and some edges), larger than a frame."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (9, 14, 3)).astype(np.float32)
    img = cv2.resize(small, size, interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        x, y = int(rng.uniform(0, size[0])), int(rng.uniform(0, size[1]))
        cv2.rectangle(img, (x, y), (x + 120, y + 300), tuple(float(v) for v in rng.uniform(0, 255, 3)), 6)
    return np.clip(img, 0, 255).astype(np.uint8)


def frames_of(pictures: list[np.ndarray]) -> ShotCuts:
    cuts = ShotCuts()
    for i, f in enumerate(pictures):
        cuts(i, f)
    return cuts


def test_a_cut_is_found_and_a_pan_a_flash_and_a_change_of_exposure_are_not():
    a, b = scene(0), scene(1)
    crop = lambda img, x: np.ascontiguousarray(img[100:740, x:x + 360])  # noqa: E731  (a portrait 360 x 640 frame)
    still = [crop(a, 300)] * 10
    panned = [crop(a, 300 + 12 * k) for k in range(20)]  # 12 px a frame, 240 px in all
    flash = [crop(a, 300)] * 5 + [np.clip(crop(a, 300).astype(int) + 120, 0, 255).astype(np.uint8)] + [crop(a, 300)] * 5
    exposure = [crop(a, 300)] * 5 + [(crop(a, 300) * 0.6).astype(np.uint8)] * 5  # the camera's exposure steps down
    cut = [crop(a, 300)] * 10 + [crop(b, 300)] * 10
    for name, pictures, starts in (("still", still, []), ("panned", panned, []), ("flash", flash, []),
                                   ("exposure", exposure, []), ("cut", cut, [10]),
                                   ("cut while panning", panned[:10] + [crop(b, 300 + 12 * k) for k in range(10)], [10])):
        found = frames_of(pictures)
        assert shot_starts(found.diffs, 0, len(pictures)) == starts, (name, found.diffs)
    # the pan's frames differ by more than a still camera's, well under a cut
    pan = frames_of(panned).diffs
    assert 0.05 < np.median(list(pan.values())) < CUT_LEVEL
    assert difference(signature(crop(a, 300)), signature(crop(b, 300))) > 2 * CUT_LEVEL


def test_frames_that_come_out_of_order_give_the_same_cuts():
    """The 2D stage decodes segments side by side: frames come in each segment's order."""
    a, b = scene(0), scene(2)
    pictures = [np.ascontiguousarray(a[100:740, 300 + 5 * k:660 + 5 * k]) for k in range(12)] + \
               [np.ascontiguousarray(b[100:740, 300 + 5 * k:660 + 5 * k]) for k in range(12)]
    in_order = frames_of(pictures)
    shuffled = ShotCuts()
    for i in [*range(12, 24), *range(6, 12), *range(0, 6)]:
        shuffled(i, pictures[i])
    assert shuffled.diffs == pytest.approx(in_order.diffs)
    assert shuffled.shots(0, 24) == [(0, 12), (12, 24)] and in_order.shots(0, 24) == [(0, 12), (12, 24)]
    assert sorted(shuffled._signatures) == [0, 23]  # only frames still waiting for a neighbour are kept
    assert shots_of(0, 24, []) == [(0, 24)] and shots_of(5, 9, [2, 7, 12]) == [(5, 7), (7, 9)]


def test_a_capture_across_a_cut_keeps_to_one_shot(tmp_path):
    """The example's first 36 frames, then a cut to the next 24 seen from the other side (the frames
    mirrored: another camera's picture of the same room). Without the cut found, the fit read both
    shots as one camera (on the example cut to another Pose2Sim camera the camera came out 2.87 m
    high, pitched 33 deg, against 1.76 m and 23 deg now). The capture keeps to the longer shot, says
    so, and its camera is the untouched first shot's."""
    from mocap.export.options import ExportOptions
    from mocap.formats import load_motion
    from mocap.pipelines.capture import capture
    from mocap.pipelines.options import CaptureOptions

    reader = cv2.VideoCapture(str(EXAMPLE))
    writers = {name: cv2.VideoWriter(str(tmp_path / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 60.0, (1080, 1920))
               for name in ("one shot", "cut")}
    for i in range(60):
        ok, frame = reader.read()
        assert ok
        if i < 36:
            writers["one shot"].write(frame)
        writers["cut"].write(frame if i < 36 else np.ascontiguousarray(frame[:, ::-1]))
    for w in writers.values():
        w.release()
    options = CaptureOptions(export=ExportOptions(overlay=False, preview=False))
    reports = {name: capture(tmp_path / f"{name}.mp4", tmp_path / name.replace(" ", "_"), options, progress=False)
               for name in ("one shot", "cut")}
    cut = reports["cut"]
    assert cut.shots == [(0, 36), (36, 60)] and cut.shot == (0, 36)
    assert cut.quality["shots"] == [[0, 35], [36, 59]]
    assert "the video cuts to another shot at frame 36 (0.60 s): 2 shots (frames 0-35, 36-59); only frames 0-35" \
        in cut.summary()
    assert not reports["one shot"].shots_line()
    motion = load_motion(tmp_path / "cut" / "motion.npz")
    assert motion.start_frame == 0 and motion.num_frames == 36
    for key in ("camera_pitch_deg", "camera_roll_deg"):
        assert cut.quality[key] == pytest.approx(reports["one shot"].quality[key], abs=0.5), key
    assert cut.quality["camera_height_m"] == pytest.approx(reports["one shot"].quality["camera_height_m"], abs=0.05)
