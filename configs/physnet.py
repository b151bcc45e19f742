"""PhysNet configs: `get_config("open_rppg" | "tiny")` → locked ConfigDict.

Variants of the `model` section (`model_config(variant)`):
- `open_rppg`: PhysNet as open-rppg 0.1.1 ships it (PURE/RLAP-trained Keras weights, which
  `ienet_jax.convert.physnet` converts): 128-frame clips of 32×32 frames, 16/32/64 filters,
  Keras BatchNorm (epsilon 1e-3, momentum 0.99).
- `tiny`: 16-frame clips of 16×16 frames, 4/8/8 filters: for tests and smoke runs.

`input_fps`: the frame rate the weights were trained at (open-rppg's: 30); `evaluate` and
`predict` resample frames to it; 0 = the data's own rate (a model trained here on clips of
another rate: set it to that rate or 0). `box_scale`: crop side / face box side of its
training crops (0 = as the data): open-rppg's PhysNet reads the face box itself (measured on
the synthetic `easy` preset, 6 videos, whole-video MAE: 1.0 → 1.76 bpm, 1.1 → 6.45, 1.2 →
18.5, 1.5 → 25.2; 0.9 → 5.0), so `evaluate` cuts the converter's 1.5 × crops to it.

Usage: `--config configs/physnet.py:tiny,quickstart`: the arg is `variant[,preset]`; the
shared sections and the presets (default `physnet`) come from `configs/common.py`.
"""

from __future__ import annotations

import ml_collections

# Each variant: the keys where it differs from `open_rppg`.
VARIANTS = {
    "open_rppg": {},
    "tiny": dict(frame_size=16, clip_length=16, filters=(4, 8, 8), input_fps=0.0,
                 box_scale=0.0),
}


def model_config(variant: str = "open_rppg") -> ml_collections.ConfigDict:
    """The `model` section of a variant (see the module docstring)."""
    cfg = ml_collections.ConfigDict()
    cfg.name = "physnet"
    cfg.frame_size = 32  # H = W of the input frames (pixels); at least 16
    cfg.clip_length = 128  # frames per clip; a multiple of 4
    cfg.filters = (16, 32, 64)  # block1, block2, blocks 3-9 and the upsamplings
    cfg.batch_norm_epsilon = 1e-3  # Keras' default (PyTorch's is 1e-5)
    cfg.batch_norm_momentum = 0.99  # Keras' default (running = m·running + (1 − m)·batch)
    cfg.dtype = "float32"  # compute dtype; params stay float32
    cfg.conv_impl = "auto"  # see ienet_jax.models.conv
    cfg.input_fps = 30.0  # the frame rate it was trained at: evaluate/predict resample to it
    cfg.box_scale = 1.0  # crop side / face box side it was trained at: evaluate/predict crop
    if variant not in VARIANTS:
        raise ValueError(f"configs/physnet.py: variant must be one of {tuple(VARIANTS)}, got "
                         f"{variant!r}")
    cfg.update(VARIANTS[variant])
    return cfg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The full locked config for `arg` = `"variant[,preset]"` (default `open_rppg,physnet`)."""
    from configs.common import config_from_arg

    return config_from_arg(model_config, arg, "open_rppg", "physnet")
