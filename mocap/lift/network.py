"""Run the lifting network: :class:`NetworkLifter` (whole clips) and :class:`StreamingLifter` (live).

Weights: ``mocap/lift/weights/offline.pt`` (symmetric window) and ``mocap/lift/weights/causal.pt``
(past frames only). A weights file holds ``{"config": ModelConfig dict, "state_dict": ...,
"meta": ...}``; tensors may be stored as float16 and are loaded as float32.

Output: MOTION21 joints (T, 21, 3), metres, root-relative (pelvis at 0), camera axes x right,
y down, z away from the camera. Frames with no usable keypoint at all are NaN; keypoints that
are NaN or have confidence 0 are treated as missing and the network fills them in.
"""
from __future__ import annotations

import threading
import weakref
from pathlib import Path

import numpy as np

from mocap.errors import MocapError, missing_extra
from mocap.formats import Keypoints2D
from mocap.lift.features import (NUM_INPUT_JOINTS, frames_with_detection, layout_to_input, mirror_features,
                                 mirror_joints, normalise_frames)
from mocap.lift.interface import LiftResult

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def default_weights_path(causal: bool = False) -> Path:
    """The shipped weights: ``mocap/lift/weights/causal.pt`` or ``mocap/lift/weights/offline.pt``."""
    return WEIGHTS_DIR / ("causal.pt" if causal else "offline.pt")


def _torch():
    try:
        import torch
    except ImportError:
        raise missing_extra("torch", "lift") from None
    return torch


