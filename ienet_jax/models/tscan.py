"""TS-CAN (temporal shift convolutional attention network), single-task MTTS-CAN, channels-last.

Liu et al., "Multi-Task Temporal Shift Attention Networks for On-Device Contactless Vitals
Measurement", NeurIPS 2020; layer for layer the PyTorch port in the AimaNet repository, with
the MTTS-CAN attention mask `g / sum_HW(g) · H · W · 0.5`.

Two branches see every frame: a motion branch on difference-normalised frames, whose convs are
preceded by a temporal shift (TSM) inside segments of `frame_depth` frames, and an appearance
branch on standardised frames, whose sigmoid gates (one per block) weight the motion features
spatially. Two such blocks (32 then 64 filters: conv3×3 same, conv3×3 valid, tanh, gate,
avg-pool, dropout), then Dense 128 tanh, dropout, Dense 1: one value per frame, the first
derivative of the BVP. Batch and time are folded into one axis `[B·T, H, W, C]`; the temporal
shift unfolds segments with a reshape, so nothing loops over frames.

Two options reproduce open-rppg 0.1.1's TS-CAN (Keras, trained on PURE / RLAP): `shift_fill`
("zeros": MTTS-CAN and rPPG-Toolbox fill the frame shifted out at a segment's end with zeros;
"edge": open-rppg repeats the edge frame) and `input_prep` ("toolbox" / "open_rppg": the
function of `ienet_jax.data.tscan_inputs.INPUT_PREPS` the model applies to raw frames).
The module takes raw 3-channel frames and prepares them itself, so the prep a checkpoint was
trained with travels in its `model` config; 6-channel inputs prepared beforehand
(`data.normalize="tscan"`, i.e. `tscan_inputs`) are used as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import linen as nn

from ienet_jax.data.tscan_inputs import INPUT_PREPS, tscan_label
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

INPUT_CHANNELS = 6  # 3 motion + 3 appearance
RAW_CHANNELS = 3  # RGB frames, prepared by the module (`input_prep`)
SHIFT_FILLS = ("zeros", "edge")


def temporal_shift(x: jnp.ndarray, frame_depth: int, fill: str = "zeros") -> jnp.ndarray:
    """TSM on `[N·D, H, W, C]` (segments of `D = frame_depth` consecutive frames).

    Within each segment, channels `[0, C//3)` take the next frame's values, `[C//3, 2·(C//3))`
    the previous frame's, the rest stay. The frame missing at the segment's end (start) is
    zeros (`fill="zeros"`, MTTS-CAN) or a copy of the segment's own last (first) frame
    (`fill="edge"`, open-rppg).
    """
    nd, h, w, c = x.shape
    if nd % frame_depth:
        raise ValueError(f"temporal_shift: {nd} frames are not a multiple of {frame_depth}")
    if fill not in SHIFT_FILLS:
        raise ValueError(f"temporal_shift: fill must be one of {SHIFT_FILLS}, got {fill!r}")
    fold = c // 3
    x = x.reshape(nd // frame_depth, frame_depth, h, w, c)
    nxt, prev = x[..., :fold], x[..., fold:2 * fold]
    if fill == "zeros":
        last, first = jnp.zeros_like(nxt[:, :1]), jnp.zeros_like(prev[:, :1])
    else:
        last, first = nxt[:, -1:], prev[:, :1]
    left = jnp.concatenate([nxt[:, 1:], last], axis=1)
    right = jnp.concatenate([first, prev[:, :-1]], axis=1)
    out = jnp.concatenate([left, right, x[..., 2 * fold:]], axis=-1)
    return out.reshape(nd, h, w, c)


def attention_mask(gate: jnp.ndarray) -> jnp.ndarray:
    """MTTS-CAN mask `g / sum_HW(g) · H · W · 0.5` of a sigmoid gate `[N, H, W, 1]` (in f32)."""
    _, h, w, _ = gate.shape
    g = gate.astype(jnp.float32)
    return g / jnp.sum(g, axis=(1, 2), keepdims=True) * (h * w * 0.5)


def avg_pool(x: jnp.ndarray, size: int) -> jnp.ndarray:
    """Non-overlapping `size × size` average pooling of `[N, H, W, C]`; odd edges are dropped."""
    _, h, w, _ = x.shape
    ho, wo = h // size, w // size
    # A sum of strided views rather than a reshape: no reshape of a (possibly sharded) array.
    total = sum(
        x[:, i: i + ho * size: size, j: j + wo * size: size]
        for i in range(size) for j in range(size)
    )
    return total / (size * size)


def flat_spatial_size(frame_size: int, kernel_size: int = 3, pool: int = 2, blocks: int = 2) -> int:
    """Side of the final feature map: each block keeps the size ("same" conv), loses
    `kernel_size − 1` ("valid" conv) and pools by `pool` (36 → 7, 72 → 16)."""
    size = frame_size
    for _ in range(blocks):
        size = (size - (kernel_size - 1)) // pool
    return size


class CANBlock(nn.Module):
    """One motion/appearance block: `(motion, appearance) [N, H, W, Ci]` → `[N, H', W', F]` each.

    Motion: TSM → conv same → tanh → TSM → conv valid → tanh → × attention mask of the
    appearance gate. Appearance: conv same → tanh → conv valid → tanh; gate = sigmoid(conv 1×1).
    Both: avg-pool, dropout.
    """

    filters: int
    frame_depth: int
    kernel_size: int
    pool: int
    dropout: float
    conv_impl: str
    shift_fill: str
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32

    def _conv(self, features: int, kernel: int, padding: str, name: str) -> Conv:
        return Conv(
            features, kernel_size=(kernel, kernel), padding=padding, impl=self.conv_impl,
            dtype=self.dtype, param_dtype=self.param_dtype, name=name,
        )

    @nn.compact
    def __call__(self, motion, appearance, *, train: bool):
        k, f = self.kernel_size, self.filters
        m = jnp.tanh(self._conv(f, k, "SAME", "motion_same")(
            temporal_shift(motion, self.frame_depth, self.shift_fill)))
        m = jnp.tanh(self._conv(f, k, "VALID", "motion_valid")(
            temporal_shift(m, self.frame_depth, self.shift_fill)))
        a = jnp.tanh(self._conv(f, k, "SAME", "appearance_same")(appearance))
        a = jnp.tanh(self._conv(f, k, "VALID", "appearance_valid")(a))
        gate = nn.sigmoid(self._conv(1, 1, "VALID", "gate")(a))
        m = m * attention_mask(gate).astype(m.dtype)
        m = nn.Dropout(self.dropout)(avg_pool(m, self.pool), deterministic=not train)
        a = nn.Dropout(self.dropout)(avg_pool(a, self.pool), deterministic=not train)
        return m, a


class TSCAN(nn.Module):
    """TS-CAN: `frames [B, T, H, W, 3 or 6]` → `{"rppg": [B, T]}` (BVP first derivative, f32).

    3 channels: raw RGB frames (uint8, or float on the 0–255 scale), prepared by the
    `input_prep` function (motion ‖ appearance, `T` frames kept). 6 channels: inputs prepared
    beforehand, `frames[..., :3]` the motion and `frames[..., 3:]` the appearance frames
    (`tscan_inputs`, whatever `input_prep` says). `T` must be a multiple of `frame_depth`
    (the temporal shift works within consecutive segments of `frame_depth` frames). Apply as
    `model.apply(variables, frames, train=False)`; training needs a `dropout` rng.

    Attributes (the `model` keys of `configs/tscan.py`, which gives the values):
      frame_depth: frames per temporal-shift segment.
      filters: filters of the two blocks.
      hidden: width of the hidden Dense layer.
      dropout: (block dropout, dense dropout) rates.
      kernel_size: spatial conv kernel.
      pool: avg-pool size.
      conv_impl: `ienet_jax.models.conv.conv` implementation.
      shift_fill: the temporal shift's fill at segment ends, "zeros" or "edge".
      input_prep: `INPUT_PREPS` key preparing raw frames, "toolbox" or "open_rppg".
      dtype: compute dtype (None: the input's); params in `param_dtype`.
    """

    frame_depth: int
    filters: Sequence[int]
    hidden: int
    dropout: Sequence[float]
    kernel_size: int
    pool: int
    conv_impl: str
    shift_fill: str
    input_prep: str
    dtype: jnp.dtype | None = None
    param_dtype: jnp.dtype = jnp.float32

    @classmethod
    def from_config(cls, model_config) -> TSCAN:
        """From a `model` section (see `configs/tscan.py`); invalid values raise a ValueError
        naming the `model.*` key."""
        c = check(model_config, FIELDS)
        if c["clip_length"] % c["frame_depth"]:
            raise ValueError(f"config key model.clip_length must be a positive multiple of "
                             f"model.frame_depth={c['frame_depth']}, got {c['clip_length']}")
        if flat_spatial_size(c["frame_size"], c["kernel_size"], c["pool"]) < 1:
            raise ValueError(f"config key model.frame_size must be large enough for two "
                             f"conv+pool blocks (kernel {c['kernel_size']}, pool {c['pool']}), "
                             f"got {c['frame_size']}")
        return cls(**module_fields(c))

    @nn.compact
    def __call__(self, frames: jnp.ndarray, *, train: bool = False) -> dict[str, jnp.ndarray]:
        if frames.ndim != 5 or frames.shape[-1] not in (RAW_CHANNELS, INPUT_CHANNELS):
            raise ValueError(
                f"TSCAN expects frames [B, T, H, W, {RAW_CHANNELS}] (raw RGB) or "
                f"[B, T, H, W, {INPUT_CHANNELS}] (motion ++ appearance), got shape {frames.shape}"
            )
        b, t, h, w, _ = frames.shape
        if t % self.frame_depth:
            raise ValueError(
                f"TSCAN: clip length {t} is not a multiple of frame_depth={self.frame_depth}"
            )
        # Shard clips over the batch axis; folding (B, T) keeps each clip's frames together.
        frames = nn.with_logical_constraint(frames, ("batch", "time", "height", "width", None))
        if frames.shape[-1] == RAW_CHANNELS:  # per-clip statistics, in float32
            frames = INPUT_PREPS[self.input_prep](frames, num_frames=t)
        elif self.input_prep != "toolbox":
            raise ValueError(
                f"TSCAN with model.input_prep={self.input_prep!r} takes raw RGB frames "
                f"[B, T, H, W, {RAW_CHANNELS}]; 6-channel inputs are MTTS-CAN's "
                "(data.normalize='tscan'): use data.normalize='none'")
        dtype = self.dtype or frames.dtype
        x = frames.astype(dtype).reshape(b * t, h, w, INPUT_CHANNELS)
        motion, appearance = x[..., :3], x[..., 3:]
        for i, filters in enumerate(self.filters):
            motion, appearance = CANBlock(
                filters, self.frame_depth, self.kernel_size, self.pool, self.dropout[0],
                self.conv_impl, self.shift_fill, dtype=dtype, param_dtype=self.param_dtype,
                name=f"block{i + 1}",
            )(motion, appearance, train=train)
        y = motion.reshape(b * t, -1)  # flattened in (H, W, C) order
        y = nn.Dense(
            self.hidden, dtype=dtype, param_dtype=self.param_dtype, name="hidden",
            kernel_init=nn.with_logical_partitioning(nn.linear.default_kernel_init,
                                                     (None, "mlp")),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("mlp",)),
        )(y)
        y = nn.Dropout(self.dropout[1])(jnp.tanh(y), deterministic=not train)
        y = nn.Dense(
            1, dtype=dtype, param_dtype=self.param_dtype, name="out",
            kernel_init=nn.with_logical_partitioning(nn.linear.default_kernel_init,
                                                     ("mlp", None)),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (None,)),
        )(y)
        return {"rppg": y[:, 0].reshape(b, t).astype(jnp.float32)}


def _dropout(value) -> tuple[float, ...]:
    return (float(value),) * 2 if isinstance(value, int | float) else tuple(map(float, value))


# The `model` section of configs/tscan.py, checked key by key (`contract.check`).
FIELDS = {
    "name": (str, lambda v: v == "tscan", "'tscan'"),
    "frame_size": POSITIVE, "clip_length": POSITIVE,
    "frame_depth": (int, lambda v: v >= 2, "an int >= 2"),
    "filters": (ints, lambda v: len(v) == 2 and min(v) > 0, "two positive ints"),
    "hidden": POSITIVE,
    "dropout": (_dropout, lambda v: len(v) == 2 and all(0 <= r < 1 for r in v),
                "two rates in [0, 1) (blocks, dense)"),
    "kernel_size": (int, lambda v: v >= 1 and v % 2 == 1, "an odd int"),
    "pool": (int, lambda v: v >= 1, "an int >= 1"),
    "dtype": (jnp.dtype, lambda v: jnp.issubdtype(v, jnp.floating), "a float dtype"),
    "conv_impl": choice(*IMPLEMENTATIONS),
    "shift_fill": choice(*SHIFT_FILLS),
    "input_prep": choice(*INPUT_PREPS),
    "input_fps": INPUT_FPS,
    "box_scale": BOX_SCALE,
}


class TSCANContract(ModelContract):
    """TS-CAN: RGB only (raw frames, or motion ‖ appearance from `data.normalize="tscan"`),
    the BVP's first derivative out."""

    name = "tscan"
    derivative = True
    module = TSCAN
    added_keys = {"shift_fill": "zeros", "input_prep": "toolbox", "input_fps": 0.0,
                  "box_scale": 0.0}

    def channels(self, model_config) -> tuple[int, ...]:
        return (RAW_CHANNELS,)  # raw RGB (the parameters do not depend on it)

    def inputs(self, batch: dict) -> tuple:
        frames = batch["rgb"]
        if frames.shape[-1] == INPUT_CHANNELS:  # already TS-CAN inputs (data.normalize="tscan")
            return (frames.astype(jnp.float32),)
        return (frames,)  # raw frames: the module applies its `model.input_prep`

    def label(self, batch: dict):
        bvp = batch["bvp"].astype(jnp.float32)
        return bvp if batch["rgb"].shape[-1] == INPUT_CHANNELS else self.signal_label(bvp)

    def signal_label(self, bvp):
        return tscan_label(bvp, num_samples=bvp.shape[-1])

    def convert(self, state_dict: dict, model_config) -> dict:
        """Flax variables from a PyTorch reference state dict or open-rppg's Keras weights
        (`{h5 path: array}`, recognised by their `…/vars/N` paths)."""
        from ienet_jax.convert.tscan import is_keras, keras_tscan_variables, tscan_variables

        if is_keras(state_dict):
            return keras_tscan_variables(state_dict, model_config)
        return tscan_variables(state_dict, model_config)


register(TSCANContract())
