"""The README's Python example runs as written and gives the motion it describes."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import EXAMPLE_VIDEO

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("torch", reason="the example uses the PyTorch BlazePose and the lifting network: pip install 'mocap-lift[lift]'")


def readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "the README should hold one Python example"
    return blocks[0]


@pytest.mark.slow
def test_readme_python_example(tmp_path, capsys):
    (tmp_path / "examples").mkdir()
    os.symlink(EXAMPLE_VIDEO, tmp_path / "examples" / "balance_cam01.mp4")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(readme_python(), "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    from mocap.formats import load_motion

    from mocap.fit.quality import motion_height

    tall, default = load_motion(tmp_path / "out" / "motion_180cm.npz"), load_motion(tmp_path / "out" / "motion.npz")
    assert f"({default.joints.shape[0]}, 21, 3)" in printed and "frames:" in printed
    assert tall.joints.shape == default.joints.shape
    # the person as tall as the user said, the default's own estimate elsewhere
    assert motion_height(tall) == pytest.approx(1.80, abs=0.01)
    assert abs(motion_height(default) - 1.80) > 0.02
    assert np.nanmin(tall.joints[..., 1]) > -0.05
    # gravity and the focal length from the room's lines, kept in keypoints2d.npz for `mocap lift`: the
    # Pose2Sim calibration of this camera says 22.5 deg down, 13.4 deg of roll, a focal length of 1681 px
    from mocap.fit.quality import read_quality_json
    from mocap.formats import load_keypoints

    q = read_quality_json(tmp_path / "out" / "quality.json")
    assert q["gravity_from"] == "scene" and q["focal_from"] == "scene"
    assert q["camera_focal_px"] == pytest.approx(1681, rel=0.03)
    # (the roll: 14.12 deg with torch on two threads, 14.42 on one, as the whole suite's process
    # has it after an earlier test set it process-wide: the float sums differ with the threads)
    assert q["camera_pitch_deg"] == pytest.approx(22.5, abs=2.0) and q["camera_roll_deg"] == pytest.approx(13.4, abs=1.5)
    assert len(load_keypoints(tmp_path / "out" / "keypoints2d.npz").scene_lines) > 50
    assert np.nanmin(default.joints[..., 1]) > -0.05  # feet on y = 0, nothing far below it
