"""Read a TensorFlow Lite flatbuffer into plain data (numpy), for :mod:`mocap.detect2d.estimators.tflite_torch`.

:func:`read_tflite` parses the file through the generated accessors of the ``tflite``
package: tensors (shape, type, constant data, quantisation, sparsity) and operators
(builtin code, inputs, outputs, options). :func:`densify` and :func:`_dequantize` evaluate
the constant sub-graphs (sparse and float16 / int8 weights) in numpy. :func:`save_graph`
and :func:`load_graph` store a graph as JSON plus a torch state dict of its constants, so
that a converted model runs without the ``tflite`` package (:func:`prune_graph` first keeps
only the outputs wanted).

``tflite`` is imported inside the functions that need it (``pip install 'mocap-lift[estimators]'``).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

_NUMPY_TYPES = {"FLOAT32": "<f4", "FLOAT16": "<f2", "FLOAT64": "<f8", "INT32": "<i4", "INT64": "<i8",
                "INT16": "<i2", "INT8": "i1", "UINT8": "u1", "BOOL": "?", "UINT16": "<u2", "UINT32": "<u4"}

# op name -> (options class in the tflite package, option getters); the option dict keys are
# the getter names, e.g. "StrideH".
_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", ("Padding", "StrideH", "StrideW", "DilationHFactor", "DilationWFactor",
                                  "FusedActivationFunction")),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", ("Padding", "StrideH", "StrideW", "DepthMultiplier",
                                                     "DilationHFactor", "DilationWFactor",
                                                     "FusedActivationFunction")),
    "MAX_POOL_2D": ("Pool2DOptions", ("Padding", "StrideH", "StrideW", "FilterHeight", "FilterWidth",
                                      "FusedActivationFunction")),
    "ADD": ("AddOptions", ("FusedActivationFunction",)),
    "SUB": ("SubOptions", ("FusedActivationFunction",)),
    "MUL": ("MulOptions", ("FusedActivationFunction",)),
    "CONCATENATION": ("ConcatenationOptions", ("Axis", "FusedActivationFunction")),
    "RESIZE_BILINEAR": ("ResizeBilinearOptions", ("AlignCorners", "HalfPixelCenters")),
    "DEPTH_TO_SPACE": ("DepthToSpaceOptions", ("BlockSize",)),
    "MEAN": ("ReducerOptions", ("KeepDims",)),
    "FULLY_CONNECTED": ("FullyConnectedOptions", ("FusedActivationFunction", "WeightsFormat", "KeepNumDims")),
    "STRIDED_SLICE": ("StridedSliceOptions", ("BeginMask", "EndMask", "EllipsisMask", "NewAxisMask",
                                              "ShrinkAxisMask")),
}
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATION = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}
_FOLDED = ("DEQUANTIZE", "DENSIFY")  # evaluated at load time when their input is constant
SUPPORTED_OPS = ("ADD", "SUB", "MUL", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "PAD", "RESHAPE",
                 "CONCATENATION", "RESIZE_BILINEAR", "DEPTH_TO_SPACE", "LOGISTIC", "RELU", "RELU6", "TANH",
                 "DEQUANTIZE", "DENSIFY", "MEAN", "FULLY_CONNECTED", "PRELU", "STRIDED_SLICE",
                 # MediaPipe's custom ops (mocap.detect2d.estimators.tflite_mediapipe_ops)
                 "CUSTOM:Landmarks2TransformMatrix", "CUSTOM:TransformTensorBilinear", "CUSTOM:TransformLandmarks")


@dataclass(frozen=True)
class Sparsity:
    """TFLite sparse storage of a constant tensor (see tensorflow/lite/schema/schema.fbs).

    ``dims[k]`` describes traversal level k: ``("DENSE", size, None, None)`` or
    ``("CSR", 0, segments, indices)``; ``block_map[i]`` is the original axis that level
    ``rank + i`` blocks.
    """

    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    dims: tuple[tuple[str, int, np.ndarray | None, np.ndarray | None], ...]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the graph. ``data`` is the constant value (None for activations)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # TFLite type name, e.g. "FLOAT32"
    data: np.ndarray | None = None  # for sparse tensors: the stored values only
    scale: np.ndarray | None = None  # quantisation, per tensor or per channel
    zero_point: np.ndarray | None = None
    quantized_dimension: int = 0
    sparsity: Sparsity | None = None


@dataclass(frozen=True)
class OperatorInfo:
    """One operator: ``op`` is the builtin name (``"CUSTOM:<code>"`` for custom ops, whose
    ``options`` are their decoded flexbuffer map, plus ``"version"``)."""

    index: int
    op: str
    inputs: tuple[int, ...]  # tensor indices, -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TfliteGraph:
    """The first subgraph of a .tflite model, as plain data."""

    path: Path
    tensors: tuple[TensorInfo, ...]
    operators: tuple[OperatorInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def op_counts(self) -> dict[str, int]:
        """Operator name -> how many times the graph uses it."""
        return dict(Counter(o.op for o in self.operators))

    def tensor(self, name_or_index: str | int) -> TensorInfo:
        """A tensor by name or index."""
        if isinstance(name_or_index, int):
            return self.tensors[name_or_index]
        for t in self.tensors:
            if t.name == name_or_index:
                return t
        raise KeyError(f"{self.path.name} has no tensor named {name_or_index!r}")


def _tflite():
    try:
        import tflite
    except ImportError:
        raise ImportError("reading .tflite files needs the tflite schema package: "
                          "pip install 'mocap-lift[estimators]'") from None
    return tflite


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _index_vector(tfl, table, kind: int) -> np.ndarray | None:
    """A sparse-index union member (Int32Vector / Uint16Vector / Uint8Vector) as an int64 array."""
    classes = {1: tfl.Int32Vector, 2: tfl.Uint16Vector, 3: tfl.Uint8Vector}
    if table is None or kind not in classes:
        return None
    vec = classes[kind]()
    vec.Init(table.Bytes, table.Pos)
    return vec.ValuesAsNumpy().astype(np.int64) if vec.ValuesLength() else np.zeros(0, np.int64)


def _read_sparsity(tfl, sp) -> Sparsity:
    dims = []
    for k in range(sp.DimMetadataLength()):
        dm = sp.DimMetadata(k)
        if dm.Format() == 0:
            dims.append(("DENSE", int(dm.DenseSize()), None, None))
        else:
            dims.append(("CSR", 0, _index_vector(tfl, dm.ArraySegments(), dm.ArraySegmentsType()),
                         _index_vector(tfl, dm.ArrayIndices(), dm.ArrayIndicesType())))
    block_map = tuple(int(v) for v in sp.BlockMapAsNumpy()) if sp.BlockMapLength() else ()
    return Sparsity(tuple(int(v) for v in sp.TraversalOrderAsNumpy()), block_map, tuple(dims))


def read_tflite(path: str | os.PathLike) -> TfliteGraph:
    """Parse the first subgraph of the .tflite file at ``path`` into a :class:`TfliteGraph`."""
    tfl = _tflite()
    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.TensorType import TensorType

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tflite model at {path}")
    raw = path.read_bytes()
    model = tfl.Model.GetRootAsModel(raw, 0)
    if model.SubgraphsLength() < 1:
        raise ValueError(f"{path} holds no subgraph; is it a TFLite model?")
    graph = model.Subgraphs(0)
    type_names = _enum_names(TensorType)
    op_names = _enum_names(BuiltinOperator)

    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        dtype = type_names.get(t.Type(), f"TYPE{t.Type()}")
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        buf = model.Buffers(t.Buffer())
        data = None
        if buf.DataLength():
            data = buf.DataAsNumpy().tobytes()
        elif buf.Offset() > 1:  # large models keep buffers after the flatbuffer
            data = raw[buf.Offset():buf.Offset() + buf.Size()]
        sparsity = _read_sparsity(tfl, t.Sparsity()) if t.Sparsity() is not None else None
        if data is not None:
            if dtype not in _NUMPY_TYPES:
                raise NotImplementedError(f"{path.name}: constant tensor {t.Name().decode()!r} has type {dtype}")
            data = np.frombuffer(data, _NUMPY_TYPES[dtype]).copy()
            if sparsity is None:
                data = data.reshape(shape)
        scale = zero_point = None
        qdim = 0
        q = t.Quantization()
        if q is not None and q.ScaleLength():
            scale = q.ScaleAsNumpy().astype(np.float32)
            zero_point = q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else np.zeros_like(scale)
            qdim = int(q.QuantizedDimension())
        tensors.append(TensorInfo(i, t.Name().decode(), shape, dtype, data, scale, zero_point, qdim, sparsity))

    operators = []
    for i in range(graph.OperatorsLength()):
        o = graph.Operators(i)
        code = model.OperatorCodes(o.OpcodeIndex())
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        name = op_names.get(builtin, f"BUILTIN{builtin}")
        if name == "CUSTOM":
            name = "CUSTOM:" + (code.CustomCode() or b"").decode()
        options = {}
        if name in _OPTIONS and o.BuiltinOptions() is not None:
            cls_name, getters = _OPTIONS[name]
            opt = getattr(tfl, cls_name)()
            table = o.BuiltinOptions()
            opt.Init(table.Bytes, table.Pos)
            options = {g: getattr(opt, g)() for g in getters}
        if name.startswith("CUSTOM:"):
            options = _custom_options(o)
            options["version"] = int(code.Version())
        if name == "RESHAPE" and o.BuiltinOptions() is not None:
            opt = tfl.ReshapeOptions()
            table = o.BuiltinOptions()
            opt.Init(table.Bytes, table.Pos)
            if opt.NewShapeLength():
                options["NewShape"] = tuple(int(v) for v in opt.NewShapeAsNumpy())
        operators.append(OperatorInfo(i, name, tuple(int(v) for v in o.InputsAsNumpy()),
                                      tuple(int(v) for v in o.OutputsAsNumpy()), options))
    return TfliteGraph(path, tuple(tensors), tuple(operators), tuple(int(v) for v in graph.InputsAsNumpy()),
                       tuple(int(v) for v in graph.OutputsAsNumpy()))


def _custom_options(o) -> dict[str, Any]:
    """A custom operator's options (a flexbuffer map) as a dict of ints, floats and tuples."""
    if not o.CustomOptionsLength():
        return {}
    from flatbuffers import flexbuffers

    raw = flexbuffers.Loads(o.CustomOptionsAsNumpy().tobytes())
    if not isinstance(raw, dict):
        raise NotImplementedError(f"custom options that are not a map: {type(raw).__name__}")
    return {str(k): tuple(v) if isinstance(v, list) else v for k, v in raw.items()}


