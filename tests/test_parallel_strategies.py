"""Sharding strategies (`mesh.strategy`): rule tables, per-device bytes, equal losses.

On 8 fake CPU devices. The train-step test starts every strategy from the same initial
state (created once, then placed with each strategy's shardings) and runs the trainer's
compiled step for 3 steps of a tiny IENet. Tolerance: losses agree with one device to
1e-5 relative (measured: < 1e-6). Data parallelism reorders the batch reductions
(per-device partial sums, then an all-reduce), FSDP and tensor parallelism also split
the contractions of the gathered/sharded matmuls, so float32 results differ in the last
bits; anything beyond that is a sharding bug.
"""

import jax
import ml_collections
import numpy as np
import optax
import pytest
from flax import linen as nn
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from train_configs import micro_ienet_model

from configs import common, ienet
from ienet_jax.models import axes, build
from ienet_jax.parallel.memory import state_bytes_per_device, tree_bytes_per_device
from ienet_jax.parallel.mesh import create_mesh
from ienet_jax.parallel.rules import batch_spec
from ienet_jax.parallel.strategies import activation_rules, param_rules
from ienet_jax.train.inputs import SyntheticClips, to_device
from ienet_jax.train.objectives import check_weights
from ienet_jax.train.optim import make_optimizer
from ienet_jax.train.state import (
    abstract_params,
    abstract_state,
    boxed_abstract_state,
    state_shardings,
)
from ienet_jax.train.step import compile_steps

BATCH, STEPS = 8, 3
# strategy → (mesh.axes, mesh.shape) on 8 devices
MESHES = {
    "dp": (("data", "model"), (-1, 1)),
    "fsdp": (("data", "fsdp"), (2, 4)),      # 2 replicas × 4 shards
    "dp_tp": (("data", "model"), (4, 2)),
}


def tiny_model():
    """`micro_ienet_model` cut to one stage of 2 heads (a 2-way `model` axis splits them)."""
    m = micro_ienet_model()
    m.dims, m.depths, m.heads = (8,), (1,), (2,)
    return m


def config(strategy="dp_tp", mesh_axes=("data", "model"), shape=(-1, 1), model=None):
    c = common.build_config(model or tiny_model(), "quickstart", "micro")
    c.train.batch_size = BATCH
    c.mesh.strategy, c.mesh.axes, c.mesh.shape = strategy, mesh_axes, shape
    return c


def placed(c, model, tx, boxed, num_devices=0):
    """`(mesh, rules, shardings)` of config `c`, as the trainer derives them."""
    c.mesh.num_devices = num_devices
    mesh = create_mesh(c.mesh)
    rules = param_rules(c.mesh, mesh)
    return mesh, rules, state_shardings(model, c.model, tx, mesh, rules, boxed)


def replicated(shardings) -> bool:
    return all(all(a is None for a in s.spec) for s in jax.tree.leaves(shardings))


def spec(shardings, path):
    node = shardings.params
    for key in path.split("/"):
        node = node[key]
    return node.spec


@pytest.fixture(scope="module")
def tiny():
    c = config()
    model = build(c.model)
    tx = make_optimizer(c.train, abstract_params(model, c.model))
    return model, tx, boxed_abstract_state(model, c.model, tx)


# ------------------------------------------------------------------ rule tables


