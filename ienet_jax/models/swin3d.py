"""The CET backbone: a video Swin transformer (3D shifted windows) with context enhancement.

One `SwinTransformer3D`, built from `(dims, depths, heads, window, patch)`, serves both
modalities (IENet instantiates it twice, `name="rgb"` and `name="nir"`). Channels-last
throughout: clips `[B, T, H, W, C]`, tokens `[B, D, H', W', C]`.

Pipeline: patch embedding (pad T, H, W at the end to patch multiples; stride = kernel
conv) → stages of Swin blocks (shift = window // 2 on odd blocks), each but the last
ending with patch merging → LayerNorm → temporal upsampling (nearest × patch[0] on T,
Conv (3, 1, 1), BatchNorm, ELU), which restores the clip's T.

Mixed precision: with `dtype=bfloat16` the matmuls, convolutions and norms run in
bfloat16 but the residual stream between blocks is kept in float32 (LayerNorm and softmax
statistics are float32 too).

Stage outputs are sown into the `intermediates` collection (`patch_embed_out`, `stage_{i}_out`,
`backbone_out`) for parity tests; apply with `mutable=["intermediates"]` to read them.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from ienet_jax.models import axes
from ienet_jax.models.attention import WindowAttention
from ienet_jax.models.context import ContextEnhancement
from ienet_jax.models.conv import Conv, patchify_conv

LN_EPS = 1e-5


@dataclasses.dataclass(frozen=True)
class BlockOptions:
    """Options shared by every Swin block of a backbone (hashable: a module field); the
    values come from the `model` section (`IENet`)."""

    window: tuple[int, int, int]
    mlp_ratio: float
    qkv_bias: bool
    dropout: float
    attn_dropout: float
    context: bool
    dilations: tuple[int, ...]
    attention: str
    conv_impl: str
    context_residual: bool = False
    context_lag0: bool = False
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32


def layer_norm(opts: BlockOptions, name: str) -> nn.LayerNorm:
    """LayerNorm (eps 1e-5, statistics in float32) with `embed`-named parameters."""
    return nn.LayerNorm(
        epsilon=LN_EPS, dtype=opts.dtype, param_dtype=opts.param_dtype, name=name,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, (axes.EMBED,)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes.EMBED,)),
    )


def dense(opts: BlockOptions, features: int, kernel_axes, name: str, use_bias: bool = True):
    """A Dense layer with logically named kernel `[in, out]` and bias `[out]`."""
    return nn.Dense(
        features, use_bias=use_bias, dtype=opts.dtype, param_dtype=opts.param_dtype, name=name,
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), kernel_axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (kernel_axes[-1],)),
    )


class DropPath(nn.Module):
    """Stochastic depth: drop whole residual branches per example (rng collection "drop_path")."""

    rate: float

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        if not train or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = jax.random.bernoulli(self.make_rng("drop_path"), keep, shape)
        return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros_like(x))


def gelu(x: jnp.ndarray) -> jnp.ndarray:
    """Exact GELU `x·(1 + erf(x/√2))/2`, as `torch.nn.GELU()`. Written with `erf`:
    `jax.nn.gelu(approximate=False)` goes through `erfc`, which XLA's CPU back-end computes
    in several unfused passes (values agree to 1e-6)."""
    return x * 0.5 * (1.0 + jax.lax.erf(x * np.asarray(2**-0.5, x.dtype)))


class Mlp(nn.Module):
    """Linear dim → mlp_ratio·dim, exact (erf) GELU, dropout, Linear back, dropout."""

    dim: int
    opts: BlockOptions

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        hidden = int(self.dim * self.opts.mlp_ratio)
        x = dense(self.opts, hidden, (axes.EMBED, axes.MLP), "fc1")(x)
        x = gelu(x)
        x = nn.Dropout(self.opts.dropout)(x, deterministic=not train)
        x = dense(self.opts, self.dim, (axes.MLP, axes.EMBED), "fc2")(x)
        return nn.Dropout(self.opts.dropout)(x, deterministic=not train)


class SwinBlock(nn.Module):
    """Pre-norm Swin block `[B, D, H, W, C]` → same shape and dtype.

    `x + drop_path(attn_branch(x))`, then `x + drop_path(mlp(norm2(x)))`, where the
    attention branch is [context enhancement] → norm1 → (shifted) window attention
    (`WindowAttention`: pad, roll, attend within windows, roll back, crop).
    """

    dim: int
    heads: int
    shift: tuple[int, int, int]
    drop_path: float
    opts: BlockOptions

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        c = x.shape[-1]
        y = x
        if self.opts.context:
            y = ContextEnhancement(
                self.opts.dilations, conv_impl=self.opts.conv_impl, dtype=self.opts.dtype,
                param_dtype=self.opts.param_dtype, residual=self.opts.context_residual,
                lag0=self.opts.context_lag0,
                name="context",
            )(y, train=train)
        y = layer_norm(self.opts, "norm1")(y)
        y = WindowAttention(
            c, self.heads, self.opts.window, qkv_bias=self.opts.qkv_bias,
            attn_dropout=self.opts.attn_dropout, dropout=self.opts.dropout,
            impl=self.opts.attention, dtype=self.opts.dtype, param_dtype=self.opts.param_dtype,
            name="attn",
        )(y, self.shift, train=train)
        drop = DropPath(self.drop_path)
        x = x + drop(y, train=train).astype(x.dtype)
        y = Mlp(c, self.opts, name="mlp")(layer_norm(self.opts, "norm2")(x), train=train)
        x = x + drop(y, train=train).astype(x.dtype)
        return nn.with_logical_constraint(x, axes.CLIP)


class PatchMerging(nn.Module):
    """`[B, D, H, W, C]` → `[B, D, ⌈H/2⌉, ⌈W/2⌉, out]`: 2×2 spatial phases → LayerNorm(4C) → Linear.

    Phase order as the reference: (h even, w even), (h odd, w even), (h even, w odd),
    (h odd, w odd). The Linear has no bias (reference: 4C → 2C).
    """

    features: int
    opts: BlockOptions

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        _, _, h, w, _ = x.shape
        x = jnp.pad(x, ((0, 0), (0, 0), (0, h % 2), (0, w % 2), (0, 0)))
        x = jnp.concatenate(
            [x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]],
            axis=-1,
        )
        norm = nn.LayerNorm(
            epsilon=LN_EPS, dtype=self.opts.dtype, param_dtype=self.opts.param_dtype, name="norm",
            scale_init=nn.with_logical_partitioning(nn.initializers.ones, (axes.MERGE,)),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes.MERGE,)),
        )
        x = norm(x)
        return dense(self.opts, self.features, (axes.MERGE, axes.EMBED), "reduction", False)(x)


class PatchEmbed(nn.Module):
    """`[B, T, H, W, Cin]` → `[B, ⌈T/pt⌉, ⌈H/ph⌉, ⌈W/pw⌉, dim]`: pad at the end, stride-k conv."""

    dim: int
    patch: tuple[int, int, int]
    opts: BlockOptions

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        pads = [(-s) % p for s, p in zip(x.shape[1:4], self.patch)]
        x = jnp.pad(x, ((0, 0), *((0, p) for p in pads), (0, 0)))
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(
                nn.initializers.lecun_normal(), (None, None, None, axes.CONV_IN, axes.EMBED)
            ),
            (*self.patch, x.shape[-1], self.dim),
            self.opts.param_dtype,
        )
        bias = self.param(
            "bias", nn.with_logical_partitioning(nn.initializers.zeros, (axes.EMBED,)),
            (self.dim,), self.opts.param_dtype,
        )
        x = patchify_conv(x.astype(self.opts.dtype), jnp.asarray(kernel, self.opts.dtype))
        return x + jnp.asarray(bias, self.opts.dtype)


class TemporalUpsample(nn.Module):
    """Nearest × `factor` on T, Conv (3, 1, 1) pad (1, 0, 0), BatchNorm, ELU; channels kept."""

    factor: int
    opts: BlockOptions

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        x = jnp.repeat(x, self.factor, axis=1)
        x = Conv(
            x.shape[-1], (3, 1, 1), padding=((1, 1), (0, 0), (0, 0)), impl=self.opts.conv_impl,
            dtype=self.opts.dtype, param_dtype=self.opts.param_dtype, name="conv",
        )(x)
        x = nn.BatchNorm(
            use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.opts.dtype,
            param_dtype=self.opts.param_dtype, name="bn",
            scale_init=nn.with_logical_partitioning(nn.initializers.ones, (axes.CONV_OUT,)),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes.CONV_OUT,)),
        )(x)
        return nn.elu(x)


class SwinStage(nn.Module):
    """`depth` Swin blocks (shift on odd ones), then patch merging to `out_dim` if given."""

    dim: int
    depth: int
    heads: int
    drop_path: tuple[float, ...]
    out_dim: int | None
    remat: bool
    opts: BlockOptions

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        block_cls = nn.remat(SwinBlock, static_argnums=(2,)) if self.remat else SwinBlock
        half = tuple(wn // 2 for wn in self.opts.window)
        for j in range(self.depth):
            shift = half if j % 2 else (0, 0, 0)
            x = block_cls(
                self.dim, self.heads, shift, self.drop_path[j], self.opts, name=f"block_{j}"
            )(x, train)
        if self.out_dim is not None:
            x = PatchMerging(self.out_dim, self.opts, name="merge")(x)
        return x


class SwinTransformer3D(nn.Module):
    """CET backbone `[B, T, H, W, Cin]` → `[B, T', H / (ph·2^(S−1)), W / (pw·2^(S−1)), dims[-1]]`.

    T' = ⌈T / pt⌉·pt (= T when T is a multiple of the temporal patch). Stochastic depth
    rates rise linearly from 0 to `drop_path` over all blocks (rng collection "drop_path").
    """

    patch: tuple[int, int, int]
    dims: tuple[int, ...]
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    drop_path: float
    remat: bool
    opts: BlockOptions

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
        # The residual stream stays float32; branches compute in `opts.dtype`.
        x = PatchEmbed(self.dims[0], self.patch, self.opts, name="patch_embed")(x)
        x = x.astype(jnp.float32)
        x = nn.with_logical_constraint(x, axes.CLIP)
        self.sow("intermediates", "patch_embed_out", x)
        x = nn.Dropout(self.opts.dropout)(x, deterministic=not train)
        rates = np.linspace(0.0, self.drop_path, sum(self.depths)).tolist()
        start = 0
        for i, (dim, depth, heads) in enumerate(zip(self.dims, self.depths, self.heads)):
            out_dim = self.dims[i + 1] if i + 1 < len(self.dims) else None
            x = SwinStage(
                dim, depth, heads, tuple(rates[start:start + depth]), out_dim, self.remat,
                self.opts, name=f"stage_{i}",
            )(x, train).astype(jnp.float32)
            start += depth
            self.sow("intermediates", f"stage_{i}_out", x)
        x = layer_norm(self.opts, "norm")(x)
        x = TemporalUpsample(self.patch[0], self.opts, name="upsample")(x, train=train)
        x = nn.with_logical_constraint(x, axes.CLIP)
        self.sow("intermediates", "backbone_out", x)
        return x

