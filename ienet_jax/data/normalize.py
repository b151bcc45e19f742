"""Per-clip input normalisation choices (`data.normalize`), applied on the host after augmentation.

| choice        | frames out                                          | `bvp` out            |
|---------------|-----------------------------------------------------|----------------------|
| `none`        | uint8 as stored (normalise on device)               | as stored            |
| `reference`   | float32 `(x/255 − 0.5)/0.25` (IENet reference)      | as stored            |
| `standardize` | float32, per clip and modality: zero mean, unit std | as stored            |
| `tscan`       | `rgb` float32 `[T, H, W, 6]`: motion ‖ appearance   | difference-normalised|

`reference` reuses `ienet_jax.models.ienet.normalize_reference` and `tscan` reuses
`ienet_jax.models.tscan_inputs` (imported when first used, so decode-only users stay JAX
free). `tscan` keeps `T` by zero-padding the last motion frame / label sample (rPPG-Toolbox
convention) and is RGB only.
"""

from __future__ import annotations

from typing import Any

import grain
import numpy as np

from ienet_jax.data.decode import MODALITIES

NORMALIZATIONS = ("none", "reference", "standardize", "tscan")
EPS = 1e-6


def standardize(frames: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Frames `[T, H, W, C]` → float32 with zero mean and unit std over the whole clip."""
    x = frames.astype(np.float32)
    mean = x.mean(dtype=np.float64)
    std = x.std(dtype=np.float64)
    return ((x - np.float32(mean)) / np.float32(std + eps)).astype(np.float32)


def check_normalize(method: str, modalities) -> str:
    """Validates `data.normalize` against `data.modalities`."""
    if method not in NORMALIZATIONS:
        raise ValueError(f"data.normalize={method!r}: expected one of {NORMALIZATIONS}")
    if method == "tscan" and "nir" in modalities:
        raise ValueError(f"data.normalize='tscan' is RGB only but data.modalities={modalities}; "
                         "use modalities=('rgb',)")
    return method


def _functions(method: str) -> tuple:
    """The model-side functions `method` needs (imported here, in the calling thread)."""
    if method == "reference":
        from ienet_jax.models.ienet import normalize_reference

        return (normalize_reference,)
    if method == "tscan":
        from ienet_jax.models.tscan_inputs import tscan_inputs, tscan_label

        return tscan_inputs, tscan_label
    if method in NORMALIZATIONS:
        return ()
    raise ValueError(f"data.normalize={method!r}: expected one of {NORMALIZATIONS}")


def _apply(example: dict[str, Any], method: str, functions: tuple) -> dict[str, Any]:
    out = dict(example)
    if method == "reference":
        (normalize_reference,) = functions
        for name in MODALITIES:
            if name in out:
                out[name] = normalize_reference(out[name])
    elif method == "standardize":
        for name in MODALITIES:
            if name in out:
                out[name] = standardize(out[name])
    elif method == "tscan":
        tscan_inputs, tscan_label = functions
        t = out["rgb"].shape[0]
        out["rgb"] = tscan_inputs(out["rgb"], num_frames=t)
        out["bvp"] = tscan_label(out["bvp"], num_samples=t)
    return out


def normalize_example(example: dict[str, Any], method: str) -> dict[str, Any]:
    """Applies normalisation `method` (see the module table) to one example."""
    return _apply(example, method, _functions(method))


class Normalize(grain.transforms.Map):
    """grain map applying `normalize_example(example, method)`.

    The model-side functions are resolved at construction and pickled by reference, so
    their (large) modules are imported once per process before grain's reader threads
    start: importing flax concurrently from several threads fails.
    """

    def __init__(self, method: str):
        self.method = method
        self.functions = _functions(method)

    def map(self, example: dict[str, Any]) -> dict[str, Any]:
        return _apply(example, self.method, self.functions)
