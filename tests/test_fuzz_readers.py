"""Property-based fuzzing of every reader of outside input (issue 23): keypoints and motion
npz, BVH, camera-set TOML, Qualisys XML, OpenCV YAML, and the stream's JSON messages.

The property is the same everywhere: a reader given anything either returns a valid result
or raises the project's clear error (:class:`mocap.errors.MocapError` for files;
``ValueError``, the service's 4xx, for JSON messages), never another exception. Inputs are
generated both from scratch and by mutating a valid file, so that most examples get past
the first check. A few hundred examples per reader; the whole module takes seconds.

Needs ``hypothesis`` (in the ``dev`` extra); skipped without it.
"""
from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from mocap.errors import MocapError  # noqa: E402
from mocap.formats import (MAX_FPS, MAX_FRAMES, KEYPOINT_LAYOUTS, Keypoints2D, Motion, load_keypoints,  # noqa: E402
                           load_motion, save_keypoints, save_motion, validate_motion)

#: MOCAP_FUZZ_EXAMPLES=5000 for a longer, randomised hunt; the suite runs the same 250 each time
_EXAMPLES = int(os.environ.get("MOCAP_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(max_examples=_EXAMPLES or 250, deadline=None, derandomize=_EXAMPLES is None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_WORK = Path(tempfile.mkdtemp(prefix="mocap-fuzz-"))


def _file(name: str, data: bytes | str) -> Path:
    path = _WORK / name
    path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return path


# --- mutations shared by the readers ---------------------------------------------------------

def _mutate_bytes(data: bytes, edits: list[tuple[int, int, bytes]], cut: int | None) -> bytes:
    """Overwrite/insert at positions (taken modulo the length), then optionally truncate."""
    out = bytearray(data)
    for pos, mode, chunk in edits:
        i = pos % (len(out) + 1)
        if mode == 0:
            out[i:i + len(chunk)] = chunk
        elif mode == 1:
            out[i:i] = chunk
        else:
            del out[i:i + len(chunk) + 1]
    return bytes(out[:cut % (len(out) + 1)] if cut is not None else out)


_edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 2), st.binary(min_size=1, max_size=8)),
                  max_size=4)

#: tokens that break text formats in interesting ways
_TOKENS = ["nan", "inf", "-inf", "1e400", "-1e400", "0", "-1", "1e-320", "99999999999", "9" * 400, "", "{", "}",
           "[", "]", "=", '"', "'", ":", ",", "ROOT", "JOINT", "End", "Site", "OFFSET", "CHANNELS", "MOTION",
           "Frames:", "Frame Time:", "Xrotation", "Yposition", "\x00", "\ufffd", "true", "null", "-0", "1.5",
           "%YAML:1.0", "!!opencv-matrix", "rows: 3", "cols: 3", "dt: d", "data: [", "]]", "[[cam_1]]"]


def _mutate_text(text: str, ops: list[tuple[int, int, int, str]]) -> str:
    """Line-level edits: replace a token, delete, duplicate or swap lines, truncate."""
    lines = text.split("\n")
    for line_pos, kind, tok_pos, token in ops:
        if not lines:
            lines = [token]
            continue
        i = line_pos % len(lines)
        if kind == 0:  # replace one whitespace-separated token
            toks = lines[i].split(" ")
            toks[tok_pos % len(toks)] = token
            lines[i] = " ".join(toks)
        elif kind == 1:
            del lines[i]
        elif kind == 2:
            lines.insert(i, lines[i])
        elif kind == 3:
            j = tok_pos % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines = lines[:i]
            if lines:
                lines[-1] = lines[-1][: tok_pos % (len(lines[-1]) + 1)]
    return "\n".join(lines)


_text_ops = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 4), st.integers(0, 100),
                               st.sampled_from(_TOKENS) | st.text(max_size=6)), min_size=1, max_size=5)


# --- keypoints and motion npz --------------------------------------------------------------------

_floats = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from([0.0, 1.0, 2.0**100, -2.0**100])
_dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.uint16, np.bool_, np.complex64])


def _array(shape):
    return _dtypes.flatmap(lambda dt: hnp.arrays(dt, shape, elements=None if dt is not np.float32 else _floats))


