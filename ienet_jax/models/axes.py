"""Logical axis names used by the models (the only names models use for sharding).

Models annotate parameters with `nn.with_logical_partitioning` and key activations with
`nn.with_logical_constraint` using these names; the mapping onto mesh axes (e.g.
`batch → "data"`, `embed`/`mlp → "model"`) lives with the mesh, never in a model.
`constrain` is `nn.with_logical_constraint` that, like the parameter rules, leaves a
dimension replicated when its mesh axes do not divide it.

- `batch`: examples (or attention windows, which are batch-like).
- `time`, `height`, `width`: token / frame grid of a clip `[B, T, H, W, C]`.
- `embed`: model width (channels of a Swin stage, LayerNorm and bias vectors).
- `mlp`: hidden width of a Swin MLP.
- `heads`: attention heads; `kv`: per-head width (the fused qkv kernel is
  `[embed, 3, heads, kv]`, the output projection's `[heads, kv, embed]`).
- `merge`: the 4 × embed channels of a patch-merging layer.
- `conv_in`, `conv_out`: convolution channels (context enhancement, upsampling, patch
  embedding).
- `table`: rows of a relative-position-bias table.
- `tokens`: tokens of an attention window.
"""

import math

import jax
from flax import linen as nn

BATCH = "batch"
TIME = "time"
HEIGHT = "height"
WIDTH = "width"
EMBED = "embed"
MLP = "mlp"
HEADS = "heads"
KV = "kv"
MERGE = "merge"
CONV_IN = "conv_in"
CONV_OUT = "conv_out"
TABLE = "table"
TOKENS = "tokens"

ALL = (
    BATCH, TIME, HEIGHT, WIDTH, EMBED, MLP, HEADS, KV, MERGE, CONV_IN, CONV_OUT, TABLE, TOKENS,
)

# A clip's activations `[B, T, H, W, C]`.
CLIP = (BATCH, TIME, HEIGHT, WIDTH, EMBED)
# Input frames `[B, T, H, W, C]` (C = colour / NIR channels, never sharded).
FRAMES = (BATCH, TIME, HEIGHT, WIDTH, None)
# Queries, keys and values of window tokens `[3, B·nW, heads, N, C / heads]`.
WINDOW_QKV = (None, BATCH, HEADS, TOKENS, KV)


def constrain(x, names):
    """`nn.with_logical_constraint(x, names)`, but a dimension whose mesh axes (the current
    rules, the current mesh) do not divide its size is constrained replicated, as such a
    parameter dimension is (`ienet_jax.parallel.rules.logical_to_spec`): e.g. 3 heads on a
    2-way `model` axis, which XLA would otherwise pad to 4 and gather around every use."""
    sizes = jax.sharding.get_abstract_mesh().shape
    if sizes:
        spec = nn.logical_to_mesh_axes(names)
        kept = []
        for name, target, size in zip(names, spec, x.shape):
            target = (target,) if isinstance(target, str) else target
            if isinstance(target, tuple) and size % math.prod(sizes.get(a, 1) for a in target):
                name = None
            kept.append(name)
        names = tuple(kept)
    return nn.with_logical_constraint(x, names)
