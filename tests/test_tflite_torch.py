"""mocap.detect2d.estimators.tflite_torch: TFLite graphs as torch modules, checked against the TFLite interpreter.

Reference: tflite_runtime's Interpreter (XNNPACK, float32) on MediaPipe's pose detector and
full landmark model, on random inputs in each model's value range and on real frames of
examples/balance_cam01.mp4. Measured on the dev machine (2 cores): largest difference /
output range 1e-6 to 2e-4 per output; the tolerance below is 1e-3 of the range.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from mocap.detect2d.estimators.tflite_read import prune_graph, save_graph  # noqa: E402
from mocap.detect2d.estimators.tflite_torch import (SUPPORTED_OPS, OperatorInfo, Sparsity, TensorInfo, TfliteGraph,  # noqa: E402
                                _same_pads, densify, load_graph, load_tflite, read_tflite)

from .conftest import EXAMPLE_VIDEO  # noqa: E402

try:  # the real models: MediaPipe's .tflite files, parsed with the tflite schema package
    import mediapipe
    import tflite  # noqa: F401
    MODULES = Path(mediapipe.__file__).parent / "modules"
except ImportError:
    MODULES = Path("/nonexistent")
needs_tflite = pytest.mark.skipif(not MODULES.is_dir(), reason="needs mediapipe 0.10.21 and the tflite package")
DETECTOR = MODULES / "pose_detection" / "pose_detection.tflite"
LANDMARKS = MODULES / "pose_landmark" / "pose_landmark_full.tflite"
MODELS = {"detector": (DETECTOR, (-1.0, 1.0)), "landmarks": (LANDMARKS, (0.0, 1.0))}
REL_TOL = 1e-3  # of each output's range


@pytest.fixture(scope="module")
def real_frames():
    from mocap.io.video import iter_frames

    frames = []
    for i, f in enumerate(iter_frames(EXAMPLE_VIDEO)):
        if i % 40 == 0:
            frames.append(f)
    return frames


def _inputs(name: str, frames: list[np.ndarray], n_random: int = 2) -> np.ndarray:
    """(B, S, S, 3) float32: random values in the model's range, then real frames resized."""
    path, (lo, hi) = MODELS[name]
    size = read_tflite(path).tensors[read_tflite(path).inputs[0]].shape[1]
    rng = np.random.default_rng(0)
    rand = rng.uniform(lo, hi, (n_random, size, size, 3))
    real = []
    for f in frames:
        h, w = f.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)  # letterbox, as MediaPipe feeds the detector
        square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = f
        real.append(cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA) / 255.0 * (hi - lo) + lo)
    return np.concatenate([rand, np.stack(real)]).astype(np.float32)


def _tflite_outputs(path: Path, x: np.ndarray) -> list[np.ndarray]:
    from tflite_runtime.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    outs = [[] for _ in it.get_output_details()]
    for b in range(len(x)):
        it.set_tensor(inp, x[b:b + 1])
        it.invoke()
        for k, o in enumerate(it.get_output_details()):
            outs[k].append(it.get_tensor(o["index"])[0].copy())
    return [np.stack(o) for o in outs]


@needs_tflite
def test_models_use_only_supported_ops():
    for path, _ in MODELS.values():
        counts = read_tflite(path).op_counts()
        assert set(counts) <= set(SUPPORTED_OPS), set(counts) - set(SUPPORTED_OPS)
    det = read_tflite(DETECTOR).op_counts()
    assert det["DENSIFY"] > 0 and det["DEPTH_TO_SPACE"] > 0  # sparse weights and pixel shuffles are exercised
    assert read_tflite(LANDMARKS).op_counts()["MAX_POOL_2D"] > 0


@needs_tflite
@pytest.mark.parametrize("name", list(MODELS))
def test_matches_tflite_interpreter_batched(name, real_frames):
    path, _ = MODELS[name]
    x = _inputs(name, real_frames)
    ref = _tflite_outputs(path, x)
    module = load_tflite(path)
    with torch.inference_mode():
        batch = [y.numpy() for y in module(torch.from_numpy(x))]
        single = [np.concatenate(ys) for ys in zip(*(
            [y.numpy() for y in module(torch.from_numpy(x[b:b + 1]))] for b in range(len(x))))]
    assert len(batch) == len(ref)
    for k, (r, got, one) in enumerate(zip(ref, batch, single)):
        assert got.shape == r.shape, (k, got.shape, r.shape)
        span = max(float(np.ptp(r)), 1e-6)
        err = float(np.abs(got - r).max()) / span
        print(f"{name} output {k} {r.shape[1:]}: max |torch - tflite| / range = {err:.2e}")
        assert err < REL_TOL, (k, err)
        assert float(np.abs(got - one).max()) / span < 1e-4  # batch of B == B runs of 1


