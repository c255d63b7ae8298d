"""Options of the multi-view stages: calibration, synchronisation, triangulation."""
from __future__ import annotations

from dataclasses import dataclass

from mocap.config import OptionError, check_options, option


@dataclass(frozen=True)
class TriangulationConfig:
    """Triangulation settings; the fields mirror :func:`mocap.multiview.views.triangulate_views`."""

    threshold_px: float = option(40.0, "a view agrees with a point when it reprojects within this (pixels)",
                                 bounds=(0.0, 1e6), unit="pixels", json=False)
    min_confidence: float = option(0.3, "2D keypoints below this do not vote", bounds=(0.0, 1.0), closed=True, json=False)
    resolve_swaps: bool = option(True, "undo the detector's left/right swaps per view and frame", json=False)

    def __post_init__(self) -> None:
        check_options(self)


@dataclass(frozen=True)
class MultiViewOptions:
    """Where the cameras are and when each view starts; the fields mirror
    :func:`mocap.multiview.rig.fit_rig` and :func:`mocap.multiview.sync.estimate_frame_offsets`."""

    calibration: str | None = option(
        None, "multi-view: camera calibration (.toml Pose2Sim/anipose, .qca.txt, OpenCV .yml), "
        "or 'auto' to calibrate from the person (needs --body-height)", flag="--calibration", metavar="FILE|auto")
    sync: str = option("none", "multi-view: 'auto' estimates constant frame offsets between the views",
                       flag="--sync", choices=("none", "auto"))
    body_height_m: float | None = option(None, "multi-view: the person's height, the scale of --calibration auto",  # standing height
                                         flag="--body-height", metavar="METRES", bounds=(0.5, 2.6), unit="metres")
    refine_calibration: bool = option(
        False, "multi-view: adjust the calibration file's camera poses to the person's keypoints",
        flag="--refine-calibration")
    max_offset: int = option(30, "the largest frame offset between two views that sync 'auto' looks for",
                             bounds=(0, 1e6), closed=True, unit="frames", json=False)
    max_people: int = option(4, "multi-view: most people the 2D detector follows in each view",
                             bounds=(1, 64), closed=True, json=False)
    look_again: bool = option(False, "multi-view, several people in a view: where the other views see a person the 2D "
                              "detector missed, run the landmark network on where they should be", json=False)
    triangulation: TriangulationConfig = TriangulationConfig()

    def __post_init__(self) -> None:
        if self.calibration is not None:
            object.__setattr__(self, "calibration", str(self.calibration))  # a path is kept as its text
        check_options(self)
        if self.calibration == "auto" and self.body_height_m is None:
            raise OptionError("calibration 'auto' needs the person's height for the scale: pass --body-height "
                              "METRES (body_height_m in the service's options)")

    @property
    def auto_calibration(self) -> bool:
        """True when the cameras are calibrated from the person rather than read from a file."""
        return self.calibration == "auto"
