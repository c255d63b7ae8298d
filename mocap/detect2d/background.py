"""The camera's own motion, from the background: a phone held in the hand or turned to follow
someone moves the whole picture, and a static-camera capture would read that as the person
moving (a still person slides; a walker followed by the camera walks on the spot).

Between frames a little apart, corners of the picture are followed (Lucas-Kanade optical flow
on a small grey copy, checked backwards), the people's boxes left out, and one homography per
pair is fitted to them (RANSAC). Chained, they map every frame's picture onto a reference
frame's picture: exact for a camera that turns about its centre (pan, tilt, roll, zoom), which
is most of what a hand-held camera does; a camera carried along sees near and far things move
differently (parallax), which no homography follows: its travel is not undone.

Pure array functions apart from :class:`BackgroundFlow`, the 2D stage's frame callback that
gathers the point pairs as the frames are decoded. Pixels of the full picture; a homography
``H`` (3, 3) maps homogeneous pixels ``x`` of a frame to ``H @ x`` in the reference frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The small grey copy the corners are followed on: its long side, pixels
THUMB_SIDE = 480
#: The frames looked at: one every this many seconds (at most every frame), and the last
PAIR_S = 0.1
#: Corners followed from a keyframe (RANSAC leaves out those followed wrong)
MAX_CORNERS = 200
#: A homography needs this many background points in a pair; fewer: the pair is skipped (held)
MIN_POINTS = 12
#: RANSAC's inlier distance, as a share of the picture's long side (2 px at 1920)
RANSAC_SHARE = 0.001
#: The camera moved when the background's largest shift over the clip exceeds this share of
#: the picture's long side (19 px at 1920: 2.5 cm at 4 m with a 1600 px lens); under it the
#: keypoints are left as they are
MOVED_SHARE = 0.01


def thumbnail(frame: np.ndarray) -> tuple[np.ndarray, float]:
    """(h, w) uint8 grey copy of an (H, W, 3) RGB frame with its long side at most
    :data:`THUMB_SIDE`, and its scale (thumbnail pixels per picture pixel)."""
    import cv2

    h, w = frame.shape[:2]
    scale = min(1.0, THUMB_SIDE / max(h, w))
    small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_LINEAR) \
        if scale < 1.0 else frame
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), scale


def corners_of(a: np.ndarray) -> np.ndarray | None:
    """(N, 1, 2) float32 corners of grey picture ``a`` to follow (at most :data:`MAX_CORNERS`), or None."""
    import cv2

    return cv2.goodFeaturesToTrack(a, maxCorners=MAX_CORNERS, qualityLevel=0.01, minDistance=7, blockSize=7)


def flow_pairs(a: np.ndarray, b: np.ndarray, corners: np.ndarray | None = None) -> np.ndarray:
    """(N, 4) float32 corners of grey picture ``a`` (``corners``: :func:`corners_of` ``a``, found
    here when not given) and where they are in ``b`` (xa, ya, xb, yb), thumbnail pixels, those
    the optical flow found."""
    import cv2

    corners = corners_of(a) if corners is None else corners
    if corners is None or len(corners) < MIN_POINTS:
        return np.zeros((0, 4), np.float32)
    ahead, ok, _ = cv2.calcOpticalFlowPyrLK(a, b, corners, None, winSize=(15, 15), maxLevel=3,
                                            criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    keep = ok.ravel().astype(bool)
    return np.concatenate([corners.reshape(-1, 2)[keep], ahead.reshape(-1, 2)[keep]], axis=1).astype(np.float32)


class BackgroundFlow:
    """A ``keep_frame`` callback of the 2D stage: ten frames a second from ``first`` (one every
    :data:`PAIR_S`, and the last before ``stop``) are made small and grey, and each one's
    corners are followed from a keyframe: the same one while the
    background stays within :data:`KEY_REACH` of it (a still camera is measured against one
    frame, with no drift), else from the frame before, which becomes the next keyframe.

    The 2D stage decodes segments side by side, each in order: a frame whose predecessor has
    not come yet starts a stream of its own (its keyframe) and waits, small, for that
    predecessor to link them. ``pairs``: {(frame a, frame b): (N, 4) picture pixels (xa, ya, xb, yb)}."""

    def __init__(self, first: int, stop: int, fps: float) -> None:
        self.first, self.stop = int(first), int(stop)
        step = max(1, int(round(PAIR_S * float(fps))))
        samples = sorted(set(range(self.first, self.stop, step)) | ({self.stop - 1} if self.stop > self.first else set()))
        self._prev = dict(zip(samples[1:], samples[:-1]))  # each looked-at frame's predecessor and successor
        self._next = dict(zip(samples[:-1], samples[1:]))
        self.pairs: dict[tuple[int, int], np.ndarray] = {}
        self._thumbs: dict[int, tuple[np.ndarray, float]] = {}
        self._key: dict[int, int] = {}  # a stream's last frame -> that stream's keyframe
        self._waiting: dict[int, tuple[np.ndarray, float]] = {}  # first frames of streams, waiting for their predecessor
        self._corners: dict[int, np.ndarray | None] = {}  # keyframes' corners

    def __call__(self, index: int, frame: np.ndarray) -> None:
        if index != self.first and index not in self._prev:
            return
        thumb = thumbnail(frame)
        before, after = self._prev.get(index), self._next.get(index)
        if before is not None and before in self._key:  # the stream goes on
            key = self._key.pop(before)
            if key not in self._corners:  # a keyframe's corners, found once
                self._corners[key] = corners_of(self._thumbs[key][0])
            pts = flow_pairs(self._thumbs[key][0], thumb[0], self._corners[key])
            if _reaches(pts, thumb[0].shape):
                self.pairs[(key, index)] = pts / np.float32(thumb[1])
            else:  # too far from the keyframe: from the frame before, which becomes the keyframe
                self.pairs[(before, index)] = flow_pairs(self._thumbs[before][0], thumb[0]) / np.float32(thumb[1])
                key = before
            self._key[index] = key
            self._thumbs = {n: t for n, t in self._thumbs.items() if n in self._key.values() or n in self._key}
            self._corners = {n: c for n, c in self._corners.items() if n in self._thumbs}
            self._thumbs[index] = thumb
        else:  # a stream starts here (the first frame, or a segment's)
            self._key[index] = index
            self._thumbs[index] = thumb
            if before is not None:
                self._waiting[index] = thumb
        if after in self._waiting:  # the stream after this one was waiting for this frame
            self.pairs[(index, after)] = flow_pairs(thumb[0], self._waiting.pop(after)[0]) / np.float32(thumb[1])


#: A keyframe serves while at least this many of its corners are followed into a frame, moved
#: by at most this share of the thumbnail's long side (median)
KEY_MIN_POINTS, KEY_REACH = 40, 0.025


def _reaches(pts: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether a keyframe's corners followed into a frame (``pts`` (N, 4) thumbnail pixels)
    still serve: enough of them, not moved too far."""
    if len(pts) < KEY_MIN_POINTS:
        return False
    return float(np.median(np.linalg.norm(pts[:, 2:] - pts[:, :2], axis=1))) <= KEY_REACH * max(shape)


