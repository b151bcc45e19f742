"""Fused window attention: one TPU kernel per (head, window) that never writes the logits.

`softmax(q·kᵀ·scale + bias + shift mask)·v` for the window attention's `[B·nW, h, N, d]`
layout, forward and backward, as Pallas kernels (Mosaic on TPU). The unfused formulation
(`model.attention='einsum'`) writes the float32 `N×N` logits and probabilities of every
window and head to main memory and reads them back, forward and backward: compiled for
TPU v5e, the softmax alone was 16 % of the reference step's kernel I/O
(`python -m bench.topology --classes`), on a step bound by memory traffic. Here a window's
`N×N` block (N ≤ 8·7·7 = 392 tokens: ≤ 600 KiB in float32) lives in on-chip memory only:

- forward: `s = (q·scale)·kᵀ + bias (+ mask)`, row softmax `p`, `o = p·v`; only `o` is
  written. Nothing else is saved: the backward recomputes `p` from q, k and the bias
  (the softmax of a whole row is cheap next to the traffic it saves);
- backward: `dv = pᵀ·do`, `dp = do·vᵀ`, `ds = p ⊙ (dp − rowsum(p ⊙ dp))`,
  `dq = ds·k·scale`, `dk = dsᵀ·q·scale`, and the bias gradient `Σ_windows ds`, accumulated
  in the kernel's output block over the window axis of the grid (heads outer, windows
  inner: each head's bias block is read once).

The shift mask is not read as an `nW×N×N` array: each window's token region labels
(`[nW, N]`, `attention.region_labels`) come in as a column and a row, and the kernel
builds `−100·[label_i ≠ label_j]` on chip.

A Mosaic kernel cannot be partitioned by XLA: under a mesh (`jax.set_mesh`, as the
trainer's compiled steps run) the kernel runs per device in a `shard_map` over the
windows' and heads' mesh axes (`axes.WINDOW_QKV`, as the rules shard them); the bias is
gathered from its table inside, so its gradient leaves the `shard_map` as the table's
(summed over the data axes there, a table-sized all-reduce). Compiled for the CPU the
kernels run in Pallas's interpreter (tests; slow), a GPU has no such kernel
(`model.attention='einsum'` there).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
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


def _forward_kernel(*refs, scale: float, masked: bool):
    q_ref, k_ref, v_ref, b_ref, *rest = refs
    labels = (rest[0][...], rest[1][...]) if masked else None
    o_ref = rest[-1]
    p = _probs(q_ref[...], k_ref[...], b_ref[...], labels, scale)
    v = v_ref[...]
    o = jax.lax.dot_general(p.astype(v.dtype), v, _NN, preferred_element_type=jnp.float32)
    o_ref[...] = o.astype(o_ref.dtype)


def _backward_kernel(*refs, scale: float, masked: bool):
    q_ref, k_ref, v_ref, b_ref, *rest = refs
    labels = (rest[0][...], rest[1][...]) if masked else None
    do_ref, dq_ref, dk_ref, dv_ref, db_ref = rest[-5:]
    q, k, v, do = q_ref[...], k_ref[...], v_ref[...], do_ref[...]
    p = _probs(q, k, b_ref[...], labels, scale)
    dv = jax.lax.dot_general(p.astype(do.dtype), do, _TN, preferred_element_type=jnp.float32)
    dp = jax.lax.dot_general(do, v, _NT, preferred_element_type=jnp.float32)
    ds = p * (dp - jnp.sum(p * dp, axis=-1, keepdims=True))  # d logits
    dq = jax.lax.dot_general(ds.astype(k.dtype), k, _NN, preferred_element_type=jnp.float32)
    dk = jax.lax.dot_general(ds.astype(q.dtype), q, _TN, preferred_element_type=jnp.float32)
    dq_ref[...] = (dq * scale).astype(dq_ref.dtype)
    dk_ref[...] = (dk * scale).astype(dk_ref.dtype)
    dv_ref[...] = dv.astype(dv_ref.dtype)

    @pl.when(pl.program_id(1) == 0)
    def _():
        db_ref[...] = jnp.zeros_like(db_ref)

    db_ref[...] += ds


def _specs(shape, n_windows: int | None):
    """Block specs of the grid `(heads, windows)`: q/k/v/o blocks, the bias's, the labels'."""
    _, _, n, d = shape
    token = pl.BlockSpec((None, None, n, d), lambda h, w: (w, h, 0, 0))
    bias = pl.BlockSpec((None, n, n), lambda h, w: (h, 0, 0))
    labels = []
    if n_windows is not None:  # window w of the batch is window w % nW of its clip
        labels = [pl.BlockSpec((None, n, 1), lambda h, w: (w % n_windows, 0, 0)),
                  pl.BlockSpec((None, 1, n), lambda h, w: (w % n_windows, 0, 0))]
    return token, bias, labels


def _cost(shape, itemsize: int, matmuls: int, arrays: int, bias_arrays: int) -> pl.CostEstimate:
    """What one call computes and moves: `matmuls` `N×N×d` products per window and head,
    `arrays` `[B·nW, h, N, d]` arrays read or written, `bias_arrays` float32 `[h, N, N]`."""
    bw, heads, n, d = shape
    return pl.CostEstimate(flops=2 * matmuls * bw * heads * n * n * d,
                           transcendentals=bw * heads * n * n,
                           bytes_accessed=arrays * bw * heads * n * d * itemsize
                           + bias_arrays * heads * n * n * 4)


def _label_args(labels):
    return [] if labels is None else [labels[:, :, None], labels[:, None, :]]


def _forward(q, k, v, bias, labels, scale, interpret):
    token, bias_spec, label_specs = _specs(q.shape, None if labels is None else labels.shape[0])
    return pl.pallas_call(
        functools.partial(_forward_kernel, scale=scale, masked=labels is not None),
        grid=(q.shape[1], q.shape[0]),
        in_specs=[token, token, token, bias_spec, *label_specs],
        out_specs=token,
        out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "parallel")),
        cost_estimate=_cost(q.shape, q.dtype.itemsize, 2, 4, 1),
        interpret=interpret,
    )(q, k, v, bias, *_label_args(labels))


def _backward(q, k, v, bias, labels, do, scale, interpret):
    token, bias_spec, label_specs = _specs(q.shape, None if labels is None else labels.shape[0])
    like = jax.ShapeDtypeStruct(q.shape, q.dtype)
    return pl.pallas_call(
        functools.partial(_backward_kernel, scale=scale, masked=labels is not None),
        grid=(q.shape[1], q.shape[0]),
        in_specs=[token, token, token, bias_spec, *label_specs, token],
        out_specs=[token, token, token, bias_spec],
        out_shape=[like, like, like, jax.ShapeDtypeStruct(bias.shape, jnp.float32)],
        # the bias gradient accumulates over the (inner) window axis
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary")),
        cost_estimate=_cost(q.shape, q.dtype.itemsize, 5, 7, 2),
        interpret=interpret,
    )(q, k, v, bias, *_label_args(labels), do)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def _attention(q, k, v, bias, labels, scale, interpret):
    return _forward(q, k, v, bias, labels, scale, interpret)


def _attention_fwd(q, k, v, bias, labels, scale, interpret):
    return _forward(q, k, v, bias, labels, scale, interpret), (q, k, v, bias, labels)


def _attention_bwd(scale, interpret, res, do):
    q, k, v, bias, labels = res
    dq, dk, dv, dbias = _backward(q, k, v, bias, labels, do, scale, interpret)
    return dq, dk, dv, dbias.astype(bias.dtype), None if labels is None else np.zeros(
        labels.shape, jax.dtypes.float0)


_attention.defvjp(_attention_fwd, _attention_bwd)


def window_attention(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, table: jnp.ndarray,
                     index: np.ndarray, labels: np.ndarray | None, scale: float,
                     platform: str) -> jnp.ndarray:
    """Attention within windows, fused: `q, k, v` `[B·nW, h, N, d]`, the bias `table`
    `[T, h]` gathered by `index` `[N, N]`, the shift mask's region `labels` `[nW, N]`
    (None: no mask) → `[B·nW, h, N, d]`, as `attention.WindowAttention`'s einsum formulation.
    `platform`: the compile target ("tpu"; "cpu" runs the Pallas interpreter)."""
    if platform not in ("tpu", "cpu"):
        raise ValueError(f"config key model.attention='fused' is a TPU kernel; compiled for "
                         f"{platform!r} use model.attention='einsum'")
    n = q.shape[2]
    interpret = platform == "cpu"
    labels_arg = None if labels is None else jnp.asarray(labels, jnp.int32)

    def local(q, k, v, table, labels):
        bias = table[index.reshape(-1)].reshape(n, n, -1).transpose(2, 0, 1)
        return _attention(q, k, v, bias.astype(jnp.float32), labels, scale, interpret)

    mesh = jax.sharding.get_abstract_mesh()
    if not mesh.shape:
        return local(q, k, v, table, labels_arg)
    spec = axes.spec(axes.WINDOW_QKV[1:], q.shape, whole=(axes.TOKENS, axes.KV))
    table_spec = jax.sharding.PartitionSpec(None, spec[1])
    label_spec = jax.sharding.PartitionSpec()
    if labels_arg is None:
        return jax.shard_map(lambda q, k, v, t: local(q, k, v, t, None),
                             in_specs=(spec, spec, spec, table_spec), out_specs=spec,
                             check_vma=False)(q, k, v, table)
    return jax.shard_map(local, in_specs=(spec, spec, spec, table_spec, label_spec),
                         out_specs=spec, check_vma=False)(q, k, v, table, labels_arg)
