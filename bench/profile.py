"""Where the trainer's IENet train step spends its time: XLA's per-op profile by op class.

    python -m bench.profile [--variant reference] [--batch 1] [--context off|on]
        [--stage 1|2] [--frozen] [--cpu-ynn-fusion default|dots] [--repeats 3]
        [--top 15] [--json out.json]

The step is the trainer's own (`bench.model.trainer_steps`, as `python -m bench.model`).
It runs `--repeats` times under `jax.profiler`; every HLO op that XLA's CPU runtime
executes is a trace event named after the op (`hlo_op`). Each op's `metadata.op_name`
in the compiled HLO module carries the JAX transformation and the flax module path, e.g.
`jit(train_step)/transpose(jvp(IENet))/rgb/stage_0/block_1/attn/qk/dot_general`: the
`transpose(` marks the backward pass, the path the op class (`CLASSES`, first match wins;
`qk`, `softmax`, `av`, `bias`, `window_partition`, `window_reverse` are `jax.named_scope`s
of `ienet_jax.models`). Ops outside the loss's `jvp` are the optimiser update (and the
step's bookkeeping). A fusion is classed by its own op_name (XLA's choice: usually the
root's). FLOPs come from the HLO: 2·M·N·K per dot, 2·out·kernel/out-features per
convolution, 1 per output element of other arithmetic (per input element of a reduce),
loop bodies × their known trip count; "GFLOP/s" is that over the op time.

Times are per step, summed over the ops: the CPU runtime may run independent ops
concurrently, so the sum can exceed the wall time (the median of `--repeats` runs outside
the profiler, printed too). Other processes on the
machine inflate everything: the load average is printed.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import math
import os
import re
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench import hlo

# (class, regex over the op_name without the leading transformations), first match wins
CLASSES = (
    ("patch embedding", r"/patch_embed/"),
    ("attention qkv projection", r"/attn/qkv/"),
    ("attention QK", r"/attn/qk/"),
    ("attention softmax (+bias, mask)", r"/attn/softmax/"),
    ("attention fused kernel", r"/attn/fused/"),
    ("attention relative position bias", r"/attn/bias/"),
    ("attention AV", r"/attn/av/"),
    ("attention output projection", r"/attn/proj/"),
    ("window partition/shift", r"/window_partition/"),
    ("window merge/unshift", r"/window_reverse/"),
    ("attention other", r"/attn/"),
    ("MLP matmuls (+GELU)", r"/mlp/"),
    ("layer norms", r"/norm\d?/"),
    ("patch merging (linear)", r"/merge/"),
    ("context convolutions", r"/context/"),
    ("drop path", r"/DropPath"),
    ("temporal upsample conv + BN", r"/upsample/"),
    ("rPPG head conv", r"/head/"),
    ("FEE (conv, BN, spectrum)", r"/fee/"),
    ("fusion (MDEF)", r"^(jvp|transpose\(jvp)\(IENet\)\)?/"),
    ("loss", r"^(jvp|transpose\(jvp)\("),
)
OPTIMISER = "optimiser update (+step bookkeeping)"
UNNAMED = "copies XLA added (no op_name)"

ELEMENTWISE = {
    "add", "subtract", "multiply", "divide", "maximum", "minimum", "exponential", "tanh",
    "log", "rsqrt", "sqrt", "power", "negate", "abs", "compare", "select", "erf", "sine",
    "cosine", "exponential-minus-one", "log-plus-one", "logistic", "clamp", "atan2",
    "floor", "ceil", "round-nearest-even", "sign", "cbrt", "remainder", "and", "or", "xor",
    "not", "shift-left", "shift-right-logical", "shift-right-arithmetic",
}

_KERNEL_FLOPS = re.compile(r'"cost_estimate":\{"flops":"(\d+)"')
_COMP = re.compile(r"^(?:ENTRY )?%([\w.\-]+) .*\{$")
_SHAPE = re.compile(r"[a-z]\w*\[([\d,]*)\]")


_NO_TRAFFIC = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast", "while",
               "call", "conditional", "after-all", "opt-barrier", "partition-id",
               "replica-id"}


def _dims(shape: str) -> list[list[int]]:
    return [[int(d) for d in m.split(",") if d] for m in _SHAPE.findall(shape)]


def _prod(xs) -> int:
    return math.prod(xs) if xs else 1


class HloModule:
    """The compiled module's instructions: op_name, opcode and FLOPs (see the module doc)."""

    def __init__(self, text: str):
        self.comps: dict[str, list[dict]] = {}
        comp = None
        for line in text.splitlines():
            m = _COMP.match(line)
            if m and "=" not in line.split("{")[0].split("(")[0]:
                comp = self.comps.setdefault(m.group(1), [])
                continue
            m = hlo.INSTRUCTION.match(line)
            if m and comp is not None:
                name, shape, opcode, rest = m.group("name", "type", "op", "rest")
                op_name = re.search(r'op_name="([^"]*)"', rest)
                calls = re.findall(r"(?:calls|body)=%([\w.\-]+)", rest)
                trips = re.search(r'known_trip_count[^0-9]*(\d+)', rest)
                operands = re.findall(r"%([\w.\-]+)", rest.split(")")[0])
                comp.append(dict(name=name, shape=shape, opcode=opcode, rest=rest,
                                 op_name=op_name.group(1) if op_name else "",
                                 calls=calls, operands=operands,
                                 trips=int(trips.group(1)) if trips else 1))
        self.instr = {i["name"]: i for c in self.comps.values() for i in c}
        self.comp_of = {i["name"]: c for c, instrs in self.comps.items() for i in instrs}
        self._callers = {c: i for i in self.instr.values() for c in i["calls"]}
        self._flops: dict[str, float] = {}

    def top_level(self) -> list[dict]:
        """Instructions that run as kernels of their own: those of computations no fusion
        inlines (the entry, loop bodies and conditions, called computations), without the
        bookkeeping ops that move no data (parameters, tuples, bitcasts, the loops and calls
        themselves, whose bodies are listed)."""
        inlined = {c for i in self.instr.values() if i["opcode"] == "fusion" for c in i["calls"]}
        inlined |= {m for i in self.instr.values() for m in re.findall(
            r"(?:to_apply|scatter|comparator)=%([\w.\-]+)", i["rest"])}
        return [i for c, instrs in self.comps.items() if c not in inlined for i in instrs
                if i["opcode"] not in _NO_TRAFFIC and not i["opcode"].endswith("-start")]

    def source_op_name(self, name: str) -> str:
        """`name`'s op_name, or for a copy XLA added (none: memory-space staging, layout
        changes) that of the first named array it moves, through up to 4 such copies."""
        i = self.instr[name]
        for _ in range(4):
            if i["op_name"] or not i["operands"] or i["operands"][0] not in self.instr:
                break
            i = self.instr[i["operands"][0]]
        return i["op_name"]

    def bytes_accessed(self, name: str) -> int:
        """Bytes one execution of top-level instruction `name` reads and writes: its
        operands' and its result's sizes (XLA's estimate for a fused kernel; in-place
        updates and operands read in part count whole; an async `-start`/`-done` pair
        counts at its `-done`); arrays staged in on-chip memory (`S(1)` layouts) do not
        count: main-memory (HBM) traffic only."""
        i = self.instr[name]
        read = i["operands"]
        if i["opcode"].endswith("-done"):  # an async pair: the start's operands, once
            start = self.instr.get(read[0]) if read else None
            read = start["operands"] if start else []
        operands = sum(hlo.shape_bytes(self.instr[o]["shape"], main_memory_only=True)
                       for o in read if o in self.instr)
        return operands + hlo.shape_bytes(i["shape"], main_memory_only=True)

    def executions(self, name: str) -> int:
        """How often one step runs instruction `name`: the known trip counts of the loops
        whose bodies hold it, multiplied."""
        comp, n = self.comp_of.get(name), 1
        while comp is not None:
            caller = self._callers.get(comp)  # a loop, a fusion, a call
            if caller is None:
                break
            n *= caller["trips"] if caller["opcode"] == "while" else 1
            comp = self.comp_of.get(caller["name"])
        return n

    def flops(self, name: str) -> float:
        if name not in self._flops:
            self._flops[name] = self._compute(self.instr[name])
        return self._flops[name]

    def comp_flops(self, comp: str) -> float:
        return sum(self.flops(i["name"]) for i in self.comps.get(comp, ()))

    def _convolution_flops(self, i: dict, n_out: int) -> float:
        """2 × (batch × output features) × input features × the kernel taps that meet the
        input (not its padding, nor the holes of an lhs dilation), per spatial dimension:
        exact for XLA:TPU's batched matmuls written as base-dilated convolutions, whose
        batch dimensions are spatial ones with one valid tap per output position."""
        lhs = _dims(self.instr[i["operands"][0]]["shape"])[0]
        kernel = _dims(self.instr[i["operands"][1]]["shape"])[0]
        labels = re.search(r"dim_labels=(\w+)_(\w+)->(\w+)", i["rest"])
        if labels is None:  # 1-D default labels: b f _ o i: no spatial dimensions
            return 2.0 * n_out * _prod(kernel) / max(kernel[-1], 1)
        lhs_l, rhs_l, out_l = labels.groups()
        out = _dims(i["shape"])[0]
        spatial = sorted(c for c in rhs_l if c.isdigit())
        window = re.search(r"window=\{([^}]*)\}", i["rest"])
        attrs = dict(kv.split("=", 1) for kv in window.group(1).split()) if window else {}

        def per_dim(key: str, default: int) -> list[int]:
            return ([int(v) for v in attrs[key].split("x")] if key in attrs
                    else [default] * len(spatial))

        strides, lhs_dil, rhs_dil = per_dim("stride", 1), per_dim("lhs_dilate", 1), per_dim(
            "rhs_dilate", 1)
        pads = ([int(p.split("_")[0]) for p in attrs["pad"].split("x")] if "pad" in attrs
                else [0] * len(spatial))
        taps = 1
        for d, c in enumerate(spatial):
            size_in, size_k, size_out = lhs[lhs_l.index(c)], kernel[rhs_l.index(c)], out[
                out_l.index(c)]
            pos = (np.arange(size_out)[:, None] * strides[d] - pads[d]
                   + np.arange(size_k)[None, :] * rhs_dil[d])
            taps *= int(np.count_nonzero((pos >= 0) & (pos <= (size_in - 1) * lhs_dil[d])
                                         & (pos % lhs_dil[d] == 0)))
        per_output = _prod([out[out_l.index(c)] for c in spatial])
        return 2.0 * (n_out / per_output) * kernel[rhs_l.index("i")] * taps

    def _compute(self, i: dict) -> float:
        op, out = i["opcode"], _dims(i["shape"])
        n_out = sum(_prod(d) for d in out)
        if op == "dot":
            lhs = _dims(self.instr[i["operands"][0]]["shape"])[0]
            contract = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", i["rest"])
            k = _prod([lhs[int(d)] for d in contract.group(1).split(",") if d]) if contract else 1
            return 2.0 * n_out * k
        if op == "convolution":
            return self._convolution_flops(i, n_out)
        if op in ("fusion", "call", "while"):
            return i["trips"] * sum(self.comp_flops(c) for c in i["calls"])
        if op in ("reduce", "reduce-window"):
            return float(sum(_prod(d) for o in i["operands"][:1]
                             for d in _dims(self.instr[o]["shape"])))
        if op in ELEMENTWISE:
            return float(n_out)
        if op == "custom-call":  # a Pallas kernel's own cost estimate (TPU); else unknown
            estimate = _KERNEL_FLOPS.search(i["rest"])
            return float(estimate.group(1)) if estimate else 0.0
        return 0.0


