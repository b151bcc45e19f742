"""The trainer: `train_and_evaluate(config, workdir)`, read top to bottom.

Evaluation runs every `eval.every_steps` steps and at the end (0 = never).
Sections: mesh → model and optimiser → input → state (resume from `WORKDIR/checkpoints`,
else `train.init_from`, else fresh) → compiled steps → loop (train, log, evaluate,
checkpoint) → shutdown. SIGTERM (preemption) saves a checkpoint at the current step and
returns cleanly; a restart in the same workdir continues with the same state AND the next
batch. A non-finite loss stops the run with `FloatingPointError`; the step that produced
it is not applied and no checkpoint is written after it.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding

from ienet_jax.models import axes, build
from ienet_jax.parallel.memory import state_bytes_per_device
from ienet_jax.parallel.mesh import create_mesh
from ienet_jax.parallel.rules import batch_spec
from ienet_jax.parallel.strategies import activation_rules, describe, param_rules
from ienet_jax.train import inputs
from ienet_jax.train.checkpoint import Checkpointer, load_variables, merge_variables
from ienet_jax.train.metrics_log import MetricsLog, Progress
from ienet_jax.train.objectives import check_weights
from ienet_jax.train.optim import make_optimizer
from ienet_jax.train.state import (
    TrainState,
    abstract_params,
    abstract_state,
    count_params,
    create_train_state,
)
from ienet_jax.train.step import compile_steps


class _Preemption:
    """Records SIGTERM instead of dying; restores the previous handler on exit."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        # Multi-process runs leave SIGTERM to JAX's preemption notifier (installed by
        # jax.distributed.initialize): through it all processes agree on the step to stop
        # at (`reached_preemption` below); a Python handler would replace it.
        multi = jax.distributed.is_initialized() and jax.process_count() > 1
        if threading.current_thread() is threading.main_thread() and not multi:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        del signum, frame
        self.requested = True
        logging.warning("SIGTERM received: checkpointing after the current step, then exiting")

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _should(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


def evaluate(eval_step, state: TrainState, config, sharding: NamedSharding) -> dict[str, float]:
    """Mean of every loss term and the HR MAE (bpm) over one pass of `eval.split`."""
    totals: dict[str, float] = {}
    limit = int(config.eval.num_batches)
    for i, batch in enumerate(inputs.eval_iterator(config)):
        if limit and i >= limit:
            break
        sums = jax.device_get(eval_step(state, inputs.to_device(batch, sharding)))
        for k, v in sums.items():
            totals[k] = totals.get(k, 0.0) + float(v)
    count = totals.pop("count", 0.0)
    if not count:
        raise ValueError(f"evaluation split {config.eval.split!r} gave no clips (eval.*, data.*)")
    return {k: v / count for k, v in totals.items()}


def _initialise_from(state: TrainState, shardings, path: str) -> TrainState:
    variables = load_variables(path)
    tree = {"params": state.params, "batch_stats": state.batch_stats}
    # device_get cannot fetch arrays split over other processes' devices (fsdp, tp)
    target = (jax.device_get(tree) if jax.process_count() == 1
              else multihost_utils.process_allgather(tree, tiled=True))
    merged, missing = merge_variables(target, variables, f"train.init_from={path!r}")
    if missing:
        logging.info("init_from: %d variables not in %s keep their fresh init, e.g. %s",
                     len(missing), path, missing[:4])
    return state.replace(
        params=jax.device_put(merged["params"], shardings.params),
        batch_stats=jax.device_put(merged.get("batch_stats", {}), shardings.batch_stats))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *,
                       train_data=None) -> TrainState:
    """Train `config` in `workdir` (created; resumed if it holds checkpoints).

    `train_data`: an iterator of per-process numpy batches replacing the configured input
    (tests); it must have `get_state`/`set_state` to be checkpointed.
    Returns the final state. SIGTERM from here on (also while compiling) ends the run
    with a checkpoint after the next step.
    """
    with _Preemption() as preemption:
        return _train_and_evaluate(config, workdir, train_data, preemption)


