"""Label alignment and clip heart rates (numpy only).

Times are seconds on the video's clock (`ienet_jax.video.clock`); signals are 1-D float
arrays. Clips start at `ienet_jax.eval.stitch.clip_starts`.
"""

from __future__ import annotations

import numpy as np

from ienet_jax.video.clock import mean_rate, resample


def span_times(n: int, start: float, end: float) -> np.ndarray:
    """`[n]` times spread evenly over `[start, end]` s (for labels given without a rate)."""
    return np.linspace(start, end, n) if n > 1 else np.full(n, start, dtype=np.float64)


def interval_centres(n: int, start: float, end: float) -> np.ndarray:
    """Times of `n` per-interval values (e.g. VIPL-HR's one-per-second `gt_HR.csv`) over
    `[start, end]` s: the middle of each second when `n` is within 1.5 of the span in
    seconds, else the centres of `n` equal intervals."""
    if abs(n - (end - start)) <= 1.5:
        return start + 0.5 + np.arange(n, dtype=np.float64)
    return start + (np.arange(n) + 0.5) * (end - start) / max(n, 1)


def check_finite(values: np.ndarray, what: str) -> None:
    """Raises ValueError if `values` hold NaN/inf (naming `what`, e.g. the label file)."""
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(f"{what}: {int(bad.sum())} NaN/inf values (first at sample {first})")


def spectral_hr(x: np.ndarray, fs: float, low_bpm: float = 40.0, high_bpm: float = 180.0,
                step_bpm: float = 0.05) -> float:
    """HR (bpm) of `x` `[T]`: peak of the Hann-windowed DFT power on a fine bpm grid.

    The signal is linearly detrended; evaluating the DFT at arbitrary frequencies avoids
    the FFT's bin quantisation (`60 fs / T` bpm, 14 bpm for 128 frames at 30 fps).
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.arange(len(x))
    x = x - np.polyval(np.polyfit(t, x, 1), t)
    xw = x * np.hanning(len(x))
    bpm = np.arange(low_bpm, high_bpm + step_bpm / 2, step_bpm)
    phase = np.exp(-2j * np.pi * np.outer(bpm / 60.0 / fs, t))  # [K, T]
    power = np.abs(phase @ xw) ** 2
    k = int(np.argmax(power))
    if 0 < k < len(bpm) - 1:  # parabolic refinement between grid points
        a, b, c = power[k - 1:k + 2]
        denom = a - 2 * b + c
        if denom < 0:
            return float(bpm[k] + 0.5 * step_bpm * (a - c) / denom)
    return float(bpm[k])


def series_hr(hr: np.ndarray, hr_times: np.ndarray, clip_times: np.ndarray) -> float:
    """Mean of the provided HR series (bpm) over the clip's frames (linear interpolation)."""
    return float(np.mean(resample(hr, hr_times, clip_times)))


def beat_times(signal: np.ndarray, times: np.ndarray, max_bpm: float = 200.0) -> np.ndarray:
    """Times (s) of the heartbeats (systolic peaks) of a pulse `signal` `[L]` at `times` `[L]`.

    The signal is resampled onto a uniform grid at its mean rate, band-passed (Butterworth
    order 2, 0.5–4 Hz, zero phase) and its peaks found at least `60 / max_bpm` s apart with
    a prominence of a third of the signal's robust amplitude, refined between samples by a
    parabola. Returns `[K]` increasing times; fewer than two beats returns what was found.
    """
    from scipy import signal as sps

    times = np.asarray(times, dtype=np.float64)
    fs = mean_rate(times)
    grid = np.linspace(times[0], times[-1], len(times))
    x = resample(np.asarray(signal, dtype=np.float64), times, grid)
    high = min(4.0, 0.45 * fs)
    b, a = sps.butter(2, [0.5, high], btype="bandpass", fs=fs)
    if len(x) <= 3 * max(len(a), len(b)):
        return np.zeros(0)
    y = sps.filtfilt(b, a, x)
    amplitude = np.subtract(*np.percentile(y, [95, 5]))
    peaks, _ = sps.find_peaks(y, distance=max(1, int(fs * 60.0 / max_bpm)),
                              prominence=amplitude / 3.0)
    peaks = peaks[(peaks > 0) & (peaks < len(y) - 1)]
    a_, b_, c_ = y[peaks - 1], y[peaks], y[peaks + 1]
    denom = a_ - 2 * b_ + c_
    shift = np.where(denom < 0, 0.5 * (a_ - c_) / np.where(denom < 0, denom, -1.0), 0.0)
    return grid[0] + (peaks + np.clip(shift, -0.5, 0.5)) / fs


def beats_hr(beats: np.ndarray, start: float, end: float, min_bpm: float = 35.0,
             max_bpm: float = 200.0) -> float | None:
    """Mean HR (bpm) over `[start, end]` s from heartbeat times `beats` `[K]`.

    The beat phase is interpolated linearly between beats (one cycle per interval) and
    extrapolated by the nearest interval at the ends: HR = 60 · Δphase / (end − start).
    None when the beats do not cover the span or an interval is outside [min, max] bpm.
    """
    inside = np.flatnonzero((beats >= start) & (beats <= end))
    if len(inside) == 0:
        return None
    lo, hi = max(inside[0] - 1, 0), min(inside[-1] + 1, len(beats) - 1)
    local = beats[lo:hi + 1]
    if len(local) < 2:
        return None
    intervals = np.diff(local)
    if intervals.min() < 60.0 / max_bpm or intervals.max() > 60.0 / min_bpm:
        return None
    phase = np.interp([start, end], local, np.arange(len(local), dtype=np.float64),
                      left=np.nan, right=np.nan)
    # Extrapolate with the first/last interval where the span reaches past the beats.
    if np.isnan(phase[0]):
        phase[0] = (start - local[0]) / intervals[0]
    if np.isnan(phase[1]):
        phase[1] = len(local) - 1 + (end - local[-1]) / intervals[-1]
    if (local[0] - start) > intervals[0] * 1.5 or (end - local[-1]) > intervals[-1] * 1.5:
        return None  # a missed beat at an edge
    return float(60.0 * (phase[1] - phase[0]) / (end - start))
