"""bpm-grid PSD and FEE gates (ienet_jax.signal.spectrum) against the reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ienet_jax.signal import bpm_grid, bpm_power, hard_gate_hr, normalized_psd, soft_gate_hr


@pytest.fixture(scope="module")
def fee(golden_dir):
    data = np.load(golden_dir / "tscan_fee_seed.npz")
    return {k[4:]: data[k] for k in data.files if k.startswith("fee/")}


def max_rel(a, b):
    """The golden README's measure: max |a − b| / max |b|."""
    return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


def test_grid_is_reference_grid(fee):
    np.testing.assert_array_equal(bpm_grid(), fee["bpm_range"])


@pytest.mark.parametrize("source", ["signal", "head_out"])
def test_golden_psd_and_hard_gate_hr(fee, source):
    psd = normalized_psd(fee[source], float(fee["fs"]), fee["bpm_range"])
    golden_psd = fee["psd_of_signal" if source == "signal" else "psd_of_head_out"]
    assert max_rel(psd, golden_psd) < 1e-5
    hr = hard_gate_hr(psd, fee["bpm_range"])
    golden_hr = fee["hr_of_signal" if source == "signal" else "hr_of_head_out"]
    np.testing.assert_allclose(hr, golden_hr, rtol=1e-5)


def test_bpm_power_equals_fft_on_integer_bins():
    fs, n = 30.0, 128
    x = np.random.default_rng(0).standard_normal((3, n)).astype(np.float32)
    bins = np.arange(3, 13)
    bpm = bins * fs / n * 60.0  # grid on exact FFT bins
    spectrum = np.abs(np.fft.rfft(x * np.hanning(n), axis=-1)[:, bins]) ** 2
    np.testing.assert_allclose(bpm_power(x, fs, bpm), spectrum, rtol=2e-4)


def test_per_clip_rates():
    x = np.random.default_rng(1).standard_normal((2, 96)).astype(np.float32)
    fs = np.array([25.0, 35.0], np.float32)
    both = normalized_psd(x, fs, bpm_grid())
    for i in range(2):
        single = normalized_psd(x[i], float(fs[i]), bpm_grid())
        np.testing.assert_allclose(both[i], single, rtol=0, atol=1e-5)  # PSD values in [0, 1]


def test_hard_gate_is_argmax_bpm():
    x = np.random.default_rng(2).standard_normal((6, 128)).astype(np.float32)
    bpm = bpm_grid()
    psd = normalized_psd(x, 30.0, bpm)
    np.testing.assert_array_equal(hard_gate_hr(psd, bpm), bpm[np.argmax(psd, axis=-1)])


def test_soft_gate_tends_to_hard_gate():
    x = np.random.default_rng(3).standard_normal((4, 128)).astype(np.float32)
    bpm = bpm_grid()
    psd = normalized_psd(x, 30.0, bpm)
    hard = hard_gate_hr(psd, bpm)
    temperatures = (1.0, 0.1, 1e-2, 1e-3, 1e-4)
    errors = [float(jnp.max(jnp.abs(soft_gate_hr(psd, bpm, t) - hard))) for t in temperatures]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    # Bins 1 bpm from the peak sit within 1e-3 of it, hence the small final temperature.
    assert errors[-1] < 0.05


def test_soft_gate_gradient_reaches_signal():
    rng = np.random.default_rng(4)
    t = np.arange(128) / 30.0
    x = jnp.asarray(np.sin(2 * np.pi * 1.3 * t) + 0.5 * rng.standard_normal((2, 128)), jnp.float32)
    bpm = bpm_grid()

    def hr_loss(signal):
        psd = normalized_psd(signal, 30.0, bpm, eps=1e-8)
        return jnp.mean(jnp.abs(soft_gate_hr(psd, bpm, 0.1) - 90.0))

    grad = jax.jit(jax.grad(hr_loss))(x)
    assert bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.max(jnp.abs(grad))) > 0
    # The hard gate, as published, sends no gradient back.
    hard = jax.grad(lambda s: jnp.sum(hard_gate_hr(normalized_psd(s, 30.0, bpm), bpm)))(x)
    assert float(jnp.max(jnp.abs(hard))) == 0.0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="temperature"):
        soft_gate_hr(jnp.ones((2, 5)), jnp.arange(5.0), 0.0)
    with pytest.raises(ValueError, match="bpm grid"):
        bpm_grid(100.0, 40.0)