# ---------------------------------------------------------------- constant folding (numpy)

def densify(values: np.ndarray, shape: Sequence[int], sparsity: Sparsity) -> np.ndarray:
    """Dense array of ``shape`` from TFLite sparse storage (CSR levels, optional blocks)."""
    rank = len(shape)
    order = sparsity.traversal_order
    block_size = {orig: sparsity.dims[rank + i][1] for i, orig in enumerate(sparsity.block_map)}
    coords = np.zeros((1, len(order)), np.int64)  # one row per node of the current level
    pos = np.zeros(1, np.int64)  # each node's position in the next level's storage
    for level, axis in enumerate(order):
        kind, size, segments, indices = sparsity.dims[level]
        if kind == "DENSE":
            child = np.arange(size, dtype=np.int64)
            coords = np.repeat(coords, size, axis=0)
            coords[:, axis] = np.tile(child, len(pos))
            pos = (pos[:, None] * size + child[None, :]).ravel()
        else:
            counts = segments[pos + 1] - segments[pos]
            starts = np.repeat(segments[pos], counts)
            offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            pos = starts + offsets
            coords = np.repeat(coords, counts, axis=0)
            coords[:, axis] = indices[pos]
    if len(pos) != len(values):
        raise ValueError(f"sparse tensor stores {len(values)} values but its index describes {len(pos)}")
    dense = np.zeros(tuple(shape), values.dtype)
    index = []
    for axis in range(rank):
        c = coords[:, axis]
        if axis in block_size:
            level = rank + sparsity.block_map.index(axis)
            c = c * block_size[axis] + coords[:, level]
        index.append(c)
    dense[tuple(index)] = values[pos]
    return dense


