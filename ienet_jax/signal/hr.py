"""Heart rate, SNR and MACC of a filtered pulse signal, as rPPG-Toolbox computes them.

numpy/scipy, batched over leading axes: `x` `[..., T]` → `[...]` (a Python float for a
1-D input). Frequencies in Hz, heart rates in bpm.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
from absl import logging

from ienet_jax.signal.checks import as_pair, as_signal, check_band, check_fs

# rPPG-Toolbox's SNR window around the label HR and its second harmonic: ±6 bpm.
SNR_HALF_WIDTH_HZ = 6.0 / 60.0


def next_pow2(n: int) -> int:
    """Smallest power of two ≥ `n` (1 for 0), the toolbox's `_next_power_of_2`."""
    return 1 if n == 0 else 2 ** (int(n) - 1).bit_length()


def fft_resolution_bpm(length: int, fs) -> float:
    """Spacing of the FFT-HR grid in bpm: `60 · fs / next_pow2(length)` (3.5 at 30 fps, 10 s)."""
    return 60.0 * check_fs(fs) / next_pow2(length)


def periodogram(x, fs) -> tuple[np.ndarray, np.ndarray]:
    """Boxcar periodogram, no detrending, `nfft = next_pow2(T)`: `(f [F] Hz, pxx [..., F])`."""
    fs = check_fs(fs)
    x = as_signal(x, "x")
    return scipy.signal.periodogram(
        x, fs=fs, nfft=next_pow2(x.shape[-1]), detrend=False, axis=-1
    )


def _scalar_or_array(values: np.ndarray, ndim: int):
    return float(values) if ndim == 1 else values


def _band_mask(f: np.ndarray, low: float, high: float, n: int, fs: float) -> np.ndarray:
    mask = (f >= low) & (f <= high)
    if not mask.any():
        raise ValueError(
            f"no periodogram bin lies within {low}-{high} Hz for a {n}-sample signal at "
            f"fs={fs} Hz (bin spacing {fs / next_pow2(n):.3f} Hz): signal too short"
        )
    return mask


def fft_hr(x, fs, low: float = 0.6, high: float = 3.3):
    """FFT heart rate (bpm) of `x` `[..., T]`: arg-max periodogram bin within [low, high] Hz.

    Resolution is `fft_resolution_bpm(T, fs)`; the result always lies on that grid.
    """
    fs = check_fs(fs)
    check_band(fs, low, high)
    x = as_signal(x, "x", min_length=2)
    f, pxx = periodogram(x, fs)
    mask = _band_mask(f, low, high, x.shape[-1], fs)
    hr = f[mask][np.argmax(pxx[..., mask], axis=-1)] * 60.0
    return _scalar_or_array(hr, x.ndim)


def peak_hr(x, fs):
    """Peak-detection heart rate (bpm) of `x` `[..., T]`: `60 / mean peak interval`.

    Peaks are `scipy.signal.find_peaks` with no constraints (the toolbox's choice), so
    apply it to a band-passed signal. Fewer than two peaks raises a ValueError.
    """
    fs = check_fs(fs)
    x = as_signal(x, "x", min_length=3)
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty(len(rows))
    for i, row in enumerate(rows):  # find_peaks is 1-D; per-signal loop outside any jit
        peaks, _ = scipy.signal.find_peaks(row)
        if len(peaks) < 2:
            raise ValueError(
                f"signal {i} has {len(peaks)} peak(s); peak HR needs at least two"
            )
        out[i] = 60.0 / (np.mean(np.diff(peaks)) / fs)
    return _scalar_or_array(out.reshape(x.shape[:-1]), x.ndim)


def snr_db(pred, hr_label, fs, low: float = 0.6, high: float = 3.3):
    """SNR (dB) of `pred` `[..., T]` around the label heart rate `hr_label` `[...]` (bpm).

    As rPPG-Toolbox `_calculate_SNR`: periodogram power within ±0.1 Hz of the label HR
    and of its second harmonic, over the power of the remaining bins in [low, high] Hz,
    converted with the toolbox's `mag2db`, i.e. `20 · log10(ratio)` (note: 20, not 10,
    although the ratio is of powers — kept so numbers compare). 0 when the remainder has
    no power (the toolbox's choice).
    """
    fs = check_fs(fs)
    check_band(fs, low, high)
    pred = as_signal(pred, "pred", min_length=2)
    hr = np.asarray(hr_label, dtype=np.float64)
    if not np.all(np.isfinite(hr)) or np.any(hr <= 0):
        raise ValueError(f"hr_label must be positive finite bpm, got {hr_label}")
    try:
        hr = np.broadcast_to(hr, pred.shape[:-1])
    except ValueError:
        raise ValueError(
            f"hr_label shape {hr.shape} does not match pred batch shape {pred.shape[:-1]}"
        ) from None
    f, pxx = periodogram(pred, fs)
    f1 = (hr / 60.0)[..., None]
    near1 = (f >= f1 - SNR_HALF_WIDTH_HZ) & (f <= f1 + SNR_HALF_WIDTH_HZ)
    near2 = (f >= 2 * f1 - SNR_HALF_WIDTH_HZ) & (f <= 2 * f1 + SNR_HALF_WIDTH_HZ)
    rest = (f >= low) & (f <= high) & ~near1 & ~near2
    signal = np.sum(pxx * near1, axis=-1) + np.sum(pxx * near2, axis=-1)
    noise = np.sum(pxx * rest, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(noise != 0, 20.0 * np.log10(signal / np.where(noise != 0, noise, 1)), 0.0)
    if not np.all(np.isfinite(snr)):
        raise ValueError("SNR is -inf: pred has no power near the label HR or its harmonic")
    return _scalar_or_array(snr, pred.ndim)


def macc(pred, label):
    """Maximum amplitude of cross-correlation of `pred` and `label` `[..., T]` → `[...]`.

    As rPPG-Toolbox `_compute_macc`: `max over lag = 0 … T−2 of |corrcoef(pred,
    roll(label, lag))|`, i.e. the largest absolute Pearson correlation over *circular*
    shifts of the label. Computed for all lags at once with an FFT (O(T log T)). A
    constant signal has no defined correlation: its MACC is reported as 0 (logged).
    """
    p, lab = as_pair(pred, label, min_length=2)
    n = p.shape[-1]
    pc = p - p.mean(axis=-1, keepdims=True)
    lc = lab - lab.mean(axis=-1, keepdims=True)
    # xcorr[k] = Σ_t pc[t] · lc[t − k mod n] = Σ_t pc[t] · roll(lc, k)[t]
    xcorr = np.fft.irfft(np.fft.rfft(pc, axis=-1) * np.conj(np.fft.rfft(lc, axis=-1)), n=n)
    norm = np.sqrt(np.sum(pc * pc, axis=-1) * np.sum(lc * lc, axis=-1))
    degenerate = norm == 0
    if np.any(degenerate):
        logging.warning("macc: %d constant signal(s); their MACC is set to 0", degenerate.sum())
    best = np.max(np.abs(xcorr[..., : n - 1]), axis=-1)
    out = np.where(degenerate, 0.0, best / np.where(degenerate, 1.0, norm))
    return _scalar_or_array(out, p.ndim)
