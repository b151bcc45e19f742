"""Run `bench.topology` over a grid of strategies, dtypes and remat, one JSON file per row.

    python -m bench.topology_grid --config=configs/ienet.py:reference --topology v5e:4x4 \
        --strategy dp --strategy fsdp --strategy dp_tp --dtype float32 --dtype bfloat16 \
        --remat false --remat true --largest --out runs/grid

For every (topology, strategy, dtype, remat): the config's own batch (raised to one clip per
data-parallel device as `bench.topology` does), then with `--largest` the largest
power-of-two batch per data-parallel device whose step fits the chip's memory: the first
probe is predicted from the first row (arguments + temporaries growing linearly with the
clips per device), then doubled while it fits or halved until it does. `dp_tp` uses a
`model` axis of `--tp` devices (`mesh.shape=(-1, tp)`). Each row is `bench.topology`'s row
plus `"fits"`, written to `--out/<name>.json` as soon as it is compiled; a row whose file
exists is read, not compiled again, so an interrupted grid resumes where it stopped. A
step XLA refuses to compile for lack of memory (RESOURCE_EXHAUSTED, XLA:TPU) is a row with
`"fits": false` and the `"error"`. `--frozen` (a `bench.topology` flag) compiles the frozen
phase's step of a stage-2 config instead (rows named `…_s2frozen_…`).
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import ml_collections
from absl import app, flags, logging

from bench import topology

# --config (with its --config.key=value overrides) and --topology: bench.topology's flags
_CONFIG, _TOPOLOGY = topology._CONFIG, topology._TOPOLOGY
_STRATEGY = flags.DEFINE_multi_enum("strategy", ["dp"], ["dp", "fsdp", "dp_tp"],
                                    "mesh.strategy values (repeatable).")
_DTYPE = flags.DEFINE_multi_enum("dtype", ["float32"], ["float32", "bfloat16"],
                                 "model.dtype values (repeatable).")
_REMAT = flags.DEFINE_multi_enum("remat", ["false"], ["false", "true"],
                                 "model.remat values (repeatable).")
_TP = flags.DEFINE_integer("tp", 2, "Size of the model axis for dp_tp.")
_LARGEST = flags.DEFINE_bool("largest", False, "Also search the largest batch that fits.")
_MAX_PROBES = flags.DEFINE_integer("max_probes", 4, "Compiles per largest-batch search.")
_OUT = flags.DEFINE_string("out", None, "Folder of the per-row JSON files.")
flags.mark_flags_as_required(["out"])


def variant(config: ml_collections.ConfigDict, strategy: str, dtype: str, remat: bool,
            tp: int, batch: int | None = None) -> ml_collections.ConfigDict:
    """A copy of `config` with the grid's keys set (`batch`: global, None = the config's)."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.mesh.strategy = strategy
    config.mesh.shape = (-1, tp) if strategy == "dp_tp" else (-1, 1)
    config.model.dtype = dtype
    config.model.remat = remat
    if batch is not None:
        config.train.batch_size = batch
    return config


def row_name(config: ml_collections.ConfigDict, name: str, per_way: int | None,
             frozen: bool = False) -> str:
    """File stem of a row: model, stage (+ frozen phase), topology, strategy, dtype, remat,
    batch, and the attention's formulation unless the default (`--config.model.attention`)."""
    m = config.model
    batch = "paper" if per_way is None else f"b{per_way}"
    stage = f"s{int(config.train.stage)}" + ("frozen" if frozen else "")
    attention = str(m.get("attention", "einsum"))
    return "_".join([m.name, stage, name.replace(":", "-"),
                     str(config.mesh.strategy), str(m.dtype),
                     "remat" if m.remat else "noremat", batch]
                    + ([] if attention == "einsum" else [attention]))


def data_ways(row: dict, strategy: str, tp: int) -> int:
    return row["devices"] // tp if strategy == "dp_tp" else row["devices"]


def predict_per_way(row: dict, per_way: int) -> int:
    """Largest power of two of clips per data way whose bytes (arguments plus temporaries
    that grow linearly with the clips) would fit `row`'s device memory; at least 1."""
    per_clip = max(row["temp_bytes"] + row["output_bytes"] - row["alias_bytes"], 1) / per_way
    room = row["device_memory_bytes"] - row["argument_bytes"]
    best = 1
    while (2 * best) * per_clip <= room:
        best *= 2
    return best


class Grid:
    """Rows compiled or read back from `out` (`frozen`: of the frozen phase's step)."""

    def __init__(self, out: Path, frozen: bool = False):
        self.out = out
        self.frozen = frozen
        out.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []

    def row(self, config: ml_collections.ConfigDict, name: str,
            per_way: int | None) -> dict:
        path = self.out / f"{row_name(config, name, per_way, self.frozen)}.json"
        if path.exists():
            row = json.loads(path.read_text())
        else:
            logging.info("compiling %s", path.stem)
            try:
                row = topology.analyse(config, name, frozen=self.frozen)[0]
                row["fits"] = row["bytes_per_device"] <= row["device_memory_bytes"]
            except Exception as e:  # XLA:TPU refuses a program larger than HBM
                if "RESOURCE_EXHAUSTED" not in str(e):
                    raise
                row = {"fits": False, "error": str(e).splitlines()[0][:500],
                       "global_batch": int(config.train.batch_size)}
            row["row"] = path.stem
            path.write_text(json.dumps(row, indent=2) + "\n")
            if "error" in row:
                print(f"{path.stem}: does not fit ({row['error'][:160]})", flush=True)
            else:
                print(topology.format_table([row]).splitlines()[-1], flush=True)
        self.rows.append(row)
        return row


def largest(grid: Grid, base: ml_collections.ConfigDict, name: str, first: dict,
            strategy: str, tp: int, max_probes: int) -> dict | None:
    """The fitting row with the most clips per data way (powers of two), or None."""
    ways = data_ways(first, strategy, tp)
    per_way = predict_per_way(first, first["global_batch"] // ways)
    fits: dict[int, dict] = {}
    failing = None
    for _ in range(max_probes):
        config = variant(base, strategy, base.model.dtype, base.model.remat, tp, per_way * ways)
        row = grid.row(config, name, per_way)
        if row["fits"]:
            fits[per_way] = row
        else:
            failing = per_way if failing is None else min(failing, per_way)
        if fits and failing == 2 * max(fits):
            break
        per_way = 2 * per_way if row["fits"] else per_way // 2
        if per_way < 1:
            break
    return fits[max(fits)] if fits else None


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    grid = Grid(Path(_OUT.value), topology._FROZEN.value)
    tp = _TP.value
    for name, strategy, dtype, remat in itertools.product(
            _TOPOLOGY.value, _STRATEGY.value, _DTYPE.value, _REMAT.value):
        config = variant(_CONFIG.value, strategy, dtype, remat == "true", tp)
        first = grid.row(config, name, None)
        if _LARGEST.value and "error" not in first:
            largest(grid, config, name, first, strategy, tp, _MAX_PROBES.value)
    print(topology.format_table([r for r in grid.rows if "error" not in r]))


def run() -> None:
    import jax

    from ienet_jax import cli

    jax.config.update("jax_platforms", "cpu")  # compile-only devices (as bench.topology)
    cli.run(main)


if __name__ == "__main__":
    sys.exit(run())
