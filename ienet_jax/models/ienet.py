"""IENet: RGB and NIR CET backbones → MDEF fusion → shared rPPG head (→ FEE heart rate).

Apply contract (`model = ienet_jax.models.build(config.model)`):

    out = model.apply(variables, rgb, nir, train=False)
    out, updates = model.apply(variables, rgb, nir, train=True,
                               rngs={"dropout": k1, "drop_path": k2},
                               mutable=["batch_stats"])

`rgb` `[B, T, H, W, rgb_channels]`, `nir` `[B, T, H, W, nir_channels]`, float, already
normalised (`ienet_jax.data.normalize.normalize_reference` for uint8 frames);
with `model.input_norm="temporal"` the model first turns them into each pixel's relative
change over the clip (`temporal_normalize`; the reference model has no such step).
`out` holds `rgb_rppg`, `nir_rppg`, `fused_rppg` (each `[B, T]`, float32) and, when
`model.fee.enabled`, `hr` `[B]` (bpm) and `psd` `[B, K]` from the FEE head applied to the
fused rPPG at `fs = model.fps`. Rng collections: "dropout" (dropout, attention dropout)
and "drop_path" (stochastic depth), both needed only in training with non-zero rates.
Intermediate maps are sown into "intermediates" (`rgb/…`, `nir/…`, `fused`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import linen as nn

from ienet_jax.models import axes
from ienet_jax.models.attention import ATTENTION_IMPLS
from ienet_jax.models.conv import IMPLEMENTATIONS as CONV_IMPLS
from ienet_jax.models.fusion import FUSIONS, mdef
from ienet_jax.models.heads import RPPGHead
from ienet_jax.models.swin3d import BlockOptions, SwinTransformer3D

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
OUTPUTS = ("rgb_rppg", "nir_rppg", "fused_rppg")


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
    fields mirror the config keys (nested `context.*` / `fee.*` flattened).
    """

    clip_length: int = 128
    frame_size: tuple[int, int] = (64, 64)
    rgb_channels: int = 3
    nir_channels: int = 1
    patch: tuple[int, int, int] = (2, 4, 4)
    window: tuple[int, int, int] = (2, 7, 7)
    dims: tuple[int, ...] = (96, 192, 384)
    depths: tuple[int, ...] = (2, 2, 4)
    heads: tuple[int, ...] = (3, 6, 12)
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path: float = 0.2
    dropout: float = 0.0
    attn_dropout: float = 0.0
    context: bool = True
    dilations: tuple[int, ...] = (1, 3, 5)
    fusion: str = "l1_mean"
    fee: bool = False
    bpm_min: float = 40.0
    bpm_max: float = 180.0
    temperature: float = 0.02
    fps: float = 30.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    remat: bool = False
    attention: str = "einsum"
    conv_impl: str = "auto"
    input_norm: str = "reference"

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
    def __call__(self, rgb: jnp.ndarray, nir: jnp.ndarray, *, train: bool,
                 fps: jnp.ndarray | float | None = None) -> dict:
        """`fps` (scalar or `[B]` Hz) is the clips' frame rate for the FEE spectrum; `None`
        means the configured `self.fps` (the reference's fixed 30)."""
        self._check_input(rgb, "rgb", self.rgb_channels)
        self._check_input(nir, "nir", self.nir_channels)
        if rgb.shape[:4] != nir.shape[:4]:
            raise ValueError(
                f"IENet: rgb clip {rgb.shape} and nir clip {nir.shape} differ in B, T, H, W"
            )
        opts = BlockOptions(
            window=self.window, mlp_ratio=self.mlp_ratio, qkv_bias=self.qkv_bias,
            dropout=self.dropout, attn_dropout=self.attn_dropout, context=self.context,
            dilations=self.dilations, attention=self.attention, conv_impl=self.conv_impl,
            dtype=self.dtype, param_dtype=self.param_dtype,
        )

        def backbone(name):
            return SwinTransformer3D(
                self.patch, self.dims, self.depths, self.heads, drop_path=self.drop_path,
                remat=self.remat, opts=opts, name=name,
            )

        if self.input_norm == "temporal":
            rgb, nir = temporal_normalize(rgb), temporal_normalize(nir)
        rgb = nn.with_logical_constraint(rgb.astype(self.dtype), axes.FRAMES)
        nir = nn.with_logical_constraint(nir.astype(self.dtype), axes.FRAMES)
        f_rgb = backbone("rgb")(rgb, train=train)
        f_nir = backbone("nir")(nir, train=train)
        fused = mdef(f_rgb, f_nir, self.fusion)
        self.sow("intermediates", "fused", fused)
        head = RPPGHead(param_dtype=self.param_dtype, name="head")
        out = {"rgb_rppg": head(f_rgb), "nir_rppg": head(f_nir), "fused_rppg": head(fused)}
        if self.fee:
            from ienet_jax.models.fee import FEEHead

            fee = FEEHead(
                bpm_min=self.bpm_min, bpm_max=self.bpm_max, temperature=self.temperature,
                dtype=jnp.float32, param_dtype=self.param_dtype, conv_impl=self.conv_impl,
                name="fee",
            )(out["fused_rppg"], self.fps if fps is None else fps, train=train)
            out["hr"] = fee["hr"]
            out["psd"] = fee["psd"]
        return out


