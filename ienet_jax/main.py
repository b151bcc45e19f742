"""Train IENet or TS-CAN: `python -m ienet_jax.main --config=CONFIG --workdir=DIR [overrides]`.

    python -m ienet_jax.main --config=configs/quickstart.py:tiny --workdir=runs/q \
        --config.train.num_steps=20 --config.data.dir=data/clips

Every config key can be overridden as `--config.section.key=value`; a misspelt key is an
error before anything runs (the config is locked). Re-running with the same workdir
resumes from its latest checkpoint. The console script `ienet-train` is `run()`.

Exit status: 0 when `train.num_steps` are done; 75 (EX_TEMPFAIL) when the run was
interrupted and is resumable: SIGTERM (preemption) or SIGINT (Ctrl-C) checkpoints after the
current step, logs "interrupted … resumable: rerun the same command to continue from step N"
as its last line and exits 75 (a second Ctrl-C aborts at once, without a checkpoint). In a
multi-process run every process stops at the same step (JAX's preemption notice; Ctrl-C is
turned into it) and exits 75. User errors (bad config, dataset not matching the model, a
workdir holding another config's run, a corrupt record — checkpointed first) end with an
error message naming the file or key.

Multi-process runs (see `ienet_jax.parallel.distributed` and `launch/`): `--distributed`
on TPU VMs, under SLURM `srun`, Open MPI `mpirun` or a Kubernetes Job, or
`--coordinator_address=HOST:PORT --num_processes=N --process_id=I` anywhere (what
`launch/local.sh` passes).
"""

from __future__ import annotations

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file, e.g. configs/ienet.py:tiny.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", None, "Persistent XLA compilation cache directory (optional).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Multi-process run with the job detected from the environment "
    "(SLURM, Open MPI, TPU VM, Kubernetes, JAX_COORDINATOR_ADDRESS/JAX_NUM_PROCESSES/"
    "JAX_PROCESS_ID).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-process run: HOST:PORT of process 0's coordinator.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process run: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process run: this process, 0 … N-1.")
_LOCAL_DEVICES = flags.DEFINE_list(
    "local_device_ids", None,
    "GPU ids this process uses (default: all, or its SLURM/Open MPI share).")
_PORT = flags.DEFINE_integer(
    "coordinator_port", None,
    "SLURM, Open MPI: coordinator port (default: derived from the job id).")
_INIT_TIMEOUT = flags.DEFINE_integer(
    "distributed_init_timeout", None, "Seconds for all processes to join, then exit with an "
    "error (default: $IENET_DISTRIBUTED_INIT_TIMEOUT or 300).")
_HEARTBEAT_TIMEOUT = flags.DEFINE_integer(
    "distributed_heartbeat_timeout", None, "Seconds without heartbeats after which a process "
    "counts as dead and the others abort (default: $IENET_DISTRIBUTED_HEARTBEAT_TIMEOUT or 60).")
flags.mark_flags_as_required(["config", "workdir"])
EX_TEMPFAIL = 75  # interrupted, resumable (sysexits.h)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from ienet_jax.parallel import distributed

    distributed.initialize(distributed.resolve(
        enabled=_DISTRIBUTED.value, coordinator_address=_COORDINATOR.value,
        num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value,
        local_device_ids=_LOCAL_DEVICES.value, coordinator_port=_PORT.value,
        init_timeout=_INIT_TIMEOUT.value, heartbeat_timeout=_HEARTBEAT_TIMEOUT.value))
    if _COMPILATION_CACHE.value:
        jax.config.update("jax_compilation_cache_dir", _COMPILATION_CACHE.value)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    from ienet_jax.train.loop import Interrupted, train_and_evaluate

    logging.info("JAX process %d/%d, %d local devices", jax.process_index(),
                 jax.process_count(), jax.local_device_count())
    with distributed.fail_fast():
        try:
            train_and_evaluate(_CONFIG.value, _WORKDIR.value)
        except Interrupted as e:
            logging.warning("%s", e)
            sys.exit(EX_TEMPFAIL)


def _entry(argv) -> None:
    from ienet_jax import cli

    cli.check_output_dir(_WORKDIR.value, "--workdir")
    return main(argv)


def run() -> None:
    """Entry point of the `ienet-train` console script (user errors: one `error:` line, 2)."""
    from ienet_jax import cli

    cli.run(_entry)


if __name__ == "__main__":
    run()
