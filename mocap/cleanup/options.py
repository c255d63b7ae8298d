"""Options of the clean-up stage: gap filling, smoothing, world frame, foot locking."""
from __future__ import annotations

from dataclasses import dataclass

from mocap.config import check_options, option


@dataclass(frozen=True)
class CleanupConfig:
    """Clean-up settings; the fields mirror the stages' keyword arguments
    (:mod:`mocap.cleanup.motion`, :func:`mocap.detect2d.swaps.resolve_swaps`)."""

    min_confidence: float = option(0.3, "2D keypoints below this confidence are treated as missing",
                                   bounds=(0.0, 1.0), closed=True, json=False)
    max_gap_s: float = option(0.5, "gaps up to this long (seconds) are interpolated; longer ones are held",
                              bounds=(0.0, 1e6), unit="s", json=False)
    cutoff_hz: float = option(6.0, "smoothing low-pass cutoff (default 6 Hz)", flag="--cutoff-hz",
                              bounds=(0.0, 1000.0), unit="Hz")
    root_cutoff_hz: float = option(3.0, "low-pass cutoff of the root trajectory, Hz (its depth is noisy)",
                                   bounds=(0.0, 1000.0), unit="Hz", json=False)
    lock_feet: bool = option(True, "keep the feet as lifted (by default planted feet are pinned on the ground)",
                             flag="--no-foot-lock", negate=True)
    level: bool = option(True, "with --no-fit or several cameras: keep the camera's tilt (by default the body axis of an "
                         "upright person sets +Y; the fit reads gravity from the scene instead)",
                         flag="--no-level", negate=True)
    resolve_swaps: bool = option(
        True, "keep the 2D detector's left/right labels as they are (by default frames where the labels jump to "
        "the other side of the body are mirrored back; monocular only)", flag="--keep-swaps", negate=True)

    def __post_init__(self) -> None:
        check_options(self)
