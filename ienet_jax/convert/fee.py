"""Reference FEE head state dict (PyTorch, `train_hr.py`) → Flax variables of `FEEHead`.

Reference keys (after `prefix`): `conv1.weight` (16, 1, 3), `bn1.{weight, bias, running_mean,
running_var}` (16,), `conv2.weight` (1, 16, 3), `bn2.*` (1,); `num_batches_tracked` is ignored.
Conv1d weights `(out, in, k)` become Flax kernels `(k, in, out)`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def reference_array(
    state_dict: Mapping[str, np.ndarray], key: str, shape: tuple[int, ...]
) -> np.ndarray:
    """`state_dict[key]` as a float32 numpy array, checked against `shape`.

    Accepts numpy arrays and anything `np.asarray` understands (CPU torch tensors included).
    Raises a ValueError naming the key when it is missing or has another shape.
    """
    if key not in state_dict:
        raise ValueError(f"reference state dict has no key {key!r} (expected shape {shape})")
    value = state_dict[key]
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    value = np.asarray(value, dtype=np.float32)
    if value.shape != tuple(shape):
        raise ValueError(
            f"reference state dict key {key!r} has shape {value.shape}, expected {tuple(shape)}"
        )
    return value


def torch_conv_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch ConvNd weight `(out, in, *k)` → Flax kernel `(*k, in, out)`."""
    nsp = weight.ndim - 2
    return np.transpose(weight, (*range(2, 2 + nsp), 1, 0))


def fee_variables(state_dict: Mapping[str, np.ndarray], prefix: str = "") -> dict:
    """`{"params": …, "batch_stats": …}` of `FEEHead` (plain numpy arrays) from reference keys.

    `prefix` is prepended to every key (e.g. `"hr_head."` when the head sits inside a larger
    state dict).
    """
    params: dict = {}
    stats: dict = {}
    for i, (c_in, c_out) in ((1, (1, 16)), (2, (16, 1))):
        weight = reference_array(state_dict, f"{prefix}conv{i}.weight", (c_out, c_in, 3))
        params[f"conv{i}"] = {"kernel": torch_conv_kernel(weight)}
        bn = f"{prefix}bn{i}."
        params[f"bn{i}"] = {
            "scale": reference_array(state_dict, bn + "weight", (c_out,)),
            "bias": reference_array(state_dict, bn + "bias", (c_out,)),
        }
        stats[f"bn{i}"] = {
            "mean": reference_array(state_dict, bn + "running_mean", (c_out,)),
            "var": reference_array(state_dict, bn + "running_var", (c_out,)),
        }
    return {"params": params, "batch_stats": stats}
