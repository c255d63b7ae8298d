"""The camera's own motion from the background (mocap.detect2d.background) against known
answers: a textured picture seen by a camera turned by known angles (each frame's homography
onto the first is then K R K^-1 exactly), frames given out of order as the 2D stage's segments
give them, a moving person left out; the lift and fit of a still person filmed by a panning
camera; the keypoints file; and the whole capture of the example video panned across (a moving
crop) against the same video held still."""
from __future__ import annotations

import numpy as np
import pytest

from mocap.detect2d.background import BackgroundFlow, apply_homography, camera_motion, steadied
from mocap.errors import MocapError
from mocap.formats import Keypoints2D, load_keypoints, save_keypoints

cv2 = pytest.importorskip("cv2")

SIZE = (1280, 720)
F = 1000.0
K = np.array([[F, 0.0, SIZE[0] / 2], [0.0, F, SIZE[1] / 2], [0.0, 0.0, 1.0]])
MARGIN = 600


def _turn(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    a, b = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rx @ ry


def _texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (SIZE[1] + 2 * MARGIN, SIZE[0] + 2 * MARGIN)).astype(np.float32),
                           (0, 0), 3)
    return cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _render(tex: np.ndarray, h: np.ndarray, seed: int) -> np.ndarray:
    """RGB frame whose pixel x shows the reference picture's pixel ``h @ x`` (and 2 grey levels of noise)."""
    m = np.array([[1.0, 0, MARGIN], [0, 1.0, MARGIN], [0, 0, 1.0]]) @ h
    g = cv2.warpPerspective(tex, m, SIZE, flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR).astype(np.float64)
    g = np.clip(g + np.random.default_rng(seed).normal(0, 2, g.shape), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, 2)


def _turning(t: int, yaw_deg: float, pitch_deg: float) -> list[np.ndarray]:
    """Each frame's true homography onto frame 0 for a camera turned by up to the given angles."""
    return [K @ _turn(y, p) @ np.linalg.inv(K) for y, p in zip(np.linspace(0, yaw_deg, t), np.linspace(0, pitch_deg, t))]


GRID = np.stack(np.meshgrid(np.linspace(0, SIZE[0], 5), np.linspace(0, SIZE[1], 5)), -1).reshape(-1, 2)


def _worst_px(found: np.ndarray, truth: list[np.ndarray]) -> float:
    """The largest distance over frames and a grid over the picture (corners included) between
    where the found and the true homographies put a point."""
    return max(float(np.linalg.norm(apply_homography(f, GRID) - apply_homography(h, GRID), axis=1).max())
               for f, h in zip(found, truth))


@pytest.mark.parametrize("yaw, pitch", [(0.0, 0.0), (15.0, 4.0), (-6.0, -8.0)])
def test_a_turning_camera_is_followed_to_a_pixel(yaw, pitch):
    t = 40
    truth = _turning(t, yaw, pitch)
    tex = _texture()
    flow = BackgroundFlow(0, t, 30.0)
    for i, h in enumerate(truth):
        flow(i, _render(tex, h, i))
    found = camera_motion(flow.pairs, t, SIZE)
    assert _worst_px(found.homography, truth) < 1.5  # 1 px in 1280 over 15 degrees
    shift = float(np.median(np.linalg.norm(apply_homography(truth[-1], GRID) - GRID, axis=1)))
    assert found.max_shift_px == pytest.approx(shift, abs=1.5)
    assert found.moved == (yaw != 0.0) and found.reference == 0
    if yaw == 0.0:  # a still camera is measured against the first frame alone: no drift
        assert found.max_shift_px < 0.05 and all(a == 0 for a, _ in flow.pairs)


