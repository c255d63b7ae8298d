"""The default 2D detector runs without MediaPipe and without the tflite packages.

A subprocess makes ``mediapipe``, ``tflite`` and ``tflite_runtime`` unimportable (a
meta-path finder that refuses them, installed before anything else is imported), then runs
the default detector (``DetectionOptions().detector_for(1)``, i.e. blazepose-torch from the
converted weights shipped in the package) on frames of examples/balance_cam01.mp4, and the
whole default ``mocap capture``. The keypoints are checked against values from the normal
path: the same estimator in this process (mediapipe importable, where installed), the
.tflite path where mediapipe is installed, and a few joints recorded on the dev machine.
It needs no mediapipe itself: it also ran in a venv with numpy 2.4, OpenCV 5.1 and torch only.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from .conftest import EXAMPLE_VIDEO

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
FRAMES = (0, 50, 99)
# joints (MediaPipe-33 index) and their pixels on FRAMES from the normal path (dev machine);
# the man is about 800 px tall in these 1080x1920 frames
JOINTS = (0, 11, 24, 27, 16)  # nose, left shoulder, right hip, left ankle, right wrist
KNOWN = np.array([[[509.37, 443.99], [515.86, 512.07], [376.67, 729.99], [417.34, 1084.88], [265.66, 731.95]],
                  [[740.49, 632.18], [674.74, 660.76], [413.05, 766.40], [406.44, 1104.05], [629.99, 421.53]],
                  [[757.59, 621.09], [778.31, 600.90], [575.21, 877.11], [600.56, 1237.83], [468.67, 834.83]]])

BLOCKER = """
import sys

BLOCKED = ("mediapipe", "tflite", "tflite_runtime")


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (made unimportable by the test)", name=name)
        return None


