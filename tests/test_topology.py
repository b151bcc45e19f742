"""bench.topology: the trainer's train step compiled for a TPU and a GPU topology, no hardware.

Needs the `aot` extra (libtpu, jax-cuda12-plugin); skipped with the reason without it.
Four compiles (v5e:2x2 and h100:1x1x2, dp and fsdp), each lowered and compiled once per
module and shared by the tests, of a micro IENet (`MICRO`: the tiny variant shrunk like
configs/quickstart.py's runlocal model, ~35 k parameters): what is checked (state split by
the FSDP factor, the collective kinds of each strategy, native convolutions) does not
depend on the model's size, and compiling the tiny IENet instead took minutes in CI.
"""

import importlib.util

import pytest

from bench import hlo, targets

pytestmark = pytest.mark.slow

_MISSING = [name for name in ("libtpu", "jax_cuda12_plugin")
            if importlib.util.find_spec(name) is None]
needs_aot = pytest.mark.skipif(bool(_MISSING), reason=f"the aot extra is not installed "
                               f"(missing {', '.join(_MISSING)}): pip install -e '.[aot]'")

TPU, GPU = "v5e:2x2", "h100:1x1x2"
# one Swin stage pair, 16-frame 16-pixel clips; dims divisible by the context enhancement's
# 3 groups and by the 4 FSDP ways (parameters split ~3.9× on v5e:2x2)
MICRO = dict(clip_length=16, frame_size=16, dims=(12, 24), depths=(1, 1), heads=(1, 2),
             window=(2, 2, 2))


def micro_config(strategy: str, attention: str = "einsum"):
    from configs import ienet

    config = ienet.get_config("tiny")
    config.model.update(MICRO, attention=attention)
    config.mesh.strategy = strategy
    config.train.batch_size = 4
    return config


@pytest.fixture(scope="module")
def compiled():
    """`get(topology, strategy[, attention])` → `(row, optimised HLO text, Lowered)`, each
    lowered and compiled once per module."""
    from bench import topology

    cache = {}

    def get(name, strategy, attention="einsum"):
        key = name, strategy, attention
        if key not in cache:
            config = micro_config(strategy, attention)
            low = topology.lower_train_step(config, targets.devices(targets.parse(name)))
            cache[key] = (*topology.analyse(config, name, low), low)
        return cache[key]

    return get


def test_parse_names_and_errors():
    assert targets.parse("v5p:2x4x4").shape == (2, 4, 4)
    gpu = targets.parse("H100:1x2x8")
    assert gpu.name == "h100:1x2x8" and gpu.hosts == 2
    assert gpu.interconnect_bytes_per_s < gpu.chip.interconnect_bytes_per_s  # InfiniBand
    for bad in ("v5p-64", "a100:1x8", "h100:8"):
        with pytest.raises(ValueError, match="--topology"):
            targets.parse(bad)


def test_collectives_parse_tpu_and_gpu_spellings():
    text = """
%all-reduce-scatter.1 (input_0: f32[8,4]) -> f32[2,4] {
  %all-reduce.9 = f32[8,4]{1,0} all-reduce(%input_0), to_apply=%add
}
ENTRY %main (p: f32[8,4], q: bf16[2,16]) -> f32[2,4] {
  %p = f32[8,4]{1,0} parameter(0)
  %q = bf16[2,16]{1,0} parameter(1)
  %fusion.3 = f32[2,4]{1,0} fusion(%p), kind=kOutput, calls=%all-reduce-scatter.1
  %all-gather.2 = bf16[8,16]{1,0} all-gather(%q), dimensions={0}
  %ags = (f32[2,4]{1,0}, f32[8,4]{1,0}) all-gather-start(%fusion.3), dimensions={0}
  %agd = f32[8,4]{1,0} all-gather-done(%ags)
  ROOT %ar = f32[8,4]{1,0} all-reduce-start(%agd), to_apply=%add
}
"""
    found = hlo.collectives(text)
    assert (found["reduce-scatter"].count, found["reduce-scatter"].bytes) == (1, 128)
    assert (found["all-gather"].count, found["all-gather"].bytes) == (2, 256 + 128)
    assert (found["all-reduce"].count, found["all-reduce"].bytes) == (1, 128)
    assert hlo.wire_bytes(found) == 128 + 384 + 2 * 128
    assert hlo.while_loops(text) == 0
    looped = text.replace("ROOT %ar", "%w = (f32[8,4]{1,0}) while(%ags), condition=%c, "
                          "body=%b\n  ROOT %ar")
    assert hlo.while_loops(looped) == 1


def test_roofline_and_batch_fitting():
    import jax

    from bench import topology
    from configs import ienet
    from ienet_jax.parallel.mesh import create_mesh

    v5e = targets.parse("v5e:4x4")
    roof = topology.roofline(197e12, 819e9 * 2, 400e9 * 0.5, v5e, "float32")
    assert roof["bound"] == "memory" and roof["step_time_estimate_s"] == pytest.approx(2.0)
    assert roof["compute_time_s"] == pytest.approx(1.0)
    config = ienet.get_config("tiny")  # stage-1 preset: global batch 2
    mesh = create_mesh(config.mesh, jax.devices("cpu")[:8])
    assert topology.fit_batch(config, mesh).train.batch_size == 8
    assert config.train.batch_size == 2  # the caller's config is left alone
    config.train.batch_size = 16
    assert topology.fit_batch(config, mesh) is config


