"""The train state (params, batch_stats, opt_state, step, rng) and its sharded creation.

Sharded init, as in the Flax examples: the abstract state with the models' logical axis
names (flax partitioning boxes) → `tree_shardings` maps them onto the mesh through the
config rules → `jax.jit(init, out_shardings=…)` creates every array directly in its final
layout (no host copy of the full model).

The model is traced once for all of it (`trace_init`: `jax.make_jaxpr` of `model.init`
gives the variables' boxed shapes and a jaxpr that the jitted init replays): tracing the
reference IENet takes seconds, and `abstract_params`, `state_shardings` and
`abstract_state` would each trace it again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from jax.extend import core as jax_core
from jax.sharding import Mesh

from ienet_jax.models import contract
from ienet_jax.parallel.rules import Rules, tree_shardings


@flax.struct.dataclass
class TrainState:
    """Everything a train step reads and writes; a plain pytree of arrays.

    `step` int32 `[]` (train steps done); `rng` uint32 `[2]` (the run's base key; step `s`
    uses `fold_in(rng, s)`, so restarts replay the same randomness).
    """

    step: jnp.ndarray
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jnp.ndarray


def _init_variables(model: nn.Module, model_config, rng) -> dict:
    k_params, k_drop, k_path = jax.random.split(rng, 3)
    return model.init({"params": k_params, "dropout": k_drop, "drop_path": k_path},
                      *contract.get(model_config).example_inputs(model_config), train=False)


@dataclasses.dataclass(frozen=True)
class InitTrace:
    """`model.init` traced once: `boxed` holds the variables' `ShapeDtypeStruct`s in their
    logical-name boxes; `variables(rng)` replays the trace (jaxpr) without the model's
    Python code, giving the same arrays as `model.init` with that rng."""

    jaxpr: Any  # jax.extend.core.ClosedJaxpr of rng -> flat variables
    boxed: Any

    @property
    def params(self) -> Any:
        """Unboxed `ShapeDtypeStruct` tree of the params."""
        return nn.unbox(self.boxed["params"])

    def variables(self, rng) -> dict:
        flat = jax_core.jaxpr_as_fun(self.jaxpr)(rng)
        return jax.tree.unflatten(jax.tree.structure(self.boxed), flat)


def trace_init(model: nn.Module, model_config) -> InitTrace:
    """Trace `model.init` once (no computation); share the result between `abstract_params`,
    `boxed_abstract_state`, `create_train_state` and `abstract_state`."""
    jaxpr, boxed = jax.make_jaxpr(lambda rng: _init_variables(model, model_config, rng),
                                  return_shape=True)(jax.random.PRNGKey(0))
    return InitTrace(jaxpr, boxed)


def abstract_variables(model: nn.Module, model_config) -> dict:
    """Unboxed `ShapeDtypeStruct` tree of all the model's variables (no computation)."""
    return nn.unbox(trace_init(model, model_config).boxed)


def abstract_params(model: nn.Module, model_config, init: InitTrace | None = None) -> Any:
    """Unboxed `ShapeDtypeStruct` tree of the model's params (no computation)."""
    return (init or trace_init(model, model_config)).params


def _boxed_state(init: InitTrace, tx: optax.GradientTransformation, seed) -> TrainState:
    rng = jax.random.PRNGKey(seed)
    init_rng, run_rng = jax.random.split(rng)
    variables = init.variables(init_rng)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros([], jnp.int32), params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params), rng=run_rng,
    )


def boxed_abstract_state(model, model_config, tx, init: InitTrace | None = None) -> Any:
    """The `TrainState`'s `ShapeDtypeStruct`s inside the models' logical-name boxes
    (`init`: `trace_init(...)` if already traced; no model trace then)."""
    init = init or trace_init(model, model_config)
    return jax.eval_shape(lambda: _boxed_state(init, tx, 0))


def state_shardings(model, model_config, tx, mesh: Mesh, rules: Rules,
                    boxed: Any = None, init: InitTrace | None = None) -> Any:
    """NamedSharding tree shaped like the (unboxed) `TrainState`.

    `boxed`: `boxed_abstract_state(...)` if already traced (e.g. to compare strategies).
    """
    if boxed is None:
        boxed = boxed_abstract_state(model, model_config, tx, init)
    return tree_shardings(boxed, mesh, rules)


def create_train_state(model, model_config, tx, mesh: Mesh, rules: Rules,
                       seed: int, init: InitTrace | None = None) -> tuple[TrainState, Any]:
    """`(state, shardings)`: a fresh state created directly in its sharded layout
    (`init`: `trace_init(...)` if already traced)."""
    init = init or trace_init(model, model_config)
    shardings = state_shardings(model, model_config, tx, mesh, rules, init=init)
    create = jax.jit(lambda s: nn.unbox(_boxed_state(init, tx, s)), out_shardings=shardings)
    with jax.set_mesh(mesh):
        state = create(np.uint32(seed))
    return state, shardings


def abstract_state(shardings: Any, model, model_config, tx, boxed: Any = None,
                   init: InitTrace | None = None) -> Any:
    """`ShapeDtypeStruct`s with `sharding` set: the restore target for orbax, and what
    `ienet_jax.parallel.memory.state_bytes_per_device` sizes without allocating."""
    if boxed is None:
        boxed = boxed_abstract_state(model, model_config, tx, init)
    shapes = nn.unbox(boxed)
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                        shapes, shardings)


def count_params(params: Any) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