def kernel_flops(module: HloModule) -> float:
    """FLOPs of one step's custom-call kernels that state them (Pallas kernels' cost
    estimates), per device, each once per loop trip."""
    return sum(module.flops(i["name"]) * module.executions(i["name"])
               for i in module.top_level() if i["opcode"] == "custom-call")


def classify(op_name: str) -> tuple[str, str]:
    """`(class, "forward"|"backward"|"")` of an op from its metadata op_name."""
    if not op_name:
        return UNNAMED, ""
    path = op_name.split("/", 1)[1] if op_name.startswith("jit(") else op_name
    path = re.sub(r"/\w+\.\w+(?=/)", "", path)  # flax method scopes: attn/attn.attend/qk
    direction = "backward" if path.startswith("transpose(") else "forward"
    if not path.startswith(("jvp(", "transpose(")):
        return OPTIMISER, ""
    for label, pattern in CLASSES:
        if re.search(pattern, path if pattern.startswith("^") else "/" + path + "/"):
            return label, direction
    return "other", direction


def hlo_classes(module: HloModule) -> list[dict]:
    """Rows per (class, direction) of one step's FLOPs and bytes accessed, read from the
    compiled module alone (no execution: an accelerator's step compiled on this machine),
    each top-level kernel once per loop trip; sorted by bytes. A copy XLA added counts for
    the class of the array it moves (`source_op_name`). GPU library calls (cuBLAS GEMMs,
    cuDNN convolutions: custom calls) count 0 FLOPs."""
    rows: dict[tuple[str, str], dict] = {}
    for i in module.top_level():
        label, direction = classify(module.source_op_name(i["name"]))
        n = module.executions(i["name"])
        row = rows.setdefault((label, direction), dict(cls=label, direction=direction,
                                                       flops=0.0, bytes=0.0, ops=0))
        row["flops"] += module.flops(i["name"]) * n
        row["bytes"] += module.bytes_accessed(i["name"]) * n
        row["ops"] += 1
    return sorted(rows.values(), key=lambda r: -r["bytes"])


