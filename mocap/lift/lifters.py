"""2D -> 3D lifters: a pluggable interface and the MediaPipe world-landmark baseline.

A lifter turns :class:`~mocap.formats.Keypoints2D` into root-relative MOTION21 joints in
the camera frame (x right, y down, z away from the camera, metres). Lifters:

- ``"mediapipe"``: MediaPipe's own world landmarks (the baseline the network must beat);
  needs a keypoints file made by ``mocap detect`` (it carries ``world_landmarks``).
- ``"network"``: our temporal network, :mod:`mocap.lift.network` (needs the ``lift`` extra).

:class:`~mocap.lift.interface.LiftResult` and the :class:`~mocap.lift.interface.Lifter`
protocol live in :mod:`mocap.lift.interface` (imported here too).

``"auto"`` picks the network when its weights and torch are available, else MediaPipe.
"""
from __future__ import annotations

import numpy as np

from mocap.errors import MocapError
from mocap.formats import Keypoints2D
from mocap.lift.interface import Lifter, LiftResult
from mocap.skeletons import MOTION21, map_joints

__all__ = ["LiftResult", "Lifter", "MediaPipeWorldLifter", "network_available", "get_lifter", "default_focal_px",
           "estimate_root_translation"]


class MediaPipeWorldLifter:
    """Uses MediaPipe's world landmarks as the 3D (the baseline)."""

    name = "mediapipe"

    def lift(self, keypoints: Keypoints2D) -> LiftResult:
        if keypoints.world_landmarks is None or keypoints.layout != "mediapipe33":
            raise MocapError(
                "the mediapipe lifter needs MediaPipe world landmarks, which this keypoints file "
                f"(layout {keypoints.layout}) does not have; use --lifter network")
        joints = map_joints(keypoints.world_landmarks, "mediapipe33", MOTION21)
        joints = joints - joints[:, :1]
        return LiftResult(joints_cam=joints)


def network_available() -> bool:
    """True when torch and the shipped network weights can be found."""
    try:
        from mocap.lift.network import default_weights_path
        import torch  # noqa: F401
    except ImportError:
        return False
    return default_weights_path().exists()


def get_lifter(name: str, keypoints: Keypoints2D | None = None, *, causal: bool = False) -> Lifter:
    """The lifter called ``name`` (``auto``, ``network`` or ``mediapipe``)."""
    if name == "auto":
        name = "network" if network_available() else "mediapipe"
    if name == "mediapipe":
        return MediaPipeWorldLifter()
    if name == "network":
        try:
            from mocap.lift.network import NetworkLifter
        except ImportError as e:
            raise MocapError(f"the network lifter needs torch ({e}); install it with: pip install 'mocap-lift[lift]'") from None
        return NetworkLifter(causal=causal)
    raise MocapError(f"unknown lifter {name!r}; choose auto, network or mediapipe")


def default_focal_px(image_size: tuple[int, int], fov_deg: float = 55.0) -> float:
    """Focal length in pixels for a camera whose long image side spans ``fov_deg`` degrees."""
    return max(image_size) / (2.0 * np.tan(np.radians(fov_deg) / 2.0))


def estimate_root_translation(
    joints_rel: np.ndarray,
    keypoints: np.ndarray,
    confidence: np.ndarray,
    *,
    focal_px: float,
    principal_px: tuple[float, float],
    min_confidence: float = 0.3,
) -> np.ndarray:
    """Pelvis position per frame that best reprojects root-relative 3D onto the 2D keypoints.

    Pinhole camera, linear least squares per frame: for each joint with 3D ``X`` and pixel
    ``u``, ``f (X_x + t_x) = (u_x - c_x)(X_z + t_z)`` and likewise for y.

    Args:
        joints_rel: (T, J, 3) metres, root-relative, camera axes (x right, y down, z forward).
        keypoints: (T, J, 2) pixels of the same joints; NaN where missing.
        confidence: (T, J) in [0, 1]; joints below ``min_confidence`` are ignored.
        focal_px: focal length, pixels.
        principal_px: (c_x, c_y) principal point, pixels.
    Returns:
        (T, 3) metres, camera frame; NaN in frames with fewer than 3 usable joints.
    """
    joints_rel = np.asarray(joints_rel, dtype=np.float64)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if joints_rel.shape[:2] != keypoints.shape[:2] or joints_rel.shape[-1] != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"joints_rel (T,J,3) and keypoints (T,J,2) disagree: {joints_rel.shape} vs {keypoints.shape}")
    f = float(focal_px)
    c = np.asarray(principal_px, dtype=np.float64)
    uv = keypoints - c  # (T, J, 2)
    w = np.where(np.isfinite(uv).all(-1) & np.isfinite(joints_rel).all(-1) & (np.nan_to_num(confidence) >= min_confidence),
                 np.nan_to_num(confidence), 0.0)
    uv = np.nan_to_num(uv)
    xyz = np.nan_to_num(joints_rel)
    t_count, j_count = w.shape
    a = np.zeros((t_count, j_count, 2, 3))
    a[..., 0, 0] = f
    a[..., 1, 1] = f
    a[..., :, 2] = -uv
    b = uv * xyz[..., 2:3] - f * xyz[..., :2]  # (T, J, 2)
    aw = a * w[..., None, None]
    ata = np.einsum("tjki,tjkl->til", aw, a)
    atb = np.einsum("tjki,tjk->ti", aw, b)
    ok = (w > 0).sum(1) >= 3
    if ok.any():  # joints seen at one pixel (or in a line through the centre) leave t undetermined
        ok[ok] = np.linalg.matrix_rank(ata[ok]) == 3
    out = np.full((t_count, 3), np.nan)
    if ok.any():
        out[ok] = np.linalg.solve(ata[ok], atb[ok][..., None])[..., 0]
    return out
