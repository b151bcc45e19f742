"""Channels-last convolutions behind one function, with a CPU-friendly implementation.

XLA's CPU convolutions (3D ones above all, and their gradients) are many times slower
than the same convolution written as a sum over kernel taps of shifted-slice matmuls
(see the project's performance notes). `conv` picks that tap sum on CPU and XLA's native
convolution on GPU/TPU; both give the same numbers. "CPU" means the platform the program is
compiled FOR (`ienet_jax.models.platform`): a CPU-only process compiling for a TPU or GPU
topology gets XLA's convolution. A convolution whose stride equals
its kernel (patch embedding) is a reshape and one matmul: `patchify_conv`. `impl="scan"`
runs the same tap sum as a `lax.scan` over taps: same numbers, one matmul in the HLO
instead of one per tap. On CPU, "auto" uses it for 3D kernels (IENet, reference size:
forward compile 54 → 15 s, forward 7.2 → 3.1 s, train-step compile 267 → 83 s on a loaded
2-core machine) and the unrolled tap sum for 1D/2D kernels.

Layouts: inputs `[B, *spatial, C_in]`, kernels `[*kernel, C_in, C_out]` (Flax layout),
stride 1 unless stated.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from ienet_jax.models import platform as compile_target

Padding = Sequence[tuple[int, int]]

IMPLEMENTATIONS = ("auto", "taps", "scan", "xla")


def _resolve(impl: str, nsp: int = 2, platform: str | None = None) -> str:
    """The implementation "auto" stands for on `platform` (default: the platform compiled
    for, `ienet_jax.models.platform.current()`)."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"conv implementation must be one of {IMPLEMENTATIONS}, got {impl!r}")
    if impl == "auto":
        platform = platform or compile_target.current()
        if platform != "cpu":
            return "xla"
        return "scan" if nsp == 3 else "taps"
    return impl


def conv(
    x: jnp.ndarray,
    kernel: jnp.ndarray,
    padding: Padding,
    dilation: Sequence[int] | None = None,
    *,
    impl: str = "auto",
    precision=None,
) -> jnp.ndarray:
    """Stride-1 N-d convolution (cross-correlation, as PyTorch/Flax) `[B, *S, Ci] → [B, *S', Co]`.

    `padding` is one `(low, high)` pair of zero padding per spatial axis; `dilation` one
    int per spatial axis (default 1). Output size per axis: `S + low + high − d·(k − 1)`.
    """
    nsp = kernel.ndim - 2
    if x.ndim != nsp + 2:
        raise ValueError(f"conv: input rank {x.ndim} does not match a {nsp}-d kernel")
    if x.shape[-1] != kernel.shape[-2]:
        raise ValueError(
            f"conv: input has {x.shape[-1]} channels, kernel expects {kernel.shape[-2]}"
        )
    dilation = tuple(dilation) if dilation is not None else (1,) * nsp
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    if len(padding) != nsp or len(dilation) != nsp:
        raise ValueError(f"conv: need {nsp} padding pairs and dilations, got {padding}, {dilation}")
    kernel = kernel.astype(x.dtype)
    impl = _resolve(impl, nsp)
    if impl == "xla":
        if nsp > 3:
            raise ValueError("conv: the xla implementation supports 1-3 spatial axes")
        spatial = "DHW"[-nsp:]
        dn = jax.lax.conv_dimension_numbers(
            x.shape, kernel.shape, ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")
        )
        return jax.lax.conv_general_dilated(
            x, kernel, (1,) * nsp, padding, rhs_dilation=dilation,
            dimension_numbers=dn, precision=precision,
        )
    xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    ksize = kernel.shape[:nsp]
    out_shape = [xp.shape[1 + a] - dilation[a] * (ksize[a] - 1) for a in range(nsp)]
    if min(out_shape) <= 0:
        raise ValueError(
            f"conv: kernel {ksize} (dilation {dilation}) larger than padded input {xp.shape[1:-1]}"
        )
    if impl == "scan":
        return _scan_taps(xp, kernel, dilation, out_shape, precision)
    out = None
    for tap in itertools.product(*(range(k) for k in ksize)):
        index = (slice(None),) + tuple(
            slice(t * d, t * d + o) for t, d, o in zip(tap, dilation, out_shape)
        )
        term = jnp.einsum("...c,co->...o", xp[index], kernel[tap], precision=precision)
        out = term if out is None else out + term
    return out


