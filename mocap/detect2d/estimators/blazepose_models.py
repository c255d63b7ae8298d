"""Where BlazePoseTorch's networks and graph options, and the hand landmark network of
:mod:`mocap.detect2d.estimators.hands_torch`, come from: the converted files shipped in
``weights/`` (the default; torch only), or the .tflite files inside the installed
mediapipe 0.10.21 (``models="mediapipe"``; what :func:`convert` reads).

The shipped files, written by :func:`convert` (``scripts/convert_blazepose.py``):

- ``pose_detection.json`` / ``.pt`` and ``pose_landmark_full.json`` / ``.pt``: each network's
  graph (:func:`mocap.detect2d.estimators.tflite_read.save_graph`: ops, tensor shapes, types,
  sparse layout as JSON; constants as a torch state dict, the float16 weights exactly as the
  .tflite stores them, so the conversion loses nothing); the landmark network without its
  segmentation output, which BlazePoseTorch does not use;
- ``hand_landmark_full.json`` / ``.pt``: MediaPipe's full hand landmark network, the same
  way, without its handedness output (the side of a hand comes from the body);
- ``face_landmark_with_attention.json`` / ``.pt``: MediaPipe's face landmark network with
  attention (478 points: the mesh, refined lips and eyes, the irises), the same way, whole
  (its MediaPipe custom ops run in :mod:`mocap.detect2d.estimators.tflite_mediapipe_ops`);
- ``pose_graph.json``: the pose graph's options
  (:func:`mocap.detect2d.estimators.blazepose_anchors.read_pose_graph`);
- ``NOTICE`` and ``LICENSE``: where the models come from, and their licence (Apache-2.0).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mocap.detect2d.estimators import blazepose_anchors as bp
from mocap.errors import MocapError

#: the shipped converted networks (``weights/<stem>.json`` + ``.pt``), detector first
SHIPPED_MODELS = ("pose_detection", "pose_landmark_full")
#: the landmark model's outputs the shipped one keeps: landmarks, pose flag, heatmap, world
#: landmarks (not ``Identity_2``, the 256x256 segmentation mask)
LANDMARK_OUTPUTS = ("Identity", "Identity_1", "Identity_3", "Identity_4")
#: the shipped hand landmark network (``weights/<stem>.json`` + ``.pt``)
HAND_MODEL = "hand_landmark_full"
#: the hand model's outputs kept: 21 landmarks (x, y, z), hand presence, world landmarks (not
#: ``Identity_2``, handedness)
HAND_OUTPUTS = ("Identity", "Identity_1", "Identity_3")
_HAND_TFLITE = ("modules", "hand_landmark", "hand_landmark_full.tflite")
#: the shipped face landmark network with attention (``weights/<stem>.json`` + ``.pt``), all outputs
FACE_MODEL = "face_landmark_with_attention"
_FACE_TFLITE = ("modules", "face_landmark", "face_landmark_with_attention.tflite")
MODEL_SOURCES = ("package", "mediapipe")
MEDIAPIPE_VERSION = "0.10.21"


def load_graphs(models: str = "package") -> tuple:
    """The detector's and the landmark network's graphs (:class:`~mocap.detect2d.estimators.tflite_read.TfliteGraph`).

    Args:
        models: ``"package"``: the converted files shipped in ``weights/`` (needs torch only);
            ``"mediapipe"``: the .tflite files inside the installed mediapipe 0.10.21 (needs
            mediapipe and the ``tflite`` schema package; all the landmark model's outputs).
    """
    from mocap.detect2d.estimators.tflite_read import load_graph, read_tflite

    if models == "package":
        try:
            return tuple(load_graph(bp.WEIGHTS / stem) for stem in SHIPPED_MODELS)
        except (FileNotFoundError, ValueError) as e:
            raise MocapError(f"the shipped BlazePose weights cannot be read ({e}); reinstall mocap-lift") from None
    if models == "mediapipe":
        return tuple(read_tflite(p) for p in mediapipe_model_paths())
    raise ValueError(f"models must be one of {', '.join(MODEL_SOURCES)}, got {models!r}")


def load_hand_graph(models: str = "package"):
    """The hand landmark network's graph; ``models`` as in :func:`load_graphs` (``"mediapipe"``:
    all four outputs of the .tflite, handedness included)."""
    from mocap.detect2d.estimators.tflite_read import load_graph, read_tflite

    if models == "package":
        try:
            return load_graph(bp.WEIGHTS / HAND_MODEL)
        except (FileNotFoundError, ValueError) as e:
            raise MocapError(f"the shipped hand weights cannot be read ({e}); reinstall mocap-lift") from None
    if models == "mediapipe":
        return read_tflite(mediapipe_hand_model_path())
    raise ValueError(f"models must be one of {', '.join(MODEL_SOURCES)}, got {models!r}")


def load_face_graph(models: str = "package"):
    """The face landmark network's graph; ``models`` as in :func:`load_graphs`."""
    from mocap.detect2d.estimators.tflite_read import load_graph, read_tflite

    if models == "package":
        try:
            return load_graph(bp.WEIGHTS / FACE_MODEL)
        except (FileNotFoundError, ValueError) as e:
            raise MocapError(f"the shipped face weights cannot be read ({e}); reinstall mocap-lift") from None
    if models == "mediapipe":
        return read_tflite(mediapipe_face_model_path())
    raise ValueError(f"models must be one of {', '.join(MODEL_SOURCES)}, got {models!r}")