def intensity(row: dict) -> str:
    """FLOP per byte of main-memory traffic, for a table: "–" when the class moves less than
    a megabyte (held on chip), "≥10000" beyond the column."""
    if row["bytes"] < 1e6:
        return "–"
    ratio = row["flops"] / row["bytes"]
    return f"{ratio:.1f}" if ratio < 1e4 else "≥10000"


def format_classes(rows: list[dict], peak_flops: float, memory_bytes_per_s: float) -> str:
    """`hlo_classes` rows as a table with each class's roofline: ms at the chip's peak
    FLOP/s and at its memory bandwidth (the larger bounds that class)."""
    head = (f"{'op class':<38}{'pass':<9}{'kernels':>8}{'GFLOP':>9}{'GB':>8}{'FLOP/B':>8}"
            f"{'ms FLOP':>9}{'ms HBM':>8}{'% bytes':>8}")
    total_bytes = sum(r["bytes"] for r in rows) or 1.0
    lines = [head, "-" * len(head)]
    for r in rows + [dict(cls="total", direction="", ops=sum(r["ops"] for r in rows),
                          flops=sum(r["flops"] for r in rows), bytes=total_bytes)]:
        lines.append(f"{r['cls']:<38}{r['direction']:<9}{r['ops']:>8}{r['flops'] / 1e9:>9.2f}"
                     f"{r['bytes'] / 1e9:>8.2f}{intensity(r):>8}"
                     f"{1e3 * r['flops'] / peak_flops:>9.2f}"
                     f"{1e3 * r['bytes'] / memory_bytes_per_s:>8.2f}"
                     f"{100 * r['bytes'] / total_bytes:>8.1f}")
    return "\n".join(lines)