def _dequantize(t: TensorInfo, data: np.ndarray) -> np.ndarray:
    if data.dtype == np.float16:
        return data.astype(np.float32)
    if t.scale is None:
        raise NotImplementedError(f"DEQUANTIZE of {t.dtype} tensor {t.name!r} without quantisation parameters")
    shape = [1] * data.ndim
    if t.scale.size > 1:
        shape[t.quantized_dimension] = -1
    return ((data.astype(np.float32) - t.zero_point.reshape(shape)) * t.scale.reshape(shape)).astype(np.float32)


# ---------------------------------------------------------------- graphs as JSON + a torch state dict

#: the ``format`` of a graph saved by :func:`save_graph`
GRAPH_FORMAT = "mocap-tflite-graph/1"


def needed_ops(graph: TfliteGraph, outputs: Sequence[int]) -> set[int]:
    """Indices of the operators that ``outputs`` (tensor indices) depend on."""
    producer = {t: op for op in graph.operators for t in op.outputs}
    needed, stack = set(), list(outputs)
    while stack:
        t = stack.pop()
        op = producer.get(t)
        if op is None or op.index in needed:
            continue
        needed.add(op.index)
        stack.extend(i for i in op.inputs if i >= 0)
    return needed


def prune_graph(graph: TfliteGraph, outputs: Sequence[int]) -> TfliteGraph:
    """The part of ``graph`` that computes the outputs at positions ``outputs`` of
    ``graph.outputs`` (in that order): the other operators and the tensors only they use are
    dropped, and tensors and operators are numbered afresh (0, 1, ...)."""
    out = tuple(graph.outputs[int(k)] for k in outputs)
    ops = [op for op in graph.operators if op.index in needed_ops(graph, out)]
    used = sorted({i for op in ops for i in (*op.inputs, *op.outputs) if i >= 0} | set(graph.inputs) | set(out))
    new = {old: k for k, old in enumerate(used)}
    remap = lambda idx: tuple(new[i] if i >= 0 else -1 for i in idx)  # noqa: E731
    tensors = tuple(TensorInfo(new[t.index], t.name, t.shape, t.dtype, t.data, t.scale, t.zero_point,
                               t.quantized_dimension, t.sparsity) for t in (graph.tensors[i] for i in used))
    operators = tuple(OperatorInfo(k, op.op, remap(op.inputs), remap(op.outputs), dict(op.options))
                      for k, op in enumerate(ops))
    return TfliteGraph(graph.path, tensors, operators, remap(graph.inputs), remap(out))


