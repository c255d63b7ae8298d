"""Tests for mocap.cleanup.filters against analytic ground truth."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mocap.cleanup.filters import OneEuroFilter, butterworth, fill_gaps, one_euro


def _fit_sine(t: np.ndarray, y: np.ndarray, freq: float) -> tuple[float, float]:
    """Amplitude and phase (radians) of the ``freq`` sine in ``y`` by least squares."""
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones_like(t)], axis=1)
    (a, b, _), *_ = np.linalg.lstsq(basis, y, rcond=None)
    return math.hypot(a, b), math.atan2(b, a)


def _filtfilt_gain(freq: float, fps: float, cutoff: float, order: int) -> float:
    """|H|^2 of a digital Butterworth low-pass (bilinear, pre-warped): the filtfilt gain."""
    ratio = math.tan(math.pi * freq / fps) / math.tan(math.pi * cutoff / fps)
    return 1.0 / (1.0 + ratio ** (2 * order))


# --- butterworth --------------------------------------------------------------------------

FPS = 100.0


def test_butterworth_passes_low_sine_without_phase_shift():
    t = np.arange(1000) / FPS
    x = 0.3 * np.sin(2 * np.pi * 1.0 * t + 0.4)
    y = butterworth(x, fps=FPS, cutoff_hz=6.0)
    mid = slice(100, -100)
    amplitude, phase = _fit_sine(t[mid], y[mid], 1.0)
    assert abs(amplitude / 0.3 - 1) < 0.01
    assert abs(phase - 0.4) < 1e-3  # radians: zero-phase
    np.testing.assert_allclose(y[mid], x[mid], atol=0.01 * 0.3)


@pytest.mark.parametrize(("freq", "cutoff", "order"), [(9.0, 6.0, 4), (12.0, 6.0, 2), (6.0, 6.0, 4), (20.0, 10.0, 3)])
def test_butterworth_attenuates_to_analytic_gain(freq, cutoff, order):
    t = np.arange(2000) / FPS
    x = np.sin(2 * np.pi * freq * t)
    y = butterworth(x, fps=FPS, cutoff_hz=cutoff, order=order)
    mid = slice(300, -300)
    amplitude, phase = _fit_sine(t[mid], y[mid], freq)
    expected = _filtfilt_gain(freq, FPS, cutoff, order)
    assert expected < 0.6  # the sine is really in the stop band / at the cutoff
    assert amplitude == pytest.approx(expected, rel=0.01)
    assert abs(phase) < 1e-3


def test_butterworth_keeps_nan_and_filters_segments_independently():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(300, 2, 3)), axis=0)
    x[100:120, 0, :] = np.nan  # joint 0 missing for 20 frames
    x[250, 1, 2] = np.nan  # one coordinate missing once
    y = butterworth(x, fps=30.0, cutoff_hz=3.0)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))
    for j, k, segments in [(0, 0, [(0, 100), (120, 300)]), (1, 2, [(0, 250), (251, 300)]), (1, 0, [(0, 300)])]:
        for a, b in segments:
            alone = butterworth(x[a:b, j, k], fps=30.0, cutoff_hz=3.0)
            np.testing.assert_allclose(y[a:b, j, k], alone, rtol=0, atol=1e-12)


def test_butterworth_short_segments_use_short_pad():
    x = np.full(40, np.nan)
    x[0] = 5.0  # single frame: unchanged
    x[5:10] = 2.0  # 5 frames, shorter than the default pad of 15: constant stays constant
    x[20:28] = 0.1 * np.arange(8)  # 8 frames of a ramp: odd padding keeps a line a line
    y = butterworth(x, fps=30.0, cutoff_hz=2.0)
    assert y[0] == 5.0
    np.testing.assert_allclose(y[5:10], 2.0, atol=1e-9)
    np.testing.assert_allclose(y[20:28], x[20:28], atol=1e-6)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x))
    ramp = 0.02 * np.arange(200.0)  # a long straight line is unchanged up to its ends
    np.testing.assert_allclose(butterworth(ramp, fps=30.0, cutoff_hz=2.0), ramp, atol=1e-9)


def test_butterworth_smooths_short_noisy_segment():
    rng = np.random.default_rng(1)
    x = 1.0 + 0.05 * rng.normal(size=12)
    y = butterworth(x, fps=30.0, cutoff_hz=2.0)
    assert np.std(y - 1.0) < 0.5 * np.std(x - 1.0)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 6])
def test_butterworth_sections_and_zero_phase_pass_match_scipy_signal(order):
    """The filter is computed without scipy.signal (0.8 s to import); scipy.signal's own
    design and zero-phase pass are the reference: the same frequency response, the same output
    to 1e-11 of the signal's size for lengths from 2 frames to 10 s, several channels."""
    from scipy import signal

    from mocap.cleanup.filters import _zero_phase, butterworth_sections

    rng = np.random.default_rng(order)
    for fps, cutoff in ((30.0, 6.0), (60.0, 3.0), (60.0, 2.0), (30.0, 12.0), (120.0, 1.5), (25.0, 8.0)):
        ours, ref = butterworth_sections(order, cutoff, fps), signal.butter(order, cutoff, btype="low", fs=fps,
                                                                             output="sos")
        assert ours.shape == ref.shape
        _, h_ours = signal.sosfreqz(ours, worN=64, fs=fps)
        _, h_ref = signal.sosfreqz(ref, worN=64, fs=fps)
        np.testing.assert_allclose(h_ours, h_ref, atol=1e-12)
        for n in (2, 3, 7, 16, 40, int(10 * fps)):
            x = rng.normal(size=(n, 5)).cumsum(0)
            pad = min(3 * (2 * len(ref) + 1), n - 1)
            want = signal.sosfiltfilt(ref, x, axis=0, padtype="odd", padlen=pad)
            np.testing.assert_allclose(_zero_phase(ours, x, pad), want, atol=1e-11 * np.abs(want).max())


