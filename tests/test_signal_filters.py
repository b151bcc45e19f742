"""Detrending and band-pass filtering (ienet_jax.signal.filters)."""

import numpy as np
import pytest
import scipy.signal

from ienet_jax.signal import bandpass, detrend


def dense_detrend(x, lam):
    """Reference: x − (I + λ² D₂ᵀD₂)⁻¹ x with explicit dense matrices (float64)."""
    n = x.shape[-1]
    d2 = np.zeros((n - 2, n))
    for i in range(n - 2):
        d2[i, i : i + 3] = [1.0, -2.0, 1.0]
    a = np.eye(n) + lam**2 * d2.T @ d2
    return x - np.linalg.solve(a, x.reshape(-1, n).T).T.reshape(x.shape)


@pytest.mark.parametrize("n", [3, 4, 5, 17, 128, 301])
@pytest.mark.parametrize("lam", [1.0, 100.0])
def test_detrend_matches_dense_solve(n, lam):
    x = np.random.default_rng(n).standard_normal((2, 3, n)) * 5 + 3
    np.testing.assert_allclose(detrend(x, lam), dense_detrend(x, lam), rtol=0, atol=1e-6)


def test_detrend_1d_equals_batched_rows():
    x = np.random.default_rng(0).standard_normal((4, 200))
    batched = detrend(x)
    for row, out in zip(x, batched):
        np.testing.assert_allclose(detrend(row), out, atol=1e-12)


def test_detrend_removes_linear_trend_exactly():
    t = np.arange(500.0)
    # D₂ annihilates a line, so the smoother returns it unchanged and nothing is left.
    np.testing.assert_allclose(detrend(3.0 + 0.2 * t), 0.0, atol=1e-8)


def test_detrend_keeps_fast_oscillation():
    t = np.arange(600) / 30.0
    pulse = np.sin(2 * np.pi * 1.5 * t)
    out = detrend(pulse + 0.05 * t**2)
    assert np.max(np.abs(out[50:-50] - pulse[50:-50])) < 0.05


def test_bandpass_is_toolbox_filtfilt():
    x = np.random.default_rng(1).standard_normal(300)
    b, a = scipy.signal.butter(1, [0.6 / 30 * 2, 3.3 / 30 * 2], btype="bandpass")
    np.testing.assert_allclose(bandpass(x, 30.0), scipy.signal.filtfilt(b, a, x), atol=1e-12)


def test_bandpass_passes_band_and_is_zero_phase():
    fs = 30.0
    t = np.arange(1200) / fs
    inband = np.sin(2 * np.pi * 1.8 * t)
    out = bandpass(inband + 2.0 * np.sin(2 * np.pi * 0.05 * t) + np.sin(2 * np.pi * 12 * t), fs)
    mid = slice(300, -300)
    # Zero phase: the output stays aligned with the in-band component.
    assert np.corrcoef(out[mid], inband[mid])[0, 1] > 0.98
    assert np.max(np.abs(out[mid] - inband[mid])) < 0.35


def test_bandpass_batched_along_last_axis():
    x = np.random.default_rng(2).standard_normal((3, 100))
    out = bandpass(x, 25.0, 0.75, 3.0)
    np.testing.assert_allclose(out[1], bandpass(x[1], 25.0, 0.75, 3.0), atol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: detrend(np.ones(2)), "at least 3"),
        (lambda: detrend(np.float64(1.0)), "time axis"),
        (lambda: detrend(np.array([1.0, np.nan, 2.0, 3.0])), "NaN or inf"),
        (lambda: detrend(np.ones(10), lam=-1.0), "lambda"),
        (lambda: bandpass(np.ones(9), 30.0), "too short"),
        (lambda: bandpass(np.ones(100), 0.0), "positive"),
        (lambda: bandpass(np.ones(100), 6.0), "Nyquist"),
        (lambda: bandpass(np.ones(100), 30.0, low=3.0, high=1.0), "low < high"),
        (lambda: bandpass(np.ones(100), 30.0, order=0), "order"),
        (lambda: bandpass(np.r_[np.ones(99), np.inf], 30.0), "NaN or inf"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
