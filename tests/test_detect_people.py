"""Everyone in a video with any estimator, tracked: a fake estimator with known people, and
MoveNet on a real two-person clip made from the example video."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mocap.detect2d.people import detect_people_frames
from mocap.detect2d.estimators.base import Estimate

EXAMPLE = Path(__file__).parents[1] / "examples" / "balance_cam01.mp4"


class _FakeEstimator:
    """Two people walking (one twice as big), slots shuffled per frame, COCO-17 layout."""

    layout, num_joints, name = "coco17", 17, "fake"

    def __init__(self, rng):
        self.rng = rng
        self.t = 0
        base = np.stack([np.linspace(-1, 1, 17), np.linspace(-2, 2, 17)], -1)
        self.base = base

    def person(self, t, who):
        scale, x0 = (40.0, 100.0) if who == 0 else (80.0, 400.0)
        return self.base * scale + [x0 + 2.0 * t, 300.0]

    def __call__(self, frames):
        b = len(frames)
        kp = np.zeros((b, 2, 17, 2), np.float32)
        for i in range(b):
            people = [self.person(self.t + i, 0), self.person(self.t + i, 1)]
            order = self.rng.permutation(2)
            kp[i] = np.stack([people[o] for o in order])
        self.t += b
        return Estimate(kp, np.full((b, 2, 17), 0.9, np.float32), np.full((b, 2), 0.8, np.float32), "coco17")


def test_tracks_and_selection_with_known_people():
    rng = np.random.default_rng(0)
    est = _FakeEstimator(rng)
    frames = (np.zeros((480, 640, 3), np.uint8) for _ in range(30))
    tracks = detect_people_frames(frames, 30.0, (640, 480), estimator=est, batch_size=7, progress=False)
    assert tracks.keypoints.shape == (30, 2, 17, 2) and len(tracks.track_list()) == 2
    big = tracks.person("largest")
    np.testing.assert_allclose(big.keypoints, np.stack([est.person(t, 1) for t in range(30)]), atol=1e-4)
    people = tracks.people()
    assert len(people) == 2
    for kp in people.values():  # each track is one person throughout: a constant size
        span = np.nanmax(kp.keypoints[..., 1], axis=1) - np.nanmin(kp.keypoints[..., 1], axis=1)
        assert np.ptp(span) < 1e-3
    with pytest.raises(Exception, match="no person with id 7"):
        tracks.person(7)


def _two_person_clip(path: Path, frames: int = 16) -> None:
    import cv2

    cap = cv2.VideoCapture(str(EXAMPLE))
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (480, 480))
    for _ in range(frames):
        ok, f = cap.read()
        assert ok
        canvas = np.full((480, 480, 3), 90, np.uint8)
        canvas[:, :270] = cv2.resize(f, (270, 480))  # the big one on the left
        canvas[160:480, 300:480] = cv2.resize(f, (180, 320))  # a smaller copy on the right
        out.write(canvas)
    out.release()


@pytest.mark.slow
def test_movenet_capture_picks_the_largest_and_writes_everyone(tmp_path):
    from mocap.errors import MocapError

    movenet_model_path = pytest.importorskip("mocap.io.model_files").movenet_model_path

    try:
        movenet_model_path()
    except MocapError as e:
        pytest.skip(str(e))
    pytest.importorskip("tflite_runtime")
    from mocap.formats import load_keypoints, load_motion
    from mocap.pipelines.capture import capture
    from mocap.pipelines.options import CaptureOptions, DetectionOptions, ExportOptions

    clip = tmp_path / "two.mp4"
    _two_person_clip(clip)
    options = CaptureOptions(detection=DetectionOptions(detector="movenet", all_people=True, min_person_s=0.5),
                             export=ExportOptions(overlay=False, preview=False))
    report = capture(clip, tmp_path / "out", options, progress=False)
    kp = load_keypoints(tmp_path / "out" / "keypoints2d.npz")
    assert kp.layout == "coco17" and kp.num_frames == 16 and report.detection_rate > 0.9
    assert np.nanmedian(kp.keypoints[..., 0]) < 270  # the big person on the left
    people = sorted((tmp_path / "out").glob("person_*/motion.npz"))
    assert len(people) == 2
    for p in people:
        assert load_motion(p).num_frames == 16
    xs = [np.nanmedian(load_keypoints(p.parent / "keypoints2d.npz").keypoints[..., 0]) for p in people]
    assert min(xs) < 270 < max(xs)  # one each side


def test_torso_histograms_tell_clothes_apart():
    from mocap.detect2d.people import HIST_BINS, torso_histograms
    from mocap.skeletons import COCO17

    frame = np.zeros((200, 300, 3), np.uint8)
    frame[:, :150] = (200, 30, 30)  # a red shirt on the left
    frame[:, 150:] = (30, 30, 200)  # a blue one on the right
    kp = np.full((3, 17, 2), np.nan, np.float32)
    for p, x in enumerate((40.0, 190.0)):
        for name, (dx, dy) in {"left_shoulder": (0, 40), "right_shoulder": (60, 40), "left_hip": (0, 150),
                               "right_hip": (60, 150)}.items():
            kp[p, COCO17.index(name)] = (x + dx, dy)
    conf = np.where(np.isfinite(kp).all(-1), 0.9, 0.0)
    h = torso_histograms(frame, kp, conf, "coco17")
    assert h.shape == (3, HIST_BINS ** 3) and np.isnan(h[2]).all()  # no torso: unknown
    np.testing.assert_allclose(h[:2].sum(1), 1.0)
    red = (3 * HIST_BINS + 0) * HIST_BINS + 0
    blue = (0 * HIST_BINS + 0) * HIST_BINS + 3
    assert h[0, red] == 1.0 and h[1, blue] == 1.0


def test_people_keeps_those_seen_long_enough_and_from_person():
    from mocap.detect2d.people import PeopleTracks
    from mocap.formats import Keypoints2D

    rng = np.random.default_rng(0)
    est = _FakeEstimator(rng)
    frames = (np.zeros((480, 640, 3), np.uint8) for _ in range(30))
    tracks = detect_people_frames(frames, 30.0, (640, 480), estimator=est, batch_size=7, progress=False)
    assert len(tracks.people(min_seconds=1.0)) == 2 and len(tracks.people(min_seconds=1.1)) == 0
    one = tracks.person("auto")
    one = Keypoints2D(keypoints=np.where(np.arange(30)[:, None, None] < 5, np.nan, one.keypoints),
                      confidence=one.confidence, layout="coco17", image_size=(640, 480), fps=30.0)
    wrapped = PeopleTracks.from_person(one)
    assert wrapped.track_list() == [0]
    (entry,) = wrapped.summary()
    assert (entry["first_frame"], entry["last_frame"], entry["frames_visible"]) == (5, 29, 25)


@pytest.mark.slow
def test_blazepose_follows_two_people_through_the_video(tmp_path):
    """The PyTorch BlazePose with several people: each person's ROI tracked from frame to frame,
    the detector at a cadence; on a clip with the example's person twice, both are kept all along,
    each as one track, and no one twice."""
    pytest.importorskip("torch")
    pytest.importorskip("tflite")
    pytest.importorskip("mediapipe")
    from mocap.detect2d.people import detect_people_video

    import cv2

    clip = tmp_path / "two.mp4"
    cap = cv2.VideoCapture(str(EXAMPLE))
    out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (800, 540))
    for _ in range(20):
        ok, f = cap.read()
        assert ok
        canvas = np.full((540, 800, 3), 90, np.uint8)
        canvas[:, 40:344] = cv2.resize(f, (304, 540))  # the same person twice, side by side
        canvas[:, 456:760] = cv2.resize(f[:, ::-1], (304, 540))  # (mirrored)
        out.write(canvas)
    out.release()
    tracks = detect_people_video(clip, detector="blazepose-torch", progress=False)
    assert len(tracks.track_list()) == 2
    for entry in tracks.summary():
        assert entry["frames_visible"] == 20
    assert ((tracks.track_ids >= 0).sum(1) == 2).all()  # two people in every frame, never a duplicate
    xs = {e["id"]: (e["median_box"][0] + e["median_box"][2]) / 2 for e in tracks.summary()}
    assert min(xs.values()) < 400 < max(xs.values())  # one each side


def test_segment_bounds():
    from mocap.detect2d.people import segment_bounds

    assert segment_bounds(0, 300, 4, 50) == [(0, 75), (75, 150), (150, 225), (225, 300)]
    assert segment_bounds(10, 110, 4, 50) == [(10, 60), (60, 110)]  # two of at least 50 frames
    assert segment_bounds(0, 99, 4, 50) == [(0, 99)]
    assert segment_bounds(5, 6, 4, 50) == [(5, 6)]
    with pytest.raises(ValueError, match="at least 1"):
        segment_bounds(0, 10, 0)


def _example_frames(n: int, size: tuple[int, int]):
    from mocap.io.video import iter_frames

    import cv2

    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f, _ in zip(iter_frames(EXAMPLE), range(n))]


@pytest.mark.slow
def test_segments_side_by_side_give_what_one_stream_gives(monkeypatch):
    """The video cut into four segments tracked side by side (each warming up on the previous
    segment's last frames) finds the man, and the woman far back, in the same frames as one
    stream from start to end,
    the same points within 2 % of his height (a segment's first frame starts from the detector,
    not from the previous frame: about 1 % measured), and hands every frame to keep_frame
    once, with its own number."""
    pytest.importorskip("torch")
    import mocap.detect2d.people as people
    from mocap.io.video import iter_frames

    kept: dict[int, np.ndarray] = {}

    def keep(i, f):
        assert i not in kept
        kept[i] = f

    one = people.detect_people_video(EXAMPLE, detector="blazepose-torch", progress=False, frames=(0, 60), segments=1)
    monkeypatch.setattr(people, "SEGMENT_MIN_FRAMES", 15)
    four = people.detect_people_video(EXAMPLE, detector="blazepose-torch", progress=False, frames=(0, 60),
                                      keep_frame=keep)
    assert people.segment_bounds(0, 60) == [(0, 15), (15, 30), (30, 45), (45, 60)]
    seen = []
    for tracks in (one, four):
        assert (tracks.track_ids[:60] == 0).sum(1).tolist() == [1] * 60
        assert (tracks.track_ids[60:] < 0).all()
        frames = {i: np.flatnonzero((tracks.track_ids[:60] == i).any(1)) for i in tracks.track_list()}
        # the woman far back at the left (x about 70 px), from frame 8 on; whatever else is
        # short-lived (a few frames on the man's limbs, below the one second people.json lists)
        woman = [i for i in frames if i != 0 and len(frames[i]) > 30]
        assert len(woman) == 1
        x = np.nanmedian(tracks.person(woman[0]).keypoints[frames[woman[0]], :, 0])
        assert x < 150, x
        assert all(len(frames[i]) < 15 for i in frames if i not in (0, woman[0]))
        seen.append(frames[woman[0]])
    assert abs(len(seen[0]) - len(seen[1])) <= 2 and abs(seen[0][0] - seen[1][0]) <= 2
    a, b = one.person(0).keypoints[:60], four.person(0).keypoints[:60]
    height = np.nanmedian(np.ptp(a[..., 1], axis=1))
    err = np.nanmean(np.linalg.norm(a - b, axis=-1), axis=1) / height
    assert np.nanmax(err) < 0.02, np.nanmax(err)
    assert sorted(kept) == list(range(60))
    for i, f in zip(range(60), iter_frames(EXAMPLE)):
        if i % 7 == 0:
            np.testing.assert_array_equal(kept[i], f)


@pytest.mark.slow
def test_segments_of_a_cut_file_stop_where_it_does(tmp_path, monkeypatch):
    """A file cut short (it declares 40 frames and holds about two thirds): the segments past its
    end find nothing to read and the one it ends in stops there, so the tracks hold the frames it
    has, in order, as one stream would."""
    pytest.importorskip("torch")
    import cv2

    import mocap.detect2d.people as people

    frames = _example_frames(40, (270, 480))
    path = tmp_path / "clip.mkv"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (270, 480))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.warns(UserWarning, match="decoding stopped after"):
        one = people.detect_people_video(cut, detector="blazepose-torch", progress=False, segments=1)
    monkeypatch.setattr(people, "SEGMENT_MIN_FRAMES", 8)
    with pytest.warns(UserWarning, match="decoding stopped after"):
        four = people.detect_people_video(cut, detector="blazepose-torch", progress=False)
    held = one.keypoints.shape[0]
    assert 20 < held < 40 and four.keypoints.shape[0] == held
    # the man in every frame (the woman far back may be found too, a frame sooner or later)
    assert (one.track_ids == 0).sum(1).tolist() == (four.track_ids == 0).sum(1).tolist() == [1] * held
    a, b = one.person(0).keypoints, four.person(0).keypoints
    assert np.nanmax(np.nanmean(np.linalg.norm(a - b, axis=-1), axis=1)) < 0.02 * 480
