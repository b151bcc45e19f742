"""Multi-process start-up: `jax.distributed.initialize()` from flags, Open MPI, SLURM or JAX.

`resolve(...)` turns the flags of `python -m ienet_jax.main` and the environment into a
`Spec` (no side effects, unit-tested); `initialize(spec)` joins the job before any other
JAX call. The first source that applies wins:

1. flags: `--coordinator_address=HOST:PORT --num_processes=N --process_id=I` (each may
   come from `JAX_COORDINATOR_ADDRESS` / `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID` instead);
   what `launch/local.sh` passes.
2. Open MPI 4 (`--distributed` under `mpirun`): coordinator, process count and id from
   JAX's own detection (`jax_detects`, JAX's `OmpiCluster`: the launcher's address from
   `OMPI_MCA_orte_hnp_uri`, `OMPI_COMM_WORLD_SIZE`, `OMPI_COMM_WORLD_RANK`); the local
   devices here (`local_share` of `OMPI_COMM_WORLD_LOCAL_RANK` of `…_LOCAL_SIZE`): JAX gives
   every rank one GPU, so one rank per node would drive one of its eight. Checked before
   SLURM: `mpirun` inside a SLURM allocation starts its daemons with `srun`, whose
   `SLURM_PROCID` counts nodes, not ranks.
3. SLURM (`--distributed` under `srun`): `SLURM_STEP_NUM_TASKS` (else `SLURM_NTASKS`),
   `SLURM_PROCID`, and the coordinator on the first host of `SLURM_STEP_NODELIST` (else
   `SLURM_JOB_NODELIST`, `SLURM_NODELIST`) — compressed lists such as `gpu[01-04,07]` are
   expanded here, no `scontrol` — at `--coordinator_port` (else `IENET_COORDINATOR_PORT`,
   else a port derived from `SLURM_JOB_ID`). Several tasks on one node share its GPUs
   (`SLURM_LOCALID`-th share); one task per node drives all of them. Kept here rather than
   JAX's `SlurmCluster` because tests/test_parallel_distributed.py shows JAX's result wrong
   there: it takes `h008` from `h[008-010]-ib` and `r1` from `r[1-2]n[1-2]`, and gives
   every task the GPU numbered by its local id (one task per node drives one GPU; a task
   bound to its own GPU by `--gpus-per-task` asks for one it cannot see).
4. auto (`--distributed` elsewhere): JAX detects the job itself: Cloud TPU VMs (GCE, and
   GKE JobSets through `TPU_WORKER_HOSTNAMES`/`TPU_WORKER_ID`, multi-slice through
   `MEGASCALE_*`), Kubernetes Indexed Jobs and single-Job JobSets (needs `pip install
   'jax[k8s]'` and a service account that may read pods; JAX's mpi4py detection is opt-in
   and not used).

With none of them (no flag, no `--distributed`) the run is single-process and nothing is
initialised; a resolved process count of 1 is single-process too.

Failures end in bounded time instead of hanging:
- a peer that does not join within `--distributed_init_timeout` seconds (env
  `IENET_DISTRIBUTED_INIT_TIMEOUT`, default 300): exit 1 with an error naming the
  coordinator address, this process id, the process count and the timeout;
- a peer that dies mid-run stops sending heartbeats; JAX's coordination service aborts
  every other process after `--distributed_heartbeat_timeout` seconds (env
  `IENET_DISTRIBUTED_HEARTBEAT_TIMEOUT`, default 60) — if process 0 dies, at once;
- a Python exception in one process (`fail_fast`): the process logs it and exits 1 at
  once, rather than waiting (up to 300 s) in JAX's shutdown barrier for peers that are
  themselves blocked in a collective with it; those then fail by the heartbeat rule (or
  at once, by the error of the collective that lost its peer);
- processes that drift apart while compiling: `barrier` (coordination service, 1 h) before
  the first orbax sync and each compiled step's first run, since on CPU all processes must
  reach a new gloo collective within 30 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence

import jax
from absl import logging

INIT_TIMEOUT_ENV = "IENET_DISTRIBUTED_INIT_TIMEOUT"
HEARTBEAT_TIMEOUT_ENV = "IENET_DISTRIBUTED_HEARTBEAT_TIMEOUT"
PORT_ENV = "IENET_COORDINATOR_PORT"
DEFAULT_INIT_TIMEOUT = 300  # seconds
DEFAULT_HEARTBEAT_TIMEOUT = 60  # seconds (JAX's default is 100)
# JAX's own connect deadline comes this much after ours, so ours (with the clear message)
# fires first and JAX's fatal DEADLINE_EXCEEDED abort is only a backstop.
_BACKSTOP = 30

# (flag, environment variable) each field can come from, for error messages
_SOURCES = {
    "coordinator_address": ("--coordinator_address", "JAX_COORDINATOR_ADDRESS"),
    "num_processes": ("--num_processes", "JAX_NUM_PROCESSES"),
    "process_id": ("--process_id", "JAX_PROCESS_ID"),
}


@dataclasses.dataclass(frozen=True)
class Spec:
    """How to join the job. `None` fields (source "auto") are left to JAX to detect."""

    coordinator_address: str | None
    num_processes: int | None
    process_id: int | None
    local_device_ids: tuple[int, ...] | None
    source: str  # "flags", "environment", "Open MPI", "SLURM" or "auto"
    init_timeout: int  # seconds for all processes to join
    heartbeat_timeout: int  # seconds without heartbeats before a process counts as dead

    def describe(self) -> str:
        if self.source == "auto":
            return "coordinator, process count and id auto-detected by JAX (TPU VM, K8s, …)"
        return (f"coordinator {self.coordinator_address}, process {self.process_id} of "
                f"{self.num_processes} (from {self.source})")


# ---------------------------------------------------------------- SLURM parsing
def _split_top_level(text: str) -> list[str]:
    """`text` split on the commas outside brackets: `a[1,2],b` → `["a[1,2]", "b"]`."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth not in (0, 1):
            raise ValueError(f"nested or unbalanced brackets in SLURM node list {text!r}")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"unbalanced brackets in SLURM node list {text!r}")
    parts.append(text[start:])
    return [p for p in parts if p]


