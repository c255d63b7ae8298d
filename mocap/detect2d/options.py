"""Options of the 2D detection stage, and the one check that a person was found."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from mocap.config import OptionError, check_options, option
from mocap.detect2d.estimators import ESTIMATORS
from mocap.detect2d.tracking import PERSON_CHOICES
from mocap.errors import MocapError
from mocap.formats import Keypoints2D

#: the default 2D estimator, for one view and several: the BlazePose networks in PyTorch, whose
#: converted weights ship in the package (no mediapipe needed); ``--detector mediapipe`` runs
#: MediaPipe itself, with its own video tracking of one person (the ``detect`` extra)
DEFAULT_DETECTOR = {"one view": "blazepose-torch", "several views": "blazepose-torch"}


@dataclass(frozen=True)
class DetectionOptions:
    """Who is detected in 2D, and how; the fields mirror :func:`mocap.detect2d.views.detect_view`
    and :func:`mocap.detect2d.people.detect_people_video`."""

    detector: str | None = option(
        None, "2D estimator (default: blazepose-torch, MediaPipe's BlazePose networks in PyTorch, shipped "
        "in the package; mediapipe: MediaPipe itself with its own tracking of one person, needs the detect extra)",
        flag="--detector", choices=(None, *ESTIMATORS))
    person: str | int = option(
        "auto", "who to capture when several people are in the video: auto (present longest, weighted by size), "
        "largest, most-present, or a track id (people.json and people.png list them)",
        flag="--person", metavar="auto|largest|most-present|ID")
    all_people: bool = option(False, "also write person_<id>/ (keypoints2d.npz, motion.npz, motion.bvh) for "
                              "everyone tracked", flag="--all-people", json=False)  # subfolders: not served
    min_person_s: float = option(1.0, "with --all-people, people seen for less than this long are not written",
                                 flag="--min-person-s", bounds=(0.0, 1e6), closed=True, unit="s", json=False)
    device: str = option("cpu", "torch device for estimators that use it (cpu, cuda)", flag="--device",
                         json=False)  # the server's operator picks the device, not its clients

    def __post_init__(self) -> None:
        check_options(self)
        person = self.person
        if isinstance(person, str) and person.lstrip("-").isdigit():
            person = int(person)
            object.__setattr__(self, "person", person)
        if isinstance(person, bool) or (isinstance(person, str) and person not in PERSON_CHOICES) \
                or (isinstance(person, int) and person < 0):
            raise OptionError(f"person (--person) is {', '.join(map(repr, PERSON_CHOICES))} or a track id "
                              f"(0, 1, ...), got {self.person!r}")

    def detector_for(self, num_views: int) -> str:
        """The estimator to run: the chosen one, else the default for one view or several."""
        if self.detector is not None:
            return self.detector
        return DEFAULT_DETECTOR["one view" if num_views == 1 else "several views"]

    @property
    def tracks_people(self) -> bool:
        """True when one video needs everyone detected and tracked (not MediaPipe's own
        tracking of one person): another estimator, a person other than the main one
        (``auto`` or ``largest``), or all."""
        return self.detector_for(1) != "mediapipe" or self.person not in ("auto", "largest") or self.all_people


def require_person(views: Sequence[Keypoints2D | None], names: Sequence[object], *, hint: str = "") -> list[float]:
    """The detection rate of each view (fraction of frames with a person, in [0, 1]).

    Args:
        views: each view's keypoints; None where no one was tracked at all.
        names: the views' names (or video paths) for the message.
    Raises:
        MocapError naming the views where no person was found in any frame (``hint``, if
        given, says what to do about it).
    """
    rates = [0.0 if k is None else k.detection_rate() for k in views]
    empty = [str(n) for n, r in zip(names, rates) if r == 0.0]
    if empty:
        raise MocapError(f"no person found in any frame of {', '.join(empty)}" + (f"; {hint}" if hint else ""))
    return rates
