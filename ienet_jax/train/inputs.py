"""Training and evaluation inputs for the trainer: the grain pipeline or synthetic clips.

With `data.dir` set, batches come from `ienet_jax.data.Pipeline` (converted TFRecord
clips). With `data.dir = ""`, from `synthetic_dataset`: random clips with a real pulse
(a sinusoid at a random heart rate modulating the skin brightness) — for smoke tests,
benchmarks and the quickstart without any dataset. Both are grain datasets whose
iterators have `get_state`/`set_state`, so checkpoints capture the input position.

`check_data(config)` runs at start-up, before anything is written: every split the run will
read (`data.split`, and `eval.split` when `eval.every_steps > 0`) has shards, and the stored
clips (`features.json`) fit the model — the same frame size (the pipeline does not resize),
at least `model.clip_length` frames, and NIR for IENet. Longer stored clips are cut to
`model.clip_length` frames (`data.clip_length` left at None follows the model): in training
a random window when `data.augment.temporal_crop`, else the first frames; in evaluation the
first frames. That choice is logged once.
"""

from __future__ import annotations

import grain
import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import NamedSharding

from ienet_jax.models import contract

DEVICE_FIELDS = ("rgb", "nir", "bvp", "hr", "fps", "mask")


class SyntheticClips:
    """Random-access synthetic clips of `config.model` shapes (see the module docstring)."""

    def __init__(self, model_config, num_clips: int, seed: int, fps: float):
        self.t, self.s = int(model_config.clip_length), int(model_config.frame_size)
        self.fps = float(fps)
        self.nir = "nir" in contract.get(model_config).modalities
        self.num_clips, self.seed = int(num_clips), int(seed)

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, int(index)])
        hr = rng.uniform(50.0, 150.0)
        t = np.arange(self.t) / self.fps
        bvp = np.sin(2 * np.pi * hr / 60.0 * t + rng.uniform(0, 2 * np.pi)).astype(np.float32)
        base = rng.uniform(90, 160, size=(1, self.s, self.s, 1))
        pulse = 6.0 * bvp[:, None, None, None]
        noise = rng.normal(0.0, 2.0, size=(self.t, self.s, self.s, 1))
        frames = base + pulse + noise
        rgb = np.clip(frames * np.array([1.0, 0.8, 0.6]), 0, 255).astype(np.uint8)
        out = {"rgb": rgb, "bvp": bvp, "hr": np.float32(hr), "fps": np.float32(self.fps),
               "mask": np.bool_(True)}
        if self.nir:
            out["nir"] = np.clip(frames * 0.7 + 20, 0, 255).astype(np.uint8)
        return out


def synthetic_dataset(config: ml_collections.ConfigDict, *, training: bool,
                      batch_size: int) -> grain.IterDataset:
    """Per-process synthetic batches of `batch_size` clips (global batch / process count).

    Process `i` takes rows `i·batch_size …` of each global batch (`process_rows`), so the
    global batches are the same for any process count.
    """
    from ienet_jax.data.pipeline import process_rows

    syn = config.data.synthetic
    seed = int(syn.seed) + (0 if training else 1)
    num = int(syn.num_clips if training else syn.num_eval_clips)
    pi, pc = jax.process_index(), jax.process_count()
    ds = grain.MapDataset.source(SyntheticClips(config.model, num, seed, syn.fps))
    if training:
        ds = ds.seed(int(config.data.seed)).shuffle().repeat()
    ds = process_rows(ds, batch_size * pc, pi, pc)
    return ds.batch(batch_size, drop_remainder=True).to_iter_dataset()


def _local_batch(global_batch: int, what: str) -> int:
    pc = jax.process_count()
    if global_batch <= 0 or global_batch % pc:
        raise ValueError(f"config key {what}={global_batch} must be a positive multiple of "
                         f"the process count {pc}")
    return global_batch // pc


def train_iterator(config: ml_collections.ConfigDict):
    """A checkpointable iterator over per-process training batches."""
    local = _local_batch(int(config.train.batch_size), "train.batch_size")
    if not config.data.dir:
        return iter(synthetic_dataset(config, training=True, batch_size=local))
    from ienet_jax.data import Pipeline

    data = _data_section(config, config.data.split, int(config.train.batch_size))
    return iter(Pipeline(data, training=True))


def eval_iterator(config: ml_collections.ConfigDict):
    """A fresh iterator over one pass of the evaluation split (`eval.split`)."""
    local = _local_batch(int(config.eval.batch_size), "eval.batch_size")
    if not config.data.dir:
        return iter(synthetic_dataset(config, training=False, batch_size=local))
    from ienet_jax.data import Pipeline

    data = _data_section(config, config.eval.split, int(config.eval.batch_size))
    data.num_epochs = 1
    return iter(Pipeline(data, training=False))


