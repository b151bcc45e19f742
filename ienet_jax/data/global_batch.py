"""Per-process numpy batches → global `jax.Array`s sharded over the batch axis.

Each process holds `B / process_count` rows of a global batch of `B` clips;
`jax.make_array_from_process_local_data` stitches them into one global array laid out by
`sharding` (typically `NamedSharding(mesh, P(("data", "fsdp")))` on the batch axis).
String fields (`subject`, `video`) stay host-local numpy arrays: they never go to devices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np


def make_global_batch(batch: Mapping[str, Any],
                      sharding: jax.sharding.Sharding) -> dict[str, Any]:
    """Per-process batch `{name: [B_local, ...]}` → `{name: global jax.Array [B, ...]}` laid
    out by `sharding` (of the batch axis). Non-numeric leaves (strings) are returned unchanged.
    """
    out: dict[str, Any] = {}
    for name, value in batch.items():
        value = np.asarray(value)
        if value.dtype.kind in "USO":
            out[name] = value
            continue
        if value.ndim == 0:
            raise ValueError(f"batch field {name!r} is a scalar: expected a leading batch axis")
        out[name] = jax.make_array_from_process_local_data(sharding, value)
    return out
