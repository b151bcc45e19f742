"""Golden parity: reference weights → converter → Flax IENet reproduces ienet_seed.npz."""


import jax
import numpy as np
import pytest
from golden_weights import reference_state_dict

from configs.ienet import model_config
from ienet_jax import models
from ienet_jax.convert import from_reference_state_dict
from ienet_jax.data.normalize import normalize_reference

TOL = 1e-4
STAGES = ("patch_embed", "stage_0", "stage_1", "stage_2", "backbone")
GOLDEN_NAMES = {"patch_embed": "patch_embed", "stage_0": "stage0", "stage_1": "stage1",
                "stage_2": "stage2", "backbone": "backbone"}


def rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


@pytest.fixture(scope="module")
def golden(golden_dir):
    with np.load(golden_dir / "ienet_seed.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def state_dict(golden_dir, det_init):
    return reference_state_dict(golden_dir, det_init)


def reference_config(context: bool, nir_channels: int):
    cfg = model_config("reference")
    cfg.context.enabled = context
    cfg.nir_channels = nir_channels
    return cfg


def run(cfg, state_dict, golden):
    variables = from_reference_state_dict(state_dict, cfg)
    model = models.build(cfg)
    rgb = normalize_reference(golden["rgb_u8"])
    nir = normalize_reference(golden["nir_u8"])[..., : cfg.nir_channels]
    forward = jax.jit(
        lambda v, r, n: model.apply(v, r, n, train=False, mutable=["intermediates"])
    )
    out, state = forward(variables, rgb, nir)
    return jax.tree.map(np.asarray, out), jax.tree.map(np.asarray, state["intermediates"])


# One compiled reference forward per golden variant: ce_off with the 3-channel NIR model
# (the reference as published), ce_on with the folded 1-channel NIR model.
@pytest.fixture(scope="module", params=[("ce_off", False, 3), ("ce_on", True, 1)],
                ids=["ce_off-nir3", "ce_on-nir1"])
def reference_run(request, state_dict, golden):
    variant, context, nir_channels = request.param
    out, inter = run(reference_config(context, nir_channels), state_dict, golden)
    return variant, out, inter


def to_reference_layout(x):
    return np.moveaxis(x, -1, 1)  # [B, T, H, W, C] -> [B, C, T, H, W]


def test_rppg_outputs_match_golden(reference_run, golden):
    variant, out, _ = reference_run
    for key in ("rgb_rppg", "nir_rppg", "fused_rppg"):
        want = golden[f"{variant}/{key}"]
        assert out[key].shape == want.shape
        assert rel_err(out[key], want) < TOL, (variant, key, rel_err(out[key], want))


def test_intermediates_match_golden(reference_run, golden):
    variant, _, inter = reference_run
    maps = {f"rgb_{s}": inter["rgb"][f"{s}_out"][0] for s in STAGES}
    maps["nir_backbone"] = inter["nir"]["backbone_out"][0]
    for name, value in maps.items():
        modality, stage = name.split("_", 1)
        gname = f"{variant}/{modality}_{GOLDEN_NAMES[stage]}"
        ref = to_reference_layout(value)
        np.testing.assert_array_equal(ref.shape, golden[f"{gname}_shape"])
        got_slice = ref[:, :8, :8, :4, :4]
        assert rel_err(got_slice, golden[f"{gname}_slice"]) < TOL, gname
        assert rel_err(ref.mean(axis=(2, 3, 4)), golden[f"{gname}_mean_c"]) < TOL, gname
    fused = to_reference_layout(inter["fused"][0])[:, :8, :8, :4, :4]
    assert rel_err(fused, golden[f"{variant}/fused_feature_slice"]) < TOL


def test_nir_channel_folding_equals_three_identical_channels(state_dict, golden):
    """The folded 1-channel patch embedding equals the 3-channel one on a repeated channel."""
    from ienet_jax.models.conv import patchify_conv

    v3 = from_reference_state_dict(state_dict, reference_config(False, 3))
    v1 = from_reference_state_dict(state_dict, reference_config(False, 1))
    k3 = v3["params"]["nir"]["patch_embed"]["kernel"]
    k1 = v1["params"]["nir"]["patch_embed"]["kernel"]
    assert k3.shape[-2] == 3 and k1.shape[-2] == 1
    nir = normalize_reference(golden["nir_u8"][:, :8, :16, :16])
    np.testing.assert_allclose(
        patchify_conv(nir[..., :1], k1), patchify_conv(nir, k3), rtol=1e-5, atol=1e-5
    )


def test_missing_key_is_named(state_dict):
    broken = dict(state_dict)
    key = "RGB_feature_extraction.layers.1.blocks.0.mlp.fc1.weight"
    del broken[key]
    with pytest.raises(ValueError, match="layers.1.blocks.0.mlp.fc1.weight"):
        from_reference_state_dict(broken, reference_config(False, 3))


def test_unexpected_key_is_named(state_dict):
    broken = dict(state_dict, **{"RGB_feature_extraction.extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="extra.weight"):
        from_reference_state_dict(broken, reference_config(False, 3))


def test_shape_mismatch_is_named(state_dict):
    broken = dict(state_dict)
    key = "NIR_feature_extraction.norm.weight"
    broken[key] = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="NIR_feature_extraction.norm.weight"):
        from_reference_state_dict(broken, reference_config(False, 3))


def test_data_parallel_prefix_is_stripped(state_dict):
    prefixed = {f"module.{k}": v for k, v in state_dict.items()}
    variables = from_reference_state_dict(prefixed, reference_config(False, 3))
    np.testing.assert_array_equal(
        variables["params"]["head"]["conv"]["bias"], state_dict["rPPG_net.dense7.bias"]
    )


def test_structure_matches_model_init(state_dict):
    from ienet_jax.convert.ienet import expected_variables

    cfg = reference_config(True, 1)
    variables = from_reference_state_dict(state_dict, cfg)
    expected = expected_variables(models.build(cfg), cfg)
    assert jax.tree.structure(variables) == jax.tree.structure(
        {k: expected[k] for k in ("params", "batch_stats")}
    )
    assert "context" in variables["params"]["rgb"]["stage_2"]["block_3"]
    # The 384-channel stage uses the 128-wide context_enhance3 group convolutions.
    kernel = variables["params"]["rgb"]["stage_2"]["block_3"]["context"]["conv_2"]["kernel"]
    np.testing.assert_array_equal(
        kernel,
        np.transpose(
            state_dict["RGB_feature_extraction.layers.2.blocks.3.context_enhance3.conv3.weight"],
            (2, 3, 4, 1, 0),
        ),
    )
