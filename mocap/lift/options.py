"""Options of the lifting stage (2D -> 3D)."""
from __future__ import annotations

from dataclasses import dataclass

from mocap.config import check_options, option


@dataclass(frozen=True)
class LiftOptions:
    """Which lifter, and the camera it assumes; the fields mirror
    :func:`mocap.lift.lifters.get_lifter` and :func:`mocap.lift.trajectory.root_trajectory`."""

    lifter: str = option("auto", "2D->3D lifter (default: the trained network when installed, else MediaPipe's "
                         "world landmarks)", flag="--lifter", choices=("auto", "network", "mediapipe"))
    focal_px: float | None = option(None, "camera focal length in pixels (default: from the room's vanishing points when "
                                    "they agree, else a 55 degree field of view)",
                                    flag="--focal-px", bounds=(0.0, 1e6), unit="pixels")

    def __post_init__(self) -> None:
        check_options(self)