@needs_tflite
def test_output_selection_drops_unused_ops(real_frames):
    full = load_tflite(LANDMARKS)
    some = load_tflite(LANDMARKS, outputs=["Identity_1", 3])  # presence flag, heatmap
    assert len(some.ops) < len(full.ops)
    x = torch.from_numpy(_inputs("landmarks", real_frames[:1], n_random=0))
    with torch.inference_mode():
        a, b = full(x), some(x)
    assert some.output_names == ("Identity_1", full.output_names[3])
    np.testing.assert_allclose(b[0].numpy(), a[1].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(b[1].numpy(), a[3].numpy(), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="no output"):
        load_tflite(LANDMARKS, outputs=["nope"])


@needs_tflite
def test_bad_input_shape_is_a_clear_error():
    module = load_tflite(DETECTOR)
    with pytest.raises(ValueError, match=r"input must be \(B, 224, 224, 3\)"):
        module(torch.zeros(1, 3, 224, 224))


def test_same_padding_is_tflites_asymmetric_rule():
    assert _same_pads(5, 3, 2, 1) == (1, 1)
    assert _same_pads(4, 3, 2, 1) == (0, 1)  # odd total: the extra pixel goes after
    assert _same_pads(256, 3, 2, 1) == (0, 1)
    assert _same_pads(7, 5, 1, 1) == (2, 2)
    assert _same_pads(8, 3, 1, 2) == (2, 2)  # dilation widens the kernel to 5
    # against torch: a stride-2 SAME conv equals conv on the asymmetrically padded input
    x = torch.randn(1, 2, 4, 4)
    w = torch.randn(3, 2, 3, 3)
    graph = _conv_graph(x.shape[2], w)
    module = load_tflite(graph)
    got = module(x.permute(0, 2, 3, 1))[0].permute(0, 3, 1, 2)
    want = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 1, 0, 1)), w, stride=2)
    torch.testing.assert_close(got, want)


