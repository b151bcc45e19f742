"""Evaluation building blocks: clip inference, per-video stitching, the metrics table.

- `stitch`: clips of a video back into one series, in order of `start_frame` (overlaps
  averaged).
- `inference`: a model and its variables from a checkpoint; jitted, batched clip inference.
- `table`: per-video heart rates of the model, POS, CHROM and a constant predictor in one
  evaluation mode, their metrics, and the printed table.

`python -m ienet_jax.evaluate` ties them together.
"""
