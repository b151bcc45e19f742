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
# ... as the qkv projection of windows' tokens gives them `[B·nW, N, 3, heads, C / heads]`.
WINDOW_TOKENS_QKV = (BATCH, TOKENS, None, HEADS, KV)


def divisible(names, shape) -> tuple:
    """`names` of an array of `shape`, with None for each dimension whose mesh axes (the
    current rules, the current mesh) do not divide its size: such a dimension stays
    replicated, as a parameter's does (`ienet_jax.parallel.rules.logical_to_spec`)."""
    sizes = jax.sharding.get_abstract_mesh().shape
    if not sizes:
        return tuple(names)
    kept = []
    for name, target, size in zip(names, nn.logical_to_mesh_axes(names), shape):
        target = (target,) if isinstance(target, str) else target
        if isinstance(target, tuple) and size % math.prod(sizes.get(a, 1) for a in target):
            name = None
        kept.append(name)
    return tuple(kept)


def constrain(x, names):
    """`nn.with_logical_constraint(x, names)`, but a dimension whose mesh axes do not divide
    its size is constrained replicated (`divisible`): e.g. 3 heads on a 2-way `model`
    axis, which XLA would otherwise pad to 4 and gather around every use."""
    return nn.with_logical_constraint(x, divisible(names, x.shape))


def spec(names, shape, whole=()) -> jax.sharding.PartitionSpec:
    """The mesh PartitionSpec of an array of `shape` with logical `names` under the current
    rules and mesh (`divisible`), the dimensions named in `whole` never split: what a
    `shard_map` around a kernel that needs them whole takes."""
    names = tuple(None if n in whole else n for n in divisible(names, shape))
    return nn.logical_to_mesh_axes(names)
