"""mocap.io.video on small synthetic videos with known frame content.

Each frame carries its index in binary as white 16x16 blocks on a row, a white marker in
its top-left corner and a red one in its top-right corner, so order, orientation and
channel order can all be checked after lossy compression (tolerance: block mean > 128).
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from mocap.errors import MocapError  # noqa: E402
from mocap.io.video import DEFAULT_FPS, iter_frames, probe_video  # noqa: E402

W, H, N, FPS = 96, 64, 12, 25.0
BLOCK = 16
BITS = W // BLOCK  # 6 bits: frame indices up to 63


def _frame_bgr(i: int) -> np.ndarray:
    """(H, W, 3) uint8 BGR frame encoding index ``i``."""
    f = np.zeros((H, W, 3), np.uint8)
    f[:BLOCK, :BLOCK] = 255  # white, top-left
    f[:BLOCK, W - BLOCK:] = (0, 0, 255)  # red (BGR), top-right
    for bit in range(BITS):
        if (i >> bit) & 1:
            f[2 * BLOCK:3 * BLOCK, bit * BLOCK:(bit + 1) * BLOCK] = 255
    return f


def _decode_index(frame: np.ndarray) -> int:
    """Frame index from an upright (H, W, 3) frame written by ``_frame_bgr``."""
    row = frame[2 * BLOCK:3 * BLOCK].mean(axis=(0, 2))
    return sum(1 << bit for bit in range(BITS) if row[bit * BLOCK:(bit + 1) * BLOCK].mean() > 128)


def _write(path: Path, fourcc: str, n: int = N) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV cannot write {fourcc} into {path.suffix}")
    for i in range(n):
        writer.write(_frame_bgr(i))
    writer.release()
    return path


@pytest.mark.parametrize("name, fourcc", [("clip.mp4", "mp4v"), ("clip.avi", "MJPG"), ("clip.mkv", "MJPG"),
                                          ("clip.mov", "mp4v")])
def test_containers_round_trip(tmp_path, name, fourcc):
    path = _write(tmp_path / name, fourcc)
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count, info.rotation_deg) == (W, H, N, 0)
    assert info.fps == pytest.approx(FPS, abs=1e-6)
    assert info.size == (W, H)
    frames = list(iter_frames(path))
    assert len(frames) == N
    for i, f in enumerate(frames):
        assert f.shape == (H, W, 3) and f.dtype == np.uint8
        assert _decode_index(f) == i
        red = f[:BLOCK, W - BLOCK:].reshape(-1, 3).mean(0)
        assert red[0] > 200 and red[2] < 60  # RGB order by default
    bgr = next(iter(iter_frames(path, rgb=False)))
    red = bgr[:BLOCK, W - BLOCK:].reshape(-1, 3).mean(0)
    assert red[2] > 200 and red[0] < 60


@pytest.mark.parametrize("name, fourcc", [("clip.mp4", "mp4v"), ("clip.avi", "MJPG"), ("clip.mkv", "MJPG"),
                                          ("clip.mov", "mp4v")])
def test_frame_range(tmp_path, name, fourcc):
    """``start``/``stop``: exactly frames start..stop-1, whatever the container."""
    path = _write(tmp_path / name, fourcc)
    for start, stop in [(0, 3), (5, 9), (7, None), (N - 1, N), (1, N + 5)]:
        got = [_decode_index(f) for f in iter_frames(path, start=start, stop=stop)]
        assert got == list(range(start, min(N, stop or N))), (start, stop)
    with pytest.raises(MocapError, match=f"has no frame {N}"):
        iter_frames(path, start=N)
    for bad in [(-1, 3), (4, 4), (5, 2)]:
        with pytest.raises(ValueError):
            iter_frames(path, start=bad[0], stop=bad[1])


def test_frame_range_when_the_seek_misses(tmp_path, monkeypatch):
    """A container whose seek lands on the wrong frame: the frames are read on instead."""
    import mocap.io.video as video

    path = _write(tmp_path / "clip.mp4", "mp4v")
    opened = video._open

    class Missing:  # seeks 3 frames short of the frame asked for
        def __init__(self, cap):
            self.cap = cap

        def set(self, prop, value):
            if prop == cv2.CAP_PROP_POS_FRAMES:
                return self.cap.set(prop, max(0, value - 3))
            return self.cap.set(prop, value)

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(video, "_open", lambda p: Missing(opened(p)))
    assert [_decode_index(f) for f in iter_frames(path, start=6, stop=9)] == [6, 7, 8]


# --- rotation: patch the track header's display matrix of an mp4 written by OpenCV -----------

def _find_box(data: bytes, path: tuple[bytes, ...], start: int = 0, end: int | None = None) -> int:
    """Offset of the box reached by the box types ``path`` (e.g. moov/trak/tkhd)."""
    end = len(data) if end is None else end
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[i + 8:i + 16])[0], 16
        elif size == 0:
            size = end - i
        if kind == path[0]:
            return i if len(path) == 1 else _find_box(data, path[1:], i + header, i + size)
        i += size
    raise ValueError(f"no {path[0]!r} box")


# Display matrices (a, b, c, d in 16.16) turning the stored picture clockwise by the key.
_MATRICES = {90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}


def _rotated_copy(src: Path, dst: Path, clockwise_deg: int) -> Path:
    data = bytearray(src.read_bytes())
    tkhd = _find_box(bytes(data), (b"moov", b"trak", b"tkhd"))
    version = data[tkhd + 8]
    matrix = tkhd + 8 + 4 + (32 if version == 1 else 20) + 8 + 8  # after times, ids, layer...
    a, b, c, d = (v << 16 for v in _MATRICES[clockwise_deg])
    old = struct.unpack(">9i", data[matrix:matrix + 36])
    assert old == (1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)  # identity as written by OpenCV
    data[matrix:matrix + 36] = struct.pack(">9i", a, b, 0, c, d, 0, 0, 0, 1 << 30)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("clockwise_deg", [90, 180, 270])
def test_rotation_metadata(tmp_path, clockwise_deg):
    plain = _write(tmp_path / "plain.mp4", "mp4v")
    rotated = _rotated_copy(plain, tmp_path / f"rot{clockwise_deg}.mp4", clockwise_deg)
    info = probe_video(rotated)
    assert info.rotation_deg == clockwise_deg
    expected_size = (H, W) if clockwise_deg in (90, 270) else (W, H)
    assert info.size == expected_size
    stored = list(iter_frames(plain))
    upright = list(iter_frames(rotated))
    assert len(upright) == N
    for s, u in zip(stored, upright):
        assert u.shape == (info.height, info.width, 3)
        # Same bitstream, so the pixels match exactly once turned clockwise.
        np.testing.assert_array_equal(u, np.rot90(s, k=-clockwise_deg // 90))
    if clockwise_deg == 90:  # the white top-left marker now sits top-right
        u = upright[0]
        assert u[:BLOCK, -BLOCK:].mean() > 200 and u[:BLOCK, :BLOCK].mean() < 100


@pytest.mark.parametrize("clockwise_deg", [90, 270])
def test_a_lost_rotation_tag_is_made_up_for(tmp_path, clockwise_deg):
    """--rotate: within ``turned`` every reader turns the pictures further, on top of the
    container's own rotation (here 90 deg), and back outside it; nested turns add up."""
    from mocap.io.video import read_frames, turned

    plain = _write(tmp_path / "plain.mp4", "mp4v")
    tagged = _rotated_copy(plain, tmp_path / "rot90.mp4", 90)
    stored = list(iter_frames(plain))
    with turned(plain, clockwise_deg):
        info = probe_video(plain)
        assert info.rotation_deg == clockwise_deg and info.size == (H, W)
        for s, u in zip(stored, iter_frames(plain)):
            np.testing.assert_array_equal(u, np.rot90(s, k=-clockwise_deg // 90))
        np.testing.assert_array_equal(read_frames(str(plain), [3])[3], np.rot90(stored[3], k=-clockwise_deg // 90))
        with turned(plain, 90):
            assert probe_video(plain).rotation_deg == (clockwise_deg + 90) % 360
        assert probe_video(plain).rotation_deg == clockwise_deg
    assert probe_video(plain).rotation_deg == 0 and probe_video(plain).size == (W, H)
    with turned(tagged, clockwise_deg):  # after the tag's 90
        assert probe_video(tagged).rotation_deg == (90 + clockwise_deg) % 360
    with pytest.raises(MocapError, match="0, 90, 180 or 270"):
        with turned(plain, 45):
            pass


def test_capture_of_a_video_on_its_side_with_rotate(tmp_path):
    """The example's first 30 frames stored on their side (no rotation tag): `mocap capture
    --rotate 90` gives the upright video's camera and person."""
    import json

    from mocap.cli import main

    example = Path(__file__).resolve().parents[1] / "examples" / "balance_cam01.mp4"
    reader = cv2.VideoCapture(str(example))
    writers = {"upright": cv2.VideoWriter(str(tmp_path / "upright.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 60.0,
                                          (1080, 1920)),
               "side": cv2.VideoWriter(str(tmp_path / "side.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 60.0, (1920, 1080))}
    for _ in range(30):
        ok, frame = reader.read()
        assert ok
        writers["upright"].write(frame)
        writers["side"].write(np.ascontiguousarray(np.rot90(frame)))  # turned a quarter anticlockwise
    for w in writers.values():
        w.release()
    got = {}
    for name, extra in (("upright", []), ("side", ["--rotate", "90"])):
        assert main(["capture", str(tmp_path / f"{name}.mp4"), "-o", str(tmp_path / name), "--no-overlay",
                     "--no-preview", "-q", *extra]) == 0
        got[name] = json.loads((tmp_path / name / "quality.json").read_text())
    for key, tol in (("camera_pitch_deg", 0.5), ("camera_roll_deg", 0.5), ("camera_height_m", 0.03),
                     ("person_height_m", 0.02)):
        assert got["side"][key] == pytest.approx(got["upright"][key], abs=tol), key
    assert got["side"]["torso_across_pct"] == 0.0


# --- bad input ---------------------------------------------------------------------------

def test_missing_file_and_folder(tmp_path):
    with pytest.raises(MocapError, match="not found"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(MocapError, match="not found"):
        iter_frames(tmp_path / "nope.mp4")  # raised at the call, not at the first next()
    with pytest.raises(MocapError, match="folder"):
        probe_video(tmp_path)


def test_text_file_named_mp4(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    with pytest.raises(MocapError, match="cannot read video"):
        probe_video(fake)
    with pytest.raises(MocapError, match="cannot read video"):
        iter_frames(fake)


def test_truncated_mp4(tmp_path):
    path = _write(tmp_path / "clip.mp4", "mp4v")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # loses the moov box
    with pytest.raises(MocapError, match="cannot read video"):
        probe_video(cut)
    with pytest.raises(MocapError, match="cannot read video"):
        list(iter_frames(cut))


def test_truncated_mkv_warns_and_keeps_decoded_frames(tmp_path):
    # Matroska streams without an index at the front, so a cut file still opens.
    path = _write(tmp_path / "clip.mkv", "MJPG")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.warns(UserWarning, match="decoding stopped after"):
        frames = list(iter_frames(cut))
    assert 0 < len(frames) < N
    assert [_decode_index(f) for f in frames] == list(range(len(frames)))


def test_zero_frames(tmp_path):
    path = tmp_path / "empty.avi"
    _write(path, "MJPG", n=0)
    with pytest.raises(MocapError, match="no decodable frames"):
        probe_video(path)
    with pytest.raises(MocapError, match="no decodable frames"):
        iter_frames(path)


def test_missing_fps_falls_back_with_warning(tmp_path, monkeypatch):
    path = _write(tmp_path / "clip.avi", "MJPG")
    real = cv2.VideoCapture

    class NoFps:  # a capture whose container declares no frame rate
        def __init__(self, *args):
            self._cap = real(*args)

        def get(self, prop):
            return 0.0 if prop == cv2.CAP_PROP_FPS else self._cap.get(prop)

        def __getattr__(self, name):
            return getattr(self._cap, name)

    monkeypatch.setattr(cv2, "VideoCapture", NoFps)
    with pytest.warns(UserWarning, match="assuming 30 fps"):
        info = probe_video(path)
    assert info.fps == DEFAULT_FPS == 30.0
    assert info.frame_count == N


def test_read_frames_by_number(tmp_path, monkeypatch):
    """read_frames: the frames asked for, by number, near ones in one run and far ones after a
    seek (frames between far ones are not decoded), frames past the end left out."""
    import mocap.io.video as video

    path = _write(tmp_path / "clip.avi", "MJPG", n=60)
    decoded = []
    real = video.iter_frames

    def counting(frames):
        for frame in frames:
            decoded.append(_decode_index(frame))
            yield frame

    monkeypatch.setattr(video, "iter_frames", lambda *a, **k: counting(real(*a, **k)))  # opened at the call
    got = video.read_frames(path, [50, 3, 5, 3, 70], gap=10)
    assert sorted(got) == [3, 5, 50]
    assert {i: _decode_index(f) for i, f in got.items()} == {3: 3, 5: 5, 50: 50}
    assert decoded == [3, 4, 5, 50]  # 6-49 never decoded
    assert video.read_frames(path, []) == {}
