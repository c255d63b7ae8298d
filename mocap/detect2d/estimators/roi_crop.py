"""Crops of rotated regions of interest for the networks, as MediaPipe's ``ImageToTensor``
makes them: one home for the warp that the pose and the hand networks share.

A ROI is (cx, cy, w, h, rotation): centre and size in pixels, rotation in radians
(:mod:`mocap.detect2d.estimators.blazepose_anchors`: ``roi_to_crop_matrix`` maps crop pixels
to image pixels, ``project_from_roi`` maps crop-normalised points back). torch and OpenCV are
imported inside the functions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mocap.detect2d.estimators import blazepose_anchors as bp
from mocap.detect2d.estimators.base import as_rgb_batch


def crop_rois(images: Sequence, frame: np.ndarray, rois: np.ndarray, size: tuple[int, int],
              value_range: tuple[float, float], zero_border: bool, *, warp: str, device, dtype):
    """ROI crops for a network, as MediaPipe's ``ImageToTensor`` makes them.

    Args:
        images: (H, W, 3) uint8 RGB images (numpy; with ``warp="torch"`` also torch tensors).
        frame: (N,) int, the image of each ROI.
        rois: (N, 5) ROIs (cx, cy, w, h pixels, rotation radians): crop pixel (0, 0) samples
            the ROI's top-left corner (:func:`~mocap.detect2d.estimators.blazepose_anchors.roi_to_crop_matrix`).
        size: (width, height) of the crops, pixels.
        value_range: (low, high) that pixel values 0 and 255 become.
        zero_border: black outside the image (else edge pixels repeated).
        warp: ``"cv2"`` (bilinear ``warpAffine`` on the CPU) or ``"torch"`` (``grid_sample`` on ``device``).
        device, dtype: torch device and float dtype of the result.

    Returns:
        (N, height, width, 3) torch tensor.
    """
    import torch

    out_w, out_h = size
    mats = bp.roi_to_crop_matrix(rois, out_w, out_h)
    if warp == "cv2":
        import cv2

        border = cv2.BORDER_CONSTANT if zero_border else cv2.BORDER_REPLICATE
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        crops = np.stack([cv2.warpAffine(images[f], m, (out_w, out_h), flags=flags, borderMode=border,
                                         borderValue=(0, 0, 0)) for f, m in zip(frame, mats)])
        x = torch.from_numpy(crops).to(device)
    else:
        x = _warp_torch(images, frame, mats, out_w, out_h, zero_border, device)
    lo, hi = value_range
    return x.to(dtype) * ((hi - lo) / 255.0) + lo


def device_images(frames, warp: str, device) -> list:
    """Frames (see :func:`mocap.detect2d.estimators.base.as_rgb_batch`) -> list of (H, W, 3) uint8
    RGB images; with ``warp="torch"``, already on ``device`` (so that all the crops of a frame
    share one upload)."""
    images = as_rgb_batch(frames)
    if warp == "torch":
        import torch

        images = [torch.from_numpy(im).to(device) for im in images]
    return images



def _warp_torch(images: Sequence, frame: np.ndarray, mats: np.ndarray, out_w: int, out_h: int,
                zero_border: bool, device):
    """Bilinear crops with ``grid_sample``, the pixel conventions of cv2.warpAffine (inverse map,
    pixel centres at integers) -> (N, out_h, out_w, 3) float32 0..255 (rounded like uint8).
    ``images``: (H, W, 3) uint8 numpy arrays or torch tensors."""
    import torch
    import torch.nn.functional as F

    out = torch.empty((len(frame), out_h, out_w, 3), device=device)
    u = torch.arange(out_w, device=device, dtype=torch.float64)
    v = torch.arange(out_h, device=device, dtype=torch.float64)
    m = torch.as_tensor(mats, device=device)
    for f in np.unique(frame):
        sel = np.nonzero(frame == f)[0]
        img = images[f] if torch.is_tensor(images[f]) else torch.from_numpy(images[f])
        img = img.to(device).permute(2, 0, 1)[None].float()
        h, w = img.shape[2:]
        ms = m[torch.as_tensor(sel, device=device)]
        x = ms[:, 0, 0, None, None] * u + ms[:, 0, 1, None, None] * v[:, None] + ms[:, 0, 2, None, None]
        y = ms[:, 1, 0, None, None] * u + ms[:, 1, 1, None, None] * v[:, None] + ms[:, 1, 2, None, None]
        grid = torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], -1).float()
        crops = F.grid_sample(img.expand(len(sel), -1, -1, -1), grid, mode="bilinear",
                              padding_mode="zeros" if zero_border else "border", align_corners=False)
        out[torch.as_tensor(sel, device=device)] = crops.permute(0, 2, 3, 1).round().clamp(0, 255)
    return out


def crop_network_settings(device: str, warp: str | None, min_confidence: float, batch_size: int | None):
    """The checked settings shared by the networks that run on ROI crops (hands, face):
    (torch device, warp ``"cv2"`` or ``"torch"``: torch on CUDA, OpenCV on the CPU, by default;
    ``min_confidence`` in [0, 1]; crops per network call: 256 on CUDA, 8 on the CPU by default)."""
    try:
        import torch
    except ImportError:
        from mocap.errors import missing_extra
        raise missing_extra("torch", "lift") from None
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for but torch sees no CUDA GPU; use device='cpu'")
    warp = warp or ("torch" if dev.type == "cuda" else "cv2")
    if warp not in ("cv2", "torch"):
        raise ValueError(f"warp must be 'cv2' or 'torch', got {warp!r}")
    size = int(batch_size or (256 if dev.type == "cuda" else 8))
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return dev, warp, float(min_confidence), size


def square_input_size(graph) -> tuple[int, int]:
    """(width, height) pixels of a converted network's square RGB input; MocapError otherwise."""
    from mocap.errors import MocapError

    shape = graph.tensors[graph.inputs[0]].shape
    if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
        raise MocapError(f"{graph.path.name} takes {shape}, expected a square RGB image")
    return int(shape[2]), int(shape[1])
