"""The project's train step against the reference PyTorch code's, in the same run (issue 19).

    python -m bench.vs_torch [--repeats 5] [--rounds 2] [--frames 128] [--size 64]
        [--batch 1] [--variant reference] [--torch-eval] [--json out.json]

Needs the `torch` extra (`pip install -e '.[torch]'`) in the interpreter that runs it.
Two steps on the same clip size, context enhancement off as the published code:
- `pytorch`: `bench.torch_reference` (a port of the published `fusion()` model, equal to
  its golden outputs), in train mode like the trainer's step (batch statistics, drop
  path; `--torch-eval`: `model.eval()`, running statistics and no drop path, gradients
  still on, as the issue's 2.36 s was measured): forward of both streams,
  `0.3·NegPearson + 0.3·spectral`, backward, Adam (lr 1e-4, coupled weight decay 5e-5).
  Inputs are float `[B, 3, T, H, W]` prepared outside the step (the reference's data
  loader does that); NIR has three channels.
- `jax`: the trainer's own stage-1 train step as `python -m bench.model --variant
  reference --batch 1 --context off` times it (`bench.model.trainer_config`/`trainer_steps`,
  uint8 clips normalised inside the step, the 1-channel folded NIR input of the
  project's config, training-mode normalisation and drop path as the trainer runs).

Each framework runs in a fresh subprocess of this interpreter (`sys.executable`), so
torch's and XLA's thread pools never share a process, alternating `pytorch, jax` for
`--rounds` rounds. Each reports its warm-up (PyTorch: the first step; JAX: compile),
the median of `--repeats` step times after one more untimed step, and a 2048² float32
matmul's GFLOP/s in that process (torch.mm / jnp.dot): the ratio JAX/PyTorch is
meaningful only when the two matmul rates agree. The load average is printed at the
start and the end; time on a quiet machine. `--frames/--size` change the clip
(`--variant tiny --frames 32 --size 32` for a smoke run).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

FRAMEWORKS = ("pytorch", "jax")
MATMUL_N = 2048
MARK = "VS_TORCH_RESULT "


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _variant(name: str) -> dict:
    from configs.ienet import VARIANTS

    return VARIANTS[name]


# ------------------------------------------------------------------ PyTorch worker

def run_pytorch(args) -> dict:
    import numpy as np
    import torch

    from bench import torch_reference as tr

    size = _variant(args.variant)
    dims = size["dims"]
    torch.manual_seed(0)
    model = tr.Fusion(frames=args.frames, embed_dim=dims[0], depths=size["depths"],
                      num_heads=size["heads"], window_size=size["window"],
                      drop_path_rate=size["drop_path"], context=False)
    # train mode (batch statistics, drop path), as the trainer's step it is compared with;
    # --torch-eval: running statistics and no drop path (gradients stay on)
    model.train(not args.torch_eval)
    optimizer = tr.make_optimizer(model)
    rng = np.random.default_rng(0)
    clip = (args.batch, args.frames, args.size, args.size)
    rgb = tr.normalize(rng.integers(0, 256, (*clip, 3), dtype=np.uint8))
    nir = tr.normalize(np.repeat(rng.integers(0, 256, (*clip, 1), dtype=np.uint8), 3, -1))
    t = np.arange(args.frames) / 30.0
    label = torch.from_numpy(np.sin(2 * np.pi * 1.2 * t + rng.uniform(0, 6, (args.batch, 1)))
                             .astype(np.float32))

    def step():
        loss = tr.train_step(model, optimizer, rgb, nir, label)
        if not torch.isfinite(loss):
            raise FloatingPointError("pytorch: the train step's loss is not finite")

    start = time.perf_counter()
    step()  # first step: oneDNN primitives, Adam's state
    warmup = time.perf_counter() - start
    step()  # untimed, as bench.model.measure's run after compiling
    seconds = _median_time(step, args.repeats)
    a = torch.from_numpy(rng.standard_normal((MATMUL_N, MATMUL_N)).astype(np.float32))
    torch.mm(a, a)
    matmul = 2 * MATMUL_N**3 / _median_time(lambda: torch.mm(a, a), 5) / 1e9
    return {"framework": "pytorch", "version": torch.__version__, "warmup_s": warmup,
            "median_s": seconds, "matmul_gflops": matmul,
            "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads()}


# ------------------------------------------------------------------ JAX worker

def run_jax(args) -> dict:
    import jax

    from bench.model import matmul_gflops, measure, trainer_config, trainer_steps

    config = trainer_config(args.variant, args.batch, context="off")
    config.model.clip_length = args.frames
    config.model.frame_size = args.size
    steps = trainer_steps(config)
    row = measure("train step", steps["train_step"], (steps["state"], steps["batch"], steps["rng"]),
                  args.repeats)
    return {"framework": "jax", "version": jax.__version__, "warmup_s": row["compile_s"],
            "median_s": row["median_s"], "matmul_gflops": matmul_gflops(5, MATMUL_N),
            "gflop": row["gflop"], "devices": jax.device_count(),
            "threads": len(os.sched_getaffinity(0))}


# ------------------------------------------------------------------ parent

def _worker_argv(args, framework: str) -> list[str]:
    return [sys.executable, "-m", "bench.vs_torch", "--worker", framework,
            "--repeats", str(args.repeats), "--frames", str(args.frames), "--size", str(args.size),
            "--batch", str(args.batch), "--variant", args.variant,
            *(["--torch-eval"] if args.torch_eval else [])]


def _run_worker(args, framework: str) -> dict:
    out = subprocess.run(_worker_argv(args, framework), capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(MARK)]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"bench.vs_torch: the {framework} worker failed (exit "
                           f"{out.returncode}): " + " | ".join(tail))
    return json.loads(lines[-1][len(MARK):])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vs_torch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per worker")
    parser.add_argument("--rounds", type=int, default=2, help="pytorch, jax pairs, alternating")
    parser.add_argument("--frames", type=int, default=128, help="clip length T")
    parser.add_argument("--size", type=int, default=64, help="frame height = width")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--variant", default="reference", choices=("reference", "small", "tiny"),
                        help="model size (configs/ienet.py VARIANTS), both frameworks")
    parser.add_argument("--torch-eval", action="store_true",
                        help="PyTorch in eval mode (running BatchNorm statistics, no drop "
                             "path) instead of train mode like the trainer's step")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    from ienet_jax import cli

    args = cli.parse_args(parser, argv)
    if args.repeats < 1 or args.rounds < 1:
        parser.error("--repeats and --rounds must be ≥ 1")
    if args.frames % 2 or args.size % 4:
        parser.error("--frames must be even and --size a multiple of 4 (patch 2×4×4)")
    if args.worker:
        result = (run_pytorch if args.worker == "pytorch" else run_jax)(args)
        print(MARK + json.dumps(result), flush=True)
        return 0
    if importlib.util.find_spec("torch") is None:
        print("error: bench.vs_torch needs PyTorch: pip install -e '.[torch]'", file=sys.stderr)
        return 2

    load_start = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load_start[0]:.1f} at the start; IENet "
          f"{args.variant}, context off, batch {args.batch}, clip {args.frames}×{args.size}², "
          f"median of {args.repeats} steps, {args.rounds} round(s)", flush=True)
    header = (f"{'framework':<10}{'round':>6}{'warm-up s':>11}{'median s/step':>15}"
              f"{'matmul GFLOP/s':>16}{'threads':>9}")
    print(header, flush=True)
    rows = []
    for r in range(1, args.rounds + 1):
        for framework in FRAMEWORKS:
            row = dict(_run_worker(args, framework), round=r)
            rows.append(row)
            print(f"{framework:<10}{r:>6}{row['warmup_s']:>11.2f}{row['median_s']:>15.3f}"
                  f"{row['matmul_gflops']:>16.1f}{row['threads']:>9}", flush=True)
    ratios = []
    for r in range(1, args.rounds + 1):
        by = {row["framework"]: row for row in rows if row["round"] == r}
        ratios.append(by["jax"]["median_s"] / by["pytorch"]["median_s"])
        print(f"round {r}: JAX/PyTorch {ratios[-1]:.3f}")
    overall = statistics.median(ratios)
    load_end = os.getloadavg()
    print(f"overall (median of rounds): JAX/PyTorch {overall:.3f}; load average "
          f"{load_start[0]:.1f} → {load_end[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if k != "worker"},
                       "cpus": os.cpu_count(), "load_start": load_start, "load_end": load_end,
                       "rows": rows, "ratios": ratios, "ratio": overall}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
