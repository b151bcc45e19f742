"""Compile the trainer's train step for a TPU or GPU topology on this machine, and size it.

    python -m bench.topology --config=configs/ienet.py:reference [--config.key=value ...] \
        --topology v5p:2x4x4 --topology h100:1x2x8 [--json out.json] [--classes] [--frozen]

No accelerator is needed: JAX compiles ahead of time for the compile-only devices of the
topology (`bench.targets`; install the `aot` extra). What is compiled is the trainer's own
step (`ienet_jax.train.step.compile_steps`) with the trainer's state shardings
(`ienet_jax.train.state.state_shardings` from `mesh.strategy`'s rule tables) and batch
sharding (`ienet_jax.parallel.rules.batch_spec`), on a mesh built from `mesh.*` over the
topology's devices (`ienet_jax.parallel.mesh.create_mesh`), fed `ShapeDtypeStruct`s of the
trainer's synthetic batches. Every config key applies (`mesh.strategy`, `mesh.shape`,
`train.batch_size` = the GLOBAL batch, `model.dtype`, `model.remat`, …); the convolutions
are chosen for the topology's platform, not this CPU (`ienet_jax.models.conv`).

One row per topology (printed, and a JSON list with `--json`): devices, mesh, strategy,
global batch, compile seconds; per device: argument / output / temporary bytes and their
sum (arguments + outputs − aliased + temporaries, XLA's `memory_analysis`) against the
chip's memory; FLOPs and bytes accessed of one step; collectives in the optimised HLO by
kind (count and bytes, `bench.hlo`); a roofline step time = max(FLOPs / peak FLOP/s,
bytes / HBM bandwidth, collective wire bytes / interconnect bandwidth) with the chip
figures of `bench.targets.CHIPS`, the bound that sets it, and the clips/s and model-FLOP
utilisation it implies. On GPUs XLA's cost analysis of the compiled step is unavailable or
counts cuDNN convolutions as 0 FLOPs, and on TPUs a compiled step with while loops
(`bench.hlo.while_loops`: XLA's cost analysis counts a loop body once) under-counts: FLOPs
there are those of the unpartitioned step divided by the device count (`flops_source` says
which; its bytes accessed, counted before
fusion, over-estimate the HBM traffic, so a GPU "memory" bound is pessimistic), and GEMMs
are compiled for cuBLAS (`bench.targets.GPU_COMPILER_OPTIONS`: XLA's Triton GEMMs fail
without a GPU).
The roofline is a lower bound on the step time: it ignores overlap limits, kernel
efficiency and input feeding. A preset batch the data-parallel devices do not divide is
raised to their next multiple (logged; `global_batch` is what was compiled).

Each row also holds `classes`: one step's FLOPs and main-memory bytes by op class
(attention, MLP, layer norms, window partition, …, forward and backward;
`bench.profile.hlo_classes`, from the compiled HLO's kernels and their op names; bytes of
arrays staged in on-chip memory left out), printed with a roofline per class by
`--classes`: where an accelerator's step spends its memory traffic, before renting one. A
Pallas kernel (`--config.model.attention=fused` on TPU) counts with the cost estimate it
was built with (`ienet_jax.models.fused_attention`), in XLA's totals as in `classes`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging
from jax.sharding import NamedSharding, PartitionSpec
from ml_collections import config_flags

from bench import hlo, profile, targets

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config, e.g. configs/ienet.py:reference.", lock_config=True)
_TOPOLOGY = flags.DEFINE_multi_string(
    "topology", None, "Target topology, e.g. v5e:4x4, v5p:2x4x4, h100:1x2x8 (repeatable).")
_JSON = flags.DEFINE_string("json", None, "Also write the rows to this JSON file.")
_FROZEN = flags.DEFINE_bool(
    "frozen", False, "Compile the frozen phase's step (stage 2's first train.freeze_steps "
    "steps) instead of the train step.")
_CLASSES = flags.DEFINE_bool(
    "classes", False, "Also print each step's FLOPs and main-memory bytes by op class "
    "(the row's `classes`: bench.profile's classes, from the compiled HLO) with a roofline "
    "per class.")
flags.mark_flags_as_required(["config", "topology"])


def abstract_batch(config: ml_collections.ConfigDict, sharding: NamedSharding) -> dict:
    """`ShapeDtypeStruct`s of one global training batch (the fields the trainer puts on
    the devices: `ienet_jax.train.inputs.DEVICE_FIELDS` of its synthetic clips)."""
    from ienet_jax.train import inputs

    clip = inputs.SyntheticClips(config.model, 1, 0, config.data.synthetic.fps)[0]
    batch = int(config.train.batch_size)
    return {k: jax.ShapeDtypeStruct((batch, *np.shape(v)), np.asarray(v).dtype,
                                    sharding=sharding)
            for k, v in clip.items() if k in inputs.DEVICE_FIELDS}


def fit_batch(config: ml_collections.ConfigDict, mesh) -> ml_collections.ConfigDict:
    """`config`, or a copy whose `train.batch_size` is raised to the next multiple of the
    mesh's data-parallel ways (logged): a preset's batch (IENet stage 1: 2) cannot be split
    over a pod; pass `--config.train.batch_size` to choose."""
    from ienet_jax.parallel.strategies import data_axes

    ways = int(np.prod([mesh.shape[a] for a in data_axes(mesh)]))
    batch = int(config.train.batch_size)
    if batch % ways == 0:
        return config
    fitted = ml_collections.ConfigDict(config.to_dict())  # train.batch_size drives the rest
    fitted.train.batch_size = -(-batch // ways) * ways
    logging.warning("train.batch_size=%d is not a multiple of the %d data-parallel devices: "
                    "compiling global batch %d", batch, ways, fitted.train.batch_size)
    return fitted


@dataclasses.dataclass
class Lowered:
    """The trainer's train step lowered for a device list, with what sizes it."""

    lowered: object  # jax.stages.Lowered
    mesh: object
    strategy: str
    global_batch: int
    params: int  # parameter count
    state_bytes: object  # ienet_jax.parallel.memory.StateBytes (per device, abstract)
    phase: str = "train"  # or "frozen": the frozen phase's step (`train.freeze_steps`)


