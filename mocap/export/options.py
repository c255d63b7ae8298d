"""Options of the export stage: the overlay, the previews, and a character to put the motion on."""
from __future__ import annotations

from dataclasses import dataclass

from mocap.config import OptionError, check_options, option

AVATARS = ("anny",)
#: Length units of the BVH files written (see :data:`mocap.io.bvh.UNITS_M`).
BVH_UNITS = ("cm", "m")


@dataclass(frozen=True)
class ExportOptions:
    """What is written beside motion.npz and motion.bvh; the fields mirror
    :func:`mocap.export.character.export_character` and :mod:`mocap.export.draw`."""

    target: str | None = option(None, "also retarget onto this rigged character (.fbx, .glb, .blend) -> "
                                "character.<ext>", flag="--target", metavar="CHARACTER",
                                json=False)  # a path on the server: not for the service's clients
    avatar: str | None = option(None, "also put the motion on the built-in anny character -> character.glb "
                                "(skinned mesh)", flag="--avatar", choices=(None, *AVATARS))
    overlay: bool = option(True, "skip overlay.mp4", flag="--no-overlay", negate=True)
    overlay_max_width: int | None = option(720, "the overlay's largest width, pixels (None: the video's)",
                                           bounds=(0, 1e5), unit="pixels", json=False)
    preview: bool = option(True, "skip preview.png / preview.mp4", flag="--no-preview", negate=True)
    bvh_units: str = option("cm", "length unit of the BVH: cm (MotionBuilder's convention; Blender's BVH importer "
                            "then needs scale 0.01) or m (Blender's importer at scale 1 gives the right size)",
                            flag="--units", choices=BVH_UNITS)

    def __post_init__(self) -> None:
        if self.target is not None:
            object.__setattr__(self, "target", str(self.target))
        check_options(self)
        if self.target is not None and self.avatar is not None:
            raise OptionError("give either a target character (--target) or --avatar, not both")
