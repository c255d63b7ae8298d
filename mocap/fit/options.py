"""Options of the fitting stage (:func:`mocap.fit.fit.fit_person`)."""
from __future__ import annotations

from dataclasses import dataclass

from mocap.config import check_options, option


@dataclass(frozen=True)
class FitOptions:
    """Whether to fit the clip to the video, and what is known of the person."""

    fit: bool = option(True, "skip the fit to the video (camera, world frame, contacts and reprojection solved "
                       "jointly, on by default); the clip is then levelled from the body axis and its feet locked, as "
                       "before", flag="--no-fit", negate=True)
    height_m: float | None = option(None, "the captured person's standing height in metres when you know it (sets "
                                    "the body's size; default: the size the lifting network sees; with --all-people "
                                    "and one camera the others are sized by the floor they share)", flag="--height",
                                    bounds=(0.5, 2.6), closed=True, unit="metres")
    max_iterations: int = option(40, "iterations of the fit's solver", bounds=(1, 10000), closed=True, json=False)

    def __post_init__(self) -> None:
        check_options(self)
