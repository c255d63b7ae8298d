"""The command line on hostile and careless input (issue 23): every failure is one line and
exit status 1, a run writes all its outputs or none, sizes from outside are checked before
anything is allocated, and videos whose timing or size would give invented motion are refused.

Each test reproduces a failure seen on the code before the fix (tracebacks, partial files,
a frozen machine, silent garbage).
"""
from __future__ import annotations

import importlib.util
import io
import struct
import time
import zipfile

import numpy as np
import pytest

from mocap.cli import main
from mocap.errors import MocapError
from mocap.formats import MAX_FRAMES, save_keypoints
from tests.conftest import EXAMPLE_VIDEO
from tests.synthetic import FOCAL_PX, synthetic_keypoints, waving_walker

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch (the default lifter)")
needs_bpy = pytest.mark.skipif(importlib.util.find_spec("bpy") is None,
                               reason="needs bpy (pip install 'mocap-lift[blender]')")


def _run(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc, err, *words):
    """Exit 1, a last stderr line ``mocap: error: ...`` holding ``words``, no traceback."""
    assert rc == 1, err
    assert "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("mocap: error: "), err
    for w in words:
        assert w.lower() in line.lower(), line
    return line


def _keypoints_npz(path, **replace):
    """A valid keypoints2d.npz of 30 synthetic frames, with some arrays replaced."""
    k = synthetic_keypoints(waving_walker(t=30))
    arrays = dict(keypoints=k.keypoints, confidence=k.confidence, layout=k.layout,
                  image_size=np.array(k.image_size), fps=k.fps)
    arrays.update(replace)
    np.savez(path, **arrays)
    return path


@pytest.fixture
def motion_file(tmp_path):
    """motion.npz lifted by the network from 20 synthetic frames (arrays, for rewriting)."""
    pytest.importorskip("torch")
    kp = tmp_path / "k.npz"
    save_keypoints(kp, synthetic_keypoints(waving_walker(t=20)))
    m = tmp_path / "m.npz"
    assert main(["lift", str(kp), "-o", str(m), "--focal-px", str(FOCAL_PX)]) == 0
    with np.load(m) as data:
        arrays = {k: data[k] for k in data.files}
    return m, arrays


def _lift(tmp_path, kp, capsys, *extra):
    return _run(["lift", kp, "-o", tmp_path / "m.npz", *extra], capsys)


# --- mocap lift: bad keypoints files ---------------------------------------------------------

def test_lift_refuses_a_layout_the_lifters_do_not_read(tmp_path, capsys):
    kp = _keypoints_npz(tmp_path / "k.npz", keypoints=np.full((30, 16, 2), 100, np.float32),
                        confidence=np.ones((30, 16), np.float32), layout="mpii16")
    rc, _, err = _lift(tmp_path, kp, capsys)
    _one_line_error(rc, err, "mpii16", "mediapipe33")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("layout, joints", [("coco17", 17), ("mediapipe33", 33)])
def test_lift_refuses_keypoints_at_one_point(tmp_path, capsys, layout, joints):
    kp = _keypoints_npz(tmp_path / "k.npz", keypoints=np.zeros((30, joints, 2), np.float32),
                        confidence=np.ones((30, joints), np.float32), layout=layout)
    rc, _, err = _lift(tmp_path, kp, capsys)
    _one_line_error(rc, err, "one point")


@needs_torch
def test_frames_at_one_point_among_good_ones_lift(tmp_path, capsys):
    """The root solve of a frame whose keypoints coincide is singular: that frame is a gap,
    filled like any other (it raised LinAlgError)."""
    k = synthetic_keypoints(waving_walker(t=30))
    kp = k.keypoints.copy()
    kp[10:14] = kp[10:14, :1]  # four frames: every joint at the first joint's pixel
    rc, _, err = _lift(tmp_path, _keypoints_npz(tmp_path / "k.npz", keypoints=kp), capsys, "--focal-px", FOCAL_PX)
    assert rc == 0, err
    from mocap.formats import load_motion

    m = load_motion(tmp_path / "m.npz")
    assert m.num_frames == 30 and np.isfinite(m.joints).all()


@pytest.mark.parametrize("size", [[1e30, 1e30], [10**18, 720], [0, 720], [640.5, 480]])
def test_lift_refuses_an_absurd_image_size(tmp_path, capsys, size):
    rc, _, err = _lift(tmp_path, _keypoints_npz(tmp_path / "k.npz", image_size=np.array(size)), capsys)
    _one_line_error(rc, err, "image_size")


