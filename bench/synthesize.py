"""Synthetic-data generator throughput: rendered (+ encoded) frames per second.

  .venv/bin/python -m bench.synthesize [--size 640x480] [--seconds 4]

Prints one line per (preset, stage): render only (RGB+NIR in memory) and the full
VIPL-HR writer (render + two .avi encodes + labels).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from data_prep.synth import get_preset, make_session
from data_prep.synth.layouts import plan, write_job
from data_prep.synth.portrait import load_portrait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    load_portrait()  # one-off per process (~1 s), not part of the steady state
    print(f"{'preset':<6} {'stage':<18} {'size':>9} {'frames':>6} {'frames/s':>9}")
    for preset in ("easy", "hard"):
        session = make_session((0,), (0,), args.seconds, 30.0, size, get_preset(preset))
        start = time.perf_counter()
        n = sum(1 for _ in session.frames(nir=True))
        rate = n / (time.perf_counter() - start)
        print(f"{preset:<6} {'render rgb+nir':<18} {args.size:>9} {n:>6} {rate:>9.1f}")
        with tempfile.TemporaryDirectory() as tmp:
            (job,) = plan("vipl_hr", 0, 1, 1, args.seconds, 30.0, size, preset)
            start = time.perf_counter()
            n = write_job(Path(tmp), job)
            rate = n / (time.perf_counter() - start)
        print(f"{preset:<6} {'vipl_hr write':<18} {args.size:>9} {n:>6} {rate:>9.1f}")


if __name__ == "__main__":
    main()
