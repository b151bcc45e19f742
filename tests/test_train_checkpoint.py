"""Checkpoints: state + iterator round trip, resharding 8 → 1 device, keep/best, init_from."""

import json

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import linen as nn
from train_configs import tscan_config

from ienet_jax.convert import save_converted
from ienet_jax.models import build, contract
from ienet_jax.parallel.mesh import create_mesh
from ienet_jax.parallel.strategies import param_rules
from ienet_jax.train.checkpoint import Checkpointer, load_variables, merge_variables
from ienet_jax.train.optim import make_optimizer
from ienet_jax.train.state import (
    abstract_params,
    abstract_state,
    create_train_state,
)


def ckpt_config(keep=2, best_metric="", async_save=False):
    return ml_collections.ConfigDict(dict(every_steps=1, keep=keep, best_metric=best_metric,
                                          best_mode="min", async_save=async_save))


def numbers(n=20):
    return iter(grain.MapDataset.range(n).seed(0).shuffle().repeat().batch(2))


def test_state_and_iterator_restore_onto_one_device(tmp_path):
    config = tscan_config()
    model = build(config.model)
    tx = make_optimizer(config.train, abstract_params(model, config.model))
    big = create_mesh(ml_collections.ConfigDict(dict(shape=(4, 2), axes=("data", "model"))))
    state, _ = create_train_state(model, config.model, tx, big, param_rules(
        config.mesh, big), seed=3)
    assert len(jax.tree.leaves(state.params)[0].sharding.device_set) == 8
    it = numbers()
    for _ in range(3):
        next(it)
    ckpt = Checkpointer(tmp_path, ckpt_config(async_save=True))
    ckpt.save(7, state, it)
    expected_next = next(it)  # advancing after save must not change what was saved
    ckpt.close()

    one = create_mesh(ml_collections.ConfigDict(dict(shape=(1, 1), axes=("data", "model"),
                                                     num_devices=1)))
    _, shardings = create_train_state(model, config.model, tx, one,
                                      param_rules(config.mesh, one), seed=0)
    ckpt = Checkpointer(tmp_path, ckpt_config())
    assert ckpt.latest_step() == 7
    restored, it2 = ckpt.restore(7, abstract_state(shardings, model, config.model, tx),
                                 numbers())
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert len(a.sharding.device_set) == 1
    np.testing.assert_array_equal(next(it2), expected_next)


def test_keeps_last_k_and_best(tmp_path):
    ckpt = Checkpointer(tmp_path, ckpt_config(keep=2, best_metric="hr_mae"))
    state = {"w": jnp.arange(3.0)}
    maes = {2: 5.0, 4: 1.0, 6: 3.0}  # evaluated steps; step 4 is the best
    for step in range(1, 9):
        metrics = {"hr_mae": maes[step]} if step in maes else None
        ckpt.save(step, {"w": state["w"] + step}, metrics=metrics)
    ckpt.wait()
    assert sorted(ckpt.manager.all_steps()) == [4, 7, 8]
    assert ckpt.best_step() == 4
    ckpt.close()


def test_bad_checkpoint_config():
    with pytest.raises(ValueError, match="checkpoint.keep"):
        Checkpointer("/tmp/unused-h7", ckpt_config(keep=0))


def test_merge_variables_reports_missing_and_errors():
    target = {"params": {"a": np.zeros(2), "fee": {"b": np.zeros(3)}}, "batch_stats": {}}
    merged, missing = merge_variables(target, {"params": {"a": np.ones(2)}}, "init")
    np.testing.assert_array_equal(merged["params"]["a"], np.ones(2))
    assert missing == ["params/fee/b"]
    with pytest.raises(ValueError, match="params/a has shape"):
        merge_variables(target, {"params": {"a": np.ones(3)}}, "init")
    with pytest.raises(ValueError, match="unknown to the model"):
        merge_variables(target, {"params": {"a": np.ones(2), "zzz": np.ones(1)}}, "init")


def test_load_variables_from_run_and_converted(tmp_path):
    variables = {"params": {"dense": {"kernel": np.arange(6.0).reshape(2, 3)}},
                 "batch_stats": {"bn": {"mean": np.ones(3)}}}
    state = dict(variables, step=np.int32(4), opt_state={"mu": np.zeros(2)})
    ckpt = Checkpointer(tmp_path / "run" / "checkpoints", ckpt_config())
    ckpt.save(4, state, numbers())
    ckpt.close()
    from_run = load_variables(tmp_path / "run")
    np.testing.assert_array_equal(from_run["params"]["dense"]["kernel"],
                                  variables["params"]["dense"]["kernel"])
    save_converted(tmp_path / "conv", variables, ml_collections.ConfigDict({"name": "x"}))
    from_conv = load_variables(tmp_path / "conv")
    np.testing.assert_array_equal(from_conv["batch_stats"]["bn"]["mean"], np.ones(3))
    with pytest.raises(ValueError, match="train.init_from"):
        load_variables(tmp_path / "nothing")
    assert json.loads((tmp_path / "run/checkpoints/4/data/process_0-of-1.json").read_text())


