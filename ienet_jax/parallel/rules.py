"""Logical-axis rules: logical axis names (from the models) → mesh axes → shardings.

Rules come from config (`mesh.rules` for parameters and optimizer state,
`mesh.activation_rules` for the activation constraints the models place with
`nn.with_logical_constraint`) as `(pattern, mesh_axes)` pairs, e.g.

    (("batch", "data"), ("embed|mlp|heads", "model"), (".*", None))

`pattern` is a regex matched against the whole logical name; the FIRST matching rule
wins; `mesh_axes` is a mesh axis name, a tuple of them, or None (replicated). A mesh axis
is used at most once per array, and a dimension whose size the mesh axes do not divide
stays replicated (logged once), so one rule table serves every model size.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from absl import logging
from flax import linen as nn
from jax.sharding import Mesh, NamedSharding, PartitionSpec

Rules = tuple[tuple[re.Pattern, tuple[str, ...] | None], ...]


def parse_rules(rules: Sequence[Sequence[Any]], mesh: Mesh, key: str = "mesh.rules") -> Rules:
    """Validate config rules against `mesh` and compile their patterns."""
    parsed = []
    for i, rule in enumerate(rules):
        if len(rule) != 2:
            raise ValueError(f"config key {key}[{i}]={rule!r}: expected (pattern, mesh_axes)")
        pattern, target = rule
        try:
            regex = re.compile(str(pattern))
        except re.error as err:
            raise ValueError(f"config key {key}[{i}]: bad regex {pattern!r}: {err}") from err
        if target is not None:
            target = (target,) if isinstance(target, str) else tuple(target)
            unknown = [a for a in target if a not in mesh.axis_names]
            if unknown:
                raise ValueError(
                    f"config key {key}[{i}]={rule!r}: mesh axes {unknown} are not in "
                    f"mesh.axes={tuple(mesh.axis_names)}"
                )
        parsed.append((regex, target))
    return tuple(parsed)


def _match(name: str, rules: Rules) -> tuple[str, ...] | None:
    for regex, target in rules:
        if regex.fullmatch(name):
            return target
    return None


@functools.cache
def _warn_once(message: str) -> None:
    logging.info("%s", message)


def logical_to_spec(names: Sequence[str | None] | None, shape: Sequence[int], rules: Rules,
                    mesh: Mesh) -> PartitionSpec:
    """The `PartitionSpec` of an array of `shape` whose dimensions have logical `names`."""
    if names is None:
        return PartitionSpec()
    if len(names) != len(shape):
        raise ValueError(f"logical axis names {tuple(names)} do not match shape {tuple(shape)}")
    used: set[str] = set()
    out = []
    for name, size in zip(names, shape):
        target = None if name is None else _match(name, rules)
        if target is not None:
            target = tuple(a for a in target if a not in used)
            ways = int(np.prod([mesh.shape[a] for a in target])) if target else 1
            if not target or size % ways:
                if target:
                    _warn_once(f"sharding: dimension {name!r} of size {size} is not divisible "
                               f"by mesh axes {target} ({ways} ways): replicated")
                target = None
        if target is not None:
            used.update(target)
            out.append(target[0] if len(target) == 1 else target)
        else:
            out.append(None)
    return PartitionSpec(*out)


def _is_box(x) -> bool:
    return isinstance(x, nn.Partitioned)


def tree_shardings(tree: Any, mesh: Mesh, rules: Rules) -> Any:
    """NamedShardings for a (possibly abstract) pytree holding flax partitioning boxes.

    Boxed leaves (`nn.with_logical_partitioning`) are sharded by their names; every other
    array leaf is replicated. The result has the structure of `nn.unbox(tree)`.
    """

    def one(x):
        if _is_box(x):
            value = x.value
            return NamedSharding(mesh, logical_to_spec(x.names, value.shape, rules, mesh))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(one, tree, is_leaf=_is_box)


def batch_spec(rules: Rules, mesh: Mesh, global_batch: int,
               key: str = "train.batch_size") -> PartitionSpec:
    """The spec of a batch-leading array `[B, ...]`: axis 0 by the rule for `batch`.

    Unlike parameters, a batch the mesh axes do not divide is an error (naming `key`):
    replicating it would silently repeat the whole computation on every device.
    """
    target = _match("batch", rules) or ()
    ways = int(np.prod([mesh.shape[a] for a in target])) if target else 1
    if global_batch % ways:
        raise ValueError(f"config key {key}={global_batch} must be a multiple of {ways}: the "
                         f"batch is split over mesh axes {target} (mesh.shape, mesh.rules)")
    return logical_to_spec(("batch",), (global_batch,), rules, mesh)


def flax_rules(rules: Rules, names: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    """Our rules resolved for each logical name → flax's `(name, mesh_axes)` pairs.

    Use with `nn.logical_axis_rules(...)` so that `nn.with_logical_constraint` in the models
    follows the same table.
    """
    out = []
    for name in names:
        target = _match(name, rules)
        out.append((name, None if target is None else
                    (target[0] if len(target) == 1 else target)))
    return tuple(out)
