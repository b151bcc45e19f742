"""`model.attention='fused'` (`ienet_jax.models.fused_attention`): the Pallas kernels, run by
Pallas's interpreter on the CPU, give the einsum formulation's values and gradients (the
module's parameters, the relative-position table included, and its input), alone and
sharded over a (data, model) mesh of 8 fake devices; compiled for a GPU they are refused
in one line. (Compiled for a TPU, as Mosaic kernels: `tests/test_topology.py`.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ienet_jax.models import platform
from ienet_jax.models.attention import WindowAttention


def values_and_grads(impl: str, shift, x, heads: int = 3):
    module = WindowAttention(dim=x.shape[-1], heads=heads, window=(2, 4, 4), impl=impl)
    params = module.init(jax.random.key(1), x, shift, train=False)
    # a non-zero table and biases, so that their gradients and the bias path are exercised
    params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(2), a.shape),
                          params)

    def loss(p, x):
        return jnp.sum(jnp.sin(module.apply(p, x, shift, train=False)))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)


def assert_same(a, b):
    (va, (ga, gxa)), (vb, (gb, gxb)) = a, b
    np.testing.assert_allclose(vb, va, rtol=1e-5)
    np.testing.assert_allclose(gxb, gxa, rtol=1e-4, atol=1e-5)
    flat_a = jax.tree_util.tree_leaves_with_path(ga)
    for (path, leaf_a), leaf_b in zip(flat_a, jax.tree.leaves(gb), strict=True):
        np.testing.assert_allclose(leaf_b, leaf_a, rtol=1e-4, atol=1e-4 * np.abs(leaf_a).max(),
                                   err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("shape, shift", [
    ((2, 4, 6, 6, 12), (0, 0, 0)),  # padded to 4×8×8 (zero tokens attended, as the reference)
    ((2, 4, 6, 6, 12), (1, 2, 2)),
    ((1, 2, 4, 12, 12), (1, 2, 2)),  # 3 windows: the grid does not split in two parts
], ids=["plain", "shifted", "odd"])
def test_fused_equals_einsum(shape, shift):
    x = jax.random.normal(jax.random.key(0), shape)
    assert_same(values_and_grads("einsum", shift, x), values_and_grads("fused", shift, x))


def test_fused_equals_einsum_sharded_over_data_and_heads():
    from ienet_jax.models import axes
    from ienet_jax.parallel.strategies import activation_rules

    if jax.device_count() < 8:
        pytest.skip("needs 8 (fake) devices")
    mesh = Mesh(np.asarray(jax.devices()[:8]).reshape(4, 2), ("data", "model"))  # as the trainer
    mesh_config = type("MeshConfig", (), dict(strategy="dp_tp", activation_rules=()))
    rules = activation_rules(mesh_config, mesh, axes.ALL)
    x = jax.random.normal(jax.random.key(0), (4, 2, 8, 8, 12))
    x = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    shift = (1, 2, 2)
    plain = values_and_grads("einsum", shift, x, heads=2)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        # 2 heads over `model`, the 4 clips' windows over `data`: a kernel per device,
        # the table's gradient summed over `data` by the shard_map's transpose
        assert axes.spec(axes.WINDOW_TOKENS_QKV, (16, 32, 3, 2, 6)) == PartitionSpec(
            "data", None, None, "model", None)
        fused = values_and_grads("fused", shift, x, heads=2)
    assert_same(plain, fused)


def test_gpu_target_is_refused_in_one_line():
    x = jnp.zeros((1, 2, 4, 4, 12))
    module = WindowAttention(dim=12, heads=3, window=(2, 4, 4), impl="fused")
    with platform.target("gpu"), pytest.raises(ValueError, match=r"^config key model\.attention"
                                               r"='fused' is a TPU kernel; compiled for 'gpu'"):
        module.init(jax.random.key(0), x, (0, 0, 0), train=False)


def test_attention_dropout_is_refused():
    x = jnp.zeros((1, 2, 4, 4, 12))
    module = WindowAttention(dim=12, heads=3, window=(2, 4, 4), impl="fused", attn_dropout=0.1)
    with pytest.raises(ValueError, match="model.attention='fused' does not support"):
        module.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x, (0, 0, 0),
                    train=True)