def _value():
    """Any small npz member: numbers of any dtype and shape, or strings."""
    return st.one_of(
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5).flatmap(_array),
        st.text(max_size=12).map(np.array),
        st.lists(st.text(max_size=6), max_size=4).map(np.array),
    )


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _keypoint_arrays():
    """Mostly well-formed keypoints files, with any field possibly replaced or dropped."""
    t = st.integers(1, 6)
    layout = st.sampled_from([*KEYPOINT_LAYOUTS, "mpii16", "motion21", "", "x" * 50])

    def build(t, layout, kp_vals, conf_vals, size, fps, drop, extra):
        j = {"mediapipe33": 33, "coco17": 17, "mpii16": 16}.get(layout, 33)
        arrays = {"keypoints": np.resize(kp_vals, (t, j, 2)).astype(np.float32),
                  "confidence": np.resize(conf_vals, (t, j)).astype(np.float32),
                  "layout": np.array(layout), "image_size": np.array(size), "fps": np.array(fps)}
        arrays.update(extra)
        for k in drop:
            arrays.pop(k, None)
        return arrays

    return st.builds(
        build, t, layout,
        hnp.arrays(np.float32, st.integers(1, 20), elements=_floats | st.floats(0, 2000, width=32)),
        hnp.arrays(np.float32, st.integers(1, 20), elements=_floats | st.floats(0, 1, width=32)),
        st.lists(st.integers(-5, 10**6) | st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=3),
        st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([30.0, 60.0, MAX_FPS, 1e300]),
        st.lists(st.sampled_from(["keypoints", "confidence", "layout", "image_size", "fps"]), max_size=2),
        st.dictionaries(st.sampled_from(["keypoints", "confidence", "layout", "image_size", "fps", "world_landmarks"]),
                        _value(), max_size=2),
    )


def _check_keypoints(k: Keypoints2D) -> None:
    assert k.layout in KEYPOINT_LAYOUTS
    assert 1 <= k.num_frames <= MAX_FRAMES
    assert k.keypoints.shape[1:] == (33 if k.layout == "mediapipe33" else 17, 2)
    assert 0 < k.fps <= MAX_FPS
    assert not np.isinf(k.keypoints).any()


@FUZZ
@given(arrays=_keypoint_arrays())
def test_keypoints_npz_generated(arrays):
    _load_npz_checked("keypoints", _npz_bytes(arrays))


def _valid_keypoints_bytes() -> bytes:
    from tests.synthetic import synthetic_keypoints, waving_walker

    path = _WORK / "valid_k.npz"
    save_keypoints(path, synthetic_keypoints(waving_walker(t=4)))
    return path.read_bytes()




def _motion_arrays():
    """Motion files around a valid 21-joint one: shapes, parents, fps and values varied."""
    from mocap.skeletons import MOTION21

    j = MOTION21.num_joints

    def build(t, joints, quats, parents_edit, fps, drop, extra):
        parents = np.array(MOTION21.parents, np.int64)
        for index, value in parents_edit:
            parents[index % j] = value
        q = np.resize(quats, (t, j, 4)).astype(np.float32)
        arrays = {"joints": np.resize(joints, (t, j, 3)).astype(np.float32),
                  "joint_names": np.array(MOTION21.joint_names), "parents": parents, "fps": np.array(fps),
                  "local_quats_wxyz": q, "root_translation": np.zeros((t, 3), np.float32),
                  "rest_offsets": np.ones((j, 3), np.float32) * 0.1}
        arrays.update(extra)
        for k in drop:
            arrays.pop(k, None)
        return arrays

    return st.builds(
        build, st.integers(1, 5),
        hnp.arrays(np.float32, st.integers(1, 12), elements=_floats),
        st.sampled_from([np.array([1.0, 0, 0, 0]), np.array([0.5, 0.5, 0.5, 0.5])])
        | hnp.arrays(np.float32, st.integers(1, 8), elements=_floats),
        st.lists(st.tuples(st.integers(0, 100), st.integers(-3, 40) | st.sampled_from([2**40, -2**40])), max_size=2),
        st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([30.0, 1e300]),
        st.lists(st.sampled_from(["joints", "joint_names", "parents", "fps", "local_quats_wxyz", "valid"]), max_size=2),
        st.dictionaries(st.sampled_from(["joints", "joint_names", "parents", "fps", "start_frame", "valid",
                                         "rest_offsets", "root_translation"]), _value(), max_size=2),
    )


def _check_motion(m: Motion) -> None:
    validate_motion(m)  # a loaded motion passes the exporters' checks
    assert m.joints.shape[2] == 3 and 1 <= m.num_frames <= MAX_FRAMES and 0 < m.fps <= MAX_FPS