def _tuple(model_config, key: str, length: int | None = None) -> tuple[int, ...]:
    value = model_config[key]
    if isinstance(value, int):
        value = (value,)
    try:
        value = tuple(int(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"model.{key} must be a sequence of ints, got {value!r}") from err
    if length is not None and len(value) != length:
        raise ValueError(f"model.{key} must have {length} entries, got {value}")
    if any(v <= 0 for v in value):
        raise ValueError(f"model.{key} entries must be positive, got {value}")
    return value


def _choice(model_config, key: str, choices: Sequence[str]) -> str:
    value = model_config[key]
    if value not in choices:
        raise ValueError(f"model.{key} must be one of {tuple(choices)}, got {value!r}")
    return value


def _rate(model_config, key: str) -> float:
    value = float(model_config[key])
    if not 0.0 <= value < 1.0:
        raise ValueError(f"model.{key} must be in [0, 1), got {value}")
    return value


def _fields_from_config(model_config) -> dict:
    if model_config.get("name") != "ienet":
        raise ValueError(f"model.name must be 'ienet' for IENet, got {model_config.get('name')!r}")
    for key in ("clip_length", "frame_size", "patch", "window", "dims", "depths", "heads",
                "fusion", "context", "fee", "fps", "dtype"):
        if key not in model_config:
            raise ValueError(f"config key model.{key} is missing")
    patch = _tuple(model_config, "patch", 3)
    window = _tuple(model_config, "window", 3)
    frame = model_config["frame_size"]
    if isinstance(frame, int):
        frame = (frame, frame)
    else:
        frame = _tuple(model_config, "frame_size", 2)
    clip_length = int(model_config["clip_length"])
    if clip_length % patch[0]:
        raise ValueError(
            f"model.clip_length={clip_length} is not divisible by model.patch[0]={patch[0]}"
        )
    for axis in (1, 2):
        if frame[axis - 1] % patch[axis]:
            shown = model_config["frame_size"]
            raise ValueError(
                f"model.frame_size={shown} is not divisible by model.patch[{axis}]={patch[axis]}"
            )
    dims, depths = _tuple(model_config, "dims"), _tuple(model_config, "depths")
    heads = _tuple(model_config, "heads")
    if not len(dims) == len(depths) == len(heads):
        raise ValueError(
            f"model.dims {dims}, model.depths {depths} and model.heads {heads} must have the "
            "same length (one entry per stage)"
        )
    for i, (d, h) in enumerate(zip(dims, heads)):
        if d % h:
            raise ValueError(f"model.dims[{i}]={d} is not divisible by model.heads[{i}]={h}")
    context = model_config["context"]
    dilations = tuple(int(d) for d in context.get("dilations", (1, 3, 5)))
    if context["enabled"]:
        if not dilations or any(d <= 0 for d in dilations):
            raise ValueError(f"model.context.dilations must be positive ints, got {dilations}")
        for i, d in enumerate(dims):
            if d % len(dilations):
                raise ValueError(
                    f"model.dims[{i}]={d} is not divisible by len(model.context.dilations)="
                    f"{len(dilations)} (context enhancement splits channels into groups)"
                )
    fee = model_config["fee"]
    if fee["enabled"] and not fee["bpm_min"] < fee["bpm_max"]:
        raise ValueError(
            f"model.fee.bpm_min={fee['bpm_min']} must be below model.fee.bpm_max={fee['bpm_max']}"
        )
    for key in ("rgb_channels", "nir_channels"):
        if int(model_config.get(key, 1)) <= 0:
            raise ValueError(f"model.{key} must be positive, got {model_config[key]}")
    return dict(
        clip_length=clip_length,
        frame_size=frame,
        rgb_channels=int(model_config.get("rgb_channels", 3)),
        nir_channels=int(model_config.get("nir_channels", 1)),
        patch=patch,
        window=window,
        dims=dims,
        depths=depths,
        heads=heads,
        mlp_ratio=float(model_config.get("mlp_ratio", 4.0)),
        qkv_bias=bool(model_config.get("qkv_bias", True)),
        drop_path=_rate(model_config, "drop_path"),
        dropout=_rate(model_config, "dropout"),
        attn_dropout=_rate(model_config, "attn_dropout"),
        context=bool(context["enabled"]),
        dilations=dilations,
        fusion=_choice(model_config, "fusion", FUSIONS),
        fee=bool(fee["enabled"]),
        bpm_min=float(fee["bpm_min"]),
        bpm_max=float(fee["bpm_max"]),
        temperature=float(fee["temperature"]),
        fps=float(model_config["fps"]),
        dtype=DTYPES[_choice(model_config, "dtype", tuple(DTYPES))],
        remat=bool(model_config.get("remat", False)),
        attention=_choice(model_config, "attention", ATTENTION_IMPLS),
        conv_impl=_choice(model_config, "conv_impl", CONV_IMPLS),
        input_norm=_choice(model_config, "input_norm", INPUT_NORMS)
        if "input_norm" in model_config else "reference",
    )
