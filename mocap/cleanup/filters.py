"""Clean-up filters over time: gap filling, zero-phase Butterworth, One-Euro.

Every function takes an array ``x: (T, ...)`` (T frames along axis 0, any trailing
shape such as ``(T, J, 3)`` joints in metres) and treats each trailing element as an
independent channel. Missing data is NaN and stays NaN unless a function documents
that it fills it; nothing is ever replaced by zeros.

Stages:

* :func:`fill_gaps` -- mark low-confidence samples missing, interpolate short gaps.
* :func:`butterworth` -- zero-phase low-pass for offline use, per finite segment.
* :func:`one_euro` / :class:`OneEuroFilter` -- causal adaptive low-pass for live use.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["fill_gaps", "butterworth", "one_euro", "OneEuroFilter"]


# --- helpers --------------------------------------------------------------------------------

def _as_series(x: np.ndarray, name: str = "x") -> np.ndarray:
    """``x`` as a float64 array with at least one axis (time)."""
    arr = np.asarray(x)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have a time axis first, shape (T, ...); got a scalar")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=True)


def _positive(value: float, name: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``[start, stop)`` index ranges of the True runs of 1-D bool ``mask``."""
    padded = np.concatenate(([False], np.asarray(mask, bool), [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


# --- gap filling ----------------------------------------------------------------------------

def _cubic_through(t_known: np.ndarray, y_known: np.ndarray, t_new: np.ndarray) -> np.ndarray:
    """Values at ``t_new`` of the cubic polynomial through 4 points (Lagrange form)."""
    out = np.zeros(t_new.shape, dtype=np.float64)
    for i in range(4):
        basis = np.ones_like(out)
        for k in range(4):
            if k != i:
                basis *= (t_new - t_known[k]) / (t_known[i] - t_known[k])
        out += y_known[i] * basis
    return out


def fill_gaps(
    x: np.ndarray,
    *,
    fps: float,
    confidence: np.ndarray | None = None,
    min_confidence: float = 0.3,
    max_gap_s: float = 0.5,
) -> np.ndarray:
    """Mark unreliable samples missing and fill short gaps, per channel.

    A sample is missing when it is not finite or, if ``confidence`` is given, when its
    confidence is below ``min_confidence`` (or NaN). A gap is a run of missing frames in
    one channel; it lasts ``n / fps`` seconds for ``n`` missing frames and is filled when
    ``n <= floor(max_gap_s * fps)``:

    * **interior gaps** are interpolated: a cubic through the two valid frames on each
      side when the two frames just before and the two just after the gap are all
      valid, otherwise a straight line between the two neighbouring valid frames;
    * **leading / trailing gaps** (missing frames at the start or end of the recording)
      hold the nearest valid value constant;
    * longer gaps, and channels with no valid frame, stay NaN over their whole length
      (they are never partly filled). Low-confidence samples inside such gaps become NaN.

    Args:
        x: (T, ...) float, e.g. (T, J, 3) joints in metres.
        fps: frame rate in frames per second (Hz), > 0.
        confidence: optional (T, ...) array in [0, 1] whose shape is a prefix of
            ``x.shape`` (e.g. (T, J) for x (T, J, 3)); broadcast over the remaining axes.
        min_confidence: samples with confidence below this are treated as missing.
        max_gap_s: longest gap filled, seconds, >= 0.

    Returns:
        (T, ...) float64, same shape as ``x``.
    """
    out = _as_series(x)
    fps = _positive(fps, "fps")
    max_gap_s = float(max_gap_s)
    if not math.isfinite(max_gap_s) or max_gap_s < 0:
        raise ValueError(f"max_gap_s must be a finite number >= 0 seconds, got {max_gap_s!r}")
    max_gap = int(math.floor(max_gap_s * fps + 1e-9))

    missing = ~np.isfinite(out)
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64)
        if conf.ndim == 0 or conf.shape != out.shape[: conf.ndim]:
            raise ValueError(
                f"confidence must have a shape that starts x's shape {out.shape}, e.g. "
                f"{out.shape[:-1] or out.shape}; got {conf.shape}"
            )
        conf = conf.reshape(conf.shape + (1,) * (out.ndim - conf.ndim))
        low = ~(conf >= float(min_confidence))  # NaN confidence counts as low
        missing |= np.broadcast_to(low, out.shape)

    shape = out.shape
    n_frames = shape[0]
    flat = out.reshape(n_frames, -1)
    miss = missing.reshape(n_frames, -1)
    flat[miss] = np.nan
    frames = np.arange(n_frames, dtype=np.float64)

    for c in np.flatnonzero(miss.any(axis=0)):
        col, gone = flat[:, c], miss[:, c]
        if gone.all():
            continue
        for start, stop in true_runs(gone):
            if stop - start > max_gap:
                continue
            if start == 0:
                col[:stop] = col[stop]
            elif stop == n_frames:
                col[start:] = col[start - 1]
            elif start >= 2 and stop + 2 <= n_frames and not (gone[start - 2] or gone[stop + 1]):
                support = np.array([start - 2, start - 1, stop, stop + 1])
                col[start:stop] = _cubic_through(frames[support], col[support], frames[start:stop])
            else:
                a, b = col[start - 1], col[stop]
                w = (frames[start:stop] - (start - 1)) / (stop - start + 1)
                col[start:stop] = a + w * (b - a)
    return flat.reshape(shape)


# --- Butterworth ----------------------------------------------------------------------------

def butterworth(x: np.ndarray, *, fps: float, cutoff_hz: float, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth low-pass along axis 0, per contiguous finite segment.

    The digital Butterworth filter of ``order`` (bilinear transform, cutoff pre-warped;
    :func:`butterworth_sections`) runs forward and backward from a steady start
    (:func:`_zero_phase`: what ``scipy.signal.sosfiltfilt`` computes, to 1e-11 of the signal
    in the tests, without importing ``scipy.signal``, which takes 0.8 s), so there is no
    phase shift and the gain at frequency ``f`` is the square of the single-pass gain::

        |H(f)|^2 = 1 / (1 + (tan(pi f / fps) / tan(pi cutoff_hz / fps)) ** (2 order))

    i.e. 1/2 (-6 dB) at the cutoff. The effective order is ``2 order``.

    Missing data: each channel is cut into runs of finite samples and each run is
    filtered on its own; non-finite samples are returned unchanged (NaN stays NaN).

    Ends of a run: the straight line through the run's first and last samples is
    subtracted before filtering and added back afterwards, and the rest is padded at
    both ends by odd reflection. Away from the ends this changes nothing (a zero-phase
    low-pass passes a straight line unchanged); at the ends it stops the filter's start-up
    transient from bending a moving joint toward a standstill. The pad is
    ``3 * (2 * n_sections + 1)`` frames (15 for order 4); a run no longer than that is
    filtered with the shorter pad ``len(run) - 1`` -- noise is still smoothed and a
    constant or linear run comes back unchanged -- and a run of a single frame is
    returned as it is. Expect the response within about ``1 / cutoff_hz`` seconds of a
    run's ends to differ from the ideal gain.

    Args:
        x: (T, ...) float, e.g. (T, J, 3) joints in metres.
        fps: sampling rate in frames per second (Hz), > 0.
        cutoff_hz: -6 dB cutoff frequency in Hz, 0 < cutoff_hz < fps / 2 (Nyquist).
        order: order of the single-pass filter, an integer >= 1.

    Returns:
        (T, ...) float64, same shape as ``x``.
    """
    out = _as_series(x)
    fps = _positive(fps, "fps")
    cutoff_hz = _positive(cutoff_hz, "cutoff_hz")
    nyquist = fps / 2.0
    if cutoff_hz >= nyquist:
        raise ValueError(
            f"cutoff_hz={cutoff_hz} must be below the Nyquist frequency fps/2={nyquist} Hz; "
            f"lower the cutoff or record at a higher frame rate"
        )
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be an integer >= 1, got {order!r}")

    sos = butterworth_sections(int(order), cutoff_hz, fps)
    default_pad = 3 * (2 * len(sos) + 1)

    shape = out.shape
    flat = out.reshape(shape[0], -1)
    finite = np.isfinite(flat)
    if flat.size == 0:
        return out
    # Channels sharing one missing-data pattern (e.g. x, y, z of a joint) go through
    # the filter together.
    patterns, group = np.unique(finite.T, axis=0, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    for g, pattern in enumerate(patterns):
        cols = np.flatnonzero(group == g)
        for start, stop in true_runs(pattern):
            n = stop - start
            if n < 2:
                continue
            pad = default_pad if n > default_pad else n - 1
            seg = flat[start:stop, cols]
            ramp = np.linspace(0.0, 1.0, n)[:, None]
            line = seg[0] + ramp * (seg[-1] - seg[0])
            smooth = _zero_phase(sos, seg - line, pad)
            flat[start:stop, cols] = smooth + line
    return flat.reshape(shape)


def butterworth_sections(order: int, cutoff_hz: float, fps: float) -> np.ndarray:
    """(ceil(order / 2), 6) second-order sections ``[b0, b1, b2, 1, a1, a2]`` of the digital
    Butterworth low-pass of ``order`` with its -3 dB point at ``cutoff_hz`` (single pass): the
    analogue prototype's poles on the left half circle, scaled to the pre-warped cutoff
    ``2 fps tan(pi cutoff_hz / fps)``, taken to the z-plane by the bilinear transform, every
    zero at z = -1, a conjugate pair per section (the real pole of an odd order in the last),
    unit gain at 0 Hz."""
    k = np.arange(order)
    warped = 2.0 * fps * np.tan(np.pi * cutoff_hz / fps)
    poles = warped * np.exp(1j * np.pi * (2 * k + order + 1) / (2 * order))
    z = (2.0 * fps + poles) / (2.0 * fps - poles)
    sections = [[1.0, 2.0, 1.0, 1.0, -2.0 * p.real, abs(p) ** 2] for p in z[z.imag > 1e-12]]
    if order % 2:
        sections.append([1.0, 1.0, 0.0, 1.0, -z[np.argmin(np.abs(z.imag))].real, 0.0])
    sos = np.array(sections)
    for sec in sos:  # each section's gain 1 at z = 1 (0 Hz)
        sec[:3] *= (1.0 + sec[4] + sec[5]) / sec[:3].sum()
    return sos


def _steady_states(sos: np.ndarray) -> np.ndarray:
    """(S, 2) the transposed direct form II states of each section after a long run of ones
    at the cascade's input (each section sees the previous sections' 0 Hz gain, here 1)."""
    out = np.empty((len(sos), 2))
    for s, (b0, b1, b2, _, a1, a2) in enumerate(sos):
        out[s] = np.linalg.solve([[1.0 + a1, -1.0], [a2, 1.0]], [b1 - a1 * b0, b2 - a2 * b0])
    return out


def _cascade(sos: np.ndarray, x: np.ndarray, states: np.ndarray) -> np.ndarray:
    """The sections run over ``x`` (N, C) from ``states`` (S, 2, C): per section,
    ``y[n] + a1 y[n-1] + a2 y[n-2] = b0 x[n] + b1 x[n-1] + b2 x[n-2]`` with the states
    standing in for the samples before the first, solved as one banded lower-triangular
    system (LAPACK) rather than a loop over the frames."""
    from scipy.linalg import solve_banded

    n = len(x)
    for (b0, b1, b2, _, a1, a2), (z0, z1) in zip(sos, states):
        rhs = b0 * x
        rhs[1:] += b1 * x[:-1]
        rhs[2:] += b2 * x[:-2]
        rhs[0] += z0
        if n > 1:
            rhs[1] += z1
        band = np.zeros((3, n))
        band[0], band[1, :-1], band[2, :-2] = 1.0, a1, a2
        x = solve_banded((2, 0), band, rhs, overwrite_ab=True, overwrite_b=True, check_finite=False)
    return x


def _zero_phase(sos: np.ndarray, x: np.ndarray, pad: int) -> np.ndarray:
    """``x`` (N, C) filtered forward and backward by ``sos``: padded by ``pad`` samples of odd
    reflection at each end (0 < pad < N), each pass started in the steady state of its first
    sample (as ``scipy.signal.sosfiltfilt(sos, x, axis=0, padtype="odd", padlen=pad)``)."""
    ext = np.concatenate([2 * x[:1] - x[pad:0:-1], x, 2 * x[-1:] - x[-2:-pad - 2:-1]])
    steady = _steady_states(sos)[:, :, None]
    y = _cascade(sos, ext, steady * ext[0])
    y = _cascade(sos, y[::-1].copy(), steady * y[-1])[::-1]
    return y[pad:len(y) - pad]


# --- One-Euro -------------------------------------------------------------------------------

def _smoothing_factor(cutoff_hz: np.ndarray | float, fps: float) -> np.ndarray | float:
    """Exponential smoothing factor of a first-order low-pass: 1 / (1 + fps / (2 pi fc))."""
    return 1.0 / (1.0 + fps / (2.0 * np.pi * cutoff_hz))


class OneEuroFilter:
    """Streaming One-Euro filter (Casiez, Roussel & Vogel, CHI 2012), frame by frame.

    An exponential low-pass whose cutoff rises with speed: per channel, with the
    smoothing factor ``alpha(fc) = 1 / (1 + fps / (2 pi fc))``::

        dx      = (x_t - x_{t-1}) * fps                      # raw speed, units/s
        dx_hat  = alpha(d_cutoff) * dx + (1 - alpha(d_cutoff)) * dx_hat_{t-1}
        fc      = min_cutoff + beta * |dx_hat|               # Hz
        y_t     = alpha(fc) * x_t + (1 - alpha(fc)) * y_{t-1}

    The speed is differenced from the previous *raw* sample, as in the authors' reference
    code. A channel starts (or restarts) at its first finite sample with ``y = x`` and
    ``dx_hat = 0``; a non-finite sample gives NaN and clears that channel's state. With
    ``beta = 0`` this is a first-order low-pass at ``min_cutoff``.

    Args:
        fps: frame rate in frames per second (Hz), > 0.
        min_cutoff: cutoff at rest in Hz, > 0 (lower: less jitter, more lag).
        beta: speed coefficient in Hz per (unit/s), e.g. 1/m for metres, >= 0
            (higher: less lag during fast motion).
        d_cutoff: cutoff of the speed estimate in Hz, > 0.

    Call with one frame ``x_t`` of any shape (fixed after the first call) to get the
    filtered frame, float64, same shape. :meth:`reset` forgets all state.
    """

    def __init__(self, *, fps: float, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.fps = _positive(fps, "fps")
        self.min_cutoff = _positive(min_cutoff, "min_cutoff")
        self.d_cutoff = _positive(d_cutoff, "d_cutoff")
        beta = float(beta)
        if not math.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        self.beta = beta
        self._alpha_d = _smoothing_factor(self.d_cutoff, self.fps)
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next frame starts every channel afresh."""
        self._shape: tuple[int, ...] | None = None
        self._x_prev: np.ndarray | None = None  # last raw sample, NaN = no state
        self._y_prev: np.ndarray | None = None
        self._dx_prev: np.ndarray | None = None

    def __call__(self, x_t: np.ndarray) -> np.ndarray:
        x = np.array(x_t, dtype=np.float64)
        if self._shape is None:
            self._shape = x.shape
            self._x_prev = np.full(x.shape, np.nan)
            self._y_prev = np.full(x.shape, np.nan)
            self._dx_prev = np.full(x.shape, np.nan)
        elif x.shape != self._shape:
            raise ValueError(
                f"frame shape {x.shape} differs from the first frame's {self._shape}; "
                f"use one filter per signal or call reset()"
            )
        valid = np.isfinite(x)
        warm = valid & np.isfinite(self._y_prev)

        dx = (x - self._x_prev) * self.fps
        dx_hat = np.where(warm, self._alpha_d * dx + (1.0 - self._alpha_d) * self._dx_prev, 0.0)
        alpha = _smoothing_factor(self.min_cutoff + self.beta * np.abs(dx_hat), self.fps)
        y = np.where(warm, alpha * x + (1.0 - alpha) * self._y_prev, x)

        y[~valid] = np.nan
        dx_hat[~valid] = np.nan
        self._x_prev, self._y_prev, self._dx_prev = x, y, dx_hat
        return y.copy()


def one_euro(
    x: np.ndarray,
    *,
    fps: float,
    min_cutoff: float = 1.0,
    beta: float = 0.0,
    d_cutoff: float = 1.0,
) -> np.ndarray:
    """Causal One-Euro filter along axis 0; see :class:`OneEuroFilter` for the equations.

    Each output frame depends only on the current and earlier frames; the result equals
    feeding the frames one by one to a fresh :class:`OneEuroFilter` with the same
    arguments. NaN input gives NaN output, and the filter restarts on that channel at
    its next finite sample.

    Args:
        x: (T, ...) float, e.g. (T, J, 3) joints in metres.
        fps: frame rate in frames per second (Hz), > 0.
        min_cutoff: cutoff at rest in Hz, > 0.
        beta: speed coefficient in Hz per (unit/s), >= 0.
        d_cutoff: cutoff of the speed estimate in Hz, > 0.

    Returns:
        (T, ...) float64, same shape as ``x``.
    """
    arr = _as_series(x)
    filt = OneEuroFilter(fps=fps, min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
    out = np.empty_like(arr)
    for t in range(arr.shape[0]):
        out[t] = filt(arr[t])
    return out


def hold_nearest(x: np.ndarray) -> np.ndarray:
    """Fill every NaN with the nearest finite value in time (per channel).

    For what :func:`fill_gaps` leaves (gaps longer than its limit) where a downstream stage
    needs finite values (IK, BVH). Ties go to the earlier frame.

    Args:
        x: (T, ...) float array.
    Returns:
        float64 copy of the same shape; channels with no finite value stay NaN.
    """
    x = np.array(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"x must have a time axis with frames, got shape {x.shape}")
    flat = x.reshape(x.shape[0], -1)
    t = np.arange(flat.shape[0])
    for c in range(flat.shape[1]):
        ok = np.isfinite(flat[:, c])
        if ok.all() or not ok.any():
            continue
        valid = t[ok]
        right = np.clip(np.searchsorted(valid, t), 0, len(valid) - 1)
        left = np.clip(right - 1, 0, len(valid) - 1)
        nearest = np.where(np.abs(valid[left] - t) <= np.abs(valid[right] - t), valid[left], valid[right])
        flat[:, c] = flat[nearest, c]
    return flat.reshape(x.shape)


def lowpass(x: np.ndarray, *, fps: float, cutoff_hz: float) -> np.ndarray:
    """:func:`butterworth`, except that a cutoff <= 0 or within 5 % of Nyquist returns ``x`` unchanged.

    For pipelines whose default cutoff may exceed what a low frame rate can represent.
    """
    if cutoff_hz <= 0 or cutoff_hz >= 0.5 * fps * 0.95:
        return np.asarray(x, dtype=np.float64)
    return butterworth(x, fps=fps, cutoff_hz=cutoff_hz)
