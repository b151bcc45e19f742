"""The rPPG head shared by the RGB, NIR and fused feature maps.

Reference: AdaptiveAvgPool3d to (T, 1, 1) — for the clip's own T this is the spatial
mean — then a Conv3d C → 1 with kernel 1, i.e. a Dense C → 1 per frame.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from ienet_jax.models import axes


class RPPGHead(nn.Module):
    """`[B, T, H, W, C]` features → `[B, T]` rPPG signal.

    Computed in float32 whatever the features' dtype: the head is tiny and the rPPG is a
    small variation around the spatial mean, which bfloat16 would round away.
    """

    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        pooled = jnp.mean(x.astype(jnp.float32), axis=(2, 3))  # [B, T, C]
        out = nn.Dense(
            1, dtype=jnp.float32, param_dtype=self.param_dtype, name="conv",
            kernel_init=nn.with_logical_partitioning(
                nn.initializers.lecun_normal(), (axes.EMBED, None)
            ),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (None,)),
        )(pooled)
        return out[..., 0]
