"""The accuracy study's recipe (`python -m bench.accuracy`): `get_config("size,arm,stage[,short]")`.

Every arm is the quickstart's recipe (`configs/quickstart.py`: temporal input norm, band-
limited Pearson + spectral loss, augmentation, lr 1e-3, batch 8) at the IENet size `size`
(`tiny`, `small`, `reference` of `configs/ienet.py`) with crops of `FRAME_SIZE[size]` pixels,
(stage 1 of a two-stream model: each backbone's own pulse in the loss too,
`train.loss.streams`), changed only by the arm's `ARMS` settings:

- `fused`: RGB + NIR backbones, MDEF fusion, context module off (the quickstart's model);
- `fused_no_streams`: `fused` with the reference's loss, on the fused pulse alone;
- `rgb`, `nir`: one backbone alone (`model.modalities`), no fusion;
- `context`: `fused` with the context-enhancement module on (the paper's method);
- `context_residual`: the same with `model.context.residual` (x + CE(x), zero-initialised).

`stage2` trains the FEE head on the frozen `stage1` network (set `train.init_from`); `short`
is the quickstart's `runlocal` micro model (a seconds-long run of the same path, for CI).
By hand, e.g.:

    python -m ienet_jax.main --config=configs/accuracy.py:tiny,rgb,stage1 --workdir=W \
        --config.data.dir=CLIPS --config.train.num_steps=2000

`dataset_config(arg)`: the synthetic dataset (`python -m data_prep synthesize` / `convert`
flags) of the study: the quickstart's, with video frames large enough for the crops.
"""

from __future__ import annotations

import ml_collections

from configs import common, quickstart
from ienet_jax.models import contract

ARMS = {
    "fused": {},
    "fused_no_streams": {"train.loss.streams": 0.0},
    "rgb": {"model.modalities": ("rgb",)},
    "nir": {"model.modalities": ("nir",)},
    "context": {"model.context.enabled": True},
    # the context module as this port initialises it (README, "Context enhancement")
    "context_residual": {"model.context.enabled": True, "model.context.residual": True},
}
# crop side (pixels) per size: tiny keeps the quickstart's 16 (what it learns within
# minutes); small and reference read 64x64 crops as the paper does
FRAME_SIZE = {"tiny": 16, "small": 64, "reference": 64}
# raw video size per size (the face box should not be smaller than the crop)
VIDEO_SIZE = {"tiny": "160x120", "small": "320x240", "reference": "320x240"}
# stage 2 (only the FEE head trains) gets this fraction of stage 1's steps (the quickstart's
# 400 of 800)
STAGE2_FRACTION = 1 / 2


def parse_arg(arg: str | None) -> tuple[str, str, str, bool]:
    """`"size,arm,stage[,short]"` (any order, defaults tiny, fused, stage1) →
    (size, arm, stage, short)."""
    parts = [p for p in (arg or "").split(",") if p]
    sizes = [p for p in parts if p in FRAME_SIZE]
    arms = [p for p in parts if p in ARMS]
    stages = [p for p in parts if p in quickstart.STAGES]
    unknown = [p for p in parts if p not in (*FRAME_SIZE, *ARMS, *quickstart.STAGES, "short")]
    if unknown or len(sizes) > 1 or len(arms) > 1 or len(stages) > 1:
        raise ValueError(f"configs/accuracy.py: arg {arg!r} must be 'size,arm,stage[,short]' "
                         f"with size in {tuple(FRAME_SIZE)}, arm in {tuple(ARMS)}, stage in "
                         f"{quickstart.STAGES}")
    return ((sizes or ["tiny"])[0], (arms or ["fused"])[0], (stages or ["stage1"])[0],
            "short" in parts)


def dataset_config(arg: str | None = None) -> ml_collections.ConfigDict:
    size, _, _, short = parse_arg(arg)
    data = quickstart.dataset_config("runlocal" if short else "")
    data.video_size = VIDEO_SIZE[size]
    return data


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The locked trainer config of one arm and stage (see the module docstring)."""
    size, arm, stage, short = parse_arg(arg)
    config = quickstart.get_config(",".join([size, stage] + (["runlocal"] if short else [])))
    with config.unlocked():
        config.model.frame_size = FRAME_SIZE[size]
        model_keys = {k: v for k, v in ARMS[arm].items() if k.startswith("model.")}
        for key, value in model_keys.items():
            common.set_key(config, key, value)
        if not contract.get(config.model).streams:  # one backbone: no streams to add
            config.train.loss.streams = 0.0
        # loss settings are stage 1's: stage 2 trains the FEE head on its L1 HR loss
        if stage == "stage1":
            for key, value in ARMS[arm].items():
                if key not in model_keys:
                    common.set_key(config, key, value)
    return config