def _data_section(config, split: str, batch_size: int) -> ml_collections.ConfigDict:
    data = ml_collections.ConfigDict(config.data.to_dict())
    data.split = split
    data.batch_size = batch_size
    # read only what the model takes (e.g. IENet with model.modalities=("rgb",): no NIR)
    needs = contract.get(config.model).modalities
    data.modalities = tuple(m for m in data.modalities if m in needs)
    if data.clip_length is None:  # the model's clip length (see check_data)
        data.clip_length = int(config.model.clip_length)
    if "synthetic" in data:
        del data["synthetic"]
    return data


def check_data(config: ml_collections.ConfigDict) -> None:
    """Start-up checks of `data.dir` against the config (see the module docstring).

    Raises `ValueError` naming both values and the keys to change; no-op for synthetic data.
    """
    if not config.data.dir:
        return
    from ienet_jax.data.features import ClipSpec
    from ienet_jax.data.source import split_files

    directory = str(config.data.dir)
    spec = ClipSpec.from_directory(directory)  # names a missing folder / features.json
    splits = [("data.split", config.data.split)]
    if int(config.eval.every_steps) > 0:
        splits.append(("eval.split", config.eval.split))
    for key, split in splits:
        try:
            split_files(directory, split)
        except ValueError as e:
            hint = (" or --config.eval.every_steps=0 (no evaluation during training)"
                    if key == "eval.split" else "")
            raise ValueError(f"config key {key}={split!r}: {e}; pass --config.{key}=SPLIT "
                             f"naming a split present{hint}") from e
    model = config.model
    length = int(model.clip_length)
    frame = model.frame_size  # IENet also takes (H, W)
    height, width = (int(frame), int(frame)) if np.ndim(frame) == 0 else map(int, frame)
    if (spec.height, spec.width) != (height, width):
        shown = height if height == width else f"'({height}, {width})'"
        raise ValueError(
            f"data.dir={directory!r} holds frames of {spec.height}x{spec.width} pixels "
            f"(features.json), the model takes model.frame_size={shown}: pass "
            f"--config.model.frame_size={spec.height} (if the model allows it), or reconvert "
            f"with `python -m data_prep convert --size {height}`")
    data_length = config.data.clip_length
    if data_length is not None and int(data_length) != length:
        raise ValueError(f"config key data.clip_length={data_length} differs from "
                         f"model.clip_length={length}: leave data.clip_length unset (None) "
                         "to follow the model")
    if spec.clip_length < length:
        raise ValueError(
            f"data.dir={directory!r} holds clips of {spec.clip_length} frames "
            f"(features.json), fewer than model.clip_length={length}: pass "
            f"--config.model.clip_length={spec.clip_length} (if the model allows it), or "
            f"reconvert with `python -m data_prep convert --clip-length {length}`")
    needs = contract.get(model).modalities
    if "nir" in needs and not spec.nir:
        raise ValueError(
            f"data.dir={directory!r} stores RGB only (features.json has no 'nir'), "
            f"model.name={model.name!r} needs {' and '.join(m.upper() for m in needs)}: "
            "convert a dataset with NIR video, or train an RGB-only model (TS-CAN, PhysNet, "
            "or IENet with --config.model.modalities=rgb)")
    missing = [m for m in needs if m not in tuple(config.data.modalities)]
    if missing:
        raise ValueError(f"config key data.modalities={tuple(config.data.modalities)} lacks "
                         f"{missing}, which model.name={model.name!r} needs")
    if spec.clip_length > length:
        if config.data.augment.temporal_crop:
            how = (f"a random {length}-frame window of each stored clip "
                   "(data.augment.temporal_crop=True)")
        else:
            how = (f"the first {length} frames of each stored clip (pass "
                   f"--config.data.augment.temporal_crop=True for random {length}-frame "
                   "windows)")
        logging.info("data: stored clips hold %d frames, model.clip_length=%d: training takes "
                     "%s, evaluation the first %d frames", spec.clip_length, length, how, length)


def to_device(batch: dict, sharding: NamedSharding) -> dict:
    """Per-process numpy batch → global arrays sharded over the batch axis (device fields)."""
    from ienet_jax.data.global_batch import make_global_batch

    return make_global_batch({k: v for k, v in batch.items() if k in DEVICE_FIELDS}, sharding)
