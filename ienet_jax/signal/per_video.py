"""The per-video evaluation pipeline of rPPG-Toolbox (evaluation.md, "toolbox mode").

pred/label signals `[..., T]` → (cumsum if derivatives) → detrend λ=100 → Butterworth
order 1, 0.6–3.3 Hz, zero-phase → FFT (or peak) heart rate in bpm; SNR and MACC of the
filtered prediction. numpy/scipy, float64; batched over leading axes.
"""

from __future__ import annotations

import numpy as np

from ienet_jax.signal.checks import as_pair, as_signal, check_fs
from ienet_jax.signal.filters import bandpass, detrend
from ienet_jax.signal.hr import fft_hr, macc, peak_hr, snr_db

DETREND_LAMBDA = 100.0
BAND_HZ = (0.6, 3.3)
BAND_ORDER = 1
HR_METHODS = ("fft", "peak")
# The toolbox skips evaluation windows shorter than filtfilt's padding of 9 samples.
MIN_WINDOW = 9


def filter_signal(x, fs, *, diff: bool = False) -> np.ndarray:
    """Steps 1–3 for a signal `[..., T]` (T ≥ 3): cumsum if `diff`, detrend, band-pass."""
    fs = check_fs(fs)
    x = as_signal(x, "x", min_length=3)
    if diff:
        x = np.cumsum(x, axis=-1)
    return bandpass(detrend(x, DETREND_LAMBDA), fs, *BAND_HZ, order=BAND_ORDER)


def filter_pair(pred, label, fs, *, diff: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`filter_signal` of a pred/label pair `[..., T]`."""
    pred, label = as_pair(pred, label, min_length=3)
    return filter_signal(pred, fs, diff=diff), filter_signal(label, fs, diff=diff)


def _hr(x: np.ndarray, fs: float, method: str):
    if method == "fft":
        return fft_hr(x, fs, *BAND_HZ)
    if method == "peak":
        return peak_hr(x, fs)
    raise ValueError(f"HR method must be one of {HR_METHODS}, got {method!r}")


def hr_from_signals(pred, label, fs, *, diff: bool = False, method: str = "fft"):
    """`(hr_pred, hr_label)` in bpm for pred/label signals `[..., T]` at `fs` Hz.

    Floats for 1-D inputs, arrays `[...]` otherwise. `diff=True` for derivative
    ("DiffNormalized") signals; `method` is "fft" (periodogram arg-max, resolution
    `fft_resolution_bpm(T, fs)`) or "peak" (60 / mean peak interval).
    """
    if method not in HR_METHODS:
        raise ValueError(f"HR method must be one of {HR_METHODS}, got {method!r}")
    fs = check_fs(fs)
    p, lab = filter_pair(pred, label, fs, diff=diff)
    return _hr(p, fs, method), _hr(lab, fs, method)


def evaluate_video(pred, label, fs, *, diff: bool = False, method: str = "fft") -> dict:
    """rPPG-Toolbox's `calculate_metric_per_video`: `{hr_pred, hr_label, snr, macc}`.

    SNR (dB, toolbox convention, see `snr_db`) is of the filtered prediction around the
    label HR of the same `method`; MACC is of the filtered pair. Values are floats for 1-D
    inputs, arrays `[...]` otherwise.
    """
    if method not in HR_METHODS:
        raise ValueError(f"HR method must be one of {HR_METHODS}, got {method!r}")
    fs = check_fs(fs)
    p, lab = filter_pair(pred, label, fs, diff=diff)
    hr_label = _hr(lab, fs, method)
    return {
        "hr_pred": _hr(p, fs, method),
        "hr_label": hr_label,
        "snr": snr_db(p, hr_label, fs, *BAND_HZ),
        "macc": macc(p, lab),
    }


def evaluation_windows(length: int, fs, window_seconds: float | None) -> list[slice]:
    """Consecutive windows of `window_seconds · fs` frames over a `length`-frame video.

    As rPPG-Toolbox: `None` (or a window longer than the video) gives the whole video;
    the last, shorter window is kept unless it has fewer than 9 frames (then dropped).
    """
    fs = check_fs(fs)
    if window_seconds is None:
        size = length
    else:
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be > 0, got {window_seconds}")
        size = min(int(round(window_seconds * fs)), length)
    if size < 1:
        raise ValueError(f"no frames to evaluate: length={length}, window={window_seconds} s")
    return [
        slice(i, min(i + size, length))
        for i in range(0, length, size)
        if min(i + size, length) - i >= MIN_WINDOW
    ]