def lower_train_step(config: ml_collections.ConfigDict, devices,
                     frozen: bool = False) -> Lowered:
    """The trainer's train step for `config` lowered on a mesh over `devices` (see
    `_lower_train_step`), the model traced for their platform throughout (its
    initialisation too, which the trainer traces on the accelerator itself)."""
    from ienet_jax.models import platform

    with platform.target(devices[0].platform):
        return _lower_train_step(config, devices, frozen)


def _lower_train_step(config: ml_collections.ConfigDict, devices,
                      frozen: bool = False) -> Lowered:
    """The trainer's train step for `config` lowered on a mesh over `devices` (any platform:
    compile-only devices too), without allocating anything. `frozen`: the step of the
    frozen phase instead (stage 2's first `train.freeze_steps` steps: only what
    `train.freeze_pattern` leaves free is differentiated and updated)."""
    from ienet_jax.models import axes, build, contract
    from ienet_jax.parallel.memory import state_bytes_per_device
    from ienet_jax.parallel.mesh import create_mesh
    from ienet_jax.parallel.rules import batch_spec
    from ienet_jax.parallel.strategies import activation_rules, param_rules
    from ienet_jax.train.objectives import check_weights
    from ienet_jax.train.optim import frozen_mask, make_optimizer
    from ienet_jax.train.state import (
        abstract_params,
        abstract_state,
        boxed_abstract_state,
        count_params,
        state_shardings,
    )
    from ienet_jax.train.step import compile_steps, compile_train_step

    # as ienet_jax.train.loop.setup: mesh, rules, model, optimiser, shardings, steps
    mesh = create_mesh(config.mesh, devices)
    rules = param_rules(config.mesh, mesh)
    act_rules = activation_rules(config.mesh, mesh, axes.ALL)
    config = fit_batch(config, mesh)
    data_sharding = NamedSharding(mesh, batch_spec(rules, mesh, int(config.train.batch_size)))
    model = build(config.model)
    weights = check_weights(config.train.loss, config.model)
    if int(config.train.stage) == 2 and not contract.get(config.model).has_hr(config.model):
        raise ValueError("config key train.stage=2 needs an IENet with model.fee.enabled=True")
    params_shape = abstract_params(model, config.model)
    tx = make_optimizer(config.train, params_shape)
    boxed = boxed_abstract_state(model, config.model, tx)
    shardings = state_shardings(model, config.model, tx, mesh, rules, boxed)
    state = abstract_state(shardings, model, config.model, tx, boxed)
    common = dict(model=model, model_config=config.model, tx=tx, weights=weights, mesh=mesh,
                  state_shardings=shardings, batch_spec=data_sharding.spec,
                  activation_rules=act_rules,
                  pearson_band_hz=tuple(config.train.loss.pearson_band_hz))
    if frozen:
        mask = frozen_mask(config.train, params_shape)
        if mask is None:
            raise ValueError("config key train.freeze_steps=0: this config has no frozen "
                             "phase to compile (--frozen needs a stage-2 preset)")
        train_step = compile_train_step(**common, frozen_mask=mask)
    else:
        train_step, _ = compile_steps(**common)
    rng = jax.ShapeDtypeStruct((2,), np.uint32, sharding=NamedSharding(mesh, PartitionSpec()))
    lowered = train_step.lower(state, abstract_batch(config, data_sharding), rng)
    return Lowered(lowered, mesh, str(config.mesh.strategy), int(config.train.batch_size),
                   count_params(state.params), state_bytes_per_device(state),
                   "frozen" if frozen else "train")


