"""Tensor parallelism (`mesh.strategy=dp_tp`) in the compiled train step: no weight gathers.

The trainer's real train step (`bench.topology.lower_train_step`: its step function, state
and batch shardings) of a micro IENet, compiled for 8 fake CPU devices as a (data, model)
= (4, 2) mesh; the collectives are read from the optimised HLO (`bench.hlo`). Megatron
splits each block's heads and MLP over `model`: its forward and backward need all-reduces
of activations only. Before the qkv projection was stored head-major, its `[C, 3C]` kernel
was split contiguously over `model` (device 0: all of q and half of k) and used split by
heads, so XLA all-gathered the kernel and bias in every block (12 all-gathers here).
"""

import jax
import pytest

from bench import hlo

pytestmark = pytest.mark.slow

# two Swin stages (12 and 24 channels), one block each, 16-frame 16-pixel clips
MICRO = dict(clip_length=16, frame_size=16, dims=(12, 24), depths=(1, 1), window=(2, 2, 2))


def compiled_hlo(heads):
    from bench import topology
    from configs import ienet

    if jax.device_count() < 8:
        pytest.skip("needs 8 (fake) devices")
    config = ienet.get_config("tiny")
    config.model.update(MICRO, heads=heads)
    config.mesh.strategy, config.mesh.shape = "dp_tp", (4, 2)
    config.train.batch_size = 4
    low = topology.lower_train_step(config, jax.devices()[:8])
    return low.lowered.compile().as_text()


def test_heads_split_over_model_gather_no_weights():
    text = compiled_hlo((2, 2))
    found = hlo.collectives(text)
    assert found["all-gather"].count == 0, hlo.op_names(text, "all-gather")
    # the Megatron all-reduces: each block's attention and MLP, forward and backward
    reduced = hlo.op_names(text, "all-reduce")
    assert sum("/attn/" in n for n in reduced) >= 4


def test_heads_the_model_axis_does_not_divide_stay_replicated():
    """3 heads on a 2-way `model` axis: that block's attention (qkv, bias table, output
    projection) is replicated and computed whole on each device of the pair, not padded to
    4 heads and gathered (its output projection's rows split while its heads did not:
    XLA gathered the projection's input gradient)."""
    text = compiled_hlo((3, 2))
    assert hlo.collectives(text)["all-gather"].count == 0, hlo.op_names(text, "all-gather")
