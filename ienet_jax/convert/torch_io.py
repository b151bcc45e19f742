"""Reading reference state dicts: PyTorch checkpoints (optional `torch` extra) and .npz files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

# Keys under which training scripts commonly nest the state dict.
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module")
DATA_PARALLEL_PREFIX = "module."
TORCH_HINT = "pip install 'ienet-jax[torch]' (torch==2.13.0, CPU wheel)"


def strip_data_parallel(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop a `module.` (DataParallel) prefix when every key carries it."""
    keys = list(state_dict)
    if keys and all(k.startswith(DATA_PARALLEL_PREFIX) for k in keys):
        return {k[len(DATA_PARALLEL_PREFIX):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _unnest(obj, path: str) -> Mapping:
    """The state dict inside a loaded checkpoint object (dict of tensors, or nested)."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: checkpoint holds a {type(obj).__name__}, expected a state dict")
    for key in NESTED_KEYS:
        if key in obj and isinstance(obj[key], Mapping):
            return _unnest(obj[key], path)
    return obj


def load_torch_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """A reference `.pth` checkpoint → `{key: numpy array}` (needs the `torch` extra).

    Accepts a bare state dict or a dict holding one under `state_dict`/`model`/`net`/…;
    strips a `module.` DataParallel prefix. Loads on CPU with `weights_only=True`.
    """
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"reading PyTorch checkpoints needs torch: {TORCH_HINT}") from err
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    state = _unnest(obj, str(path))
    out = {}
    for key, value in state.items():
        if not hasattr(value, "detach"):
            raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key] = value.detach().cpu().numpy()
    return strip_data_parallel(out)


def load_npz_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """An `.npz` of reference arrays (keys = state-dict keys) → `{key: numpy array}`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"state-dict npz not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        return strip_data_parallel({k: data[k] for k in data.files})
