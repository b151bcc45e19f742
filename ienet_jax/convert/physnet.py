"""open-rppg's Keras PhysNet weights (`read_weights_h5` of `physnet.*.weights.h5`) → Flax
variables of `PhysNet`.

Key map (Keras → Flax): `ConvBlock{i}/layers/conv3d/vars/{0,1}` → `block{i}_conv/{kernel,
bias}`; `ConvBlock{i}/layers/batch_normalization/vars/{0,1,2,3}` → `block{i}_norm` params
`scale`, `bias` and batch stats `mean`, `var`; the two `layers/sequential_<n>` groups, in
the order of `n` (their numbers vary between Keras sessions), → `up1`, `up2`
(`conv3d_transpose` → `up*_conv`, `batch_normalization` → `up*_norm`); `convBlock10/vars/
{0,1}` → `out`. Conv kernels share Flax's layout `[*k, in, out]`. Keras' transposed conv is
the gradient of a conv (its kernel `[*k, out, in]`, flipped in space by
`conv_transpose(..., transpose_kernel=True)`); Flax's `ConvTranspose` applies its kernel
`[*k, in, out]` as is, so the kernel is flipped and its last two axes swapped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from ienet_jax.convert.fee import reference_array
from ienet_jax.models.physnet import PhysNet

_NORM = (("params", "scale"), ("params", "bias"), ("batch_stats", "mean"),
         ("batch_stats", "var"))
_UP_GROUP = re.compile(r"^layers/sequential_(\d+)/")


def _up_groups(state_dict: Mapping[str, np.ndarray]) -> list[str]:
    numbers = sorted({int(m.group(1)) for k in state_dict if (m := _UP_GROUP.match(k))})
    if len(numbers) != 2:
        raise ValueError(f"Keras PhysNet weights: expected two Conv3DTranspose groups "
                         f"layers/sequential_<n>/, found {[f'sequential_{n}' for n in numbers]}")
    return [f"layers/sequential_{n}" for n in numbers]


def _flip_swap(kernel: np.ndarray) -> np.ndarray:
    """Keras Conv3DTranspose kernel `[*k, out, in]` ↔ Flax ConvTranspose kernel `[*k, in, out]`
    (an involution: flip the spatial axes, swap the channel axes)."""
    nsp = kernel.ndim - 2
    flipped = kernel[(slice(None, None, -1),) * nsp]
    return np.ascontiguousarray(np.swapaxes(flipped, -1, -2))


def physnet_variables(state_dict: Mapping[str, np.ndarray], model_config) -> dict:
    """`{"params", "batch_stats"}` of `PhysNet.from_config(model_config)` (numpy float32).

    Missing, unexpected or mis-shaped keys raise a ValueError naming the key; shapes are
    those of the model's own initialisation.
    """
    model = PhysNet.from_config(model_config)
    t, s = int(model_config.clip_length), int(model_config.frame_size)
    frames = jax.ShapeDtypeStruct((1, t, s, s, 3), jnp.float32)
    expected = nn.unbox(jax.eval_shape(
        lambda x: model.init(jax.random.key(0), x, train=False), frames))

    def shape(collection: str, module: str, leaf: str) -> tuple[int, ...]:
        return tuple(expected[collection][module][leaf].shape)

    out: dict = {"params": {}, "batch_stats": {}}
    used: set[str] = set()

    def take(key: str, collection: str, module: str, leaf: str, transposed: bool = False):
        want = shape(collection, module, leaf)
        keras_shape = (*want[:-2], want[-1], want[-2]) if transposed else want
        value = reference_array(state_dict, key, keras_shape)
        out[collection].setdefault(module, {})[leaf] = _flip_swap(value) if transposed else value
        used.add(key)

    def norm(prefix: str, module: str) -> None:
        for i, (collection, leaf) in enumerate(_NORM):
            take(f"{prefix}/layers/batch_normalization/vars/{i}", collection, module, leaf)

    for i in range(1, 10):
        prefix = f"ConvBlock{i}"
        take(f"{prefix}/layers/conv3d/vars/0", "params", f"block{i}_conv", "kernel")
        take(f"{prefix}/layers/conv3d/vars/1", "params", f"block{i}_conv", "bias")
        norm(prefix, f"block{i}_norm")
    for i, prefix in enumerate(_up_groups(state_dict), start=1):
        take(f"{prefix}/layers/conv3d_transpose/vars/0", "params", f"up{i}_conv", "kernel",
             transposed=True)
        take(f"{prefix}/layers/conv3d_transpose/vars/1", "params", f"up{i}_conv", "bias")
        norm(prefix, f"up{i}_norm")
    take("convBlock10/vars/0", "params", "out", "kernel")
    take("convBlock10/vars/1", "params", "out", "bias")
    unexpected = sorted(set(state_dict) - used)
    if unexpected:
        raise ValueError(f"Keras PhysNet weights have unexpected keys {unexpected[:8]}"
                         f"{' …' if len(unexpected) > 8 else ''} (another model?)")
    if jax.tree.structure(out) != jax.tree.structure(expected):
        raise ValueError("converted PhysNet variables do not match the model's structure: "
                         f"expected {jax.tree.structure(expected)}, got {jax.tree.structure(out)}")
    return out
