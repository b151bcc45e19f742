"""Training losses (JAX, jittable, differentiable). Signals are `[B, T]`, heart rates `[B]` bpm.

Every loss returns a scalar batch mean (`reduction="mean"`) or per-sample values `[B]`
(`reduction="none"`); the mean of the per-sample values equals the batch loss.
"""

from __future__ import annotations

import jax.numpy as jnp

from ienet_jax.signal.spectrum import bpm_grid, normalized_psd

REDUCTIONS = ("mean", "none")


def _check_pair(pred, label, name: str, ndim: int | None = None):
    pred, label = jnp.asarray(pred), jnp.asarray(label)
    if pred.shape != label.shape:
        raise ValueError(f"{name}: pred and label shapes differ: {pred.shape} vs {label.shape}")
    if ndim is not None and pred.ndim != ndim:
        raise ValueError(f"{name}: expected rank-{ndim} inputs, got shape {pred.shape}")
    return pred, label


def _reduce(per_sample: jnp.ndarray, reduction: str, name: str) -> jnp.ndarray:
    if reduction == "mean":
        return jnp.mean(per_sample)
    if reduction == "none":
        return per_sample
    raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def pearson(pred, label, eps: float = 1e-12) -> jnp.ndarray:
    """Pearson correlation along the last axis of `[..., T]` signals → `[...]`.

    `eps` inside the square root keeps it (and its gradient) finite for constant signals,
    for which it returns 0.
    """
    pred, label = _check_pair(pred, label, "pearson")
    dtype = jnp.promote_types(pred.dtype, jnp.float32)
    p = pred.astype(dtype) - jnp.mean(pred, axis=-1, keepdims=True, dtype=dtype)
    q = label.astype(dtype) - jnp.mean(label, axis=-1, keepdims=True, dtype=dtype)
    cov = jnp.sum(p * q, axis=-1)
    return cov / jnp.sqrt(jnp.sum(p * p, axis=-1) * jnp.sum(q * q, axis=-1) + eps)


def band_limit(x, fs, band_hz) -> jnp.ndarray:
    """`[B, T]` signals with every DFT component outside `band_hz = (lo, hi)` Hz removed.

    An ideal (rectangular) band-pass on the clip's own DFT, per sample at `fs` (Hz, scalar
    or `[B]`): differentiable, exact for the clip as a periodic signal, no filter delay.
    """
    lo, hi = (float(b) for b in band_hz)
    x = jnp.asarray(x)
    t = x.shape[-1]
    fs = jnp.broadcast_to(jnp.asarray(fs, jnp.float32), x.shape[:-1])
    freqs = jnp.arange(t // 2 + 1, dtype=jnp.float32)[None] * (fs[..., None] / t)
    keep = (freqs >= lo) & (freqs <= hi)
    spectrum = jnp.fft.rfft(x.astype(jnp.float32), axis=-1)
    return jnp.fft.irfft(jnp.where(keep, spectrum, 0), n=t, axis=-1)


def neg_pearson(pred, label, *, signed: bool = False, fs=None, band_hz=None,
                reduction: str = "mean") -> jnp.ndarray:
    """Negative-Pearson loss of `[B, T]` signals: `1 − |r|` per sample (IENet's reference).

    `signed=True` gives `1 − r` instead (penalises an inverted pulse). With `band_hz =
    (lo, hi)` (and `fs`, Hz) both signals are first `band_limit`ed, so only the heart-rate
    band counts (the reference compares the raw signals). Batch mean or per-sample `[B]`
    (`reduction="none"`). Invariant to scale and offset of either input.
    """
    pred, label = _check_pair(pred, label, "neg_pearson", ndim=2)
    if band_hz:
        if fs is None:
            raise ValueError("neg_pearson: band_hz needs the sampling rate fs (Hz)")
        pred, label = band_limit(pred, fs, band_hz), band_limit(label, fs, band_hz)
    r = pearson(pred, label)
    return _reduce(1.0 - (r if signed else jnp.abs(r)), reduction, "neg_pearson")


def spectral_distance(
    pred,
    label,
    fs,
    bpm=None,
    *,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> jnp.ndarray:
    """Mean squared difference between the normalised bpm-grid PSDs of pred and label.

    Per sample: `mean_k (P̂_pred[k] − P̂_label[k])²` with `P̂ = normalized_psd(x, fs, bpm)`
    (Hann DFT power on the grid `bpm` `[K]`, default 40…179 bpm, divided by its sum then
    its maximum, so values lie in [0, 1]). `fs` (Hz) is a scalar or `[B]`. `eps` guards
    the normalisations so all-zero signals give finite values and gradients. This is the
    per-sample distance (not its inverse, not over the flattened batch; see ienet.md).
    """
    pred, label = _check_pair(pred, label, "spectral_distance", ndim=2)
    bpm = jnp.asarray(bpm_grid() if bpm is None else bpm)
    diff = normalized_psd(pred, fs, bpm, eps) - normalized_psd(label, fs, bpm, eps)
    return _reduce(jnp.mean(diff * diff, axis=-1), reduction, "spectral_distance")


def l1_hr(hr_pred, hr_label, *, reduction: str = "mean") -> jnp.ndarray:
    """L1 heart-rate loss `|hr_pred − hr_label|` (bpm) of `[B]` heart rates."""
    hr_pred, hr_label = _check_pair(hr_pred, hr_label, "l1_hr", ndim=1)
    return _reduce(jnp.abs(hr_pred - hr_label), reduction, "l1_hr")


def mse(pred, label, *, reduction: str = "mean") -> jnp.ndarray:
    """Mean squared error of `[B, T]` signals (TS-CAN); per sample the mean over T.

    With `reduction="mean"` this equals PyTorch's `MSELoss()` over the whole batch.
    """
    pred, label = _check_pair(pred, label, "mse", ndim=2)
    err = pred - label
    return _reduce(jnp.mean(err * err, axis=-1), reduction, "mse")
