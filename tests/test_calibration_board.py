"""Board calibration (checkerboard, ChArUco) on synthetic views of a known camera, and real images."""
import numpy as np
import pytest

from mocap.multiview.board import Board, calibrate_extrinsics, calibrate_intrinsics, detect_board
from mocap.multiview.calibration import rotation_angle_deg
from mocap.io.calibration_files import rotvec_to_matrix
from mocap.camera import Camera
from mocap.errors import MocapError
from tests.conftest import shared_path

SIZE = (960, 720)
K = np.array([[820.0, 0.0, 470.0], [0.0, 822.0, 365.0], [0.0, 0.0, 1.0]])
PPS, MARGIN = 60, 30  # rendered pixels per square, margin


def _view(board: Board, r: np.ndarray, t: np.ndarray, k=K) -> np.ndarray:
    """Synthetic grey image of the rendered board seen by a pinhole camera (R, t)."""
    import cv2

    art = board.render(pixels_per_square=PPS, margin=MARGIN)
    # rendered pixel -> board metres (the first inner corner at the origin) -> image
    s = board.square_m / PPS
    to_board = np.array([[s, 0, -(MARGIN + PPS) * s], [0, s, -(MARGIN + PPS) * s], [0, 0, 1]])
    h = k @ np.column_stack([r[:, 0], r[:, 1], t]) @ to_board
    return cv2.warpPerspective(art, h, SIZE, borderValue=128)


def _poses(n, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        r = rotvec_to_matrix(rng.uniform(-0.5, 0.5, 3) * [1, 1, 0.3])
        t = np.array([rng.uniform(-0.25, 0.05), rng.uniform(-0.2, 0.0), rng.uniform(0.9, 1.3)])
        yield r, t


@pytest.mark.parametrize("board", [Board("checkerboard", (7, 5), 0.04),
                                   Board("charuco", (8, 6), 0.04, marker_m=0.03)], ids=["checkerboard", "charuco"])
def test_intrinsics_recovered(board):
    n = 8 if board.kind == "checkerboard" else 14  # ChArUco corners are less precise: more views
    images = [_view(board, r, t) for r, t in _poses(n)]
    cam, report = calibrate_intrinsics(images, board, name="c0")
    assert cam.size == SIZE and len(report.used) >= n - 1
    assert report.rms_px < 0.5
    np.testing.assert_allclose(cam.K[[0, 1], [0, 1]], K[[0, 1], [0, 1]], rtol=0.01)
    np.testing.assert_allclose(cam.K[:2, 2], K[:2, 2], atol=6.0)


def test_detection_and_extrinsics_of_two_cameras():
    board = Board("checkerboard", (7, 5), 0.04)
    r0, t0 = rotvec_to_matrix(np.array([0.2, -0.3, 0.05])), np.array([-0.12, -0.08, 1.0])
    r1, t1 = rotvec_to_matrix(np.array([-0.25, 0.35, -0.1])), np.array([-0.15, -0.1, 1.1])
    found = detect_board(_view(board, r0, t0), board)
    assert found is not None
    corners, ids = found
    cam = Camera(name="a", size=SIZE, K=K, R=r0, t=t0, dist=np.zeros(5))
    assert np.abs(cam.project(board.object_points[ids]) - corners).max() < 1.0  # sub-pixel corners
    intr = [Camera(name=n, size=SIZE, K=K, R=np.eye(3), t=np.zeros(3), dist=np.zeros(5)) for n in "ab"]
    posed, errs = calibrate_extrinsics(intr, [_view(board, r0, t0), _view(board, r1, t1)], board)
    assert errs.max() < 0.5
    for p, r, t in zip(posed, (r0, r1), (t0, t1)):
        assert rotation_angle_deg(p.R, r) < 0.3 and np.linalg.norm(p.t - t) < 0.005


def test_board_errors():
    board = Board("checkerboard", (7, 5), 0.04)
    blank = [np.full((SIZE[1], SIZE[0]), 128, np.uint8)] * 3
    with pytest.raises(MocapError, match="found in 0 image"):
        calibrate_intrinsics(blank, board)
    with pytest.raises(MocapError, match="not found in the extrinsics image"):
        calibrate_extrinsics([Camera(name="a", size=SIZE, K=K, R=np.eye(3), t=np.zeros(3), dist=np.zeros(5))],
                             blank[:1], board)
    with pytest.raises(ValueError, match="marker_m"):
        Board("charuco", (5, 5), 0.04)
    with pytest.raises(MocapError, match="cannot read image"):
        calibrate_intrinsics(["/nonexistent.jpg"], board)


def test_real_checkerboard_images_agree_with_qualisys():
    from mocap.camera import load_qualisys

    root = shared_path("video", "pose2sim_single", "calibration")
    images = sorted((root / "intrinsics" / "int_cam03_img").glob("*.jpg"))[:4]
    cam, report = calibrate_intrinsics(images, Board("checkerboard", (4, 7), 0.06), name="cam03")
    qualisys = load_qualisys(root / "Calib.qca.txt")[2]
    assert report.rms_px < 0.5 and cam.size == (1088, 1920)
    np.testing.assert_allclose(cam.K[0, 0], qualisys.K[0, 0], rtol=0.01)  # focal length within 1 %


def test_calibrate_command_on_real_images(tmp_path, capsys):
    from mocap.io.calibration_files import load_cameras_toml
    from mocap.camera import load_qualisys
    from mocap.cli import main

    root = shared_path("video", "pose2sim_single", "calibration")
    folder = tmp_path / "cam03"
    folder.mkdir()
    for p in sorted((root / "intrinsics" / "int_cam03_img").glob("*.jpg"))[:4]:
        (folder / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "cams.toml"
    assert main(["calibrate", str(folder), "-o", str(out), "--corners", "4x7", "--square-mm", "60"]) == 0
    assert "RMS" in capsys.readouterr().out
    (cam,) = load_cameras_toml(out)
    np.testing.assert_allclose(cam.K[0, 0], load_qualisys(root / "Calib.qca.txt")[2].K[0, 0], rtol=0.01)
    assert main(["calibrate", str(folder), "-o", str(out), "--corners", "9x9", "--square-mm", "60"]) == 1
    assert "found in 0 image" in capsys.readouterr().err