sys.meta_path.insert(0, Refuse())
assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED]
"""


def _run_blocked(code: str, tmp_path: Path) -> dict:
    """Run ``code`` after the blocker in a fresh interpreter; it prints one JSON line last."""
    script = tmp_path / "blocked.py"
    script.write_text(BLOCKER + textwrap.dedent(code))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _frames() -> list[np.ndarray]:
    from mocap.io.video import iter_frames

    return [f for i, f in enumerate(iter_frames(EXAMPLE_VIDEO)) if i in FRAMES]


def test_default_detector_without_mediapipe_or_tflite(tmp_path):
    got = _run_blocked(f"""
        import json
        import numpy as np
        from mocap.detect2d.estimators import get_estimator
        from mocap.detect2d.options import DetectionOptions
        from mocap.io.video import iter_frames

        name = DetectionOptions().detector_for(1)
        frames = [f for i, f in enumerate(iter_frames({str(EXAMPLE_VIDEO)!r})) if i in {FRAMES!r}]
        est = get_estimator(name, device="cpu")(frames)
        np.savez("est.npz", keypoints=est.keypoints, confidence=est.confidence, scores=est.scores)
        try:
            import mediapipe  # noqa: F401
            refused = False
        except ImportError:
            refused = True
        import torch
        print(json.dumps({{"detector": name, "refused": refused, "threads": torch.get_num_threads(),
                          "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}}))
    """, tmp_path)
    threads = got.pop("threads")
    assert got == {"detector": "blazepose-torch", "refused": True, "loaded": []}
    blocked = np.load(tmp_path / "est.npz")
    kp = blocked["keypoints"]
    assert kp.shape == (len(FRAMES), 1, 33, 2) and (blocked["scores"][:, 0] > 0.9).all()
    # the recorded joints (OpenCV 4.11), to 3 px (0.4 % of the man's height): the crops come from
    # cv2.warpAffine, whose fixed-point bilinear weights changed between releases (OpenCV 5.1
    # with numpy 2.4 moves these joints by up to 1.4 px; wrong weights or graph options move them by tens)
    np.testing.assert_allclose(kp[:, 0][:, JOINTS], KNOWN, atol=3.0)
    # the normal path in this process, and the .tflite path: the very same numbers
    frames = _frames()
    # as many torch threads as the subprocess had (an earlier test may have set another count,
    # and a different split of the sums moves keypoints by ~0.03 px)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _compare_in_process(kp, blocked["confidence"], frames)
    finally:
        torch.set_num_threads(before)


def _compare_in_process(kp: np.ndarray, confidence: np.ndarray, frames: list[np.ndarray]) -> None:
    from mocap.detect2d.estimators import get_estimator

    normal = get_estimator("blazepose-torch")(frames)
    np.testing.assert_allclose(kp, normal.keypoints, atol=1e-3)
    np.testing.assert_allclose(confidence, normal.confidence, atol=1e-5)
    # and MediaPipe's own .tflite files read with the tflite package, where installed
    try:
        import mediapipe  # noqa: F401
        import tflite  # noqa: F401
    except ImportError:
        return
    from mocap.detect2d.estimators.blazepose_torch import BlazePoseTorch

    ref = BlazePoseTorch(models="mediapipe")(frames)
    d = np.linalg.norm(kp - ref.keypoints, axis=-1)
    assert d.max() < 1e-3, d.max()


@pytest.mark.slow
def test_default_capture_without_mediapipe(tmp_path):
    """`mocap capture VIDEO` end to end with mediapipe unimportable; `--detector mediapipe` then
    says which extra to install. `mocap detect VIDEO --people` writes the capture's very
    keypoints2d.npz and people.json (known answer: identical arrays), also without mediapipe."""
    got = _run_blocked(f"""
        import contextlib
        import io
        import json
        import numpy as np
        from mocap.cli import main
        from mocap.formats import load_keypoints, load_motion

        rc = main(["capture", {str(EXAMPLE_VIDEO)!r}, "-o", "out", "-q", "--no-overlay", "--no-preview"])
        kp = load_keypoints("out/keypoints2d.npz")
        m = load_motion("out/motion.npz")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc_mp = main(["capture", {str(EXAMPLE_VIDEO)!r}, "-o", "out_mp", "-q", "--detector", "mediapipe"])
        rc_detect = main(["detect", {str(EXAMPLE_VIDEO)!r}, "-o", "k.npz", "-q", "--people"])
        alone = load_keypoints("k.npz")
        same = {{"keypoints": bool(np.array_equal(alone.keypoints, kp.keypoints, equal_nan=True)),
                "confidence": bool(np.array_equal(alone.confidence, kp.confidence)),
                "people": json.load(open("people.json")) == json.load(open("out/people.json"))}}
        err_detect = io.StringIO()
        with contextlib.redirect_stderr(err_detect):
            rc_detect_mp = main(["detect", {str(EXAMPLE_VIDEO)!r}, "-o", "k_mp.npz", "-q", "--detector", "mediapipe"])
        print(json.dumps({{"rc": rc, "frames": kp.num_frames, "rate": kp.detection_rate(), "layout": kp.layout,
                          "joints_finite": bool(np.isfinite(m.joints).all()),
                          "rc_mp": rc_mp, "err_mp": err.getvalue(), "rc_detect": rc_detect, "same": same,
                          "rc_detect_mp": rc_detect_mp, "err_detect_mp": err_detect.getvalue(),
                          "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}}))
    """, tmp_path)
    assert got["rc"] == 0 and got["frames"] == 100 and got["layout"] == "mediapipe33"
    assert got["rate"] >= 0.95 and got["joints_finite"] and got["loaded"] == []
    assert got["rc_mp"] == 1 and "mocap-lift[detect]" in got["err_mp"], got["err_mp"]
    # mocap detect alone: the capture's 2D stage, so the very same keypoints2d.npz and people.json
    assert got["rc_detect"] == 0 and got["same"] == {"keypoints": True, "confidence": True, "people": True}
    assert got["rc_detect_mp"] == 1 and "mocap-lift[detect]" in got["err_detect_mp"], got["err_detect_mp"]


def test_stream_2d_without_mediapipe(tmp_path):
    """`mocap stream-2d` streams with the default detector with mediapipe unimportable;
    `--detector mediapipe` then stops with one line naming the extra and the default."""
    got = _run_blocked(f"""
        import contextlib
        import io
        import json
        from mocap.detect2d.stream import stream2d_main

        rc = stream2d_main([{str(EXAMPLE_VIDEO)!r}, "--max-frames", "2"])
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc_mp = stream2d_main([{str(EXAMPLE_VIDEO)!r}, "--max-frames", "2", "--detector", "mediapipe"])
        print(json.dumps({{"rc": rc, "rc_mp": rc_mp, "err_mp": err.getvalue(),
                          "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}}))
    """, tmp_path)
    assert got["rc"] == 0 and got["loaded"] == []
    assert got["rc_mp"] == 1 and got["err_mp"].count("\n") == 1, got["err_mp"]
    assert got["err_mp"].startswith("mocap stream-2d: error: --detector mediapipe needs MediaPipe")
    assert "mocap-lift[detect]" in got["err_mp"] and "leave out --detector" in got["err_mp"]