def _cost(compiled) -> dict:
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else None
    return dict(cost or {})


def unpartitioned_cost(lowered) -> dict:
    """XLA's cost analysis of the whole (unpartitioned) step, as the CPU counts it."""
    from jax._src.lib import _jax

    module = lowered.compiler_ir("hlo").get_hlo_module()
    cpu = jax.devices("cpu")[0].client
    return dict(_jax.hlo_module_cost_analysis(cpu, module))


def roofline(flops: float, bytes_accessed: float, wire_bytes: float, target: targets.Target,
             dtype: str) -> dict:
    """Step-time lower bound (s) and its parts; which bound sets it."""
    chip = target.chip
    parts = {"compute": flops / chip.peak_flops[dtype],
             "memory": bytes_accessed / chip.memory_bytes_per_s,
             "interconnect": wire_bytes / target.interconnect_bytes_per_s}
    bound = max(parts, key=parts.get)
    return {"step_time_estimate_s": parts[bound], "bound": bound,
            **{f"{k}_time_s": v for k, v in parts.items()}}


def analyse(config: ml_collections.ConfigDict, name: str,
            low: Lowered | None = None, frozen: bool = False) -> tuple[dict, str]:
    """Compile `config`'s train step (`frozen`: its frozen phase's) for topology `name`:
    its row (see the module docstring) and its optimised HLO text. `low`: the step already
    lowered for `name`'s devices (`lower_train_step`), else it is lowered here."""
    target = targets.parse(name)
    devices = targets.devices(target)
    low = lower_train_step(config, devices, frozen) if low is None else low
    start = time.perf_counter()
    compiled = low.lowered.compile(compiler_options=target.compiler_options or None)
    compile_s = time.perf_counter() - start
    n = len(devices)
    mem = compiled.memory_analysis()
    total = (mem.argument_size_in_bytes + mem.output_size_in_bytes
             - mem.alias_size_in_bytes + mem.temp_size_in_bytes)
    text = compiled.as_text()
    coll = hlo.collectives(text)
    cost = _cost(compiled) if target.chip.platform == "tpu" else {}
    loops = hlo.while_loops(text)
    module = profile.HloModule(text)
    if "flops" in cost and not loops:
        flops, flops_source = float(cost["flops"]), "compiled step (per device)"
        bytes_accessed = float(cost.get("bytes accessed", 0.0))
    else:
        whole = unpartitioned_cost(low.lowered)
        flops = float(whole.get("flops", 0.0)) / n
        bytes_accessed = float(whole.get("bytes accessed", 0.0)) / n
        flops_source = f"unpartitioned step / {n} devices"
        kernels = profile.kernel_flops(module)  # which the CPU's count sees as 0
        if kernels:
            flops += kernels
            flops_source += f" + {kernels / 1e9:.1f} GFLOP of Pallas kernels (their estimates)"
        if "flops" in cost:  # the compiled count misses all but one trip of each loop
            flops_source += (f" (the compiled step's {loops} while loops count once in "
                             f"XLA's cost analysis: {float(cost['flops']) / 1e9:.1f} GFLOP)")
    dtype = str(config.model.get("dtype", "float32"))
    roof = roofline(flops, bytes_accessed, hlo.wire_bytes(coll), target, dtype)
    step_s = roof["step_time_estimate_s"]
    peak = target.chip.peak_flops[dtype]
    row = {
        "topology": target.name, "chip": target.chip.name, "devices": n,
        "mesh": {k: int(v) for k, v in low.mesh.shape.items()}, "strategy": low.strategy,
        "model": config.model.name, "variant": str(config.get("variant", "")),
        "stage": int(config.train.stage), "phase": low.phase, "dtype": dtype,
        "remat": bool(config.model.get("remat", False)),
        "attention": str(config.model.get("attention", "")), "params": low.params,
        "global_batch": low.global_batch, "compile_s": compile_s,
        "bytes_per_device": int(total),
        "argument_bytes": int(mem.argument_size_in_bytes),
        "output_bytes": int(mem.output_size_in_bytes),
        "alias_bytes": int(mem.alias_size_in_bytes),
        "temp_bytes": int(mem.temp_size_in_bytes),
        "state_bytes_per_device": {"params": low.state_bytes.params,
                                   "opt_state": low.state_bytes.opt_state,
                                   "batch_stats": low.state_bytes.batch_stats},
        "device_memory_bytes": int(target.chip.memory_bytes),
        "memory_fraction": total / target.chip.memory_bytes,
        "flops_per_device": flops, "flops_source": flops_source,
        "bytes_accessed_per_device": bytes_accessed,
        "collectives": {k: c.count for k, c in coll.items()},
        "collective_bytes": {k: c.bytes for k, c in coll.items()},
        **roof,
        "clips_per_s": low.global_batch / step_s if step_s > 0 else float("inf"),
        "mfu": flops / (step_s * peak) if step_s > 0 else 0.0,
        "peak_flops": peak, "chip_source": target.chip.source,
        "classes": profile.hlo_classes(module),
    }
    return row, text


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table (bytes in MiB per device)."""
    head = (f"{'topology':<12}{'dev':>5} {'mesh':<18}{'strategy':<9}{'batch':>6}{'comp s':>7}"
            f"{'args':>7}{'temp':>7}{'total':>8}{'%mem':>6}{'GFLOP':>9}{'GB acc':>8}"
            f"{'est ms':>8} {'bound':<12}{'clips/s':>9}{'MFU':>5}  collectives")
    lines = [head, "-" * len(head)]
    for r in rows:
        mesh = "x".join(f"{k}{v}" for k, v in r["mesh"].items() if v > 1) or "1"
        coll = ", ".join(f"{k} {v}" for k, v in r["collectives"].items() if v)
        lines.append(
            f"{r['topology']:<12}{r['devices']:>5} {mesh:<18}{r['strategy']:<9}"
            f"{r['global_batch']:>6}{r['compile_s']:>7.0f}{_mib(r['argument_bytes']):>7}"
            f"{_mib(r['temp_bytes']):>7}{_mib(r['bytes_per_device']):>8}"
            f"{100 * r['memory_fraction']:>6.1f}{r['flops_per_device'] / 1e9:>9.1f}"
            f"{r['bytes_accessed_per_device'] / 1e9:>8.2f}"
            f"{1e3 * r['step_time_estimate_s']:>8.2f} {r['bound']:<12}"
            f"{r['clips_per_s']:>9.0f}{100 * r['mfu']:>4.0f}%  {coll or '-'}")
    return "\n".join(lines)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    rows = []
    for name in _TOPOLOGY.value:
        logging.info("compiling the train step of %s for %s", config.model.name, name)
        row = analyse(config, name, frozen=_FROZEN.value)[0]
        rows.append(row)
        print(format_table(rows[-1:]).splitlines()[-1] if len(rows) > 1
              else format_table(rows), flush=True)
        if _CLASSES.value:
            chip = targets.parse(name).chip
            print(f"{name}: the compiled step by op class (bytes: each kernel's operands and "
                  "result, before any overlap)\n" + profile.format_classes(
                      row["classes"], row["peak_flops"], chip.memory_bytes_per_s), flush=True)
        if _JSON.value:  # after each row: a long run keeps what it has compiled
            Path(_JSON.value).write_text(json.dumps(rows, indent=2) + "\n")
    for r in rows:
        if not r["flops_source"].startswith("compiled"):
            print(f"{r['topology']}: FLOPs and bytes accessed from the {r['flops_source']} "
                  "(XLA:GPU's compiled cost analysis is unavailable; a TPU step's loops "
                  "under-count)")
    print("chip figures: " + "; ".join(sorted({r["chip_source"] for r in rows})))


def run() -> None:
    from ienet_jax import cli

    # compile-only devices; never open a local accelerator (before any JAX back-end starts)
    jax.config.update("jax_platforms", "cpu")
    cli.run(main)


if __name__ == "__main__":
    sys.exit(run())
