"""Temporal convolutional lifting network: 2D keypoints over time -> root-relative 3D joints.

Dilated 1D convolutions over time with residual blocks. Kernel widths ``(k0, k1, ...)``: the
first convolution has width ``k0``; block ``i`` has a convolution of width ``k_i`` dilated by
``k0 * ... * k_{i-1}``. Every convolution is "valid" (no padding), so an output frame sees
exactly ``receptive_field(kernel_widths)`` input frames.

One code path, two variants:

- offline (``causal=False``): output frame ``t`` sees input frames ``t - R//2 .. t + R//2``;
  residual branches are cropped symmetrically. Kernel widths must be odd.
- causal (``causal=True``): output frame ``t`` sees frames ``t - R + 1 .. t`` (past only);
  residual branches keep their most recent frames.

Shapes: input (B, T, J_in, C) with C = 3 (normalised x, y, confidence; see
:mod:`mocap.lift.features`); output (B, T - R + 1, J_out, 3), metres, root-relative, camera axes.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from mocap.lift.features import CHANNELS_PER_JOINT, NUM_INPUT_JOINTS
from mocap.skeletons import MOTION21


def receptive_field(kernel_widths: tuple[int, ...]) -> int:
    """Frames seen by one output frame: ``1 + sum_i (k_i - 1) * prod(k_0..k_{i-1})``.

    For widths that are all the same this equals their product, e.g. (3, 3, 3) -> 27.
    """
    rf, dilation = 1, 1
    for k in kernel_widths:
        rf += (k - 1) * dilation
        dilation *= k
    return rf


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`TemporalLifter`; stored in checkpoints."""

    kernel_widths: tuple[int, ...] = (3, 3, 3)
    channels: int = 384
    dropout: float = 0.15
    causal: bool = False
    num_joints_in: int = NUM_INPUT_JOINTS
    channels_per_joint: int = CHANNELS_PER_JOINT
    num_joints_out: int = MOTION21.num_joints

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kernel_widths"] = list(self.kernel_widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["kernel_widths"] = tuple(d["kernel_widths"])
        return cls(**d)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.kernel_widths)

    @property
    def target_offset(self) -> int:
        """Index, within an input window of ``receptive_field`` frames, of the frame the output belongs to."""
        return self.receptive_field - 1 if self.causal else self.receptive_field // 2


