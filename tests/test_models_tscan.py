"""TS-CAN model: temporal shift, attention mask, pooling, input prep, jitted forward/step,
dtypes, config."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from configs import tscan as tscan_configs
from ienet_jax.data.tscan_inputs import open_rppg_inputs, tscan_inputs
from ienet_jax.models import build, contract
from ienet_jax.models.tscan import (
    TSCAN,
    attention_mask,
    avg_pool,
    flat_spatial_size,
    temporal_shift,
)


def _shift_loop(x, depth, fill="zeros"):
    """Plain-loop TSM, frame by frame, as a cross-check ("edge": the frame itself at the ends)."""
    out = np.zeros_like(x)
    fold = x.shape[-1] // 3
    for i in range(x.shape[0]):
        pos = i % depth
        if pos + 1 < depth:
            out[i, ..., :fold] = x[i + 1, ..., :fold]
        elif fill == "edge":
            out[i, ..., :fold] = x[i, ..., :fold]
        if pos > 0:
            out[i, ..., fold:2 * fold] = x[i - 1, ..., fold:2 * fold]
        elif fill == "edge":
            out[i, ..., fold:2 * fold] = x[i, ..., fold:2 * fold]
        out[i, ..., 2 * fold:] = x[i, ..., 2 * fold:]
    return out


@pytest.mark.parametrize("fill", ["zeros", "edge"])
@pytest.mark.parametrize("channels", [3, 8, 32])
def test_temporal_shift_matches_loop(channels, fill):
    x = np.random.default_rng(channels).standard_normal((12, 2, 3, channels)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(temporal_shift(jnp.asarray(x), 4, fill)),
                                  _shift_loop(x, 4, fill))
    with pytest.raises(ValueError, match="multiple of 5"):
        temporal_shift(jnp.asarray(x), 5)
    with pytest.raises(ValueError, match="fill"):
        temporal_shift(jnp.asarray(x), 4, "wrap")


def test_shift_fills_differ_only_at_segment_ends():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((12, 2, 3, 6)), jnp.float32)
    zeros, edge = (np.asarray(temporal_shift(x, 6, f)) for f in ("zeros", "edge"))
    differs = np.any(zeros != edge, axis=(1, 2, 3))
    np.testing.assert_array_equal(differs, [True, False, False, False, False, True] * 2)


def test_attention_mask_and_pool():
    g = jax.nn.sigmoid(jax.random.normal(jax.random.key(0), (2, 5, 4, 1)))
    m = attention_mask(g)
    np.testing.assert_allclose(np.sum(np.asarray(m), axis=(1, 2, 3)), [10.0, 10.0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(m / g)[0].std(), 0.0, atol=1e-5)  # one scale per map
    x = jnp.arange(2 * 5 * 5 * 3, dtype=jnp.float32).reshape(2, 5, 5, 3)
    p = avg_pool(x, 2)
    assert p.shape == (2, 2, 2, 3)
    np.testing.assert_allclose(p[0, 1, 0, 1], np.mean(np.asarray(x)[0, 2:4, 0:2, 1]))
    assert flat_spatial_size(36) == 7 and flat_spatial_size(72) == 16


def _random_variables(model, frames_shape, seed=0):
    """Variables of `model` filled with random numbers, without compiling `model.init`."""
    frames = jax.ShapeDtypeStruct(frames_shape, jnp.float32)
    shapes = nn.unbox(jax.eval_shape(lambda x: model.init(jax.random.key(0), x), frames))
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: (rng.standard_normal(s.shape) / np.sqrt(max(1, np.prod(s.shape[:-1])))).astype(
            np.float32), shapes)


def _raw_frames(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


@pytest.mark.parametrize("variant", tscan_configs.VARIANTS)
def test_jitted_forward_variants(variant):
    cfg = tscan_configs.get_config(variant).model
    model = build(cfg)
    assert isinstance(model, TSCAN)
    shape = (2, cfg.frame_depth, cfg.frame_size, cfg.frame_size, 3)
    frames = _raw_frames(shape)
    variables = _random_variables(model, shape)
    d = flat_spatial_size(cfg.frame_size, cfg.kernel_size, cfg.pool)
    assert variables["params"]["hidden"]["kernel"].shape == (d * d * cfg.filters[1], cfg.hidden)
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
    out = forward(variables, frames)
    assert out["rppg"].shape == (2, cfg.frame_depth) and out["rppg"].dtype == jnp.float32
    assert np.all(np.isfinite(out["rppg"])) and float(jnp.std(out["rppg"])) > 0
    # Clips are independent: the second clip's output does not depend on the first one.
    out2 = forward(variables, frames.at[0].set(0))
    np.testing.assert_allclose(out2["rppg"][1], out["rppg"][1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out2["rppg"][0], out["rppg"][0])


def test_jitted_train_step_tiny():
    cfg = tscan_configs.get_config("tiny").model
    model = TSCAN.from_config(cfg)
    rng = np.random.default_rng(0)
    shape = (2, cfg.clip_length, cfg.frame_size, cfg.frame_size, 6)
    frames = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    target = jnp.asarray(rng.standard_normal((2, cfg.clip_length)), jnp.float32)
    params = _random_variables(model, shape)["params"]
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, rng):
        def loss_fn(p):
            out = model.apply({"params": p}, frames, train=True, rngs={"dropout": rng})
            return jnp.mean((out["rppg"] - target) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss, grads

    # Dropout is active in training: two rngs, two losses from the same parameters.
    assert float(step(params, opt_state, jax.random.key(100))[2]) != float(
        step(params, opt_state, jax.random.key(101))[2])
    losses = []
    for i in range(15):
        params, opt_state, loss, grads = step(params, opt_state, jax.random.key(i))
        losses.append(float(loss))
        if i == 0:
            for path, g in jax.tree_util.tree_leaves_with_path(grads):
                assert np.all(np.isfinite(g)), path
                assert float(jnp.max(jnp.abs(g))) > 0, path
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < losses[0]


def test_bad_inputs():
    cfg = tscan_configs.get_config("tiny").model
    model = TSCAN.from_config(cfg)
    with pytest.raises(ValueError, match="multiple of frame_depth=4"):
        model.init(jax.random.key(0), jnp.zeros((1, 6, 12, 12, 6)))
    with pytest.raises(ValueError, match=r"\[B, T, H, W, 3\].*\[B, T, H, W, 6\]"):
        model.init(jax.random.key(0), jnp.zeros((1, 4, 12, 12, 4)))
    cfg.input_prep = "open_rppg"
    with pytest.raises(ValueError, match="input_prep='open_rppg'.*data.normalize"):
        TSCAN.from_config(cfg).init(jax.random.key(0), jnp.zeros((1, 4, 12, 12, 6)))


@pytest.mark.parametrize("prep, fn", [("toolbox", tscan_inputs), ("open_rppg", open_rppg_inputs)])
def test_raw_frames_are_prepared_by_the_configured_input_prep(prep, fn):
    """Raw uint8 clips through the contract = the prepared 6-channel inputs: for the default
    ("toolbox") the contract's previous path, `tscan_inputs(frames, num_frames=T)`."""
    cfg = tscan_configs.get_config("tiny").model
    cfg.input_prep = prep
    model = TSCAN.from_config(cfg)
    shape = (2, cfg.clip_length, cfg.frame_size, cfg.frame_size, 3)
    frames = _raw_frames(shape, seed=1)
    variables = _random_variables(model, shape)
    tscan = contract.get(cfg)
    assert tscan.example_inputs(cfg)[0].shape == (1,) + shape[1:]
    raw = jax.jit(lambda v, b: model.apply(v, *tscan.inputs(b))["rppg"])(variables,
                                                                            {"rgb": frames})
    prepared = fn(frames, num_frames=cfg.clip_length)
    assert prepared.shape == shape[:-1] + (6,)
    cfg.input_prep = "toolbox"  # 6-channel inputs are used as they are
    toolbox = TSCAN.from_config(cfg)
    want = jax.jit(lambda v, x: toolbox.apply(v, x)["rppg"])(variables, prepared)
    np.testing.assert_allclose(np.asarray(raw), np.asarray(want), rtol=1e-6, atol=1e-7)
    cfg.input_prep = "open_rppg" if prep == "toolbox" else "toolbox"
    switched = TSCAN.from_config(cfg).apply(variables, frames.astype(jnp.float32))["rppg"]
    assert not np.allclose(np.asarray(switched), np.asarray(raw), atol=1e-3)


