"""Converted weights on disk: an orbax checkpoint of `{"params", "batch_stats"}` + the model config.

Layout of a converted directory:
  DIR/variables/         orbax StandardCheckpointer checkpoint of the variables
  DIR/model_config.json  the `model` config section the variables belong to
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

VARIABLES = "variables"
MODEL_CONFIG = "model_config.json"


def save_converted(directory: str | Path, variables: dict, model_config) -> Path:
    """Write `variables` (params + batch_stats) and `model_config` under `directory`."""
    directory = Path(directory).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: variables[k] for k in ("params", "batch_stats") if k in variables}
    state = jax.tree.map(np.asarray, state)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory / VARIABLES, state, force=True)
        checkpointer.wait_until_finished()
    config = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
    (directory / MODEL_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return directory


def restore_converted(directory: str | Path) -> dict:
    """The variables `{"params", "batch_stats"}` written by `save_converted`."""
    directory = Path(directory).absolute()
    path = directory / VARIABLES
    if not path.is_dir():
        raise FileNotFoundError(f"no converted checkpoint at {path} (write one with "
                                "`python -m ienet_jax.convert`)")
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(path)
    restored.setdefault("batch_stats", {})
    return restored


def restore_model_config(directory: str | Path) -> ml_collections.ConfigDict:
    """The `model` config section saved next to converted variables."""
    path = Path(directory) / MODEL_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"model config not found: {path}")
    config = json.loads(path.read_text())
    for key in ("patch", "window", "dims", "depths", "heads"):
        if isinstance(config.get(key), list):
            config[key] = tuple(config[key])
    return ml_collections.ConfigDict(config)
