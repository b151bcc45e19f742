"""`python -m bench`: the benchmark table's CLI end to end (`--short`), and its layout.

Timings are never asserted: only that every column is there, finite and positive.
"""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import suite

REPO = Path(__file__).resolve().parents[1]


def test_table_columns_align():
    row = {k: 1 for k, _, _ in suite.COLUMNS} | {"variant": "reference"}
    assert len(suite.format_row(row)) == len(suite.header())
    assert set(suite.DESCRIPTIONS) <= {k for k, _, _ in suite.COLUMNS}
    assert suite.finite_positive(row)
    assert not suite.finite_positive(row | {"gflop": float("nan")})


def test_short_args_keep_explicit_values():
    args = suite.parse_args(["--short", "--batch", "2"])
    assert (args.variants, args.batch, args.repeats, args.context) == (["tiny"], [2], 1, "off")
    assert suite.parse_args([]).variants == ["small", "reference"]


def test_row_times_the_trainers_compiled_step(monkeypatch):
    """The row's step is the trainer's `compile_steps` train step (stage-1 loss, optimiser and
    shardings as `train/loop.py` sets them up), its state bytes `parallel.memory`'s."""
    from bench import model as bm
    from ienet_jax.parallel.memory import state_bytes_per_device
    from ienet_jax.train import step as step_lib

    compiled, measured = [], []
    real = step_lib.compile_steps

    def spy(**kwargs):
        compiled.append((kwargs, real(**kwargs)))
        return compiled[-1][1]

    def fake_measure(name, step, args, repeats, count_step=None):
        measured.append((name, step, args))
        expected = state_bytes_per_device(args[0]).per_device / 2**20
        return {"what": name, "compile_s": 1.0, "median_s": 1.0, "gflop": 1.0,
                "gflops_per_s": 1.0, "xla_peak_mib": 1.0, "max_rss_mib": 1.0,
                "expected_state_mib": expected}

    monkeypatch.setattr(step_lib, "compile_steps", spy)
    monkeypatch.setattr(bm, "measure", fake_measure)
    row = suite.measure_row("tiny", 8, 1, {"context": "off"})  # 8 fake devices
    (kwargs, (train_step, _)), = compiled[:1]
    ((name, step, step_args),) = measured
    assert name == "train step" and step is train_step
    assert kwargs["model_config"].name == "ienet"
    assert kwargs["weights"] == {"neg_pearson": 0.3, "spectral": 0.3}
    assert step_args[1]["rgb"].shape == (8, 32, 32, 32, 3)  # the trainer's device batch
    assert row["state_mib"] == pytest.approx(
        fake_measure("x", None, step_args, 1)["expected_state_mib"])


@pytest.mark.slow
def test_short_run_writes_every_column(tmp_path):
    out = tmp_path / "bench.json"
    # A real single-device run, not the 8 fake devices of conftest.
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench", "--short", "--json", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    content = json.loads(out.read_text())
    keys = [k for k, _, _ in suite.COLUMNS]
    assert list(content["columns"]) == keys
    assert content["matmul_gflops"] > 0
    assert {"cpu", "cores", "load_average", "jax", "backend"} <= set(content["machine"])
    rows = content["rows"]
    assert [(r["variant"], r["batch"]) for r in rows] == [("tiny", 1)]
    for row in rows:
        for key in keys[1:]:
            assert isinstance(row[key], int | float) and math.isfinite(row[key]), (key, row)
            assert row[key] > 0, (key, row)
    lines = proc.stdout.splitlines()
    head = lines.index(suite.header())
    table = [line.split() for line in lines[head + 1:]]
    assert [(t[0], t[1]) for t in table if t[0] in ("tiny", "small", "reference")] == \
        [("tiny", "1")]
    print(f"python -m bench --short: {seconds:.0f} s")  # shown with -s


