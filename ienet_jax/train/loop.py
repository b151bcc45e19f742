"""The trainer: `train_and_evaluate(config, workdir)`, read top to bottom.

Evaluation runs every `eval.every_steps` steps and at the end (0 = never).
Sections: `setup` (start-up checks → mesh → model and optimiser → input → state (resume
from `WORKDIR/checkpoints`, else `train.init_from`, else fresh) → compiled steps → log)
returns a `Run`; `loop(run, ...)` trains (train, log, evaluate, checkpoint) → shutdown.
SIGTERM (preemption) and SIGINT (Ctrl-C) save a checkpoint after the current step and raise
`Interrupted` (a second Ctrl-C aborts at once); a restart in the same workdir continues
with the same state AND the next batch. A non-finite loss stops the run with
`FloatingPointError`; the step that produced it is not applied and no checkpoint is written
after it. A corrupt record met mid-run (with `data.skip_corrupt=False`) first checkpoints
the current step (input position before the failed batch; single-process runs), then raises
a `ValueError` naming the file, record and byte offset.

Start-up checks before anything is written (`WORKDIR/config.json` included): the workdir's
previous config is compatible (`ienet_jax.train.workdir`), and the dataset matches the
model and holds every split the run will read (`inputs.check_data`). Logged on the way:
"initialising the train state", "compiling the train step" and the first step's time
(compilation included; the same for the first evaluation); `metrics.jsonl`/TensorBoard
get the learning rate of each logged step, and a resumed run first drops the log rows of
steps after its checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding

from ienet_jax.data.decode import RecordDecodeError
from ienet_jax.data.tfrecord import TFRecordError
from ienet_jax.models import axes, build, contract
from ienet_jax.parallel.memory import state_bytes_per_device
from ienet_jax.parallel.mesh import create_mesh
from ienet_jax.parallel.rules import batch_spec
from ienet_jax.parallel.strategies import activation_rules, describe, param_rules
from ienet_jax.train import inputs
from ienet_jax.train import workdir as workdir_lib
from ienet_jax.train.checkpoint import Checkpointer, load_variables, merge_variables
from ienet_jax.train.metrics_log import MetricsLog, Progress
from ienet_jax.train.objectives import check_weights
from ienet_jax.train.optim import frozen_mask, frozen_train_steps, make_optimizer, schedule
from ienet_jax.train.state import (
    TrainState,
    abstract_params,
    abstract_state,
    count_params,
    create_train_state,
    trace_init,
)
from ienet_jax.train.step import Compiled, compile_steps, compile_train_step, compiler_options


class Interrupted(Exception):
    """The run stopped early on SIGTERM/SIGINT after checkpointing `step` (resumable)."""

    def __init__(self, step: int, signal_name: str, checkpoints: Path):
        self.step, self.signal_name = step, signal_name
        super().__init__(f"interrupted by {signal_name} at step {step}, resumable: checkpoint "
                         f"of step {step} written to {checkpoints}; rerun the same command to "
                         f"continue from step {step}")


class _Preemption:
    """Records SIGTERM and SIGINT instead of dying; restores the previous handlers on exit.

    Multi-process runs leave SIGTERM to JAX's preemption notifier (installed by
    jax.distributed.initialize): through it all processes agree on the step to stop at
    (`reached_preemption` in the loop); a Python handler would replace it. There SIGINT
    re-sends SIGTERM to this process, so Ctrl-C goes through the same agreement. The first
    SIGINT restores Python's default handler: a second Ctrl-C raises KeyboardInterrupt.
    """

    def __init__(self):
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, object] = {}
        self._multi = False

    def __enter__(self):
        self._multi = jax.distributed.is_initialized() and jax.process_count() > 1
        if threading.current_thread() is threading.main_thread():
            if not self._multi:
                self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._handle)
            if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # e.g. nohup, `&`
                self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        del frame
        name = signal.Signals(signum).name
        self.signal_name = self.signal_name or name
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        logging.warning("%s received: checkpointing after the current step, then exiting%s",
                        name, " (Ctrl-C again aborts at once)" if signum == signal.SIGINT else "")
        if self._multi:  # JAX's notifier makes every process stop at the same step
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            self.requested = True

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _should(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


def evaluate(eval_step, state: TrainState, config, sharding: NamedSharding) -> dict[str, float]:
    """Mean of every loss term and the HR MAE (bpm) over one pass of `eval.split`."""
    totals: dict[str, float] = {}
    limit = int(config.eval.num_batches)
    iterator = inputs.eval_iterator(config)
    i = 0
    try:
        while not limit or i < limit:
            try:
                batch = next(iterator)
            except StopIteration:
                break
            except _DATA_ERRORS as e:
                raise _DataError(e, f"evaluation split {config.eval.split!r}") from e
            i += 1
            sums = jax.device_get(eval_step(state, inputs.to_device(batch, sharding)))
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + float(v)
    finally:
        if hasattr(iterator, "close"):  # grain workers of this pass
            iterator.close()
    count = totals.pop("count", 0.0)
    if not count:
        raise ValueError(f"evaluation split {config.eval.split!r} gave no clips (eval.*, data.*)")
    return {k: v / count for k, v in totals.items()}


# a corrupt record (CRC), a record that is not a clip, an unreadable file
_DATA_ERRORS = (TFRecordError, RecordDecodeError, OSError)


class _DataError(Exception):
    """A data error from the input pipeline; the loop checkpoints, then raises `message`."""

    def __init__(self, error: Exception, where: str):
        super().__init__(str(error))
        self.error, self.where = error, where

    def message(self, step: int, saved: str) -> str:
        if isinstance(self.error, TFRecordError):
            hint = ("To skip and count bad records, rerun with --config.data.skip_corrupt=True; "
                    "or reconvert that file")
        elif isinstance(self.error, RecordDecodeError):
            hint = "Reconvert that file (python -m data_prep convert)"
        else:
            hint = "Check that the file is readable, then rerun the same command to resume"
        return f"{self.where}: {self.error} (at step {step}; {saved}). {hint}"


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
    Returns the final state. SIGTERM or SIGINT from here on (also while compiling) ends the
    run with a checkpoint after the next step and raises `Interrupted`.
    """
    with _Preemption() as preemption:
        return _train_and_evaluate(config, workdir, train_data, preemption)


