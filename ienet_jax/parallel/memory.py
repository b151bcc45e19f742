"""Bytes each device holds of a sharded pytree (parameters, optimiser state, …).

`tree_bytes_per_device(tree)` works on concrete `jax.Array`s (their addressable shards'
`nbytes`) and on abstract `jax.ShapeDtypeStruct`s carrying a `sharding` (the shard shape
the sharding gives each device), so a benchmark can size a strategy without allocating it.
`state_bytes_per_device(state)` applies it to a `TrainState`'s parts; the trainer logs it
at start-up. Figures are the MAXIMUM over devices of what one device holds (for
multi-process runs: over this process's devices), next to the unsharded total.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np


def _leaf_bytes(x) -> dict[int, int]:
    """`{device id: bytes of x on that device}` for one array leaf."""
    if isinstance(x, jax.Array):
        out: dict[int, int] = {}
        for shard in x.addressable_shards:
            out[shard.device.id] = out.get(shard.device.id, 0) + int(shard.data.nbytes)
        return out
    sharding = getattr(x, "sharding", None)
    itemsize = np.dtype(x.dtype).itemsize
    if sharding is None:
        return {-1: int(np.prod(x.shape)) * itemsize}  # unplaced: one full copy
    out = {}
    for device, index in sharding.addressable_devices_indices_map(tuple(x.shape)).items():
        shape = [len(range(*s.indices(n))) for s, n in zip(index, x.shape)]
        out[device.id] = out.get(device.id, 0) + int(np.prod(shape)) * itemsize
    return out


def tree_bytes_per_device(tree: Any) -> int:
    """Max over devices of the bytes of `tree`'s array leaves held on that device."""
    totals: dict[int, int] = {}
    for leaf in jax.tree.leaves(tree):
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            continue
        for device, n in _leaf_bytes(leaf).items():
            totals[device] = totals.get(device, 0) + n
    if -1 in totals and len(totals) > 1:  # unplaced leaves count on every device
        extra = totals.pop(-1)
        totals = {d: n + extra for d, n in totals.items()}
    return max(totals.values(), default=0)


def tree_bytes(tree: Any) -> int:
    """Bytes of `tree`'s array leaves, unsharded (one logical copy)."""
    return int(sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
                   for x in jax.tree.leaves(tree) if hasattr(x, "shape")))


@dataclasses.dataclass(frozen=True)
class StateBytes:
    """Per-device (max over devices) and unsharded bytes of a train state's parts."""

    params: int
    opt_state: int
    batch_stats: int
    params_total: int
    opt_state_total: int
    batch_stats_total: int

    @property
    def per_device(self) -> int:
        return self.params + self.opt_state + self.batch_stats

    @property
    def total(self) -> int:
        return self.params_total + self.opt_state_total + self.batch_stats_total

    def line(self) -> str:
        """One log line: per device (max over devices) of the unsharded total."""
        return (f"per-device state: params {_size(self.params)} of {_size(self.params_total)}, "
                f"optimiser {_size(self.opt_state)} of {_size(self.opt_state_total)}, "
                f"batch stats {_size(self.batch_stats)}; total {_size(self.per_device)} of "
                f"{_size(self.total)}")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def state_bytes_per_device(state: Any) -> StateBytes:
    """`StateBytes` of a `TrainState` (arrays, or `ShapeDtypeStruct`s with shardings).

    E.g. `state_bytes_per_device(create_train_state(...)[0]).params` = the most parameter
    bytes any device holds; or, without allocating,
    `state_bytes_per_device(abstract_state(shardings, model, model_config, tx))`.
    """
    return StateBytes(
        params=tree_bytes_per_device(state.params),
        opt_state=tree_bytes_per_device(state.opt_state),
        batch_stats=tree_bytes_per_device(state.batch_stats),
        params_total=tree_bytes(state.params),
        opt_state_total=tree_bytes(state.opt_state),
        batch_stats_total=tree_bytes(state.batch_stats),
    )