def profile_events(run, repeats: int, module_name: str) -> tuple[dict, float]:
    """Mean seconds per step of each `hlo_op` over `repeats` runs of `run()`, and the median
    wall seconds per step of `repeats` runs outside the profiler."""
    from bench.model import median_time

    wall = median_time(run, repeats)
    with tempfile.TemporaryDirectory() as logdir:
        with jax.profiler.trace(logdir, create_perfetto_trace=True):
            for _ in range(repeats):
                jax.block_until_ready(run())
        (path,) = glob.glob(os.path.join(logdir, "**", "*.trace.json.gz"), recursive=True)
        with gzip.open(path) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    seconds: dict[str, float] = collections.defaultdict(float)
    for e in events:
        args = e.get("args") or {}
        if e.get("ph") == "X" and "hlo_op" in args and args.get("hlo_module") == module_name:
            seconds[args["hlo_op"]] += float(e.get("dur", 0.0)) * 1e-6 / repeats
    return dict(seconds), wall


def attribute(module: HloModule, seconds: dict) -> tuple[list[dict], list[dict]]:
    """Rows per (class, direction) and per op. An op inside a loop body reports an event per
    execution: its FLOPs count once per trip, and the loop op's own FLOPs (its body's) are
    left out when its body reports events."""
    rows: dict[tuple[str, str], dict] = {}
    ops = []
    for name, sec in seconds.items():
        instr = module.instr.get(name)
        op_name = instr["op_name"] if instr else ""
        label, direction = classify(op_name)
        has_body_events = instr and instr["opcode"] == "while" and any(
            j["name"] in seconds for c in instr["calls"] for j in module.comps.get(c, ()))
        flops = 0.0 if instr is None or has_body_events else (
            module.flops(name) * module.executions(name))
        row = rows.setdefault((label, direction), dict(cls=label, direction=direction,
                                                       seconds=0.0, flops=0.0, ops=0))
        row["seconds"] += sec
        row["flops"] += flops
        row["ops"] += 1
        ops.append(dict(op=name, op_name=op_name, cls=label, direction=direction,
                        seconds=sec, flops=flops))
    return sorted(rows.values(), key=lambda r: -r["seconds"]), sorted(
        ops, key=lambda r: -r["seconds"])


