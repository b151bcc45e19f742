"""Benchmarks: `python -m bench.<name>`; they print numbers, tests never assert timings."""
