"""Input validation shared by the numpy signal functions: clear errors, never a silent NaN."""

from __future__ import annotations

import numpy as np


def as_signal(x, name: str = "x", *, min_length: int = 1) -> np.ndarray:
    """`x` as a float64 array `[..., T]`; raises if it is 0-d, too short or not finite."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 1:
        raise ValueError(f"{name} must have a time axis ([..., T]), got a scalar")
    if arr.shape[-1] < min_length:
        raise ValueError(
            f"{name} has {arr.shape[-1]} samples on its last (time) axis; "
            f"at least {min_length} are needed"
        )
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise ValueError(f"{name} contains NaN or inf (first at index {bad})")
    return arr


def as_pair(pred, label, *, min_length: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Validate a prediction/label pair of identical shape `[..., T]`."""
    p = as_signal(pred, "pred", min_length=min_length)
    lab = as_signal(label, "label", min_length=min_length)
    if p.shape != lab.shape:
        raise ValueError(f"pred and label shapes differ: {p.shape} vs {lab.shape}")
    return p, lab


def check_fs(fs) -> float:
    """A positive finite scalar sampling rate (Hz)."""
    arr = np.asarray(fs, dtype=np.float64)
    if arr.ndim != 0:
        raise ValueError(f"fs must be a scalar sampling rate in Hz, got shape {arr.shape}")
    value = float(arr)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"fs must be a positive finite sampling rate in Hz, got {fs}")
    return value


def check_band(fs: float, low: float, high: float) -> None:
    """`0 < low < high < fs / 2` (Hz), else a ValueError naming the band and the rate."""
    if not 0 < low < high:
        raise ValueError(f"band must satisfy 0 < low < high, got low={low} Hz, high={high} Hz")
    if high >= fs / 2:
        raise ValueError(
            f"band upper edge {high} Hz is not below the Nyquist frequency {fs / 2} Hz "
            f"(fs={fs} Hz)"
        )