def mediapipe_face_model_path() -> Path:
    """The face landmark network (with attention)'s .tflite file inside the installed mediapipe."""
    return _mediapipe_file(_FACE_TFLITE)


def mediapipe_hand_model_path() -> Path:
    """The hand landmark network's .tflite file inside the installed mediapipe."""
    return _mediapipe_file(_HAND_TFLITE)


def _mediapipe_file(parts: tuple[str, ...]) -> Path:
    try:
        import mediapipe
    except ImportError:
        from mocap.errors import missing_extra
        raise missing_extra("mediapipe", "detect") from None

    path = Path(mediapipe.__file__).parent.joinpath(*parts)
    if not path.is_file():
        raise MocapError(f"mediapipe {mediapipe.__version__} has no {path.name}")
    return path


def mediapipe_model_paths() -> tuple[Path, Path]:
    """The detector's and the landmark network's .tflite files inside the installed mediapipe."""
    try:
        import mediapipe
    except ImportError:
        from mocap.errors import missing_extra
        raise missing_extra("mediapipe", "detect") from None
    from mocap.detect2d.mediapipe_pose import _DETECTOR_TFLITE, _LANDMARKS_TFLITE

    root = Path(mediapipe.__file__).parent
    paths = root.joinpath(*_DETECTOR_TFLITE), root.joinpath(*_LANDMARKS_TFLITE)
    for p in paths:
        if not p.is_file():
            raise MocapError(f"mediapipe {mediapipe.__version__} has no {p.name} (only releases up to 0.10.21 ship "
                             f"the pose models); install it with: pip install 'mocap-lift[detect]'")
    return paths


_NOTICE = """\
BlazePose, hand and face models converted from MediaPipe
========================================================

The files pose_detection.{{json,pt}}, pose_landmark_full.{{json,pt}}, pose_graph.json,
hand_landmark_full.{{json,pt}} and face_landmark_with_attention.{{json,pt}} in this folder are
derived from the MediaPipe pose, hand and face models, distributed in the Python package
mediapipe {version} (PyPI, https://github.com/google-ai-edge/mediapipe):

  mediapipe/{detector}  (sha256 {detector_sha})
  mediapipe/{landmarks}  (sha256 {landmarks_sha})
  mediapipe/{hand}  (sha256 {hand_sha})
  mediapipe/{face}  (sha256 {face_sha})
  mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb  (the pose graph's options)

Copyright The MediaPipe Authors. Licensed under the Apache License, Version 2.0 (the
"License"); see the file LICENSE in this folder, or
http://www.apache.org/licenses/LICENSE-2.0. Distributed on an "AS IS" BASIS, WITHOUT
WARRANTIES OR CONDITIONS OF ANY KIND.

Changes made by mocap-lift (scripts/convert_blazepose.py): the TFLite flatbuffers were
re-encoded as a JSON graph description plus a PyTorch state dict of the same constant
values (float16 weights unchanged); the pose landmark model's segmentation output, the
hand landmark model's handedness output and the operators that only feed them were
removed (the face landmark model is kept whole); the pose graph's calculator options were
written out as JSON.
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def convert(out_dir: str | os.PathLike = bp.WEIGHTS) -> list[Path]:
    """Write the shipped files (see the module docstring) from the installed mediapipe into
    ``out_dir``; needs mediapipe 0.10.21, the ``tflite`` package and torch.

    Returns:
        the paths written.
    """
    import mediapipe

    from mocap.detect2d.estimators.tflite_read import prune_graph, read_tflite, save_graph

    if mediapipe.__version__ != MEDIAPIPE_VERSION:
        raise MocapError(f"the converter reads mediapipe {MEDIAPIPE_VERSION}, this is {mediapipe.__version__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(mediapipe.__file__).parent
    paths = mediapipe_model_paths()
    hand = mediapipe_hand_model_path()
    face = mediapipe_face_model_path()
    written = []
    for stem, path, keep in zip((*SHIPPED_MODELS, HAND_MODEL, FACE_MODEL), (*paths, hand, face),
                                (None, LANDMARK_OUTPUTS, HAND_OUTPUTS, None)):
        graph = read_tflite(path)
        if keep is not None:
            names = [graph.tensors[i].name for i in graph.outputs]
            graph = prune_graph(graph, [names.index(n) for n in keep])
        source = {"mediapipe": mediapipe.__version__, "file": "mediapipe/" + path.relative_to(root).as_posix(),
                  "sha256": _sha256(path), "license": "Apache-2.0", "converter": "scripts/convert_blazepose.py"}
        written += save_graph(graph, out / stem, source=source)
    written.append(bp.save_pose_graph(bp.read_pose_graph("mediapipe"), out / bp.POSE_GRAPH_JSON.name,
                                      source={"mediapipe": mediapipe.__version__,
                                              "file": "mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb",
                                              "license": "Apache-2.0"}))
    rel = [p.relative_to(root).as_posix() for p in (*paths, hand, face)]
    (out / "NOTICE").write_text(_NOTICE.format(version=mediapipe.__version__, detector=rel[0], landmarks=rel[1],
                                               hand=rel[2], face=rel[3], detector_sha=_sha256(paths[0]),
                                               landmarks_sha=_sha256(paths[1]), hand_sha=_sha256(hand),
                                               face_sha=_sha256(face)))
    licence = Path(mediapipe.__file__).parent.parent / f"mediapipe-{mediapipe.__version__}.dist-info" / "LICENSE"
    (out / "LICENSE").write_text(licence.read_text())
    written += [out / "NOTICE", out / "LICENSE"]
    return written