def test_profile_counts_dot_flops_and_classes_ops():
    """`bench.profile`: FLOPs from the compiled HLO (a dot is 2·M·N·K, once per loop trip)
    and op classes from op_name paths (backward = `transpose(`)."""
    import jax
    import jax.numpy as jnp

    from bench import profile

    def f(a, b):
        def body(x, _):
            return x @ b, None

        return jnp.tanh(jax.lax.scan(body, a, None, length=3)[0]).sum()

    a, b = jnp.ones((8, 16)), jnp.ones((16, 16))
    module = profile.HloModule(jax.jit(f).lower(a, b).compile().as_text())
    dots = [n for n, i in module.instr.items() if i["opcode"] == "dot"]
    assert dots and {module.flops(n) * module.executions(n) for n in dots} == {3 * 2 * 8 * 16 * 16}
    # bytes of a kernel: its operands and result; per step: once per loop trip
    assert {module.bytes_accessed(n) for n in dots} == {4 * (8 * 16 + 16 * 16 + 8 * 16)}
    rows = profile.hlo_classes(module)
    assert sum(r["flops"] for r in rows) >= 3 * 2 * 8 * 16 * 16
    assert sum(r["bytes"] for r in rows) >= 3 * 4 * (8 * 16 + 16 * 16 + 8 * 16)
    assert not any(i["opcode"] in ("parameter", "tuple", "while") for i in module.top_level())
    assert profile.classify("jit(s)/transpose(jvp(IENet))/rgb/stage_1/block_0/attn/qk/dot") == (
        "attention QK", "backward")
    assert profile.classify("jit(s)/jvp(IENet)/nir/stage_0/block_1/mlp/fc1/dot") == (
        "MLP matmuls (+GELU)", "forward")
    assert profile.classify("jit(s)/jvp(IENet)/rgb/stage_0/block_0/norm1/mul")[0] == "layer norms"
    assert profile.classify("jit(s)/add")[0] == profile.OPTIMISER
    # a flax method's scope (WindowAttention.attend) is not part of the class path
    assert profile.classify("jit(s)/jvp(IENet)/rgb/stage_0/block_0/attn/attn.attend/softmax/"
                            "div")[0] == "attention softmax (+bias, mask)"
    assert profile.classify("jit(s)/jvp(IENet)/rgb/stage_0/block_0/attn/window_partition/"
                            "transpose")[0] == "window partition/shift"


# a TPU step's shape, by hand: a Pallas kernel (a custom call stating its cost estimate)
# in a loop body run 3 times, and a cuDNN-like custom call that states none
KERNEL_HLO = """HloModule step

%body (p: (s32[], f32[8])) -> (s32[], f32[8]) {
  %p = (s32[], f32[8]{0}) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %x = f32[8]{0} get-tuple-element(%p), index=1
  %k = f32[8]{0} custom-call(%x), custom_call_target="tpu_custom_call", metadata={op_name=\
"jit(s)/jvp(IENet)/rgb/stage_0/block_0/attn/attn.attend/fused/shard_map/pallas_call"}, \
backend_config={"custom_call_config":{"body":"AA","cost_estimate":{"flops":"1000",\
"transcendentals":"8","bytes_accessed":"64"}}}
  ROOT %t = (s32[], f32[8]{0}) tuple(%i, %k)
}

%cond (q: (s32[], f32[8])) -> pred[] {
  %q = (s32[], f32[8]{0}) parameter(0)
  ROOT %c = pred[] constant(true)
}

ENTRY %main (a: f32[8]) -> f32[8] {
  %a = f32[8]{0} parameter(0)
  %z = s32[] constant(0)
  %init = (s32[], f32[8]{0}) tuple(%z, %a)
  %w = (s32[], f32[8]{0}) while(%init), condition=%cond, body=%body, \
backend_config={"known_trip_count":{"n":"3"}}
  %y = f32[8]{0} get-tuple-element(%w), index=1
  ROOT %g = f32[8]{0} custom-call(%y), custom_call_target="__cudnn$conv"
}
"""


def test_profile_counts_kernels_by_their_cost_estimates():
    """A Pallas kernel's FLOPs are its stated estimate, once per loop trip (XLA's CPU cost
    analysis of the unpartitioned step sees it as 0: `bench.topology` adds these); a custom
    call without an estimate counts 0."""
    from bench import profile

    module = profile.HloModule(KERNEL_HLO)
    assert profile.kernel_flops(module) == 3 * 1000
    rows = {(r["cls"], r["direction"]): r for r in profile.hlo_classes(module)}
    kernel = rows["attention fused kernel", "forward"]
    assert kernel["flops"] == 3000 and kernel["bytes"] == 3 * 2 * 4 * 8
    assert module.flops("g") == 0


def test_convert_bench_runs_all_three_modes(tmp_path):
    """`python -m bench.convert` at a tiny size: convert (reduced / full decode) and the
    toolbox re-implementation each produce times, CPU seconds and sizes."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.convert", "--seconds", "6", "--videos", "1", "--size",
         "160x120", "--crop", "24", "--raw", str(tmp_path)],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
        timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(line["results"]) == {"reduced", "full", "toolbox"}
    for r in line["results"].values():
        assert r["s_per_video"] > 0 and r["cpu_s_per_video"] > 0 and r["bytes_per_frame"] > 0
    # the toolbox stores 6 float64 channels per 72×72 pixel; convert zlib'd uint8 RGB
    assert line["results"]["toolbox"]["bytes_per_frame"] >= 72 * 72 * 6 * 8
    assert line["results"]["reduced"]["toolbox_mb_over"] > 20