def main(argv: list[str] | None = None) -> int:
    from bench import model as bm
    from ienet_jax import cli

    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="reference", choices=("reference", "small", "tiny"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--context", choices=("on", "off"), default="off",
                        help="model.context.enabled (default off: the published code)")
    parser.add_argument("--conv-impl", default="auto", choices=("auto", "taps", "scan", "xla"))
    parser.add_argument("--stage", type=int, choices=(1, 2), default=1)
    parser.add_argument("--cpu-ynn-fusion", default="default", choices=("default", "dots"),
                        help="train.cpu_ynn_fusion")
    parser.add_argument("--frozen", action="store_true",
                        help="with --stage 2: profile the frozen phase's step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=15, help="also list the N slowest ops")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = cli.parse_args(parser, argv)

    print(f"jax {jax.__version__} on {jax.default_backend()}, {os.cpu_count()} CPUs, load "
          f"average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    config = bm.trainer_config(args.variant, args.batch, args.conv_impl, context=args.context,
                               stage=args.stage, cpu_ynn_fusion=args.cpu_ynn_fusion)
    steps = bm.trainer_steps(config)
    step = steps["frozen_step" if args.frozen else "train_step"]
    if step is None:
        parser.error("--frozen needs --stage 2 (a run with train.freeze_steps)")
    state = jax.tree.map(jnp.copy, steps["state"])
    start = time.perf_counter()
    compiled = step.lower(state, steps["batch"], steps["rng"]).compile()
    compile_s = time.perf_counter() - start
    module = HloModule(compiled.as_text())
    module_name = re.match(r"HloModule ([^ ,]+)", compiled.as_text()).group(1)
    holder = [state]

    def run():
        holder[0], metrics = compiled(holder[0], steps["batch"], steps["rng"])
        return metrics

    jax.block_until_ready(run())  # warm-up
    seconds, wall = profile_events(run, args.repeats, module_name)
    rows, ops = attribute(module, seconds)
    total = sum(r["seconds"] for r in rows)
    if not total:
        raise SystemExit(f"the profile holds no op events of module {module_name!r}")
    model = config.model
    print(f"IENet {args.variant} stage {args.stage}{' (frozen phase)' if args.frozen else ''}: "
          f"batch {args.batch}, clip {model.clip_length}×{model.frame_size}², context "
          f"{args.context}, conv {model.conv_impl}, ynn {args.cpu_ynn_fusion}; compile "
          f"{compile_s:.1f} s; wall "
          f"{wall:.3f} s/step, op time {total:.3f} s/step ({len(seconds)} ops); load "
          f"average now {os.getloadavg()[0]:.1f}")
    header = f"{'op class':<38}{'pass':<9}{'s/step':>9}{'%':>6}{'GFLOP':>9}{'GFLOP/s':>9}"
    print(header)
    for r in rows:
        gflops = r["flops"] / r["seconds"] / 1e9 if r["seconds"] else 0.0
        print(f"{r['cls']:<38}{r['direction']:<9}{r['seconds']:>9.3f}"
              f"{100 * r['seconds'] / total:>6.1f}{r['flops'] / 1e9:>9.2f}{gflops:>9.1f}")
    flops = sum(r["flops"] for r in rows)
    print(f"{'total':<47}{total:>9.3f}{100.0:>6.1f}{flops / 1e9:>9.2f}"
          f"{flops / total / 1e9:>9.1f}")
    if args.top:
        print(f"\nslowest {args.top} ops:")
        for o in ops[:args.top]:
            print(f"  {o['seconds']:8.4f} s {o['flops'] / 1e9:8.2f} GFLOP  {o['op']:<28} "
                  f"{o['op_name'][:110]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "load_average": list(os.getloadavg()),
                       "compile_s": compile_s, "wall_s": wall, "op_seconds": total,
                       "classes": rows, "ops": ops}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
