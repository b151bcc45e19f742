"""Per-clip input normalisation choices (`data.normalize`), applied on the host after augmentation.

| choice        | frames out                                          | `bvp` out            |
|---------------|-----------------------------------------------------|----------------------|
| `none`        | uint8 as stored (normalise on device)               | as stored            |
| `reference`   | float32 `(x/255 − 0.5)/0.25` (IENet reference)      | as stored            |
| `standardize` | float32, per clip and modality: zero mean, unit std | as stored            |
| `tscan`       | `rgb` float32 `[T, H, W, 6]`: motion ‖ appearance   | difference-normalised|

`normalize_reference` and `tscan_inputs` / `tscan_label` (`tscan_inputs.py`) take numpy or
JAX arrays, so the trainer applies the same ones on device to unnormalised batches; nothing
here imports JAX or the models. `tscan` keeps `T` by zero-padding the last motion frame /
label sample (rPPG-Toolbox convention) and is RGB only.
"""

from __future__ import annotations

import sys
from typing import Any

import grain
import numpy as np

from ienet_jax.data.decode import MODALITIES
from ienet_jax.data.tscan_inputs import tscan_inputs, tscan_label

EPS = 1e-6
RGB_ONLY = ("tscan",)  # choices whose output replaces `rgb` with a derived stack


def standardize(frames: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Frames `[T, H, W, C]` → float32 with zero mean and unit std over the whole clip."""
    x = frames.astype(np.float32)
    mean = x.mean(dtype=np.float64)
    std = x.std(dtype=np.float64)
    return ((x - np.float32(mean)) / np.float32(std + eps)).astype(np.float32)


def check_normalize(method: str, modalities) -> str:
    """Validates `data.normalize` against `data.modalities`."""
    if method not in NORMALIZATIONS:
        raise ValueError(f"data.normalize={method!r}: expected one of {tuple(NORMALIZATIONS)}")
    if method in RGB_ONLY and "nir" in modalities:
        raise ValueError(f"data.normalize={method!r} is RGB only but data.modalities="
                         f"{modalities}; use modalities=('rgb',)")
    return method


def normalize_reference(frames):
    """uint8 frames → `(x / 255 − 0.5) / 0.25` float32 (numpy in → numpy out, jax in → jax out)."""
    xp = np
    jax = sys.modules.get("jax")  # a JAX array implies JAX is imported
    if jax is not None and isinstance(frames, jax.Array):
        import jax.numpy as xp
    return (xp.asarray(frames, xp.float32) / 255.0 - 0.5) / 0.25


def _per_modality(fn):
    def apply(out: dict[str, Any]) -> None:
        for name in MODALITIES:
            if name in out:
                out[name] = fn(out[name])
    return apply


def _tscan(out: dict[str, Any]) -> None:
    t = out["rgb"].shape[0]
    out["rgb"] = tscan_inputs(out["rgb"], num_frames=t)
    out["bvp"] = tscan_label(out["bvp"], num_samples=t)


# `data.normalize` choice → in-place update of an example's fields (the module table)
NORMALIZATIONS = {
    "none": lambda out: None,
    "reference": _per_modality(normalize_reference),
    "standardize": _per_modality(standardize),
    "tscan": _tscan,
}


def normalize_example(example: dict[str, Any], method: str) -> dict[str, Any]:
    """Applies normalisation `method` (see the module table) to one example."""
    check_normalize(method, ())
    out = dict(example)
    NORMALIZATIONS[method](out)
    return out


class Normalize(grain.transforms.Map):
    """grain map applying `normalize_example(example, method)`."""

    def __init__(self, method: str):
        self.method = check_normalize(method, ())

    def map(self, example: dict[str, Any]) -> dict[str, Any]:
        return normalize_example(example, self.method)
