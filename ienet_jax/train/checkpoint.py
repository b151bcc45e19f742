"""Orbax checkpoints of the train state AND the input iterator, plus stage-2 initialisation.

`Checkpointer` wraps an `ocp.CheckpointManager` over `WORKDIR/checkpoints` with two items:
`state` (the `TrainState`, saved asynchronously by default) and `data` (the grain iterator
state, one JSON file per process), so a restart continues with the very next batch.
Kept: the last `checkpoint.keep` steps, plus the best one by `checkpoint.best_metric`
(an eval metric; `checkpoint.best_mode` "min"/"max") among steps saved with metrics.
Restoring takes an abstract target carrying the CURRENT mesh's shardings, so a checkpoint
written on 8 devices restores onto 1 (or any other layout): orbax reshards. One written by
N processes restores in a run of M ≠ N too; the input position then starts over (grain's
iterator state is per process), with a warning.

Orbax logs about 60 INFO lines per save through absl: `quiet_orbax()` (called by
`Checkpointer`) keeps only its warnings; our own lines say what was saved and restored.

`load_variables(path)` reads `{params, batch_stats}` from a previous run (its workdir, its
`checkpoints` folder, or one step folder) or from a converted reference checkpoint
(`python -m ienet_jax.convert` output); `merge_variables` puts them into a fresh state.
"""

from __future__ import annotations

import logging as logging_lib
import os
import re
from pathlib import Path
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import traverse_util
from orbax.checkpoint import checkpoint_managers as policies

from ienet_jax.parallel import distributed

STATE, DATA = "state", "data"
# Parameters whose stored layout changed, and the old layout (same values, reshaped): the
# attention's projections are stored head-major since tensor parallelism splits them by
# heads (`ienet_jax.models.attention`). `merge_variables` (train.init_from) reshapes an old
# one; `Checkpointer.restore` (resuming a workdir) refuses it in one line.
LAYOUT_CHANGES = (
    (re.compile(r"(.*/)?(qkv/(kernel|bias)|attn/proj/kernel)"),
     "the attention's projections are now stored head-major: qkv kernel [C, 3, heads, "
     "C/heads], qkv bias [3, heads, C/heads], proj kernel [heads, C/heads, C] (they were "
     "[C, 3*C], [3*C], [C, C]); start a new workdir with "
     "--config.train.init_from=<this checkpoint>, which reshapes them"),
)


def _layout_change(name: str) -> str | None:
    return next((why for regex, why in LAYOUT_CHANGES if regex.fullmatch(name)), None)


def _shapes(tree: Any) -> dict[str, tuple]:
    """`{"params/a/b": shape}` of the array leaves of a state or of its orbax metadata."""
    def name(path):
        return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                        for k in path)

    leaves = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype"))[0]
    return {name(path): tuple(x.shape) for path, x in leaves if hasattr(x, "shape")}


class _QuietOrbax(logging_lib.Filter):
    """Drops orbax's INFO lines (about 60 per save) from absl's log; warnings stay (but the
    one per save without metrics)."""

    def filter(self, record: logging_lib.LogRecord) -> bool:
        if f"{os.sep}orbax{os.sep}" not in (record.pathname or ""):
            return True
        # a step saved without eval metrics (by design, between evaluations): not news
        return record.levelno >= logging_lib.WARNING and not str(record.msg).startswith(
            "Requested `tracked_metric`")


def quiet_orbax() -> None:
    """Keeps orbax (which logs through absl) at WARNING; idempotent."""
    logger = logging_lib.getLogger("absl")
    if not any(isinstance(f, _QuietOrbax) for f in logger.filters):
        logger.addFilter(_QuietOrbax())
    for name in ("orbax", "orbax.checkpoint"):  # should it use Python loggers of its own
        logging_lib.getLogger(name).setLevel(logging_lib.WARNING)