@FUZZ
@given(arrays=_motion_arrays())
def test_motion_npz_generated(arrays):
    _load_npz_checked("motion", _npz_bytes(arrays))


def _valid_motion_bytes() -> bytes:
    from mocap.skeletons import MOTION21, rest_offsets
    from tests.synthetic import waving_walker

    joints = waving_walker(t=4)
    quats = np.zeros((4, MOTION21.num_joints, 4))
    quats[..., 0] = 1.0
    m = Motion(joints=joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=30.0,
               local_quats_wxyz=quats, root_translation=joints[:, 0], rest_offsets=rest_offsets())
    path = _WORK / "valid_m.npz"
    save_motion(path, m)
    return path.read_bytes()


_NPZ_READERS = {"keypoints": (load_keypoints, _check_keypoints, _valid_keypoints_bytes()),
                "motion": (load_motion, _check_motion, _valid_motion_bytes())}


def _load_npz_checked(kind: str, data: bytes) -> None:
    """Load ``data`` as a ``kind`` file: MocapError, or a result that passes the kind's checks."""
    load, check, _ = _NPZ_READERS[kind]
    try:
        result = load(_file(f"{kind}.npz", data))
    except MocapError:
        return
    check(result)


@pytest.mark.parametrize("kind", sorted(_NPZ_READERS))
@FUZZ
@given(edits=_edits, cut=st.none() | st.integers(0, 1 << 16))
def test_npz_mutated(kind, edits, cut):
    _load_npz_checked(kind, _mutate_bytes(_NPZ_READERS[kind][2], edits, cut))


@FUZZ
@given(shape=st.lists(st.integers(0, 2**40), min_size=0, max_size=4), descr=st.sampled_from(["<f4", "<f8", "|b1", "<U5", "O", "<f16", "zz"]))
def test_npz_with_any_declared_header(shape, descr):
    """A member whose header declares any shape and dtype, with little data behind it."""
    header = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    raw = b"\x93NUMPY\x01\x00" + len(header.encode()).to_bytes(2, "little") + header.encode() + bytes(64)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("keypoints.npy", raw)
    for loader in (load_keypoints, load_motion):
        with pytest.raises(MocapError):
            loader(_file("h.npz", buf.getvalue()))


# --- BVH ---------------------------------------------------------------------------------------

def _valid_bvh_text() -> str:
    from mocap.io.bvh import write_bvh
    from mocap.skeletons import MOTION21, rest_offsets

    quats = np.zeros((3, MOTION21.num_joints, 4))
    quats[..., 0] = 1.0
    path = _WORK / "valid.bvh"
    write_bvh(path, joint_names=MOTION21.joint_names, parents=MOTION21.parents, rest_offsets=rest_offsets(),
              local_quats_wxyz=quats, root_translation=np.zeros((3, 3)), fps=30.0)
    return path.read_text()


_VALID_BVH = _valid_bvh_text()


def _read_bvh_checked(text: str) -> None:
    from mocap.io.bvh import read_bvh

    try:
        b = read_bvh(_file("x.bvh", text))
    except MocapError:
        return
    j = len(b.joint_names)
    assert len(b.parents) == j and b.rest_offsets.shape == (j, 3)
    assert b.local_quats_wxyz.shape[1:] == (j, 4) and b.local_quats_wxyz.shape[0] <= MAX_FRAMES
    assert np.isfinite(b.local_quats_wxyz).all() and np.isfinite(b.root_translation).all()
    assert np.isfinite(b.rest_offsets).all() and 0 < b.fps <= MAX_FPS
    assert all(-1 <= p < k for k, p in enumerate(b.parents))


@FUZZ
@given(ops=_text_ops)
def test_bvh_mutated(ops):
    _read_bvh_checked(_mutate_text(_VALID_BVH, ops))


@FUZZ
@given(text=st.text(max_size=300) | st.builds(lambda a, b: "HIERARCHY\nROOT " + a + b, st.text(max_size=60),
                                                st.text(alphabet="{} \nJOINTEndSiteOFFSETCHANNELS0123456789.-",
                                                        max_size=200)))
def test_bvh_from_scratch(text):
    _read_bvh_checked(text)


def test_bvh_deep_nesting_is_refused():
    text = "HIERARCHY\nROOT r\n{\nOFFSET 0 0 0\n" + "JOINT j\n{\nOFFSET 0 0 0\n" * 5000 + "}\n" * 5001
    with pytest.raises(MocapError):
        _read_bvh_checked_raw(text)


