"""The trainer's IENet eval and train steps, benchmarked on this machine.

    python -m bench.model [--variant reference] [--batch 1 2] [--repeats 5]
        [--conv-impl auto|taps|scan|xla] [--attention einsum|dot_product]
        [--dtype float32|bfloat16] [--context on|off] [--remat] [--stage 1|2]
        [--json out.json]

The steps are the trainer's own (`trainer_steps`: `configs/ienet.py:VARIANT` stage 1, its
loss, optimiser and shardings, `ienet_jax.train.step.compile_steps` on the state of
`ienet_jax.train.state.create_train_state`, a batch of the trainer's synthetic clips): the
eval step (forward, loss, HR) and the train step (forward, backward, optimiser update);
with `--stage 2` (the `reference_stage2` preset) also the frozen phase's train step, which
differentiates only the FEE head (the first 80 % of a stage-2 run).
Per batch size: compile time, median wall time of ≥ `--repeats` runs after compilation,
XLA's FLOP count (`compiled.cost_analysis()`), achieved FLOP/s, XLA's memory analysis
(arguments + outputs + temporaries) and the process's max RSS; plus a 2048² float32
matmul reference GFLOP/s measured in the same run. Other processes sharing the CPU
inflate the times: note the load average printed at the start.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(repeats: int = 5, n: int = 2048) -> float:
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), np.float32))
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    return 2 * n**3 / median_time(lambda: f(a), repeats) / 1e9


def flops_of(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


def memory_of(compiled) -> float:
    """XLA's estimate of peak device memory (arguments + outputs + temporaries), bytes."""
    mem = compiled.memory_analysis()
    if mem is None:
        return float("nan")
    return float(mem.argument_size_in_bytes + mem.output_size_in_bytes
                 + mem.temp_size_in_bytes - mem.alias_size_in_bytes)


def max_rss_bytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def measure(name: str, step, args: tuple, repeats: int, count_step=None) -> dict:
    """Compile, time and cost the trainer's `step` (`ienet_jax.train.step.Compiled`) on `args`.

    A train step donates its state: each run takes the previous run's new state. FLOPs come
    from `count_step` (the same step over unrolled "taps" convolutions, lowered but not
    compiled) if given: XLA counts a `lax.scan` body once.
    """
    start = time.perf_counter()
    compiled = step.lower(*args).compile()
    compile_s = time.perf_counter() - start
    flops = flops_of(compiled)
    if count_step is not None:
        flops = flops_of(count_step.lower(*args))
    donates = name in ("train step", "frozen step")
    args = list(args)
    if donates:  # the caller's state stays valid for the next step measured
        args[0] = jax.tree.map(jnp.copy, args[0])

    def run():
        out = compiled(*args)
        if donates:
            args[0] = out[0]
        return out

    jax.block_until_ready(run())  # warm-up
    seconds = median_time(run, repeats)
    return {
        "what": name, "compile_s": compile_s, "median_s": seconds, "gflop": flops / 1e9,
        "gflops_per_s": flops / seconds / 1e9, "xla_peak_mib": memory_of(compiled) / 2**20,
        "max_rss_mib": max_rss_bytes() / 2**20,
    }


def trainer_config(variant: str = "reference", batch: int = 1, conv_impl: str = "auto",
                   attention: str = "einsum", dtype: str = "float32", remat: bool = False,
                   context: str | None = None, stage: int = 1,
                   cpu_ynn_fusion: str = "default") -> ml_collections.ConfigDict:
    """`configs/ienet.py:VARIANT` (stage 1: the reference's loss and optimiser; stage 2: the
    `reference_stage2` preset, FEE on and the stage-1 network frozen) at global batch
    `batch`, on synthetic clips, with the model options given.

    `context` "on"/"off" overrides `model.context.enabled` (None: the variant's).
    """
    from configs import ienet

    config = ienet.get_config(variant if stage == 1 else f"{variant},reference_stage2")
    model = config.model
    model.conv_impl = conv_impl
    model.attention = attention
    model.dtype = dtype
    model.remat = remat
    if context is not None:
        model.context.enabled = context == "on"
    config.train.batch_size = batch
    config.train.cpu_ynn_fusion = cpu_ynn_fusion
    config.data.synthetic.num_clips = batch
    return config


