"""bench.topology_grid: the grid's configs, the largest-batch search, resuming from the row
files. The search runs against a fake `analyse` (bytes linear in the clips per device, as a
compiled step's temporaries are) so it costs no compile (the real rows' compile and analysis
are tests/test_topology.py's; a second micro compile here cost ~2 min of CI)."""

import json

import pytest
from test_topology import MICRO

from bench import topology, topology_grid

GIB = 2**30


def ienet(strategy="dp"):
    from configs import ienet

    config = ienet.get_config("tiny")
    config.model.update(MICRO)
    config.mesh.strategy = strategy
    return config


def test_variant_sets_the_grid_keys_on_a_copy():
    base = ienet()
    config = topology_grid.variant(base, "dp_tp", "bfloat16", True, 2, batch=64)
    assert config.mesh.shape == (-1, 2) and config.mesh.strategy == "dp_tp"
    assert config.model.dtype == "bfloat16" and config.model.remat
    assert config.train.batch_size == 64
    assert base.model.dtype == "float32" and base.train.batch_size == 2
    assert topology_grid.variant(base, "fsdp", "float32", False, 2).mesh.shape == (-1, 1)
    name = topology_grid.row_name(config, "v5e:4x4", 8)
    assert name == "ienet_s1_v5e-4x4_dp_tp_bfloat16_remat_b8"
    config.model.attention = "fused"  # a formulation other than the default is named
    assert topology_grid.row_name(config, "v5e:4x4", None) == (
        "ienet_s1_v5e-4x4_dp_tp_bfloat16_remat_paper_fused")


def fake_analyse(calls, limit_gib=16.0, refuse_above=None):
    """A row whose temporaries are 3 GiB per clip per data way (+1 GiB of arguments)."""
    def analyse(config, name, frozen=False):
        calls.append(int(config.train.batch_size))
        ways = 16 // (2 if config.mesh.strategy == "dp_tp" else 1)
        per_way = int(config.train.batch_size) // ways
        if refuse_above is not None and per_way > refuse_above:
            raise RuntimeError("RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out "
                               "of memory in memory space hbm.\nmore")
        temp = 3 * GIB * per_way
        row = {"topology": name, "devices": 16, "global_batch": int(config.train.batch_size),
               "argument_bytes": GIB, "output_bytes": GIB, "alias_bytes": GIB,
               "temp_bytes": temp, "bytes_per_device": GIB + temp,
               "device_memory_bytes": int(limit_gib * GIB), "compile_s": 1.0,
               "mesh": {"data": ways}, "strategy": str(config.mesh.strategy),
               "memory_fraction": (GIB + temp) / (limit_gib * GIB), "flops_per_device": 1e9,
               "bytes_accessed_per_device": 1e9, "step_time_estimate_s": 1e-3,
               "bound": "memory", "clips_per_s": 1.0, "mfu": 0.01, "collectives": {}}
        return row, ""
    return analyse


@pytest.mark.parametrize("strategy, refuse_above", [("dp", None), ("dp_tp", 4)])
def test_largest_batch_search_and_resume(tmp_path, monkeypatch, strategy, refuse_above):
    calls = []
    monkeypatch.setattr(topology, "analyse", fake_analyse(calls, refuse_above=refuse_above))
    grid = topology_grid.Grid(tmp_path)
    base = topology_grid.variant(ienet(), strategy, "float32", False, 2)
    ways = 16 if strategy == "dp" else 8
    first = grid.row(topology_grid.variant(base, strategy, "float32", False, 2, ways),
                     "v5e:4x4", None)
    # 1 + 3·b GiB ≤ 16 → b = 5: the prediction is 4 clips, 8 does not fit
    assert topology_grid.predict_per_way(first, 1) == 4
    best = topology_grid.largest(grid, base, "v5e:4x4", first, strategy, 2, max_probes=4)
    assert best["global_batch"] == 4 * ways and best["fits"]
    assert calls == [ways, 4 * ways, 8 * ways]
    eight = json.loads(next(tmp_path.glob("*_b8.json")).read_text())
    assert not eight["fits"]
    assert ("error" in eight) == (refuse_above is not None)
    # a second grid over the same folder reads the rows back, compiles nothing
    calls.clear()
    again = topology_grid.largest(topology_grid.Grid(tmp_path), base, "v5e:4x4", first,
                                  strategy, 2, max_probes=4)
    assert calls == [] and again == best


def test_largest_halves_when_the_prediction_does_not_fit(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(topology, "analyse", fake_analyse(calls, refuse_above=1))
    grid = topology_grid.Grid(tmp_path)
    base = topology_grid.variant(ienet(), "dp", "float32", False, 2)
    first = grid.row(topology_grid.variant(base, "dp", "float32", False, 2, 16), "v5e:4x4",
                     None)
    best = topology_grid.largest(grid, base, "v5e:4x4", first, "dp", 2, max_probes=4)
    assert best["global_batch"] == 16 and calls == [16, 64, 32, 16]


def test_other_compile_errors_are_raised(tmp_path, monkeypatch):
    def broken(config, name, frozen=False):
        raise RuntimeError("INVALID_ARGUMENT: something else")
    monkeypatch.setattr(topology, "analyse", broken)
    with pytest.raises(RuntimeError, match="INVALID_ARGUMENT"):
        topology_grid.Grid(tmp_path).row(ienet(), "v5e:4x4", None)
    assert not list(tmp_path.glob("*.json"))
