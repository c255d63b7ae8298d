"""Run a TensorFlow Lite model as a PyTorch module, with its weights read from the .tflite file.

:func:`read_tflite` (:mod:`mocap.detect2d.estimators.tflite_read`) parses the flatbuffer (through the generated accessors of the ``tflite``
package) into plain data: tensors (shape, type, constant data, quantisation, sparsity) and
operators (builtin code, inputs, outputs, options); :func:`load_graph` reads the same data
from the JSON + state dict that :func:`~mocap.detect2d.estimators.tflite_read.save_graph`
wrote (no ``tflite`` package needed). :func:`load_tflite` turns either into a
:class:`TfliteModule`, a ``torch.nn.Module`` that runs the graph batched over the first axis.

Numerics follow TFLite's reference kernels:

- constant sub-graphs (``DEQUANTIZE`` of float16 / int8 weights, ``DENSIFY`` of sparse
  weights) are evaluated once at load time in numpy; weights become float32 buffers;
- 4-D activations live in NCHW inside the module (what torch's convolutions want); inputs
  and outputs are NHWC like TFLite's, and layout-sensitive ops (``RESHAPE``,
  ``CONCATENATION``, ``PAD``, ``DEPTH_TO_SPACE``, broadcasting with constants) apply the
  NHWC semantics of the original graph;
- ``SAME`` padding is TFLite's: total ``max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0)``
  with the odd pixel after (bottom / right), so stride-2 convolutions pad asymmetrically;
- for speed, a zero ``PAD`` read only by convolutions becomes their own padding, fused
  activations run in place, and outputs not asked for are not computed.

Ops that are not implemented raise ``NotImplementedError`` naming them (at load time).
Tensors: B batch, H, W, C as in TFLite; the model's batch of 1 becomes any B.

torch and tflite are imported inside the functions that need them (torch:
``pip install 'mocap-lift[lift]'``; the tflite schema: ``pip install 'mocap-lift[estimators]'``).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mocap.detect2d.estimators.tflite_read import (  # noqa: F401  (Sparsity, TensorInfo: re-exported with the graph types)
    _ACTIVATION, _FOLDED, _PADDING, SUPPORTED_OPS, OperatorInfo, Sparsity, TensorInfo, TfliteGraph, _dequantize,
    densify, load_graph, needed_ops, read_tflite)

# ---------------------------------------------------------------- torch ops

def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite SAME padding (before, after) along one axis."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _build_ops(torch):
    """The op module classes (defined here so that torch is imported only on use)."""
    nn = torch.nn
    F = torch.nn.functional

    def activate(x, act, inplace=False):
        if act is None:
            return x
        if act == "RELU":
            return F.relu(x, inplace=inplace)
        if act == "RELU6":
            return F.hardtanh(x, 0.0, 6.0, inplace=inplace)
        if act == "RELU_N1_TO_1":
            return F.hardtanh(x, -1.0, 1.0, inplace=inplace)
        return torch.tanh_(x) if inplace else torch.tanh(x)

    class Conv(nn.Module):
        def __init__(self, weight, bias, stride, dilation, pads, groups, act):
            super().__init__()
            self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(weight)))
            self.register_buffer("bias", None if bias is None else torch.from_numpy(np.ascontiguousarray(bias)))
            self.stride, self.dilation, self.groups, self.act = stride, dilation, groups, act
            (top, bottom), (left, right) = pads
            self.symmetric = top == bottom and left == right
            self.padding = (top, left) if self.symmetric else (0, 0)
            self.pre_pad = None if self.symmetric else (left, right, top, bottom)

        def forward(self, x):
            if self.pre_pad is not None:
                x = F.pad(x, self.pre_pad)
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
            return activate(y, self.act, inplace=True)

    class Elementwise(nn.Module):
        def __init__(self, fn, constant, const_first, act):
            super().__init__()
            self.fn, self.const_first, self.act = fn, const_first, act
            self.register_buffer("constant", None if constant is None else torch.from_numpy(constant))

        def forward(self, a, b=None):
            if self.constant is not None:
                a, b = (self.constant, a) if self.const_first else (a, self.constant)
            return activate(self.fn(a, b), self.act, inplace=True)

    class Fn(nn.Module):
        """An op without weights: ``fn(*inputs)``."""

        def __init__(self, name, fn):
            super().__init__()
            self.name, self.fn = name, fn

        def forward(self, *xs):
            return self.fn(*xs)

        def extra_repr(self):
            return self.name

    def max_pool(kernel, stride, pads, act):
        (top, bottom), (left, right) = pads

        def fn(x):
            if top or bottom or left or right:
                x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
            return activate(F.max_pool2d(x, kernel, stride), act)
        return fn

    def reshape(shape, in_nchw, out_nchw):
        def fn(x):
            x = (x.permute(0, 2, 3, 1) if in_nchw else x).reshape((x.shape[0],) + shape)
            return x.permute(0, 3, 1, 2) if out_nchw else x
        return fn

    def resize(size, align_corners, half_pixel):
        def fn(x):
            if align_corners or half_pixel:
                return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)
            for axis, n_out in ((2, size[0]), (3, size[1])):  # legacy TF: source = dest * in / out
                n_in = x.shape[axis]
                src = torch.arange(n_out, device=x.device, dtype=torch.float32) * (n_in / n_out)
                lo = src.floor().long().clamp(max=n_in - 1)
                w = (src - lo.float()).to(x.dtype).view([n_out if a == axis else 1 for a in range(4)])
                x = x.index_select(axis, lo) * (1 - w) + x.index_select(axis, (lo + 1).clamp(max=n_in - 1)) * w
            return x
        return fn

    def depth_to_space(k):
        def fn(x):  # TFLite's channel order: (i * k + j) * C_out + c for the pixel (i, j) of a block
            b, c, h, w = x.shape
            x = x.view(b, k, k, c // (k * k), h, w).permute(0, 3, 4, 1, 5, 2)
            return x.reshape(b, c // (k * k), h * k, w * k)
        return fn

    class Linear(nn.Module):
        """TFLite's FULLY_CONNECTED: the input flattened (NHWC order) to (B, in), times weight (out, in)."""

        def __init__(self, weight, bias, nchw, act):
            super().__init__()
            self.register_buffer("weight", torch.from_numpy(weight))
            self.register_buffer("bias", None if bias is None else torch.from_numpy(bias))
            self.nchw, self.act = nchw, act

        def forward(self, x):
            x = (x.permute(0, 2, 3, 1) if self.nchw and x.dim() == 4 else x).reshape(x.shape[0], -1)
            return activate(F.linear(x, self.weight, self.bias), self.act, inplace=True)

    class PRelu(nn.Module):
        """TFLite's PRELU with one slope per channel (NCHW inside)."""

        def __init__(self, alpha):
            super().__init__()
            self.register_buffer("alpha", torch.from_numpy(alpha))

        def forward(self, x):
            return F.prelu(x, self.alpha.to(x.dtype))

    return dict(Conv=Conv, Elementwise=Elementwise, Fn=Fn, Linear=Linear, PRelu=PRelu, activate=activate,
                max_pool=max_pool,
                reshape=reshape,
                resize=resize, depth_to_space=depth_to_space)


