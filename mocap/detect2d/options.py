"""Options of the 2D detection stage, and the one check that a person was found."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from mocap.config import OptionError, check_options, option
from mocap.detect2d.estimators import BLAZEPOSE_TORCH, ESTIMATORS
from mocap.detect2d.choose import PERSON_CHOICES
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
    all_people: bool = option(False, "also write person_<id>/ (keypoints2d.npz, motion.npz, motion.bvh, "
                              "quality.json) for everyone tracked, all in one world (one camera: the captured "
                              "person's camera and floor)", flag="--all-people", json=False)  # subfolders: not served
    min_person_s: float = option(1.0, "with --all-people, people seen for less than this long are not written",
                                 flag="--min-person-s", bounds=(0.0, 1e6), closed=True, unit="s", json=False)
    start_s: float | None = option(None, "capture from this time in the video, seconds (default: its start)",
                                   flag="--start", bounds=(0.0, 1e9), closed=True, unit="s", metavar="SECONDS")
    end_s: float | None = option(None, "capture up to this time in the video, seconds (default: its end); the frames "
                                 "outside are not detected, frame numbers stay the video's", flag="--end",
                                 bounds=(0.0, 1e9), unit="s", metavar="SECONDS")
    rotate_deg: int = option(0, "turn the video's pictures clockwise by this many degrees (90, 180, 270) before "
                             "anything else: a video whose rotation tag was lost, its picture on its side (the "
                             "summary says when the person lies across the picture); one video only",
                             flag="--rotate", choices=(0, 90, 180, 270), metavar="DEGREES")
    hands: bool = option(False, "also find both hands of the captured person (of everyone with --all-people; 21 "
                         "points each, MediaPipe's hand network in PyTorch, placed by the body's wrists) into "
                         "keypoints2d.npz and the overlay, and finger motion; with several cameras the hands "
                         "are triangulated; "
                         "needs a BlazePose detector (the default)", flag="--hands")
    face: bool = option(False, "also find the captured person's face (478 points, MediaPipe's face network with "
                        "attention in PyTorch, placed by the body's eyes, ears and mouth) and write face.npz and "
                        "face.csv: head orientation and ARKit-named controls (jawOpen, eyeBlinkLeft ...) in [0, 1]; "
                        "needs a BlazePose detector (the default)", flag="--face", json=False)
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
        if self.hands and self.detector not in (None, "mediapipe", *BLAZEPOSE_TORCH):
            raise OptionError(f"--hands finds the hands from BlazePose's wrist, index and pinky points; --detector "
                              f"{self.detector} has none: use blazepose-torch (the default) or mediapipe")
        if self.face and self.detector not in (None, "mediapipe", *BLAZEPOSE_TORCH):
            raise OptionError(f"--face finds the face from BlazePose's eyes, ears and mouth; --detector "
                              f"{self.detector} has no such points: use blazepose-torch (the default) or mediapipe")
        if self.start_s is not None and self.end_s is not None and self.start_s >= self.end_s:
            raise OptionError(f"the start (--start {self.start_s:g} s) must come before the end "
                              f"(--end {self.end_s:g} s)")

    @property
    def whole_video(self) -> bool:
        """True when no part of the video is chosen (no ``start_s`` nor ``end_s``)."""
        return self.start_s is None and self.end_s is None

    def frame_range(self, fps: float, num_frames: int, video: object = "the video") -> tuple[int, int]:
        """(first, stop): the video frames to capture, ``first`` to ``stop - 1``.

        Frame ``n`` stands for time ``n / fps`` seconds; the frames captured are those with
        ``start_s <= n / fps < end_s`` (times within a thousandth of a frame count as equal).

        Args:
            fps: the video's frames per second.
            num_frames: its number of frames.
            video: its name, for messages.
        Raises:
            OptionError when the range holds no frame or lies (partly) beyond the video's end.
        """
        duration = num_frames / fps
        first = 0 if self.start_s is None else math.ceil(self.start_s * fps - 1e-3)
        stop = num_frames if self.end_s is None else math.ceil(self.end_s * fps - 1e-3)
        if self.end_s is not None and stop > num_frames:
            raise OptionError(f"--end {self.end_s:g} s is beyond the end of {video} ({duration:.3f} s, "
                              f"{num_frames} frames at {fps:g} fps)")
        if first >= num_frames:
            raise OptionError(f"--start {self.start_s:g} s is at or beyond the end of {video} ({duration:.3f} s, "
                              f"{num_frames} frames at {fps:g} fps)")
        if stop <= first:
            raise OptionError(f"--start {self.start_s:g} s to --end {self.end_s:g} s holds no frame of {video} "
                              f"(frames are {1 / fps:.4f} s apart)")
        return first, stop

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
