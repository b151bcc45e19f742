"""Unsupervised rPPG baselines GREEN, CHROM and POS from per-frame mean RGB.

Each follows rPPG-Toolbox's implementation (`GREEN`, `CHROME_DEHAAN`, `POS_WANG`) and
takes `rgb_means` `[T, 3]` or `[B, T, 3]` (R, G, B order, any positive scale), returning
a float64 numpy pulse signal `[T']` / `[B, T']`.

Where the work runs:
- The sliding-window core of POS and CHROM runs in JAX, jitted and vectorised: windows
  are gathered with an index array, overlap-add is a scatter-add / block sum, and CHROM's
  per-window `filtfilt` is a constant matrix (scipy's filtfilt applied to the identity,
  so it is exact). The time axis is padded to a bucketed length (≤ 12.5 % waste) and
  the padded windows masked, so videos of many lengths share few compilations.
- POS's post-filter (detrend λ=100, then band-pass 0.75–3 Hz order 1) runs in numpy:
  the banded detrend and scipy `filtfilt` of `ienet_jax.signal.filters`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from ienet_jax.signal.checks import check_band, check_fs
from ienet_jax.signal.filters import bandpass, detrend, filtfilt_padlen

WINDOW_SECONDS = 1.6
# POS projection onto the plane orthogonal to skin tone (Wang et al. 2017).
POS_PROJECTION = ((0.0, 1.0, -1.0), (-2.0, 1.0, 1.0))
POS_BAND_HZ = (0.75, 3.0)
CHROM_BAND_HZ = (0.7, 2.5)
CHROM_ORDER = 3


def _as_rgb(rgb_means) -> tuple[np.ndarray, bool]:
    """`[T, 3]` or `[B, T, 3]` → finite float32 numpy `[B, T, 3]`, and whether it was unbatched."""
    arr = np.asarray(rgb_means, dtype=np.float64)
    if arr.ndim not in (2, 3) or arr.shape[-1] != 3:
        raise ValueError(f"rgb_means must be [T, 3] or [B, T, 3], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("rgb_means contains NaN or inf")
    single = arr.ndim == 2
    return (arr[None] if single else arr).astype(np.float32), single


def _bucket(n: int) -> int:
    """Padded length for `n` frames: next power of two up to 256, then steps of 1/8 octave."""
    if n <= 256:
        return max(16, 1 << (n - 1).bit_length())
    step = 1 << (n.bit_length() - 4)
    return -(-n // step) * step


def _pad_time(rgb: np.ndarray, length: int) -> jnp.ndarray:
    """Edge-pad `[B, T, 3]` to `length` frames in numpy (an eager jnp.pad compiles per T)."""
    return jnp.asarray(np.pad(rgb, ((0, 0), (0, length - rgb.shape[1]), (0, 0)), mode="edge"))


def _finite_or_raise(x: np.ndarray, method: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{method} produced non-finite values: a 1.6 s window of rgb_means has a zero "
            "mean channel or no chrominance variation (constant input?)"
        )
    return x


def green(rgb_means, fs) -> np.ndarray:
    """GREEN (Verkruysse et al. 2008): the raw mean green channel `[T]` / `[B, T]`.

    As rPPG-Toolbox, no filtering here; the evaluation pipeline detrends and band-passes.
    `fs` (Hz) is only validated, for a uniform signature.
    """
    check_fs(fs)
    rgb, single = _as_rgb(rgb_means)
    out = rgb[..., 1].astype(np.float64)
    return out[0] if single else out


@functools.partial(jax.jit, static_argnames="win")
def _pos_overlap_add(rgb: jnp.ndarray, n_windows: jnp.ndarray, win: int) -> jnp.ndarray:
    """POS core: `[B, Tp, 3]` → overlap-added pulse `[B, Tp]`; windows ≥ `n_windows` masked."""
    tp = rgb.shape[1]
    starts = jnp.arange(tp - win)
    idx = starts[:, None] + jnp.arange(win)[None, :]  # [W, win]
    # Channel-first and the projection written out: 8x faster on CPU than [B, W, win, 3]
    # windows contracted with an einsum.
    windows = jnp.moveaxis(rgb, -1, 0)[:, :, idx]  # [3, B, W, win]
    cn = windows / jnp.mean(windows, axis=-1, keepdims=True)
    s1, s2 = (sum(w * cn[c] for c, w in enumerate(row) if w) for row in POS_PROJECTION)
    ratio = jnp.std(s1, axis=-1) / jnp.std(s2, axis=-1)  # population std, as numpy
    h = s1 + ratio[..., None] * s2
    h = h - jnp.mean(h, axis=-1, keepdims=True)
    h = jnp.where((starts < n_windows)[None, :, None], h, 0.0)
    return jnp.zeros(rgb.shape[:2], h.dtype).at[:, idx].add(h)


def pos(rgb_means, fs) -> np.ndarray:
    """POS (Wang et al. 2017) as rPPG-Toolbox's `POS_WANG`: pulse `[T]` / `[B, T]` (float64).

    Windows of `l = ceil(1.6 · fs)` frames start at `m = 0 … T−l−1` (the toolbox's range,
    so the last frame is in no window), each channel divided by its window mean,
    projected with `[[0, 1, −1], [−2, 1, 1]]`, combined `S1 + (σ1/σ2)·S2`, centred and
    overlap-added; then detrend (λ=100) and band-pass 0.75–3 Hz order 1 (numpy).
    """
    fs = check_fs(fs)
    check_band(fs, *POS_BAND_HZ)
    rgb, single = _as_rgb(rgb_means)
    n = rgb.shape[1]
    win = math.ceil(WINDOW_SECONDS * fs)
    if n <= win:
        raise ValueError(
            f"POS needs more than {win} frames (1.6 s at fs={fs} Hz), got {n}"
        )
    padded = _pad_time(rgb, max(_bucket(n), n + 1))
    h = np.asarray(_pos_overlap_add(padded, jnp.int32(n - win), win), np.float64)[:, :n]
    h = _finite_or_raise(h, "POS")
    out = bandpass(detrend(h, 100.0), fs, *POS_BAND_HZ, order=1)
    return out[0] if single else out


@functools.lru_cache(maxsize=32)
def _filtfilt_matrix(fs: float, win: int) -> np.ndarray:
    """`[win, win]` matrix M with `filtfilt(b, a, x) == M @ x` for CHROM's band-pass."""
    nyquist = 1 / 2 * fs  # the toolbox's expression, for bit-identical coefficients
    b, a = scipy.signal.butter(
        CHROM_ORDER, [CHROM_BAND_HZ[0] / nyquist, CHROM_BAND_HZ[1] / nyquist], "bandpass"
    )
    if win <= filtfilt_padlen(b, a):
        raise ValueError(
            f"CHROM window of {win} frames at fs={fs} Hz is too short for its order-"
            f"{CHROM_ORDER} band-pass (filtfilt pads {filtfilt_padlen(b, a)} samples)"
        )
    return scipy.signal.filtfilt(b, a, np.eye(win), axis=0).astype(np.float32)


