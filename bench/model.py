"""IENet forward / train-step benchmark on this machine.

    python -m bench.model [--variant reference] [--batch 1 2] [--repeats 5]
        [--conv-impl auto|taps|scan|xla] [--attention einsum|dot_product]
        [--dtype float32|bfloat16] [--context on|off] [--remat] [--json out.json]

Per batch size: compile time, median wall time of ≥ `--repeats` runs after compilation,
XLA's FLOP count (`compiled.cost_analysis()`), achieved FLOP/s, XLA's memory analysis
(arguments + outputs + temporaries) and the process's max RSS; plus a 2048² float32
matmul reference GFLOP/s measured in the same run. Other processes sharing the CPU
inflate the times: note the load average printed at the start.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn


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


def random_variables(model, rgb, nir, seed: int = 0):
    """Variables of the model's structure filled by numpy (skips compiling the initialiser)."""
    rng = np.random.default_rng(seed)
    shapes = nn.unbox(
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), rgb, nir, train=False))
    )

    def fill(path, spec):
        if path[-1].key == "var":
            return np.ones(spec.shape, np.float32)
        if len(spec.shape) <= 1:
            return np.zeros(spec.shape, np.float32) if path[-1].key == "bias" else np.ones(
                spec.shape, np.float32)
        fan_in = int(np.prod(spec.shape[:-1]))
        return (rng.standard_normal(spec.shape) / np.sqrt(fan_in)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


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


def measure(name: str, fn, args, repeats: int, count_fn=None) -> dict:
    """Compile, time and cost `fn(*args)`; FLOPs from `count_fn` (same maths, unrolled) if given.

    XLA counts a `lax.scan` body once, so for the "scan" convolutions the FLOPs come from
    the same step with unrolled ("taps") convolutions, lowered but not compiled.
    """
    jitted = jax.jit(fn)
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))  # warm-up
    seconds = median_time(lambda: compiled(*args), repeats)
    flops = flops_of(compiled)
    if count_fn is not None:
        flops = flops_of(jax.jit(count_fn).lower(*args))
    return {
        "what": name, "compile_s": compile_s, "median_s": seconds, "gflop": flops / 1e9,
        "gflops_per_s": flops / seconds / 1e9, "xla_peak_mib": memory_of(compiled) / 2**20,
        "max_rss_mib": max_rss_bytes() / 2**20,
    }


def build_model(variant: str = "reference", conv_impl: str = "auto", attention: str = "einsum",
                dtype: str = "float32", remat: bool = False, context: str | None = None):
    """(model config, model) of an IENet size variant (`configs/ienet.py` VARIANTS).

    `context` "on"/"off" overrides `model.context.enabled` (None: the variant's).
    """
    from configs.ienet import model_config
    from ienet_jax import models

    cfg = model_config(variant)
    cfg.conv_impl = conv_impl
    cfg.attention = attention
    cfg.dtype = dtype
    cfg.remat = remat
    if context is not None:
        cfg.context.enabled = context == "on"
    return cfg, models.build(cfg)


def build(args, conv_impl=None):
    return build_model(args.variant, conv_impl or args.conv_impl, args.attention, args.dtype,
                       args.remat, args.context)


def flop_counting_model(cfg):
    """The same model with unrolled ("taps") convolutions if `cfg` resolves to "scan", else None.

    XLA counts a `lax.scan` body once, so FLOPs of "scan" convolutions are counted on this
    equivalent (lowered, never compiled).
    """
    from ienet_jax import models
    from ienet_jax.models.conv import _resolve

    if _resolve(cfg.conv_impl, 3) != "scan":
        return None
    taps = cfg.copy_and_resolve_references()
    taps.conv_impl = "taps"
    return models.build(taps)


def tree_bytes(tree) -> int:
    """Total bytes of the arrays in a pytree (parameters, optimiser state, …)."""
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize
                   for x in jax.tree_util.tree_leaves(tree)))


