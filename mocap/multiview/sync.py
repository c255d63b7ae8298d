"""Synchronisation of several views: checks, and constant frame offsets from keypoint motion.

Convention: ``offsets[c]`` is how many frames view ``c`` lags view 0 — what view 0 shows
at its frame ``f`` view ``c`` shows at its frame ``f + offsets[c]`` (``offsets[0] == 0``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mocap.camera import Camera
from mocap.errors import MocapError
from mocap.formats import Keypoints2D


def check_views(views: Sequence[Keypoints2D], names: Sequence[str], *, same_length: bool = True,
                fps_tolerance: float = 0.01) -> None:
    """Raise MocapError unless all views share layout, frame rate and (if ``same_length``) length.

    Args:
        views: C keypoint sets, one per camera.
        names: C names for the messages (file or camera names).
        fps_tolerance: relative difference of frame rates still accepted.
    """
    if len(views) != len(names):
        raise ValueError(f"{len(views)} views but {len(names)} names")
    layouts = {v.layout for v in views}
    if len(layouts) > 1:
        raise MocapError(f"the views use different keypoint layouts ({', '.join(sorted(layouts))}); "
                         "detect all of them with the same detector")
    fps = np.array([v.fps for v in views])
    if np.abs(fps / fps[0] - 1).max() > fps_tolerance:
        listing = ", ".join(f"{n} {f:.3g} fps" for n, f in zip(names, fps))
        raise MocapError(f"the views have different frame rates ({listing}); record at one rate or resample "
                         "the videos to the same rate first")
    lengths = [v.num_frames for v in views]
    if same_length and len(set(lengths)) > 1:
        listing = ", ".join(f"{n} {t}" for n, t in zip(names, lengths))
        raise MocapError(f"the views have different numbers of frames ({listing}); cut them to the same span, "
                         "or pass --sync auto to estimate the offsets and keep the frames all views share")


def _best_lag(score_of_lag, max_offset: int, larger_is_better: bool) -> int:
    lags = np.arange(-max_offset, max_offset + 1)
    scores = np.array([score_of_lag(int(d)) for d in lags], dtype=np.float64)
    if not np.isfinite(scores).any():
        raise MocapError("cannot estimate the frame offset: the views share too few frames with a visible person")
    scores = np.where(np.isfinite(scores), scores, -np.inf if larger_is_better else np.inf)
    return int(lags[np.argmax(scores) if larger_is_better else np.argmin(scores)])


def _overlap(a: np.ndarray, b: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames f of ``a`` and f + lag of ``b`` that both exist."""
    t = min(len(a), len(b) - lag) if lag >= 0 else min(len(a) + lag, len(b))
    if lag >= 0:
        return a[:t], b[lag:lag + t]
    return a[-lag:-lag + t], b[:t]


def _fundamental(cam_a: Camera, cam_b: Camera) -> np.ndarray:
    """(3, 3) F with ``x_b^T F x_a = 0`` for undistorted pixels."""
    r = cam_b.R @ cam_a.R.T
    t = cam_b.t - r @ cam_a.t
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(cam_b.K).T @ tx @ r @ np.linalg.inv(cam_a.K)


