"""Tests of mocap.export.draw: pixels where the geometry says, videos with the right frames."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from mocap.export.draw import (  # noqa: E402
    CENTRE_RGB,
    LEFT_RGB,
    RIGHT_RGB,
    _line_width,
    draw_skeleton_2d,
    render_preview_3d,
    render_preview_video,
)
from mocap.export.overlay import render_overlay  # noqa: E402
from mocap.io.video import video_codec  # noqa: E402
from mocap.errors import MocapError  # noqa: E402
from mocap.formats import Keypoints2D  # noqa: E402
from mocap.skeletons import COCO17, MOTION21, rest_offsets  # noqa: E402

# A standing person facing the camera in a 160 x 200 image (x right, y down), COCO-17.
# Their left side is on the image's right.
POSE = {
    "nose": (80.3, 30.6), "left_eye": (85.1, 25.2), "right_eye": (75.4, 25.0),
    "left_ear": (91.0, 28.0), "right_ear": (69.0, 28.0),
    "left_shoulder": (100.2, 55.7), "right_shoulder": (60.4, 55.1),
    "left_elbow": (112.0, 85.0), "right_elbow": (48.0, 85.0),
    "left_wrist": (140.0, 100.0), "right_wrist": (40.0, 115.0),
    "left_hip": (93.0, 115.0), "right_hip": (67.0, 115.0),
    "left_knee": (95.0, 150.0), "right_knee": (65.0, 150.0),
    "left_ankle": (96.0, 185.0), "right_ankle": (64.0, 185.0),
}
KP = np.array([POSE[n] for n in COCO17.joint_names])
SIDE_RGB = {0: CENTRE_RGB, 1: LEFT_RGB, 2: RIGHT_RGB}


def _side(name: str) -> int:
    return 1 if name.startswith("left_") else 2 if name.startswith("right_") else 0


def _segment_distance(px: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points (N, 2) to the segment a-b."""
    ab = b - a
    t = np.clip(((px - a) @ ab) / max(ab @ ab, 1e-12), 0.0, 1.0)
    return np.linalg.norm(px - (a + t[:, None] * ab), axis=1)


def _distance_to_skeleton(pixels: np.ndarray, kp: np.ndarray, valid: np.ndarray, edges) -> np.ndarray:
    """Distance of pixel centres (N, 2) to the nearest drawn joint or edge of ``kp``."""
    d = np.full(len(pixels), np.inf)
    for a, b in edges:
        if valid[a] and valid[b]:
            d = np.minimum(d, _segment_distance(pixels, kp[a], kp[b]))
    for j in np.flatnonzero(valid):
        d = np.minimum(d, np.linalg.norm(pixels - kp[j], axis=1))
    return d


def _grid(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)


def test_draw_skeleton_2d_colours_exactly_at_joints_and_nothing_for_dropped_joints():
    frame = np.full((200, 160, 3), 90, dtype=np.uint8)
    kp = KP.copy()
    conf = np.ones(17)
    lw, rk = COCO17.index("left_wrist"), COCO17.index("right_knee")
    conf[lw] = 0.1  # below min_confidence
    kp[rk] = np.nan  # missing
    out = draw_skeleton_2d(frame, kp, conf, "coco17", min_confidence=0.3)

    assert out is not frame and (frame == 90).all(), "the input frame must not change"
    for j, name in enumerate(COCO17.joint_names):
        if j in (lw, rk):
            continue
        x, y = np.round(kp[j]).astype(int)
        assert tuple(out[y, x]) == SIDE_RGB[_side(name)], name
    # the middle of an edge has its side's colour (left arm, right arm, the shoulder line)
    for a, b, colour in (("left_shoulder", "left_elbow", LEFT_RGB), ("right_shoulder", "right_elbow", RIGHT_RGB),
                         ("left_shoulder", "right_shoulder", CENTRE_RGB)):
        x, y = np.round((KP[COCO17.index(a)] + KP[COCO17.index(b)]) / 2).astype(int)
        assert tuple(out[y, x]) == colour, (a, b)

    # nothing drawn at the dropped joints: the 9x9 box around each is untouched
    for j in (lw, rk):
        x, y = np.round(KP[j]).astype(int)
        assert (out[y - 4:y + 5, x - 4:x + 5] == 90).all(), COCO17.joint_names[j]
    # and nothing anywhere except within reach of the drawn joints and edges
    valid = np.ones(17, bool)
    valid[[lw, rk]] = False
    changed = (out != frame).any(axis=2).ravel()
    d = _distance_to_skeleton(_grid(200, 160), kp, valid, COCO17.edges)
    thickness = _line_width(200, 160)
    reach = thickness + 1 + 1 + 1.5  # joint radius, outline ring, anti-aliasing
    assert d[changed].max() <= reach
    # every pixel within the line's core is changed
    assert changed[d <= thickness / 2].all()