def _conv_graph(size: int, w) -> TfliteGraph:
    """A one-op graph: 3x3 stride-2 SAME conv, weights in TFLite's OHWI layout."""
    ohwi = w.permute(0, 2, 3, 1).numpy()
    tensors = (TensorInfo(0, "x", (1, size, size, w.shape[1]), "FLOAT32"),
               TensorInfo(1, "w", tuple(ohwi.shape), "FLOAT32", ohwi),
               TensorInfo(2, "y", (1, (size + 1) // 2, (size + 1) // 2, w.shape[0]), "FLOAT32"))
    op = OperatorInfo(0, "CONV_2D", (0, 1, -1), (2,), dict(Padding=0, StrideH=2, StrideW=2, DilationHFactor=1,
                                                           DilationWFactor=1, FusedActivationFunction=0))
    return TfliteGraph(Path("synthetic.tflite"), tensors, (op,), (0,), (2,))


def test_unsupported_op_is_named():
    tensors = (TensorInfo(0, "x", (1, 4), "FLOAT32"), TensorInfo(1, "y", (1, 4), "FLOAT32"))
    graph = TfliteGraph(Path("odd.tflite"), tensors, (OperatorInfo(0, "SQUARED_DIFFERENCE", (0, 0), (1,)),), (0,), (1,))
    with pytest.raises(NotImplementedError, match="SQUARED_DIFFERENCE"):
        load_tflite(graph)


def _to_csr(dense: np.ndarray) -> tuple[np.ndarray, Sparsity]:
    """Encode a 2-D array as TFLite (DENSE rows, CSR columns)."""
    segments, indices, values = [0], [], []
    for row in dense:
        nz = np.nonzero(row)[0]
        indices += list(nz)
        values += list(row[nz])
        segments.append(len(indices))
    sp = Sparsity((0, 1), (), (("DENSE", dense.shape[0], None, None),
                               ("CSR", 0, np.array(segments), np.array(indices))))
    return np.array(values, dense.dtype), sp


def test_densify_round_trips():
    rng = np.random.default_rng(1)
    dense = rng.normal(size=(6, 9)).astype(np.float16)
    dense[rng.random(dense.shape) < 0.6] = 0
    values, sp = _to_csr(dense)
    np.testing.assert_array_equal(densify(values, dense.shape, sp), dense)
    # blocked: 2x3 blocks stored densely, block columns in CSR (dims: rows/2, cols/3 | 2, 3)
    blocks = dense.reshape(3, 2, 3, 3).transpose(0, 2, 1, 3)  # (block row, block col, 2, 3)
    keep = np.abs(blocks).sum((2, 3)) > 0
    segments = np.concatenate([[0], np.cumsum(keep.sum(1))])
    indices = np.concatenate([np.nonzero(k)[0] for k in keep])
    sp2 = Sparsity((0, 1, 2, 3), (0, 1), (("DENSE", 3, None, None), ("CSR", 0, segments, indices),
                                          ("DENSE", 2, None, None), ("DENSE", 3, None, None)))
    np.testing.assert_array_equal(densify(blocks[keep].ravel(), dense.shape, sp2), dense)
    with pytest.raises(ValueError, match="stores"):
        densify(values[:-1], dense.shape, sp)


@needs_tflite
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_half_on_cuda_close_to_float(real_frames):
    module = load_tflite(LANDMARKS, outputs=[0, 1, 3]).cuda()
    x = torch.from_numpy(_inputs("landmarks", real_frames, n_random=0)).cuda()
    with torch.inference_mode():
        full = module(x)
        half = module.half()(x)
    for a, b in zip(full, half):
        span = float((a.max() - a.min()).clamp(min=1e-6))
        assert float((a - b.float()).abs().max()) / span < 2e-2


def _one_op_graph(op: str, in_shape, out_shape, consts=(), **options) -> TfliteGraph:
    tensors = [TensorInfo(0, "x", tuple(in_shape), "FLOAT32"), TensorInfo(1, "y", tuple(out_shape), "FLOAT32")]
    for k, c in enumerate(consts):
        tensors.append(TensorInfo(2 + k, f"c{k}", c.shape, "INT32", c))
    inputs = (0,) + tuple(range(2, 2 + len(consts)))
    return TfliteGraph(Path("synthetic.tflite"), tuple(tensors), (OperatorInfo(0, op, inputs, (1,), options),), (0,), (1,))


@pytest.mark.parametrize("align,half,want", [
    (False, False, [1.0, 2.0, 3.0, 3.0]),  # legacy TF: source = dest * in / out
    (True, False, [1.0, 5 / 3, 7 / 3, 3.0]),  # corners aligned: source = dest * (in - 1) / (out - 1)
    (False, True, [1.0, 1.5, 2.5, 3.0]),  # half-pixel centres, clamped at the edges
])
def test_resize_bilinear_modes(align, half, want):
    graph = _one_op_graph("RESIZE_BILINEAR", (1, 1, 2, 1), (1, 1, 4, 1), [np.array([1, 4], np.int32)],
                          AlignCorners=align, HalfPixelCenters=half)
    got = load_tflite(graph)(torch.tensor([[[[1.0], [3.0]]]]))[0]
    np.testing.assert_allclose(got[0, 0, :, 0].numpy(), want, atol=1e-6)


def test_depth_to_space_order():
    x = torch.arange(8.0).view(1, 1, 1, 8)  # one pixel, 8 channels -> 2x2 pixels of 2 channels
    got = load_tflite(_one_op_graph("DEPTH_TO_SPACE", (1, 1, 1, 8), (1, 2, 2, 2), BlockSize=2))(x)[0]
    np.testing.assert_array_equal(got[0].numpy(), [[[0, 1], [2, 3]], [[4, 5], [6, 7]]])


def test_saved_graph_round_trips(tmp_path):
    """save_graph -> load_graph keeps every field: constants with their dtypes (float16 stays
    float16), sparse storage, quantisation, options with tuples; and runs the same."""
    rng = np.random.default_rng(4)
    w = rng.normal(size=(3, 3, 3, 2)).astype(np.float16)  # OHWI
    w[rng.random(w.shape) < 0.5] = 0
    values, rows = _to_csr(w.reshape(27, 2))  # DENSE 3 x 3 x 3, then CSR over the last axis
    sp = Sparsity((0, 1, 2, 3), (), (("DENSE", 3, None, None),) * 3 + rows.dims[1:])
    bias = np.array([0.5, -1.0, 2.0], np.float32)
    tensors = (TensorInfo(0, "x", (1, 4, 4, 2), "FLOAT32"),
               TensorInfo(1, "w_sparse", (3, 3, 3, 2), "FLOAT16", values, sparsity=sp),
               TensorInfo(2, "w", (3, 3, 3, 2), "FLOAT16"),
               TensorInfo(3, "w32", (3, 3, 3, 2), "FLOAT32"),
               TensorInfo(4, "b", (3,), "FLOAT32", bias, np.array([0.1], np.float32), np.array([0]), 0),
               TensorInfo(5, "y", (1, 2, 2, 3), "FLOAT32"),
               TensorInfo(6, "shape", (2,), "INT32", np.array([1, 12], np.int32)),
               TensorInfo(7, "z", (1, 12), "FLOAT32"))
    conv = dict(Padding=0, StrideH=2, StrideW=2, DilationHFactor=1, DilationWFactor=1, FusedActivationFunction=1)
    ops = (OperatorInfo(0, "DENSIFY", (1,), (2,)), OperatorInfo(1, "DEQUANTIZE", (2,), (3,)),
           OperatorInfo(2, "CONV_2D", (0, 3, 4), (5,), conv), OperatorInfo(3, "RESHAPE", (5, 6), (7,), {"NewShape": (1, 12)}))
    graph = TfliteGraph(Path("g.tflite"), tensors, ops, (0,), (7,))
    json_path, pt_path = save_graph(graph, tmp_path / "g", source={"from": "test"})
    back = load_graph(tmp_path / "g")
    assert back.path == json_path and back.inputs == (0,) and back.outputs == (7,)
    assert [(o.op, o.inputs, o.outputs, o.options) for o in back.operators] == \
           [(o.op, o.inputs, o.outputs, o.options) for o in ops]
    for a, b in zip(tensors, back.tensors):
        assert (a.name, a.shape, a.dtype, a.quantized_dimension) == (b.name, b.shape, b.dtype, b.quantized_dimension)
        for f in ("data", "scale", "zero_point"):
            x, y = getattr(a, f), getattr(b, f)
            assert (x is None) == (y is None), (a.name, f)
            if x is not None:
                assert x.dtype == y.dtype or f == "zero_point", (a.name, f, x.dtype, y.dtype)
                np.testing.assert_array_equal(x, y)
    assert back.tensors[1].sparsity.traversal_order == (0, 1, 2, 3)
    np.testing.assert_array_equal(densify(back.tensors[1].data, w.shape, back.tensors[1].sparsity), w)
    x = torch.from_numpy(rng.normal(size=(2, 4, 4, 2)).astype(np.float32))
    torch.testing.assert_close(load_tflite(back)(x)[0], load_tflite(graph)(x)[0], rtol=0, atol=0)
    want = torch.nn.functional.conv2d(torch.nn.functional.pad(x.permute(0, 3, 1, 2), (0, 1, 0, 1)),
                                      torch.from_numpy(w.astype(np.float32)).permute(0, 3, 1, 2),
                                      torch.from_numpy(bias), stride=2).relu()
    torch.testing.assert_close(load_tflite(back)(x)[0], want.permute(0, 2, 3, 1).reshape(2, 12))
    # the two files must agree
    state = torch.load(pt_path, weights_only=True)
    state["t6"] = torch.zeros(3, dtype=torch.int32)
    torch.save(state, pt_path)
    with pytest.raises(ValueError, match="shape"):
        load_graph(tmp_path / "g")
    state["t6"] = torch.tensor([1, 12], dtype=torch.int32)
    state["t99"] = state["t6"]
    torch.save(state, pt_path)
    with pytest.raises(ValueError, match="t99"):
        load_graph(tmp_path / "g")
    json_path.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="format"):
        load_graph(tmp_path / "g")


def test_prune_graph_keeps_what_the_chosen_outputs_need():
    """Two outputs from one input: keeping the second drops the first's op and tensors and
    renumbers the rest; the pruned graph computes the same."""
    c = np.array([2.0], np.float32)
    tensors = (TensorInfo(0, "x", (1, 4), "FLOAT32"), TensorInfo(1, "c", (1,), "FLOAT32", c),
               TensorInfo(2, "a", (1, 4), "FLOAT32"), TensorInfo(3, "k", (1,), "FLOAT32", c + 1),
               TensorInfo(4, "b", (1, 4), "FLOAT32"))
    ops = (OperatorInfo(0, "MUL", (0, 1), (2,), {"FusedActivationFunction": 0}),
           OperatorInfo(1, "ADD", (0, 3), (4,), {"FusedActivationFunction": 0}))
    graph = TfliteGraph(Path("two.tflite"), tensors, ops, (0,), (2, 4))
    pruned = prune_graph(graph, [1])
    assert [t.name for t in pruned.tensors] == ["x", "k", "b"] and [t.index for t in pruned.tensors] == [0, 1, 2]
    assert [(o.op, o.inputs, o.outputs) for o in pruned.operators] == [("ADD", (0, 1), (2,))]
    assert pruned.inputs == (0,) and pruned.outputs == (2,)
    x = torch.arange(4.0).view(1, 4)
    torch.testing.assert_close(load_tflite(pruned)(x)[0], x + 3)
    both = prune_graph(graph, [1, 0])  # order as asked
    assert [both.tensors[i].name for i in both.outputs] == ["b", "a"]
