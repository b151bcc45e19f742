"""IENet configuration: `get_config("variant[,preset]")` → a locked ConfigDict.

`reference` is the published model (128 × 64 × 64 clips at 30 fps, embed 96, dims
96-192-384, depths 2-2-4, heads 3-6-12, window 2-7-7, patch 2-4-4, drop path 0.2) with
context enhancement on (the paper's method; the published code leaves it off) and FEE
off (stage 1 of the two-stage training). `small` and `tiny` shrink it for tests and
quick starts. All sizes come from one table, `VARIANTS`, feeding `model_config`.

Usage: `--config configs/ienet.py:tiny` or `configs/ienet.py:tiny,quickstart` (the arg is
`variant[,preset]`, presets in `configs/common.py`); override keys from the command line,
e.g. `--config.model.dtype=bfloat16`.
"""

from __future__ import annotations

import ml_collections

VARIANTS = {
    # clip_length, frame_size, dims, depths, heads, window, drop_path
    "reference": dict(
        clip_length=128, frame_size=64, dims=(96, 192, 384), depths=(2, 2, 4),
        heads=(3, 6, 12), window=(2, 7, 7), drop_path=0.2,
    ),
    "small": dict(
        clip_length=64, frame_size=64, dims=(48, 96, 192), depths=(2, 2, 2),
        heads=(2, 4, 8), window=(2, 7, 7), drop_path=0.1,
    ),
    "tiny": dict(
        clip_length=32, frame_size=32, dims=(24, 48, 96), depths=(1, 1, 2),
        heads=(1, 2, 4), window=(2, 4, 4), drop_path=0.1,
    ),
}


def model_config(variant: str = "reference") -> ml_collections.ConfigDict:
    """The `model` section for a size variant (keys are a contract with trainer and tools)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown IENet config variant {variant!r}; choose from {tuple(VARIANTS)}")
    size = VARIANTS[variant]
    return ml_collections.ConfigDict(
        dict(
            name="ienet",
            clip_length=size["clip_length"],
            frame_size=size["frame_size"],
            # the backbones built: ("rgb", "nir") fused (the paper), or one alone without
            # fusion, e.g. --config.model.modalities='("rgb",)' (the data pipeline then reads
            # only that modality)
            modalities=("rgb", "nir"),
            rgb_channels=3,
            nir_channels=1,
            patch=(2, 4, 4),
            window=size["window"],
            dims=size["dims"],
            depths=size["depths"],
            heads=size["heads"],
            mlp_ratio=4.0,
            qkv_bias=True,
            drop_path=size["drop_path"],
            dropout=0.0,
            attn_dropout=0.0,
            # this port's options, off = the reference (README, "Context enhancement"):
            # residual: x + CE(x) with zero-initialised BN scales instead of CE(x);
            # lag0: each dilated temporal kernel reads frames t - d and t instead of
            # t - (d+1)//2 and t - (d+1)//2 + d
            context=ml_collections.ConfigDict(dict(enabled=True, dilations=(1, 3, 5),
                                                   residual=False, lag0=False)),
            fusion="l1_mean",
            fee=ml_collections.ConfigDict(
                # temperature: soft-gate (training) temperature on the max-normalised PSD
                # (peak 1). At 0.02 a bin 0.1 below the peak weighs e^-5 ≈ 0.7 % of the peak,
                # one 0.3 below e^-15: side peaks and the noise floor hardly pull the
                # estimate while the Hann main lobe (±2 DFT bins = ±28 bpm for 128 samples at
                # 30 fps) still spreads gradient over the bins around the peak; on the golden
                # signals the soft HR is within about a bpm of the hard one (test_models_fee).
                dict(enabled=False, bpm_min=40.0, bpm_max=180.0, temperature=0.02)
            ),
            fps=30.0,
            dtype="float32",
            remat=False,
            attention="einsum",  # einsum | dot_product | fused (TPU: models.fused_attention)
            conv_impl="auto",
            # reference: frames as the published model sees them; temporal: each pixel's
            # relative change over the clip (models.ienet.temporal_normalize)
            input_norm="reference",
        )
    )


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The full locked config for `arg` = `"variant[,preset]"` (default reference, stage 1).

    The `model` section comes from `model_config(variant)`; the shared sections (data, train,
    mesh, checkpoint, …) and the presets from `configs/common.py`.
    """
    from configs.common import config_from_arg

    return config_from_arg(model_config, arg, "reference", "reference_stage1")