@pytest.mark.parametrize(
    "key, value",
    [("clip_length", 25), ("frame_depth", 1), ("filters", (32,)), ("dropout", (0.25, 1.0)),
     ("kernel_size", 4), ("frame_size", 8), ("conv_impl", "cudnn"), ("dtype", "int32"),
     ("hidden", 0), ("name", "ienet"), ("shift_fill", "wrap"), ("input_prep", "raw")],
)
def test_config_validation_names_key(key, value):
    cfg = tscan_configs.model_config("reference")
    cfg[key] = value
    with pytest.raises(ValueError, match=f"model.{key}"):
        TSCAN.from_config(cfg)


def test_configs():
    cfg = tscan_configs.get_config()
    assert cfg.model.frame_size == 36 and cfg.model.clip_length % cfg.model.frame_depth == 0
    assert tscan_configs.get_config("toolbox").model.frame_size == 72
    with pytest.raises(AttributeError):
        cfg.model.typo = 1  # locked
    with pytest.raises(ValueError, match="variant"):
        tscan_configs.get_config("huge")
    quick = tscan_configs.get_config("tiny,quickstart")
    assert quick.model.frame_size == 12 and quick.preset == "quickstart"
    assert cfg.preset == "tscan" and cfg.train.loss.mse > 0
    model = TSCAN.from_config(tscan_configs.get_config("toolbox").model)
    assert model.dtype == jnp.float32 and tuple(model.filters) == (32, 64)
    assert (model.shift_fill, model.input_prep) == ("zeros", "toolbox")  # MTTS-CAN defaults
    for variant in tscan_configs.VARIANTS:  # every variant carries every key
        assert set(tscan_configs.model_config(variant)) == set(cfg.model)
    opr = TSCAN.from_config(tscan_configs.get_config("open_rppg").model)
    assert (opr.frame_depth, opr.shift_fill, opr.input_prep) == (20, "edge", "open_rppg")
    assert tscan_configs.get_config("open_rppg").model.clip_length == 160


def test_sharded_forward_matches_single_device():
    cfg = tscan_configs.get_config("tiny").model
    model = TSCAN.from_config(cfg)
    shape = (8, cfg.frame_depth, cfg.frame_size, cfg.frame_size, 6)
    frames = jax.random.normal(jax.random.key(0), shape)
    variables = _random_variables(model, shape)
    mesh = jax.make_mesh((8,), ("data",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    with jax.set_mesh(mesh), nn.logical_axis_rules([("batch", "data")]):
        out = jax.jit(lambda v, x: model.apply(v, x)["rppg"])(
            variables, jax.device_put(frames, sharding))
    assert out.sharding.spec[0] == "data"
    want = model.apply(variables, frames)["rppg"]
    np.testing.assert_allclose(np.asarray(out), np.asarray(want), rtol=1e-5, atol=1e-6)
