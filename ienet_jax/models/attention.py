"""3D (shifted) window attention of the video Swin transformer, as the reference computes it.

Window geometry is static: the relative-position index and the shift mask are numpy
constants built at trace time from the configured window and the (padded) token grid.

Two reference subtleties the checkpoints depend on:
- the bias table and index are built once for the *configured* window; when the window
  shrinks to a small grid (e.g. 4×4 tokens with a 7×7 window), the top-left `[:N, :N]`
  of the configured index is used, not an index for the smaller window;
- padded tokens (zeros inserted after `norm1`) are attended to like any others; the only
  mask is the shift mask (−100 between tokens of different regions).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from ienet_jax.models import axes, fused_attention
from ienet_jax.models import platform as compile_target

Window = tuple[int, int, int]

ATTENTION_IMPLS = ("einsum", "dot_product", "fused")
MASK_VALUE = fused_attention.MASK_VALUE  # between tokens of different shift regions


def effective_window(grid: Sequence[int], window: Sequence[int], shift: Sequence[int]):
    """Window and shift actually used on a token grid `(D, H, W)`.

    Along an axis whose size ≤ the window, the window shrinks to the size and the shift
    becomes 0 (reference `get_window_size`).
    """
    win, sh = list(window), list(shift)
    for a, size in enumerate(grid):
        if size <= window[a]:
            win[a] = size
            sh[a] = 0
    return tuple(win), tuple(sh)


@functools.cache
def relative_position_index(window: Window) -> np.ndarray:
    """`[N, N]` int32 index into the `(2Wd−1)(2Wh−1)(2Ww−1)` bias table, N = Wd·Wh·Ww."""
    wd, wh, ww = window
    coords = np.stack(np.meshgrid(np.arange(wd), np.arange(wh), np.arange(ww), indexing="ij"))
    coords = coords.reshape(3, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)
    rel = rel + np.array([wd - 1, wh - 1, ww - 1])
    index = rel[..., 0] * (2 * wh - 1) * (2 * ww - 1) + rel[..., 1] * (2 * ww - 1) + rel[..., 2]
    return index.astype(np.int32)


def qkv_split(dim: int, heads: int) -> tuple[int, int, int]:
    """The fused qkv projection's output axes `(3, heads, dim / heads)`."""
    return 3, heads, dim // heads


def dense_init(inputs: int):
    """LeCun normal of a kernel whose first `inputs` axes are its inputs: the values of
    `nn.Dense`'s 2-D kernel (the same key), reshaped."""
    def init(key, shape, dtype=jnp.float32):
        flat = (math.prod(shape[:inputs]), math.prod(shape[inputs:]))
        return nn.initializers.lecun_normal()(key, flat, dtype).reshape(shape)

    return init


def table_size(window: Window) -> int:
    """Rows of the relative-position-bias table for a configured window."""
    return (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)