@functools.partial(jax.jit, static_argnames="half")
def _chrom_overlap_add(
    rgb: jnp.ndarray, n_windows: jnp.ndarray, filt: jnp.ndarray, hann: jnp.ndarray, half: int
) -> jnp.ndarray:
    """CHROM core: `[B, Tp, 3]` (Tp a multiple of `half`) → `[B, Tp]`; windows masked."""
    b, tp, _ = rgb.shape
    blocks = rgb.reshape(b, tp // half, half, 3)
    windows = jnp.concatenate([blocks[:, :-1], blocks[:, 1:]], axis=2)  # [B, W, 2·half, 3]
    norm = windows / jnp.mean(windows, axis=2, keepdims=True)
    xs = 3 * norm[..., 0] - 2 * norm[..., 1]
    ys = 1.5 * norm[..., 0] + norm[..., 1] - 1.5 * norm[..., 2]
    xf = jnp.einsum("ij,bwj->bwi", filt, xs)
    yf = jnp.einsum("ij,bwj->bwi", filt, ys)
    alpha = jnp.std(xf, axis=-1, keepdims=True) / jnp.std(yf, axis=-1, keepdims=True)
    s = (xf - alpha * yf) * hann  # [B, W, 2·half]
    valid = jnp.arange(s.shape[1]) < n_windows
    s = jnp.where(valid[None, :, None], s, 0.0)
    zeros = jnp.zeros_like(s[:, :1, :half])
    first = jnp.concatenate([s[:, :, :half], zeros], axis=1)  # block k gets window k's head
    second = jnp.concatenate([zeros, s[:, :, half:]], axis=1)  # … and window k−1's tail
    return (first + second).reshape(b, -1)


def chrom(rgb_means, fs) -> np.ndarray:
    """CHROM (de Haan & Jeanne 2013) as rPPG-Toolbox's `CHROME_DEHAAN` (float64).

    Windows of `L` = `ceil(1.6 · fs)` rounded up to even, hop `L/2`; per window the
    normalised chrominance `X = 3R − 2G`, `Y = 1.5R + G − 1.5B` is band-passed
    (Butterworth order 3, 0.7–2.5 Hz, filtfilt), combined `X − (σX/σY)·Y`, Hann-weighted
    and overlap-added. As in the toolbox the output covers the `(L/2)·(NWin + 1)` frames
    the windows reach, `NWin = floor((T − L/2) / (L/2))`, so it is `[T']` / `[B, T']` with
    `T − L < T' ≤ T`. No post-filter (the evaluation pipeline detrends and filters).
    """
    fs = check_fs(fs)
    check_band(fs, *CHROM_BAND_HZ)
    rgb, single = _as_rgb(rgb_means)
    n = rgb.shape[1]
    win = math.ceil(WINDOW_SECONDS * fs)
    win += win % 2
    half = win // 2
    n_windows = (n - half) // half
    if n_windows < 1:
        raise ValueError(f"CHROM needs at least {win} frames (1.6 s at fs={fs} Hz), got {n}")
    filt = jnp.asarray(_filtfilt_matrix(fs, win))
    hann = jnp.asarray(scipy.signal.windows.hann(win), jnp.float32)
    tp = -(-max(_bucket(n), n + half) // half) * half
    out = _chrom_overlap_add(_pad_time(rgb, tp), jnp.int32(n_windows), filt, hann, half)
    out = np.asarray(out, np.float64)[:, : half * (n_windows + 1)]
    out = _finite_or_raise(out, "CHROM")
    return out[0] if single else out