def load_model(path: str | Path, device: str = "cpu"):
    """A :class:`mocap.lift.model.TemporalLifter` in eval mode from a weights file."""
    torch = _torch()
    from mocap.lift.model import ModelConfig, TemporalLifter

    path = Path(path)
    if not path.exists():
        raise MocapError(f"lifting weights not found: {path}; train them with `python -m lifting.train` "
                         "or reinstall mocap-lift (the package ships mocap/lift/weights/offline.pt)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        config = ModelConfig.from_dict(blob["config"])
        model = TemporalLifter(config)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise MocapError(f"{path} is not a lifting weights file ({e.__class__.__name__}: {e})") from None
    return model.to(device).eval()


def _layout_for(num_joints: int) -> str:
    layouts = {33: "mediapipe33", 17: "coco17"}
    if num_joints not in layouts:
        raise ValueError(f"keypoints with {num_joints} joints: expected 33 (mediapipe33) or 17 (coco17)")
    return layouts[num_joints]


#: the frame rate the shipped networks were trained at
TRAINED_FPS = 30.0


def frame_stride(fps: float) -> int:
    """Subsampling step that brings ``fps`` closest to the trained 30 fps (1 below 45 fps)."""
    return max(1, int(round(fps / TRAINED_FPS)))


def lift_normalised(model, features: np.ndarray, *, flip_average: bool, device: str = "cpu",
                    batch: int = 64) -> np.ndarray:
    """Run ``model`` over whole sequences of normalised features; the one path for users and evaluation.

    Args:
        model: a :class:`mocap.lift.model.TemporalLifter` in eval mode.
        features: (S, T, 21, 3) normalised input (:func:`mocap.lift.features.normalise_frames`).
        flip_average: also lift the mirrored input (:func:`mocap.lift.features.mirror_features`) and
            average its mirrored output (:func:`mocap.lift.features.mirror_joints`) with the plain one.
        device: torch device of ``model``.
        batch: sequences per forward pass.
    Returns:
        (S, T, 21, 3) float64 metres, camera axes, edge-padded in time
        (:func:`mocap.lift.model.run_sequence`); not re-rooted, no frame masked.
    """
    torch = _torch()
    from mocap.lift.model import run_sequence

    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 4 or features.shape[2:] != (NUM_INPUT_JOINTS, 3):
        raise ValueError(f"features must have shape (S, T, {NUM_INPUT_JOINTS}, 3), got {features.shape}")

    def one_pass(x: np.ndarray) -> np.ndarray:
        out = [run_sequence(model, torch.from_numpy(np.ascontiguousarray(x[i: i + batch])).to(device)).cpu().numpy()
               for i in range(0, len(x), batch)]
        return np.concatenate(out).astype(np.float64)

    out = one_pass(features)
    if flip_average:
        out = 0.5 * (out + mirror_joints(one_pass(mirror_features(features))))
    return out


class NetworkLifter:
    """Lifts whole clips with the temporal network; see the module docstring.

    Args:
        weights: weights file; default the shipped offline or causal model.
        causal: use only past frames for each output frame (the causal model).
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        threads: torch CPU threads (None leaves torch's setting alone).
        flip_average: also lift the mirrored image and average: 1.2-1.5 mm better MPJPE and
            PA-MPJPE on the CMU validation and test takes, and smoother, at about 0.6 times
            the speed.
            Default (None): on for the offline model, off for the causal one.
    """

    name = "network"
    reads_confidence = True  # trained with dropped and low-confidence points: give it the raw 2D
    ray_centred = True  # trained with cameras aimed at the person: its axes are those of a camera looking at them

    def __init__(self, weights: str | Path | None = None, *, causal: bool = False, device: str = "cpu",
                 threads: int | None = None, flip_average: bool | None = None) -> None:
        torch = _torch()
        if threads is not None:
            torch.set_num_threads(threads)
        self.weights = Path(weights) if weights is not None else default_weights_path(causal)
        self.device = device
        self.model = load_model(self.weights, device)
        if self.model.config.causal != causal:
            kind = "causal" if self.model.config.causal else "offline"
            raise MocapError(f"{self.weights} holds a {kind} model but causal={causal} was asked for")
        self.causal = causal
        self.flip_average = (not causal) if flip_average is None else bool(flip_average)

    @property
    def receptive_field(self) -> int:
        return self.model.receptive_field

    def lift_arrays(self, keypoints: np.ndarray, confidence: np.ndarray, layout: str) -> np.ndarray:
        """(T, J, 2) pixels + (T, J) confidence of ``layout`` -> (T, 21, 3) metres, root-relative."""
        kp, conf = layout_to_input(keypoints, confidence, layout)
        return self.lift_features(normalise_frames(kp, conf), frames_with_detection(conf, kp))

    def lift_features(self, features: np.ndarray, detected: np.ndarray | None = None) -> np.ndarray:
        """Normalised features (T, 21, 3) -> (T, 21, 3) metres; frames not ``detected`` (T,) become NaN."""
        if features.ndim != 3 or features.shape[1:] != (NUM_INPUT_JOINTS, 3):
            raise ValueError(f"features must have shape (T, {NUM_INPUT_JOINTS}, 3), got {features.shape}")
        out = lift_normalised(self.model, features[None], flip_average=self.flip_average, device=self.device)[0]
        out -= out[:, :1]
        if detected is not None:
            out[~detected] = np.nan
        return out

    def lift(self, keypoints: Keypoints2D) -> LiftResult:
        """Root-relative MOTION21 joints in the camera frame; ``root_translation_cam`` is None
        (:func:`mocap.lift.lifters.estimate_root_translation` provides it from the 2D).

        The network was trained at 30 fps: a faster clip (45 fps and up) is lifted as
        ``stride = round(fps / 30)`` interleaved sub-clips near 30 fps whose outputs are
        interleaved back, so every frame gets an output and the window spans the trained time
        (a clip shorter than the stride is lifted as that many one-frame sub-clips).
        """
        stride = min(frame_stride(keypoints.fps), keypoints.num_frames)
        joints = np.empty((keypoints.num_frames, 21, 3))
        for phase in range(stride):
            joints[phase::stride] = self.lift_arrays(keypoints.keypoints[phase::stride],
                                                     keypoints.confidence[phase::stride], keypoints.layout)
        return LiftResult(joints_cam=joints, root_translation_cam=None)


class StreamingLifter:
    """Causal lifting one frame at a time (live video): ``push`` returns the newest frame's 3D.

    Incremental: the causal network's step (:class:`mocap.lift.model.CausalSteps`, the
    arithmetic of :meth:`mocap.lift.model.TemporalLifter.step` as one matrix product per
    layer) keeps, per layer, the few past activation columns its dilated convolution needs,
    so a new frame costs one output column per layer. The first frame stands in for the
    frames before it, exactly as :class:`NetworkLifter` with ``causal=True`` pads a clip, so
    both give the same numbers (to float32 round-off). Each StreamingLifter holds its own
    state (a slot of the model's :class:`CausalSteps`), so several may share one model, and
    :func:`push_frames` runs the newest frames of many at once, with each stream's output
    bit for bit the one :meth:`push` gives. The step runs on the CPU whatever ``device``
    holds the model (one frame per stream: a GPU would gain nothing).
    """

    def __init__(self, weights: str | Path | None = None, *, device: str = "cpu", threads: int | None = None) -> None:
        torch = _torch()
        if threads is not None:
            torch.set_num_threads(threads)
        path = Path(weights) if weights is not None else default_weights_path(causal=True)
        model = load_model(path, device)
        if not model.config.causal:
            raise MocapError(f"{path} holds an offline model; streaming needs a causal one (mocap/lift/weights/causal.pt)")
        self._setup(model, device)

    @classmethod
    def from_model(cls, model, device: str = "cpu") -> "StreamingLifter":
        """Wrap an in-memory causal :class:`mocap.lift.model.TemporalLifter` (eval mode)."""
        if not model.config.causal:
            raise MocapError("streaming needs a causal model")
        self = cls.__new__(cls)
        self._setup(model.eval(), device)
        return self

    def _setup(self, model, device: str) -> None:
        self.model = model
        self.device = device
        self._torch = _torch()
        self._steps = _causal_steps(model)
        self._slot = self._steps.new_slot()
        weakref.finalize(self, self._steps.free_slot, self._slot)

    @property
    def receptive_field(self) -> int:
        return self.model.receptive_field

    def reset(self) -> None:
        """Forget the history (a new clip starts)."""
        self._steps.restart(self._slot)

    def push(self, keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """One frame: keypoints (J, 2) pixels (J = 33 mediapipe33 or 17 coco17), confidence (J,)
        -> (21, 3) metres, root-relative; NaN when the frame has no usable keypoint."""
        return push_frames([self], [keypoints], [confidence])[0]


_steps_lock = threading.Lock()
_steps_by_model: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _causal_steps(model):
    """The :class:`mocap.lift.model.CausalSteps` of ``model``, one per model (its slots are the streams)."""
    from mocap.lift.model import CausalSteps

    with _steps_lock:
        if model not in _steps_by_model:
            _steps_by_model[model] = CausalSteps(model)
        return _steps_by_model[model]


def push_frames(lifters, keypoints, confidence) -> np.ndarray:
    """The newest frame of each of B streams at once: one network pass for all (per model).

    Args:
        lifters: B distinct :class:`StreamingLifter`.
        keypoints: B arrays (J, 2) pixels, J = 33 (mediapipe33) or 17 (coco17), NaN missing.
        confidence: B arrays (J,) in [0, 1].
    Returns:
        (B, 21, 3) metres, root-relative, camera axes: row b is what ``lifters[b].push`` gives
        (the same bits); NaN rows for frames without a usable keypoint.
    """
    n = len(lifters)
    if not (len(keypoints) == len(confidence) == n):
        raise ValueError(f"push_frames needs one frame per lifter: {n} lifters, {len(keypoints)} keypoints, "
                         f"{len(confidence)} confidences")
    kp21, conf21 = np.empty((n, NUM_INPUT_JOINTS, 2)), np.empty((n, NUM_INPUT_JOINTS))
    by_joints: dict[int, list[int]] = {}
    for b, (kp, conf) in enumerate(zip(keypoints, confidence)):
        kp, conf = np.asarray(kp), np.asarray(conf)
        if kp.ndim != 2 or kp.shape[1] != 2 or conf.shape != kp.shape[:1]:
            raise ValueError(f"push expects keypoints (J, 2) and confidence (J,), got {kp.shape} and {conf.shape}")
        by_joints.setdefault(kp.shape[0], []).append(b)
    for j, rows in by_joints.items():
        kp21[rows], conf21[rows] = layout_to_input(np.stack([keypoints[b] for b in rows]),
                                                   np.stack([confidence[b] for b in rows]), _layout_for(j))
    features = normalise_frames(kp21, conf21)
    out = np.empty((n, 21, 3))
    by_steps: dict[int, list[int]] = {}
    for b, lifter in enumerate(lifters):
        by_steps.setdefault(id(lifter._steps), []).append(b)
    for rows in by_steps.values():
        out[rows] = lifters[rows[0]]._steps.step([lifters[b]._slot for b in rows], features[rows]).numpy()
    out -= out[:, :1]
    out[~frames_with_detection(conf21, kp21)] = np.nan
    return out