@dataclass(frozen=True)
class CameraMotion:
    """The background's motion over a clip.

    Attributes:
        homography: (T, 3, 3) float64, per video frame: maps its picture onto the reference
            frame's (identity there; outside the frames looked at, the nearest one's).
        reference: the reference frame (the first one looked at).
        max_shift_px: the background's largest shift from the reference (median over a grid
            of the picture's points), pixels.
        fit_px: how far the background points lie from their pair's homography (median over
            pairs of the inliers' median), pixels; NaN without pairs.
        inliers: the share of background points that fit (median over pairs).
        moved: the largest shift is over :data:`MOVED_SHARE` of the picture.
    """

    homography: np.ndarray
    reference: int
    max_shift_px: float
    fit_px: float
    inliers: float
    moved: bool

    def as_dict(self) -> dict:
        """quality.json's ``camera_motion`` (docs/formats.md)."""
        return {"moved": bool(self.moved), "max_shift_px": float(self.max_shift_px),
                "fit_px": float(self.fit_px), "inliers": float(self.inliers), "reference_frame": int(self.reference)}


def _grid(size: tuple[int, int], n: int = 5) -> np.ndarray:
    w, h = size
    gx, gy = np.meshgrid(np.linspace(0, w, n), np.linspace(0, h, n))
    return np.stack([gx.ravel(), gy.ravel()], 1)


