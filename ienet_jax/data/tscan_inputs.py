"""TS-CAN input and label transforms (MTTS-CAN / rPPG-Toolbox preprocessing), per clip.

- Motion: `(x[t+1] − x[t]) / (x[t+1] + x[t] + eps)`, divided by its standard deviation over
  the clip (all of T, H, W, C).
- Appearance: frame `x[t]` minus the clip mean, divided by the clip standard deviation.
- Label: the BVP's first difference `y[t+1] − y[t]` divided by its standard deviation.

`N` input frames (or samples) give `T = N − 1` outputs; with `num_frames=N` a zero motion
frame / label sample is appended at the end instead (the rPPG-Toolbox convention, which keeps
the clip length). Works on numpy arrays (returns numpy, for the input pipeline) and on JAX
arrays (jittable); leading batch axes are kept, statistics are per clip. The input pipeline
(`data.normalize="tscan"`) and the trainer (`train.objectives`) both use them.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7


def _xp(x):
    if isinstance(x, np.ndarray):
        return np
    import jax.numpy as jnp  # JAX arrays only: the input pipeline stays JAX free

    return jnp


def _num_outputs(n: int, num_frames: int | None, what: str) -> int:
    if num_frames is None:
        num_frames = n - 1
    if num_frames not in (n - 1, n) or num_frames < 1:
        raise ValueError(
            f"{what}: num_frames must be {n - 1} (one per difference) or {n} (zero-padded end) "
            f"for {n} input frames, got {num_frames}"
        )
    return num_frames


def _pad_end(xp, d, length: int, axis: int):
    missing = length - d.shape[axis]
    if missing == 0:
        return d
    pad = [(0, 0)] * d.ndim
    pad[axis] = (0, missing)
    return xp.pad(d, pad)


def _standardise(xp, x, axes, eps):
    std = xp.std(x, axis=axes, keepdims=True)
    return x / (std + eps)


def tscan_inputs(frames, num_frames: int | None = None, eps: float = EPS):
    """Raw frames `[..., N, H, W, 3]` (uint8 or float) → TS-CAN input `[..., T, H, W, 6]` (f32).

    Channels `[:3]` are the standardised difference-normalised motion, `[3:]` the standardised
    appearance of frames `0 … T−1`. `T = N − 1` unless `num_frames = N` (zero motion at the end).
    """
    xp = _xp(frames)
    if frames.ndim < 4 or frames.shape[-1] != 3:
        raise ValueError(f"tscan_inputs expects frames [..., N, H, W, 3], got {frames.shape}")
    n = frames.shape[-4]
    t = _num_outputs(n, num_frames, "tscan_inputs")
    axes = (-4, -3, -2, -1)
    x = frames.astype(xp.float32)
    motion = (x[..., 1:, :, :, :] - x[..., :-1, :, :, :]) / (
        x[..., 1:, :, :, :] + x[..., :-1, :, :, :] + eps)
    motion = _standardise(xp, motion, axes, eps)
    motion = _pad_end(xp, motion, t, frames.ndim - 4)
    appearance = x[..., :t, :, :, :]
    appearance = appearance - xp.mean(appearance, axis=axes, keepdims=True)
    appearance = _standardise(xp, appearance, axes, eps)
    return xp.concatenate([motion, appearance], axis=-1).astype(xp.float32)


def tscan_label(bvp, num_samples: int | None = None, eps: float = EPS):
    """BVP `[..., N]` → difference-normalised label `[..., T]` (f32), `T = N − 1` unless
    `num_samples = N` (zero appended)."""
    xp = _xp(bvp)
    n = bvp.shape[-1]
    t = _num_outputs(n, num_samples, "tscan_label")
    d = xp.diff(bvp.astype(xp.float32), axis=-1)
    d = _standardise(xp, d, (-1,), eps)
    return _pad_end(xp, d, t, bvp.ndim - 1).astype(xp.float32)
