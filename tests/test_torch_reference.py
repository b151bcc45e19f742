"""The PyTorch port of the reference IENet (`bench.torch_reference`) against the golden
outputs of the published code, and the side-by-side benchmark `bench.vs_torch` at a small
size. Skipped where the `torch` extra is not installed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bench import torch_reference as tr  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-4
OUTPUTS = ("rgb_rppg", "nir_rppg", "fused_rppg")


def rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


@pytest.fixture(scope="module")
def spec(golden_dir):
    return json.loads((golden_dir / "ienet_seed_state_dict.json").read_text())


@pytest.fixture(scope="module")
def golden(golden_dir):
    with np.load(golden_dir / "ienet_seed.npz") as data:
        return {k: data[k] for k in data.files}


def det_model(spec, det_init, context: bool):
    floats = {k: s for k, (s, dtype) in spec.items() if "float" in dtype}
    model = tr.Fusion(context=context)
    return tr.load_det_state_dict(model, det_init.det_state_dict(floats)).eval()


def test_state_dict_is_the_reference_one(spec):
    """Same keys, in the same order, with the same shapes and dtypes (both variants)."""
    for context in (False, True):
        sd = tr.Fusion(context=context).state_dict()
        assert list(sd) == list(spec)
        for key, (shape, dtype) in spec.items():
            assert (list(sd[key].shape), str(sd[key].dtype)) == (shape, dtype), key


def test_relative_position_index_is_the_projects(spec):
    from ienet_jax.models.attention import relative_position_index

    index = tr.Fusion().state_dict()[
        "RGB_feature_extraction.layers.2.blocks.3.attn.relative_position_index"]
    np.testing.assert_array_equal(index.numpy(), relative_position_index((2, 7, 7)))


@pytest.mark.parametrize("variant,context", [("ce_off", False), ("ce_on", True)])
def test_outputs_match_golden(spec, det_init, golden, variant, context):
    model = det_model(spec, det_init, context)
    with torch.no_grad():
        outs = model(tr.normalize(golden["rgb_u8"]), tr.normalize(golden["nir_u8"]))
    for key, out in zip(OUTPUTS, outs):
        want = golden[f"{variant}/{key}"]
        assert out.shape == want.shape, key
        err = rel_err(out.numpy(), want)
        print(f"{variant}/{key}: max rel diff {err:.2e}")
        assert err < TOL, (variant, key, err)


def test_unfilled_or_unknown_keys_are_named(spec, det_init):
    floats = {k: s for k, (s, dtype) in spec.items() if "float" in dtype}
    sd = det_init.det_state_dict(floats)
    del sd["rPPG_net.dense7.bias"]
    with pytest.raises(ValueError, match="rPPG_net.dense7.bias"):
        tr.load_det_state_dict(tr.Fusion(), sd)
    sd = dict(det_init.det_state_dict(floats), extra=np.zeros(1, np.float32))
    with pytest.raises(ValueError, match="extra"):
        tr.load_det_state_dict(tr.Fusion(), sd)


def tiny_model():
    torch.manual_seed(0)
    return tr.Fusion(frames=16, embed_dim=12, depths=(1, 1, 2), num_heads=(1, 2, 4),
                     window_size=(2, 4, 4))


def test_train_step_updates_parameters():
    model = tiny_model().eval()
    optimizer = tr.make_optimizer(model)
    rng = np.random.default_rng(0)
    rgb = tr.normalize(rng.integers(0, 256, (2, 16, 32, 32, 3), dtype=np.uint8))
    nir = tr.normalize(rng.integers(0, 256, (2, 16, 32, 32, 3), dtype=np.uint8))
    label = torch.from_numpy(np.sin(np.arange(16) / 3.0 + rng.uniform(0, 6, (2, 1)))
                             .astype(np.float32))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = tr.train_step(model, optimizer, rgb, nir, label)
    assert torch.isfinite(loss) and loss > 0
    after = model.state_dict()
    changed = [k for k, v in after.items() if v.is_floating_point()
               and not torch.equal(v, before[k])]
    # every parameter on the path of the fused rPPG moves (the context modules are unused)
    grads = [n for n, p in model.named_parameters()
             if p.grad is not None and p.grad.abs().sum() > 0]
    assert grads and set(grads) <= set(changed)
    assert "rPPG_net.dense7.weight" in changed
    assert "RGB_feature_extraction.patch_embed.proj.weight" in changed
    # eval-mode normalisation: running statistics stay as they were
    key = "RGB_feature_extraction.upsample.2.running_mean"
    assert torch.equal(after[key], before[key])


def test_stage1_loss_terms():
    t = torch.arange(128) / 30.0
    pulse = torch.sin(2 * torch.pi * 1.2 * t)[None]
    assert float(tr.NegPearson()(pulse, pulse)) == pytest.approx(0.0, abs=1e-5)
    assert float(tr.NegPearson()(-pulse, pulse)) == pytest.approx(0.0, abs=1e-5)
    assert float(tr.spectral_loss(pulse, pulse)) == pytest.approx(0.0, abs=1e-7)
    other = torch.sin(2 * torch.pi * 2.0 * t)[None]
    assert float(tr.spectral_loss(other, pulse)) > 1e-3
    assert float(tr.stage1_loss(other, pulse)) > float(tr.stage1_loss(pulse, pulse))


def test_spectral_loss_matches_the_projects():
    import jax.numpy as jnp

    from ienet_jax.losses import spectral_distance

    rng = np.random.default_rng(1)
    pred, label = rng.standard_normal((2, 2, 64)).astype(np.float32)
    ours = float(tr.spectral_loss(torch.from_numpy(pred), torch.from_numpy(label)))
    theirs = float(spectral_distance(jnp.asarray(pred), jnp.asarray(label), 30.0))
    assert ours == pytest.approx(theirs, rel=1e-4)


def test_vs_torch_runs_small(tmp_path):
    """Both frameworks' train steps timed at the tiny size, one round."""
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one CPU device, as a user's machine (conftest sets 8)
    out_json = tmp_path / "vs.json"
    out = subprocess.run(
        [sys.executable, "-m", "bench.vs_torch", "--variant", "tiny", "--frames", "16",
         "--size", "32", "--repeats", "1", "--rounds", "1", "--json", str(out_json)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert "JAX/PyTorch" in out.stdout
    result = json.loads(out_json.read_text())
    assert [r["framework"] for r in result["rows"]] == ["pytorch", "jax"]
    for row in result["rows"]:
        assert row["median_s"] > 0 and row["warmup_s"] > 0 and row["matmul_gflops"] > 0
    assert result["ratio"] > 0
