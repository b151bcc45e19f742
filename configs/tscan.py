"""TS-CAN configs: `get_config("reference" | "toolbox" | "open_rppg" | "tiny")` → a locked
ConfigDict.

Variants of the `model` section (`model_config(variant)`):
- `reference`: MTTS-CAN as published: 36×36 frames, segments of 10 frames, 32/64 filters,
  Dense 128. Clips of 180 frames (18 segments, 6 s at 30 fps): the rPPG-Toolbox chunk
  length, long enough for a PSD heart rate; the golden parity test uses 20 frames, which the
  same weights accept (any multiple of `frame_depth`).
- `toolbox`: rPPG-Toolbox's TS-CAN: 72×72 frames, otherwise as `reference` (Dense input
  64·16·16).
- `open_rppg`: open-rppg 0.1.1's TS-CAN (Keras weights trained on PURE / RLAP): 160-frame
  clips, segments of 20 frames, the edge-replicating temporal shift and its input prep
  (per-frame standardised differences, the clip's mean frame as appearance).
  `box_scale` 1.5: open-rppg's TS-CAN reads wider crops than its PhysNet (synthetic `easy`,
  6 videos, whole-video MAE: 1.5 → 3.5 bpm, 1.25 → 4.4, 1.0 → 19.6).
- `tiny`: 12×12 frames, segments of 4, 8-frame clips, 4/8 filters, Dense 16: for tests and
  smoke runs.

Usage: `--config configs/tscan.py:toolbox` or `configs/tscan.py:tiny,quickstart`: the arg is
`variant[,preset]`; the shared data/train/mesh/checkpoint sections and the presets (default
`tscan`) come from `configs/common.py`.
"""

from __future__ import annotations

import ml_collections

# Each variant: the keys where it differs from `reference`.
VARIANTS = {
    "reference": {},
    "toolbox": dict(frame_size=72),
    "open_rppg": dict(clip_length=160, frame_depth=20, shift_fill="edge", input_prep="open_rppg",
                      input_fps=30.0, box_scale=1.5),
    "tiny": dict(frame_size=12, frame_depth=4, clip_length=8, filters=(4, 8), hidden=16),
}


def model_config(variant: str = "reference") -> ml_collections.ConfigDict:
    """The `model` section of a variant (see the module docstring)."""
    cfg = ml_collections.ConfigDict()
    cfg.name = "tscan"
    cfg.frame_size = 36  # H = W of the input frames (pixels)
    cfg.frame_depth = 10  # frames per temporal-shift segment
    cfg.clip_length = 180  # frames per clip; a multiple of frame_depth
    cfg.filters = (32, 64)
    cfg.hidden = 128
    cfg.dropout = (0.25, 0.5)  # (conv blocks, dense)
    cfg.kernel_size = 3
    cfg.pool = 2
    cfg.dtype = "float32"  # compute dtype; params stay float32
    cfg.conv_impl = "auto"  # "taps" on CPU, "xla" elsewhere
    cfg.shift_fill = "zeros"  # temporal shift's segment-end fill: "zeros" (MTTS-CAN) or "edge"
    cfg.input_prep = "toolbox"  # raw frames → inputs: "toolbox" (MTTS-CAN) or "open_rppg"
    cfg.box_scale = 0.0  # crop side / face box side it was trained at (evaluate/predict); 0: data's
    cfg.input_fps = 0.0  # rate the weights were trained at (evaluate/predict resample); 0: data's
    if variant not in VARIANTS:
        raise ValueError(f"configs/tscan.py: variant must be one of {tuple(VARIANTS)}, got "
                         f"{variant!r}")
    cfg.update(VARIANTS[variant])
    return cfg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The full locked config for `arg` = `"variant[,preset]"` (default `reference,tscan`)."""
    from configs.common import config_from_arg

    return config_from_arg(model_config, arg, "reference", "tscan")