def test_draw_skeleton_2d_line_width_scales_and_input_errors():
    assert _line_width(1920, 1080) > _line_width(360, 640) >= 2
    frame = np.zeros((200, 160, 3), np.uint8)
    big = draw_skeleton_2d(np.zeros((800, 640, 3), np.uint8), KP * 4, None, COCO17)
    small = draw_skeleton_2d(frame, KP, None, COCO17)
    # 4x the size: 4x the length, and thicker lines, so well over 4x the pixels
    assert (big != 0).any(axis=2).sum() > 4.4 * (small != 0).any(axis=2).sum()
    with pytest.raises(ValueError, match="shape"):
        draw_skeleton_2d(frame, KP[:10], None, "coco17")
    with pytest.raises(ValueError, match="uint8"):
        draw_skeleton_2d(frame.astype(np.float32), KP, None, "coco17")
    with pytest.raises(ValueError, match="unknown layout"):
        draw_skeleton_2d(frame, KP, None, "nope")


# --- overlay video -------------------------------------------------------------------------
W, H, T, FPS = 160, 200, 12, 24.0


def _write_source(path, frames: int = T) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    assert writer.isOpened()
    ys, xs = np.mgrid[0:H, 0:W]
    for t in range(frames):  # smooth gradients: the codec reproduces them closely
        r = 60 + 0.4 * xs + 3 * t
        g = 70 + 0.3 * ys
        b = 120 - 0.2 * xs + 0.1 * ys
        writer.write(np.clip(np.stack([b, g, r], axis=2), 0, 255).astype(np.uint8))
    writer.release()


def _read_all(path) -> tuple[list[np.ndarray], float, int, int]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, fps, w, h


def _moving_keypoints(frames: int = T) -> Keypoints2D:
    kp = np.stack([KP + [t * 1.5 - 8, 0.0] for t in range(frames)]).astype(np.float32)
    conf = np.full((frames, 17), 0.9, np.float32)
    conf[:, COCO17.index("right_wrist")] = 0.05
    return Keypoints2D(keypoints=kp, confidence=conf, layout="coco17", image_size=(W, H), fps=FPS)