def test_parameter_specs_per_strategy(tiny):
    block = "rgb/stage_0/block_0"
    mesh, rules, dp = placed(config("dp", *MESHES["dp"]), *tiny)
    assert replicated(dp)
    assert batch_spec(rules, mesh, BATCH) == P("data")

    mesh, rules, fsdp = placed(config("fsdp", *MESHES["fsdp"]), *tiny)
    assert batch_spec(rules, mesh, BATCH) == P(("data", "fsdp"))  # every data-like axis
    assert spec(fsdp, f"{block}/mlp/fc1/kernel") == P("fsdp", None)
    assert spec(fsdp, f"{block}/attn/qkv/kernel") == P("fsdp", None, None, None)
    # 147 bias-table rows and 2 heads: nothing the 4-way axis divides
    assert spec(fsdp, f"{block}/attn/relative_position_bias_table") == P(None, None)
    # Adam's moments are sharded like their parameters
    mu = optax.tree_utils.tree_get(fsdp.opt_state, "mu")
    assert mu["rgb"]["stage_0"]["block_0"]["mlp"]["fc1"]["kernel"].spec == P("fsdp", None)

    mesh, rules, tp = placed(config("dp_tp", *MESHES["dp_tp"]), *tiny)
    assert batch_spec(rules, mesh, BATCH) == P("data")
    assert spec(tp, f"{block}/mlp/fc1/kernel") == P(None, "model")   # column-parallel
    assert spec(tp, f"{block}/mlp/fc1/bias") == P("model")
    assert spec(tp, f"{block}/mlp/fc2/kernel") == P("model", None)   # row-parallel
    assert spec(tp, f"{block}/mlp/fc2/bias") == P(None)
    # qkv stored head-major [C, 3, heads, C/heads]: split by heads, as it is used
    assert spec(tp, f"{block}/attn/qkv/kernel") == P(None, None, "model", None)
    assert spec(tp, f"{block}/attn/qkv/bias") == P(None, "model", None)
    assert spec(tp, f"{block}/attn/relative_position_bias_table") == P(None, "model")
    assert spec(tp, f"{block}/attn/proj/kernel") == P("model", None, None)  # [heads, kv, C]
    assert spec(tp, f"{block}/norm1/scale") == P(None)
    assert spec(tp, "rgb/patch_embed/kernel") == P(None, None, None, None, None)
    # the attention windows' q, k, v stay split by heads (no gather before the attention)
    assert dict(activation_rules(config("dp_tp", *MESHES["dp_tp"]).mesh, mesh,
                                 axes.ALL))["heads"] == "model"


def test_user_rules_override_the_strategy(tiny):
    c = config("dp_tp", *MESHES["dp_tp"])
    c.mesh.rules = (("mlp", None),)
    _, _, tp = placed(c, *tiny)
    assert spec(tp, "rgb/stage_0/block_0/mlp/fc1/kernel") == P(None, None)
    assert spec(tp, "rgb/stage_0/block_0/attn/qkv/kernel") == P(None, None, "model", None)
    c = config("dp", *MESHES["dp"])
    c.mesh.activation_rules = (("embed", "model"),)
    assert dict(activation_rules(c.mesh, create_mesh(c.mesh), axes.ALL))["embed"] == "model"


def test_fsdp_without_fsdp_axis_shards_over_data(tiny):
    _, _, sh = placed(config("fsdp"), *tiny)  # default axes ("data", "model"), (-1, 1)
    assert spec(sh, "rgb/stage_0/block_0/mlp/fc1/kernel") == P("data", None)


def test_strategy_errors_name_the_key():
    with pytest.raises(ValueError, match="mesh.strategy='zero'"):
        c = config("zero")
        param_rules(c.mesh, create_mesh(c.mesh))
    c = config("dp_tp", ("data", "fsdp"), (2, 4))
    with pytest.raises(ValueError, match="mesh.strategy='dp_tp' needs a 'model' mesh axis"):
        param_rules(c.mesh, create_mesh(c.mesh))
    c = config("dp", ("model",), (8,))
    with pytest.raises(ValueError, match="no data axis"):
        param_rules(c.mesh, create_mesh(c.mesh))


# ------------------------------------------------------------------ bytes per device


def test_bytes_per_device_of_arrays_and_abstract_arrays():
    mesh = create_mesh(ml_collections.ConfigDict(dict(shape=(4, 2), axes=("data", "model"))))
    sharded = NamedSharding(mesh, P("data", "model"))   # [8, 4] f32 → [2, 2] per device
    replicated = NamedSharding(mesh, P())
    tree = {"a": jax.device_put(np.ones((8, 4), np.float32), sharded),
            "b": jax.device_put(np.ones((3,), np.float32), replicated)}
    assert tree_bytes_per_device(tree) == 2 * 2 * 4 + 3 * 4
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                           sharding=x.sharding), tree)
    assert tree_bytes_per_device(abstract) == tree_bytes_per_device(tree)


