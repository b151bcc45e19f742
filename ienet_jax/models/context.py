"""Context enhancement (the "C" of the CET backbone): multi-dilation 3D convolutions.

Channels are split into `len(dilations)` equal groups; group g goes through a
Conv3d (kernel (2, 3, 3), dilation d_g on every axis, zero padding
`((d_g + 1) // 2, d_g, d_g)` on both sides) and a BatchNorm, without activation. Each
convolution returns T + 1 frames (odd d_g), of which the first T are kept (the reference
drops the last frame); the groups are concatenated back. With the reference dilations
(1, 3, 5) the paddings are (1, 1, 1), (2, 3, 3), (3, 5, 5), as published.

`lag0=True` (`model.context.lag0`, also off by default) pads time by (d, 0) instead: the
taps read frames t − d and t. With the reference's padding the groups of dilation 3 and 5
never read frame t itself (taps t − 2, t + 1 and t − 3, t + 2): at the token rate of 15 Hz
(30 fps, temporal patch 2) a 3-token lag is 0.2 s, a quarter period of a 72 bpm pulse,
so two thirds of the channels reach the attention branch phase-shifted.

`residual=True` (`model.context.residual`, an option of this port, off by default so that
reference checkpoints keep their outputs) returns `x + CE(x)` with the BatchNorm scales
initialised to zero: the block starts as the context-free block and learns how much context
to add, instead of feeding the attention branch a randomly initialised convolution of its
input (measurements: README, "Context enhancement").

The reference defines three copies of this module per block (for 96, 192 and 384
channels) and uses the one whose width matches the block; here it is one module
parameterised by the channel count.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import linen as nn

from ienet_jax.models import axes
from ienet_jax.models.conv import Conv

KERNEL = (2, 3, 3)


class ContextEnhancement(nn.Module):
    """`[B, T, H, W, C]` → `[B, T, H, W, C]`; C divisible by `len(dilations)`.

    Submodules `conv_{g}` / `bn_{g}` per group g; BatchNorm statistics live in the
    `batch_stats` collection (momentum 0.9 in Flax terms = PyTorch 0.1, eps 1e-5).
    """

    dilations: Sequence[int]
    conv_impl: str
    residual: bool = False
    lag0: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        groups = len(self.dilations)
        b, t, h, w, c = x.shape
        if c % groups:
            raise ValueError(
                f"context enhancement: {c} channels not divisible into {groups} groups "
                "(model.dims must be divisible by len(model.context.dilations))"
            )
        width = c // groups
        outs = []
        for g, d in enumerate(self.dilations):
            part = x[..., g * width:(g + 1) * width]
            # reference: taps at frames t - (d+1)//2 and t - (d+1)//2 + d, the last output
            # frame dropped; lag0: taps at t - d and t (the frame itself always read)
            pad_t = (d, 0) if self.lag0 else ((d + 1) // 2, (d + 1) // 2)
            y = Conv(
                width, KERNEL, padding=(pad_t, (d, d), (d, d)), dilation=(d, d, d),
                impl=self.conv_impl, dtype=self.dtype, param_dtype=self.param_dtype,
                name=f"conv_{g}",
            )(part)
            y = nn.BatchNorm(
                use_running_average=not train, momentum=0.9, epsilon=1e-5,
                dtype=self.dtype, param_dtype=self.param_dtype, name=f"bn_{g}",
                scale_init=nn.with_logical_partitioning(
                    nn.initializers.zeros if self.residual else nn.initializers.ones,
                    (axes.CONV_OUT,)),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes.CONV_OUT,)),
            )(y)
            outs.append(y[:, :t])
        y = jnp.concatenate(outs, axis=-1)
        return x + y if self.residual else y
