"""What ``mocap capture`` (one video) did, and its summary in plain words
(:class:`CaptureReport`, returned by :func:`mocap.pipelines.capture.capture`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mocap.detect2d.people import LISTED_MIN_S


#: how the summary names where gravity came from (quality.json's ``gravity_from``)
_GRAVITY_FROM = {"scene": " (from the room's vertical lines)", "floor": " (from the floor under the feet)",
                 "balance": " (from the body's balance)", "level camera": " (nothing to go on: taken as level)"}


@dataclass
class CaptureReport:
    """What ``capture`` did: files written, frames, detection rate and time per stage."""

    outputs: dict[str, Path]
    num_frames: int
    fps: float
    detection_rate: float
    lifter: str
    seconds: dict[str, float]
    swapped_frames: int = 0  # frames with left/right labels mirrored back, in all or part of the body (swaps)
    people: list[dict] = field(default_factory=list)  # the entries of people.json
    captured: int | None = None  # the track id in motion.npz
    motion_span: tuple[int, int, int] | None = None  # (first frame, last frame, frames not seen in between)
    jumps: list[tuple[int, int]] = field(default_factory=list)  # implausible 2D root steps (frame pairs)
    short_tracks: int = 0  # tracks too short to list in people.json
    hands: tuple[int, int] | None = None  # frames with the left hand, with the right hand (None: not asked for)
    face: int | None = None  # frames with the face (None: not asked for)
    quality: dict | None = None  # quality.json (None without the fit)
    others_quality: dict[int, dict] = field(default_factory=dict)  # --all-people: person_<id>/quality.json by id
    camera_motion: dict | None = None  # the camera's own motion (mocap.detect2d.background.CameraMotion.as_dict)
    shots: list[tuple[int, int]] = field(default_factory=list)  # where the video cuts: its shots (first, stop)
    shot: tuple[int, int] | None = None  # the shot captured (first, stop) of those

    def shots_line(self) -> list[str]:
        """Where the video cuts between shots, and which shot was captured."""
        if len(self.shots) < 2 or self.shot is None:
            return []
        cuts = ", ".join(f"{a} ({a / self.fps:.2f} s)" for a, _ in self.shots[1:])
        listed = ", ".join(f"{a}-{b - 1}" for a, b in self.shots)
        a, b = self.shot
        return [f"the video cuts to another shot at frame {cuts}: {len(self.shots)} shots (frames {listed}); only "
                f"frames {a}-{b - 1} were captured, the shot where people are seen longest (a capture across a cut "
                f"would read another camera's picture as this one's; --start/--end capture another shot)"]

    def camera_motion_line(self) -> list[str]:
        """What the background says of the camera, when it moved."""
        m = self.camera_motion
        if not m or not m.get("moved"):
            return []
        return [f"the camera moved: the background shifts by up to {m['max_shift_px']:.0f} px from frame "
                f"{m['reference_frame']}; everyone is put in that frame's view (a camera that turned or zoomed is "
                f"undone; one carried along is not: its travel stays in the path through the room)"]

    def people_lines(self) -> list[str]:
        """Who is in the video, who was captured, and what looks wrong, in plain words."""
        lines = []
        if self.people:
            found = "; ".join(f"id {p['id']}: frames {p['first_frame']}-{p['last_frame']}, seen in "
                              f"{p['frames_visible']}" for p in self.people)
            tracks = "track" if self.short_tracks == 1 else "tracks"
            short = f"; and {self.short_tracks} {tracks} under {LISTED_MIN_S:g} s, not listed" if self.short_tracks else ""
            lines.append(f"people found: {len(self.people)} ({found}{short})")
        if self.captured is not None:
            others = [p["id"] for p in self.people if p["id"] != self.captured]
            lines.append(f"captured: id {self.captured}" + (
                f" (the others: {', '.join(map(str, others))}; --person ID picks another, people.png shows who is "
                f"who)" if others else ""))
        written = sorted((p["folder"] for p in self.people if p.get("folder")), key=lambda f: (len(f), f))
        if written:  # --all-people
            lines.append(f"everyone written: {', '.join(f + '/' for f in written)} " + (
                "(in one world: the captured person's camera and floor)" if self.quality is not None
                else "(each in a world of their own: --no-fit)"))
        if self.motion_span is not None:
            first, last, unseen = self.motion_span
            lines.append(f"motion: frames {first}-{last} of the video" + (
                f", {unseen} of them filled in where the person was not seen (valid = False in motion.npz)"
                if unseen else ""))
        if self.jumps:
            shown = ", ".join(f"{a}->{b}" for a, b in self.jumps[:8]) + (" ..." if len(self.jumps) > 8 else "")
            lines.append(f"WARNING: the captured person's 2D position jumps further than a body can move between "
                         f"frames {shown} ({len(self.jumps)} in all): the keypoints there may belong to someone "
                         f"else or be wrong; check overlay.mp4 at those frames, or pick another --person")
        return lines

    def quality_lines(self) -> list[str]:
        """The camera the fit solved and how well the 3D matches the video (quality.json)."""
        if self.quality is None:
            return ["not fitted to the video (--no-fit): no quality.json"]
        from mocap.fit.quality import quality_line

        q = self.quality
        focal = {"scene": " from the room's lines", "default": " assumed (55 deg across; --focal-px sets it)"}
        return [f"camera: {q['camera_height_m']:.2f} m above the floor, pitched {q['camera_pitch_deg']:.1f} deg down, "
                f"roll {q['camera_roll_deg']:.1f} deg{_GRAVITY_FROM.get(q.get('gravity_from'), '')}; focal length "
                f"{q['camera_focal_px']:.0f} px{focal.get(q.get('focal_from'), '')}; person {q['person_height_m']:.2f} m tall",
                quality_line(q),
                *(f"person_{tid}/: {o['person_height_m']:.2f} m tall; {quality_line(o)}"
                  for tid, o in sorted(self.others_quality.items()))]

    def summary(self) -> str:
        total = sum(self.seconds.values())
        lines = [
            f"frames: {self.num_frames} at {self.fps:.2f} fps ({self.num_frames / self.fps:.1f} s of video)",
            *self.shots_line(),
            *self.people_lines(),
            f"person detected in {100 * self.detection_rate:.1f} % of frames",
            f"left/right swaps of the 2D detector undone in {self.swapped_frames} frames",
            *([] if self.hands is None else [f"hands found: left in {self.hands[0]} frames, right in "
                                             f"{self.hands[1]} frames (of {self.num_frames})"]),
            *([] if self.face is None else [f"face found in {self.face} frames (of {self.num_frames})" + (
                "; face.npz holds no controls (is the face visible, and not too small?)" if not self.face else "")]),
            f"lifter: {self.lifter}",
            *self.camera_motion_line(),
            *self.quality_lines(),
            "time per stage:",
        ]
        width = max(len(k) for k in self.seconds)
        for name, s in self.seconds.items():
            rate = self.num_frames / s if s > 0 else float("inf")
            lines.append(f"  {name:<{width}}  {s:7.2f} s  {rate:10.0f} frames/s")
        speed = (self.num_frames / self.fps) / total if total > 0 else float("inf")
        lines.append(f"  {'total':<{width}}  {total:7.2f} s  ({speed:.2f}x real time)")
        lines.append("outputs:")
        lines += [f"  {p}" for p in self.outputs.values()]
        return "\n".join(lines)