def _expand_host(item: str, nodelist: str) -> list[str]:
    m = re.search(r"\[([^\]]*)\]", item)
    if m is None:
        return [item]
    values = []
    for part in m.group(1).split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"bad range {part!r} in SLURM node list {nodelist!r}: expected "
                             "N or N-M")
        if dash:
            if int(hi) < int(lo):
                raise ValueError(f"empty range {part!r} in SLURM node list {nodelist!r}")
            values += [f"{n:0{len(lo)}d}" for n in range(int(lo), int(hi) + 1)]
        else:
            values.append(lo)
    head, tail = item[:m.start()], item[m.end():]
    return [head + v + rest for v in values for rest in _expand_host(tail, nodelist)]


def expand_nodelist(nodelist: str) -> list[str]:
    """Host names of a (compressed) SLURM node list, in order.

    `"node[01-03,07],gpu-a1"` → `["node01", "node02", "node03", "node07", "gpu-a1"]`;
    zero padding is kept and several bracket groups expand as a product
    (`"r[1-2]n[1-2]"` → `r1n1 r1n2 r2n1 r2n2`).
    """
    hosts = [h for item in _split_top_level(nodelist.strip())
             for h in _expand_host(item, nodelist)]
    if not hosts:
        raise ValueError(f"empty SLURM node list {nodelist!r}")
    return hosts


def expand_tasks_per_node(value: str) -> list[int]:
    """SLURM's tasks-per-node list: `"2(x3),1"` → `[2, 2, 2, 1]`."""
    counts = []
    for part in value.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if m is None:
            raise ValueError(f"bad SLURM tasks-per-node list {value!r}: expected e.g. 2(x3),1")
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts


def _first(env: Mapping[str, str], *names: str) -> tuple[str | None, str | None]:
    for name in names:
        if env.get(name):
            return env[name], name
    return None, None


def _tasks_on_this_node(env: Mapping[str, str]) -> int | None:
    per_node, _ = _first(env, "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE")
    if per_node is not None:
        counts = expand_tasks_per_node(per_node)
        node = int(env.get("SLURM_NODEID", 0))
        return counts[node] if node < len(counts) else counts[-1]
    per_node, _ = _first(env, "SLURM_NTASKS_PER_NODE")
    return int(per_node) if per_node is not None else None