def window_partition(x: jnp.ndarray, window: Sequence[int]) -> jnp.ndarray:
    """`[B, D, H, W, C]` (multiples of the window) → `[B·nW, N, C]`, windows in (d, h, w) order."""
    b, d, h, w, c = x.shape
    wd, wh, ww = window
    x = x.reshape(b, d // wd, wd, h // wh, wh, w // ww, ww, c)
    x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(-1, wd * wh * ww, c)


def window_reverse(
    windows: jnp.ndarray, window: Sequence[int], shape: Sequence[int]
) -> jnp.ndarray:
    """Inverse of `window_partition`: `[B·nW, N, C]` → `[B, D, H, W, C]`, `shape=(B, D, H, W)`."""
    b, d, h, w = shape
    wd, wh, ww = window
    c = windows.shape[-1]
    x = windows.reshape(b, d // wd, h // wh, w // ww, wd, wh, ww, c)
    x = x.transpose(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(b, d, h, w, c)


def qkv_windows(qkv: jnp.ndarray, window: Sequence[int]) -> jnp.ndarray:
    """`[B, D, H, W, 3, h, d]` (multiples of the window) → `[3, B·nW, h, N, d]` in one copy:
    `window_partition` of each of q, k, v with the heads before the tokens, the layout of
    the attention matmuls."""
    b, d, h, w, _, heads, hd = qkv.shape
    wd, wh, ww = window
    x = qkv.reshape(b, d // wd, wd, h // wh, wh, w // ww, ww, 3, heads, hd)
    x = x.transpose(7, 0, 1, 3, 5, 8, 2, 4, 6, 9)
    return x.reshape(3, -1, heads, wd * wh * ww, hd)


def merge_windows(out: jnp.ndarray, window: Sequence[int], shape: Sequence[int]) -> jnp.ndarray:
    """`[B·nW, h, N, d]` → `[B, D, H, W, h·d]` (`shape=(B, D, H, W)`): `window_reverse` of
    the heads-first attention output, in one copy."""
    b, d, h, w = shape
    wd, wh, ww = window
    heads, hd = out.shape[1], out.shape[-1]
    x = out.reshape(b, d // wd, h // wh, w // ww, heads, wd, wh, ww, hd)
    x = x.transpose(0, 1, 5, 2, 6, 3, 7, 4, 8)
    return x.reshape(b, d, h, w, heads * hd)


def unshift_crop(y: jnp.ndarray, shift: Sequence[int], grid: Sequence[int]) -> jnp.ndarray:
    """The padded, shifted token grid `[B, D', H', W', ...]` rolled back by `shift` and
    cropped to `grid` = `(D, H, W)`."""
    if any(shift):
        y = jnp.roll(y, tuple(shift), axis=(1, 2, 3))
    d, h, w = grid
    return y[:, :d, :h, :w]


@functools.cache
def region_labels(padded: Sequence[int], window: Sequence[int],
                  shift: Sequence[int]) -> np.ndarray:
    """`[nW, N]` int32 region label of each token of each window for a shifted-window pass
    (tuples in): tokens of different regions may not attend to each other.

    Regions are labelled over the slices `[0:-w), [-w:-s), [-s:]` per axis of the padded
    grid, exactly as the reference (including its `-0` slice on unshifted axes).
    """
    labels = np.zeros(tuple(padded), np.int32)
    count = 0
    slices = [(slice(-w), slice(-w, -s), slice(-s, None)) for w, s in zip(window, shift)]
    for sd in slices[0]:
        for sh in slices[1]:
            for sw in slices[2]:
                labels[sd, sh, sw] = count
                count += 1
    return np.asarray(window_partition(labels[None, ..., None], window))[..., 0]


@functools.cache
def shift_mask(padded: Sequence[int], window: Sequence[int], shift: Sequence[int]) -> np.ndarray:
    """`[nW, N, N]` float32 additive mask (0 or −100) for a shifted-window pass (tuples
    in): −100 between tokens of different `region_labels`."""
    windows = region_labels(padded, window, shift)
    diff = windows[:, None, :] - windows[:, :, None]
    return np.where(diff != 0, MASK_VALUE, 0.0).astype(np.float32)


def add_bias(x: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
    """`x + bias`, `bias` of `x`'s trailing shape. Compiled for the CPU its gradient is
    summed over the leading axes by a matmul with ones: XLA's CPU back-end ran those
    reductions up to ~6× slower (`python -m bench.profile`: the relative position bias's
    over windows was 8 % of the train step); elsewhere XLA's own reduction."""
    if compile_target.current() == "cpu":
        return _add_bias_matmul_grad(x, bias)
    return x + bias


@jax.custom_vjp
def _add_bias_matmul_grad(x: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
    return x + bias


def _add_bias_fwd(x, bias):
    return x + bias, bias.shape


def _add_bias_bwd(shape, g):
    # the bias's own axes stay separate (not flattened): a sharded one (the qkv bias's
    # heads under tensor parallelism) keeps its sharding instead of being gathered
    lead = g.reshape(-1, *shape)
    ones = jnp.ones((lead.shape[0],), g.dtype)
    return g, jax.lax.dot_general(ones, lead, (((0,), (0,)), ((), ())))


_add_bias_matmul_grad.defvjp(_add_bias_fwd, _add_bias_bwd)


class FusedQKV(nn.Module):
    """The fused query/key/value projection `[..., C]` → `[..., 3, heads, C / heads]`.

    The kernel is stored head-major, `[C, 3, heads, C / heads]` (logical axes `embed`,
    —, `heads`, `kv`), and the bias `[3, heads, C / heads]`: the reference's `[C, 3·C]`
    (`qkv.weight` transposed, outputs q|k|v, each head-major) reshaped, so the values are
    the reference's, while a tensor-parallel mesh splits the `heads` axis of the stored
    parameter itself (the contiguous `[C, 3·C]` split it had gave a device all of q and
    half of k: XLA gathered the kernel per block).

    `pad[i]` zero tokens appended along axis `1 + i` of the input give the output of the
    zero-padded input (their projection is the bias alone) without multiplying them.
    """

    heads: int
    use_bias: bool = True
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, pad: Sequence[int] = ()) -> jnp.ndarray:
        c = x.shape[-1]
        split = qkv_split(c, self.heads)
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(dense_init(1), (axes.EMBED, None, axes.HEADS, axes.KV)),
            (c, *split), self.param_dtype,
        )
        kernel = jnp.asarray(kernel, self.dtype)
        y = jax.lax.dot_general(x.astype(self.dtype), kernel, (((x.ndim - 1,), (0,)), ((), ())))
        if any(pad):
            widths = [(0, 0)] + [(0, p) for p in pad]
            y = jnp.pad(y, widths + [(0, 0)] * (y.ndim - len(widths)))
        if self.use_bias:
            bias = self.param(
                "bias", nn.with_logical_partitioning(nn.initializers.zeros,
                                                     (None, axes.HEADS, axes.KV)),
                split, self.param_dtype,
            )
            y = add_bias(y, jnp.asarray(bias, self.dtype))
        return y


class HeadsProjection(nn.Module):
    """The attention's output projection `[..., heads, C / heads]` → `[..., C]`.

    The kernel is stored `[heads, C / heads, C]` (the reference's `proj.weight` transposed,
    `[C, C]`, reshaped), so a tensor-parallel mesh splits it (row-parallel) exactly when
    it splits the heads, and leaves it whole with them."""

    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        heads, hd = x.shape[-2:]
        c = heads * hd
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(dense_init(2), (axes.HEADS, axes.KV, axes.EMBED)),
            (heads, hd, c), self.param_dtype,
        )
        bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros,
                                                               (axes.EMBED,)),
                          (c,), self.param_dtype)
        y = jax.lax.dot_general(x.astype(self.dtype), jnp.asarray(kernel, self.dtype),
                                (((x.ndim - 2, x.ndim - 1), (0, 1)), ((), ())))
        return y + jnp.asarray(bias, self.dtype)


class WindowAttention(nn.Module):
    """(Shifted) window multi-head self-attention over a token grid, with a relative
    position bias: `[B, D, H, W, C]` (normalised tokens) → the same shape.

    As the reference: zero-pad the grid to window multiples, roll by −shift, attend within
    windows (shift mask between regions), merge, roll back, crop. Compiled for the CPU
    (`ienet_jax.models.platform`), the qkv projection runs before the padding (`FusedQKV`'s
    `pad`) and the output projection after the crop, so neither multiplies padded tokens
    (the reference's stage 1 pads 16² to 21² tokens per frame pair, stage 2 8² to 14²):
    −15 % FLOPs, which set a CPU step's time. Compiled for a TPU or GPU, whose step is
    bound by memory traffic, the reference's order: the C-channel tokens are padded,
    rolled and partitioned, and projected per window (the other order moves q, k and v,
    3·C channels, through the roll and the partition: +45 % bytes per step on v5e). The
    values are the same either way.

    Attributes:
      dim: channels C; heads: number of heads (C divisible by heads).
      window: the configured window `(Wd, Wh, Ww)` (sizes the bias table).
      qkv_bias: bias on the fused qkv projection.
      attn_dropout, dropout: dropout on attention weights / on the output projection
        (rng collection "dropout").
      impl: "einsum" (batched einsum → f32 softmax → einsum; fastest on CPU) or
        "dot_product" (`jax.nn.dot_product_attention` with bias + mask as `bias`), or
        "fused" (TPU: one kernel program per window, all its heads, that keeps the
        logits on chip, `ienet_jax.models.fused_attention`; no attention dropout; it
        always takes the accelerator order above: it reads the projection of the
        partitioned tokens as the projection writes it).
    """

    dim: int
    heads: int
    window: Window
    qkv_bias: bool = True
    attn_dropout: float = 0.0
    dropout: float = 0.0
    impl: str = "einsum"
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: jnp.ndarray, shift: Sequence[int], *, train: bool
    ) -> jnp.ndarray:
        """`x` `[B, D, H, W, C]`; `shift` the configured shift of this block (0 or window // 2)."""
        b, d, h, w, c = x.shape
        window, shift = effective_window((d, h, w), self.window, shift)
        pads = [(-size) % win for size, win in zip((d, h, w), window)]
        padded = (d + pads[0], h + pads[1], w + pads[2])
        qkv_proj = FusedQKV(self.heads, self.qkv_bias, self.dtype, self.param_dtype, name="qkv")
        out_proj = HeadsProjection(self.dtype, self.param_dtype, name="proj")
        mask = (padded, window, shift) if any(shift) else None  # see `attend`
        back = tuple(-s for s in shift)
        if compile_target.current() == "cpu" and self.impl != "fused":  # off padded tokens
            qkv = qkv_proj(x, pads)  # [B, D', H', W', 3, h, d]
            with jax.named_scope("window_partition"):  # shift, partition (bench.profile)
                if any(shift):
                    qkv = jnp.roll(qkv, back, axis=(1, 2, 3))
                qkv = axes.constrain(qkv_windows(qkv, window), axes.WINDOW_QKV)
            out = self.attend(qkv, mask, train)
            with jax.named_scope("window_reverse"):  # merge windows, unshift, crop
                y = unshift_crop(merge_windows(out, window, (b, *padded)), shift, (d, h, w))
            y = out_proj(y.reshape(*y.shape[:-1], self.heads, c // self.heads))
        else:  # the C-channel tokens padded, shifted and partitioned, not q, k, v
            with jax.named_scope("window_partition"):
                xw = jnp.pad(x, ((0, 0), *((0, p) for p in pads), (0, 0)))
                if any(shift):
                    xw = jnp.roll(xw, back, axis=(1, 2, 3))
                xw = window_partition(xw, window)  # [B·nW, N, C]
            qkv = qkv_proj(xw)  # [B·nW, N, 3, h, d]
            if self.impl == "fused":  # the kernel reads the projection as it comes
                y = self.attend_fused(qkv, mask, train)
            else:
                qkv = axes.constrain(qkv.transpose(2, 0, 3, 1, 4), axes.WINDOW_QKV)
                y = self.attend(qkv, mask, train).transpose(0, 2, 1, 3)
            y = out_proj(y)  # [B·nW, N, C]
            with jax.named_scope("window_reverse"):
                y = unshift_crop(window_reverse(y, window, (b, *padded)), shift, (d, h, w))
        return nn.Dropout(self.dropout)(y, deterministic=not train)

    def bias_table(self) -> jnp.ndarray:
        """The relative-position-bias table `[(2Wd−1)(2Wh−1)(2Ww−1), heads]`."""
        table = self.param(
            "relative_position_bias_table",
            nn.with_logical_partitioning(
                nn.initializers.truncated_normal(0.02), (axes.TABLE, axes.HEADS)
            ),
            (table_size(self.window), self.heads),
            self.param_dtype,
        )
        return jnp.asarray(table)

    def attend_fused(self, qkv: jnp.ndarray, mask: tuple | None, train: bool) -> jnp.ndarray:
        """`attend` as one kernel (`fused_attention`): `qkv` `[B·nW, N, 3, h, d]` →
        `[B·nW, N, h, d]`."""
        if train and self.attn_dropout > 0:
            raise ValueError("model.attention='fused' does not support model.attn_dropout > 0")
        n, hd = qkv.shape[1], qkv.shape[-1]
        labels = None if mask is None else region_labels(*mask)
        with jax.named_scope("fused"):  # (bench.profile)
            return fused_attention.window_attention(
                qkv, self.bias_table(), relative_position_index(self.window)[:n, :n], labels,
                hd**-0.5, compile_target.current())

    def attend(self, qkv: jnp.ndarray, mask: tuple | None, train: bool) -> jnp.ndarray:
        """Attention within windows: `qkv` `[3, B·nW, h, N, d]` (N ≤ the configured window
        volume), `mask` the shifted pass's `(padded grid, window, shift)` (the arguments
        of `shift_mask`) or None → `[B·nW, h, N, d]`."""
        q, k, v = qkv[0], qkv[1], qkv[2]  # [Bw, h, N, d]
        bw, _, n, hd = q.shape
        table = self.bias_table()
        index = relative_position_index(self.window)[:n, :n]
        scale = hd**-0.5
        mask = None if mask is None else shift_mask(*mask)
        with jax.named_scope("bias"):  # scopes name the ops for bench.profile
            bias = fused_attention.relative_position_bias(table, index)  # [h, N, N]

        if self.impl == "einsum":
            with jax.named_scope("qk"):
                logits = jnp.einsum("bhnd,bhmd->bhnm", q * jnp.asarray(scale, q.dtype), k)
            with jax.named_scope("softmax"):
                logits = add_bias(logits.astype(jnp.float32), bias)
                if mask is not None:
                    nw = mask.shape[0]
                    logits = (logits.reshape(bw // nw, nw, self.heads, n, n)
                              + mask[None, :, None])
                    logits = logits.reshape(bw, self.heads, n, n)
                probs = jax.nn.softmax(logits, axis=-1)
            probs = nn.Dropout(self.attn_dropout)(probs, deterministic=not train)
            with jax.named_scope("av"):
                out = jnp.einsum("bhnm,bhmd->bhnd", probs.astype(self.dtype), v)
        elif self.impl == "dot_product":
            full = bias[None]
            if mask is not None:
                nw = mask.shape[0]
                full = jnp.tile(full + mask[:, None], (bw // nw, 1, 1, 1))
            if train and self.attn_dropout > 0:
                raise ValueError(
                    "model.attention='dot_product' does not support model.attn_dropout > 0"
                )
            q, k, v = (t.swapaxes(1, 2) for t in (q, k, v))  # [Bw, N, h, d]
            out = jax.nn.dot_product_attention(
                q, k, v, bias=full.astype(q.dtype), scale=scale, implementation="xla"
            ).swapaxes(1, 2)
        else:
            raise ValueError(f"model.attention must be one of {ATTENTION_IMPLS}, got {self.impl!r}")

        return out