def _read_bvh_checked_raw(text: str):
    from mocap.io.bvh import read_bvh

    return read_bvh(_file("deep.bvh", text))


# --- camera sets: TOML, Qualisys, OpenCV YAML -------------------------------------------------------

def _cameras():
    from mocap.camera import Camera, intrinsic_matrix

    r = np.array([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]])
    return [Camera(name=f"c{i}", size=(1920, 1080), K=intrinsic_matrix(1400.0 + i, (960.0, 540.0)), R=r,
                   t=np.array([0.1 * i, 0.2, 3.0]), dist=np.array([0.01, -0.02, 0.0, 0.0, 0.001])) for i in range(2)]


def _check_cameras(cams) -> None:
    assert cams
    for c in cams:
        assert c.K.shape == (3, 3) and c.R.shape == (3, 3) and c.t.shape == (3,) and c.dist.shape == (5,)
        assert np.isfinite(c.K).all() and np.isfinite(c.R).all() and np.isfinite(c.t).all()
        assert np.isfinite(c.dist).all()
        assert len(c.size) == 2 and all(v > 0 for v in c.size)
        np.testing.assert_allclose(c.R @ c.R.T, np.eye(3), atol=1e-3)


def _load_checked(name: str, text: str) -> None:
    from mocap.io.calibration_files import load_calibration

    try:
        cams = load_calibration(_file(name, text))
    except MocapError:
        return
    _check_cameras(cams)


def _valid_text(save, name: str) -> str:
    path = _WORK / name
    save(path, _cameras())
    return path.read_text()


def _toml_text():
    from mocap.io.calibration_files import save_cameras_toml

    return _valid_text(save_cameras_toml, "valid.toml")


def _yaml_text():
    from mocap.io.calibration_files import save_opencv_yaml

    return _valid_text(save_opencv_yaml, "valid.yml")


_VALID_TOML, _VALID_YAML = _toml_text(), _yaml_text()

_QUALISYS = """<?xml version='1.0' encoding='ASCII'?>
<calibration type="regular">
  <cameras>
    <camera active="1" serial="cam01">
      <fov_video bottom="1919" left="0" right="1087" top="0"/>
      <transform r11="0.0" r12="1.0" r13="0.0" r21="-1.0" r22="0.0" r23="0.0" r31="0.0" r32="0.0" r33="1.0"
       x="1460.2" y="-1909.1" z="1896.5"/>
      <intrinsic centerPointU="34110.3" centerPointV="60680.7" focalLengthU="107599.6" focalLengthV="107588.8"
       radialDistortion1="-0.046" radialDistortion2="0.139" radialDistortion3="0.0" tangentalDistortion1="0.0"
       tangentalDistortion2="0.0" skew="0"/>
    </camera>
  </cameras>
</calibration>
"""


def test_the_valid_camera_files_load():
    """The seeds of the fuzzing are valid, so mutations start from a file that loads."""
    from mocap.io.calibration_files import load_calibration

    for name, text in (("ok.toml", _VALID_TOML), ("ok.yml", _VALID_YAML), ("ok.qca.txt", _QUALISYS)):
        _check_cameras(load_calibration(_file(name, text)))


@FUZZ
@given(ops=_text_ops)
def test_camera_toml_mutated(ops):
    _load_checked("c.toml", _mutate_text(_VALID_TOML, ops))


@FUZZ
@given(ops=_text_ops)
def test_opencv_yaml_mutated(ops):
    _load_checked("c.yml", _mutate_text(_VALID_YAML, ops))


_XML_VALUES = st.sampled_from(["nan", "inf", "-1e400", "", "abc", "0", "-5", "1e308", "99999999999999999999"])


@FUZZ
@given(ops=_text_ops, attrs=st.lists(st.tuples(st.integers(0, 40), _XML_VALUES), max_size=3))
def test_qualisys_mutated(ops, attrs):
    import re

    text = _QUALISYS
    values = list(re.finditer(r'="([^"]*)"', text))
    for index, value in attrs:  # replace attribute values, keeping the XML well formed
        m = values[index % len(values)]
        text = text[:m.start(1)] + value + text[m.end(1):]
        values = list(re.finditer(r'="([^"]*)"', text))
    _load_checked("c.qca.txt", _mutate_text(text, ops) if ops[0][1] == 0 else text)