def _small_int(a: np.ndarray) -> np.ndarray:
    """An index array in the narrowest of int16 / int32 / int64 that holds it."""
    for dtype in (np.int16, np.int32):
        if a.size == 0 or (a.min() >= np.iinfo(dtype).min and a.max() <= np.iinfo(dtype).max):
            return a.astype(dtype)
    return a.astype(np.int64)


def save_graph(graph: TfliteGraph, stem: str | os.PathLike, *, source: dict[str, Any] | None = None
               ) -> tuple[Path, Path]:
    """Write ``graph`` as ``stem.json`` (structure: tensors' names, shapes, types,
    quantisation and sparse layout; operators with their options; inputs, outputs; and
    ``source``, free-form provenance) and ``stem.pt`` (a torch state dict: every constant
    tensor ``t<index>`` exactly as stored, e.g. float16 weights stay float16; sparse index
    arrays ``t<index>.segments<level>`` / ``.indices<level>``). Needs torch.

    Returns:
        the paths of the JSON and the state dict.
    """
    import torch

    stem = Path(stem)
    state, tensors = {}, []
    for t in graph.tensors:
        entry: dict[str, Any] = {"name": t.name, "shape": list(t.shape), "dtype": t.dtype}
        if t.data is not None:
            state[f"t{t.index}"] = torch.from_numpy(np.ascontiguousarray(t.data))
        if t.scale is not None:
            entry.update(scale=t.scale.tolist(), zero_point=t.zero_point.tolist(),
                         quantized_dimension=t.quantized_dimension)
        if t.sparsity is not None:
            entry["sparsity"] = {"traversal_order": list(t.sparsity.traversal_order),
                                 "block_map": list(t.sparsity.block_map),
                                 "dims": [[kind, size] for kind, size, _, _ in t.sparsity.dims]}
            for level, (_, _, segments, indices) in enumerate(t.sparsity.dims):
                if segments is not None:
                    state[f"t{t.index}.segments{level}"] = torch.from_numpy(_small_int(segments))
                    state[f"t{t.index}.indices{level}"] = torch.from_numpy(_small_int(indices))
        tensors.append(entry)
    operators = [{"op": op.op, "inputs": list(op.inputs), "outputs": list(op.outputs),
                  "options": {k: list(v) if isinstance(v, tuple) else v for k, v in op.options.items()}}
                 for op in graph.operators]
    doc = {"format": GRAPH_FORMAT, "source": source or {}, "inputs": list(graph.inputs),
           "outputs": list(graph.outputs), "tensors": tensors, "operators": operators}
    json_path, pt_path = stem.with_suffix(".json"), stem.with_suffix(".pt")
    torch.save(state, pt_path)
    json_path.write_text(_json_lines(doc))
    return json_path, pt_path


