"""Reference PyTorch checkpoints → Flax variables (IENet, its HR network, TS-CAN).

Public entry points (called from outside the project; keep their signatures):
- `from_reference_state_dict(state_dict, model_config) -> {"params", "batch_stats"}`
- `load_torch_checkpoint(path) -> {key: np.ndarray}` (needs the `torch` extra)
- `save_converted(directory, variables, model_config)` / `restore_converted(directory)`
- CLI: `python -m ienet_jax.convert --checkpoint ref.pth --config configs/ienet.py:reference
  --output DIR`
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ienet_jax.convert.checkpoint import restore_converted, restore_model_config, save_converted
from ienet_jax.convert.torch_io import (
    load_npz_state_dict,
    load_torch_checkpoint,
    strip_data_parallel,
)

__all__ = [
    "from_reference_state_dict",
    "load_npz_state_dict",
    "load_torch_checkpoint",
    "restore_converted",
    "restore_model_config",
    "save_converted",
]


def from_reference_state_dict(state_dict: Mapping[str, np.ndarray], model_config) -> dict:
    """Flax variables for `ienet_jax.models.build(model_config)` from a reference state dict.

    `model_config.name` picks the reference model through its contract's `convert`: "ienet"
    (fusion model, or the HR network with `rPPG_model.*` + FEE keys), "tscan", or "physnet"
    (open-rppg's Keras weights, `ienet_jax.convert.keras_h5.read_weights_h5`). Raises
    ValueError naming any missing, unexpected or mis-shaped key.
    """
    from ienet_jax.models import contract

    state_dict = strip_data_parallel({k: np.asarray(v) for k, v in state_dict.items()})
    return contract.get(model_config).convert(state_dict, model_config)
