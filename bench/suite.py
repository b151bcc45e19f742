"""The benchmark table: IENet's train step per (variant, batch) beside the input pipeline.

    python -m bench [--variants small reference] [--batch 1 2] [--repeats 5] [--json PATH]
    python -m bench --short [--json PATH]   # CI: tiny variant (context off), batch 1, 1 repeat

One row per (variant, batch) of `configs/ienet.py` VARIANTS: the trainer's own train step
(`bench.model.trainer_steps`: stage-1 loss, Adam, shardings and `compile_steps` as
`ienet_jax.train.loop` sets them up) with its compile time, median wall time of `--repeats`
runs after one warm-up, the clips/s it consumes, XLA's FLOP count (scan convolutions counted
on the unrolled equivalent, see `bench.model.measure`), the achieved FLOP/s and its
percentage of a 2048² float32 matmul's FLOP/s measured at the start of the same run, XLA's
memory analysis, the process's max RSS, the train-state bytes one device holds
(`ienet_jax.parallel.memory.state_bytes_per_device`); then the input pipeline's clips/s
(`bench.pipeline`: decode + augment + normalise + batch on a small generated set of clips of
the variant's shape, at the row's batch size) and its ratio to the model's clips/s (> 1: the
input keeps up).

Each row is measured in a fresh process (`--row`, internal), so its max RSS and XLA caches
are its own. Other processes sharing the CPU inflate every time: read the load average on
the machine line (taken at the start and at the end) before comparing numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROW_MARK = "BENCH_ROW "

# key, header (with unit), format of the value
COLUMNS = (
    ("variant", "variant", "<9"),
    ("batch", "batch", ">5d"),
    ("compile_s", "compile s", ">9.1f"),
    ("step_s", "step s", ">8.3f"),
    ("clips_per_s", "clips/s", ">8.2f"),
    ("gflop", "GFLOP/step", ">10.1f"),
    ("gflops_per_s", "GFLOP/s", ">8.1f"),
    ("pct_of_matmul", "% matmul", ">8.1f"),
    ("xla_peak_mib", "XLA MiB", ">8.0f"),
    ("max_rss_mib", "RSS MiB", ">8.0f"),
    ("state_mib", "state MiB/dev", ">13.1f"),
    ("data_clips_per_s", "data clips/s", ">12.1f"),
    ("data_over_model", "data/model ×", ">12.1f"),
)
DESCRIPTIONS = {
    "compile_s": "train step: trace + lower + XLA compile, seconds",
    "step_s": "train step: median wall seconds after one warm-up",
    "clips_per_s": "clips per second the train step consumes (batch / step_s)",
    "gflop": "XLA FLOP count of one train step, 1e9 (scan convolutions counted unrolled)",
    "gflops_per_s": "achieved 1e9 FLOP per second (gflop / step_s)",
    "pct_of_matmul": "gflops_per_s as a percentage of the 2048² float32 matmul in this run",
    "xla_peak_mib": "XLA memory analysis: arguments + outputs + temporaries − aliased, MiB",
    "max_rss_mib": "max resident set size of the process measuring the row, MiB",
    "state_mib": "train state (parameters + Adam moments + batch statistics) bytes one "
                 "device holds (ienet_jax.parallel.memory), MiB",
    "data_clips_per_s": "input pipeline clips/s (decode+augment+normalise+batch), same shape "
                        "and batch",
    "data_over_model": "data_clips_per_s / clips_per_s (> 1: the input keeps up)",
}
# --short: the tiny variant as the published code runs it (context enhancement off, which
# also halves the tiny train step's compile time), for CI, well under a minute on 2 cores.
SHORT = dict(variants=["tiny"], batch=[1], repeats=1, context="off", pipeline_clips=4,
             pipeline_batches=2)
FULL = dict(variants=["small", "reference"], batch=[1, 2], repeats=5, context=None,
            pipeline_clips=16, pipeline_batches=8)


# ----------------------------------------------------------------------------------- machine

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> dict:
    import jax
    import jaxlib

    return {
        "cpu": cpu_model(), "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average": list(os.getloadavg()), "jax": jax.__version__,
        "jaxlib": jaxlib.__version__, "backend": jax.default_backend(),
        "devices": jax.device_count(), "python": platform.python_version(),
    }


def machine_line(m: dict) -> str:
    load = " ".join(f"{x:.1f}" for x in m["load_average"])
    end = m.get("load_average_end")
    end = f" → {' '.join(f'{x:.1f}' for x in end)} at the end" if end else ""
    return (f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), load average "
            f"{load} (1/5/15 min){end}; jax {m['jax']} on {m['backend']} "
            f"({m['devices']} device(s)), Python {m['python']}")


# ------------------------------------------------------------------------------- model row

def measure_row(variant: str, batch: int, repeats: int, model_options: dict) -> dict:
    """The model columns of one row, measured in this process on the trainer's train step;
    the state bytes one device holds from `ienet_jax.parallel.memory`."""
    from bench import model as bm
    from ienet_jax.parallel.memory import state_bytes_per_device

    steps = bm.trainer_steps(bm.trainer_config(variant, batch, **model_options))
    model = steps["config"].model
    state_bytes = state_bytes_per_device(steps["state"]).per_device  # before it is donated
    (step,) = bm.run_batch(steps, repeats, what=("train step",))
    return {
        "variant": variant, "batch": batch, "compile_s": step["compile_s"],
        "step_s": step["median_s"], "clips_per_s": batch / step["median_s"],
        "gflop": step["gflop"], "gflops_per_s": step["gflops_per_s"],
        "xla_peak_mib": step["xla_peak_mib"], "max_rss_mib": bm.max_rss_bytes() / 2**20,
        "state_mib": state_bytes / 2**20,
        "clip": [model.clip_length, model.frame_size, model.frame_size],
    }


def row_in_subprocess(variant: str, batch: int, args) -> dict:
    """`measure_row` in a fresh Python process (own max RSS); {"error": …} if it fails."""
    cmd = [sys.executable, "-m", "bench.suite", "--row", variant, str(batch),
           "--repeats", str(args.repeats), "--model-options", json.dumps(model_options(args))]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(ROW_MARK):
            return json.loads(line[len(ROW_MARK):])
    lines = [x for x in proc.stderr.strip().splitlines() if x.strip()] or ["no output"]
    return {"variant": variant, "batch": batch,
            "error": f"exit {proc.returncode}: {lines[-1].strip()}"}


def model_options(args) -> dict:
    return dict(conv_impl=args.conv_impl, attention=args.attention, dtype=args.dtype,
                context=args.context)


# ---------------------------------------------------------------------------- input pipeline

def pipeline_rates(shapes: dict, batches: list[int], args) -> dict:
    """{(variant, batch): clips/s} of the training pipeline on generated clips of each shape.

    `shapes` maps variant → (frames, size); one set of `--pipeline-clips` clips per shape.
    """
    from bench import pipeline as bp

    rates = {}
    for variant, (frames, size) in shapes.items():
        with tempfile.TemporaryDirectory(prefix="ienet_bench_clips_") as tmp:
            bp.write_dataset(Path(tmp), args.pipeline_clips, frames, size)
            for batch in batches:
                r = bp.measure(Path(tmp), args.pipeline_workers, batch, args.pipeline_batches,
                               args.pipeline_normalize)
                rates[variant, batch] = r["clips_per_s"]
    return rates


def clip_shapes(variants: list[str]) -> dict:
    from configs.ienet import VARIANTS

    return {v: (VARIANTS[v]["clip_length"], VARIANTS[v]["frame_size"]) for v in variants}


# ------------------------------------------------------------------------------------ table

def header() -> str:
    widths = [_width(fmt) for _, _, fmt in COLUMNS]
    return "  ".join(f"{h:<{w}}" if fmt.startswith("<") else f"{h:>{w}}"
                     for (_, h, fmt), w in zip(COLUMNS, widths))


def _width(fmt: str) -> int:
    return int("".join(c for c in fmt.split(".")[0] if c.isdigit()))


def format_row(row: dict) -> str:
    if "error" in row:
        first = "  ".join(f"{row[k]:{fmt}}" for k, _, fmt in COLUMNS[:2])
        return f"{first}  FAILED ({row['error']})"
    return "  ".join(f"{row[k]:{fmt}}" for k, _, fmt in COLUMNS)


def complete(row: dict, matmul_gflops: float, data_rate: float) -> dict:
    row["pct_of_matmul"] = 100 * row["gflops_per_s"] / matmul_gflops
    row["data_clips_per_s"] = data_rate
    row["data_over_model"] = data_rate / row["clips_per_s"]
    return row


def finite_positive(row: dict) -> bool:
    return all(isinstance(row.get(k), int | float) and math.isfinite(row[k]) and row[k] > 0
               for k, _, _ in COLUMNS[1:])


# ------------------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true",
                   help=f"CI smoke run: {SHORT} unless given explicitly")
    p.add_argument("--variants", nargs="+", choices=("tiny", "small", "reference"),
                   help=f"default {FULL['variants']}")
    p.add_argument("--batch", type=int, nargs="+", help=f"default {FULL['batch']}")
    p.add_argument("--repeats", type=int, help=f"timed train steps per row (default "
                                               f"{FULL['repeats']}, after one warm-up)")
    p.add_argument("--conv-impl", default="auto", choices=("auto", "taps", "scan", "xla"))
    p.add_argument("--attention", default="einsum", choices=("einsum", "dot_product"))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--context", choices=("on", "off"), default=None,
                   help="override model.context.enabled (default: the variant's, on)")
    p.add_argument("--pipeline-clips", type=int,
                   help=f"generated clips per shape (default {FULL['pipeline_clips']})")
    p.add_argument("--pipeline-batches", type=int,
                   help=f"timed batches (default {FULL['pipeline_batches']})")
    p.add_argument("--pipeline-workers", type=int, default=0,
                   help="grain worker processes (0: in the main process, the trainer's default)")
    p.add_argument("--pipeline-normalize", default="reference",
                   choices=("none", "reference", "standardize"))
    p.add_argument("--json", help="also write the table (and the machine line) to this file")
    p.add_argument("--row", nargs=2, metavar=("VARIANT", "BATCH"), help=argparse.SUPPRESS)
    p.add_argument("--model-options", default="{}", help=argparse.SUPPRESS)
    from ienet_jax import cli

    args = cli.parse_args(p, argv)  # --batch-size and --batch_size alike
    for key, value in (SHORT if args.short else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("repeats", "pipeline_clips", "pipeline_batches"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be ≥ 1")
    if min(args.batch) < 1:
        p.error("--batch sizes must be ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.row:  # child process: one row's model columns, as one marked JSON line
        row = measure_row(args.row[0], int(args.row[1]), args.repeats,
                          json.loads(args.model_options))
        print(ROW_MARK + json.dumps(row), flush=True)
        return 0

    from bench.model import matmul_gflops

    start = time.perf_counter()
    info = machine()
    print(machine_line(info), flush=True)
    matmul = matmul_gflops(max(args.repeats, 3))
    rates = pipeline_rates(clip_shapes(args.variants), args.batch, args)
    opts = model_options(args)
    print(f"the trainer's train step (forward + backward + Adam) of IENet stage 1, "
          f"{args.dtype}, conv {args.conv_impl}, attention {args.attention}, "
          f"context {args.context or 'on (default)'}; "
          f"median of {args.repeats} after warm-up; 2048² f32 matmul {matmul:.1f} GFLOP/s; "
          f"data: {args.pipeline_clips} generated clips, workers {args.pipeline_workers}, "
          f"normalize {args.pipeline_normalize}", flush=True)
    print(header(), flush=True)
    rows = []
    for variant in args.variants:
        for batch in args.batch:
            row = row_in_subprocess(variant, batch, args)
            if "error" not in row:
                row = complete(row, matmul, rates[variant, batch])
            rows.append(row)
            print(format_row(row), flush=True)
    info["load_average_end"] = list(os.getloadavg())
    print(f"load average at the end {' '.join(f'{x:.1f}' for x in info['load_average_end'])}; "
          f"{time.perf_counter() - start:.0f} s in all", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": info, "matmul_gflops": matmul,
            "settings": {**opts, "repeats": args.repeats, "pipeline_clips": args.pipeline_clips,
                         "pipeline_batches": args.pipeline_batches,
                         "pipeline_workers": args.pipeline_workers,
                         "pipeline_normalize": args.pipeline_normalize},
            "columns": {k: {"header": h, "description": DESCRIPTIONS.get(k, h)}
                        for k, h, _ in COLUMNS},
            "rows": rows,
        }, indent=2) + "\n")
    return 0 if all(finite_positive(r) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