@dataclass(frozen=True)
class _Step:
    inputs: tuple[int, ...]  # runtime (non-constant) tensor indices
    output: int
    free: tuple[int, ...]  # tensors no longer needed after this step


def _make_module_class():
    import torch

    ops = _build_ops(torch)

    class TfliteModule(torch.nn.Module):
        """A TFLite graph as a torch module: ``forward(*inputs)`` -> tuple of outputs.

        Inputs and outputs have TFLite's layouts (NHWC for images) with any batch size B
        in place of the model's 1; every input is cast to the module's float dtype.
        """

        def __init__(self, graph: TfliteGraph, outputs: Sequence[int | str] | None = None) -> None:
            super().__init__()
            self.graph_path = str(graph.path)
            self.input_shapes = tuple(graph.tensors[i].shape for i in graph.inputs)
            out_idx = _select_outputs(graph, outputs)
            self.output_names = tuple(graph.tensors[i].name for i in out_idx)
            self._inputs = graph.inputs
            self._outputs = out_idx
            consts = {t.index: t.data for t in graph.tensors if t.data is not None and t.sparsity is None}
            sparse = {t.index: t for t in graph.tensors if t.sparsity is not None}
            needed = needed_ops(graph, out_idx)
            consumers: dict[int, list[OperatorInfo]] = {}
            for op in graph.operators:
                for i in op.inputs if op.index in needed else ():
                    consumers.setdefault(i, []).append(op)
            folded: dict[int, tuple[int, tuple]] = {}  # PAD output -> (its input, pads) merged into convs
            steps, modules = [], []
            for op in graph.operators:
                if op.index not in needed:
                    continue
                pads = _pad_into_convs(graph, op, consts, consumers, out_idx)
                if pads is not None:
                    folded[op.outputs[0]] = (op.inputs[0], pads)
                    continue
                if op.op in _FOLDED and all(i in consts or i in sparse for i in op.inputs):
                    t = graph.tensors[op.inputs[0]]
                    if op.op == "DENSIFY":
                        consts[op.outputs[0]] = densify(t.data, t.shape, t.sparsity)
                    else:
                        consts[op.outputs[0]] = _dequantize(t, consts[t.index])
                    continue
                if len(op.outputs) != 1:
                    raise NotImplementedError(f"{graph.path.name}: op {op.op} with {len(op.outputs)} outputs")
                module = _build_op(ops, graph, op, consts, folded)
                runtime = tuple(folded[i][0] if i in folded else i for i in op.inputs if i >= 0 and i not in consts)
                steps.append(_Step(runtime, op.outputs[0], ()))
                modules.append(module)
            missing = [i for i in out_idx if i in consts]
            if missing:
                raise NotImplementedError(f"{graph.path.name}: output {graph.tensors[missing[0]].name} is constant")
            self._steps = _with_frees(steps, out_idx)
            self.ops = torch.nn.ModuleList(modules)

        @property
        def dtype(self) -> torch.dtype:
            for b in self.buffers():
                if b.is_floating_point():
                    return b.dtype
            return torch.float32

        def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            if len(inputs) != len(self._inputs):
                raise ValueError(f"the model takes {len(self._inputs)} input(s), got {len(inputs)}")
            dtype = self.dtype
            env = {}
            for idx, x, shape in zip(self._inputs, inputs, self.input_shapes):
                if x.dim() != len(shape) or tuple(x.shape[1:]) != tuple(shape[1:]):
                    raise ValueError(f"input must be (B, {', '.join(map(str, shape[1:]))}), got {tuple(x.shape)}")
                x = x.to(dtype)
                env[idx] = x.permute(0, 3, 1, 2) if x.dim() == 4 else x
            for step, module in zip(self._steps, self.ops):
                env[step.output] = module(*(env[i] for i in step.inputs))
                for i in step.free:
                    del env[i]
            return tuple(env[i].permute(0, 2, 3, 1) if env[i].dim() == 4 else env[i] for i in self._outputs)

    return TfliteModule


