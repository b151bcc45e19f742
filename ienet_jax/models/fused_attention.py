"""Fused window attention: one TPU kernel per window that never writes the logits.

`softmax(q·kᵀ·scale + bias + shift mask)·v` for every head of every window, forward and
backward, as Pallas kernels (Mosaic on TPU). The unfused formulation
(`model.attention='einsum'`) writes the float32 `N×N` logits and probabilities of every
window and head to main memory and reads them back, forward and backward: compiled for
TPU v5e, the softmax alone was 16 % of the reference step's kernel I/O
(`python -m bench.topology --classes`), on a step bound by memory traffic. Here a window's
`N×N` blocks (N = its tokens, the reference's 2·7·7 = 98: 38 KiB in float32) stay on chip:

- the kernels read the qkv projection of a window's tokens as the projection writes it,
  `[N, 3·h·d]` (q, k, v, each head-major), and write the output `[N, h·d]` as the output
  projection reads it: no transpose of q, k, v or of the output around them;
- forward, per head: `s = (q·scale)·kᵀ + bias (+ mask)`, row softmax `p`, `o = p·v`; only
  `o` is written. Nothing else is saved: the backward recomputes `p` from q, k and the
  bias (a row's softmax is cheap next to the traffic it saves);
- backward, per head: `dv = pᵀ·do`, `dp = do·vᵀ`, `ds = p ⊙ (dp − rowsum(p ⊙ dp))`,
  `dq = ds·k·scale`, `dk = dsᵀ·q·scale`, and the bias gradient `Σ_windows ds`, accumulated
  in an output block over the windows of each of two halves of the grid (the halves
  "parallel": a megacore chip's two cores take one each);
- the bias `[h, N, N]` is one block, read once per call; the shift mask is not read as an
  `nW×N×N` array: each window's token region labels (`[nW, N]`,
  `attention.region_labels`) come in as a column and a row and the kernel builds
  `−100·[label_i ≠ label_j]` on chip.

A Mosaic kernel cannot be partitioned by XLA: under a mesh (`jax.set_mesh`, as the
trainer's compiled steps run) the kernels run per device in a `shard_map` over the
windows' and heads' mesh axes (`axes.WINDOW_TOKENS_QKV`, as the rules shard them); the
bias is gathered from its table inside, so its gradient leaves the `shard_map` as the
table's (summed over the data axes there: a table-sized all-reduce). Compiled for the CPU
the kernels run in Pallas's interpreter (tests; slow); a GPU has no such kernel
(`model.attention='einsum'` there).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from ienet_jax.models import axes

MASK_VALUE = -100.0
_NT = (((1,), (1,)), ((), ()))  # a·bᵀ
_TN = (((0,), (0,)), ((), ()))  # aᵀ·b
_NN = (((1,), (0,)), ((), ()))  # a·b


def _probs(q, k, bias, labels, scale):
    """Row softmax of one window's and head's logits, float32 `[N, N]`."""
    s = jax.lax.dot_general(q * jnp.asarray(scale, q.dtype), k, _NT,
                            preferred_element_type=jnp.float32) + bias
    if labels is not None:
        col, row = labels
        s = s + jnp.where(col != row, MASK_VALUE, 0.0).astype(jnp.float32)
    s = s - jnp.max(s, axis=-1, keepdims=True)
    p = jnp.exp(s)
    return p * (1.0 / jnp.sum(p, axis=-1, keepdims=True))


def _heads(ref, part: int, heads: int, d: int):
    """Per head, the `[N, d]` lane slice of `part` (0: q, 1: k, 2: v, of a `[N, 3·h·d]`
    block; 0 of a `[N, h·d]` one)."""
    return [(slice(None), slice((part * heads + h) * d, (part * heads + h + 1) * d))
            for h in range(heads)]


def _forward_kernel(*refs, heads: int, d: int, scale: float, masked: bool):
    qkv_ref, b_ref, *rest = refs
    labels = (rest[0][...], rest[1][...]) if masked else None
    o_ref = rest[-1]
    for h, (qs, ks, vs, os) in enumerate(zip(*(_heads(qkv_ref, i, heads, d) for i in range(3)),
                                             _heads(o_ref, 0, heads, d), strict=True)):
        v = qkv_ref[vs]
        p = _probs(qkv_ref[qs], qkv_ref[ks], b_ref[h], labels, scale)
        o_ref[os] = jax.lax.dot_general(p.astype(v.dtype), v, _NN,
                                        preferred_element_type=jnp.float32).astype(o_ref.dtype)


def _backward_kernel(*refs, heads: int, d: int, scale: float, masked: bool):
    qkv_ref, b_ref, *rest = refs
    labels = (rest[0][...], rest[1][...]) if masked else None
    do_ref, dqkv_ref, db_ref = rest[-3:]

    @pl.when(pl.program_id(1) == 0)  # a part's first window
    def _():
        db_ref[...] = jnp.zeros_like(db_ref)

    for h, (qs, ks, vs, os) in enumerate(zip(*(_heads(qkv_ref, i, heads, d) for i in range(3)),
                                             _heads(do_ref, 0, heads, d), strict=True)):
        q, k, v, do = qkv_ref[qs], qkv_ref[ks], qkv_ref[vs], do_ref[os]
        p = _probs(q, k, b_ref[h], labels, scale)
        dv = jax.lax.dot_general(p.astype(do.dtype), do, _TN, preferred_element_type=jnp.float32)
        dp = jax.lax.dot_general(do, v, _NT, preferred_element_type=jnp.float32)
        ds = p * (dp - jnp.sum(p * dp, axis=-1, keepdims=True))  # d logits
        dq = jax.lax.dot_general(ds.astype(k.dtype), k, _NN, preferred_element_type=jnp.float32)
        dk = jax.lax.dot_general(ds.astype(q.dtype), q, _TN, preferred_element_type=jnp.float32)
        dqkv_ref[qs] = (dq * scale).astype(dqkv_ref.dtype)
        dqkv_ref[ks] = (dk * scale).astype(dqkv_ref.dtype)
        dqkv_ref[vs] = dv.astype(dqkv_ref.dtype)
        db_ref[h] += ds


def _specs(n: int, heads: int, d: int, per_part: int, n_windows: int | None):
    """Block specs over the grid `(part, window of the part)`: qkv `[N, 3·h·d]`, output
    `[N, h·d]`, the whole bias `[h, N, N]` (one block: read once), each part's bias
    gradient, each window's labels."""
    def window(c, i):
        return c * per_part + i

    qkv = pl.BlockSpec((None, n, 3 * heads * d), lambda c, i: (window(c, i), 0, 0))
    out = pl.BlockSpec((None, n, heads * d), lambda c, i: (window(c, i), 0, 0))
    bias = pl.BlockSpec((heads, n, n), lambda c, i: (0, 0, 0))
    dbias = pl.BlockSpec((None, heads, n, n), lambda c, i: (c, 0, 0, 0))
    labels = []
    if n_windows is not None:  # window w of the batch is window w % nW of its clip
        labels = [pl.BlockSpec((None, n, 1), lambda c, i: (window(c, i) % n_windows, 0, 0)),
                  pl.BlockSpec((None, 1, n), lambda c, i: (window(c, i) % n_windows, 0, 0))]
    return dict(qkv=qkv, out=out, bias=bias, dbias=dbias), labels