def test_render_overlay_same_frames_and_changes_only_near_the_skeleton(tmp_path):
    src, out = tmp_path / "src.mp4", tmp_path / "overlay.mp4"
    _write_source(src)
    k = _moving_keypoints()
    render_overlay(src, k, out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.mp4", "src.mp4"], "no temporary files left"

    source, _, _, _ = _read_all(src)
    frames, fps, w, h = _read_all(out)
    assert (len(frames), fps, w, h) == (T, FPS, W, H)
    grid = _grid(H, W)
    valid = np.ones(17, bool)
    valid[COCO17.index("right_wrist")] = False
    for t in range(T):
        diff = np.abs(frames[t].astype(int) - source[t].astype(int)).max(axis=2).ravel()
        d = _distance_to_skeleton(grid, k.keypoints[t].astype(np.float64), valid, COCO17.edges)
        # beyond the line, its outline and the codec's 8x8 blocks only re-encoding noise is left
        # (mp4v at OpenCV's bit rate: measured mean 2-4, max about 22 grey levels)
        far = d > 10
        assert diff[far].mean() < 5.0 and diff[far].max() < 32, t
        on_line = diff[d <= 1]  # the lines themselves are clearly drawn
        assert np.percentile(on_line, 5) > 60 and np.median(on_line) > 100, t
        for j, name in enumerate(COCO17.joint_names):
            if valid[j]:
                x, y = np.round(k.keypoints[t, j]).astype(int)
                assert np.abs(frames[t][y, x].astype(int) - SIDE_RGB[_side(name)]).max() < 70, (t, name)


def test_render_overlay_max_width_and_frame_count_mismatch(tmp_path):
    src = tmp_path / "src.mp4"
    _write_source(src)
    small = tmp_path / "small.mp4"
    render_overlay(src, _moving_keypoints(), small, progress=False, max_width=80)
    frames, fps, w, h = _read_all(small)
    assert (len(frames), fps, w, h) == (T, FPS, 80, 100)
    # the skeleton is scaled with the frame: joints of frame 0 land at half their coordinates
    for name in ("left_hip", "right_ankle", "left_wrist"):
        x, y = np.round(_moving_keypoints().keypoints[0, COCO17.index(name)] / 2).astype(int)
        assert np.abs(frames[0][y, x].astype(int) - SIDE_RGB[_side(name)]).max() < 70, name

    bad = tmp_path / "bad.mp4"
    with pytest.raises(MocapError, match="frames"):
        render_overlay(src, _moving_keypoints(T - 1), bad, progress=False)
    assert not bad.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["small.mp4", "src.mp4"]
    wrong_size = Keypoints2D(keypoints=_moving_keypoints().keypoints, confidence=_moving_keypoints().confidence,
                             layout="coco17", image_size=(W, W), fps=FPS)
    with pytest.raises(MocapError, match="detected on"):
        render_overlay(src, wrong_size, bad, progress=False)
    assert not bad.exists()


def test_background_overlay_matches_the_plain_one_and_cancel_or_error_leaves_no_file(tmp_path):
    import threading

    from mocap.export.overlay import BackgroundOverlay, OverlayStopped

    src = tmp_path / "src.mp4"
    _write_source(src)
    k = _moving_keypoints()
    plain, background = tmp_path / "plain.mp4", tmp_path / "background.mp4"
    render_overlay(src, k, plain, progress=False)
    with BackgroundOverlay(src, k, background, progress=False) as job:
        pass  # leaving the block waits for it
    job.wait()  # again: returns at once
    a, _, _, _ = _read_all(plain)
    b, _, _, _ = _read_all(background)
    assert len(a) == len(b) == T and all(np.array_equal(x, y) for x, y in zip(a, b))

    # stopped between frames (what the caller's failure does): nothing is left behind
    stopped = tmp_path / "stopped.mp4"
    stop = threading.Event()
    stop.set()
    with pytest.raises(OverlayStopped):
        render_overlay(src, k, stopped, progress=False, stop_event=stop)
    assert not stopped.exists()
    with pytest.raises(RuntimeError, match="caller"):  # the caller's own error is the one raised
        with BackgroundOverlay(src, k, tmp_path / "either.mp4", progress=False):
            raise RuntimeError("the caller failed")
    (tmp_path / "either.mp4").unlink(missing_ok=True)  # stopped, or finished first: either is fine

    # the overlay fails: wait() raises its error, and no file is left
    bad = tmp_path / "bad.mp4"
    with pytest.raises(MocapError, match="frames"):
        with BackgroundOverlay(src, _moving_keypoints(T - 1), bad, progress=False):
            pass
    assert not bad.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["background.mp4", "plain.mp4", "src.mp4"]


def test_video_codec_is_one_we_asked_for():
    assert video_codec() in ("avc1", "mp4v")


# --- 3D previews ---------------------------------------------------------------------------
def _rest_pose() -> np.ndarray:
    """(J, 3) MOTION21 T-pose, feet on the ground (ankles at y = 0.05 m)."""
    off = rest_offsets()
    pts = np.zeros((21, 3))
    for j, p in enumerate(MOTION21.parents):
        pts[j] = off[j] if p < 0 else pts[p] + off[j]
    pts[:, 1] -= pts[:, 1].min()
    return pts


def _colour_mask(img: np.ndarray, rgb, tol: int = 12) -> np.ndarray:
    return (np.abs(img[..., :3].astype(int) - rgb) <= tol).all(axis=2)


def test_render_preview_3d_front_view_pixels_match_the_projection(tmp_path):
    pose = _rest_pose()
    joints = np.repeat(pose[None], 10, axis=0)
    joints[:, :, 2] += np.linspace(0, 0.5, 10)[:, None]  # walks forward: same front view
    out = tmp_path / "preview.png"
    render_preview_3d(joints, MOTION21.parents, out, fps=30.0, title="rest pose")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview.png"]
    img = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert img.shape == (540, 1500, 3)

    front = img[:, :500]
    side_of = {n: _side(n) for n in MOTION21.joint_names}
    edges = [(p, c) for c, p in enumerate(MOTION21.parents) if p >= 0]
    left_edges = [(a, b) for a, b in edges if side_of[MOTION21.joint_names[b]] == 1]
    right_edges = [(a, b) for a, b in edges if side_of[MOTION21.joint_names[b]] == 2]
    orange, blue = _colour_mask(front, LEFT_RGB), _colour_mask(front, RIGHT_RGB)
    assert orange.sum() > 200 and blue.sum() > 200
    # fit pixel = offset + scale * (x, -y) from the bounding boxes of the coloured limbs
    coloured = np.argwhere(orange | blue)  # (row, col)
    ids = sorted({j for e in left_edges + right_edges for j in e})
    xs, ys = pose[ids, 0], pose[ids, 1]
    half_line = 1.8  # 2.6 pt line at 100 dpi, round caps
    sx = (coloured[:, 1].max() - coloured[:, 1].min() - 2 * half_line) / (xs.max() - xs.min())
    sy = (coloured[:, 0].max() - coloured[:, 0].min() - 2 * half_line) / (ys.max() - ys.min())
    assert sx == pytest.approx(sy, rel=0.03), "equal metres per pixel on both axes"
    scale = (sx + sy) / 2
    col0 = coloured[:, 1].min() + half_line - scale * xs.min()
    row0 = coloured[:, 0].max() - half_line + scale * ys.min()
    project = lambda p: np.stack([col0 + scale * p[..., 0], row0 - scale * p[..., 1]], axis=-1)  # noqa: E731
    # every orange pixel lies on a left limb, every blue pixel on a right one, and back
    for mask, side_edges in ((orange, left_edges), (blue, right_edges)):
        pix = np.argwhere(mask)[:, ::-1].astype(float)
        d = np.full(len(pix), np.inf)
        for a, b in side_edges:
            d = np.minimum(d, _segment_distance(pix, project(pose[a]), project(pose[b])))
        assert d.max() < 4.0
        for a, b in side_edges:
            for s in np.linspace(0, 1, 7):
                q = project(pose[a] * (1 - s) + pose[b] * s)
                assert np.linalg.norm(pix - q, axis=1).min() < 3.0
    # the ground line y = 0 is a grey row at the projected height
    band = front[int(round(row0)) - 2:int(round(row0)) + 3].astype(int)
    grey = ((band.max(axis=2) - band.min(axis=2) < 4) & (band.max(axis=2) < 180)).any(axis=0)
    assert grey.sum() > 300


def test_render_preview_3d_draws_each_person_s_path(tmp_path):
    """Two people in one world (two skeletons side by side, two roots), walking along z 2 m
    apart: the top view marks both root paths' ends (dark triangles), one at each person's x."""
    pose = _rest_pose()
    walk = np.repeat(pose[None], 10, axis=0)
    walk[:, :, 2] += np.linspace(0, 1.5, 10)[:, None]
    other = walk.copy()
    other[:, :, 0] += 2.0
    j = len(MOTION21.parents)
    parents = list(MOTION21.parents) + [p + j if p >= 0 else -1 for p in MOTION21.parents]
    out = tmp_path / "preview.png"
    render_preview_3d(np.concatenate([walk, other], axis=1), parents, out, fps=30.0,
                      joint_names=list(MOTION21.joint_names) * 2)
    img = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    top = img[60:460, 1000:]
    ends = _colour_mask(top, (51, 51, 51), tol=6).astype(np.uint8)  # the end markers' fill (bones: 70)
    count, _, stats, centres = cv2.connectedComponentsWithStats(ends)
    blobs = centres[1:][stats[1:, cv2.CC_STAT_AREA] >= 15]
    assert len(blobs) == 2, stats
    assert abs(blobs[0, 1] - blobs[1, 1]) < 3 and abs(blobs[0, 0] - blobs[1, 0]) > 150  # same z, 2 m apart in x


def test_render_preview_3d_input_errors(tmp_path):
    joints = np.repeat(_rest_pose()[None], 3, axis=0)
    with pytest.raises(ValueError, match="parents"):
        render_preview_3d(joints, MOTION21.parents[:-1], tmp_path / "a.png", fps=30.0)
    with pytest.raises(ValueError, match="all NaN"):
        render_preview_3d(np.full_like(joints, np.nan), MOTION21.parents, tmp_path / "a.png", fps=30.0)
    with pytest.raises(ValueError, match="shape"):
        render_preview_3d(joints[0], MOTION21.parents, tmp_path / "a.png", fps=30.0)
    assert list(tmp_path.iterdir()) == []


def test_render_preview_video_frames_size_and_equal_scale(tmp_path):
    t = 37
    joints = np.repeat(_rest_pose()[None], t, axis=0)
    joints[:, :, 2] += np.linspace(0.0, 3.0, t)[:, None]  # walks 3 m forward: the side view follows
    joints[5, 3] = np.nan  # a missing joint is skipped
    out = tmp_path / "preview.mp4"
    render_preview_video(joints, MOTION21.parents, out, fps=25.0, size=(320, 180))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview.mp4"]
    frames, fps, w, h = _read_all(out)
    assert (len(frames), fps, w, h) == (t, 25.0, 320, 180)
    # both views at one scale: the figure is equally tall in the front and side panels
    heights = []
    for panel in (frames[0][:, :160], frames[0][:, 160:]):
        rows = np.flatnonzero((_colour_mask(panel, LEFT_RGB, 50) | _colour_mask(panel, RIGHT_RGB, 50)).any(axis=1))
        heights.append(rows.max() - rows.min())
    assert heights[0] > 60 and abs(heights[0] - heights[1]) <= 3
