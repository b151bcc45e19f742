"""Training losses (ienet_jax.losses)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ienet_jax import losses
from ienet_jax.signal import bpm_grid, normalized_psd


@pytest.fixture(scope="module")
def golden_loss(golden_dir):
    data = np.load(golden_dir / "tscan_fee_seed.npz")
    return data["loss/pred"], data["loss/label"], float(data["loss/neg_pearson"])


def signals(seed, shape=(4, 64)):
    rng = np.random.default_rng(seed)
    t = np.arange(shape[-1]) / 30.0
    label = np.sin(2 * np.pi * rng.uniform(1, 2, (shape[0], 1)) * t)
    pred = label + 0.7 * rng.standard_normal(shape)
    return jnp.asarray(pred, jnp.float32), jnp.asarray(label, jnp.float32)


def test_neg_pearson_matches_golden(golden_loss):
    pred, label, expected = golden_loss
    assert float(losses.neg_pearson(pred, label)) == pytest.approx(expected, rel=1e-5)


def test_neg_pearson_against_numpy_and_sign():
    pred, label = signals(0)
    r = np.array([np.corrcoef(p, q)[0, 1] for p, q in zip(np.asarray(pred), np.asarray(label))])
    np.testing.assert_allclose(losses.neg_pearson(pred, label, reduction="none"), 1 - np.abs(r),
                               rtol=1e-5)
    # An inverted prediction is perfect for |r| and worst for the signed variant.
    assert float(losses.neg_pearson(-label, label)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.neg_pearson(-label, label, signed=True)) == pytest.approx(2.0, abs=1e-6)


def test_neg_pearson_scale_and_offset_invariant():
    pred, label = signals(1)
    base = losses.neg_pearson(pred, label, reduction="none")
    for scale, offset in ((0.1, 3.0), (7.0, -2.0)):
        np.testing.assert_allclose(
            losses.neg_pearson(scale * pred + offset, label, reduction="none"), base, atol=1e-5
        )


@pytest.mark.parametrize(
    "fn",
    [
        lambda p, q, **kw: losses.neg_pearson(p, q, **kw),
        lambda p, q, **kw: losses.neg_pearson(p, q, signed=True, **kw),
        lambda p, q, **kw: losses.spectral_distance(p, q, 30.0, **kw),
        lambda p, q, **kw: losses.mse(p, q, **kw),
        lambda p, q, **kw: losses.l1_hr(p[:, 0] * 60, q[:, 0] * 60, **kw),
    ],
    ids=["neg_pearson", "signed", "spectral", "mse", "l1_hr"],
)
def test_batch_loss_is_mean_of_per_sample_and_jits_with_finite_gradients(fn):
    pred, label = signals(2)
    per_sample = fn(pred, label, reduction="none")
    assert per_sample.shape == (4,)
    batch = jax.jit(fn)(pred, label)
    assert batch.shape == ()
    np.testing.assert_allclose(batch, jnp.mean(per_sample), rtol=1e-6)
    for i in range(4):  # each sample's loss depends only on that sample
        np.testing.assert_allclose(fn(pred[i : i + 1], label[i : i + 1], reduction="none"),
                                   per_sample[i : i + 1], rtol=1e-5, atol=1e-7)
    grad = jax.jit(jax.grad(fn))(pred, label)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.max(jnp.abs(grad))) > 0


def test_gradients_finite_on_zero_signals():
    zeros = jnp.zeros((2, 64))
    _, label = signals(3, (2, 64))
    for fn in (losses.neg_pearson, lambda p, q: losses.spectral_distance(p, q, 30.0)):
        value, grad = jax.value_and_grad(fn)(zeros, label)
        assert bool(jnp.isfinite(value)) and bool(jnp.all(jnp.isfinite(grad)))


def test_spectral_distance_values():
    pred, label = signals(4)
    assert float(losses.spectral_distance(label, label, 30.0)) == 0.0
    # Same spectrum up to scale and phase: distance 0; other frequencies: distance > 0.
    t = np.arange(128) / 30.0
    a = np.sin(2 * np.pi * 1.2 * t)[None]
    b = 3 * np.cos(2 * np.pi * 1.2 * t)[None]
    c = np.sin(2 * np.pi * 2.4 * t)[None]
    assert float(losses.spectral_distance(a, b, 30.0)) < 1e-3
    assert float(losses.spectral_distance(a, c, 30.0)) > 0.05
    psd = lambda x: normalized_psd(x, 30.0, bpm_grid())
    expected = np.mean((np.asarray(psd(pred)) - np.asarray(psd(label))) ** 2, axis=-1)
    np.testing.assert_allclose(losses.spectral_distance(pred, label, 30.0, reduction="none"),
                               expected, rtol=1e-4, atol=1e-7)


def test_mse_and_l1_values():
    pred = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    label = jnp.array([[0.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(losses.mse(pred, label, reduction="none"), [2.5, 4.5])
    assert float(losses.mse(pred, label)) == pytest.approx(3.5)
    assert float(losses.l1_hr(jnp.array([70.0, 80.0]), jnp.array([72.0, 75.0]))) == 3.5


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.neg_pearson(jnp.ones((2, 8)), jnp.ones((2, 9))), "shapes differ"),
        (lambda: losses.neg_pearson(jnp.ones(8), jnp.ones(8)), "rank-2"),
        (lambda: losses.mse(jnp.ones((2, 8)), jnp.ones((2, 8)), reduction="sum"), "reduction"),
        (lambda: losses.l1_hr(jnp.ones((2, 1)), jnp.ones((2, 1))), "rank-1"),
        (lambda: losses.spectral_distance(jnp.ones((2, 8)), jnp.ones((3, 8)), 30.0), "differ"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_spectral_distance_per_clip_rates_under_jit():
    pred, label = signals(5, (2, 64))
    fs = jnp.array([25.0, 35.0])
    both = jax.jit(lambda p, q, f: losses.spectral_distance(p, q, f, reduction="none"))(
        pred, label, fs
    )
    for i in range(2):
        single = losses.spectral_distance(pred[i : i + 1], label[i : i + 1], float(fs[i]))
        np.testing.assert_allclose(both[i], single, rtol=1e-4)


def test_band_limit_keeps_in_band_components_only():
    fs, t = 30.0, 120  # 0.25 Hz bins: 1.5 Hz and 6 Hz fall on bins
    n = np.arange(t) / fs
    slow, fast = np.sin(2 * np.pi * 1.5 * n), 0.8 * np.sin(2 * np.pi * 6.0 * n)
    x = jnp.asarray(np.stack([slow + fast, fast]), jnp.float32)
    got = np.asarray(losses.band_limit(x, jnp.asarray([fs, fs]), (0.6, 3.3)))
    np.testing.assert_allclose(got[0], slow, atol=1e-4)
    np.testing.assert_allclose(got[1], 0.0, atol=1e-4)


def test_neg_pearson_band_ignores_out_of_band_noise():
    fs, t = 30.0, 120
    n = np.arange(t) / fs
    label = np.sin(2 * np.pi * 1.25 * n)[None]
    pred = label + 2.0 * np.sin(2 * np.pi * 7.0 * n)[None]  # strong high-frequency noise
    raw = float(losses.neg_pearson(pred, label))
    band = float(losses.neg_pearson(pred, label, fs=fs, band_hz=(0.6, 3.3)))
    assert raw > 0.5 and band < 1e-4
    with pytest.raises(ValueError, match="fs"):
        losses.neg_pearson(pred, label, band_hz=(0.6, 3.3))