def _select_outputs(graph: TfliteGraph, outputs: Sequence[int | str] | None) -> tuple[int, ...]:
    if outputs is None:
        return graph.outputs
    chosen = []
    names = {graph.tensors[i].name: i for i in graph.outputs}
    for o in outputs:
        if isinstance(o, str):
            if o not in names:
                raise ValueError(f"{graph.path.name} has no output {o!r}; outputs: {', '.join(names)}")
            chosen.append(names[o])
        else:
            if not -len(graph.outputs) <= int(o) < len(graph.outputs):
                raise ValueError(f"{graph.path.name} has {len(graph.outputs)} outputs, asked for #{o}")
            chosen.append(graph.outputs[int(o)])
    return tuple(chosen)


def _with_frees(steps: list[_Step], outputs: Sequence[int]) -> tuple[_Step, ...]:
    last = {}
    for k, s in enumerate(steps):
        for i in s.inputs:
            last[i] = k
    keep = set(outputs)
    return tuple(_Step(s.inputs, s.output, tuple(sorted({i for i in s.inputs if last[i] == k and i not in keep})))
                 for k, s in enumerate(steps))


def _pad_into_convs(graph: TfliteGraph, op: OperatorInfo, consts: dict, consumers: dict,
                    outputs: Sequence[int]) -> tuple | None:
    """((top, bottom), (left, right)) if ``op`` is a spatial zero PAD read only by convolutions
    (which then pad themselves, saving a copy of the activation), else None."""
    if op.op != "PAD" or len(op.inputs) != 2 or op.inputs[1] not in consts or op.outputs[0] in outputs:
        return None
    if len(graph.tensors[op.inputs[0]].shape) != 4:
        return None
    p = consts[op.inputs[1]].astype(int)
    users = consumers.get(op.outputs[0], [])
    if p[0].any() or p[3].any() or not users:
        return None
    if any(u.op not in ("CONV_2D", "DEPTHWISE_CONV_2D") or u.inputs[0] != op.outputs[0] for u in users):
        return None
    return ((int(p[1, 0]), int(p[1, 1])), (int(p[2, 0]), int(p[2, 1])))


