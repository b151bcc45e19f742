"""Power spectra on a bpm grid, as the FEE head and the spectral loss use them.

The reference (`utils.PSD_absolute` of IENet) evaluates a Hann-windowed DFT at the
non-integer bins `k = (bpm / 60) / (fs / N)` for each bpm of a grid (40…179 by
default), then normalises the power by its sum and then by its maximum. Everything
here is batched over leading axes and jittable; `fs` may be a Python float or a
`[B]` array (one rate per clip).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def bpm_grid(bpm_min: float = 40.0, bpm_max: float = 180.0, step: float = 1.0) -> np.ndarray:
    """The FEE grid `bpm_min, bpm_min + step, …` below `bpm_max` (float32, bpm)."""
    if not bpm_max > bpm_min or step <= 0:
        raise ValueError(f"bad bpm grid: min={bpm_min}, max={bpm_max}, step={step}")
    return np.arange(bpm_min, bpm_max, step, dtype=np.float32)


def hann_symmetric(n: int) -> np.ndarray:
    """Symmetric Hann window of length `n` (as `np.hanning`, what the reference uses)."""
    return np.hanning(n).astype(np.float32)


def bpm_power(x: jnp.ndarray, fs, bpm: jnp.ndarray) -> jnp.ndarray:
    """Hann-windowed DFT power of `x` `[..., N]` at the bpm grid `bpm` `[K]`.

    `fs` (Hz) is a scalar or broadcastable against `x.shape[:-1]`. Returns `[..., K]`.
    """
    x = jnp.asarray(x)
    n = x.shape[-1]
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    xw = x.astype(dtype) * jnp.asarray(hann_symmetric(n), dtype)
    fs = jnp.asarray(fs, dtype)[..., None]  # [..., 1]
    k = (jnp.asarray(bpm, dtype) / 60.0) / (fs / n)  # [..., K] fractional bins
    t = jnp.arange(n, dtype=dtype)
    phase = 2.0 * jnp.pi * k[..., :, None] * t / n  # [..., K, N]
    re = jnp.einsum("...n,...kn->...k", xw, jnp.cos(phase))
    im = jnp.einsum("...n,...kn->...k", xw, jnp.sin(phase))
    return re * re + im * im


def normalized_psd(x: jnp.ndarray, fs, bpm: jnp.ndarray, eps: float = 0.0) -> jnp.ndarray:
    """`bpm_power` divided by its sum, then by its maximum (the reference order) `[..., K]`.

    `eps` guards the divisions for training on all-zero signals; the reference uses 0.
    """
    p = bpm_power(x, fs, bpm)
    p = p / (jnp.sum(p, axis=-1, keepdims=True) + eps)
    peak = jnp.max(p, axis=-1, keepdims=True)
    # XLA may divide via a reciprocal, leaving the peak at 1 − 6e-8; the reference's IEEE
    # division gives exactly 1 there, which the hard gate (`psd < 1 → 0`) relies on.
    return jnp.where(p == peak, 1.0, p / (peak + eps)).astype(p.dtype)


def hard_gate_hr(psd: jnp.ndarray, bpm: jnp.ndarray) -> jnp.ndarray:
    """The reference gate: bins below 1 are zeroed, HR = `sum(psd · bpm)` `[...]` (bpm).

    After max-normalisation only the maximum bin equals 1, so this is the arg-max bpm
    (ties sum, as in the reference). It sends no gradient back.
    """
    gated = jnp.where(psd < 1.0, 0.0, psd)
    return jnp.sum(gated * jnp.asarray(bpm, psd.dtype), axis=-1)


def soft_gate_hr(psd: jnp.ndarray, bpm: jnp.ndarray, temperature: float) -> jnp.ndarray:
    """Differentiable relaxation of the hard gate: soft-argmax over the bpm grid (bpm).

    Weights are `softmax((psd − 1) / temperature)` over the grid; as the temperature goes
    to 0 this tends to the hard gate's arg-max bpm.
    """
    if temperature <= 0:
        raise ValueError(f"soft-gate temperature must be > 0, got {temperature}")
    w = jnp.exp((psd - jnp.max(psd, axis=-1, keepdims=True)) / temperature)
    w = w / jnp.sum(w, axis=-1, keepdims=True)
    return jnp.sum(w * jnp.asarray(bpm, psd.dtype), axis=-1)
