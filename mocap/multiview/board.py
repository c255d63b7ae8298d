"""Calibration from boards (OpenCV): checkerboard and ChArUco.

Intrinsics per camera from several images (or video frames) of a board; extrinsics from
one image per camera of a board lying in the shared view, whose frame becomes the world
(x along the board's rows, y along its columns, z into the board; metres).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mocap.io.calibration_files import rotvec_to_matrix
from mocap.camera import Camera
from mocap.errors import MocapError


@dataclass(frozen=True)
class Board:
    """A calibration board.

    Attributes:
        kind: ``"checkerboard"`` or ``"charuco"``.
        corners: (columns, rows) of inner corners for a checkerboard; (columns, rows) of
            squares for a ChArUco board.
        square_m: side of one square, metres.
        marker_m: ChArUco marker side, metres.
        dictionary: ChArUco ArUco dictionary name in ``cv2.aruco`` (e.g. ``DICT_4X4_50``).
    """

    kind: str
    corners: tuple[int, int]
    square_m: float
    marker_m: float = 0.0
    dictionary: str = "DICT_4X4_50"

    def __post_init__(self) -> None:
        if self.kind not in ("checkerboard", "charuco"):
            raise ValueError(f"board kind must be 'checkerboard' or 'charuco', got {self.kind!r}")
        if min(self.corners) < 2 or self.square_m <= 0:
            raise ValueError(f"board needs at least 2x2 corners and a positive square size, got {self.corners}, "
                             f"{self.square_m}")
        if self.kind == "charuco" and not 0 < self.marker_m < self.square_m:
            raise ValueError("a ChArUco board needs 0 < marker_m < square_m")

    @property
    def object_points(self) -> np.ndarray:
        """(N, 3) corner positions on the board, metres, z = 0 (ChArUco: by corner id)."""
        cols, rows = self.corners if self.kind == "checkerboard" else (self.corners[0] - 1, self.corners[1] - 1)
        grid = np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), -1).reshape(-1, 2) * self.square_m
        return np.concatenate([grid, np.zeros((len(grid), 1))], -1)

    def _charuco(self):
        import cv2

        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard(tuple(self.corners), self.square_m, self.marker_m, dictionary)

    def render(self, pixels_per_square: int = 80, margin: int = 40) -> np.ndarray:
        """(H, W) uint8 image of the board, for printing or for synthetic tests."""
        import cv2

        if self.kind == "charuco":
            size = (self.corners[0] * pixels_per_square + 2 * margin, self.corners[1] * pixels_per_square + 2 * margin)
            return self._charuco().generateImage(size, marginSize=margin)
        cols, rows = self.corners[0] + 1, self.corners[1] + 1
        tile = (np.indices((rows, cols)).sum(0) % 2 == 0).astype(np.uint8) * 255
        img = cv2.resize(255 - tile, (cols * pixels_per_square, rows * pixels_per_square),
                         interpolation=cv2.INTER_NEAREST)
        return cv2.copyMakeBorder(img, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=255)


def detect_board(image: np.ndarray, board: Board) -> tuple[np.ndarray, np.ndarray] | None:
    """Board corners in one image.

    Args:
        image: (H, W) or (H, W, 3) uint8 (BGR or RGB).
    Returns:
        (corners (N, 2) pixels, ids (N,) int indices into ``board.object_points``), or None
        if the board is not found (a checkerboard must be seen whole; a ChArUco board needs
        at least 6 corners).
    """
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if board.kind == "checkerboard":
        found, corners = cv2.findChessboardCornersSB(gray, tuple(board.corners), flags=cv2.CALIB_CB_EXHAUSTIVE
                                                     | cv2.CALIB_CB_ACCURACY)
        if not found:
            found, corners = cv2.findChessboardCorners(gray, tuple(board.corners))
            if not found:
                return None
            corners = cv2.cornerSubPix(gray, corners, (7, 7), (-1, -1),
                                       (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3))
        corners = corners.reshape(-1, 2).astype(np.float64)
        # one orientation for every image: the first corner nearest the image's top left
        if corners[0].sum() > corners[-1].sum():
            corners = corners[::-1].copy()
        return corners, np.arange(len(corners))
    detector = cv2.aruco.CharucoDetector(board._charuco())
    corners, ids, _, _ = detector.detectBoard(gray)
    if ids is None or len(ids) < 6:
        return None
    return corners.reshape(-1, 2).astype(np.float64), ids.reshape(-1).astype(int)


@dataclass(frozen=True)
class BoardCalibrationReport:
    """Reprojection errors of a board calibration, pixels.

    Attributes:
        rms_px: overall RMS reprojection error.
        per_image_px: (N,) RMS error per used image.
        used: names (or indices) of the images in which the board was found.
        skipped: those in which it was not.
    """

    rms_px: float
    per_image_px: np.ndarray
    used: list[str]
    skipped: list[str]


def _load(item) -> tuple[str, np.ndarray]:
    import cv2

    if isinstance(item, (str, os.PathLike)):
        img = cv2.imread(str(item))
        if img is None:
            raise MocapError(f"cannot read image {item}")
        return Path(item).name, img
    return "array", np.asarray(item)


def calibrate_intrinsics(images: Iterable, board: Board, *, name: str = "cam", min_images: int = 3,
                         max_rms_px: float = 1.0) -> tuple[Camera, BoardCalibrationReport]:
    """Intrinsics (K, 5 distortion coefficients) of one camera from images of a board.

    Args:
        images: image paths or (H, W[, 3]) uint8 arrays, all of one camera and size.
        board: the board seen in them.
        min_images: fewer images with the board found is an error.
        max_rms_px: while the RMS error is above this, the image whose removal lowers it
            most is left out (listed in ``skipped``).
    Returns:
        (Camera with identity pose, report).
    """
    import cv2

    obj, img_pts, used, skipped, size = [], [], [], [], None
    for i, item in enumerate(images):
        label, img = _load(item)
        label = label if label != "array" else str(i)
        h, w = img.shape[:2]
        if size is not None and size != (w, h):
            raise MocapError(f"image {label} is {w}x{h}, the others {size[0]}x{size[1]}: one camera, one size")
        size = (w, h)
        found = detect_board(img, board)
        if found is None:
            skipped.append(label)
            continue
        corners, ids = found
        obj.append(board.object_points[ids].astype(np.float32))
        img_pts.append(corners.astype(np.float32))
        used.append(label)
    if len(used) < min_images:
        raise MocapError(f"the board ({board.kind} {board.corners[0]}x{board.corners[1]}) was found in {len(used)} "
                         f"image(s) of {name}, {min_images} needed; check the board size (inner corners for a "
                         "checkerboard) and that the whole board is in view")
    rms, k, dist, rvecs, tvecs = cv2.calibrateCamera(obj, img_pts, size, None, None)
    # one bad detection (a board found mirrored or on the wrong squares) spoils the whole
    # solution: while the fit is poor, leave out the image whose removal helps most
    while rms > max_rms_px and len(used) > min_images:
        trials = [cv2.calibrateCamera(obj[:i] + obj[i + 1:], img_pts[:i] + img_pts[i + 1:], size, None, None)
                  for i in range(len(used))]
        best = int(np.argmin([tr[0] for tr in trials]))
        if trials[best][0] > 0.8 * rms:
            break
        skipped.append(f"{used[best]} (inconsistent with the others)")
        del obj[best], img_pts[best], used[best]
        rms, k, dist, rvecs, tvecs = trials[best]
    cam = Camera(name=name, size=size, K=np.asarray(k, np.float64), R=np.eye(3), t=np.zeros(3),
                 dist=np.asarray(dist, np.float64).reshape(-1)[:5])
    per = []
    for o, p, rv, tv in zip(obj, img_pts, rvecs, tvecs):
        r = rotvec_to_matrix(np.asarray(rv).reshape(3))
        posed = Camera(name=name, size=size, K=cam.K, R=r, t=np.asarray(tv).reshape(3), dist=cam.dist)
        per.append(float(np.sqrt(np.mean(np.sum((posed.project(o.astype(np.float64)) - p) ** 2, -1)))))
    return cam, BoardCalibrationReport(rms_px=float(rms), per_image_px=np.array(per), used=used, skipped=skipped)


def calibrate_extrinsics(cameras: Sequence[Camera], images: Sequence, board: Board) -> tuple[list[Camera], np.ndarray]:
    """Camera poses from one image per camera of a board in the shared view (world = board).

    Args:
        cameras: C cameras with intrinsics.
        images: C images (paths or arrays), one per camera, taken with the board in place.
    Returns:
        (C posed cameras, (C,) RMS reprojection errors in pixels).
    """
    import cv2

    if len(cameras) != len(images):
        raise MocapError(f"{len(cameras)} cameras but {len(images)} extrinsics images")
    out, errs = [], []
    for cam, item in zip(cameras, images):
        label, img = _load(item)
        found = detect_board(img, board)
        if found is None:
            raise MocapError(f"the board was not found in the extrinsics image {label} of {cam.name}")
        corners, ids = found
        o = board.object_points[ids]
        ok, rv, tv = cv2.solvePnP(o, corners, cam.K, cam.dist, flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok:
            raise MocapError(f"could not place {cam.name} from the board in {label}")
        posed = Camera(name=cam.name, size=cam.size, K=cam.K, R=rotvec_to_matrix(rv.reshape(3)), t=tv.reshape(3),
                       dist=cam.dist)
        out.append(posed)
        errs.append(float(np.sqrt(np.mean(np.sum((posed.project(o) - corners) ** 2, -1)))))
    return out, np.array(errs)