@needs_aot
@pytest.mark.parametrize("name, fsdp_ways", [(TPU, 4), (GPU, 2)])
def test_fsdp_divides_state_and_gathers(compiled, name, fsdp_ways):
    dp, dp_text, _ = compiled(name, "dp")
    fsdp, fsdp_text, _ = compiled(name, "fsdp")
    for row in (dp, fsdp):
        assert row["devices"] == fsdp_ways and row["global_batch"] == 4
        assert 0 < row["bytes_per_device"] < row["device_memory_bytes"]
        assert row["flops_per_device"] > 0 and row["step_time_estimate_s"] > 0
    # parameters (and Adam moments) per device fall by the fsdp factor, up to the few
    # replicated arrays; the compiled program's arguments (state + batch shard) with them,
    # less on TPU, whose layouts pad each of the micro model's small arrays to (8, 128)
    # tiles (v5e:2x2: 3.26 → 1.27 MB, while the state falls 3.9×)
    ratio = dp["state_bytes_per_device"]["params"] / fsdp["state_bytes_per_device"]["params"]
    assert 0.85 * fsdp_ways < ratio <= fsdp_ways
    padded = 0.5 if name == TPU else 0.75
    assert dp["argument_bytes"] / fsdp["argument_bytes"] > padded * fsdp_ways
    # dp: gradients all-reduced, nothing gathered; fsdp: weights gathered, grads scattered
    assert dp["collectives"]["all-reduce"] > 0
    assert dp["collectives"]["all-gather"] == 0 and dp["collectives"]["reduce-scatter"] == 0
    assert fsdp["collectives"]["all-gather"] > 0 and fsdp["collectives"]["reduce-scatter"] > 0
    if name == TPU:
        assert "calls=%all-reduce-scatter" in fsdp_text
        assert fsdp["flops_source"].startswith("compiled")
    else:
        assert "all-gather-start" in fsdp_text and "reduce-scatter" in fsdp_text
        assert fsdp["flops_source"] == f"unpartitioned step / {fsdp_ways} devices"


@needs_aot
@pytest.mark.parametrize("name", [TPU, GPU])
def test_accelerator_step_uses_native_convolutions(compiled, name):
    """Lowered and compiled in this CPU process, the step gets XLA's native convolutions
    (cuDNN's on GPU), not the CPU tap sum (a `lax.scan` over taps: a while loop)."""
    import jax

    _, text, lowered = compiled(name, "dp")
    assert jax.default_backend() == "cpu"
    # (CPU: tests/test_models_conv)
    assert "stablehlo.convolution" in lowered.lowered.as_text()
    assert " while(" not in text
    if name == GPU:
        assert text.count("__cudnn$conv") >= 4


@needs_aot
def test_tpu_step_by_op_class(compiled):
    """`bench.topology --classes`: the compiled TPU step's FLOPs split by op class (XLA:TPU
    writes batched matmuls as base-dilated convolutions: one valid tap per batch position)
    add up to XLA's own count, and the attention and MLP matmuls appear in both passes."""
    from bench import profile

    row, text, _ = compiled(TPU, "dp")
    assert row["flops_source"].startswith("compiled")
    rows = row["classes"]
    assert rows == profile.hlo_classes(profile.HloModule(text))
    flops = sum(r["flops"] for r in rows)
    assert abs(flops - row["flops_per_device"]) < 0.03 * row["flops_per_device"]
    found = {(r["cls"], r["direction"]) for r in rows if r["flops"] > 0}
    for cls in ("attention QK", "attention AV", "MLP matmuls (+GELU)"):
        assert {(cls, "forward"), (cls, "backward")} <= found
    assert all(r["bytes"] >= 0 for r in rows) and sum(r["bytes"] for r in rows) > 0
    table = profile.format_classes(rows, row["peak_flops"],
                                   targets.parse(TPU).chip.memory_bytes_per_s)
    assert table.splitlines()[-1].startswith("total")


@needs_aot
def test_tpu_fused_attention_is_one_kernel_per_pass(compiled):
    """`model.attention=fused` compiled for a TPU (under `fsdp`: the batch split over the 4
    chips): each block's window attention is one Mosaic kernel forward and one backward,
    run per device in a shard_map, no softmax of materialised logits is left, and the
    kernels' FLOPs come from their cost estimates (in `classes` and in XLA's count; the
    unpartitioned count adds them: tests/test_bench.py): the step's FLOPs are the einsum
    step's within 10 % (the backward kernel recomputes q·kᵀ; the estimates count the
    matmuls only, XLA also the softmax)."""
    row, text, _ = compiled(TPU, "fsdp", "fused")
    plain, _, _ = compiled(TPU, "fsdp")
    blocks = 2 * sum(MICRO["depths"])  # RGB and NIR
    assert text.count('custom_call_target="tpu_custom_call"') == 2 * blocks
    classes = {(r["cls"], r["direction"]): r for r in row["classes"]}
    for direction in ("forward", "backward"):
        kernel = classes["attention fused kernel", direction]
        assert kernel["ops"] >= blocks and kernel["flops"] > 0 and kernel["bytes"] > 0
        assert ("attention softmax (+bias, mask)", direction) not in classes
    assert row["flops_source"] == plain["flops_source"] == "compiled step (per device)"
    flops, plain_flops = row["flops_per_device"], plain["flops_per_device"]
    assert abs(flops - plain_flops) < 0.1 * plain_flops


@needs_aot
def test_frozen_phase_needs_a_config_that_freezes():
    """`--frozen` compiles stage 2's frozen-phase step; a config without one says so."""
    from bench import topology

    with pytest.raises(ValueError, match=r"train.freeze_steps=0.*--frozen"):
        topology.lower_train_step(micro_config("dp"), targets.devices(targets.parse(TPU)),
                                  frozen=True)
