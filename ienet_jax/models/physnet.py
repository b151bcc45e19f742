"""PhysNet (3D-CNN rPPG network), channels-last, as open-rppg 0.1.1 ships it (Keras, real data).

Yu et al., "Remote Photoplethysmograph Signal Measurement from Facial Videos Using
Spatio-Temporal Networks", BMVC 2019 (PhysNet-3DCNN-ED); layer for layer open-rppg's Keras
`PhysNet`, whose PURE/RLAP-trained `.weights.h5` `ienet_jax.convert.physnet` converts.

`[B, T, H, W, 3]` frames are standardised per sample and channel over (T, H, W); then
block1 (conv 1×5×5, `filters[0]`) → max-pool (1,2,2) → block2 (3×3×3, `filters[1]`) →
block3 → max-pool (2,2,2) → block4, block5 → max-pool (2,2,2) → block6, block7 → max-pool
(1,2,2) → block8, block9 (3×3×3, `filters[2]`; every block conv 'same' → BatchNorm → ReLU)
→ two temporal upsamplings (transposed conv 4×1×1, stride 2, Keras 'same' → BatchNorm →
ELU) → spatial mean → conv 1×1×1 → `[B, T]`, standardised over T twice (plainly, then with
std + 1e-6), as the Keras model does. Keras ends with an average pool (1,2,2) and a flatten,
which at its 32×32 frames is this spatial mean over the last 2×2 map; the mean (PhysNet's
own adaptive pooling) lets other frame sizes give one value per frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import linen as nn

from ienet_jax.models.contract import (
    BOX_SCALE,
    INPUT_FPS,
    POSITIVE,
    ModelContract,
    check,
    choice,
    ints,
    module_fields,
    register,
)
from ienet_jax.models.conv import IMPLEMENTATIONS, Conv

EPS = 1e-6  # added to the std of the input and of the second output standardisation
TIME_POOLS = 2  # max-pools halving T (undone by the two upsamplings): T % 4 == 0
SPACE_POOLS = 4  # max-pools halving H and W: frames of at least 16 pixels
# Temporal upsampling: Keras Conv3DTranspose kernel 4, stride 2, padding 'same', which pads
# the stride-dilated input by (2, 2) (Keras' `compute_conv_transpose_padding_args_for_jax`).
UP_KERNEL, UP_STRIDE, UP_PADDING = 4, 2, (2, 2)
# (block, pool after it): the pool windows (T, H, W) of open-rppg's PhysNet
POOLS = {1: (1, 2, 2), 3: (2, 2, 2), 5: (2, 2, 2), 7: (1, 2, 2)}


def standardize(x: jnp.ndarray, axes: tuple[int, ...], eps: float) -> jnp.ndarray:
    """`(x − mean) / (std + eps)` over `axes` (population std)."""
    mean = jnp.mean(x, axis=axes, keepdims=True)
    return (x - mean) / (jnp.std(x, axis=axes, keepdims=True) + eps)


class PhysNet(nn.Module):
    """PhysNet: `frames [B, T, H, W, 3]` (floats, e.g. uint8 / 255) → `{"rppg": [B, T]}` float32.

    The output is a BVP-like signal standardised over T (not a derivative). `T` must be a
    multiple of 4 and `H`, `W` at least 16. Apply as `model.apply(variables, frames,
    train=False)`; training updates the `batch_stats` collection (`mutable=["batch_stats"]`).

    Attributes (the `model` keys of `configs/physnet.py`, which gives the values):
      filters: (block1, block2, blocks 3–9 and the upsamplings) filter counts.
      batch_norm_epsilon, batch_norm_momentum: BatchNorm settings (Keras: 1e-3, 0.99).
      conv_impl: `ienet_jax.models.conv.conv` implementation of the 3D convolutions.
      dtype: compute dtype (None: the input's); params in `param_dtype`.
    """

    filters: Sequence[int]
    batch_norm_epsilon: float
    batch_norm_momentum: float
    conv_impl: str
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32

    @classmethod
    def from_config(cls, model_config) -> PhysNet:
        """From a `model` section (see `configs/physnet.py`); invalid values raise a ValueError
        naming the `model.*` key."""
        c = check(model_config, FIELDS)
        if c["clip_length"] % 2 ** TIME_POOLS:
            raise ValueError(f"config key model.clip_length must be a positive multiple of "
                             f"{2 ** TIME_POOLS} (two temporal pools), got {c['clip_length']}")
        if c["frame_size"] < 2 ** SPACE_POOLS:
            raise ValueError(f"config key model.frame_size must be at least {2 ** SPACE_POOLS} "
                             f"(four spatial pools leave 1 pixel), got {c['frame_size']}")
        return cls(**module_fields(c))

    def _norm(self, x, train: bool, name: str):
        return nn.BatchNorm(
            use_running_average=not train, momentum=self.batch_norm_momentum,
            epsilon=self.batch_norm_epsilon, dtype=self.dtype, param_dtype=self.param_dtype,
            scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), ("conv_out",)),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("conv_out",)),
            name=name,
        )(x)

    @nn.compact
    def __call__(self, frames: jnp.ndarray, *, train: bool = False) -> dict[str, jnp.ndarray]:
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(f"PhysNet expects frames [B, T, H, W, 3], got shape {frames.shape}")
        _, t, h, w, _ = frames.shape
        if t % 2 ** TIME_POOLS or min(h, w) < 2 ** SPACE_POOLS:
            raise ValueError(f"PhysNet: clip length {t} must be a multiple of "
                             f"{2 ** TIME_POOLS} and frames at least {2 ** SPACE_POOLS} pixels, "
                             f"got {h}×{w}")
        dtype = self.dtype or frames.dtype
        frames = nn.with_logical_constraint(frames, ("batch", "time", "height", "width", None))
        x = standardize(frames.astype(jnp.float32), (1, 2, 3), EPS).astype(dtype)
        f1, f2, f3 = self.filters
        for i in range(1, 10):
            kernel, features = ((1, 5, 5), f1) if i == 1 else ((3, 3, 3), f2 if i == 2 else f3)
            x = Conv(features, kernel, padding="SAME", impl=self.conv_impl, dtype=dtype,
                     param_dtype=self.param_dtype, name=f"block{i}_conv")(x)
            x = nn.relu(self._norm(x, train, f"block{i}_norm"))
            if i in POOLS:
                x = nn.max_pool(x, POOLS[i], strides=POOLS[i], padding="VALID")
        for i in (1, 2):
            x = nn.ConvTranspose(
                f3, (UP_KERNEL, 1, 1), strides=(UP_STRIDE, 1, 1),
                padding=(UP_PADDING, (0, 0), (0, 0)), dtype=dtype,
                param_dtype=self.param_dtype, name=f"up{i}_conv",
                kernel_init=nn.with_logical_partitioning(
                    nn.linear.default_kernel_init, (None, None, None, "conv_in", "conv_out")),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(),
                                                       ("conv_out",)),
            )(x)
            x = nn.elu(self._norm(x, train, f"up{i}_norm"))
        x = jnp.mean(x, axis=(2, 3), keepdims=True)
        x = Conv(1, (1, 1, 1), padding="VALID", impl=self.conv_impl, dtype=dtype,
                 param_dtype=self.param_dtype, name="out")(x)
        y = x.reshape(x.shape[0], t).astype(jnp.float32)
        std = jnp.std(y, axis=1, keepdims=True)  # Keras: no epsilon here (a constant → 1)
        y = (y - jnp.mean(y, axis=1, keepdims=True)) / jnp.where(std > 0, std, 1.0)
        return {"rppg": standardize(y, (1,), EPS)}


# The `model` section of configs/physnet.py, checked key by key (`contract.check`).
FIELDS = {
    "name": (str, lambda v: v == "physnet", "'physnet'"),
    "frame_size": POSITIVE, "clip_length": POSITIVE,
    "filters": (ints, lambda v: len(v) == 3 and min(v) > 0, "three positive ints"),
    "batch_norm_epsilon": (float, lambda v: v > 0, "a positive float"),
    "batch_norm_momentum": (float, lambda v: 0 <= v < 1, "a float in [0, 1)"),
    "dtype": (jnp.dtype, lambda v: jnp.issubdtype(v, jnp.floating), "a float dtype"),
    "conv_impl": choice(*IMPLEMENTATIONS),
    "input_fps": INPUT_FPS,
    "box_scale": BOX_SCALE,
}


class PhysNetContract(ModelContract):
    """PhysNet: RGB frames / 255 in (standardised inside the model), the BVP itself out.

    The output is standardised over T, so only scale-free losses apply (no `mse`)."""

    name = "physnet"
    module = PhysNet
    losses = ("neg_pearson", "spectral")

    def inputs(self, batch: dict) -> tuple:
        if "rgb" not in batch:
            raise ValueError("model.name='physnet' needs an 'rgb' field in every batch "
                             "(data.modalities)")
        frames = batch["rgb"]
        if frames.dtype == jnp.uint8:
            return (frames.astype(jnp.float32) / 255.0,)
        return (frames.astype(jnp.float32),)

    def convert(self, state_dict: dict, model_config) -> dict:
        """Flax variables from open-rppg's Keras weights (`read_weights_h5` of a
        `physnet.*.weights.h5`)."""
        from ienet_jax.convert.physnet import physnet_variables

        return physnet_variables(state_dict, model_config)


register(PhysNetContract())