def test_frames_given_in_segments_side_by_side_give_the_same_answer():
    """The 2D stage decodes segments side by side, each in order: frames come interleaved."""
    t = 40
    truth = _turning(t, 10.0, 3.0)
    tex = _texture()
    frames = [_render(tex, h, i) for i, h in enumerate(truth)]
    in_order, interleaved = BackgroundFlow(0, t, 30.0), BackgroundFlow(0, t, 30.0)
    for i, f in enumerate(frames):
        in_order(i, f)
    segments = [list(range(0, 14)), list(range(14, 27)), list(range(27, 40))]
    for k in range(14):
        for seg in segments:
            if k < len(seg):
                interleaved(seg[k], frames[seg[k]])
    assert not interleaved._waiting  # every segment's first frame was linked to the one before it
    a, b = (camera_motion(f.pairs, t, SIZE).homography for f in (in_order, interleaved))
    assert _worst_px(b, list(a)) < 1.0 and _worst_px(b, truth) < 1.5
    assert len(interleaved._thumbs) <= 6  # a few small pictures per segment kept, not the video


def test_a_moving_person_is_left_out():
    """A textured person a third of the picture wide walks across a still camera's view: their
    corners move, the background's do not."""
    t, w, h = 30, 420, 600
    tex, body = _texture(0), _texture(1)[:h, :w]
    flow = BackgroundFlow(0, t, 30.0)
    people = np.full((t, 1, 2, 2), np.nan)
    for i in range(t):
        frame = _render(tex, np.eye(3), i)
        x0 = 100 + 20 * i
        frame[60:60 + h, x0:x0 + w] = body[..., None]
        people[i, 0] = [[x0 + 10, 70], [x0 + w - 10, 50 + h]]
        flow(i, frame)
    found = camera_motion(flow.pairs, t, SIZE, people)
    assert not found.moved and found.max_shift_px < 0.5


def test_steadied_keypoints_lift_a_still_person_still():
    """A person standing still, filmed by a camera that pans 12 degrees: as detected they cross
    the picture; through the homographies they stand still, and the fit finds the camera."""
    from mocap.pipelines.capture import lift_and_fit
    from tests.test_fit import FIT, FOCAL, leaning_clip, look_camera, seen_by

    t = 60
    truth = leaning_clip(t, lean=5.0)
    base = look_camera(20.0, 1.6, 4.0)
    still = seen_by(truth, base, 30.0)
    # the camera turned about its own vertical axis by r: frame t's picture onto frame 0's is K r K^-1
    homography = np.stack([base.K @ _turn(y, 0.0) @ np.linalg.inv(base.K) for y in np.linspace(0, 12.0, t)])
    kp = apply_homography(np.linalg.inv(homography), still.keypoints).astype(np.float32)  # what it saw
    assert np.ptp(np.nanmedian(kp[..., 0], axis=1)) > 150  # the person crosses the picture
    panned = Keypoints2D(keypoints=kp, confidence=still.confidence, layout=still.layout, image_size=still.image_size,
                         fps=30.0, background_homography=homography)
    np.testing.assert_allclose(steadied(panned).keypoints, still.keypoints, atol=0.01)
    assert steadied(panned).background_homography is None and steadied(still) is still
    options = dict(FIT, lifter="network", focal_px=FOCAL)
    travel, camera = {}, {}
    for name, k in (("still camera", still), ("steadied", panned),
                    ("as detected", Keypoints2D(**{**panned.__dict__, "background_homography": None}))):
        motion, fit = lift_and_fit(k, **options)
        root = motion.root_translation[:, [0, 2]]
        travel[name] = float(np.linalg.norm(root - root[0], axis=1).max())
        camera[name] = np.array(fit.pitch_roll_height)
    # the panned camera's capture is the still one's (its fit's first 2-3 degrees off the truth's 20 come from the body)
    np.testing.assert_allclose(camera["steadied"], camera["still camera"], atol=0.05)
    assert travel["steadied"] == pytest.approx(travel["still camera"], abs=0.01)
    assert travel["steadied"] < 0.08 and travel["as detected"] > 0.5, travel


