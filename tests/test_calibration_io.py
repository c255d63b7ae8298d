"""Camera-set files: our TOML round trip, Pose2Sim/anipose TOML, OpenCV YAML, Qualisys, bad files."""
import numpy as np
import pytest

from mocap.io.calibration_files import (load_calibration, load_cameras_toml, load_opencv_yaml, matrix_to_rotvec,
                                  rotvec_to_matrix, save_cameras_toml, save_opencv_yaml)
from mocap.errors import MocapError
from tests.conftest import shared_path
from tests.multiview_helpers import ring_rig

# A camera as Pose2Sim writes it (4 distortions, float sizes, [metadata] without units).
POSE2SIM_TOML = """
[cam_01]
name = "cam01"
size = [ 1088.0, 1920.0]
matrix = [ [ 1681.24, 0.0, 532.97], [ 0.0, 1681.07, 948.14], [ 0.0, 0.0, 1.0]]
distortions = [ -0.046183, 0.139983, 0.000608, 0.00069]
rotation = [ 1.6760, 1.2050, -0.6140]
translation = [ 0.1100, 0.8890, 2.9340]
fisheye = false

[cam_02]
name = "cam02"
size = [ 1088.0, 1920.0]
matrix = [ [ 1673.73, 0.0, 534.49], [ 0.0, 1673.80, 963.23], [ 0.0, 0.0, 1.0]]
distortions = [ -0.047847, 0.136786, 0.000972, 0.000291]
rotation = [ 1.3110, -0.8930, 0.4100]
translation = [ -0.2050, 0.9240, 2.6700]
fisheye = false

[metadata]
adjusted = false
error = 0.0
"""

ANIPOSE_MM_TOML = """
[cam_0]
name = "A"
size = [ 1920, 1080,]
matrix = [ [ 1500.0, 0.0, 960.0,], [ 0.0, 1500.0, 540.0,], [ 0.0, 0.0, 1.0,],]
distortions = [ 0.01, -0.02, 0.0, 0.0, 0.003,]
rotation = [ 0.0, 0.1, 0.0,]
translation = [ 100.0, -200.0, 3000.0,]

[metadata]
units = "mm"
"""


def _assert_same(a, b, atol=1e-12):
    assert [c.name for c in a] == [c.name for c in b]
    for x, y in zip(a, b):
        assert tuple(x.size) == tuple(y.size)
        for f in ("K", "R", "t", "dist"):
            np.testing.assert_allclose(getattr(x, f), getattr(y, f), atol=atol, err_msg=f)