def local_share(local: int, tasks: int | None, env: Mapping[str, str]) -> tuple[int, ...] | None:
    """Local task `local` of `tasks` on its node: its share of the node's GPUs, or None
    (all visible ones).

    Several tasks on a node whose GPUs they all see (no per-task binding) split them:
    task `local` of `tasks` takes the `local`-th of `tasks` equal shares of the
    `CUDA_VISIBLE_DEVICES` list (one GPU each if the list is unset). If the launcher
    already bound fewer GPUs than tasks to each task, or one task runs per node: None.
    """
    if tasks is None or tasks <= 1:
        return None
    visible, _ = _first(env, "CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")
    if visible is None:
        return (local,)
    n = len([v for v in visible.split(",") if v.strip()])
    if n < tasks:  # bound per task by the launcher (e.g. --gpus-per-task): use what is visible
        return None
    share = n // tasks
    return tuple(range(local * share, (local + 1) * share))


def slurm_local_devices(env: Mapping[str, str]) -> tuple[int, ...] | None:
    """This SLURM task's `local_share` (`SLURM_LOCALID` of the node's tasks), or None."""
    local, _ = _first(env, "SLURM_LOCALID")
    if local is None:
        return None
    return local_share(_int(local, "SLURM_LOCALID"), _tasks_on_this_node(env), env)


def slurm_values(env: Mapping[str, str], port: int | None = None) -> dict | None:
    """`{coordinator_address, num_processes, process_id, local_device_ids}` from SLURM
    variables, or None outside a SLURM step (see the module docstring)."""
    ntasks, ntasks_var = _first(env, "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS")
    procid, _ = _first(env, "SLURM_PROCID")
    nodelist, nodelist_var = _first(env, "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST",
                                    "SLURM_NODELIST")
    if ntasks is None or procid is None or nodelist is None:
        return None
    try:
        host = expand_nodelist(nodelist)[0]
    except ValueError as err:
        raise ValueError(f"{nodelist_var}: {err}") from err
    if port is None:
        text, _ = _first(env, PORT_ENV)
        if text is not None:
            port = _int(text, PORT_ENV)
        else:
            job, _ = _first(env, "SLURM_JOB_ID", "SLURM_JOBID")
            # as JAX does: one port per job in [61440, 65535]
            port = 61440 + _int(job, "SLURM_JOB_ID") % 4096 if job else 61440
    return dict(coordinator_address=f"{host}:{port}", num_processes=_int(ntasks, ntasks_var),
                process_id=_int(procid, "SLURM_PROCID"),
                local_device_ids=slurm_local_devices(env))


# ---------------------------------------------------------------- JAX's own detection
@contextlib.contextmanager
def _environ(env: Mapping[str, str]):
    """`os.environ` is `env` inside (JAX's cluster classes read nothing else)."""
    if env is os.environ:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def jax_detects(env: Mapping[str, str] | None = None, clusters: Sequence[str] = ("ompi",),
                port: int | None = None) -> dict | None:
    """What `jax.distributed.initialize()` would detect in `env` with the first present of
    JAX's cluster classes named in `clusters` (`jax/_src/clusters`: "ompi", "slurm",
    "gketpu", …), without connecting: `{cluster, coordinator_address, num_processes,
    process_id, local_device_ids}`, or None. `port` (else `JAX_COORDINATOR_PORT`)
    replaces JAX's derived coordinator port. Only for clusters that read environment
    variables alone (not "gcetpu"/"K8sCluster", which ask a metadata server or the API).
    """
    from jax._src import clusters as jax_clusters

    env = os.environ if env is None else env
    with _environ(env):
        for cls in jax_clusters.ClusterEnv._cluster_types:
            if cls.name not in clusters or not cls.is_env_present():
                continue
            override = str(port) if port is not None else os.environ.get("JAX_COORDINATOR_PORT")
            local = cls.get_local_process_id()
            return dict(cluster=cls.name,
                        coordinator_address=cls.get_coordinator_address(None, override),
                        num_processes=int(cls.get_process_count()),
                        process_id=int(cls.get_process_id()),
                        local_device_ids=None if local is None else (int(local),))
    return None


