"""IENet: RGB and NIR CET backbones → MDEF fusion → shared rPPG head (→ FEE heart rate).

Apply contract (`model = ienet_jax.models.build(config.model)`):

    out = model.apply(variables, rgb, nir, train=False)
    out, updates = model.apply(variables, rgb, nir, train=True,
                               rngs={"dropout": k1, "drop_path": k2},
                               mutable=["batch_stats"])

One input per `model.modalities` (default `("rgb", "nir")`), in that order: `rgb`
`[B, T, H, W, rgb_channels]`, `nir` `[B, T, H, W, nir_channels]`, float, already
normalised (`ienet_jax.data.normalize.normalize_reference` for uint8 frames);
with `model.input_norm="temporal"` the model first turns them into each pixel's relative
change over the clip (`temporal_normalize`; the reference model has no such step).
`out` holds `rgb_rppg`, `nir_rppg`, `fused_rppg` (each `[B, T]`, float32) and, when
`model.fee.enabled`, `hr` `[B]` (bpm) and `psd` `[B, K]` from the FEE head applied to the
fused rPPG at `fs = model.fps`. With one modality (`("rgb",)` or `("nir",)`, the ablation
of the fusion) only that backbone exists, there is no MDEF fusion, and `fused_rppg` is
that backbone's head output (so loss, evaluation and FEE read the same key).
Rng collections: "dropout" (dropout, attention dropout)
and "drop_path" (stochastic depth), both needed only in training with non-zero rates.
Intermediate maps are sown into "intermediates" (`rgb/…`, `nir/…`, `fused`).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from ienet_jax.models import axes
from ienet_jax.models.attention import ATTENTION_IMPLS
from ienet_jax.models.contract import (
    FLAG,
    POSITIVE,
    RATE,
    ModelContract,
    check,
    choice,
    ints,
    register,
)
from ienet_jax.models.conv import IMPLEMENTATIONS as CONV_IMPLS
from ienet_jax.models.fusion import FUSIONS, mdef
from ienet_jax.models.heads import RPPGHead
from ienet_jax.models.swin3d import BlockOptions, SwinTransformer3D

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
OUTPUTS = ("rgb_rppg", "nir_rppg", "fused_rppg")
# model.modalities: the backbones built (fusion only with both), in input order
MODALITY_SETS = (("rgb", "nir"), ("rgb",), ("nir",))


INPUT_NORMS = ("reference", "temporal")


def temporal_normalize(x: jnp.ndarray, eps: float = 1e-6) -> jnp.ndarray:
    """Reference-normalised frames `[B, T, H, W, C]` → relative temporal variations.

    Recovers the intensity `i = 0.25·x + 0.5` (in [0, 1]), divides each pixel and channel
    by its mean over the clip, `r = i / mean_T(i) − 1` (the normalisation POS and CHROM start
    from: static appearance, skin tone and lighting level cancel, the pulse stays), then
    scales every clip and channel to unit RMS. Computed in float32.
    """
    i = x.astype(jnp.float32) * 0.25 + 0.5
    mean = jnp.mean(i, axis=1, keepdims=True)
    r = (i - mean) / (mean + 1.0 / 255.0)
    rms = jnp.sqrt(jnp.mean(jnp.square(r), axis=(1, 2, 3), keepdims=True))
    return r / (rms + eps)


class IENet(nn.Module):
    """The IENet fusion model (see the module docstring for the apply contract).

    Build it with `IENet.from_config(config.model)`, which validates the config; the
    fields are the config keys (nested `context.*` / `fee.*` flattened), without defaults.
    """

    clip_length: int
    frame_size: tuple[int, int]
    modalities: tuple[str, ...]
    rgb_channels: int
    nir_channels: int
    patch: tuple[int, int, int]
    window: tuple[int, int, int]
    dims: tuple[int, ...]
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    mlp_ratio: float
    qkv_bias: bool
    drop_path: float
    dropout: float
    attn_dropout: float
    context: bool
    dilations: tuple[int, ...]
    context_residual: bool
    context_lag0: bool
    fusion: str
    fee: bool
    bpm_min: float
    bpm_max: float
    temperature: float
    fps: float
    dtype: jnp.dtype
    remat: bool
    attention: str
    conv_impl: str
    input_norm: str
    param_dtype: jnp.dtype = jnp.float32

    @classmethod
    def from_config(cls, model_config) -> IENet:
        """Validate `config.model` and build the module; errors name the offending key."""
        return cls(**_fields_from_config(model_config))

    def _check_input(self, x: jnp.ndarray, key: str, channels: int) -> None:
        if x.ndim != 5:
            raise ValueError(f"IENet: {key} input must be [B, T, H, W, C], got shape {x.shape}")
        if x.shape[-1] != channels:
            raise ValueError(
                f"IENet: {key} input has {x.shape[-1]} channels but model.{key}_channels={channels}"
            )
        if x.shape[1] % self.patch[0]:
            raise ValueError(
                f"IENet: {key} clip of {x.shape[1]} frames is not divisible by "
                f"model.patch[0]={self.patch[0]}"
            )

    @nn.compact
    def __call__(self, *frames: jnp.ndarray, train: bool,
                 fps: jnp.ndarray | float | None = None) -> dict:
        """`frames`: one clip per `self.modalities`, in that order. `fps` (scalar or `[B]` Hz)
        is the clips' frame rate for the FEE spectrum; `None` means the configured `self.fps`
        (the reference's fixed 30)."""
        if len(frames) != len(self.modalities):
            raise ValueError(f"IENet: model.modalities={self.modalities} takes "
                             f"{len(self.modalities)} inputs, got {len(frames)}")
        channels = {"rgb": self.rgb_channels, "nir": self.nir_channels}
        for m, x in zip(self.modalities, frames):
            self._check_input(x, m, channels[m])
        if len(frames) == 2 and frames[0].shape[:4] != frames[1].shape[:4]:
            raise ValueError(
                f"IENet: rgb clip {frames[0].shape} and nir clip {frames[1].shape} differ in "
                "B, T, H, W"
            )
        opts = BlockOptions(
            window=self.window, mlp_ratio=self.mlp_ratio, qkv_bias=self.qkv_bias,
            dropout=self.dropout, attn_dropout=self.attn_dropout, context=self.context,
            dilations=self.dilations, context_residual=self.context_residual,
            context_lag0=self.context_lag0,
            attention=self.attention, conv_impl=self.conv_impl,
            dtype=self.dtype, param_dtype=self.param_dtype,
        )

        def backbone(name, x):
            if self.input_norm == "temporal":
                x = temporal_normalize(x)
            x = nn.with_logical_constraint(x.astype(self.dtype), axes.FRAMES)
            return SwinTransformer3D(
                self.patch, self.dims, self.depths, self.heads, drop_path=self.drop_path,
                remat=self.remat, opts=opts, name=name,
            )(x, train=train)

        features = {m: backbone(m, x) for m, x in zip(self.modalities, frames)}
        head = RPPGHead(param_dtype=self.param_dtype, name="head")
        out = {f"{m}_rppg": head(f) for m, f in features.items()}
        if len(features) == 2:
            fused = mdef(features["rgb"], features["nir"], self.fusion)
            self.sow("intermediates", "fused", fused)
            out["fused_rppg"] = head(fused)
        else:  # one backbone: its head output is the model's
            out["fused_rppg"] = out[f"{self.modalities[0]}_rppg"]
        if self.fee:
            fee = fee_head(self, name="fee")(out["fused_rppg"], self.fps if fps is None else fps,
                                             train=train)
            out["hr"] = fee["hr"]
            out["psd"] = fee["psd"]
        return out


def _positive(length: int | None = None):
    return (ints, lambda v: min(v) > 0 and length in (None, len(v)),
            "positive ints" if length is None else f"{length} positive ints")


def _frame(value) -> tuple[int, int]:
    return (int(value),) * 2 if isinstance(value, int) else ints(value)


POSITIVE_FLOAT = (float, lambda v: v > 0, "> 0")
# The `model` section of configs/ienet.py, checked key by key (`contract.check`).
FIELDS = {
    "name": (str, lambda v: v == "ienet", "'ienet' for IENet"),
    "clip_length": POSITIVE,
    "modalities": (lambda v: (v,) if isinstance(v, str) else tuple(str(m) for m in v),
                   lambda v: v in MODALITY_SETS, f"one of {MODALITY_SETS}"),
    "frame_size": (_frame, lambda v: len(v) == 2 and min(v) > 0, "a positive int or (H, W)"),
    "rgb_channels": POSITIVE, "nir_channels": POSITIVE,
    "patch": _positive(3), "window": _positive(3),
    "dims": _positive(), "depths": _positive(), "heads": _positive(),
    "mlp_ratio": POSITIVE_FLOAT, "qkv_bias": FLAG,
    "drop_path": RATE, "dropout": RATE, "attn_dropout": RATE,
    "context": {"enabled": FLAG, "dilations": _positive(), "residual": FLAG,
                "lag0": FLAG},
    "fusion": choice(*FUSIONS),
    "fee": {"enabled": FLAG, "bpm_min": POSITIVE_FLOAT, "bpm_max": POSITIVE_FLOAT,
            "temperature": POSITIVE_FLOAT},
    "fps": POSITIVE_FLOAT, "dtype": choice(*DTYPES), "remat": FLAG,
    "attention": choice(*ATTENTION_IMPLS), "conv_impl": choice(*CONV_IMPLS),
    "input_norm": choice(*INPUT_NORMS),
}


def _fields_from_config(model_config) -> dict:
    c = check(model_config, FIELDS)
    patch, frame = c["patch"], c["frame_size"]
    for axis, (key, size) in enumerate((("clip_length", c["clip_length"]),
                                        ("frame_size", frame[0]), ("frame_size", frame[1]))):
        if size % patch[axis]:
            raise ValueError(f"model.{key}={model_config[key]} is not divisible by "
                             f"model.patch[{axis}]={patch[axis]}")
    dims, depths, heads = c["dims"], c["depths"], c["heads"]
    if not len(dims) == len(depths) == len(heads):
        raise ValueError(f"model.dims {dims}, model.depths {depths} and model.heads {heads} "
                         "must have the same length (one entry per stage)")
    for i, (d, h) in enumerate(zip(dims, heads)):
        if d % h:
            raise ValueError(f"model.dims[{i}]={d} is not divisible by model.heads[{i}]={h}")
    context, fee = c.pop("context"), c.pop("fee")
    dilations = context["dilations"]
    for i, d in enumerate(dims if context["enabled"] else ()):
        if d % len(dilations):
            raise ValueError(f"model.dims[{i}]={d} is not divisible by len(model.context."
                             f"dilations)={len(dilations)} (context enhancement splits "
                             "channels into groups)")
    if not fee["bpm_min"] < fee["bpm_max"]:
        raise ValueError(f"model.fee.bpm_min={fee['bpm_min']} must be below "
                         f"model.fee.bpm_max={fee['bpm_max']}")
    del c["name"]
    return dict(c, context=context["enabled"], dilations=dilations,
                context_residual=context["residual"], context_lag0=context["lag0"],
                fee=fee["enabled"],
                bpm_min=fee["bpm_min"], bpm_max=fee["bpm_max"],
                temperature=fee["temperature"], dtype=DTYPES[c["dtype"]])


def fee_head(model: IENet, **kwargs):
    """IENet's FEE head as `model` configures it (`kwargs`: flax module arguments, e.g. name)."""
    from ienet_jax.models.fee import FEEHead

    return FEEHead(bpm_min=model.bpm_min, bpm_max=model.bpm_max, temperature=model.temperature,
                   dtype=jnp.float32, param_dtype=model.param_dtype, conv_impl=model.conv_impl,
                   **kwargs)


class IENetContract(ModelContract):
    """IENet: RGB + NIR in, the fused rPPG out, FEE heart rate when `model.fee.enabled`."""

    name = "ienet"
    modalities = ("rgb", "nir")
    output = "fused_rppg"
    losses = ("neg_pearson", "spectral", "l1_hr", "mse")
    # each backbone's own rPPG (the shared head on its features, before MDEF)
    streams = ("rgb_rppg", "nir_rppg")
    module = IENet
    # checkpoints from before these keys existed: both backbones, the reference's context
    added_keys = {"modalities": ("rgb", "nir"), "context.residual": False, "context.lag0": False}

    def configured(self, model_config) -> IENetContract:
        """The contract reading only `model.modalities` from batches."""
        modalities = tuple(model_config.modalities) if "modalities" in model_config else (
            self.modalities)
        if modalities == self.modalities:
            return self
        single = IENetContract()
        single.modalities = modalities
        single.streams = ()  # one backbone: its rPPG is the output
        return single

    def channels(self, model_config) -> tuple[int, ...]:
        return tuple(int(model_config[f"{m}_channels"]) for m in self.configured(model_config)
                     .modalities)

    def kwargs(self, batch: dict) -> dict:
        """The FEE head reads each clip's own frame rate (`fps`, which speed augmentation
        changes) instead of the configured `model.fps`."""
        return {"fps": batch["fps"].astype(jnp.float32)} if "fps" in batch else {}

    def has_hr(self, model_config) -> bool:
        return bool(model_config.fee.enabled)

    def hr_head(self, model_config):
        """The FEE head (conv/BN stack + spectrum: any signal length) as the model builds it."""
        return (fee_head(self.build(model_config)), "fee") if self.has_hr(model_config) else None

    def convert(self, state_dict: dict, model_config) -> dict:
        from ienet_jax.convert.ienet import ienet_variables

        return ienet_variables(state_dict, model_config)


register(IENetContract())