def test_fsdp_divides_state_bytes_by_the_device_count():
    """IENet `small`, abstract states (no allocation): 8-way FSDP holds ≤ 1/8 + 3 %."""
    c = ienet.get_config("small")
    model = build(c.model)
    tx = make_optimizer(c.train, abstract_params(model, c.model))
    boxed = boxed_abstract_state(model, c.model, tx)
    sizes = {}
    for strategy, mesh_axes, shape in (("dp", ("data", "model"), (8, 1)),
                                       ("fsdp", ("data", "fsdp"), (1, 8)),
                                       ("dp_tp", ("data", "model"), (4, 2))):
        mesh_config = ml_collections.ConfigDict(dict(c.mesh.to_dict(), strategy=strategy,
                                                     axes=mesh_axes, shape=shape))
        mesh = create_mesh(mesh_config)
        shardings = state_shardings(model, c.model, tx, mesh, param_rules(mesh_config, mesh),
                                    boxed)
        sizes[strategy] = state_bytes_per_device(abstract_state(shardings, model, c.model, tx,
                                                                boxed))
    dp, fsdp, tp = sizes["dp"], sizes["fsdp"], sizes["dp_tp"]
    assert dp.params == dp.params_total and dp.opt_state == dp.opt_state_total
    assert fsdp.params <= dp.params / 8 * 1.03
    assert fsdp.opt_state <= dp.opt_state / 8 * 1.03
    assert fsdp.params_total == dp.params_total
    # Megatron on 2 ways: the blocks' MLP and attention halve, the rest is replicated
    assert dp.params / 2 < tp.params < dp.params * 0.75


# ------------------------------------------------------------------ equal losses


def batches():
    clips = SyntheticClips(tiny_model(), BATCH * STEPS, seed=0, fps=30.0)
    for s in range(STEPS):
        rows = [clips[s * BATCH + i] for i in range(BATCH)]
        yield {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def initial_state(boxed, seed=0):
    """A `TrainState` of numpy arrays shaped like `boxed`: random params, zero moments
    (as `tx.init`), unit BatchNorm variances. No init compile (its threefry alone costs
    more than a train step)."""
    rng = np.random.default_rng(seed)

    def fill(path, spec):
        keys = [getattr(k, "key", getattr(k, "name", None)) for k in path]
        if keys[0] == "params":
            fan_in = int(np.prod(spec.shape[:-1])) if len(spec.shape) > 1 else 10
            return (rng.standard_normal(spec.shape) / np.sqrt(fan_in)).astype(spec.dtype)
        if keys[0] == "batch_stats" and keys[-1] == "var":
            return np.ones(spec.shape, spec.dtype)
        return np.zeros(spec.shape, spec.dtype)

    return jax.tree_util.tree_map_with_path(fill, nn.unbox(boxed))


def train(c, model, tx, boxed, initial, num_devices=0):
    """Losses of STEPS train steps from `initial` under config `c`, and the final state."""
    mesh, rules, shardings = placed(c, model, tx, boxed, num_devices)
    state = jax.device_put(initial, shardings)
    train_step, _ = compile_steps(model=model, model_config="ienet", tx=tx,
                                  weights=check_weights(c.train.loss, c.model), mesh=mesh,
                                  state_shardings=shardings,
                                  batch_spec=batch_spec(rules, mesh, BATCH),
                                  activation_rules=activation_rules(c.mesh, mesh, axes.ALL))
    sharding = NamedSharding(mesh, batch_spec(rules, mesh, BATCH))
    losses = []
    for s, batch in enumerate(batches()):
        state, metrics = train_step(state, to_device(batch, sharding), jax.random.key(s))
        losses.append(float(metrics["loss"]))
    return np.array(losses), state, shardings


def test_every_strategy_trains_like_one_device(tiny):
    assert jax.device_count() == 8
    model, tx, boxed = tiny
    one = config("dp", ("data", "model"), (1, 1))
    initial = initial_state(boxed)
    single, _, _ = train(one, model, tx, boxed, initial, num_devices=1)
    assert np.all(np.isfinite(single)) and not np.allclose(single[0], single[-1])
    held = {}
    for strategy, (mesh_axes, shape) in MESHES.items():
        losses, state, shardings = train(config(strategy, mesh_axes, shape), model, tx, boxed,
                                         initial)
        np.testing.assert_allclose(losses, single, rtol=1e-5, err_msg=strategy)
        # the step keeps the strategy's layout, and the abstract count matches the shards
        held[strategy] = state_bytes_per_device(state)
        assert held[strategy] == state_bytes_per_device(
            abstract_state(shardings, model, one.model, tx, boxed))
    assert held["dp"].params == held["dp"].params_total
    assert held["fsdp"].params < held["dp"].params / 2
    assert held["fsdp"].opt_state < held["dp"].opt_state / 2
    assert held["dp_tp"].params < held["dp"].params