def _cost(bw: int, n: int, heads: int, d: int, itemsize: int, matmuls: int, widths: int,
          bias_arrays: int) -> pl.CostEstimate:
    """What one call computes and moves: `matmuls` `N×N×d` products per window and head,
    `widths` × `h·d` channels of every window token read or written, `bias_arrays` float32
    `[h, N, N]`."""
    return pl.CostEstimate(flops=2 * matmuls * bw * heads * n * n * d,
                           transcendentals=bw * heads * n * n,
                           bytes_accessed=widths * bw * n * heads * d * itemsize
                           + bias_arrays * heads * n * n * 4)


def _label_args(labels):
    return [] if labels is None else [labels[:, :, None], labels[:, None, :]]


def _parts(bw: int) -> int:
    """Parts of the window grid marked "parallel" (a megacore chip's two cores take one
    each): 2 when the windows split evenly."""
    return 2 if bw % 2 == 0 else 1


def _call(kernel, qkv, bias, labels, extra, out_shape, out_specs, inner, cost, scale,
          interpret):
    """`kernel` over the grid `(part, window of the part)` (`inner`: the window axis's
    semantics)."""
    bw, n, _, heads, d = qkv.shape
    parts = _parts(bw)
    specs, label_specs = _specs(n, heads, d, bw // parts,
                                None if labels is None else labels.shape[0])
    return pl.pallas_call(
        functools.partial(kernel, heads=heads, d=d, scale=scale, masked=labels is not None),
        grid=(parts, bw // parts),
        in_specs=[specs["qkv"], specs["bias"], *label_specs, *(specs["out"] for _ in extra)],
        out_specs=[specs[k] for k in out_specs],
        out_shape=out_shape,
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", inner)),
        cost_estimate=_cost(bw, n, heads, d, qkv.dtype.itemsize, *cost),
        interpret=interpret,
    )(qkv.reshape(bw, n, -1), bias, *_label_args(labels), *(e.reshape(bw, n, -1) for e in extra))


def _forward(qkv, bias, labels, scale, interpret):
    bw, n, _, heads, d = qkv.shape
    (out,) = _call(_forward_kernel, qkv, bias, labels, (),
                   [jax.ShapeDtypeStruct((bw, n, heads * d), qkv.dtype)], ["out"],
                   "parallel", (2, 4, 1), scale, interpret)
    return out.reshape(bw, n, heads, d)


def _backward(qkv, bias, labels, do, scale, interpret):
    bw, n = qkv.shape[:2]
    # each part's bias gradient accumulates in one block over its windows: "arbitrary"
    dqkv, dbias = _call(_backward_kernel, qkv, bias, labels, (do,),
                        [jax.ShapeDtypeStruct((bw, n, math.prod(qkv.shape[2:])), qkv.dtype),
                         jax.ShapeDtypeStruct((_parts(bw), *bias.shape), jnp.float32)],
                        ["qkv", "dbias"], "arbitrary", (5, 7, 2), scale, interpret)
    return dqkv.reshape(qkv.shape), dbias.sum(axis=0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _attention(qkv, bias, labels, scale, interpret):
    return _forward(qkv, bias, labels, scale, interpret)


def _attention_fwd(qkv, bias, labels, scale, interpret):
    return _forward(qkv, bias, labels, scale, interpret), (qkv, bias, labels)


def _attention_bwd(scale, interpret, res, do):
    qkv, bias, labels = res
    dqkv, dbias = _backward(qkv, bias, labels, do, scale, interpret)
    return dqkv, dbias.astype(bias.dtype), None if labels is None else np.zeros(
        labels.shape, jax.dtypes.float0)


_attention.defvjp(_attention_fwd, _attention_bwd)


def relative_position_bias(table: jnp.ndarray, index: np.ndarray) -> jnp.ndarray:
    """The float32 bias `[h, N, N]` of a relative-position `table` `[T, h]` gathered by
    `index` `[N, N]` (the einsum formulation's too)."""
    n = index.shape[0]
    bias = table[index.reshape(-1)].reshape(n, n, table.shape[-1])
    return bias.transpose(2, 0, 1).astype(jnp.float32)


@functools.cache
def _warn_interpreted() -> None:
    logging.warning("model.attention='fused' compiled for the CPU runs Pallas's interpreter, "
                    "for tests: orders of magnitude slower than model.attention='einsum'")


def window_attention(qkv: jnp.ndarray, table: jnp.ndarray, index: np.ndarray,
                     labels: np.ndarray | None, scale: float, platform: str) -> jnp.ndarray:
    """Attention within windows, fused: `qkv` `[B·nW, N, 3, h, d]` (the qkv projection of
    the windows' tokens as it comes), the bias `table` `[T, h]` gathered by `index`
    `[N, N]`, the shift mask's region `labels` `[nW, N]` (None: no mask) → `[B·nW, N, h, d]`,
    as `attention.WindowAttention`'s einsum formulation. `platform`: the compile target
    ("tpu"; "cpu" runs the Pallas interpreter)."""
    if platform not in ("tpu", "cpu"):
        raise ValueError(f"config key model.attention='fused' is a TPU kernel; compiled for "
                         f"{platform!r} use model.attention='einsum'")
    interpret = platform == "cpu"
    if interpret:
        _warn_interpreted()
    # the labels, when there is a mask, as a third (replicated) operand
    operands = (qkv, table) + (() if labels is None else (jnp.asarray(labels, jnp.int32),))

    def local(qkv, table, labels=None):
        bias = relative_position_bias(table, index)
        return _attention(qkv, bias, labels, scale, interpret)

    mesh = jax.sharding.get_abstract_mesh()
    if not mesh.shape:
        return local(*operands)
    spec = axes.spec(axes.WINDOW_TOKENS_QKV, qkv.shape, whole=(axes.TOKENS, axes.KV))
    out_spec = jax.sharding.PartitionSpec(*spec[:2], *spec[3:])
    specs = (spec, jax.sharding.PartitionSpec(None, spec[3]), jax.sharding.PartitionSpec())
    return jax.shard_map(local, in_specs=specs[:len(operands)], out_specs=out_spec,
                         check_vma=False)(*operands)