@FUZZ
@given(text=st.text(max_size=200), suffix=st.sampled_from(["c.toml", "c.yml", "c.qca.txt", "c.xml"]))
def test_camera_files_from_scratch(text, suffix):
    _load_checked(suffix, text)


# --- the stream's JSON messages ----------------------------------------------------------------------

_json_scalars = (st.none() | st.booleans() | st.integers(-(10**400), 10**400) | st.sampled_from([10**309, -(10**4000)])
                 | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
_json = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=5)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=40)


def _hello_messages():
    keys = st.sampled_from(["type", "layout", "image_size", "fps", "coords", "smoothing", "decimals", "protocol"])
    base = st.fixed_dictionaries({"type": st.just("hello"),
                                  "image_size": st.just([640, 480]) | _json,
                                  "layout": st.sampled_from(["mediapipe33", "coco17", "mpii16", "x"]) | _json})
    return st.builds(lambda b, extra: {**b, **extra}, base, st.dictionaries(keys, _json, max_size=3)) | _json


def _frame_messages(joints: int):
    point = st.none() | st.lists(_json_scalars, min_size=2, max_size=2) | _json
    pts = st.lists(point, min_size=joints, max_size=joints) | _json
    conf = st.lists(_json_scalars, min_size=joints, max_size=joints) | _json
    hand_pts = st.lists(point, min_size=42, max_size=42) | _json
    hand_conf = st.lists(_json_scalars, min_size=42, max_size=42) | _json
    world = st.lists(st.none() | st.lists(_json_scalars, min_size=3, max_size=3) | _json, min_size=42,
                     max_size=42) | _json
    return st.fixed_dictionaries({"type": st.just("frame")},  # the server answers non-objects itself
                                 optional={"keypoints": pts, "confidence": conf, "frame": _json_scalars,
                                           "t": _json_scalars, "hand_keypoints": hand_pts,
                                           "hand_confidence": hand_conf, "hand_world": world}) \
        | st.dictionaries(st.text(max_size=8), _json)


@FUZZ
@given(msg=_hello_messages())
def test_stream_hello(msg):
    from mocap.service.stream_session import parse_hello

    try:
        config = parse_hello(msg)
    except ValueError:
        return
    assert config.layout in ("mediapipe33", "coco17") and all(v > 0 for v in config.image_size)
    assert config.fps is None or (math.isfinite(config.fps) and config.fps > 0)


@FUZZ
@given(msg=_frame_messages(17), normalized=st.booleans())
def test_stream_frame(msg, normalized):
    from mocap.service.stream_session import parse_frame, parse_hello

    config = parse_hello({"type": "hello", "layout": "coco17", "image_size": [640, 480],
                          "coords": "normalized" if normalized else "pixels"})
    try:
        frame = parse_frame(msg, config)
    except ValueError:
        return
    assert frame.keypoints.shape == (17, 2) and frame.confidence.shape == (17,)
    assert not np.isinf(frame.keypoints).any()
    assert ((frame.confidence >= 0) & (frame.confidence <= 1)).all()
    json.dumps({"frame": frame.index, "t": frame.t}, allow_nan=False)  # echoed back as valid JSON
    if frame.hand_keypoints is not None:  # hands: the shapes, no infinity, confidence in [0, 1]
        assert frame.hand_keypoints.shape == (42, 2) and frame.hand_confidence.shape == (42,)
        assert not np.isinf(frame.hand_keypoints).any()
        assert ((frame.hand_confidence >= 0) & (frame.hand_confidence <= 1)).all()
        if frame.hand_world is not None:
            assert frame.hand_world.shape == (42, 3) and not np.isinf(frame.hand_world).any()


@FUZZ
@given(body=st.fixed_dictionaries({"layout": st.sampled_from(["coco17", "mediapipe33"]) | _json,
                                   "image_size": st.just([640, 480]) | _json,
                                   "fps": st.just(30) | _json_scalars,
                                   "keypoints": st.lists(st.lists(st.lists(_json_scalars, min_size=2, max_size=2),
                                                                  min_size=17, max_size=17), max_size=3) | _json},
                                  optional={"confidence": _json}) | _json)
def test_lift_request_json(body):
    from mocap.service.lift_request import keypoints_from_json

    try:
        k = keypoints_from_json(body, max_frames=100)
    except ValueError:
        return
    _check_keypoints(k)