def _epipolar_px(f: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """(N,) symmetric epipolar distance in pixels of (N, 2) undistorted pixel pairs."""
    ha = np.concatenate([xa, np.ones(xa.shape[:-1] + (1,))], -1)
    hb = np.concatenate([xb, np.ones(xb.shape[:-1] + (1,))], -1)
    la = ha @ f.T  # epipolar lines in b
    lb = hb @ f  # epipolar lines in a
    num = np.abs((hb * la).sum(-1))
    return 0.5 * num * (1 / np.linalg.norm(la[..., :2], axis=-1) + 1 / np.linalg.norm(lb[..., :2], axis=-1))


def estimate_frame_offsets(keypoints: Sequence[np.ndarray], confidence: Sequence[np.ndarray], *,
                           cameras: Sequence[Camera] | None = None, max_offset: int = 30,
                           min_confidence: float = 0.5, min_overlap: int = 10) -> np.ndarray:
    """Constant frame offsets of the views against view 0, from the person's motion.

    With ``cameras``, each lag is scored by how well the views' keypoints satisfy the
    epipolar geometry (median symmetric epipolar distance; the lag with the smallest
    wins). Without, each lag gets a fundamental matrix fitted to the keypoint pairs it
    implies (least median of squares) and the same score: only the right lag lets one
    rigid two-view geometry explain a moving person.

    Args:
        keypoints: C arrays (T_c, J, 2) distorted pixels; NaN where missing.
        confidence: C arrays (T_c, J).
        cameras: C calibrated cameras, or None.
        max_offset: largest offset searched, frames.
        min_overlap: lags that leave fewer shared frames are not considered.
    Returns:
        (C,) int offsets (see the module docstring).
    """
    c = len(keypoints)
    if len(confidence) != c or (cameras is not None and len(cameras) != c):
        raise ValueError("keypoints, confidence and cameras must have one entry per view")
    offsets = np.zeros(c, dtype=int)
    if cameras is not None:
        ideal = [np.where((np.asarray(cf) >= min_confidence)[..., None], cam.undistort_pixels(kp), np.nan)
                 for cam, kp, cf in zip(cameras, keypoints, confidence)]
        for k in range(1, c):
            f = _fundamental(cameras[0], cameras[k])

            def score(lag, k=k, f=f):
                a, b = _overlap(ideal[0], ideal[k], lag)
                if len(a) < min_overlap:
                    return np.nan
                d = _epipolar_px(f, a.reshape(-1, 2), b.reshape(-1, 2))
                d = d[np.isfinite(d)]
                return np.median(d) if d.size >= 3 * min_overlap else np.nan

            offsets[k] = _best_lag(score, max_offset, larger_is_better=False)
        return offsets
    import cv2

    kps = [np.where((np.asarray(cf) >= min_confidence)[..., None], np.asarray(kp, np.float64), np.nan)
           for kp, cf in zip(keypoints, confidence)]
    for k in range(1, c):
        def fit_score(lag, k=k):
            a, b = _overlap(kps[0], kps[k], lag)
            a, b = a.reshape(-1, 2), b.reshape(-1, 2)
            ok = np.isfinite(a).all(-1) & np.isfinite(b).all(-1)
            if len(np.unique(np.nonzero(ok)[0] // kps[0].shape[1])) < min_overlap or ok.sum() < 30:
                return np.nan
            f, _ = cv2.findFundamentalMat(a[ok], b[ok], cv2.FM_LMEDS)
            if f is None or f.shape != (3, 3):
                return np.nan
            return float(np.median(_epipolar_px(f.T, b[ok], a[ok])))

        offsets[k] = _best_lag(fit_score, max_offset, larger_is_better=False)
    return offsets


def common_span(lengths: Sequence[int], offsets: Sequence[int]) -> tuple[np.ndarray, int]:
    """First frame of each view and the number of frames all views share after the offsets.

    Returns ((C,) int start frames, T frames); MocapError if the views do not overlap.
    """
    offsets = np.asarray(offsets, dtype=int)
    starts = offsets - offsets.min()
    t = int(min(n - s for n, s in zip(lengths, starts)))
    if t <= 0:
        raise MocapError(f"with frame offsets {offsets.tolist()} the views share no frame")
    return starts, t


def apply_offsets(views: Sequence[Keypoints2D], offsets: Sequence[int]) -> list[Keypoints2D]:
    """The views cut to the frames they all share, aligned in time (see :func:`common_span`)."""
    starts, t = common_span([v.num_frames for v in views], offsets)
    out = []
    for v, s in zip(views, starts):
        wl = None if v.world_landmarks is None else v.world_landmarks[s:s + t]
        out.append(Keypoints2D(keypoints=v.keypoints[s:s + t], confidence=v.confidence[s:s + t], layout=v.layout,
                               image_size=v.image_size, fps=v.fps, world_landmarks=wl))
    return out