def _const(consts: dict, graph: TfliteGraph, op: OperatorInfo, k: int, what: str) -> np.ndarray:
    i = op.inputs[k] if k < len(op.inputs) else -1
    if i < 0:
        return None
    if i not in consts:
        raise NotImplementedError(f"{graph.path.name}: {op.op} #{op.index} needs a constant {what}")
    return consts[i]


def _build_op(ops: dict, graph: TfliteGraph, op: OperatorInfo, consts: dict, folded: dict):
    """One torch module for ``op`` (its constant inputs baked in)."""
    import torch

    name, o = op.op, op.options
    in_shape = graph.tensors[op.inputs[0]].shape if op.inputs and op.inputs[0] >= 0 else ()
    out_shape = graph.tensors[op.outputs[0]].shape
    act = _ACTIVATION.get(o.get("FusedActivationFunction", 0), "UNSUPPORTED")
    if act == "UNSUPPORTED":
        raise NotImplementedError(f"{graph.path.name}: {name} #{op.index} has fused activation "
                                  f"{o['FusedActivationFunction']}, not implemented")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = _const(consts, graph, op, 1, "weight").astype(np.float32)
        b = _const(consts, graph, op, 2, "bias")
        b = None if b is None else b.astype(np.float32)
        kh, kw = w.shape[1], w.shape[2]
        stride = (o["StrideH"], o["StrideW"])
        dilation = (o["DilationHFactor"], o["DilationWFactor"])
        if _PADDING[o["Padding"]] == "SAME":
            pads = (_same_pads(in_shape[1], kh, stride[0], dilation[0]),
                    _same_pads(in_shape[2], kw, stride[1], dilation[1]))
        else:
            pads = ((0, 0), (0, 0))
        if op.inputs[0] in folded:  # a PAD before this conv, merged into it
            extra = folded[op.inputs[0]][1]
            pads = tuple((a + c, b + d) for (a, b), (c, d) in zip(pads, extra))
        if name == "CONV_2D":  # OHWI -> OIHW
            groups = in_shape[3] // w.shape[3]
            weight = w.transpose(0, 3, 1, 2)
        else:  # 1HWO -> O1HW, output channel c * multiplier + m reads input channel c
            groups = in_shape[3]
            weight = w.transpose(3, 0, 1, 2)
        return ops["Conv"](weight, b, stride, dilation, pads, groups, act)
    if name == "MAX_POOL_2D":
        k = (o["FilterHeight"], o["FilterWidth"])
        s = (o["StrideH"], o["StrideW"])
        pads = ((_same_pads(in_shape[1], k[0], s[0], 1), _same_pads(in_shape[2], k[1], s[1], 1))
                if _PADDING[o["Padding"]] == "SAME" else ((0, 0), (0, 0)))
        return ops["Fn"](name, ops["max_pool"](k, s, pads, act))
    if name in ("ADD", "SUB", "MUL"):
        fn = {"ADD": torch.add, "SUB": torch.sub, "MUL": torch.mul}[name]
        const_pos = [k for k in (0, 1) if op.inputs[k] in consts]
        constant = None
        if len(const_pos) == 1:
            c = consts[op.inputs[const_pos[0]]].astype(np.float32)
            other = graph.tensors[op.inputs[1 - const_pos[0]]].shape
            if len(other) == 4 and c.ndim <= 4:
                c = c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(0, 3, 1, 2)
            constant = np.ascontiguousarray(c)
        elif len(const_pos) == 0:
            a, b = (graph.tensors[i].shape for i in op.inputs[:2])
            if len(a) != len(b):
                raise NotImplementedError(f"{graph.path.name}: {name} #{op.index} broadcasts ranks "
                                          f"{len(a)} and {len(b)}")
        return ops["Elementwise"](fn, constant, const_pos == [0], act)
    if name == "PAD":
        p = _const(consts, graph, op, 1, "paddings").astype(int)
        if len(in_shape) == 4:
            if p[0].any():
                raise NotImplementedError(f"{graph.path.name}: PAD #{op.index} pads the batch axis")
            pads = (p[2, 0], p[2, 1], p[1, 0], p[1, 1], p[3, 0], p[3, 1])
        else:
            if p[0].any():
                raise NotImplementedError(f"{graph.path.name}: PAD #{op.index} pads the batch axis")
            pads = tuple(int(v) for row in p[::-1][:-1] for v in row)
        pads = tuple(int(v) for v in pads)
        return ops["Fn"](name, lambda x: torch.nn.functional.pad(x, pads))
    if name == "RESHAPE":
        if not in_shape or in_shape[0] != 1 or not out_shape or out_shape[0] != 1:
            raise NotImplementedError(f"{graph.path.name}: RESHAPE #{op.index} from {in_shape} to {out_shape} "
                                      f"mixes the batch axis")
        return ops["Fn"](name, ops["reshape"](tuple(out_shape[1:]), len(in_shape) == 4, len(out_shape) == 4))
    if name == "CONCATENATION":
        rank = len(out_shape)
        axis = o["Axis"] % rank
        if rank == 4:
            axis = (0, 2, 3, 1)[axis]
        if any(i in consts for i in op.inputs):
            raise NotImplementedError(f"{graph.path.name}: CONCATENATION #{op.index} with a constant input")
        return ops["Fn"](name, lambda *xs: ops["activate"](torch.cat(xs, axis), act))
    if name == "RESIZE_BILINEAR":
        size = tuple(int(v) for v in _const(consts, graph, op, 1, "size"))
        return ops["Fn"](name, ops["resize"](size, bool(o["AlignCorners"]), bool(o["HalfPixelCenters"])))
    if name == "DEPTH_TO_SPACE":
        return ops["Fn"](name, ops["depth_to_space"](int(o["BlockSize"])))
    if name in ("LOGISTIC", "RELU", "RELU6", "TANH"):
        fn = {"LOGISTIC": torch.sigmoid, "TANH": torch.tanh, "RELU": torch.relu,
              "RELU6": lambda x: torch.nn.functional.hardtanh(x, 0.0, 6.0)}[name]
        return ops["Fn"](name, fn)
    if name == "MEAN":
        axes = sorted({int(a) % len(in_shape) for a in np.atleast_1d(_const(consts, graph, op, 1, "axis"))})
        if 0 in axes:
            raise NotImplementedError(f"{graph.path.name}: MEAN #{op.index} averages over the batch axis")
        keep = bool(o.get("KeepDims", False))
        dims = [(0, 2, 3, 1)[a] for a in axes] if len(in_shape) == 4 else axes  # NHWC axis -> NCHW
        if len(in_shape) == 4 and not keep and 3 not in axes:  # the output keeps channels, not last: NHWC first
            return ops["Fn"](name, lambda x: x.permute(0, 2, 3, 1).mean(axes, keepdim=False))
        return ops["Fn"](name, lambda x: x.mean(dims, keepdim=keep))
    if name == "FULLY_CONNECTED":
        if o.get("WeightsFormat", 0) != 0:
            raise NotImplementedError(f"{graph.path.name}: FULLY_CONNECTED #{op.index} has shuffled weights")
        w = np.ascontiguousarray(_const(consts, graph, op, 1, "weight").astype(np.float32))  # (out, in)
        b = _const(consts, graph, op, 2, "bias")
        b = None if b is None else np.ascontiguousarray(b.astype(np.float32))
        return ops["Linear"](w, b, len(in_shape) == 4, act)
    if name == "PRELU":
        alpha = _const(consts, graph, op, 1, "alpha").astype(np.float32)
        if len(in_shape) != 4 or alpha.size != in_shape[3]:
            raise NotImplementedError(f"{graph.path.name}: PRELU #{op.index} with alpha {alpha.shape} on {in_shape}")
        return ops["PRelu"](np.ascontiguousarray(alpha.reshape(-1)))
    if name == "STRIDED_SLICE":
        begin, end, strides = (_const(consts, graph, op, k, w).astype(int) for k, w in
                               ((1, "begin"), (2, "end"), (3, "strides")))
        whole = (not begin.any() and (strides == 1).all() and tuple(end) == tuple(in_shape)
                 and not any(o.get(m, 0) for m in ("EllipsisMask", "NewAxisMask", "ShrinkAxisMask")))
        if not whole:
            raise NotImplementedError(f"{graph.path.name}: STRIDED_SLICE #{op.index} is implemented only as a copy "
                                      f"of its whole input")
        return ops["Fn"](name, lambda x: x)
    if name.startswith("CUSTOM:"):
        from mocap.detect2d.estimators.tflite_mediapipe_ops import build_custom_op

        in_shapes = tuple(graph.tensors[i].shape for i in op.inputs if i >= 0)
        return build_custom_op(name[len("CUSTOM:"):], o, in_shapes, out_shape, f"{graph.path.name} op #{op.index}")
    if name == "DEQUANTIZE":
        return ops["Fn"](name, lambda x: x)  # float16 activations: the module computes in its own dtype
    raise NotImplementedError(f"{graph.path.name}: TFLite op {name} (operator #{op.index}) is not implemented "
                              f"in mocap.detect2d.estimators.tflite_torch; supported: {', '.join(SUPPORTED_OPS)}")


