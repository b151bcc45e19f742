"""Multi-process start-up: `jax.distributed.initialize()` before any other JAX call.

On TPU pod slices, SLURM and other clusters JAX finds the coordinator, process count and
process id itself; elsewhere set `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`,
`JAX_PROCESS_ID`. Single-process runs skip this entirely.
"""

from __future__ import annotations

import jax
from absl import logging


def initialize(enabled: bool) -> None:
    """Join the multi-process job when `enabled` (the `--distributed` flag of main)."""
    if not enabled:
        return
    jax.distributed.initialize()
    logging.info("distributed: process %d of %d, %d local / %d global devices",
                 jax.process_index(), jax.process_count(), jax.local_device_count(),
                 jax.device_count())