@pytest.mark.parametrize("fps", [1e308, 5000.0, float("inf"), -30.0])
def test_lift_refuses_an_absurd_frame_rate(tmp_path, capsys, fps):
    rc, _, err = _lift(tmp_path, _keypoints_npz(tmp_path / "k.npz", fps=fps), capsys)
    _one_line_error(rc, err, "fps")


@needs_torch
def test_a_clip_shorter_than_the_lifter_stride_lifts(tmp_path, capsys):
    """At 60 fps the network lifts two interleaved sub-clips; one frame raised RuntimeError."""
    k = synthetic_keypoints(waving_walker(t=1))
    kp = _keypoints_npz(tmp_path / "k.npz", keypoints=k.keypoints, confidence=k.confidence, fps=60.0)
    rc, _, err = _lift(tmp_path, kp, capsys, "--focal-px", FOCAL_PX, "--no-foot-lock")
    assert rc == 0, err
    from mocap.formats import load_motion

    assert load_motion(tmp_path / "m.npz").num_frames == 1


def _npz_declaring(path, name_shapes: dict[str, tuple], data_bytes: int = 0, **arrays):
    """An npz whose members ``name_shapes`` declare these float32 shapes but hold ``data_bytes``
    bytes of data; ``arrays`` are stored whole."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with zipfile.ZipFile(buf, "a") as z:
        for name, shape in name_shapes.items():
            header = np.lib.format.header_data_from_array_1_0(np.zeros((0,), np.float32))
            header["shape"] = shape
            member = io.BytesIO()
            np.lib.format.write_array_header_1_0(member, header)
            z.writestr(f"{name}.npy", member.getvalue() + bytes(data_bytes))
    path.write_bytes(buf.getvalue())
    return path


def test_lift_refuses_a_huge_declared_array_before_allocating(tmp_path, capsys):
    """The header declares 26 TB; numpy.load would try to allocate it (MemoryError)."""
    k = synthetic_keypoints(waving_walker(t=5))
    kp = _npz_declaring(tmp_path / "k.npz", {"keypoints": (10**11, 33, 2)}, confidence=k.confidence,
                        layout=k.layout, image_size=np.array(k.image_size), fps=k.fps)
    rc, _, err = _lift(tmp_path, kp, capsys)
    _one_line_error(rc, err, "keypoints", "limit")


def test_a_2m_frame_keypoints_file_is_refused_before_loading(tmp_path, capsys):
    """2 M frames compress to a few MB; lifting them took 7.7 GB and minutes. The frame limit is
    checked on the array headers, so the refusal is immediate."""
    frames = 2_000_000
    path = tmp_path / "k.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, shape in (("keypoints", (frames, 33, 2)), ("confidence", (frames, 33))):
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                header = np.lib.format.header_data_from_array_1_0(np.zeros((0,), np.float32))
                header["shape"] = shape
                np.lib.format.write_array_header_1_0(f, header)
                chunk = bytes(4 * 33 * 2 * 10_000)
                left = 4 * int(np.prod(shape))
                while left:
                    f.write(chunk[:min(left, len(chunk))])
                    left -= min(left, len(chunk))
        for name, value in (("layout", np.array("mediapipe33")), ("image_size", np.array([640, 480])),
                            ("fps", np.array(30.0))):
            member = io.BytesIO()
            np.save(member, value)
            z.writestr(f"{name}.npy", member.getvalue())
    assert frames > MAX_FRAMES
    start = time.perf_counter()
    rc, _, err = _lift(tmp_path, path, capsys)
    assert time.perf_counter() - start < 5.0
    _one_line_error(rc, err, "2000000 frames", str(MAX_FRAMES))


# --- all or nothing ----------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["missing folder", "taken by a folder"])
def test_lift_writes_no_motion_when_the_bvh_cannot_be_written(tmp_path, capsys, where):
    kp = tmp_path / "k.npz"
    save_keypoints(kp, synthetic_keypoints(waving_walker(t=10)))
    bvh = tmp_path / "RO" / "x.bvh"
    if where == "taken by a folder":
        bvh.mkdir(parents=True)
    rc, _, err = _run(["lift", kp, "-o", tmp_path / "m.npz", "--bvh", bvh, "--lifter", "mediapipe",
                       "--focal-px", FOCAL_PX], capsys)
    _one_line_error(rc, err, "x.bvh")
    assert not (tmp_path / "m.npz").exists()
    assert not list(tmp_path.glob(".mocap-*")) and not list(tmp_path.glob("**/.m.*"))


def test_lift_replaces_nothing_when_it_fails(tmp_path, capsys):
    """An earlier run's motion.npz and BVH survive a failed run aimed at them."""
    kp = tmp_path / "k.npz"
    save_keypoints(kp, synthetic_keypoints(waving_walker(t=10)))
    old_m, old_b = tmp_path / "m.npz", tmp_path / "m.bvh"
    old_m.write_bytes(b"earlier motion")
    old_b.write_bytes(b"earlier bvh")
    bad = _keypoints_npz(tmp_path / "bad.npz", fps=1e308)
    rc, _, err = _run(["lift", bad, "-o", old_m, "--bvh", old_b], capsys)
    _one_line_error(rc, err, "fps")
    assert old_m.read_bytes() == b"earlier motion" and old_b.read_bytes() == b"earlier bvh"