class TemporalLifter(nn.Module):
    """See the module docstring. ``forward``: (B, T, J_in, C) -> (B, T - R + 1, J_out, 3)."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        widths = tuple(int(k) for k in config.kernel_widths)
        if not widths or min(widths) < 1:
            raise ValueError(f"kernel_widths must be positive integers, got {config.kernel_widths}")
        if not config.causal and any(k % 2 == 0 for k in widths):
            raise ValueError(f"the offline (symmetric) model needs odd kernel widths, got {widths}")
        self.config = config
        c = config.channels
        self.input_conv = nn.Conv1d(config.num_joints_in * config.channels_per_joint, c, widths[0], bias=False)
        self.input_bn = nn.BatchNorm1d(c, momentum=0.1)
        self.dilated = nn.ModuleList()
        self.dilated_bn = nn.ModuleList()
        self.pointwise = nn.ModuleList()
        self.pointwise_bn = nn.ModuleList()
        self.crops: list[int] = []
        dilation = widths[0]
        for k in widths[1:]:
            self.dilated.append(nn.Conv1d(c, c, k, dilation=dilation, bias=False))
            self.dilated_bn.append(nn.BatchNorm1d(c, momentum=0.1))
            self.pointwise.append(nn.Conv1d(c, c, 1, bias=False))
            self.pointwise_bn.append(nn.BatchNorm1d(c, momentum=0.1))
            self.crops.append((k - 1) * dilation)
            dilation *= k
        #: input columns each layer needs for one output column (see step)
        self._window_lengths = (widths[0], *(crop + 1 for crop in self.crops))
        self.drop = nn.Dropout(config.dropout)
        self.act = nn.ReLU(inplace=True)
        self.output_conv = nn.Conv1d(c, config.num_joints_out * 3, 1)

    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        expected = (cfg.num_joints_in, cfg.channels_per_joint)
        if x.ndim != 4 or tuple(x.shape[2:]) != expected:
            raise ValueError(f"TemporalLifter expects input (B, T, {expected[0]}, {expected[1]}), got {tuple(x.shape)}")
        if x.shape[1] < self.receptive_field:
            raise ValueError(f"TemporalLifter needs at least {self.receptive_field} frames (its receptive field), "
                             f"got {x.shape[1]}; pad the sequence (see run_sequence)")
        b, t = x.shape[:2]
        h = x.reshape(b, t, -1).transpose(1, 2)  # (B, J*C, T)
        h = self.drop(self.act(self.input_bn(self.input_conv(h))))
        for conv, bn, pw, pw_bn, crop in zip(self.dilated, self.dilated_bn, self.pointwise, self.pointwise_bn, self.crops):
            res = h[:, :, crop:] if cfg.causal else h[:, :, crop // 2: h.shape[2] - crop // 2]
            h = self.drop(self.act(bn(conv(h))))
            h = res + self.drop(self.act(pw_bn(pw(h))))
        out = self.output_conv(h)  # (B, J_out*3, T')
        return out.transpose(1, 2).reshape(b, out.shape[2], cfg.num_joints_out, 3)

    def step(self, frame: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One new frame through the causal network, reusing what earlier frames computed.

        Each convolution keeps the input columns it still needs (the input convolution its last
        ``k0`` frames, block ``i`` its last ``(k_i - 1) d_i + 1``), so a frame costs one output
        column per layer. Starting from ``state=None``, the first frame stands in for the frames
        before it, as :func:`pad_sequence` pads a clip: pushing the frames of a clip one by one
        gives :func:`run_sequence`'s output frame for frame. Eval mode only (BatchNorm with its
        running statistics, no dropout), like every use of a trained network.

        Args:
            frame: (B, J_in, C) the newest frame.
            state: what the previous call returned; None for the first frame of a sequence.
        Returns:
            (B, J_out, 3) output for this frame, and the new state (one (B, channels, L_i) tensor
            per layer; the caller keeps it, so one model can serve several sequences).
        """
        cfg = self.config
        if not cfg.causal:
            raise ValueError("step needs the causal model (ModelConfig(causal=True)); the offline one sees future frames")
        expected = (cfg.num_joints_in, cfg.channels_per_joint)
        if frame.ndim != 3 or tuple(frame.shape[1:]) != expected:
            raise ValueError(f"step expects one frame (B, {expected[0]}, {expected[1]}), got {tuple(frame.shape)}")
        if self.training:
            raise RuntimeError("step runs a trained network: call model.eval() first")
        lengths = self._window_lengths
        if state is not None and len(state) != len(lengths):
            raise ValueError(f"state has {len(state)} layers; this model has {len(lengths)}")
        b = frame.shape[0]

        def advance(i: int, column: torch.Tensor) -> torch.Tensor:  # (B, C, 1) -> the layer's input window
            if state is None:
                return column.expand(-1, -1, lengths[i]).contiguous()
            return torch.cat([state[i][:, :, 1:], column], dim=2)

        windows = [advance(0, frame.reshape(b, -1, 1))]
        h = self.act(self.input_bn(self.input_conv(windows[0])))  # (B, C, 1)
        for i, (conv, bn, pw, pw_bn) in enumerate(zip(self.dilated, self.dilated_bn, self.pointwise, self.pointwise_bn), 1):
            windows.append(advance(i, h))
            h = h + self.act(pw_bn(pw(self.act(bn(conv(windows[i]))))))
        return self.output_conv(h).reshape(b, cfg.num_joints_out, 3), tuple(windows)


