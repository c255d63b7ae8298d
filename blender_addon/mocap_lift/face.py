# SPDX-License-Identifier: GPL-3.0-or-later
"""Drive the selected mesh's shape keys from a ``face.npz`` made by ``mocap capture --face``
(the worker of the Apply Face operator; it needs ``bpy`` and the vendored ``core`` modules).

Each shape key named as a face control (ARKit's names: ``jawOpen``, ``eyeBlinkLeft`` ...)
gets one key per frame from ``frame_start``, in a new action of the mesh's shape keys
(:func:`core.face_keys.animate_face_controls`). When the ``motion.npz`` that capture wrote
beside the face file is there, the keys follow the motion's frames (the motion may start
later in the video than the face file), so that face and body imported at the same frame
start stay in step.
"""
from __future__ import annotations

from pathlib import Path

from .core.errors import MocapError
from .core.face_keys import animate_face_controls, controls_for_motion
from .core.formats import load_face, load_motion


def apply_face(path: str, mesh, *, frame_start: int = 1) -> tuple[list[str], int]:
    """Key the shape keys of ``mesh`` from the face file at ``path``; (shape keys driven, frames keyed).

    Raises:
        MocapError: the file cannot be read, or the mesh has no shape key named as a control.
    """
    face = load_face(path)
    motion_path = Path(path).with_name("motion.npz")
    values = face.controls
    if motion_path.is_file():
        motion = load_motion(motion_path)
        values = controls_for_motion(face.controls, face.start_frame, motion.start_frame, motion.num_frames)
    driven = animate_face_controls(None, face.names, values, frame_start=frame_start, meshes=[mesh])
    if not driven:
        raise MocapError(f"{mesh.name} has no shape keys named as the face controls ({', '.join(face.names)}); "
                         "add shape keys with those names (ARKit's) to drive them")
    return [d.split(":", 1)[1] for d in driven], len(values)
