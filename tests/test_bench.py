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
