"""FEE (frequency-enhanced estimation): the IENet head that turns an rPPG signal into a heart rate.

Reference (`train_hr.py` of IENet): Conv1d 1→16 k3 pad 1 no bias, BatchNorm, Conv1d 16→1 k3
pad 1 no bias, BatchNorm, then the normalised PSD on the bpm grid (`normalized_psd`) and the
hard gate (values < 1 → 0, HR = `sum(psd · bpm)`, i.e. the arg-max bpm). The hard gate sends
no gradient back, so in training this port uses a soft-argmax over the same PSD
(`soft_gate_hr`); evaluation keeps the reference's hard gate.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from ienet_jax.models.conv import Conv
from ienet_jax.signal.spectrum import bpm_grid, hard_gate_hr, normalized_psd, soft_gate_hr


class FEEHead(nn.Module):
    """rPPG `[B, T]` → `{"hr": [B] (bpm), "psd": [B, K], "signal": [B, T]}`.

    `signal` is the output of the conv/BN stack (the refined rPPG), `psd` its normalised power
    on the grid `bpm_min, bpm_min + 1, …, bpm_max − 1` (K bins, max 1 per row), `hr` the hard
    gate's arg-max bpm when `train=False` and the soft gate's soft-argmax when `train=True`.
    BatchNorm statistics live in the `batch_stats` collection (mutable when training).

    Attributes:
      bpm_min, bpm_max: the bpm grid (bpm; `bpm_max` excluded).
      temperature: soft-gate temperature on the max-normalised PSD (training only; the
        value, 0.02, and why: `configs/ienet.py`).
      dtype: compute dtype of the conv/BN stack (None: the input's); the PSD is float32.
      param_dtype: parameter dtype.
      conv_impl: `ienet_jax.models.conv.conv` implementation ("auto", "taps", "xla").
    """

    bpm_min: float
    bpm_max: float
    temperature: float
    conv_impl: str
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, rppg: jnp.ndarray, fs, *, train: bool) -> dict[str, jnp.ndarray]:
        """`rppg` `[B, T]`; `fs` frame rate in Hz (scalar or `[B]`)."""
        if rppg.ndim != 2:
            raise ValueError(f"FEEHead expects an rPPG batch [B, T], got shape {rppg.shape}")
        dtype = self.dtype or rppg.dtype
        x = rppg.astype(dtype)[..., None]  # [B, T, 1]
        for i, features in ((1, 16), (2, 1)):
            x = Conv(
                features, kernel_size=(3,), padding=((1, 1),), use_bias=False,
                impl=self.conv_impl, dtype=dtype, param_dtype=self.param_dtype,
                kernel_axes=(None, None, None), name=f"conv{i}",
            )(x)
            x = nn.BatchNorm(
                use_running_average=not train, momentum=0.9, epsilon=1e-5,
                dtype=dtype, param_dtype=self.param_dtype, name=f"bn{i}",
            )(x)
        signal = x[..., 0].astype(jnp.float32)  # [B, T]
        bpm = jnp.asarray(bpm_grid(self.bpm_min, self.bpm_max))
        psd = normalized_psd(signal, fs, bpm)
        if train:
            hr = soft_gate_hr(psd, bpm, self.temperature)
        else:
            hr = hard_gate_hr(psd, bpm)
        return {"hr": hr, "psd": psd, "signal": signal}