def ompi_values(env: Mapping[str, str], port: int | None = None) -> dict | None:
    """`{coordinator_address, num_processes, process_id, local_device_ids}` under Open MPI's
    `mpirun` (JAX's detection, our local devices), or None (see the module docstring)."""
    found = jax_detects(env, ("ompi",), port)
    if found is None:
        return None
    local, _ = _first(env, "OMPI_COMM_WORLD_LOCAL_RANK")
    tasks, _ = _first(env, "OMPI_COMM_WORLD_LOCAL_SIZE")
    found["local_device_ids"] = None if local is None else local_share(
        _int(local, "OMPI_COMM_WORLD_LOCAL_RANK"),
        None if tasks is None else _int(tasks, "OMPI_COMM_WORLD_LOCAL_SIZE"), env)
    del found["cluster"]
    return found


def _launcher_values(env: Mapping[str, str], port: int | None) -> dict | None:
    """Open MPI's values, else SLURM's (with a "source" key), else None."""
    if port is None and env.get(PORT_ENV):
        port = _int(env[PORT_ENV], PORT_ENV)
    for source, values in (("Open MPI", ompi_values), ("SLURM", slurm_values)):
        if (found := values(env, port)) is not None:
            return dict(found, source=source)
    return None


# ---------------------------------------------------------------- resolution
def _int(text, what: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValueError(f"{what}={text!r}: expected an integer") from None


def _seconds(value: int | None, env: Mapping[str, str], name: str, default: int,
             flag: str) -> int:
    if value is None:
        value = _int(env[name], name) if env.get(name) else default
    if int(value) <= 0:
        raise ValueError(f"{flag} (or {name}) = {value}: expected a positive number of seconds")
    return int(value)


def resolve(*, enabled: bool = False, coordinator_address: str | None = None,
            num_processes: int | None = None, process_id: int | None = None,
            local_device_ids: Sequence[int] | None = None, coordinator_port: int | None = None,
            init_timeout: int | None = None, heartbeat_timeout: int | None = None,
            env: Mapping[str, str] | None = None) -> Spec | None:
    """The `Spec` to join, or None for a single-process run (see the module docstring).

    `enabled` is `--distributed`; any of `coordinator_address`, `num_processes`,
    `process_id` implies it. `env` defaults to `os.environ`. Errors name the flag or
    environment variable at fault.
    """
    env = os.environ if env is None else env
    init_timeout = _seconds(init_timeout, env, INIT_TIMEOUT_ENV, DEFAULT_INIT_TIMEOUT,
                            "--distributed_init_timeout")
    heartbeat_timeout = _seconds(heartbeat_timeout, env, HEARTBEAT_TIMEOUT_ENV,
                                 DEFAULT_HEARTBEAT_TIMEOUT, "--distributed_heartbeat_timeout")
    flags = dict(coordinator_address=coordinator_address, num_processes=num_processes,
                 process_id=process_id)
    from_flags = any(v is not None for v in flags.values())
    if not (enabled or from_flags):
        return None
    values, where = {}, {}
    for key, value in flags.items():
        flag, var = _SOURCES[key]
        if value is not None:
            values[key], where[key] = value, flag
        elif env.get(var):
            values[key], where[key] = env[var], var
    local = tuple(int(i) for i in local_device_ids) if local_device_ids else None
    if len(values) == 3:
        source = "flags" if from_flags else "environment"
    elif (found := _launcher_values(env, coordinator_port)) is not None:
        source = found.pop("source")
        for key in flags:
            if key not in values:
                values[key], where[key] = found[key], source
        local = local if local is not None else found["local_device_ids"]
    elif values:
        missing = [f"{_SOURCES[k][0]} (or {_SOURCES[k][1]})" for k in flags if k not in values]
        raise ValueError(f"multi-process run: {', '.join(where.values())} given, but not "
                         f"{', '.join(missing)}; coordinator address, process count and "
                         "process id go together (outside Open MPI, SLURM and TPU VMs)")
    else:
        return Spec(None, None, None, local, "auto", init_timeout, heartbeat_timeout)

    address = str(values["coordinator_address"]).strip()
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{where['coordinator_address']}={address!r}: expected HOST:PORT")
    n = _int(values["num_processes"], where["num_processes"])
    pid = _int(values["process_id"], where["process_id"])
    if n < 1:
        raise ValueError(f"{where['num_processes']}={n}: expected at least 1 process")
    if not 0 <= pid < n:
        raise ValueError(f"{where['process_id']}={pid}: expected 0 … {n - 1} "
                         f"({where['num_processes']}={n})")
    if n == 1:
        return None
    return Spec(address, n, pid, local, source, init_timeout, heartbeat_timeout)


# ---------------------------------------------------------------- start-up
def _exit_now(status: int) -> None:
    """End the process without atexit handlers (JAX's shutdown barrier), logs flushed."""
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _give_up(spec: Spec) -> None:
    """Watchdog: the job did not form in time. Runs in a thread; ends the process."""
    if spec.source == "auto":
        what = (f"could not join the multi-process job (coordinator, process count and id "
                f"auto-detected by JAX) within {spec.init_timeout} s")
        hint = ("check that every worker runs the same command (e.g. gcloud ... ssh "
                "--worker=all) or pass --coordinator_address/--num_processes/--process_id")
    else:
        host = spec.coordinator_address.rpartition(":")[0]
        what = (f"process {spec.process_id} of {spec.num_processes} could not join the job "
                f"at coordinator {spec.coordinator_address} (from {spec.source}) within "
                f"{spec.init_timeout} s")
        hint = (f"check that all {spec.num_processes} processes were started with this "
                f"coordinator address and distinct process ids 0 … {spec.num_processes - 1}, "
                f"that process 0 runs on {host} and that its port is reachable from here "
                "(under SLURM: launched with srun?)")
    logging.error("distributed: %s (--distributed_init_timeout / %s); %s. Exiting.", what,
                  INIT_TIMEOUT_ENV, hint)
    _exit_now(1)


def initialize(spec: Spec | None) -> None:
    """Join the job described by `spec` (None: single process, nothing to do).

    Must run before any other JAX call. Exits the process (status 1, see the module
    docstring) if the job does not form within `spec.init_timeout` seconds.
    """
    if spec is None:
        return
    logging.info("distributed: joining (%s); init timeout %d s, heartbeat timeout %d s",
                 spec.describe(), spec.init_timeout, spec.heartbeat_timeout)
    watchdog = threading.Timer(spec.init_timeout, _give_up, args=(spec,))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(
            coordinator_address=spec.coordinator_address, num_processes=spec.num_processes,
            process_id=spec.process_id, local_device_ids=spec.local_device_ids,
            # resolved here: JAX must not re-detect (e.g. SLURM's one GPU per process)
            cluster_detection_method=None if spec.source == "auto" else "deactivate",
            initialization_timeout=spec.init_timeout + _BACKSTOP,
            heartbeat_timeout_seconds=spec.heartbeat_timeout)
    except ValueError as err:
        if spec.source != "auto":
            raise
        raise ValueError(f"--distributed: JAX found no multi-process environment ({err}); "
                         "outside TPU VMs, Kubernetes, SLURM and Open MPI pass "
                         "--coordinator_address, --num_processes and --process_id") from err
    finally:
        watchdog.cancel()
    logging.info("distributed: process %d of %d, %d local / %d global devices",
                 jax.process_index(), jax.process_count(), jax.local_device_count(),
                 jax.device_count())


_barriers = itertools.count()


def barrier(name: str, timeout: int = 3600) -> None:
    """Every process waits here for the others (up to `timeout` s), without a collective.

    Uses JAX's coordination service, so it works before any device collective exists.
    Needed on CPU: a gloo communicator forms at its first collective, and all processes
    must reach that within 30 s (a fixed deadline in XLA), while one process may still be
    compiling (on CPU the persistent compilation cache only ever hits for process 0: the
    cache key includes each process's topology fingerprint). No-op in single-process runs.
    """
    if not jax.distributed.is_initialized() or jax.process_count() == 1:
        return
    from jax._src import distributed as jax_distributed

    client = jax_distributed.global_state.client
    barrier_id = f"ienet_jax/{name}/{next(_barriers)}"
    logging.info("distributed: waiting for all processes at %s", barrier_id)
    client.wait_at_barrier(barrier_id, int(timeout * 1000))


@contextlib.contextmanager
def fail_fast():
    """In a multi-process run, an exception inside ends this process at once (exit 1).

    Without it a failing process waits in JAX's shutdown barrier (up to 300 s) while its
    peers wait for it in their next collective. Exiting makes its heartbeats stop, so
    the peers abort within the heartbeat timeout. Single-process runs: no effect.
    """
    try:
        yield
    except (Exception, KeyboardInterrupt):
        if not (jax.distributed.is_initialized() and jax.process_count() > 1):
            raise
        logging.exception("process %d of %d failed; exiting now so that the other "
                          "processes stop too", jax.process_index(), jax.process_count())
        _exit_now(1)
