"""MediaPipe's custom TFLite operators, as torch modules for :mod:`mocap.detect2d.estimators.tflite_torch`.

The face landmark model with attention (``face_landmark_with_attention.tflite``) crops
regions of an intermediate feature map around the lips and the eyes it has just located,
with three operators that MediaPipe registers in its own TFLite op resolver (version 2 of
each, the one the model uses). Written here from their definitions, batched over B:

- ``Landmarks2TransformMatrix``: landmarks (B, N, 3) -> (B, 4, 4) matrix taking the pixels
  of an ``output_width`` x ``output_height`` grid to input coordinates: the grid is centred on
  the box of the landmarks ``subset_idxs`` in the frame turned so that the landmarks
  ``left_rotation_idx`` -> ``right_rotation_idx`` lie at ``target_rotation_radians``, and spans
  that box times (``scale_x``, ``scale_y``);
- ``TransformTensorBilinear``: feature map (B, C, H, W) and matrix -> (B, C, out_h, out_w),
  bilinear samples at the matrix's image of each grid pixel (pixel centres at +0.5), zero
  where it falls outside the map;
- ``TransformLandmarks``: points (B, N, 2) and matrix -> the matrix applied to (x, y, 0, 1).

torch is imported inside :func:`build_custom_op`.
"""
from __future__ import annotations

from typing import Any

CUSTOM_OPS = ("Landmarks2TransformMatrix", "TransformTensorBilinear", "TransformLandmarks")


def _rotation2(angle, torch):
    """(B,) radians -> (B, 2, 2) rotation matrices [[cos, -sin], [sin, cos]]."""
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _build(torch):
    nn = torch.nn
    F = torch.nn.functional

    class LandmarksToTransformMatrix(nn.Module):
        def __init__(self, left: int, right: int, subset: tuple[int, ...], target: float, scale: tuple[float, float],
                     out_size: tuple[int, int]):
            super().__init__()
            self.left, self.right, self.target = int(left), int(right), float(target)
            self.register_buffer("subset", torch.as_tensor(sorted(set(int(i) for i in subset)), dtype=torch.long))
            self.scale, self.out_size = scale, out_size  # (x, y), (width, height)

        def forward(self, landmarks):
            xy = landmarks[..., :2].float()
            d = xy[:, self.right] - xy[:, self.left]
            r = self.target - torch.atan2(d[:, 1], d[:, 0])  # (B,)
            rot = _rotation2(r, torch)
            pts = xy[:, self.subset] @ rot.transpose(1, 2)  # points turned by r
            lo, hi = pts.min(1).values, pts.max(1).values
            size = hi - lo
            centre = ((lo + hi) / 2)[:, None, :] @ _rotation2(-r, torch).transpose(1, 2)  # back to the input frame
            b = xy.shape[0]
            m = torch.zeros((b, 4, 4), dtype=xy.dtype, device=xy.device)
            back = _rotation2(-r, torch)
            sx = self.scale[0] * size[:, 0] / self.out_size[0]
            sy = self.scale[1] * size[:, 1] / self.out_size[1]
            lin = back * torch.stack([sx, sy], -1)[:, None, :]  # R(-r) @ diag(sx, sy)
            m[:, :2, :2] = lin
            half = torch.tensor([self.out_size[0] / 2.0, self.out_size[1] / 2.0], dtype=xy.dtype, device=xy.device)
            m[:, :2, 3] = centre[:, 0] - lin @ half
            m[:, 2, 2] = 1.0
            m[:, 3, 3] = 1.0
            return m.to(landmarks.dtype)

    class TransformTensorBilinear(nn.Module):
        def __init__(self, out_size: tuple[int, int]):
            super().__init__()
            self.out_size = out_size  # (width, height)

        def forward(self, x, matrix):
            b, _, h, w = x.shape
            ow, oh = self.out_size
            m = matrix.float()
            # pixel centres: grid pixel (u + 0.5, v + 0.5) through the matrix, minus 0.5
            u = torch.arange(ow, device=x.device, dtype=torch.float32) + 0.5
            v = torch.arange(oh, device=x.device, dtype=torch.float32) + 0.5
            tx = m[:, 0, 0, None, None] * u + m[:, 0, 1, None, None] * v[:, None] + m[:, 0, 3, None, None] - 0.5
            ty = m[:, 1, 0, None, None] * u + m[:, 1, 1, None, None] * v[:, None] + m[:, 1, 3, None, None] - 0.5
            inside = ((tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)).to(x.dtype)
            grid = torch.stack([tx / max(w - 1, 1) * 2 - 1, ty / max(h - 1, 1) * 2 - 1], -1).to(x.dtype)
            out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            return out * inside[:, None]

    class TransformLandmarks(nn.Module):
        def forward(self, points, matrix):
            m = matrix.to(points.dtype)
            return points[..., :2] @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 3]

    return LandmarksToTransformMatrix, TransformTensorBilinear, TransformLandmarks


_CLASSES = None


def build_custom_op(name: str, options: dict[str, Any], in_shapes: tuple, out_shape: tuple, where: str):
    """The torch module for MediaPipe custom op ``name`` (without the ``CUSTOM:`` prefix) with
    its decoded ``options``; ``where`` names the op in errors.

    Raises:
        NotImplementedError: another custom op, or another version of these.
    """
    import torch

    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _build(torch)
    to_matrix, bilinear, landmarks = _CLASSES
    if name not in CUSTOM_OPS:
        raise NotImplementedError(f"{where}: custom op {name} is not implemented; implemented: {', '.join(CUSTOM_OPS)}")
    if int(options.get("version", 1)) != 2:
        raise NotImplementedError(f"{where}: {name} version {options.get('version')} (only version 2 is implemented)")
    if name == "Landmarks2TransformMatrix":
        if len(in_shapes[0]) != 3 or in_shapes[0][2] < 2:
            raise NotImplementedError(f"{where}: {name} on landmarks of shape {in_shapes[0]}")
        return to_matrix(options["left_rotation_idx"], options["right_rotation_idx"], tuple(options["subset_idxs"]),
                         options.get("target_rotation_radians", 0.0),
                         (float(options["scale_x"]), float(options["scale_y"])),
                         (int(options["output_width"]), int(options["output_height"])))
    if name == "TransformTensorBilinear":
        if len(out_shape) != 4:
            raise NotImplementedError(f"{where}: {name} with output shape {out_shape}")
        return bilinear((int(out_shape[2]), int(out_shape[1])))
    if len(in_shapes[0]) != 3 or in_shapes[0][2] != 2:
        raise NotImplementedError(f"{where}: {name} on points of shape {in_shapes[0]} (only (B, N, 2))")
    return landmarks()