class Checkpointer:
    """Save / restore `(state, iterator)` under `directory` (see the module docstring)."""

    def __init__(self, directory: str | Path, checkpoint_config, *, read_only: bool = False):
        # orbax's first sync (below) is a run's first cross-process collective: align the
        # processes first (see `distributed.barrier`: CPU/gloo's 30 s start-up window).
        distributed.barrier("checkpointer")
        quiet_orbax()
        self.directory = Path(directory).absolute()
        keep = int(checkpoint_config.keep)
        if keep < 1:
            raise ValueError(f"config key checkpoint.keep must be >= 1, got {keep}")
        keepers: list = [policies.LatestN(n=keep)]
        self.best_metric = checkpoint_config.best_metric or None
        mode = checkpoint_config.best_mode
        if mode not in ("min", "max"):
            raise ValueError(
                f"config key checkpoint.best_mode must be 'min' or 'max', got {mode!r}")
        self.best_mode = mode
        if self.best_metric:
            metric = self.best_metric
            keepers.append(policies.BestN(get_metric_fn=lambda m: m[metric],
                                          reverse=mode == "min", n=1,
                                          keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=1,
            # best_fn also makes orbax store the metrics of each step (policy below decides)
            best_fn=(lambda m: m[self.best_metric]) if self.best_metric else None,
            best_mode=mode,
            preservation_policy=policies.AnyPreservationPolicy(keepers),
            enable_async_checkpointing=bool(checkpoint_config.async_save),
            read_only=read_only,
            create=not read_only,
        )
        self.manager = ocp.CheckpointManager(self.directory, item_names=(STATE, DATA),
                                             options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        """The saved step with the best `best_metric` (None if no step has metrics)."""
        if not self.best_metric:
            return None
        with_metrics = [s for s in self.manager.all_steps() if self.manager.metrics(s)]
        return self.manager.best_step() if with_metrics else None

    def save(self, step: int, state: Any, iterator: Any = None,
             metrics: dict[str, float] | None = None) -> bool:
        """Start saving `state` (+ `iterator`) as `step` (asynchronously if configured)."""
        items = {STATE: ocp.args.StandardSave(state)}
        if iterator is not None:
            items[DATA] = grain.checkpoint.CheckpointSave(iterator)
        metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
        saved = self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics,
                                  force=True)
        if saved:
            logging.info("checkpoint: saving step %d to %s", step, self.directory)
        return saved

    def restore(self, step: int, abstract_state: Any, iterator: Any = None) -> tuple[Any, Any]:
        """`(state, iterator)` of `step`; `abstract_state` carries the target shardings."""
        self._check_shapes(step, abstract_state)
        items = {STATE: ocp.args.StandardRestore(abstract_state)}
        has_data = iterator is not None and self._has_data_state(step)
        if has_data:
            items[DATA] = grain.checkpoint.CheckpointRestore(iterator)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        logging.info("checkpoint: restored step %d from %s", step, self.directory)
        return restored[STATE], restored.get(DATA, iterator) if has_data else iterator

    def _check_shapes(self, step: int, abstract_state: Any) -> None:
        """A stored array whose shape is not the model's is a one-line error naming it
        (orbax's own names neither the array nor the reason)."""
        with ocp.StandardCheckpointer() as checkpointer:
            stored = _shapes(_tree(checkpointer.metadata(self.directory / str(step) / STATE)))
        for name, shape in _shapes(abstract_state).items():
            if name in stored and stored[name] != shape:
                why = _layout_change(name)
                raise ValueError(
                    f"checkpoint {self.directory / str(step)}: {name} has shape "
                    f"{stored[name]}, the model expects {shape}"
                    + (f": {why}" if why else " (a different model config?)"))

    def _has_data_state(self, step: int) -> bool:
        """Whether step `step` holds an input-iterator state for THIS process (grain writes
        `process_I-of-N.json`); warns (the input restarts) when it does not."""
        folder = self.directory / str(step) / DATA
        pi, pc = jax.process_index(), jax.process_count()
        if (folder / f"process_{pi}-of-{pc}.json").is_file():
            return True
        written = sorted({p.name.rpartition("-of-")[2].removesuffix(".json")
                          for p in folder.glob("process_*-of-*.json")})
        if written:
            logging.warning("checkpoint step %d: its input-iterator state was written by %s "
                            "processes, this run has %d: the model state is restored, the "
                            "input pipeline restarts from its beginning", step,
                            "/".join(written), pc)
        else:
            logging.warning("checkpoint step %d has no input-iterator state: the input "
                            "pipeline restarts from its beginning", step)
        return False

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _tree(metadata: Any) -> Any:
    """The array-metadata tree of a `StandardCheckpointer.metadata(...)` result."""
    tree = getattr(metadata, "item_metadata", metadata)
    return getattr(tree, "tree", tree)


def _replicated_target(metadata_tree: Any, sharding: jax.sharding.Sharding) -> Any:
    def one(meta):
        return jax.ShapeDtypeStruct(tuple(meta.shape), meta.dtype, sharding=sharding)

    return jax.tree.map(one, metadata_tree,
                        is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype"))


def load_variables(path: str | Path) -> dict:
    """`{"params", "batch_stats"}` (numpy) from a run or a converted reference checkpoint.

    `path`: a converted directory (holding `variables/`), a workdir (holding
    `checkpoints/`; its latest step), a `checkpoints` folder, or one step folder.
    """
    path = Path(path).absolute()
    if (path / "variables").is_dir():
        from ienet_jax.convert import restore_converted

        variables = restore_converted(path)
        logging.info("init_from: converted reference variables %s", path)
        return jax.tree.map(np.asarray, variables)
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    if (path / STATE).is_dir():
        step_dir = path
    else:
        steps = sorted(int(p.name) for p in path.glob("*") if p.name.isdigit() and p.is_dir())
        if not steps:
            raise ValueError(
                f"config key train.init_from={str(path)!r}: no checkpoint found (expected a "
                "workdir with checkpoints/, a checkpoints folder, a step folder holding "
                "state/, or a converted reference directory holding variables/)")
        step_dir = path / str(steps[-1])
    replicated = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])  # every process
    with ocp.StandardCheckpointer() as checkpointer:
        tree = _tree(checkpointer.metadata(step_dir / STATE))
        restored = checkpointer.restore(step_dir / STATE, _replicated_target(tree, replicated))
    logging.info("init_from: variables of %s", step_dir)
    return jax.tree.map(np.asarray, {k: restored[k] for k in ("params", "batch_stats")})


