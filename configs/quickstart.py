"""The quickstart recipe: `get_config("[variant,]stage1|stage2[,runlocal]")`, and `tscan`.

`python -m ienet_jax.quickstart` trains exactly these two configs (with `data.dir` set to its
clips and stage 2's `train.init_from` to its stage-1 run); by hand:

    python -m ienet_jax.main --config=configs/quickstart.py:stage1 --workdir=W1 \
        --config.data.dir=CLIPS
    python -m ienet_jax.main --config=configs/quickstart.py:stage2 --workdir=W2 \
        --config.data.dir=CLIPS --config.train.init_from=W1

The arg is a comma-separated list: an IENet size variant of `configs/ienet.py` (default
`tiny`), the stage (default `stage1`) and optionally `runlocal`, which shrinks model, data
and steps to a seconds-long run of the same recipe (tests). Stage 1 is the reference's
stage 1 with the recipe's departures (`RECIPE_MODEL`, `pearson_band_hz`, `STREAMS`,
augmentation, steps, learning rate; the measurements behind them are in the README); stage 2
trains only the FEE head (`train.freeze_steps = train.num_steps`) from `train.init_from`.
Checkpoint and evaluation at the end of the run, a log line every tenth of it (rounded up).

`tscan`: TS-CAN `tiny`, a 200-step run (the multi-process launch example).

`dataset_config(arg)`: the synthetic dataset and its conversion (`python -m data_prep
synthesize` / `convert` flags) that the quickstart trains on; clips are cut at
`model.frame_size` pixels.

Without `--config.data.dir` the trainer uses synthetic clips of the model's shape.
"""

from __future__ import annotations

import ml_collections

from configs import common, ienet, tscan

STAGES = ("stage1", "stage2")
DATASET = dict(
    subjects=48, seconds=30.0, preset="realistic", seed=1, video_size="160x120",
    box_scale=1.0,  # crops of the face box itself (the converter's default is 1.5)
    stored_clip_length=128,  # frames per stored clip (random windows are cut from it)
    split_fractions="0.6,0.1,0.3", workers=2,
)
RECIPE_MODEL = dict(clip_length=64, frame_size=16, input_norm="temporal", drop_path=0.0)
# stage 2: the FEE head on `realistic` needs more than 100 steps (README: whole-video MAE 9.7
# at 100, 3.1 at 400; 10 s windows 7.3 → 4.5, the rPPG path it reads 6.0)
STEPS = dict(stage1=800, stage2=400)
LEARNING_RATE = 1e-3
BATCH_SIZE = 8
PEARSON_BAND_HZ = (0.6, 3.3)
# stage 1: each backbone's own pulse in the loss too (`train.loss.streams`; with the fused
# pulse alone the two-stream model does not learn `realistic`: README "Accuracy")
STREAMS = 1.0
AUGMENT = dict(flip=True, brightness=0.1, contrast=0.1, speed_range=(0.8, 1.25))
# runlocal: model far below `tiny`, 2 steps of 2 clips, 4 subjects x 6 s
RUNLOCAL_MODEL = dict(clip_length=16, dims=(6, 12), depths=(1, 1), heads=(1, 1),
                      window=(2, 4, 4))
RUNLOCAL_DATASET = dict(subjects=4, seconds=6.0, stored_clip_length=32,
                        split_fractions="0.5,0.25,0.25", workers=1)
RUNLOCAL_TRAIN = dict(num_steps=2, batch_size=2)


def parse_arg(arg: str | None) -> tuple[str, str, bool]:
    """`"[variant,][stage1|stage2][,runlocal]"` → (variant, stage, runlocal)."""
    parts = [p for p in (arg or "").split(",") if p]
    runlocal = "runlocal" in parts
    stages = [p for p in parts if p in STAGES]
    variants = [p for p in parts if p in ienet.VARIANTS]
    unknown = [p for p in parts if p not in (*STAGES, *ienet.VARIANTS, "runlocal")]
    if unknown or len(stages) > 1 or len(variants) > 1:
        raise ValueError(f"configs/quickstart.py: arg {arg!r} must be "
                         f"'[variant,][stage1|stage2][,runlocal]' with variant one of "
                         f"{tuple(ienet.VARIANTS)}, or 'tscan'")
    return (variants or ["tiny"])[0], (stages or ["stage1"])[0], runlocal


def dataset_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The synthetic dataset and conversion settings (`runlocal` in `arg` shrinks them)."""
    dataset = ml_collections.ConfigDict(DATASET)
    if parse_arg(arg)[2]:
        dataset.update(RUNLOCAL_DATASET)
    return dataset


# Args naming another model family's quickstart-size config (README, launch/local.sh).
OTHER_MODELS = {
    "tscan": lambda: common.build_config(tscan.model_config("tiny"), "quickstart", "tiny"),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The locked trainer config of the quickstart's stage (see the module docstring)."""
    if arg in OTHER_MODELS:
        return OTHER_MODELS[arg]()
    variant, stage, runlocal = parse_arg(arg)
    model = ienet.model_config(variant)
    model.update(RECIPE_MODEL)
    model.context.enabled = False
    if runlocal:
        model.update(RUNLOCAL_MODEL)
    preset = "reference_stage1" if stage == "stage1" else "reference_stage2"
    config = common.build_config(model, preset, variant)
    train = config.train
    train.num_steps = STEPS[stage]
    train.learning_rate = LEARNING_RATE
    train.batch_size = BATCH_SIZE
    if runlocal:
        train.update(RUNLOCAL_TRAIN)
        config.mesh.num_devices = 1
    steps = train.get_ref("num_steps")
    if stage == "stage1":
        train.loss.pearson_band_hz = PEARSON_BAND_HZ
        train.loss.streams = STREAMS
    else:
        # Unlike the reference stage 2 (stage-1 network unfrozen for the last 20 %), only
        # the FEE head trains: in a run this short the L1 HR loss (tens of bpm) otherwise
        # drags the rPPG away.
        train.freeze_steps = steps
    config.data.clip_length = model.clip_length
    config.data.augment.update(AUGMENT)
    stored = dataset_config(arg).stored_clip_length
    config.data.augment.temporal_crop = stored > model.clip_length
    config.checkpoint.every_steps = steps
    config.checkpoint.async_save = False
    config.eval.every_steps = steps
    config.eval.num_batches = 0
    config.logging.every_steps = (steps + 9) // 10
    config.logging.tensorboard = False
    return config