def test_the_keypoints_file_keeps_the_homographies(tmp_path):
    t = 5
    h = np.stack([np.eye(3) + 0.001 * i for i in range(t)])
    k = Keypoints2D(keypoints=np.full((t, 33, 2), 100.0, np.float32) + np.arange(33)[:, None].astype(np.float32),
                    confidence=np.ones((t, 33), np.float32), layout="mediapipe33", image_size=(640, 480), fps=30.0,
                    background_homography=h)
    save_keypoints(tmp_path / "k.npz", k)
    back = load_keypoints(tmp_path / "k.npz")
    np.testing.assert_array_equal(back.background_homography, h)
    np.testing.assert_array_equal(back.frames(2, 4).background_homography, h[2:4])  # each frame keeps its own
    assert load_keypoints(tmp_path / "k.npz").frames(0, 5).scene_lines is None
    for bad in (h[:3], np.full((t, 3, 3), np.nan)):
        with pytest.raises(MocapError, match="background_homography"):
            Keypoints2D(**{**k.__dict__, "background_homography": bad})


def test_capture_of_a_panned_video_matches_the_video_held_still(tmp_path):
    """The example video (a still camera) cut to a window 800 px wide: held still, and swung
    right, left and back (140 px each way, a turning camera to a close approximation). The
    panned capture finds the swing, says so, and gives the still one's camera and path."""
    from pathlib import Path

    from mocap.formats import load_motion
    from mocap.pipelines.capture import capture
    from mocap.export.options import ExportOptions
    from mocap.pipelines.options import CaptureOptions

    video = Path(__file__).resolve().parents[1] / "examples" / "balance_cam01.mp4"
    t = 40
    xs = np.interp(np.arange(t), [0, 13, 32, 39], [140, 280, 0, 140]).round().astype(int)
    reader = cv2.VideoCapture(str(video))
    writers = {name: cv2.VideoWriter(str(tmp_path / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 60.0, (800, 1920))
               for name in ("still", "swung")}
    for i in range(t):
        ok, frame = reader.read()
        assert ok
        writers["still"].write(frame[:, 140:940])
        writers["swung"].write(frame[:, xs[i]:xs[i] + 800])
    for w in writers.values():
        w.release()
    options = CaptureOptions(export=ExportOptions(overlay=False, preview=False))
    reports = {name: capture(tmp_path / f"{name}.mp4", tmp_path / name, options, progress=False)
               for name in ("still", "swung")}
    moved = reports["swung"].quality["camera_motion"]
    # 140 px at the turns, which fall between the frames looked at (ten a second): a little less
    assert moved["moved"] and 120 < moved["max_shift_px"] < 142
    assert not reports["still"].quality["camera_motion"]["moved"]
    assert "the camera moved: the background shifts by up to" in reports["swung"].summary()
    assert "the camera moved" not in reports["still"].summary()
    still_q, swung_q = reports["still"].quality, reports["swung"].quality
    assert swung_q["camera_pitch_deg"] == pytest.approx(still_q["camera_pitch_deg"], abs=1.5)
    assert swung_q["camera_height_m"] == pytest.approx(still_q["camera_height_m"], abs=0.1)
    paths = [load_motion(tmp_path / name / "motion.npz").root_translation[:, [0, 2]] for name in ("still", "swung")]
    paths = [p - p[0] for p in paths]
    assert np.linalg.norm(paths[0] - paths[1], axis=1).mean() < 0.05
    captured = load_keypoints(tmp_path / "swung" / "keypoints2d.npz").background_homography
    assert captured is not None
    # `mocap detect` writes the same homographies, which `mocap lift` then goes through
    from mocap.cli import main

    assert main(["detect", str(tmp_path / "swung.mp4"), "-o", str(tmp_path / "k.npz"), "--quiet"]) == 0
    detected = load_keypoints(tmp_path / "k.npz").background_homography
    assert detected is not None and _worst_px(detected, list(captured)) < 1.0
    assert main(["lift", str(tmp_path / "k.npz"), "-o", str(tmp_path / "m.npz")]) == 0
    import json

    lifted = json.loads((tmp_path / "m.quality.json").read_text())["camera_motion"]
    assert lifted["moved"] and lifted["max_shift_px"] == pytest.approx(moved["max_shift_px"], abs=1.0)
    root = load_motion(tmp_path / "m.npz").root_translation[:, [0, 2]]
    assert np.linalg.norm((root - root[0]) - paths[1], axis=1).mean() < 0.02  # as the capture's