def _scan_taps(xp, kernel, dilation, out_shape, precision):
    """The tap sum as a `lax.scan` over taps (dynamic slices): same numbers, one loop body.

    Compiles several times faster than the unrolled tap sum (one matmul in the HLO instead
    of one per tap), which matters for models with many dilated 3D convolutions.
    """
    nsp = kernel.ndim - 2
    taps = list(itertools.product(*(range(k) for k in kernel.shape[:nsp])))
    offsets = jnp.asarray([[t * d for t, d in zip(tap, dilation)] for tap in taps], jnp.int32)
    weights = kernel.reshape(len(taps), kernel.shape[-2], kernel.shape[-1])
    zero = jnp.zeros((), jnp.int32)
    size = (xp.shape[0], *out_shape, xp.shape[-1])

    def body(acc, tap):
        offset, w = tap
        window = jax.lax.dynamic_slice(xp, (zero, *(offset[a] for a in range(nsp)), zero), size)
        return acc + jnp.einsum("...c,co->...o", window, w, precision=precision), None

    init = jnp.zeros((*size[:-1], kernel.shape[-1]), xp.dtype)
    return jax.lax.scan(body, init, (offsets, weights))[0]


def patchify_conv(x: jnp.ndarray, kernel: jnp.ndarray, *, precision=None) -> jnp.ndarray:
    """Convolution with stride = kernel size and no padding, as a reshape and one matmul.

    `x` `[B, *S, Ci]` with every `S` a multiple of the kernel; `kernel` `[*K, Ci, Co]`.
    Returns `[B, *(S // K), Co]`.
    """
    nsp = kernel.ndim - 2
    ksize = kernel.shape[:nsp]
    b, *spatial, ci = x.shape
    if len(spatial) != nsp or any(s % k for s, k in zip(spatial, ksize)):
        raise ValueError(
            f"patchify_conv: input spatial shape {tuple(spatial)} not a multiple of {ksize}"
        )
    grid = [s // k for s, k in zip(spatial, ksize)]
    shape = [b]
    for g, k in zip(grid, ksize):
        shape += [g, k]
    xr = x.reshape(*shape, ci)
    # [B, g0, k0, g1, k1, ..., Ci] -> [B, g0, g1, ..., k0, k1, ..., Ci]
    perm = [0] + [1 + 2 * a for a in range(nsp)] + [2 + 2 * a for a in range(nsp)] + [1 + 2 * nsp]
    xr = xr.transpose(perm).reshape(b, *grid, int(np.prod(ksize)) * ci)
    w = kernel.astype(x.dtype).reshape(-1, kernel.shape[-1])
    return jnp.einsum("...k,ko->...o", xr, w, precision=precision)


class Conv(nn.Module):
    """Stride-1 convolution module over `conv` (channels-last, Flax kernel layout).

    Attributes:
      features: output channels.
      kernel_size: one int per spatial axis.
      padding: one `(low, high)` pair per spatial axis, or "SAME"/"VALID" (odd kernels, no dilation
        needed for "SAME": the padding is `d·(k − 1) // 2` on both sides).
      dilation: one int per spatial axis.
      kernel_axes: logical axis names for the kernel (default: no names on taps, then
        `conv_in`, `conv_out`).
    """

    features: int
    kernel_size: Sequence[int]
    padding: Padding | str = "SAME"
    dilation: Sequence[int] | None = None
    use_bias: bool = True
    impl: str = "auto"
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
    kernel_axes: tuple[str | None, ...] | None = None
    precision: jax.lax.Precision | None = None

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        nsp = len(self.kernel_size)
        dilation = tuple(self.dilation) if self.dilation is not None else (1,) * nsp
        if isinstance(self.padding, str):
            if self.padding == "VALID":
                padding = ((0, 0),) * nsp
            elif self.padding == "SAME":
                padding = tuple(((k - 1) * d // 2, (k - 1) * d - (k - 1) * d // 2)
                                for k, d in zip(self.kernel_size, dilation))
            else:
                raise ValueError(
                    f"Conv padding must be 'SAME', 'VALID' or pairs, got {self.padding!r}"
                )
        else:
            padding = self.padding
        axes = self.kernel_axes or ((None,) * nsp + ("conv_in", "conv_out"))
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(self.kernel_init, axes),
            (*self.kernel_size, x.shape[-1], self.features),
            self.param_dtype,
        )
        dtype = self.dtype or x.dtype
        y = conv(x.astype(dtype), jnp.asarray(kernel, dtype), padding, dilation,
                 impl=self.impl, precision=self.precision)
        if self.use_bias:
            bias = self.param(
                "bias", nn.with_logical_partitioning(self.bias_init, (axes[-1],)),
                (self.features,), self.param_dtype,
            )
            y = y + jnp.asarray(bias, dtype)
        return y
