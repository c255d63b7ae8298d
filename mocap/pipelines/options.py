"""Every option of a capture, one frozen dataclass per stage, composed.

The command line (``mocap capture``, ``lift``, ``batch``), the batch runner and the capture
service all build a :class:`CaptureOptions` from these declarations (:mod:`mocap.config`),
so a default, a range or a help text is written once, in its stage's options module.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from mocap.config import add_arguments

from mocap.cleanup.options import CleanupConfig
from mocap.detect2d.options import DetectionOptions
from mocap.export.options import ExportOptions
from mocap.fit.options import FitOptions
from mocap.lift.options import LiftOptions
from mocap.multiview.options import MultiViewOptions, TriangulationConfig

__all__ = ["add_lift_arguments", "CaptureOptions", "CleanupConfig", "DetectionOptions", "ExportOptions", "FitOptions", "LiftOptions",
           "MultiViewOptions", "TriangulationConfig"]


@dataclass(frozen=True)
class CaptureOptions:
    """The options of :func:`mocap.pipelines.capture.capture` and
    :func:`mocap.pipelines.multiview.capture_multiview`, by stage."""

    detection: DetectionOptions = DetectionOptions()
    lifting: LiftOptions = LiftOptions()
    cleanup: CleanupConfig = CleanupConfig()
    fit: FitOptions = FitOptions()
    multiview: MultiViewOptions = MultiViewOptions()
    export: ExportOptions = ExportOptions()

    def __post_init__(self) -> None:
        # MediaPipe's world landmarks (the mediapipe lifter) come from the mediapipe detector: it is
        # the default detector of a capture that asks for that lifter
        if self.lifting.lifter == "mediapipe" and self.detection.detector is None:
            object.__setattr__(self, "detection", dataclasses.replace(self.detection, detector="mediapipe"))


def add_lift_arguments(parser: argparse.ArgumentParser) -> None:
    """The lifting and clean-up flags that ``mocap capture``, ``lift`` and ``batch`` share."""
    add_arguments(parser, LiftOptions)
    add_arguments(parser, CleanupConfig)
    add_arguments(parser, FitOptions)