def trainer_steps(config: ml_collections.ConfigDict) -> dict:
    """The trainer's steps set up as `ienet_jax.train.loop` does: mesh, rules, model, optimiser,
    sharded state (`create_train_state`), `compile_steps`, one device batch of its synthetic
    clips. Returns `train_step`, `eval_step`, `frozen_step` (the frozen phase's train step,
    None without `train.freeze_steps`), `state`, `batch`, `rng`, `config` and
    `count_steps` (the steps over unrolled convolutions if the model's resolve to "scan",
    else None: see `measure`)."""
    from ienet_jax.models import axes, build
    from ienet_jax.models.conv import _resolve
    from ienet_jax.parallel.mesh import create_mesh
    from ienet_jax.parallel.rules import batch_spec
    from ienet_jax.parallel.strategies import activation_rules, param_rules
    from ienet_jax.train import inputs
    from ienet_jax.train.objectives import check_weights
    from ienet_jax.train.optim import frozen_mask, make_optimizer
    from ienet_jax.train.state import abstract_params, create_train_state, trace_init
    from ienet_jax.train.step import compile_steps, compile_train_step, compiler_options

    mesh = create_mesh(config.mesh)
    rules = param_rules(config.mesh, mesh)
    act_rules = activation_rules(config.mesh, mesh, axes.ALL)
    sharding = NamedSharding(mesh, batch_spec(rules, mesh, int(config.train.batch_size)))
    model = build(config.model)
    weights = check_weights(config.train.loss, config.model)
    init = trace_init(model, config.model)
    params_shape = abstract_params(model, config.model, init)
    tx = make_optimizer(config.train, params_shape)
    mask = frozen_mask(config.train, params_shape)
    state, shardings = create_train_state(model, config.model, tx, mesh, rules, int(config.seed),
                                          init)

    band = tuple(config.train.loss.pearson_band_hz)
    options = compiler_options(config.train)

    def steps(module):
        train, evaluate = compile_steps(
            model=module, model_config=config.model, tx=tx, weights=weights, mesh=mesh,
            state_shardings=shardings, batch_spec=sharding.spec, activation_rules=act_rules,
            eval_batch_spec=sharding.spec, pearson_band_hz=band, compiler_options=options)
        frozen = None if mask is None else compile_train_step(
            model=module, model_config=config.model, tx=tx, weights=weights, mesh=mesh,
            state_shardings=shardings, batch_spec=sharding.spec, activation_rules=act_rules,
            pearson_band_hz=band, frozen_mask=mask, compiler_options=options)
        return train, evaluate, frozen

    train_step, eval_step, frozen_step = steps(model)
    count_steps = None
    if _resolve(config.model.conv_impl, 3) == "scan":
        taps = config.model.copy_and_resolve_references()
        taps.conv_impl = "taps"
        count_steps = steps(build(taps))
    batch = inputs.to_device(next(inputs.train_iterator(config)), sharding)
    return dict(train_step=train_step, eval_step=eval_step, frozen_step=frozen_step,
                state=state, batch=batch, rng=jax.random.PRNGKey(0), config=config,
                count_steps=count_steps)


WHAT = ("eval step", "train step", "frozen step")


def run_batch(steps: dict, repeats: int, what: tuple[str, ...] = WHAT) -> list[dict]:
    """`measure` rows of the trainer's eval step (forward + loss + HR) and/or train step
    (forward, backward, optimiser update) of `trainer_steps(...)`, and of its frozen
    phase's train step if it has one (stage 2: backward through the trained subset only)."""
    count = steps["count_steps"] or (None, None, None)
    rows = []
    if "frozen step" in what and steps["frozen_step"] is not None:
        rows.append(measure("frozen step", steps["frozen_step"],
                            (steps["state"], steps["batch"], steps["rng"]), repeats, count[2]))
    if "eval step" in what:
        rows.append(measure("eval step", steps["eval_step"], (steps["state"], steps["batch"]),
                            repeats, count[1]))
    if "train step" in what:
        rows.append(measure("train step", steps["train_step"],
                            (steps["state"], steps["batch"], steps["rng"]), repeats, count[0]))
    for row in rows:
        row["batch"] = int(steps["config"].train.batch_size)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="reference", choices=("reference", "small", "tiny"))
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--conv-impl", default="auto", choices=("auto", "taps", "scan", "xla"))
    parser.add_argument("--attention", default="einsum", choices=("einsum", "dot_product"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--context", choices=("on", "off"), default=None,
                        help="override model.context.enabled (default: the variant's, on)")
    parser.add_argument("--remat", action="store_true")
    parser.add_argument("--cpu-ynn-fusion", nargs="+", default=["default"],
                        choices=("default", "dots"),
                        help="train.cpu_ynn_fusion; several: each timed in turn, same run")
    parser.add_argument("--stage", type=int, choices=(1, 2), default=1,
                        help="2: the reference_stage2 preset (FEE on, stage-1 network frozen "
                        "for 80%% of the run): also times the frozen phase's train step")
    parser.add_argument("--json", help="also write the results to this JSON file")
    from ienet_jax import cli

    args = cli.parse_args(parser, argv)  # dashes and underscores alike
    if args.repeats < 1:
        parser.error("--repeats must be ≥ 1")

    print(f"jax {jax.__version__} on {jax.default_backend()} ({jax.device_count()} device(s)), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    cfg = trainer_config(args.variant, 1, args.conv_impl, args.attention, args.dtype,
                         args.remat, args.context, args.stage).model
    print(f"IENet {args.variant}: clip {cfg.clip_length}×{cfg.frame_size}², dims {cfg.dims}, "
          f"context {'on' if cfg.context.enabled else 'off'}, dtype {cfg.dtype}, conv "
          f"{cfg.conv_impl}, attention {cfg.attention}, remat {cfg.remat}")
    reference = matmul_gflops(args.repeats)
    print(f"matmul reference (2048² f32): {reference:.1f} GFLOP/s")
    header = (f"{'what':<12}{'batch':>6}{'compile s':>11}{'median s':>10}{'GFLOP':>9}"
              f"{'GFLOP/s':>9}{'% matmul':>9}{'XLA MiB':>9}{'RSS MiB':>9}")
    print(header)
    results = []
    for batch, ynn in itertools.product(args.batch, args.cpu_ynn_fusion):
        config = trainer_config(args.variant, batch, args.conv_impl, args.attention,
                                args.dtype, args.remat, args.context, args.stage, ynn)
        for row in run_batch(trainer_steps(config), args.repeats):
            row["pct_of_matmul"] = 100 * row["gflops_per_s"] / reference
            row["cpu_ynn_fusion"] = ynn
            results.append(row)
            what = row["what"] + (f" [ynn {ynn}]" if len(args.cpu_ynn_fusion) > 1 else "")
            print(f"{what:<12}{batch:>6}{row['compile_s']:>11.1f}{row['median_s']:>10.3f}"
                  f"{row['gflop']:>9.1f}{row['gflops_per_s']:>9.1f}{row['pct_of_matmul']:>9.0f}"
                  f"{row['xla_peak_mib']:>9.0f}{row['max_rss_mib']:>9.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "matmul_gflops": reference, "results": results}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
