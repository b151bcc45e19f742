"""TS-CAN input and label transforms (numpy and JAX paths)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ienet_jax.data.tscan_inputs import INPUT_PREPS, open_rppg_inputs, tscan_inputs, tscan_label


def _frames(shape=(2, 9, 4, 5, 3), seed=0):
    return np.random.default_rng(seed).integers(1, 256, size=shape, dtype=np.uint8)


def test_inputs_definition():
    u8 = _frames()
    x = u8.astype(np.float64)
    out = tscan_inputs(u8)
    assert out.shape == (2, 8, 4, 5, 6) and out.dtype == np.float32
    motion = (x[:, 1:] - x[:, :-1]) / (x[:, 1:] + x[:, :-1])
    motion /= motion.std(axis=(1, 2, 3, 4), keepdims=True)
    np.testing.assert_allclose(out[..., :3], motion, rtol=1e-4, atol=1e-5)
    app = x[:, :8]
    app = (app - app.mean(axis=(1, 2, 3, 4), keepdims=True)) / app.std(
        axis=(1, 2, 3, 4), keepdims=True)
    np.testing.assert_allclose(out[..., 3:], app, rtol=1e-4, atol=1e-5)
    # Statistics are per clip: changing clip 0 leaves clip 1 alone.
    other = u8.copy()
    other[0] = 7
    np.testing.assert_array_equal(tscan_inputs(other)[1], out[1])


def test_inputs_padded_and_jax_paths():
    u8 = _frames((8, 4, 4, 3))  # no batch axis
    padded = tscan_inputs(u8, num_frames=8)
    assert padded.shape == (8, 4, 4, 6)
    np.testing.assert_array_equal(padded[-1, ..., :3], 0.0)
    assert np.all(padded[:-1, ..., :3].std(axis=(1, 2, 3)) > 0)
    jitted = jax.jit(lambda f: tscan_inputs(f, num_frames=8))(jnp.asarray(u8))
    assert isinstance(jitted, jax.Array)
    np.testing.assert_allclose(np.asarray(jitted), padded, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="num_frames"):
        tscan_inputs(u8, num_frames=5)
    with pytest.raises(ValueError, match=r"\[..., N, H, W, 3\]"):
        tscan_inputs(u8[..., :2])


def test_label():
    t = np.arange(61) / 30.0
    bvp = np.stack([np.sin(2 * np.pi * 1.2 * t), 3 + 2 * np.cos(2 * np.pi * 1.5 * t)])
    lab = tscan_label(bvp)
    assert lab.shape == (2, 60)
    d = np.diff(bvp, axis=-1)
    np.testing.assert_allclose(lab, d / d.std(axis=-1, keepdims=True), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lab.std(axis=-1), 1.0, rtol=1e-4)
    padded = tscan_label(jnp.asarray(bvp), num_samples=61)
    assert padded.shape == (2, 61) and float(jnp.abs(padded[:, -1]).max()) == 0.0


def test_open_rppg_inputs_definition_and_paths():
    u8 = _frames((2, 7, 4, 5, 3), seed=2)
    x = u8.astype(np.float64) / 255
    out = open_rppg_inputs(u8, num_frames=7)
    assert out.shape == (2, 7, 4, 5, 6) and out.dtype == np.float32
    d = x[:, 1:] - x[:, :-1]
    d = (d - d.mean(axis=(2, 3), keepdims=True)) / (d.std(axis=(2, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(out[:, :6, ..., :3], d, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out[:, 6, ..., :3], out[:, 5, ..., :3])  # last one repeated
    np.testing.assert_allclose(out[..., 3:], np.broadcast_to(x.mean(axis=1, keepdims=True),
                                                             x.shape), rtol=1e-5, atol=1e-6)
    short = open_rppg_inputs(u8)
    assert short.shape == (2, 6, 4, 5, 6)
    np.testing.assert_allclose(short, out[:, :6], rtol=1e-6)
    # A repeated frame (zero difference) gives zeros, not NaN (the float16 bug of the package).
    still = u8.copy()
    still[:, 1] = still[:, 0]
    np.testing.assert_array_equal(open_rppg_inputs(still)[:, 0, ..., :3], 0.0)
    jitted = jax.jit(lambda f: open_rppg_inputs(f, num_frames=7))(jnp.asarray(u8))
    np.testing.assert_allclose(np.asarray(jitted), out, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="num_frames"):
        open_rppg_inputs(u8, num_frames=5)
    with pytest.raises(ValueError, match=r"open_rppg_inputs.*\[..., N, H, W, 3\]"):
        open_rppg_inputs(u8[..., :2])
    assert INPUT_PREPS == {"toolbox": tscan_inputs, "open_rppg": open_rppg_inputs}
