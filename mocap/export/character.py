"""The export stage's character: the motion retargeted onto a rig file, or onto the built-in avatar."""
from __future__ import annotations

from pathlib import Path

from mocap.errors import MocapError
from mocap.export.options import ExportOptions


def check_character(options: ExportOptions) -> None:
    """MocapError if ``options.target`` names a file that is not there (checked before a long capture)."""
    if options.target is not None and not Path(options.target).is_file():
        raise MocapError(f"character file not found: {options.target}")


def export_character(motion_path: str | Path, outdir: str | Path, options: ExportOptions) -> Path | None:
    """Write ``outdir/character.<ext>``: the motion of ``motion_path`` on ``options.target``
    (needs the blender extra) or on the built-in avatar (needs the avatar and blender extras).
    On a target, the face controls of ``outdir/face.npz`` (``capture --face``) are keyed too
    (:mod:`mocap.export.face_keys`); the built-in avatar has no face shape keys and gets none.

    Returns:
        The file written, or None when the options ask for no character.
    """
    if options.target is not None:
        from mocap.export import blender as export_blender

        suffix = Path(options.target).suffix.lower()
        out = Path(outdir) / f"character{ {'.gltf': '.glb'}.get(suffix, suffix)}"
        face = Path(outdir) / "face.npz"  # written by capture --face: its controls go on the character too
        export_blender.retarget_to_file(motion_path, options.target, out, face_path=face if face.is_file() else None)
        return out
    if options.avatar is not None:
        from mocap.export.avatar import retarget_to_avatar

        out = Path(outdir) / "character.glb"
        retarget_to_avatar(motion_path, out)
        return out
    return None