def _folded(conv: nn.Conv1d, bn: nn.BatchNorm1d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode convolution (and the BatchNorm after it) as one matrix and bias.

    Returns (k C_in, C_out) float32, rows tap-major (the oldest column first), and (C_out,):
    ``conv`` then ``bn`` over the k columns it reads equals ``columns.reshape(B, -1) @ W + b``.
    """
    w = conv.weight.detach().double()  # (C_out, C_in, k)
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn is not None:
        scale = torch.rsqrt(bn.running_var.double() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.detach().double()
        shift = -bn.running_mean.double() * scale + (bn.bias.detach().double() if bn.bias is not None else 0.0)
        w, bias = w * scale[:, None, None], bias * scale + shift
    return w.permute(2, 1, 0).reshape(-1, w.shape[0]).float().contiguous(), bias.float().contiguous()


class CausalSteps:
    """:meth:`TemporalLifter.step` for many streams at once: one matrix product per layer per batch.

    Each BatchNorm (eval mode: its running statistics) is folded into the convolution before it,
    and a convolution of width ``k`` dilated by ``d`` becomes one product of the ``k`` columns it
    reads, (B, k C_in) @ (k C_in, C_out). The columns a stream still needs live in per-layer
    ring buffers with one row (a *slot*, :meth:`new_slot`) per stream: a step writes each
    stream's new column in place and gathers, by index, only the ``k`` columns a layer reads. A slot's first frame stands in
    for the frames before it, as in :meth:`TemporalLifter.step` with ``state=None``; same
    outputs to float32 round-off (another summation order).

    Rows are computed in blocks of ``ROW_BLOCK`` (spare rows read the scratch slot 0): BLAS
    sgemm gives a row the same bits for any multiple of 4 rows (measured: MKL on AVX-512, 1 to 8
    threads), while 1 to 3 rows take another kernel and other counts split unevenly between
    threads. A stream's output thus does not depend on which other streams share its batch.
    Thread-safe (one lock). The weights are read once, at construction: build a new one after
    changing the model. Runs on the CPU.
    """

    ROW_BLOCK = 4

    def __init__(self, model: TemporalLifter, capacity: int = 16) -> None:
        if not model.config.causal:
            raise ValueError("CausalSteps needs the causal model (ModelConfig(causal=True))")
        if model.training:
            raise RuntimeError("CausalSteps runs a trained network: call model.eval() first")
        self.config = model.config
        with torch.no_grad():
            convs = [(model.input_conv, model.input_bn)] + list(zip(model.dilated, model.dilated_bn))
            self._convs = [(*(t.cpu() for t in _folded(conv, bn)), conv.kernel_size[0], conv.dilation[0])
                           for conv, bn in convs]
            self._pointwise = [tuple(t.cpu() for t in _folded(pw, bn))
                               for pw, bn in zip(model.pointwise, model.pointwise_bn)]
            self._output = tuple(t.cpu() for t in _folded(model.output_conv, None))
        self._taps = [np.array([(k - 1 - j) * d for j in range(k)]) for _, _, k, d in self._convs]  # frames back
        lengths = [(k - 1) * d + 1 for _, _, k, d in self._convs]
        widths = [w.shape[0] // k for w, _, k, _ in self._convs]
        self._rings = [np.zeros((capacity, n, c), dtype=np.float32) for n, c in zip(lengths, widths)]
        self._count = np.zeros(capacity, dtype=np.int64)  # frames pushed per slot; 0: fresh
        self._free = list(range(capacity - 1, 0, -1))  # slot 0: scratch rows
        self._lock = threading.RLock()  # re-entrant: a slot may be freed by the garbage collector mid-step

    def new_slot(self) -> int:
        """A fresh slot for a new stream (the pool grows as needed)."""
        with self._lock:
            if not self._free:
                cap = len(self._count)
                self._rings = [np.concatenate([r, np.zeros_like(r)]) for r in self._rings]
                self._count = np.concatenate([self._count, np.zeros_like(self._count)])
                self._free = list(range(2 * cap - 1, cap - 1, -1))
            slot = self._free.pop()
            self._count[slot] = 0
            return slot

    def restart(self, slot: int) -> None:
        """Forget a slot's history: its next frame stands in for the frames before it."""
        with self._lock:
            self._count[slot] = 0

    def free_slot(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)

    @torch.no_grad()
    def step(self, slots, frames) -> torch.Tensor:
        """One new frame for each of B streams, on the CPU.

        Args:
            slots: B distinct slots (:meth:`new_slot`).
            frames: (B, J_in, C) normalised input (tensor or array), one frame per slot.
        Returns:
            (B, J_out, 3) float32 tensor, as :meth:`TemporalLifter.step` gives for each stream.
        """
        cfg = self.config
        b = len(slots)
        frames = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
        if frames.shape != (b, cfg.num_joints_in, cfg.channels_per_joint):
            raise ValueError(f"step expects frames ({b}, {cfg.num_joints_in}, {cfg.channels_per_joint}) for "
                             f"{b} slots, got {frames.shape}")
        if len(set(slots)) != b:
            raise ValueError("each slot may appear once per step")
        rows = max(1, -(-b // self.ROW_BLOCK)) * self.ROW_BLOCK
        with self._lock:
            idx = np.zeros(rows, dtype=np.int64)
            idx[:b] = slots
            real = idx[:b]
            count = self._count[idx]
            fresh = count[:b] == 0
            h = np.zeros((rows, cfg.num_joints_in * cfg.channels_per_joint), dtype=np.float32)
            h[:b] = frames.reshape(b, -1)
            for i, ((w, bias, _, _), taps, ring) in enumerate(zip(self._convs, self._taps, self._rings)):
                n = ring.shape[1]
                pos = count % n
                if fresh.any():
                    ring[real[fresh]] = h[:b][fresh, None]
                ring[real, pos[:b]] = h[:b]
                columns = ring[idx[:, None], (pos[:, None] - taps) % n].reshape(rows, -1)
                x = torch.relu_(torch.addmm(bias, torch.from_numpy(columns), w))
                if i == 0:
                    h = x.numpy()
                else:
                    pw, pw_bias = self._pointwise[i - 1]
                    h = h + torch.relu_(torch.addmm(pw_bias, x, pw)).numpy()
            out = torch.addmm(self._output[1], torch.from_numpy(h), self._output[0])[:b]
            self._count[real] += 1
        return out.reshape(b, cfg.num_joints_out, 3)


def grow(source: TemporalLifter, config: ModelConfig) -> TemporalLifter:
    """A :class:`TemporalLifter` of ``config`` initialised from the trained ``source``.

    ``config.kernel_widths`` must equal ``source``'s or extend them (e.g. (3, 3, 3) -> (3, 3, 3, 3),
    27 -> 81 frames), with the same channels and joints. Every layer of ``source`` is copied; each
    new residual block gets a zero scale in its last BatchNorm, so its branch adds 0 and the block
    passes its input through (cropped to the longer window). With the same variant, output frame
    ``t`` therefore equals that of ``source`` until training changes the new blocks. The variant
    may differ (a causal model fine-tuned from offline weights): the layers are the same, only
    the frames they see change. ValueError if the architectures do not fit.
    """
    old = source.config
    n = len(old.kernel_widths)
    if (tuple(config.kernel_widths[:n]) != tuple(old.kernel_widths)
            or any(getattr(config, f) != getattr(old, f)
                   for f in ("channels", "num_joints_in", "channels_per_joint", "num_joints_out"))):
        raise ValueError(f"cannot grow a network of kernel widths {list(old.kernel_widths)} and {old.channels} "
                         f"channels into one of {list(config.kernel_widths)} and {config.channels}: the widths "
                         f"must start with the source's and the channels must match")
    model = TemporalLifter(config)
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    if unexpected or any(not k.split(".")[0] in ("dilated", "dilated_bn", "pointwise", "pointwise_bn")
                         or int(k.split(".")[1]) < n - 1 for k in missing):
        raise RuntimeError(f"unexpected layers when growing: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for bn in model.pointwise_bn[n - 1:]:
            bn.weight.zero_()
            bn.bias.zero_()
    return model


def pad_sequence(features: torch.Tensor, receptive_field: int, causal: bool) -> torch.Tensor:
    """Pad (B, T, J, C) in time by repeating edge frames so that the output has T frames."""
    if causal:
        before, after = receptive_field - 1, 0
    else:
        before = after = receptive_field // 2
    parts = [features[:, :1].expand(-1, before, -1, -1), features, features[:, -1:].expand(-1, after, -1, -1)]
    return torch.cat(parts, dim=1)


@torch.no_grad()
def run_sequence(model: TemporalLifter, features: torch.Tensor, *, chunk: int = 8192) -> torch.Tensor:
    """Run ``model`` over whole sequences (B, T, J, C) -> (B, T, J_out, 3), edge-padded, in time chunks.

    The convolution is shared between neighbouring frames; chunks overlap by the receptive
    field so the result equals one pass over the padded sequence.
    """
    rf = model.receptive_field
    padded = pad_sequence(features, rf, model.config.causal)
    t = features.shape[1]
    outs = []
    for start in range(0, t, chunk):
        stop = min(t, start + chunk)
        outs.append(model(padded[:, start: stop + rf - 1]))
    return torch.cat(outs, dim=1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