def apply_homography(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (..., 2) pixels mapped by ``h``: (3, 3), or (T, 3, 3) with points (T, ..., 2),
    one homography per frame. NaN stays NaN."""
    p = np.asarray(points, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    hom = np.concatenate([p, np.ones(p.shape[:-1] + (1,))], axis=-1)
    if h.ndim == 2:
        q = hom @ h.T
    else:
        flat = hom.reshape(len(h), -1, 3)
        q = np.einsum("tij,tnj->tni", h, flat).reshape(hom.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return q[..., :2] / q[..., 2:]


def camera_motion(pairs: dict[tuple[int, int], np.ndarray], num_frames: int, size: tuple[int, int],
                  people_px: np.ndarray | None = None, *, first: int = 0) -> CameraMotion:
    """The background's motion over a video from the point pairs :class:`BackgroundFlow` gathered.

    Args:
        pairs: {(frame a, frame b): (N, 4) pixels (xa, ya, xb, yb)}, b after a, consecutive.
        num_frames: the video's frames (T). size: (width, height) pixels.
        people_px: (T, P, J, 2) everyone's keypoints (NaN where unseen): points inside a
            person's box (:func:`mocap.detect2d.lines.in_people_boxes`) in either frame of a
            pair are left out (a moving person is not the background).
        first: the reference frame (the first one looked at).
    Returns:
        :class:`CameraMotion`.
    """
    import cv2

    from mocap.detect2d.lines import in_people_boxes, people_boxes

    long_side = float(max(size))
    steps: dict[int, np.ndarray] = {first: np.eye(3)}  # frame -> its homography onto the reference
    fits, shares = [], []
    for a, b in sorted(pairs):
        pts = np.asarray(pairs[(a, b)], dtype=np.float64)
        if people_px is not None and len(pts):
            keep = np.ones(len(pts), bool)
            for f, cols in ((a, slice(0, 2)), (b, slice(2, 4))):
                if 0 <= f < len(people_px):
                    keep &= ~in_people_boxes(pts[:, cols], people_boxes(people_px[f]))
            pts = pts[keep]
        h_ba = None
        if len(pts) >= MIN_POINTS:
            h_ba, mask = cv2.findHomography(pts[:, 2:4], pts[:, 0:2], cv2.RANSAC, RANSAC_SHARE * long_side)
        if h_ba is None or a not in steps:
            steps[b] = steps.get(a, np.eye(3))  # nothing to go on: held
            continue
        inl = mask.ravel().astype(bool)
        off = np.linalg.norm(apply_homography(h_ba, pts[inl, 2:4]) - pts[inl, 0:2], axis=1)
        fits.append(float(np.median(off)))
        shares.append(float(inl.mean()))
        steps[b] = steps[a] @ (h_ba / h_ba[2, 2])
    # every frame: between two looked-at frames the homography goes linearly from one to the other
    known = np.array(sorted(steps))
    stack = np.stack([steps[k] / steps[k][2, 2] for k in known])
    frames = np.arange(num_frames)
    flat = np.stack([np.interp(frames, known, stack[:, i // 3, i % 3]) for i in range(9)], 1).reshape(-1, 3, 3)
    max_shift = largest_shift(stack, size)
    fit_px = float(np.median(fits)) if fits else float("nan")
    inliers = float(np.median(shares)) if shares else float("nan")
    return CameraMotion(homography=flat, reference=int(first), max_shift_px=max_shift, fit_px=fit_px,
                        inliers=inliers, moved=bool(max_shift > MOVED_SHARE * long_side))


def largest_shift(homography: np.ndarray, size: tuple[int, int]) -> float:
    """The background's largest shift, pixels, over ``homography`` (T, 3, 3): per frame the median
    over a grid of the picture's points of how far it moves them."""
    grid = _grid(size)
    return max((float(np.median(np.linalg.norm(apply_homography(h, grid) - grid, axis=1))) for h in homography),
               default=0.0)


def motion_of(homography: np.ndarray, size: tuple[int, int]) -> CameraMotion:
    """:class:`CameraMotion` of homographies already found (a keypoints file's
    ``background_homography``): the reference is the frame they leave in place; how well the
    background fitted them is not known (NaN)."""
    h = np.asarray(homography, dtype=np.float64)
    shift = largest_shift(h, size)
    still = [np.allclose(m / m[2, 2], np.eye(3)) for m in h]
    return CameraMotion(homography=h, reference=int(np.argmax(still)) if any(still) else 0, max_shift_px=shift,
                        fit_px=float("nan"), inliers=float("nan"), moved=bool(shift > MOVED_SHARE * max(size)))


def steadied(keypoints):
    """``keypoints`` (:class:`mocap.formats.Keypoints2D`) as a camera that stayed as in the
    reference frame would have seen them: the keypoints and hands mapped through
    ``background_homography`` (which the result no longer carries); unchanged without one.
    MediaPipe's world landmarks are left as they are (they are the body's shape, not its place)."""
    import dataclasses

    h = keypoints.background_homography
    if h is None:
        return keypoints
    hands = None if keypoints.hand_keypoints is None else apply_homography(h, keypoints.hand_keypoints).astype(np.float32)
    return dataclasses.replace(keypoints, keypoints=apply_homography(h, keypoints.keypoints).astype(np.float32),
                               hand_keypoints=hands, background_homography=None)
