"""Config sections shared by every model config, and the training presets.

`build_config(model_section, preset, variant)` → the full locked ConfigDict:

- `model`: the model helper's section (`configs/ienet.py`, `configs/tscan.py`,
  `configs/physnet.py`).
- `data`: the input pipeline section (`ienet_jax.data.default_data_config()`) plus
  `data.synthetic` (used when `data.dir` is empty: synthetic clips with a pulse).
- `train`: steps, GLOBAL batch, optimiser (Adam, coupled weight decay, step decay), loss
  weights, stage, `init_from`, freezing.
- `mesh`: `shape`/`axes` (one size may be -1), the sharding `strategy` and optional
  logical-axis `rules` / `activation_rules` placed in front of the strategy's tables.
- `checkpoint`, `logging`, `eval`, and `seed`.

Presets:
- `reference_stage1`: IENet stage 1 as published: 0.3·NegPearson + 0.3·spectral, Adam lr
  1e-4 with coupled weight decay 5e-5, lr ×0.5 at half the run (StepLR 50 of 100 epochs),
  batch 2.
- `reference_stage2`: IENet stage 2: FEE on (trained through its soft gate), 0.4·L1 HR,
  batch 16, lr ×0.5 at half the run, the stage-1 network frozen for the first 80 % of the
  steps (40 of 50 epochs); set `train.init_from` to the stage-1 workdir or a converted
  reference checkpoint.
- `tscan`: TS-CAN: MSE between the predicted BVP derivative and the difference-normalised
  label, Adam lr 1e-3, batch 4, RGB only.
- `physnet`: PhysNet: negative Pearson between the predicted BVP and the label (the PhysNet
  paper's loss, trained with Adam), Adam lr 1e-3 without weight decay, batch 4, RGB only:
  rPPG-Toolbox's PhysNet recipes use batch 4 and Adam at lr 1e-3 to 9e-3.
- `quickstart`: a short run sized for 2 CPU cores (synthetic data unless `data.dir` is set).

Sharding strategies (`mesh.strategy`, tables in `ienet_jax/parallel/strategies.py`; the
batch is always split over every `data`/`fsdp` mesh axis; the trainer logs each device's
parameter and optimiser bytes at start-up):
- `dp_tp` (default): data + Megatron tensor parallel over the `model` axis (Swin MLP hidden
  width, attention heads/qkv). With the default `mesh.shape=(-1, 1)` it is pure data
  parallel; `--config.mesh.shape='(-1,2)'` splits every block 2 ways.
- `dp`: parameters and optimiser state replicated, batch over the data axes.
- `fsdp`: parameters AND optimiser state split over the `fsdp` axis (`data` if absent),
  gathered per layer by XLA: `--config.mesh.strategy=fsdp` shards over all devices; with
  `--config.mesh.axes='("data","fsdp")' --config.mesh.shape='(2,4)'`, 2 replicas × 4 shards.
User `mesh.rules` (regex over logical names → mesh axes, first match wins) override the
strategy name by name, e.g. `--config.mesh.rules='(("mlp", None),)'` keeps the MLP whole.

Step counts (`lr_decay_every`, `freeze_steps`) follow `train.num_steps` unless overridden.
Model configs call `config_from_arg(model_config, arg, default_preset)` so that
`--config configs/ienet.py:tiny,quickstart` picks variant and preset.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections


def data_section() -> ml_collections.ConfigDict:
    from ienet_jax.data.pipeline import default_data_config

    data = default_data_config()
    data.normalize = "none"  # uint8 to the devices; normalised in the train step
    data.synthetic = ml_collections.ConfigDict(dict(num_clips=256, num_eval_clips=16, seed=0,
                                                    fps=30.0))
    return data


def train_section() -> ml_collections.ConfigDict:
    train = ml_collections.ConfigDict(dict(
        stage=1,                  # IENet: 1 = rPPG (backbones, fusion, head), 2 = + FEE HR
        num_steps=100_000,
        batch_size=2,             # GLOBAL clips per step (divided among processes/devices)
        learning_rate=1e-4,
        lr_decay_factor=0.5,
        optimizer="adam",         # adam (coupled L2 weight decay) | adamw (decoupled)
        weight_decay=5e-5,
        adam_b1=0.9,
        adam_b2=0.999,
        adam_eps=1e-8,
        grad_clip_norm=0.0,       # 0 = off
        grad_accum=1,             # batches per optimiser update
        freeze_pattern="^(?!fee/)",  # regex over param paths frozen for freeze_steps
        # CPU only: ops XLA hands to YNNPACK, "default" (XLA's choice) or "dots" (matmuls
        # only). "dots" helped only on an oversubscribed CPU (load 12 on 2 cores: reference
        # train step 10.2 vs 16.7 s); on a quiet one it was slower (3.69 vs 3.33 s), so
        # compare both with `python -m bench.model --cpu-ynn-fusion default dots`
        cpu_ynn_fusion="default",
        init_from="",             # stage-1 workdir / checkpoint, or converted reference dir
        loss=ml_collections.ConfigDict(dict(neg_pearson=0.0, spectral=0.0, l1_hr=0.0,
                                            mse=0.0,
                                            # each backbone's own pulse gets the pulse
                                            # terms too, at this factor (IENet's rgb/nir
                                            # rPPG; 0 = the fused pulse only, the reference)
                                            streams=0.0,
                                            # (lo, hi) Hz: neg_pearson on that band only;
                                            # () = raw signals (the reference)
                                            pearson_band_hz=())),
    ))
    train.lr_decay_every = train.get_ref("num_steps") // 2
    train.freeze_steps = train.get_ref("num_steps") * 0
    return train


def mesh_section() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        shape=(-1, 1), axes=("data", "model"),
        num_devices=0,       # 0 = all devices
        strategy="dp_tp",    # dp | fsdp | dp_tp (see the module docstring)
        # (pattern, mesh axes) pairs in front of the strategy's tables: first match wins;
        # a dimension the mesh axes do not divide stays replicated.
        rules=(), activation_rules=(),
    ))


def checkpoint_section() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(every_steps=1000, keep=3, best_metric="hr_mae",
                                          best_mode="min", async_save=True))


def logging_section() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(every_steps=50, tensorboard=True))


def eval_section() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(every_steps=1000, split="validation", batch_size=2,
                                          num_batches=0))  # 0 = the whole split


# Presets as data: {preset: {model.name: settings applied in order}}, "*" = any other model;
# a model neither named nor covered by "*" cannot use the preset. Settings map dotted keys
# to values, or to functions of the config (references that follow train.num_steps).
_STAGE1 = {"train.loss.neg_pearson": 0.3, "train.loss.spectral": 0.3}
_STAGE2 = {"model.fee.enabled": True, "train.stage": 2, "train.batch_size": 16,
           "train.loss.l1_hr": 0.4,
           "train.freeze_steps": lambda c: (c.train.get_ref("num_steps") * 4) // 5}
_TSCAN = {"train.loss.mse": 1.0, "train.learning_rate": 1e-3, "train.weight_decay": 0.0,
          "train.batch_size": 4, "data.modalities": ("rgb",)}
_PHYSNET = {"train.loss.neg_pearson": 1.0, "train.learning_rate": 1e-3,
            "train.weight_decay": 0.0, "train.batch_size": 4, "data.modalities": ("rgb",)}
_SHORT = {"train.num_steps": 200, "train.batch_size": 2, "checkpoint.every_steps": 50,
          "eval.every_steps": 50, "eval.num_batches": 4, "logging.every_steps": 10}
PRESETS = {
    "reference_stage1": {"ienet": (_STAGE1,), "*": ()},
    "reference_stage2": {"ienet": (_STAGE2,)},
    "tscan": {"tscan": (_TSCAN,)},
    "physnet": {"physnet": (_PHYSNET,)},
    "quickstart": {"ienet": (_STAGE1, _SHORT), "tscan": (_TSCAN, _SHORT),
                   "physnet": (_PHYSNET, _SHORT), "*": (_SHORT,)},
}


def _apply_preset(config: ml_collections.ConfigDict, preset: str) -> None:
    table, name = PRESETS[preset], config.model.name
    if name not in table and "*" not in table:
        raise ValueError(f"preset {preset!r} is for model.name in {tuple(table)}, not "
                         f"{name!r}")
    for settings in table.get(name, table.get("*")):
        for key, value in settings.items():
            set_key(config, key, value(config) if callable(value) else value)


def set_key(config: ml_collections.ConfigDict, key: str, value) -> None:
    """`config[key] = value` for a dotted `key` ("train.loss.mse")."""
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[leaf] = value


def build_config(model_section: ml_collections.ConfigDict, preset: str = "reference_stage1",
                 variant: str = "") -> ml_collections.ConfigDict:
    """The full, locked config: `model_section` + shared sections, adjusted by `preset`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown config preset {preset!r}; choose from {tuple(PRESETS)}")
    config = ml_collections.ConfigDict()
    config.variant = variant
    config.preset = preset
    config.seed = 0
    config.model = ml_collections.ConfigDict(model_section.to_dict())
    config.data = data_section()
    config.train = train_section()
    config.mesh = mesh_section()
    config.checkpoint = checkpoint_section()
    config.logging = logging_section()
    config.eval = eval_section()
    config.data.batch_size = config.train.get_ref("batch_size")  # one global batch size
    config.eval.batch_size = config.train.get_ref("batch_size")  # unless overridden
    _apply_preset(config, preset)
    config.lock()
    return config


def config_from_arg(model_config: Callable[[str], ml_collections.ConfigDict], arg: str | None,
                    default_variant: str, default_preset: str) -> ml_collections.ConfigDict:
    """`get_config` for a model config file: `arg` is `"variant"` or `"variant,preset"`."""
    variant, _, preset = (arg or "").partition(",")
    variant = variant or default_variant
    return build_config(model_config(variant), preset or default_preset, variant)
