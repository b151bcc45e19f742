"""Smoothness-priors detrending and zero-phase Butterworth band-pass (numpy/scipy).

These are the per-video evaluation steps of rPPG-Toolbox (evaluation.md steps 2–3).
All functions work on the last axis of `[..., T]` arrays and return float64.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.linalg
import scipy.signal

from ienet_jax.signal.checks import as_signal, check_band, check_fs

# Second-difference stencil: row i of D₂ is [1, -2, 1] at columns i, i+1, i+2.
_D2 = np.array([1.0, -2.0, 1.0])


@functools.lru_cache(maxsize=64)
def _detrend_bands(n: int, lam: float) -> np.ndarray:
    """`I + λ² D₂ᵀD₂` in `scipy.linalg.solveh_banded` upper form `[3, n]`."""
    rows = n - 2
    diag = np.zeros(n)
    off1 = np.zeros(n - 1)  # entries (j, j + 1)
    off2 = np.zeros(n - 2)  # entries (j, j + 2)
    for a in range(3):  # accumulate D₂ᵀD₂ stencil products; 3 fixed offsets, not a time loop
        diag[a : a + rows] += _D2[a] ** 2
        if a < 2:
            off1[a : a + rows] += _D2[a] * _D2[a + 1]
    off2[:rows] += _D2[0] * _D2[2]
    lam2 = float(lam) ** 2
    ab = np.zeros((3, n))
    ab[2] = 1.0 + lam2 * diag
    ab[1, 1:] = lam2 * off1
    ab[0, 2:] = lam2 * off2
    ab.setflags(write=False)
    return ab


def detrend(x, lam: float = 100.0) -> np.ndarray:
    """Smoothness-priors detrending (Tarvainen et al. 2002) along the last axis.

    Returns `x − (I + λ² D₂ᵀD₂)⁻¹ x` for `x` `[..., T]` (T ≥ 3), D₂ the `(T−2)×T`
    second-difference matrix, as rPPG-Toolbox's `_detrend`, but solved as a banded
    symmetric positive-definite system (O(T)) instead of a dense inverse (O(T³)).
    """
    x = as_signal(x, "x", min_length=3)
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"detrend lambda must be finite and >= 0, got {lam}")
    n = x.shape[-1]
    rhs = x.reshape(-1, n).T  # [T, M]: one right-hand side per signal
    trend = scipy.linalg.solveh_banded(_detrend_bands(n, float(lam)), rhs, check_finite=False)
    return x - trend.T.reshape(x.shape)


def butter_bandpass(fs: float, low: float, high: float, order: int) -> tuple:
    """Butterworth band-pass `(b, a)` exactly as rPPG-Toolbox builds it (edges in Hz)."""
    fs = check_fs(fs)
    check_band(fs, low, high)
    if int(order) != order or order < 1:
        raise ValueError(f"filter order must be a positive integer, got {order}")
    return scipy.signal.butter(int(order), [low / fs * 2, high / fs * 2], btype="bandpass")


def filtfilt_padlen(b: np.ndarray, a: np.ndarray) -> int:
    """scipy `filtfilt`'s default edge padding, `3 · max(len(a), len(b))` samples."""
    return 3 * max(len(a), len(b))


def bandpass(x, fs, low: float = 0.6, high: float = 3.3, order: int = 1) -> np.ndarray:
    """Zero-phase Butterworth band-pass of `x` `[..., T]` (fs, low, high in Hz).

    `scipy.signal.filtfilt` with its default padding (odd extension of
    `3 · max(len(a), len(b))` samples), so `T` must exceed that (9 for order 1).
    """
    b, a = butter_bandpass(fs, low, high, order)
    padlen = filtfilt_padlen(b, a)
    x = as_signal(x, "x")
    if x.shape[-1] <= padlen:
        raise ValueError(
            f"signal of {x.shape[-1]} samples is too short for the order-{order} "
            f"{low}-{high} Hz band-pass: filtfilt pads {padlen} samples, need T > {padlen}"
        )
    return scipy.signal.filtfilt(b, a, x, axis=-1)