_MODULE_CLASS = None


def load_tflite(path: str | os.PathLike | TfliteGraph, *, outputs: Sequence[int | str] | None = None):
    """A :class:`TfliteModule` (torch.nn.Module, eval mode, float32 on CPU) running the model.

    Args:
        path: the .tflite file (or a graph from :func:`read_tflite` or :func:`load_graph`).
        outputs: which model outputs to compute, by position in the model's output list or
            by tensor name (default: all, in the model's order). Ops that only feed other
            outputs are dropped, which saves their time.

    Raises:
        NotImplementedError: the graph uses an op (or option) this module does not implement.
    """
    global _MODULE_CLASS
    if _MODULE_CLASS is None:
        _MODULE_CLASS = _make_module_class()
    graph = path if isinstance(path, TfliteGraph) else read_tflite(path)
    return _MODULE_CLASS(graph, outputs).eval()



# ---------------------------------------------------------------- running in batches

@functools.lru_cache(maxsize=None)
def steady_heap() -> bool:
    """Ask glibc's malloc to keep freed blocks of up to 32 MB on its heap (``mallopt``:
    M_MMAP_THRESHOLD at its largest, and M_TRIM_THRESHOLD 128 MB) rather than return them to
    the system after every network call. By default a block over 128 kB to a few MB is mapped
    afresh and zeroed by the kernel on each call; the activations of a batch of 8 BlazePose
    crops are such blocks. Measured on the 2-core machine (2026-12-07, landmark network, 2
    threads): 9.8 -> 6.9 ms a crop at batch 8, the detector 7.9 -> 7.8 ms a window at 8 and
    9.6 -> 7.8 at 16; batches of 1-4 unchanged. Process-wide, once; True where it took (Linux
    with glibc), else False and nothing changes."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 128 << 20))


def run_batched(net, x, batch_size: int) -> tuple:
    """``net`` (a module taking one batched tensor) over ``x`` (N >= 1, ...) in pieces of at most
    ``batch_size``, under ``torch.inference_mode`` -> its outputs, each concatenated over the N
    (torch tensors, on ``x``'s device).

    On the CPU, :func:`steady_heap` first (once). The pieces run one after the other. Running them side by side on threads of one torch
    thread each was tried on the 2-core machine (2026-12-07): two 256x256 crops of the
    BlazePose landmark network took 17-20 ms that way against 18-24 ms on torch's two
    threads, but the whole 2D stage of a two-person video was no faster (wall time 1.02x
    with the caller on one thread, 1.10x with it on two: the threads' idle spinning).
    """
    import torch

    n = int(x.shape[0])
    if n == 0:
        raise ValueError("run_batched needs at least one input")
    if x.device.type == "cpu":
        steady_heap()
    with torch.inference_mode():
        outs = [tuple(net(x[s:s + batch_size])) for s in range(0, n, int(batch_size))]
    return tuple(torch.cat(o) if len(o) > 1 else o[0] for o in zip(*outs))