def test_butterworth_rejects_bad_arguments():
    x = np.zeros(50)
    with pytest.raises(ValueError, match="Nyquist"):
        butterworth(x, fps=30.0, cutoff_hz=15.0)
    with pytest.raises(ValueError, match="Nyquist"):
        butterworth(x, fps=30.0, cutoff_hz=20.0)
    with pytest.raises(ValueError, match="cutoff_hz"):
        butterworth(x, fps=30.0, cutoff_hz=0.0)
    with pytest.raises(ValueError, match="fps"):
        butterworth(x, fps=-1.0, cutoff_hz=2.0)
    with pytest.raises(ValueError, match="order"):
        butterworth(x, fps=30.0, cutoff_hz=2.0, order=0)


# --- one-euro -----------------------------------------------------------------------------

def _alpha(cutoff: float, fps: float) -> float:
    return 1.0 / (1.0 + fps / (2 * math.pi * cutoff))


def test_one_euro_noise_reduction_matches_first_order_lowpass():
    # With beta = 0 the filter is y_t = a x_t + (1 - a) y_{t-1}. For white noise of
    # variance s^2 the stationary output variance v obeys v = a^2 s^2 + (1 - a)^2 v,
    # so v = a^2 s^2 / (1 - (1 - a)^2) = a s^2 / (2 - a): std ratio sqrt(a / (2 - a)).
    fps, min_cutoff, sigma = 60.0, 1.0, 0.02
    rng = np.random.default_rng(2)
    x = 1.5 + sigma * rng.normal(size=(20000, 50))
    y = one_euro(x, fps=fps, min_cutoff=min_cutoff, beta=0.0)
    a = _alpha(min_cutoff, fps)
    expected = math.sqrt(a / (2 - a))  # 0.223 here
    measured = np.std(y[500:] - 1.5) / sigma
    assert measured == pytest.approx(expected, rel=0.02)
    assert abs(np.mean(y[500:]) - 1.5) < 1e-3  # unit gain at DC


