"""TS-CAN input and label transforms, per clip: MTTS-CAN / rPPG-Toolbox and open-rppg.

`tscan_inputs` (MTTS-CAN / rPPG-Toolbox; `model.input_prep="toolbox"`):
- Motion: `(x[t+1] − x[t]) / (x[t+1] + x[t] + eps)`, divided by its standard deviation over
  the clip (all of T, H, W, C).
- Appearance: frame `x[t]` minus the clip mean, divided by the clip standard deviation.

`open_rppg_inputs` (open-rppg 0.1.1's TS-CAN; `model.input_prep="open_rppg"`), on
`x = frames / 255`:
- Motion: `x[t+1] − x[t]` standardised per frame and channel over (H, W) (std + 1e-6).
- Appearance: the clip's time-mean frame of `x` (not standardised), the same at every t.

`tscan_label`: the BVP's first difference `y[t+1] − y[t]` divided by its standard deviation.

`N` input frames (or samples) give `T = N − 1` outputs; with `num_frames=N` the clip length
is kept: `tscan_inputs` / `tscan_label` append a zero motion frame / label sample (the
rPPG-Toolbox convention), `open_rppg_inputs` repeats its last motion frame. `INPUT_PREPS`
maps `model.input_prep` to its function. All work on numpy arrays (returning numpy, for the
input pipeline) and on JAX arrays (jittable); leading batch axes are kept, statistics are
per clip. The input pipeline (`data.normalize="tscan"`), the TS-CAN module (raw 3-channel
frames) and the trainer (`train.objectives`) use them.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7
OPEN_RPPG_EPS = 1e-6


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


def open_rppg_inputs(frames, num_frames: int | None = None, eps: float = OPEN_RPPG_EPS):
    """Raw frames `[..., N, H, W, 3]` (uint8, or float on the 0–255 scale) → open-rppg's TS-CAN
    input `[..., T, H, W, 6]` (f32).

    Channels `[:3]`: the differences of `x = frames / 255`, each frame and channel
    standardised over (H, W); `[3:]`: the time-mean of all `N` frames of `x`, repeated.
    `T = N − 1` unless `num_frames = N` (the last difference repeated at the end).
    """
    xp = _xp(frames)
    if frames.ndim < 4 or frames.shape[-1] != 3:
        raise ValueError(f"open_rppg_inputs expects frames [..., N, H, W, 3], got {frames.shape}")
    n = frames.shape[-4]
    t = _num_outputs(n, num_frames, "open_rppg_inputs")
    x = frames.astype(xp.float32) / 255.0
    d = x[..., 1:, :, :, :] - x[..., :-1, :, :, :]
    d = d - xp.mean(d, axis=(-3, -2), keepdims=True)
    motion = _standardise(xp, d, (-3, -2), eps)
    if t == n:
        motion = xp.concatenate([motion, motion[..., -1:, :, :, :]], axis=-4)
    appearance = xp.mean(x, axis=-4, keepdims=True)
    appearance = xp.broadcast_to(appearance, motion.shape)
    return xp.concatenate([motion, appearance], axis=-1).astype(xp.float32)


# `model.input_prep` → raw frames `[..., N, H, W, 3]` → TS-CAN inputs (`num_frames` as above)
INPUT_PREPS = {"toolbox": tscan_inputs, "open_rppg": open_rppg_inputs}


def tscan_label(bvp, num_samples: int | None = None, eps: float = EPS):
    """BVP `[..., N]` → difference-normalised label `[..., T]` (f32), `T = N − 1` unless
    `num_samples = N` (zero appended)."""
    xp = _xp(bvp)
    n = bvp.shape[-1]
    t = _num_outputs(n, num_samples, "tscan_label")
    d = xp.diff(bvp.astype(xp.float32), axis=-1)
    d = _standardise(xp, d, (-1,), eps)
    return _pad_end(xp, d, t, bvp.ndim - 1).astype(xp.float32)