def _json_lines(doc: dict[str, Any]) -> str:
    """``doc`` as JSON with one list item (tensor, operator) per line: short, and diffs read well."""
    def value(v):
        if isinstance(v, list) and v and isinstance(v[0], dict):
            return "[\n" + ",\n".join(json.dumps(x, separators=(",", ":")) for x in v) + "\n]"
        return json.dumps(v, separators=(",", ":"))
    return "{\n" + ",\n".join(f"{json.dumps(k)}: {value(v)}" for k, v in doc.items()) + "\n}\n"


def load_graph(stem: str | os.PathLike) -> TfliteGraph:
    """The graph :func:`save_graph` wrote to ``stem.json`` and ``stem.pt`` (needs torch, not tflite).

    Raises:
        FileNotFoundError: a file is missing. ValueError: the files do not match each other.
    """
    import torch

    stem = Path(stem)
    json_path, pt_path = stem.with_suffix(".json"), stem.with_suffix(".pt")
    for p in (json_path, pt_path):
        if not p.is_file():
            raise FileNotFoundError(f"no saved graph file {p}")
    doc = json.loads(json_path.read_text())
    if doc.get("format") != GRAPH_FORMAT:
        raise ValueError(f"{json_path} is not a saved graph ({GRAPH_FORMAT}), its format is {doc.get('format')!r}")
    state = {k: v.numpy() for k, v in torch.load(pt_path, map_location="cpu", weights_only=True).items()}
    tensors = []
    for i, e in enumerate(doc["tensors"]):
        shape = tuple(e["shape"])
        data = state.pop(f"t{i}", None)
        sparsity = None
        if "sparsity" in e:
            s = e["sparsity"]
            dims = tuple((kind, size, *((state.pop(f"t{i}.segments{k}").astype(np.int64),
                                          state.pop(f"t{i}.indices{k}").astype(np.int64)) if kind == "CSR"
                                        else (None, None)))
                         for k, (kind, size) in enumerate(s["dims"]))
            sparsity = Sparsity(tuple(s["traversal_order"]), tuple(s["block_map"]), dims)
        elif data is not None and data.shape != shape:
            raise ValueError(f"{pt_path.name}: tensor {e['name']!r} is {data.shape}, {json_path.name} says {shape}")
        if data is not None and data.dtype != np.dtype(_NUMPY_TYPES[e["dtype"]]):
            raise ValueError(f"{pt_path.name}: tensor {e['name']!r} is {data.dtype}, {json_path.name} says {e['dtype']}")
        scale = zero_point = None
        if "scale" in e:
            scale = np.asarray(e["scale"], np.float32)
            zero_point = np.asarray(e["zero_point"], np.int64)
        tensors.append(TensorInfo(i, e["name"], shape, e["dtype"], data, scale, zero_point,
                                  int(e.get("quantized_dimension", 0)), sparsity))
    if state:
        raise ValueError(f"{pt_path.name} holds tensors {json_path.name} does not name: {', '.join(sorted(state))}")
    operators = tuple(OperatorInfo(k, o["op"], tuple(o["inputs"]), tuple(o["outputs"]),
                                   {n: tuple(v) if isinstance(v, list) else v for n, v in o["options"].items()})
                      for k, o in enumerate(doc["operators"]))
    return TfliteGraph(json_path, tuple(tensors), operators, tuple(doc["inputs"]), tuple(doc["outputs"]))
