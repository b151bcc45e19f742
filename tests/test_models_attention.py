"""Window attention: relative-position index, shift mask, window partition, implementations."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from ienet_jax.models import platform as compile_target
from ienet_jax.models.attention import (
    WindowAttention,
    effective_window,
    merge_windows,
    qkv_windows,
    relative_position_index,
    shift_mask,
    table_size,
    window_partition,
    window_reverse,
)


def test_relative_position_index_brute_force():
    window = (2, 3, 4)
    coords = list(itertools.product(*(range(w) for w in window)))
    index = relative_position_index(window)
    assert index.shape == (24, 24)
    for i, a in enumerate(coords):
        for j, b in enumerate(coords):
            dd, dh, dw = (a[k] - b[k] + window[k] - 1 for k in range(3))
            assert index[i, j] == dd * (2 * window[1] - 1) * (2 * window[2] - 1) + dh * (
                2 * window[2] - 1) + dw
    assert index.max() == table_size(window) - 1


def test_effective_window_shrinks_and_drops_shift():
    assert effective_window((64, 16, 16), (2, 7, 7), (1, 3, 3)) == ((2, 7, 7), (1, 3, 3))
    assert effective_window((64, 4, 4), (2, 7, 7), (1, 3, 3)) == ((2, 4, 4), (1, 0, 0))
    assert effective_window((64, 7, 9), (2, 7, 7), (1, 3, 3)) == ((2, 7, 7), (1, 0, 3))


def test_window_partition_round_trip_and_order():
    x = jnp.arange(2 * 4 * 6 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 6, 3)
    windows = window_partition(x, (2, 3, 3))
    assert windows.shape == (2 * 2 * 2 * 2, 18, 3)
    np.testing.assert_array_equal(windows[1], x[0, 0:2, 0:3, 3:6].reshape(18, 3))
    np.testing.assert_array_equal(window_reverse(windows, (2, 3, 3), (2, 4, 6, 6)), x)


def test_heads_first_windows_match_window_partition():
    """`qkv_windows` / `merge_windows` are `window_partition` / `window_reverse` with the
    heads moved before the tokens."""
    window, shape = (2, 3, 3), (2, 4, 6, 6)
    qkv = jax.random.normal(jax.random.PRNGKey(0), (*shape, 3, 2, 5))
    got = qkv_windows(qkv, window)  # [3, Bw, h, N, d]
    want = window_partition(qkv.reshape(*shape, 30), window).reshape(-1, 18, 3, 2, 5)
    np.testing.assert_array_equal(got, want.transpose(2, 0, 3, 1, 4))
    out = got[1]  # [Bw, h, N, d]
    want = window_reverse(out.transpose(0, 2, 1, 3).reshape(-1, 18, 10), window, shape)
    np.testing.assert_array_equal(merge_windows(out, window, shape), want)


def test_shift_mask_matches_region_rule():
    padded, window, shift = (4, 6, 6), (2, 3, 3), (1, 1, 1)
    mask = shift_mask(padded, window, shift)
    assert mask.shape == (8, 18, 18)

    def region(pos, size, w, s):
        return 0 if pos < size - w else (1 if pos < size - s else 2)

    ids = np.zeros(padded, int)
    for d, h, w in itertools.product(*(range(p) for p in padded)):
        ids[d, h, w] = 9 * region(d, 4, 2, 1) + 3 * region(h, 6, 3, 1) + region(w, 6, 3, 1)
    win_ids = np.asarray(window_partition(jnp.asarray(ids[None, ..., None]), window))[..., 0]
    want = np.where(win_ids[:, :, None] != win_ids[:, None, :], -100.0, 0.0)
    np.testing.assert_array_equal(mask, want)
    # An unshifted axis (the reference's `-0` slice) does not split regions.
    flat = shift_mask((4, 4, 4), (2, 4, 4), (1, 0, 0))
    assert np.count_nonzero(flat[0]) == 0 and np.count_nonzero(flat[1]) > 0


def test_shrunken_window_uses_top_left_of_configured_index():
    attn = WindowAttention(dim=8, heads=2, window=(2, 7, 7))
    # A 2×4×4 grid: one window of 32 tokens per example (the window shrinks to the grid).
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 4, 4, 8))
    variables = nn.unbox(attn.init(jax.random.PRNGKey(1), x, (0, 0, 0), train=False))
    params = variables["params"]
    out = attn.apply(variables, x, (0, 0, 0), train=False)
    # Independent computation with the [:32, :32] slice of the (2, 7, 7) index.
    table = np.asarray(params["relative_position_bias_table"])
    bias = table[relative_position_index((2, 7, 7))[:32, :32]].transpose(2, 0, 1)
    # the head-major [C, 3, heads, C/heads] kernel is the reference's [C, 3C] reshaped
    kernel, qkv_bias = params["qkv"]["kernel"], params["qkv"]["bias"]
    assert kernel.shape == (8, 3, 2, 4) and qkv_bias.shape == (3, 2, 4)
    qkv = x.reshape(3, 32, 8) @ kernel.reshape(8, 24) + qkv_bias.reshape(24)
    q, k, v = (qkv[..., i * 8:(i + 1) * 8].reshape(3, 32, 2, 4) for i in range(3))
    logits = jnp.einsum("bnhd,bmhd->bhnm", q * 0.5, k) + bias
    o = jnp.einsum("bhnm,bmhd->bnhd", jax.nn.softmax(logits, -1), v).reshape(3, 32, 8)
    want = o @ params["proj"]["kernel"].reshape(8, 8) + params["proj"]["bias"]
    np.testing.assert_allclose(out, want.reshape(x.shape), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("target", ["cpu", "tpu"])
def test_projections_skip_padding_with_the_reference_values(target):
    """Compiled for the CPU, qkv before the zero padding (padded tokens get the bias) and
    the output projection after the crop; for an accelerator, the tokens partitioned
    first: both equal the reference's order: pad, shift, project, attend, project, crop."""
    window, shift, grid = (2, 4, 4), (1, 2, 2), (2, 6, 7)
    attn = WindowAttention(dim=12, heads=3, window=window)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, *grid, 12))
    with compile_target.target(target):
        variables = nn.unbox(attn.init(jax.random.PRNGKey(1), x, shift, train=False))
        params = jax.tree.map(lambda p: p + 0.1, variables["params"])  # non-zero biases
        variables = {"params": params}
        out = attn.apply(variables, x, shift, train=False)

    win, sh = effective_window(grid, window, shift)
    padded = (2, 8, 8)
    y = jnp.pad(x, ((0, 0), (0, 0), (0, 2), (0, 1), (0, 0)))
    y = jnp.roll(y, tuple(-s for s in sh), axis=(1, 2, 3))
    windows = window_partition(y, win)
    bw, n = windows.shape[:2]
    qkv = windows @ params["qkv"]["kernel"].reshape(12, 36) + params["qkv"]["bias"].reshape(36)
    q, k, v = (qkv[..., i * 12:(i + 1) * 12].reshape(bw, n, 3, 4) for i in range(3))
    table = params["relative_position_bias_table"]
    bias = table[relative_position_index(window)[:n, :n]].transpose(2, 0, 1)
    mask = np.tile(shift_mask(padded, win, sh), (2, 1, 1))[:, None]
    logits = jnp.einsum("bnhd,bmhd->bhnm", q * 0.5, k) + bias + mask
    o = jnp.einsum("bhnm,bmhd->bnhd", jax.nn.softmax(logits, -1), v).reshape(bw, n, 12)
    o = jnp.roll(window_reverse(o, win, (2, *padded)), sh, axis=(1, 2, 3))
    o = o @ params["proj"]["kernel"].reshape(12, 12) + params["proj"]["bias"]
    np.testing.assert_allclose(out, o[:, :2, :6, :7], rtol=1e-5, atol=1e-5)