def test_one_euro_ramp_lag_shrinks_with_beta():
    # On x = v t the speed estimate settles at v, the cutoff at fc = min_cutoff + beta v,
    # and the steady-state lag e = x - y obeys e = (1 - a)(e + v / fps): e = (1 - a) v / (a fps).
    fps, v = 60.0, 0.5
    x = v * np.arange(1200) / fps
    lags = []
    for beta in (0.0, 0.5, 5.0):
        y = one_euro(x, fps=fps, min_cutoff=1.0, beta=beta, d_cutoff=1.0)
        a = _alpha(1.0 + beta * v, fps)
        expected = (1 - a) * v / (a * fps)
        assert x[-1] - y[-1] == pytest.approx(expected, rel=1e-6)
        lags.append(x[-1] - y[-1])
    assert lags[0] > lags[1] > lags[2] > 0
    assert lags[2] < 0.3 * lags[0]


def test_one_euro_streaming_equals_batch():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(scale=0.01, size=(200, 4, 3)), axis=0)
    x[50:55, 1] = np.nan
    x[120, 2, 0] = np.nan
    batch = one_euro(x, fps=30.0, min_cutoff=0.8, beta=2.0, d_cutoff=1.5)
    stream = OneEuroFilter(fps=30.0, min_cutoff=0.8, beta=2.0, d_cutoff=1.5)
    live = np.stack([stream(frame) for frame in x])
    np.testing.assert_array_equal(live, batch)
    assert live.shape == x.shape


def test_one_euro_is_causal():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(100, 3))
    changed = x.copy()
    changed[60:] = rng.normal(size=(40, 3)) * 10
    y = one_euro(x, fps=30.0, beta=1.0)
    y2 = one_euro(changed, fps=30.0, beta=1.0)
    np.testing.assert_array_equal(y[:60], y2[:60])
    assert not np.allclose(y[60:], y2[60:])


def test_one_euro_restarts_after_nan():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(80, 2))
    x[30:33, 0] = np.nan
    y = one_euro(x, fps=30.0, min_cutoff=1.0, beta=0.5)
    assert np.isnan(y[30:33, 0]).all()
    assert y[33, 0] == x[33, 0]  # fresh start: output = input
    np.testing.assert_array_equal(y[33:, 0], one_euro(x[33:, 0], fps=30.0, min_cutoff=1.0, beta=0.5))
    np.testing.assert_array_equal(y[:, 1], one_euro(x[:, 1], fps=30.0, min_cutoff=1.0, beta=0.5))
    assert y[0, 0] == x[0, 0]


def test_one_euro_filter_checks_shape_and_arguments():
    f = OneEuroFilter(fps=30.0)
    f(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(3))
    f.reset()
    assert f(np.ones(3)).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(fps=30.0, min_cutoff=0.0)
    with pytest.raises(ValueError, match="beta"):
        OneEuroFilter(fps=30.0, beta=-1.0)
    with pytest.raises(ValueError, match="fps"):
        one_euro(np.zeros(5), fps=0.0)


# --- fill_gaps ----------------------------------------------------------------------------

def test_fill_gaps_is_exact_on_cubic_and_linear_signals():
    t = np.arange(60, dtype=np.float64)
    cubic = 1e-4 * (t - 20) ** 3 - 2e-3 * t**2 + 0.1 * t + 1.0
    x = cubic.copy()
    x[10:17] = np.nan  # 7 frames with 2 valid frames each side: cubic, exact
    x[1] = np.nan  # only one valid frame before: linear between neighbours
    y = fill_gaps(x, fps=30.0, max_gap_s=0.5)
    np.testing.assert_allclose(y[10:17], cubic[10:17], atol=1e-12)
    assert y[1] == pytest.approx(0.5 * (cubic[0] + cubic[2]), abs=1e-15)


