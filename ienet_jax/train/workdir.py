"""What a run's workdir records beside its checkpoints: `config.json` and `train_stats.json`.

`check_compatible(config, workdir)`: a workdir holding checkpoints of another config is
refused BEFORE anything is written (the trainer writes `config.json` only after it),
naming the keys that differ (old → new) and how to proceed. Keys compared are those that
change what the checkpoint holds or means (`SIGNATURE_KEYS`: the `model` section but its
`EXECUTION_KEYS` — dtype, remat, attention and conv implementations —, the train stage, the
optimiser's state tree, the model inputs); anything else may change between runs in one
workdir: `train.num_steps` (to extend a run), the learning rate and loss weights, logging,
evaluation, checkpointing, the mesh, `data.dir`.

`train_stats(config, workdir)` → `save_train_stats` (`write_train_stats` does both):
`WORKDIR/train_stats.json` =
`{"hr_mean", "num_clips", "data_dir", "split"}`, the mean clip HR (bpm) of the training
split, read from the records' labels only (frames are not decoded). `ienet_jax.evaluate`'s
constant predictor answers with it, so a run can be scored on any converted corpus.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from absl import logging
from flax import traverse_util

from ienet_jax.data.decode import RecordDecodeError
from ienet_jax.data.tfrecord import TFRecordError

TRAIN_STATS = "train_stats.json"

# (key, how to compare): "value", or "on" (only whether it is non-zero: the optimiser's
# state tree changes with it, its value may change)
SIGNATURE_KEYS = (
    ("train.stage", "value"),
    ("train.optimizer", "value"),
    ("train.grad_accum", "value"),
    ("train.grad_clip_norm", "on"),
    ("train.weight_decay", "on"),
    ("train.freeze_steps", "on"),
    ("data.modalities", "value"),
    ("data.normalize", "value"),
)


def _get(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _normal(value: Any) -> Any:
    """JSON-comparable: tuples as lists (config.json stores lists)."""
    return json.loads(json.dumps(value, default=str))


# how the model is computed, not what its parameters are: free to change in a resumed run
EXECUTION_KEYS = ("model.dtype", "model.remat", "model.attention", "model.conv_impl")


def signature(config: dict) -> dict[str, tuple[Any, Any]]:
    """`{key: (compared value, shown value)}` of the keys fixing what a checkpoint means."""
    model = traverse_util.flatten_dict(config.get("model", {}), sep=".")
    out = {f"model.{k}": (_normal(v), _normal(v)) for k, v in model.items()
           if f"model.{k}" not in EXECUTION_KEYS}
    for key, how in SIGNATURE_KEYS:
        value = _get(config, key)
        compared = bool(value) if how == "on" else value
        out[key] = (_normal(compared), _normal(value))
    return out


def differences(old: dict, new: dict) -> list[str]:
    """`["key: old → new", …]` over `signature` keys."""
    a, b = signature(old), signature(new)
    return [f"{k}: {a.get(k, (None, None))[1]!r} → {b.get(k, (None, None))[1]!r}"
            for k in sorted(set(a) | set(b))
            if a.get(k, (None,))[0] != b.get(k, (None,))[0]]


def _has_checkpoints(workdir: Path) -> bool:
    folder = workdir / "checkpoints"
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def check_compatible(config: ml_collections.ConfigDict, workdir: str | Path) -> None:
    """ValueError if `workdir` holds checkpoints of a config that differs from `config` in
    a `signature` key (the message lists them and how to proceed); writes nothing."""
    workdir = Path(workdir).absolute()
    path = workdir / "config.json"
    if not path.is_file() or not _has_checkpoints(workdir):
        return
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); it should hold the config of the "
                         "run in --workdir") from e
    if "model" in old:  # keys the model family added since the run was written
        from ienet_jax.models import contract

        model = contract.upgrade(ml_collections.ConfigDict(old["model"]), str(path))
        old["model"] = json.loads(model.to_json_best_effort())
    diff = differences(old, json.loads(config.to_json_best_effort()))
    if diff:
        raise ValueError(
            f"--workdir={workdir} holds checkpoints of a different config ({path}): "
            f"{'; '.join(diff)}. Nothing was written. To train this config, pass a new "
            f"--workdir; to fine-tune from that run, pass a new --workdir and "
            f"--config.train.init_from={workdir}")


def train_hr_mean(data_dir: str | Path, split: str = "train",
                  skip_corrupt: bool = False) -> tuple[float, int]:
    """(mean clip HR in bpm, clip count) of `split`, from the labels alone."""
    from ienet_jax.data.features import read_scalars
    from ienet_jax.data.source import ClipSource

    source = ClipSource(data_dir, split, skip_corrupt=skip_corrupt)
    hrs = []
    for i in range(len(source)):
        record = source[i]
        if record is not None:
            hrs.append(read_scalars(record[1], ("hr",), record[0])["hr"])
    if not hrs:
        raise ValueError(f"{data_dir}: split {split!r} has no clips to take the mean HR of")
    return float(np.mean(hrs)), len(hrs)


def train_stats(config: ml_collections.ConfigDict, workdir: str | Path) -> dict | None:
    """The `train_stats.json` content for `config`'s training split; None when there is
    nothing to write (synthetic clips, or the workdir's file is already of this data).

    Reads every training record (labels only): a corrupt one is an error naming it, now
    rather than mid-run (unless `data.skip_corrupt`)."""
    if not config.data.dir:
        return None  # synthetic clips
    path = Path(workdir) / TRAIN_STATS
    data_dir, split = str(Path(config.data.dir).absolute()), str(config.data.split)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if old.get("data_dir") == data_dir and old.get("split") == split:
                return None
        except json.JSONDecodeError:
            pass
    t0 = time.perf_counter()
    try:
        mean, count = train_hr_mean(data_dir, split, bool(config.data.skip_corrupt))
    except (TFRecordError, RecordDecodeError) as e:
        hint = ("To skip and count bad records, rerun with --config.data.skip_corrupt=True; "
                "or reconvert that file") if isinstance(e, TFRecordError) else \
            "Reconvert that file (python -m data_prep convert)"
        raise ValueError(f"training split {split!r}: {e}. {hint}") from e
    logging.info("training split %r: mean HR %.1f bpm over %d clips (labels read in %.1f s)",
                 split, mean, count, time.perf_counter() - t0)
    return {"hr_mean": mean, "num_clips": count, "data_dir": data_dir, "split": split}


def save_train_stats(workdir: str | Path, stats: dict | None) -> None:
    """Writes `stats` (from `train_stats`) to `WORKDIR/train_stats.json`; None: nothing."""
    if stats is not None:
        (Path(workdir) / TRAIN_STATS).write_text(json.dumps(stats, indent=2) + "\n")


def write_train_stats(config: ml_collections.ConfigDict, workdir: str | Path) -> None:
    """`train_stats` then `save_train_stats`."""
    save_train_stats(workdir, train_stats(config, workdir))


def read_train_stats(workdir: str | Path) -> dict | None:
    """The run's `train_stats.json` (None if absent: runs from before it existed)."""
    path = Path(workdir) / TRAIN_STATS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); delete it to fall back to the "
                         "training split") from e