def _train_and_evaluate(config, workdir, train_data, preemption: _Preemption) -> TrainState:
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")
    num_steps = int(config.train.num_steps)

    # ---------------------------------------------------------------- mesh
    mesh = create_mesh(config.mesh)
    rules = param_rules(config.mesh, mesh)
    act_rules = activation_rules(config.mesh, mesh, axes.ALL)
    data_sharding = NamedSharding(mesh, batch_spec(rules, mesh, int(config.train.batch_size)))
    eval_batch = int(config.eval.batch_size) if int(config.eval.every_steps) > 0 else \
        int(config.train.batch_size)  # no evaluation: any valid placeholder
    eval_sharding = NamedSharding(mesh, batch_spec(rules, mesh, eval_batch, "eval.batch_size"))
    logging.info("mesh %s on %d devices (%s), strategy %s: %s", dict(mesh.shape), mesh.size,
                 jax.devices()[0].platform, config.mesh.strategy, describe(rules))

    # ---------------------------------------------------------------- model + optimiser
    model = build(config.model)
    weights = check_weights(config.train.loss, config.model)
    stage = int(config.train.stage)
    fee = config.model.name == "ienet" and bool(config.model.fee.enabled)
    if stage not in (1, 2) or (stage == 2 and not fee):
        raise ValueError(f"config key train.stage={stage}: expected 1, or 2 with an IENet whose "
                         "model.fee.enabled=True (preset reference_stage2)")
    tx = make_optimizer(config.train, abstract_params(model, config.model))

    # ---------------------------------------------------------------- input
    train_it = train_data if train_data is not None else inputs.train_iterator(config)

    # ---------------------------------------------------------------- state
    state, shardings = create_train_state(model, config.model, tx, mesh, rules,
                                          int(config.seed))
    if jax.process_index() == 0:
        logging.info("model %s: %d parameters; %s", config.model.name,
                     count_params(state.params), state_bytes_per_device(state).line())
    ckpt = Checkpointer(workdir / "checkpoints", config.checkpoint)
    latest = ckpt.latest_step()
    if latest is not None:
        state, train_it = ckpt.restore(
            latest, abstract_state(shardings, model, config.model, tx), train_it)
    elif config.train.init_from:
        state = _initialise_from(state, shardings, config.train.init_from)

    # ---------------------------------------------------------------- compiled steps
    train_step, eval_step = compile_steps(model, config.model.name, tx, weights, mesh,
                                          shardings, data_sharding.spec, act_rules,
                                          eval_sharding.spec,
                                          tuple(config.train.loss.pearson_band_hz))

    # ---------------------------------------------------------------- loop
    log = MetricsLog(workdir, tensorboard=bool(config.logging.tensorboard))
    progress = Progress(num_steps, int(config.train.batch_size))
    base_rng = np.asarray(jax.device_get(state.rng))
    step = int(jax.device_get(state.step))
    start = step
    saved_at = latest
    history: dict[str, float] = {}
    logging.info("training steps %d → %d, global batch %d", step, num_steps,
                 config.train.batch_size)
    while step < num_steps:
        batch = inputs.to_device(next(train_it), data_sharding)
        t0 = time.perf_counter()
        state, metrics = train_step(state, batch, jax.random.fold_in(base_rng, step))
        metrics = jax.device_get(metrics)
        progress.add(time.perf_counter() - t0, first=step == start)
        if not bool(metrics["finite"]):
            ckpt.wait()
            bad = {k: float(v) for k, v in metrics.items() if k != "finite"}
            raise FloatingPointError(
                f"non-finite loss or gradient at step {step} (train.loss terms {bad}); "
                f"the step was not applied. Last good checkpoint: step {ckpt.latest_step()}"
                f" in {ckpt.directory}. Check the input data of this batch, or lower "
                "train.learning_rate / set train.grad_clip_norm.")
        step += 1
        for k, v in metrics.items():
            if k != "finite":
                history[k] = history.get(k, 0.0) + float(v)
        history["_n"] = history.get("_n", 0.0) + 1
        if _should(step, int(config.logging.every_steps), num_steps):
            n = history.pop("_n")
            means = {k: v / n for k, v in history.items()}
            means.update(progress.rates())
            log.write(step, "train", means)
            if jax.process_index() == 0:
                logging.info("%s", progress.line(step, means["loss"]))
            history = {}
        eval_metrics = None
        if int(config.eval.every_steps) > 0 and _should(step, int(config.eval.every_steps),
                                                        num_steps):
            eval_metrics = evaluate(eval_step, state, config, eval_sharding)
            log.write(step, config.eval.split, eval_metrics)
        if jax.process_count() > 1:  # all processes must agree on the step
            preempted = ckpt.manager.reached_preemption(step)
        else:
            preempted = preemption.requested
        if (_should(step, int(config.checkpoint.every_steps), num_steps) or preempted
                or (eval_metrics is not None and ckpt.best_metric)):
            ckpt.save(step, state, train_it if hasattr(train_it, "get_state") else None,
                      metrics=eval_metrics)
            saved_at = step
        if preempted:
            ckpt.wait()
            logging.warning("preempted: checkpoint of step %d written; exiting", step)
            break

    # ---------------------------------------------------------------- shutdown
    if saved_at != step:
        ckpt.save(step, state, train_it if hasattr(train_it, "get_state") else None)
    ckpt.close()
    log.close()
    if jax.process_index() == 0:
        (workdir / "status.json").write_text(json.dumps(
            {"step": step, "num_steps": num_steps, "finished": step >= num_steps}) + "\n")
    return state