def test_report_writes_no_png_when_it_fails(motion_file, tmp_path, capsys):
    m, _ = motion_file
    png = tmp_path / "plot.png"
    rc, _, err = _run(["report", m, "--png", png, "--cleaned", tmp_path / "nowhere" / "c.npz"], capsys)
    _one_line_error(rc, err, "nowhere")
    assert not png.exists()
    rc, out, err = _run(["report", m, "--png", png], capsys)
    assert rc == 0, err
    assert png.is_file() and f"wrote {png}" in out  # the summary names the final path, not the staging folder


def test_report_refuses_an_absurd_frame_rate(motion_file, tmp_path, capsys):
    _, arrays = motion_file
    np.savez(tmp_path / "fast.npz", **{**arrays, "fps": np.array(1e300)})
    rc, _, err = _run(["report", tmp_path / "fast.npz"], capsys)
    _one_line_error(rc, err, "fps")
    assert not (tmp_path / "fast_report.png").exists()


def test_retarget_output_taken_by_a_folder(motion_file, tmp_path, capsys):
    m, _ = motion_file
    (tmp_path / "out.bvh").mkdir()
    rc, _, err = _run(["retarget", m, "-o", tmp_path / "out.bvh"], capsys)
    _one_line_error(rc, err, "out.bvh", "folder")


@pytest.mark.parametrize("change, words", [
    (lambda a: a["local_quats_wxyz"].__setitem__((3, 5), np.nan), ("local_quats_wxyz", "nan")),
    (lambda a: a["parents"].__setitem__(4, 99), ("parent",)),
    (lambda a: a["parents"].__setitem__(2, 7), ("parent",)),  # 2 -> 7 -> ... -> 2: a cycle
    (lambda a: a["parents"].__setitem__(0, 3), ("parent",)),
])
def test_retarget_refuses_a_broken_motion(motion_file, tmp_path, capsys, change, words):
    _, arrays = motion_file
    arrays = {k: v.copy() for k, v in arrays.items()}
    change(arrays)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    rc, _, err = _run(["retarget", bad, "-o", tmp_path / "out.bvh"], capsys)
    _one_line_error(rc, err, *words)
    assert not (tmp_path / "out.bvh").exists()


