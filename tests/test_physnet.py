"""PhysNet: open-rppg's real-data-trained Keras weights reproduced (golden), the Keras key map
and its errors, the config checks, and the tiny variant through trainer, evaluate, predict."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from configs import common
from configs import physnet as physnet_configs
from ienet_jax.convert.keras_h5 import read_weights_h5
from ienet_jax.models import build, contract


@functools.cache
def _forward(variant: str):
    """A jitted eval-mode forward of a config variant (compiled once per test session)."""
    model = build(physnet_configs.model_config(variant))
    return jax.jit(lambda variables, x: model.apply(variables, x, train=False)["rppg"])


@pytest.mark.parametrize("dataset", ["pure", "rlap"])
def test_golden_open_rppg_weights(golden_dir, dataset):
    folder = golden_dir / "open_rppg"
    golden = np.load(folder / f"physnet_{dataset}.npz")
    config = physnet_configs.model_config("open_rppg")
    physnet = contract.get(config)
    with open(folder / "weights" / f"physnet.{dataset}.weights.h5", "rb") as f:  # file object
        weights = read_weights_h5(f)
    assert weights["ConvBlock1/layers/conv3d/vars/0"].dtype == np.float32  # stored float16
    variables = physnet.convert(weights, config)
    (x,) = physnet.inputs({"rgb": jnp.asarray(golden["frames_u8"])})
    assert x.dtype == jnp.float32 and float(x.max()) <= 1.0
    out = np.asarray(_forward("open_rppg")(variables, x))
    ref = golden["output"]
    assert out.shape == ref.shape == (4, 128)
    np.testing.assert_allclose(out.std(axis=1), 1.0, rtol=1e-4)  # standardised over T
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-4


def _keras_weights(variables: dict, groups=(9, 10)) -> dict:
    """The Keras `.weights.h5` dict open-rppg would save for `variables` (the inverse map,
    written out independently of the converter)."""
    p, s = variables["params"], variables["batch_stats"]
    out = {}

    def norm(prefix, m):
        for i, v in enumerate((p[m]["scale"], p[m]["bias"], s[m]["mean"], s[m]["var"])):
            out[f"{prefix}/layers/batch_normalization/vars/{i}"] = np.asarray(v)

    for i in range(1, 10):
        out[f"ConvBlock{i}/layers/conv3d/vars/0"] = np.asarray(p[f"block{i}_conv"]["kernel"])
        out[f"ConvBlock{i}/layers/conv3d/vars/1"] = np.asarray(p[f"block{i}_conv"]["bias"])
        norm(f"ConvBlock{i}", f"block{i}_norm")
    for i, n in enumerate(groups, start=1):
        prefix = f"layers/sequential_{n}"
        kernel = np.asarray(p[f"up{i}_conv"]["kernel"])[::-1, ::-1, ::-1]  # [k, in, out]
        out[f"{prefix}/layers/conv3d_transpose/vars/0"] = np.swapaxes(kernel, -1, -2)
        out[f"{prefix}/layers/conv3d_transpose/vars/1"] = np.asarray(p[f"up{i}_conv"]["bias"])
        norm(prefix, f"up{i}_norm")
    out["convBlock10/vars/0"] = np.asarray(p["out"]["kernel"])
    out["convBlock10/vars/1"] = np.asarray(p["out"]["bias"])
    return out


@pytest.fixture(scope="module")
def tiny():
    """(config, random variables with distinct values everywhere) of the `tiny` variant."""
    config = physnet_configs.model_config("tiny")
    model = build(config)
    x = jax.ShapeDtypeStruct((1, config.clip_length, config.frame_size, config.frame_size, 3),
                             jnp.float32)
    shapes = nn.unbox(jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x))
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: rng.uniform(0.5, 1.5, s.shape).astype(np.float32),
                             shapes)
    return config, variables


def test_keras_key_map_round_trips(tiny):
    config, variables = tiny
    # sequential_9 before sequential_10: ordered by number, not as strings
    got = contract.get(config).convert(_keras_weights(variables), config)
    jax.tree.map(np.testing.assert_array_equal, got, variables)


def test_missing_misshapen_and_unexpected_keys_are_named(tiny):
    config, variables = tiny
    physnet = contract.get(config)
    weights = _keras_weights(variables)
    key = "ConvBlock4/layers/batch_normalization/vars/3"
    with pytest.raises(ValueError, match=f"no key '{key}'"):
        physnet.convert({k: v for k, v in weights.items() if k != key}, config)
    key = "layers/sequential_10/layers/conv3d_transpose/vars/0"
    with pytest.raises(ValueError, match=f"key '{key}' has shape"):
        physnet.convert(dict(weights, **{key: weights[key][:2]}), config)
    with pytest.raises(ValueError, match="unexpected keys \\['ConvBlock11/vars/0'\\]"):
        physnet.convert(dict(weights, **{"ConvBlock11/vars/0": np.zeros(1)}), config)
    with pytest.raises(ValueError, match="two Conv3DTranspose groups"):
        physnet.convert({k: v for k, v in weights.items() if "sequential_9" not in k}, config)


def test_config_checks_name_the_key():
    from ienet_jax.train.objectives import check_weights

    for key, value in (("clip_length", 18), ("frame_size", 8), ("filters", (4, 8))):
        section = physnet_configs.model_config("tiny")
        section[key] = value
        with pytest.raises(ValueError, match=f"config key model.{key} must be"):
            build(section)
    config = physnet_configs.get_config()
    assert config.model.clip_length == 128 and config.data.modalities == ("rgb",)
    check_weights(config.train.loss, config.model)  # neg_pearson
    config.unlock()
    config.train.loss.mse = 1.0
    with pytest.raises(ValueError, match="train.loss.mse: model.name='physnet' supports"):
        check_weights(config.train.loss, config.model)


def test_other_clip_lengths_and_frame_sizes():
    model = build(physnet_configs.model_config("tiny"))

    def shapes(x_shape):
        x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
        return jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x)[0], x)

    assert shapes((2, 8, 20, 24, 3))["rppg"].shape == (2, 8)
    assert shapes((1, 36, 16, 16, 3))["rppg"].shape == (1, 36)
    with pytest.raises(ValueError, match="multiple of 4"):
        shapes((1, 6, 16, 16, 3))
    with pytest.raises(ValueError, match="at least 16 pixels"):
        shapes((1, 8, 16, 12, 3))


def test_tiny_trains_evaluates_and_predicts(tmp_path):
    from test_models_contract import train_evaluate_predict

    c = common.build_config(physnet_configs.model_config("tiny"), "quickstart", "tiny")
    c.train.num_steps = 2
    c.train.batch_size = c.eval.batch_size = 8
    c.eval.every_steps = 0  # the toy model's test covers evaluation inside the loop
    c.eval.num_batches = 1
    c.checkpoint.async_save = False
    c.logging.tensorboard = False
    c.data.synthetic.num_clips = 16
    state = train_evaluate_predict(c, tmp_path)
    assert state.params["block2_conv"]["kernel"].shape == (3, 3, 3, 4, 8)
    assert float(np.abs(state.batch_stats["block1_norm"]["mean"]).max()) > 0  # BN trained
