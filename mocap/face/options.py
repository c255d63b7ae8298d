"""Options of the face stage (:func:`mocap.face.controls.face_controls`)."""
from __future__ import annotations

from dataclasses import dataclass

from mocap.config import check_options, option


@dataclass(frozen=True)
class FaceOptions:
    """How the face controls are calibrated and smoothed; the fields mirror
    :func:`mocap.face.controls.face_controls`' keyword arguments."""

    cutoff_hz: float = option(8.0, "low-pass cutoff of the face measures, Hz (0: none)", bounds=(0.0, 1000.0),
                              closed=True, unit="Hz", json=False)
    rest_percentile: float = option(20.0, "percentile of each face measure over the clip taken as the person's rest",
                                    bounds=(0.0, 100.0), closed=True, json=False)

    def __post_init__(self) -> None:
        check_options(self)
