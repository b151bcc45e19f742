"""FEE head: golden parity through the converter, hard/soft gates, gradients, config."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from configs.ienet import model_config
from ienet_jax import models
from ienet_jax.convert.fee import fee_variables
from ienet_jax.models.fee import FEEHead
from ienet_jax.signal.spectrum import bpm_grid

SECTION = 'fee head (keys prefixed "fee." for det_init)'
FEE = model_config().fee  # the values live in the config (the module has no defaults)


def head(**overrides) -> FEEHead:
    kwargs = dict(bpm_min=FEE.bpm_min, bpm_max=FEE.bpm_max, temperature=FEE.temperature,
                  conv_impl="auto")
    return FEEHead(**dict(kwargs, **overrides))


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def golden(golden_dir):
    return dict(np.load(golden_dir / "tscan_fee_seed.npz"))


@pytest.fixture(scope="module")
def state_dict(golden_dir, det_init):
    shapes = json.loads((golden_dir / "tscan_fee_state_dict.json").read_text())[SECTION]
    return {
        k: det_init.det_tensor("fee." + k, s)
        for k, s in shapes.items()
        if not k.endswith("num_batches_tracked")
    }


@pytest.fixture(scope="module")
def variables(state_dict):
    return fee_variables(state_dict)


def test_converter_matches_init_structure(variables):
    model = head()
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((2, 128)), 30.0, train=False)
    )
    shapes = nn.unbox(shapes)
    assert jax.tree.structure(variables) == jax.tree.structure(shapes)
    for got, want in zip(jax.tree.leaves(variables), jax.tree.leaves(shapes)):
        assert got.shape == want.shape


def test_golden_parity(golden, variables):
    out = jax.jit(lambda v, x: head().apply(v, x, float(golden["fee/fs"]), train=False))(
        variables, jnp.asarray(golden["fee/signal"])
    )
    assert rel_err(out["signal"], golden["fee/head_out"]) < 1e-4
    assert rel_err(out["psd"], golden["fee/psd_of_head_out"]) < 1e-4
    np.testing.assert_array_equal(np.asarray(out["hr"]), golden["fee/hr_of_head_out"])
    # Eval-mode HR is the arg-max bpm of the PSD.
    np.testing.assert_array_equal(
        np.asarray(out["hr"]), bpm_grid()[np.argmax(np.asarray(out["psd"]), axis=-1)]
    )


def test_prefix_and_errors(state_dict):
    prefixed = {"hr_head." + k: v for k, v in state_dict.items()}
    a = fee_variables(prefixed, prefix="hr_head.")
    b = fee_variables(state_dict)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    missing = dict(state_dict)
    del missing["bn2.running_var"]
    with pytest.raises(ValueError, match="bn2.running_var"):
        fee_variables(missing)
    bad = dict(state_dict, **{"conv1.weight": np.zeros((16, 1, 5), np.float32)})
    with pytest.raises(ValueError, match=r"conv1\.weight.*\(16, 1, 3\)"):
        fee_variables(bad)


def test_soft_gate_gradients(golden, variables):
    model = head()
    signal = jnp.asarray(golden["fee/signal"])
    target = jnp.asarray(golden["fee/true_hr"], jnp.float32)

    def loss(params, x):
        out, _ = model.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            x, 30.0, train=True, mutable=["batch_stats"],
        )
        return jnp.mean(jnp.abs(out["hr"] - target)), out

    (value, out), (g_params, g_x) = jax.jit(
        jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
    )(variables["params"], signal)
    assert np.isfinite(float(value))
    # Soft HR stays close to the hard (arg-max) HR of the same PSD.
    hard = bpm_grid()[np.argmax(np.asarray(out["psd"]), axis=-1)]
    assert np.max(np.abs(np.asarray(out["hr"]) - hard)) < 2.0
    for leaf in jax.tree.leaves(g_params):
        assert np.all(np.isfinite(leaf))
    assert max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree.leaves(g_params)) > 0
    assert np.all(np.isfinite(g_x)) and float(jnp.max(jnp.abs(g_x))) > 0


def test_train_mode_updates_batch_stats(variables):
    x = jax.random.normal(jax.random.key(1), (3, 64))
    _, updates = head().apply(variables, x, 30.0, train=True, mutable=["batch_stats"])
    before = variables["batch_stats"]["bn1"]["mean"]
    after = updates["batch_stats"]["bn1"]["mean"]
    np.testing.assert_allclose(after, 0.9 * before + 0.1 * np.asarray(
        jnp.mean(_conv1(variables, x), axis=(0, 1))), rtol=1e-5, atol=1e-6)


def _conv1(variables, x):
    from ienet_jax.models.conv import conv

    return conv(x[..., None], jnp.asarray(variables["params"]["conv1"]["kernel"]), ((1, 1),))


def test_per_clip_fs_and_bpm_grid(variables):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 128)), jnp.float32)
    model = head(bpm_min=45.0, bpm_max=150.0)
    out = model.apply(variables, x, jnp.array([30.0, 25.0]), train=False)
    assert out["psd"].shape == (2, 105)
    assert np.all((out["hr"] >= 45) & (out["hr"] < 150))


def test_config_validation_names_the_fee_key():
    for key, value, message in (("temperature", 0.0, "model.fee.temperature"),
                                ("bpm_min", 200.0, "model.fee.bpm_min")):
        cfg = model_config("tiny")
        cfg.fee.enabled = True
        cfg.fee[key] = value
        with pytest.raises(ValueError, match=message):
            models.build(cfg)
    del cfg.fee["temperature"]
    with pytest.raises(ValueError, match="config key model.fee.temperature is missing"):
        models.build(cfg)