def test_cpu_and_accelerator_formulations_have_the_same_gradients():
    """The two orders of `WindowAttention` (`ienet_jax.models.platform`) differ only in
    where the work happens: same loss, same gradients of every parameter and the input."""
    window, shift, grid = (2, 4, 4), (1, 2, 2), (4, 6, 7)
    attn = WindowAttention(dim=12, heads=3, window=window)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, *grid, 12))
    params = nn.unbox(attn.init(jax.random.PRNGKey(1), x, shift, train=False))["params"]
    params = jax.tree.map(lambda p: p + 0.1, params)

    def grads(target):
        def loss(p, x):
            return jnp.sum(jnp.sin(attn.apply({"params": p}, x, shift, train=False)))

        with compile_target.target(target):
            return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)

    (cpu_loss, cpu_grads), (tpu_loss, tpu_grads) = grads("cpu"), grads("tpu")
    np.testing.assert_allclose(cpu_loss, tpu_loss, rtol=1e-5)
    flat_cpu, flat_tpu = jax.tree.leaves(cpu_grads), jax.tree.leaves(tpu_grads)
    assert len(flat_cpu) == len(flat_tpu) == 6
    for a, b in zip(flat_cpu, flat_tpu, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_einsum_and_dot_product_agree_with_mask():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 8, 8, 12))
    a = WindowAttention(dim=12, heads=3, window=(2, 4, 4), impl="einsum")
    b = WindowAttention(dim=12, heads=3, window=(2, 4, 4), impl="dot_product")
    shift = (1, 2, 2)
    variables = nn.unbox(a.init(jax.random.PRNGKey(1), x, shift, train=False))
    np.testing.assert_allclose(
        a.apply(variables, x, shift, train=False), b.apply(variables, x, shift, train=False),
        rtol=1e-5, atol=1e-5,
    )
    with pytest.raises(ValueError, match="model.attention"):
        WindowAttention(dim=12, heads=3, window=(2, 4, 4), impl="flash").apply(
            variables, x, shift, train=False)