def _target_files(tmp_path, motion_bvh):
    text = motion_bvh.read_text()
    head, _, _ = text.partition("MOTION")
    return {
        "garbage.bvh": (b"garbage\x00\x01\xff", "HIERARCHY"),
        "truncated.bvh": (text[: len(head) // 2].encode(), "ends early"),
        "huge.bvh": ((head + "MOTION\nFrames: 99999999999\nFrame Time: 0.0333\n").encode(), "limit"),
        "garbage.fbx": (b"garbage", "cannot read"),
    }


@needs_bpy
def test_retarget_refuses_a_bad_target(motion_file, tmp_path, capsys):
    m, _ = motion_file
    assert main(["retarget", str(m), "-o", str(tmp_path / "ours.bvh")]) == 0
    for name, (data, words) in _target_files(tmp_path, tmp_path / "ours.bvh").items():
        target = tmp_path / name
        target.write_bytes(data)
        rc, _, err = _run(["retarget", m, "--target", target, "-o", tmp_path / "out.bvh"], capsys)
        _one_line_error(rc, err, name, words)
        assert not (tmp_path / "out.bvh").exists()


def test_unexpected_errors_are_one_line_and_debug_keeps_the_traceback(monkeypatch, capsys):
    import argparse

    from mocap import cli

    def boom(args):
        raise RuntimeError("the expanded size of the tensor must match\nsecond line")

    rc = cli._run(argparse.Namespace(func=boom))
    line = _one_line_error(rc, capsys.readouterr().err, "unexpected RuntimeError", "MOCAP_DEBUG=1")
    assert "second line" in line
    monkeypatch.setenv("MOCAP_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli._run(argparse.Namespace(func=boom))
    with pytest.raises(MocapError):
        main(["lift", "/nonexistent/k.npz", "-o", "m.npz"])


# --- capture: outputs committed together; videos refused -----------------------------------------

def _clip(path, *, frames=12, size=(270, 480), fps=60.0, start=0):
    """The example video's frames ``start``.. resized (a person balancing)."""
    cv2 = pytest.importorskip("cv2")
    if not EXAMPLE_VIDEO.is_file():
        pytest.skip("the example video is absent")
    src = cv2.VideoCapture(str(EXAMPLE_VIDEO))
    src.set(cv2.CAP_PROP_POS_FRAMES, start)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for _ in range(frames):
        out.write(cv2.resize(src.read()[1], size))
    out.release()
    return path


_FAST = ["--no-overlay", "--no-preview", "-q"]


@needs_torch
def test_capture_output_name_taken_by_a_folder(tmp_path, capsys):
    out = tmp_path / "O"
    (out / "motion.npz").mkdir(parents=True)
    rc, _, err = _run(["capture", _clip(tmp_path / "v.mp4"), "-o", out, *_FAST], capsys)
    _one_line_error(rc, err, "motion.npz", "folder")
    assert [p.name for p in out.iterdir()] == ["motion.npz"] and not list(tmp_path.glob(".mocap-*"))


@needs_torch
def test_failed_capture_keeps_the_previous_run(tmp_path, capsys):
    """A second run into the same folder that fails part-way (after its keypoints) leaves the
    first run's files as they were."""
    out = tmp_path / "O"
    rc, stdout, err = _run(["capture", _clip(tmp_path / "a.mp4"), "-o", out, *_FAST], capsys)
    assert rc == 0, err
    assert f"{out}/motion.npz" in stdout and ".mocap-" not in stdout  # the summary names the final files
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"keypoints2d.npz", "motion.npz", "motion.bvh"} <= set(before)
    (out / "motion.bvh").unlink()
    (out / "motion.bvh").mkdir()  # the second run cannot write its BVH
    rc, _, err = _run(["capture", _clip(tmp_path / "b.mp4", start=50), "-o", out, *_FAST], capsys)
    _one_line_error(rc, err, "motion.bvh")
    for name in ("keypoints2d.npz", "motion.npz"):
        assert (out / name).read_bytes() == before[name], name
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # nothing added, no staging folder left


@needs_torch
def test_capture_of_a_one_frame_60_fps_video(tmp_path, capsys):
    """It raised RuntimeError in the lifter and left keypoints2d.npz and overlay.mp4 behind."""
    out = tmp_path / "O"
    rc, _, err = _run(["capture", _clip(tmp_path / "one.mp4", frames=1), "-o", out, *_FAST], capsys)
    assert rc == 0, err
    from mocap.formats import load_motion

    assert load_motion(out / "motion.npz").num_frames == 1
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left inside


@needs_torch
def test_failed_capture_leaves_no_new_folder(tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "empty.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (160, 120))
    for i in range(12):
        w.write(np.full((120, 160, 3), 40 + i, np.uint8))
    w.release()
    out = tmp_path / "new" / "O"
    rc, _, err = _run(["capture", video, "-o", out, "-q"], capsys)
    _one_line_error(rc, err, "no person found")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4"]


@pytest.mark.parametrize("args, words", [
    (["--start", "1.0", "--end", "0.5"], ["--start 1 s", "before the end"]),
    (["--start", "0.7", "--end", "0.7"], ["before the end"]),
    (["--start", "-1"], ["--start", "from 0"]),
    (["--end", "-0.5"], ["--end", "between 0"]),
    (["--end", "5"], ["--end 5 s", "beyond the end", "1.667 s", "100 frames at 60 fps"]),
    (["--start", "2"], ["--start 2 s", "beyond the end"]),
    (["--start", "0.501", "--end", "0.51"], ["holds no frame"]),
])
def test_capture_refuses_a_bad_range_before_work(tmp_path, capsys, args, words):
    """--start/--end outside the 1.667 s example (100 frames at 60 fps), or empty: one line, nothing written."""
    rc, _, err = _run(["capture", EXAMPLE_VIDEO, "-o", tmp_path / "O", "-q", *args], capsys)
    _one_line_error(rc, err, *words)
    assert not (tmp_path / "O").exists()


def test_multiview_capture_refuses_a_range(tmp_path, capsys):
    rc, _, err = _run(["capture", EXAMPLE_VIDEO, EXAMPLE_VIDEO, "--calibration", "auto", "--body-height", "1.7",
                       "-o", tmp_path / "O", "-q", "--start", "0.5"], capsys)
    _one_line_error(rc, err, "--start and --end work with one video")
    assert not (tmp_path / "O").exists()


def test_capture_refuses_a_video_too_small_for_a_person(tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "tiny.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (8, 8))
    rng = np.random.default_rng(0)
    for _ in range(30):
        w.write(rng.integers(0, 255, (8, 8, 3), np.uint8))
    w.release()
    rc, _, err = _run(["capture", video, "-o", tmp_path / "O", "-q"], capsys)
    _one_line_error(rc, err, "8 x 8", "too small")
    assert not (tmp_path / "O").exists()


def _boxes(data: bytes, start: int, end: int):
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        yield kind, i, size
        i += size


def _box_path(data: bytes, kinds: tuple[bytes, ...]) -> list[tuple[int, int]]:
    """(offset, size) of each box on the path moov/trak/... (32-bit sizes, as OpenCV writes)."""
    chain, start, end = [], 0, len(data)
    for kind in kinds:
        offset, size = next((o, s) for k, o, s in _boxes(data, start, end) if k == kind)
        chain.append((offset, size))
        start, end = offset + 8, offset + size
    return chain


def make_vfr_mp4(path, durations_s, size=(96, 64)):
    """An mp4 whose frame ``k`` is shown for ``durations_s[k]`` seconds; frame k is grey level
    ``16 + 7 k`` (video range 16..235 up to k = 31). OpenCV writes constant-rate mp4 with the
    moov box after the data; its time-to-sample box (stts) is replaced by one entry per frame
    and the enclosing box sizes grown to match."""
    cv2 = pytest.importorskip("cv2")
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for k in range(len(durations_s)):
        w.write(np.full((size[1], size[0], 3), min(16 + 7 * k, 235), np.uint8))
    w.release()
    data = bytearray(path.read_bytes())
    mdhd, _ = _box_path(data, (b"moov", b"trak", b"mdia", b"mdhd"))[-1]
    assert data[mdhd + 8] == 0, "mdhd version 0 expected"
    timescale = struct.unpack(">I", data[mdhd + 20:mdhd + 24])[0]
    chain = _box_path(data, (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stts"))
    offset, size_ = chain[-1]
    ticks = [max(1, round(d * timescale)) for d in durations_s]
    stts = struct.pack(">I4sII", 16 + 8 * len(ticks), b"stts", 0, len(ticks))
    stts += b"".join(struct.pack(">II", 1, t) for t in ticks)
    data[offset:offset + size_] = stts
    for parent, parent_size in chain[:-1]:
        data[parent:parent + 4] = struct.pack(">I", parent_size + len(stts) - size_)
    path.write_bytes(bytes(data))
    return path


def test_variable_frame_rate_video_is_refused(tmp_path):
    """50 frames at 60 fps then 40 at 30 fps: read as constant-rate, frame 50 came out late."""
    from mocap.io.video import iter_frames

    cv2 = pytest.importorskip("cv2")
    video = make_vfr_mp4(tmp_path / "vfr.mp4", [1 / 60] * 50 + [1 / 30] * 40)
    cap = cv2.VideoCapture(str(video))  # the file is what the test says: timestamps 1/60 s apart, then 1/30
    stamps = []
    while cap.read()[0]:
        stamps.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    assert len(stamps) == 90
    np.testing.assert_allclose(np.diff(stamps), [1 / 60] * 49 + [1 / 60] + [1 / 30] * 39, atol=2e-3)
    with pytest.raises(MocapError, match="variable frame rate.*ffmpeg"):
        for _ in iter_frames(video):
            pass


def test_constant_rate_video_with_rounded_timestamps_is_accepted(tmp_path):
    """Timestamps in whole milliseconds (Matroska: 0, 33, 67, ...) are constant-rate."""
    from mocap.io.video import iter_frames, probe_video

    video = make_vfr_mp4(tmp_path / "cfr.mp4", [0.033, 0.034, 0.033] * 10)
    frames = list(iter_frames(video, rgb=False))
    assert len(frames) == probe_video(video).frame_count == 30
    grey = np.array([f[0, 0, 0] for f in frames], float)
    assert (np.diff(grey) > 3).all(), grey  # 7 apart as written (less the codec's loss): in order, none repeated


@needs_torch
def test_capture_of_a_variable_frame_rate_video_is_one_line_and_writes_nothing(tmp_path, capsys):
    video = make_vfr_mp4(tmp_path / "vfr.mp4", [1 / 60] * 50 + [1 / 30] * 40)
    rc, _, err = _run(["capture", video, "-o", tmp_path / "O", "-q"], capsys)
    _one_line_error(rc, err, "variable frame rate")
    assert not (tmp_path / "O").exists()