def test_converted_reference_checkpoint_fits_a_stage2_model(tmp_path, golden_dir, det_init):
    """The published IENet weights (golden state dict) → converter → `init_from` source for
    the reference-size stage-2 model: every converted variable lands, only FEE stays fresh."""
    from golden_weights import reference_state_dict

    from configs import common, ienet
    from ienet_jax.convert import from_reference_state_dict

    state_dict = reference_state_dict(golden_dir, det_init)
    model_config = ienet.model_config("reference")
    model_config.context.enabled = False  # the published code leaves it off
    model_config.nir_channels = 3
    save_converted(tmp_path, from_reference_state_dict(state_dict, model_config), model_config)

    config = common.build_config(model_config, "reference_stage2", "reference")
    model = build(config.model)
    inputs = [jnp.zeros(x.shape) for x in contract.get(config.model).example_inputs(config.model)]
    target = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, *inputs,
                                               train=False))
    target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), nn.unbox(target))
    merged, missing = merge_variables(
        {k: target[k] for k in ("params", "batch_stats")}, load_variables(tmp_path), "ref")
    assert missing and all(m.split("/")[1] == "fee" for m in missing), missing[:5]
    np.testing.assert_array_equal(
        merged["params"]["head"]["conv"]["bias"], state_dict["rPPG_net.dense7.bias"])



def test_old_qkv_layout_is_reshaped_by_init_from_and_named_on_resume(tmp_path):
    """Before the head-major qkv layout a checkpoint held qkv kernel [C, 3C], bias [3C]:
    init_from reshapes them (the same values: q|k|v, each head-major); resuming a workdir
    with them is a one-line error naming the parameter and the layout."""
    old = {"params": {"blk": {"qkv": {"kernel": np.arange(48.0).reshape(4, 12),
                                      "bias": np.arange(12.0)}}}}
    target = {"params": {"blk": {"qkv": {"kernel": np.zeros((4, 3, 2, 2)),
                                         "bias": np.zeros((3, 2, 2))}}}}
    merged, _ = merge_variables(target, old, "init")
    kernel = merged["params"]["blk"]["qkv"]["kernel"]
    np.testing.assert_array_equal(kernel[:, 1, 1], old["params"]["blk"]["qkv"]["kernel"][:, 6:8])
    np.testing.assert_array_equal(merged["params"]["blk"]["qkv"]["bias"][2, 0], [8.0, 9.0])
    with pytest.raises(ValueError, match="params/blk/qkv/kernel has shape"):
        merge_variables(target, {"params": {"blk": {"qkv": {"kernel": np.ones((4, 9))}}}},
                        "init")

    ckpt = Checkpointer(tmp_path, ckpt_config())
    ckpt.save(3, dict(old, step=np.int32(3)))
    ckpt.close()
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, np.float64,
                                                           sharding=sharding),
                            dict(target, step=np.int32(0)))
    ckpt = Checkpointer(tmp_path, ckpt_config())
    with pytest.raises(ValueError, match=r"params/blk/qkv/\w+ has shape \(\d+(, 12)?,?\), "
                                         r"the model expects .*head-major.*init_from"):
        ckpt.restore(3, abstract)
    ckpt.close()


def test_inference_loads_a_checkpoint_of_the_old_qkv_layout(tmp_path):
    """`inference.load` (evaluate, predict, the studies) reads a checkpoint written before
    the head-major layout (qkv kernel [C, 3C], bias [3C], proj kernel [C, C]) and gives the
    same outputs as the same values stored head-major."""
    from flax import traverse_util
    from train_configs import micro_ienet_model

    from ienet_jax.eval import inference
    from ienet_jax.train.state import abstract_variables

    cfg = micro_ienet_model()
    cfg.heads = (2, 2)
    model = build(cfg)
    variables = model.init({"params": jax.random.key(1)},
                           *contract.get(cfg).example_inputs(cfg), train=False)
    variables = jax.tree.map(np.asarray, nn.unbox(variables))
    assert jax.tree.map(np.shape, abstract_variables(model, cfg)) == \
        jax.tree.map(np.shape, variables)
    old = {}
    for key, value in traverse_util.flatten_dict(variables).items():
        name = "/".join(key)
        if name.endswith("qkv/kernel"):
            value = value.reshape(value.shape[0], -1)
        elif name.endswith("attn/proj/kernel"):
            value = value.reshape(-1, value.shape[-1])
        elif name.endswith("qkv/bias"):
            value = value.reshape(-1)
        old[key] = value
    old = traverse_util.unflatten_dict(old)
    assert old["params"]["rgb"]["stage_0"]["block_0"]["attn"]["qkv"]["kernel"].shape == (6, 18)
    save_converted(tmp_path / "new", variables, cfg)
    save_converted(tmp_path / "old", old, cfg)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (2, 16, 16, 16, 3), np.uint8)
    nir = rng.integers(0, 255, (2, 16, 16, 16, 1), np.uint8)
    want = inference.load(tmp_path / "new")(rgb, nir)["rppg"]
    got = inference.load(tmp_path / "old")(rgb, nir)["rppg"]
    np.testing.assert_array_equal(got, want)
