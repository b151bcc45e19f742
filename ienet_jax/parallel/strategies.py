"""Sharding strategies, chosen by `mesh.strategy`: one rule table per strategy.

A strategy is a table of logical-axis rules (`rules.py`: regex → mesh axes, FIRST match
wins) for the parameters and the optimiser state (which inherits the parameters' logical
names), plus one for the activations the models constrain. User rules in `mesh.rules`
and `mesh.activation_rules` are placed IN FRONT of the strategy's table, so they override
it name by name (e.g. `--config.mesh.rules='(("mlp", None),)'`). Models speak only logical
names (`ienet_jax/models/axes.py`); which names go where is decided here.

The batch is split over every data-like mesh axis present, `("data", "fsdp")` (in that
order), whatever the strategy; other axes (`model`) hold replicas of the batch.

- `dp`: data parallel. Parameters and optimiser state replicated; each device keeps the
  whole model. A mesh axis other than `data`/`fsdp` of size > 1 is unused (it repeats the
  same work; logged as a warning).
- `fsdp`: fully sharded data parallel (ZeRO-3). Every parameter and its Adam moments are
  split over the `fsdp` mesh axis (or `data` when the mesh has no `fsdp` axis), on the
  first named dimension that axis divides; XLA (GSPMD) all-gathers each layer's weights
  where they are used and reduce-scatters their gradients. Arrays with no divisible
  named dimension (the 507-row bias tables of IENet's heads, 1-channel convs, the FEE
  head, BatchNorm statistics) stay replicated: a few kB. Default mesh `(-1, 1)` over
  `("data", "model")` = parameters over all devices; `axes=("data", "fsdp")`,
  `shape=(2, 4)` = 2 replicas each sharding the model 4 ways.
- `dp_tp`: data + tensor parallel (Megatron-style) over a `model` axis: the Swin MLP
  hidden dimension (`fc1` column- / `fc2` row-parallel) and the attention heads (the fused
  `qkv` projection, column-parallel; the relative-position-bias table; the output
  projection `proj`, row-parallel) are split over `model`; everything else (norms, patch
  embedding and merging, context convolutions, upsampling, heads) is replicated.
  Forward: one all-reduce after the attention and one after the MLP of each block, as
  Megatron (and one each for their input gradients in the backward). The attention's
  parameters are stored head-major (`qkv` kernel `[C, 3, heads, C/heads]`, bias
  `[3, heads, C/heads]`, `proj` kernel `[heads, C/heads, C]`), so a split of `heads` is a
  split of the stored arrays, and the windows' q, k, v stay split by heads (the
  activation rule `heads → model`): no weight or activation is gathered
  (`tests/test_parallel_tp_collectives.py`; a micro IENet on a 4 × 2 data × model mesh had
  12 all-gathers per step when the `qkv` kernel was stored `[C, 3·C]` and split
  contiguously, device 0 holding q and half of k). A dimension `model` does not divide
  (e.g. 3 heads, the reference's first stage, on a 2-way `model` axis) stays replicated,
  parameters and activations alike: that block's attention runs whole on each device of
  a model group, without collectives. With `model` of size 1 this is `dp`. This is the
  default (`mesh.shape=(-1, 1)`: pure data parallel).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from absl import logging
from jax.sharding import Mesh

from ienet_jax.parallel.rules import Rules, flax_rules, parse_rules

STRATEGIES = ("dp", "fsdp", "dp_tp")
DATA_AXES = ("data", "fsdp")   # batch-like mesh axes, in the order the batch is split
MODEL_AXIS = "model"

# Logical names (ienet_jax/models/axes.py) of parameter dimensions FSDP may split: every
# named one. The first named dimension the fsdp axis divides is split.
FSDP_NAMES = "embed|mlp|merge|conv_in|conv_out|heads|kv|table"
# Megatron: hidden MLP width; heads (qkv kernel and bias, bias table, output projection).
TP_NAMES = "mlp|heads"
# Activations kept split over `model`: the heads of the attention windows (q, k, v).
TP_ACTIVATION_NAMES = "heads"


def data_axes(mesh: Mesh) -> tuple[str, ...]:
    """The mesh's batch-like axes (`data`, `fsdp`, those present), the batch's split."""
    return tuple(a for a in DATA_AXES if a in mesh.axis_names)


def _fsdp_axis(mesh: Mesh) -> str:
    if "fsdp" in mesh.axis_names:
        return "fsdp"
    if "data" in mesh.axis_names:
        return "data"
    raise ValueError(f"config key mesh.strategy='fsdp' needs a 'fsdp' or 'data' mesh axis, "
                     f"got mesh.axes={tuple(mesh.axis_names)}")


def strategy_tables(strategy: str, mesh: Mesh) -> tuple[tuple, tuple]:
    """`(param_rules, activation_rules)` of `strategy` on `mesh`, as config-style tuples."""
    if strategy not in STRATEGIES:
        raise ValueError(f"config key mesh.strategy={strategy!r}: choose from {STRATEGIES}")
    batch = data_axes(mesh)
    if not batch:
        raise ValueError(f"config key mesh.axes={tuple(mesh.axis_names)}: no data axis "
                         f"({' or '.join(DATA_AXES)}) to split the batch over")
    batch_rule = ("batch", batch)
    if strategy == "dp":
        params = (batch_rule, (".*", None))
    elif strategy == "fsdp":
        params = (batch_rule, (FSDP_NAMES, _fsdp_axis(mesh)), (".*", None))
    else:
        if MODEL_AXIS not in mesh.axis_names:
            raise ValueError(f"config key mesh.strategy='dp_tp' needs a {MODEL_AXIS!r} mesh "
                             f"axis, got mesh.axes={tuple(mesh.axis_names)}")
        params = (batch_rule, (TP_NAMES, MODEL_AXIS), (".*", None))
        return params, (batch_rule, (TP_ACTIVATION_NAMES, MODEL_AXIS))
    return params, (batch_rule,)


def _unused_axes(strategy: str, mesh: Mesh) -> list[str]:
    used = set(data_axes(mesh)) | ({MODEL_AXIS} if strategy == "dp_tp" else set())
    return [a for a in mesh.axis_names if a not in used and mesh.shape[a] > 1]


def param_rules(mesh_config, mesh: Mesh) -> Rules:
    """Parameter (and optimiser-state, batch) rules: `mesh.rules`, then the strategy's."""
    strategy = str(mesh_config.strategy)
    table, _ = strategy_tables(strategy, mesh)
    user = tuple(mesh_config.rules)
    for axis in _unused_axes(strategy, mesh):
        logging.warning("mesh axis %r (size %d) is not used by mesh.strategy=%r: its devices "
                        "repeat the same computation", axis, mesh.shape[axis], strategy)
    return parse_rules(user, mesh) + parse_rules(table, mesh, f"strategy {strategy} rules")


def activation_rules(mesh_config, mesh: Mesh, names: Sequence[str]) -> tuple[tuple[str, Any]]:
    """Flax `(name, mesh_axes)` pairs for `names`: `mesh.activation_rules`, then the strategy's.

    For `nn.logical_axis_rules(...)` around the model call (`with_logical_constraint`).
    """
    strategy = str(mesh_config.strategy)
    _, table = strategy_tables(strategy, mesh)
    user = tuple(mesh_config.activation_rules)
    rules = (parse_rules(user, mesh, "mesh.activation_rules")
             + parse_rules(table, mesh, f"strategy {strategy} activation rules"))
    return flax_rules(rules, names)


def describe(rules: Rules) -> str:
    """`pattern → axes` pairs of a parsed table, for logs."""
    def target(t):
        return "replicated" if t is None else "+".join(t)
    return ", ".join(f"{r.pattern if isinstance(r, re.Pattern) else r} → {target(t)}"
                     for r, t in rules)