def _upgrade(name: str, value: Any, shape: tuple, what: str) -> Any:
    """`value` reshaped to `shape` when it is `name` stored in an old layout
    (`LAYOUT_CHANGES`: the same values in another shape), else as it is."""
    if (tuple(value.shape) != shape and _layout_change(name)
            and np.size(value) == int(np.prod(shape))):
        logging.info("%s: %s reshaped from the old layout %s to %s", what, name,
                     tuple(value.shape), shape)
        return np.reshape(value, shape)
    return value


def upgrade_layout(variables: dict, expected: Any, what: str) -> dict:
    """`variables` with every array stored in an old layout (`LAYOUT_CHANGES`) reshaped to
    its shape in `expected` (the model's variables or their `ShapeDtypeStruct`s); other
    arrays as they are (a mismatch left is the model's own error)."""
    shapes = {"/".join(map(str, k)): tuple(v.shape)
              for k, v in traverse_util.flatten_dict(expected).items()}
    flat = traverse_util.flatten_dict(variables)
    return traverse_util.unflatten_dict({
        k: _upgrade(name, v, shapes[name], what) if (name := "/".join(map(str, k))) in shapes
        else v for k, v in flat.items()})


def merge_variables(target: dict, source: dict, what: str) -> tuple[dict, list[str]]:
    """`target` with every leaf that `source` also has replaced by the source's value.

    Returns `(merged, missing)`: `missing` lists target paths absent from `source` (kept
    from `target`, e.g. the FEE head of a stage-1 checkpoint). A source in an old layout
    (`LAYOUT_CHANGES`) is reshaped; another shape mismatch or a source leaf unknown to the
    target is a ValueError naming the path.
    """
    flat_source = {"/".join(map(str, k)): v
                   for k, v in traverse_util.flatten_dict(source).items()}
    flat_target = traverse_util.flatten_dict(target)
    used, missing = set(), []
    merged = {}
    for key, value in flat_target.items():
        name = "/".join(map(str, key))
        if name in flat_source:
            src = flat_source[name]
            src = _upgrade(name, src, tuple(value.shape), what)
            if tuple(src.shape) != tuple(value.shape):
                raise ValueError(f"{what}: {name} has shape {tuple(src.shape)}, the model "
                                 f"expects {tuple(value.shape)}")
            merged[key] = src.astype(value.dtype)
            used.add(name)
        else:
            merged[key] = value
            missing.append(name)
    unknown = sorted(set(flat_source) - used)
    if unknown:
        raise ValueError(f"{what}: {len(unknown)} variables unknown to the model, e.g. "
                         f"{unknown[:3]} (wrong model config?)")
    if not used:
        raise ValueError(f"{what}: no variable matches the model")
    return traverse_util.unflatten_dict(merged), missing