def test_fill_gaps_recovers_smooth_signal_within_interpolation_bound():
    # Error bound of the cubic through frames s-2, s-1, e, e+1 (e = s + n):
    # |f - p| <= max|f''''| / 4! * |(t - s + 2)(t - s + 1)(t - e)(t - e - 1)|, frame units.
    fps, freq, amp = 30.0, 0.5, 0.2
    t = np.arange(300)
    truth = amp * np.sin(2 * np.pi * freq * t / fps + 0.3)
    omega = 2 * np.pi * freq / fps  # rad per frame
    x = truth.copy()
    gaps = [(40, 43), (100, 107), (200, 215)]  # 3, 7 and 15 frames; 15 = 0.5 s
    for a, b in gaps:
        x[a:b] = np.nan
    y = fill_gaps(x, fps=fps, max_gap_s=0.5)
    for a, b in gaps:
        tt = np.arange(a, b)
        bound = amp * omega**4 / 24 * np.abs((tt - a + 2) * (tt - a + 1) * (tt - b) * (tt - b - 1))
        err = np.abs(y[a:b] - truth[a:b])
        assert np.all(err <= bound + 1e-12)
    assert np.max(np.abs(y[40:43] - truth[40:43])) < 1e-3 * amp  # short gap: < 0.1 % of amplitude
    np.testing.assert_array_equal(y[:40], truth[:40])


def test_fill_gaps_leaves_long_gaps_nan_and_respects_the_limit():
    fps = 30.0
    x = np.linspace(0.0, 1.0, 100)
    x[10:25] = np.nan  # 15 frames = floor(0.5 * 30): filled
    x[50:66] = np.nan  # 16 frames: left NaN
    y = fill_gaps(x, fps=fps, max_gap_s=0.5)
    assert np.isfinite(y[10:25]).all()
    np.testing.assert_allclose(y[10:25], np.linspace(0.0, 1.0, 100)[10:25], atol=1e-12)
    assert np.isnan(y[50:66]).all()
    assert np.isfinite(np.delete(y, np.arange(50, 66))).all()


def test_fill_gaps_holds_short_ends_and_drops_long_ones():
    x = np.arange(40, dtype=np.float64)
    x[:3] = np.nan
    x[-5:] = np.nan
    y = fill_gaps(x, fps=10.0, max_gap_s=0.4)  # up to 4 frames
    np.testing.assert_array_equal(y[:3], [3.0, 3.0, 3.0])
    assert np.isnan(y[-5:]).all()
    assert np.isnan(fill_gaps(np.full(10, np.nan), fps=10.0)).all()


def test_fill_gaps_uses_confidence_per_joint():
    fps = 30.0
    t = np.arange(90) / fps
    truth = np.stack([np.sin(t), np.cos(t), t], axis=-1)[:, None, :].repeat(2, axis=1)  # (T, 2, 3)
    x = truth.copy()
    conf = np.ones((90, 2))
    x[20:24, 0] = 99.0  # junk with low confidence: replaced
    conf[20:24, 0] = 0.1
    x[40:70, 1] = -5.0  # junk over 1 s: becomes NaN
    conf[40:70, 1] = 0.0
    conf[80, 1] = np.nan  # NaN confidence counts as missing, filled
    y = fill_gaps(x, fps=fps, confidence=conf, min_confidence=0.3, max_gap_s=0.5)
    np.testing.assert_allclose(y[20:24, 0], truth[20:24, 0], atol=1e-5)
    assert np.isnan(y[40:70, 1]).all()
    np.testing.assert_allclose(y[80, 1], truth[80, 1], atol=1e-6)
    np.testing.assert_array_equal(y[:20], truth[:20])
    assert x[20, 0, 0] == 99.0  # input untouched


def test_fill_gaps_rejects_bad_arguments():
    x = np.zeros((10, 3, 3))
    with pytest.raises(ValueError, match="confidence"):
        fill_gaps(x, fps=30.0, confidence=np.ones((10, 2)))
    with pytest.raises(ValueError, match="max_gap_s"):
        fill_gaps(x, fps=30.0, max_gap_s=-1.0)
    with pytest.raises(ValueError, match="fps"):
        fill_gaps(x, fps=0.0)


def test_hold_nearest_fills_with_nearest_in_time():
    from mocap.cleanup.filters import hold_nearest

    x = np.array([np.nan, 1.0, np.nan, np.nan, np.nan, 5.0, np.nan])[:, None]
    y = hold_nearest(np.hstack([x, np.full_like(x, np.nan)]))
    np.testing.assert_array_equal(y[:, 0], [1, 1, 1, 1, 5, 5, 5])  # tie at frame 3 goes to the earlier frame
    assert np.isnan(y[:, 1]).all()  # nothing to hold