def _train_and_evaluate(config, workdir, train_data, preemption: _Preemption) -> TrainState:
    return loop(setup(config, workdir, train_data), preemption)


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything `setup` builds and `loop` uses; the loop's state and step live in `loop`."""

    config: ml_collections.ConfigDict
    workdir: Path
    mesh: Mesh
    data_sharding: NamedSharding  # train batches
    eval_sharding: NamedSharding  # eval batches
    model: Any
    tx: Any
    learning_rate: Any  # schedule of optimiser updates
    accum: int  # train steps per optimiser update
    state: TrainState  # initial: restored, `train.init_from` or fresh
    shardings: Any  # of the state
    train_it: Any  # per-process numpy batches
    checkpointable: bool  # train_it has get_state/set_state
    ckpt: Checkpointer
    latest: int | None  # the step of the checkpoint resumed from
    train_step: Compiled
    eval_step: Compiled
    log: MetricsLog
    # steps < frozen_until run frozen_step (gradients of the trained subset only), if set
    frozen_step: Compiled | None = None
    frozen_until: int = 0

    def step_fn(self, step: int) -> Compiled:
        """The compiled train step for train step `step`."""
        return self.frozen_step if step < self.frozen_until else self.train_step


def setup(config: ml_collections.ConfigDict, workdir: str | Path, train_data=None) -> Run:
    """Start-up checks, mesh, model, optimiser, input, state (resumed) and compiled steps."""
    workdir = Path(workdir).absolute()

    # ---------------------------------------------------------------- start-up checks
    workdir_lib.check_compatible(config, workdir)  # before anything is written
    stats = None
    if train_data is None:
        inputs.check_data(config)
        if jax.process_index() == 0:  # the training labels' mean HR, for `evaluate`
            stats = workdir_lib.train_stats(config, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")
        workdir_lib.save_train_stats(workdir, stats)

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
    if stage not in (1, 2) or (stage == 2 and not contract.get(config.model).has_hr(config.model)):
        raise ValueError(f"config key train.stage={stage}: expected 1, or 2 with an IENet whose "
                         "model.fee.enabled=True (preset reference_stage2)")
    init = trace_init(model, config.model)  # the model's one trace before the train step
    params_shape = abstract_params(model, config.model, init)
    tx = make_optimizer(config.train, params_shape)
    learning_rate = schedule(config.train)  # of optimiser updates (train steps / grad_accum)
    accum = max(int(config.train.grad_accum), 1)

    # ---------------------------------------------------------------- input
    train_it = train_data if train_data is not None else inputs.train_iterator(config)
    checkpointable = hasattr(train_it, "get_state")

    # ---------------------------------------------------------------- state
    logging.info("initialising the train state (model %s)", config.model.name)
    t0 = time.perf_counter()
    state, shardings = create_train_state(model, config.model, tx, mesh, rules,
                                          int(config.seed), init)
    if jax.process_index() == 0:
        logging.info("model %s: %d parameters; %s (initialised in %.1f s)", config.model.name,
                     count_params(state.params), state_bytes_per_device(state).line(),
                     time.perf_counter() - t0)
    ckpt = Checkpointer(workdir / "checkpoints", config.checkpoint)
    latest = ckpt.latest_step()
    if latest is not None:
        state, train_it = ckpt.restore(
            latest, abstract_state(shardings, model, config.model, tx, init=init), train_it)
    elif config.train.init_from:
        state = _initialise_from(state, shardings, config.train.init_from)

    # ---------------------------------------------------------------- compiled steps
    options = compiler_options(config.train)
    train_step, eval_step = compile_steps(
        model=model, model_config=config.model, tx=tx, weights=weights, mesh=mesh,
        state_shardings=shardings, batch_spec=data_sharding.spec, activation_rules=act_rules,
        eval_batch_spec=eval_sharding.spec,
        pearson_band_hz=tuple(config.train.loss.pearson_band_hz), compiler_options=options)
    mask = frozen_mask(config.train, params_shape)
    frozen_step = None if mask is None else compile_train_step(
        model=model, model_config=config.model, tx=tx, weights=weights, mesh=mesh,
        state_shardings=shardings, batch_spec=data_sharding.spec, activation_rules=act_rules,
        pearson_band_hz=tuple(config.train.loss.pearson_band_hz), frozen_mask=mask,
        compiler_options=options)

    # ---------------------------------------------------------------- log
    # a resumed run drops the rows (and TensorBoard events) of steps after its checkpoint
    log = MetricsLog(workdir, tensorboard=bool(config.logging.tensorboard),
                     resume_step=int(jax.device_get(state.step)))
    return Run(config=config, workdir=workdir, mesh=mesh, data_sharding=data_sharding,
               eval_sharding=eval_sharding, model=model, tx=tx,
               learning_rate=learning_rate, accum=accum, state=state, shardings=shardings,
               train_it=train_it, checkpointable=checkpointable, ckpt=ckpt, latest=latest,
               train_step=train_step, eval_step=eval_step, log=log, frozen_step=frozen_step,
               frozen_until=frozen_train_steps(config.train) if mask is not None else 0)


def _save(run: Run, step: int, state: TrainState, metrics=None, position=None) -> int:
    """Checkpoint `step`; returns it (the new `saved_at`)."""
    if position is not None:  # the input position before a batch that failed
        run.train_it.set_state(position)
    run.ckpt.save(step, state, run.train_it if run.checkpointable else None, metrics=metrics)
    return step


def _stop_on_data_error(run: Run, error: _DataError, position, step: int, state: TrainState,
                        saved_at: int | None):
    if jax.process_count() > 1:
        # a save is collective: the other processes are not here (fail_fast ends them)
        saved = f"multi-process run: no checkpoint written, the last is {saved_at}"
    else:
        if saved_at != step:
            _save(run, step, state, position=position)
        run.ckpt.close()
        run.log.close()
        saved = f"checkpoint of step {step} in {run.ckpt.directory}"
    raise ValueError(error.message(step, saved)) from error.error


def loop(run: Run, preemption: _Preemption) -> TrainState:
    """Train, log, evaluate and checkpoint from `run.state` to `train.num_steps`; shut down."""
    config, ckpt, train_it = run.config, run.ckpt, run.train_it
    num_steps = int(config.train.num_steps)
    state = run.state
    step = int(jax.device_get(state.step))
    progress = Progress(num_steps, int(config.train.batch_size))
    base_rng = np.asarray(jax.device_get(state.rng))
    start = step
    saved_at = run.latest
    history: dict[str, float] = {}
    evaluated = False
    logging.info("training steps %d → %d, global batch %d", step, num_steps,
                 config.train.batch_size)

    while step < num_steps:
        # ------------------------------------------------------------ train step
        position = train_it.get_state() if run.checkpointable else None
        try:
            numpy_batch = next(train_it)
        except _DATA_ERRORS as e:
            _stop_on_data_error(run, _DataError(e, f"training split {config.data.split!r}"),
                                position, step, state, saved_at)
        batch = inputs.to_device(numpy_batch, run.data_sharding)
        # the frozen phase's step (stage 2), then at `frozen_until` the full step: each
        # compiles on its first call
        compiles = step == start or (step == run.frozen_until and run.frozen_step is not None)
        phase = "frozen-phase train step" if step < run.frozen_until else "train step"
        if compiles:
            logging.info("compiling the %s (the first step includes it)", phase)
        t0 = time.perf_counter()
        state, metrics = run.step_fn(step)(state, batch, jax.random.fold_in(base_rng, step))
        metrics = jax.device_get(metrics)
        seconds = time.perf_counter() - t0
        progress.add(seconds, first=compiles)
        if compiles:
            logging.info("%s compiled: the first step took %.1f s, compilation included",
                         phase, seconds)
        if not bool(metrics["finite"]):
            ckpt.wait()
            bad = {k: float(v) for k, v in metrics.items() if k != "finite"}
            raise FloatingPointError(
                f"non-finite loss or gradient at step {step} (train.loss terms {bad}); "
                f"the step was not applied. Last good checkpoint: step {ckpt.latest_step()}"
                f" in {ckpt.directory}. Check the input data of this batch, or lower "
                "train.learning_rate / set train.grad_clip_norm.")
        lr = float(run.learning_rate(step // run.accum))
        step += 1

        # ------------------------------------------------------------ log
        for k, v in metrics.items():
            if k != "finite":
                history[k] = history.get(k, 0.0) + float(v)
        history["_n"] = history.get("_n", 0.0) + 1
        if _should(step, int(config.logging.every_steps), num_steps):
            n = history.pop("_n")
            means = {k: v / n for k, v in history.items()}
            means.update(progress.rates())
            means["learning_rate"] = lr
            stats = getattr(train_it, "stats", None)
            if stats and stats.get("skipped"):
                means["skipped_records"] = float(stats["skipped"])
            run.log.write(step, "train", means)
            if jax.process_index() == 0:
                logging.info("%s", progress.line(step, means["loss"]))
            history = {}

        # ------------------------------------------------------------ evaluate
        eval_metrics = None
        if int(config.eval.every_steps) > 0 and _should(step, int(config.eval.every_steps),
                                                        num_steps):
            try:
                if not evaluated:
                    logging.info("evaluating split %r (the first pass compiles the eval "
                                 "step)", config.eval.split)
                t0 = time.perf_counter()
                eval_metrics = evaluate(run.eval_step, state, config, run.eval_sharding)
                if not evaluated:
                    logging.info("first evaluation took %.1f s, compilation included",
                                 time.perf_counter() - t0)
                evaluated = True
            except _DataError as e:
                _stop_on_data_error(run, e, None, step, state, saved_at)
            run.log.write(step, config.eval.split, eval_metrics)

        # ------------------------------------------------------------ checkpoint, preemption
        if jax.process_count() > 1:  # all processes must agree on the step
            preempted = ckpt.manager.reached_preemption(step)
        else:
            preempted = preemption.requested
        if (_should(step, int(config.checkpoint.every_steps), num_steps) or preempted
                or (eval_metrics is not None and ckpt.best_metric)):
            saved_at = _save(run, step, state, metrics=eval_metrics)
        if preempted:
            ckpt.wait()
            logging.warning("preempted: checkpoint of step %d written; exiting", step)
            break

    # ---------------------------------------------------------------- shutdown
    if saved_at != step:
        saved_at = _save(run, step, state)
    ckpt.close()
    run.log.close()
    if hasattr(train_it, "close"):  # stops grain's worker processes and their buffers
        train_it.close()
    if jax.process_index() == 0:
        (run.workdir / "status.json").write_text(json.dumps(
            {"step": step, "num_steps": num_steps, "finished": step >= num_steps}) + "\n")
    if step < num_steps:
        raise Interrupted(step, preemption.signal_name or "SIGTERM", ckpt.directory)
    return state