def step_functions(model, tx):
    """(forward, train_step) closures over `model` and the optimiser `tx`."""

    def forward(variables, rgb, nir):
        return model.apply(variables, rgb, nir, train=False)

    def train_step(variables, opt_state, rgb, nir, target, key):
        k1, k2 = jax.random.split(key)

        def loss_fn(params):
            out, updates = model.apply(
                {"params": params, "batch_stats": variables["batch_stats"]}, rgb, nir,
                train=True, rngs={"dropout": k1, "drop_path": k2}, mutable=["batch_stats"],
            )
            return jnp.mean((out["fused_rppg"] - target) ** 2), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
        upd, opt_state = tx.update(grads, opt_state, variables["params"])
        params = optax.apply_updates(variables["params"], upd)
        return {"params": params, **updates}, opt_state, loss

    return forward, train_step


def batch_inputs(cfg, model, batch: int) -> dict:
    """Random clips `[B, T, H, W, C]`, targets `[B, T]`, variables and Adam state for `batch`."""
    rng = np.random.default_rng(batch)
    shape = (batch, cfg.clip_length, cfg.frame_size, cfg.frame_size)
    rgb = jnp.asarray(rng.standard_normal((*shape, cfg.rgb_channels), np.float32))
    nir = jnp.asarray(rng.standard_normal((*shape, cfg.nir_channels), np.float32))
    target = jnp.asarray(rng.standard_normal((batch, cfg.clip_length), np.float32))
    variables = random_variables(model, rgb, nir)
    tx = optax.adam(1e-4)
    opt_state = tx.init(variables["params"])
    return dict(variables=variables, opt_state=opt_state, rgb=rgb, nir=nir, target=target, tx=tx)


WHAT = ("forward", "train step")


def run_batch(cfg, model, batch: int, repeats: int, count_model=None,
              what: tuple[str, ...] = WHAT, inputs: dict | None = None) -> list[dict]:
    """`measure` rows of the forward pass and/or the train step (`what`) at `batch`.

    `inputs`: from `batch_inputs(cfg, model, batch)` if the caller needs them too.
    """
    x = inputs if inputs is not None else batch_inputs(cfg, model, batch)
    forward, train_step = step_functions(model, x["tx"])
    count_fwd, count_step = step_functions(count_model, x["tx"]) if count_model else (None, None)
    rows = []
    if "forward" in what:
        rows.append(measure("forward", forward, (x["variables"], x["rgb"], x["nir"]), repeats,
                            count_fwd))
    if "train step" in what:
        rows.append(measure("train step", train_step,
                            (x["variables"], x["opt_state"], x["rgb"], x["nir"], x["target"],
                             jax.random.PRNGKey(0)), repeats, count_step))
    for row in rows:
        row["batch"] = batch
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
    parser.add_argument("--json", help="also write the results to this JSON file")
    from ienet_jax import cli

    args = cli.parse_args(parser, argv)  # dashes and underscores alike
    if args.repeats < 1:
        parser.error("--repeats must be ≥ 1")

    cfg, model = build(args)
    count_model = flop_counting_model(cfg)
    print(f"jax {jax.__version__} on {jax.default_backend()} ({jax.device_count()} device(s)), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"IENet {args.variant}: clip {cfg.clip_length}×{cfg.frame_size}², dims {cfg.dims}, "
          f"context {'on' if cfg.context.enabled else 'off'}, dtype {cfg.dtype}, conv "
          f"{cfg.conv_impl}, attention {cfg.attention}, remat {cfg.remat}")
    reference = matmul_gflops(args.repeats)
    print(f"matmul reference (2048² f32): {reference:.1f} GFLOP/s")
    header = (f"{'what':<11}{'batch':>6}{'compile s':>11}{'median s':>10}{'GFLOP':>9}"
              f"{'GFLOP/s':>9}{'% matmul':>9}{'XLA MiB':>9}{'RSS MiB':>9}")
    print(header)
    results = []
    for batch in args.batch:
        for row in run_batch(cfg, model, batch, args.repeats, count_model):
            row["pct_of_matmul"] = 100 * row["gflops_per_s"] / reference
            results.append(row)
            print(f"{row['what']:<11}{batch:>6}{row['compile_s']:>11.1f}{row['median_s']:>10.3f}"
                  f"{row['gflop']:>9.1f}{row['gflops_per_s']:>9.1f}{row['pct_of_matmul']:>9.0f}"
                  f"{row['xla_peak_mib']:>9.0f}{row['max_rss_mib']:>9.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "matmul_gflops": reference, "results": results}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