def test_rotvec_round_trip_including_half_turn():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(20, 3))
    v *= (rng.uniform(0, np.pi, 20) / np.linalg.norm(v, axis=-1))[:, None]
    np.testing.assert_allclose(rotvec_to_matrix(matrix_to_rotvec(rotvec_to_matrix(v))), rotvec_to_matrix(v), atol=1e-12)
    half = rotvec_to_matrix(np.array([0.0, np.pi, 0.0]))
    np.testing.assert_allclose(half, np.diag([-1.0, 1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(rotvec_to_matrix(matrix_to_rotvec(half)), half, atol=1e-12)


def test_toml_round_trip(tmp_path):
    cams = ring_rig(4)
    path = tmp_path / "rig.toml"
    save_cameras_toml(path, cams, metadata={"source": 'a "quoted" note', "frame_offsets": [0, 3, -2, 1]})
    back = load_cameras_toml(path)
    _assert_same(back, cams, atol=1e-12)
    # what is loaded projects the same pixels, to well under a micro-pixel
    x = np.random.default_rng(1).uniform([-1, 0, -1], [1, 2, 1], (50, 3))
    for a, b in zip(cams, back):
        np.testing.assert_allclose(a.project(x), b.project(x), atol=1e-6)
    import tomllib

    meta = tomllib.loads(path.read_text())["metadata"]
    assert meta["units"] == "m" and meta["frame_offsets"] == [0, 3, -2, 1] and meta["source"] == 'a "quoted" note'
    save_cameras_toml(path, back)  # a second round trip changes nothing
    _assert_same(load_cameras_toml(path), cams, atol=1e-12)


def test_pose2sim_and_anipose_toml(tmp_path):
    p = tmp_path / "Calib_pose2sim.toml"
    p.write_text(POSE2SIM_TOML)
    cams = load_calibration(p)
    assert [c.name for c in cams] == ["cam01", "cam02"] and cams[0].size == (1088, 1920)
    np.testing.assert_allclose(cams[0].dist, [-0.046183, 0.139983, 0.000608, 0.00069, 0.0])
    np.testing.assert_allclose(cams[1].R, rotvec_to_matrix(np.array([1.3110, -0.8930, 0.4100])), atol=1e-12)
    np.testing.assert_allclose(cams[1].t, [-0.2050, 0.9240, 2.6700])
    a = tmp_path / "anipose.toml"
    a.write_text(ANIPOSE_MM_TOML)
    (cam,) = load_calibration(a)
    np.testing.assert_allclose(cam.t, [0.1, -0.2, 3.0])  # millimetres -> metres
    assert cam.size == (1920, 1080) and cam.dist[4] == 0.003


def test_opencv_yaml_round_trip_and_single_camera(tmp_path):
    import cv2

    cams = ring_rig(3)
    path = tmp_path / "rig.yml"
    save_opencv_yaml(path, cams)
    _assert_same(load_calibration(path), cams, atol=1e-12)
    # OpenCV's calibration sample output: one camera, intrinsics only
    single = tmp_path / "out_camera_data.yml"
    fs = cv2.FileStorage(str(single), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", 1280)
    fs.write("image_height", 720)
    fs.write("camera_matrix", np.array([[900.0, 0, 640], [0, 901, 360], [0, 0, 1]]))
    fs.write("distortion_coefficients", np.array([[0.1, -0.05, 0.001, 0.002, 0.01]]))
    fs.release()
    (cam,) = load_opencv_yaml(single)
    assert cam.size == (1280, 720) and cam.K[1, 1] == 901 and np.allclose(cam.R, np.eye(3))
    np.testing.assert_allclose(cam.dist, [0.1, -0.05, 0.001, 0.002, 0.01])


def test_qualisys_through_the_dispatcher():
    cams = load_calibration(shared_path("video", "pose2sim_single", "calibration", "Calib.qca.txt"))
    assert len(cams) == 4 and cams[0].name == "cam01"


@pytest.mark.parametrize("name, text, match", [
    ("broken.toml", "[cam_0\nname = 1", "not a readable TOML"),
    ("empty.toml", "[metadata]\nunits = 'm'\n", "holds no cameras"),
    ("nomatrix.toml", "[cam_0]\nname='a'\nsize=[10,10]\nrotation=[0,0,0]\ntranslation=[0,0,0]\n",
     "missing key 'matrix'"),
    ("fish.toml", "[cam_0]\nfisheye=true\n", "fisheye"),
    ("units.toml", "[metadata]\nunits='furlong'\n", "unknown units"),
    ("badrot.toml", "[cam_0]\nname='a'\nsize=[10,10]\nmatrix=[[1,0,0],[0,1,0],[0,0,1]]\n"
                    "rotation=[[2,0,0],[0,1,0],[0,0,1]]\ntranslation=[0,0,0]\n", "not a rotation"),
    ("calib.json", "{}", "unknown calibration format"),
    ("bad.yml", "%YAML:1.0\n---\nfoo: 1\n", "neither 'names'"),
    ("garbage.yml", "::: [[[ not yaml\n", "not a readable OpenCV"),
])
def test_bad_calibration_files(tmp_path, name, text, match):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(MocapError, match=match):
        load_calibration(p)


def test_missing_file(tmp_path):
    with pytest.raises(MocapError, match="not found"):
        load_calibration(tmp_path / "nope.toml")
