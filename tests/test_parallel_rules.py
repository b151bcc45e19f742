"""Logical-axis rules: first match wins, divisibility fallback, one use per mesh axis."""

import jax
import jax.numpy as jnp
import ml_collections
import pytest
from flax import linen as nn
from jax.sharding import PartitionSpec as P

from ienet_jax.parallel.mesh import create_mesh
from ienet_jax.parallel.rules import (
    batch_spec,
    flax_rules,
    logical_to_spec,
    parse_rules,
    tree_shardings,
)

# A table exercising the mechanics (the strategies' tables: test_parallel_strategies.py).
PARAM_RULES = (
    ("batch", "data"),
    ("embed|mlp|heads|qkv|attn|merge|conv_out", "model"),
    (".*", None),
)


@pytest.fixture(scope="module")
def mesh():
    return create_mesh(ml_collections.ConfigDict(dict(shape=(4, 2), axes=("data", "model"))))


def test_first_match_wins(mesh):
    rules = parse_rules((("emb.*", "model"), ("embed", None), (".*", None)), mesh)
    assert logical_to_spec(("embed", "mlp"), (8, 8), rules, mesh) == P("model", None)
    rules = parse_rules((("embed", None), ("emb.*", "model")), mesh)
    assert logical_to_spec(("embed", "mlp"), (8, 8), rules, mesh) == P(None, None)


def test_indivisible_dims_and_reused_axes_stay_replicated(mesh):
    rules = parse_rules(PARAM_RULES, mesh)
    assert logical_to_spec(("embed", "mlp"), (5, 8), rules, mesh) == P(None, "model")
    # both dims map to "model": only the first gets it
    assert logical_to_spec(("embed", "mlp"), (8, 8), rules, mesh) == P("model", None)
    assert logical_to_spec(("batch", None), (8, 3), rules, mesh) == P("data", None)
    assert logical_to_spec(("batch",), (6,), rules, mesh) == P(None)
    assert batch_spec(rules, mesh, 8) == P("data")


def test_bad_rules_name_the_key(mesh):
    with pytest.raises(ValueError, match=r"mesh.rules\[0\].*not in mesh.axes"):
        parse_rules((("embed", "tensor"),), mesh)
    with pytest.raises(ValueError, match="bad regex"):
        parse_rules((("(", None),), mesh)


def test_tree_shardings_of_boxed_params(mesh):
    class Tiny(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(8, kernel_init=nn.with_logical_partitioning(
                nn.initializers.lecun_normal(), ("embed", "mlp")))(x)
            return nn.Dense(3)(x)  # unannotated: replicated

    abstract = jax.eval_shape(Tiny().init, jax.random.key(0), jnp.zeros((2, 4)))
    shardings = tree_shardings(abstract, mesh, parse_rules(PARAM_RULES, mesh))
    # embed=4 is divisible by model=2, so it takes "model"; mlp then cannot reuse it
    assert shardings["params"]["Dense_0"]["kernel"].spec == P("model", None)
    assert shardings["params"]["Dense_1"]["kernel"].spec == P()
    assert jax.tree.structure(shardings) == jax.tree.structure(nn.unbox(abstract))


def test_flax_rules_resolve_each_name(mesh):
    rules = parse_rules(PARAM_RULES, mesh)
    assert dict(flax_rules(rules, ("batch", "embed", "time"))) == {
        "batch": "data", "embed": "model", "time": None}
