"""Benchmarks: `python -m bench` (the table, `suite.py`) and `python -m bench.<name>`.

They print numbers; tests never assert timings.
"""
