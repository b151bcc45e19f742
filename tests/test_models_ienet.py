"""IENet end to end: jitted forward/grad per variant, bfloat16, sharding, FEE, config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from configs.ienet import get_config, model_config
from ienet_jax import models
from ienet_jax.data.normalize import normalize_reference
from ienet_jax.models.ienet import IENet, temporal_normalize

RULES = (("batch", "data"), ("embed", "model"), ("mlp", "model"))


def abstract_variables(model, cfg, batch=1):
    t, s = cfg.clip_length, cfg.frame_size
    rgb = jax.ShapeDtypeStruct((batch, t, s, s, cfg.rgb_channels), jnp.float32)
    nir = jax.ShapeDtypeStruct((batch, t, s, s, cfg.nir_channels), jnp.float32)
    return jax.eval_shape(
        lambda r, n: model.init(jax.random.PRNGKey(0), r, n, train=False), rgb, nir
    )


def random_variables(model, cfg, seed=0):
    """Variables with the model's exact structure filled by numpy (no init compile)."""
    rng = np.random.default_rng(seed)
    shapes = nn.unbox(abstract_variables(model, cfg))

    def fill(path, spec):
        name = path[-1].key
        if name == "var":
            return (1.0 + 0.5 * rng.random(spec.shape)).astype(np.float32)
        if name == "scale":
            return (1.0 + 0.1 * rng.standard_normal(spec.shape)).astype(np.float32)
        if len(spec.shape) <= 1:
            return (0.1 * rng.standard_normal(spec.shape)).astype(np.float32)
        fan_in = int(np.prod(spec.shape[:-1]))
        return (rng.standard_normal(spec.shape) / np.sqrt(fan_in)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def clips(cfg, batch=2, seed=1):
    rng = np.random.default_rng(seed)
    shape = (batch, cfg.clip_length, cfg.frame_size, cfg.frame_size)
    rgb = normalize_reference(rng.integers(0, 256, (*shape, cfg.rgb_channels), dtype=np.uint8))
    nir = normalize_reference(rng.integers(0, 256, (*shape, cfg.nir_channels), dtype=np.uint8))
    return rgb, nir


def clip_model_inputs(raw):
    """The model inputs `ClipModel` builds from uint8 clips (RGB = the gray clip x 3)."""
    from ienet_jax.models import contract

    return contract.get("ienet").inputs({"rgb": jnp.repeat(raw, 3, -1), "nir": jnp.asarray(raw)})


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


@pytest.fixture(scope="module")
def tiny():
    cfg = model_config("tiny")
    model = models.build(cfg)
    return cfg, model, random_variables(model, cfg)


@pytest.fixture(scope="module")
def tiny_forward(tiny):
    cfg, model, variables = tiny
    rgb, nir = clips(cfg)
    out = jax.jit(lambda v, r, n: model.apply(v, r, n, train=False))(variables, rgb, nir)
    return jax.tree.map(np.asarray, out)


def train_step(model):
    """A jitted gradient step: Pearson-free MSE to a target signal, Adam, batch stats updated."""
    tx = optax.adam(1e-3)

    @jax.jit
    def step(variables, opt_state, rgb, nir, target, key):
        k1, k2 = jax.random.split(key)

        def loss_fn(params):
            out, updates = model.apply(
                {"params": params, "batch_stats": variables["batch_stats"]}, rgb, nir,
                train=True, rngs={"dropout": k1, "drop_path": k2}, mutable=["batch_stats"],
            )
            return jnp.mean((out["fused_rppg"] - target) ** 2), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
        upd, opt_state = tx.update(grads, opt_state, variables["params"])
        params = optax.apply_updates(variables["params"], upd)
        return {"params": params, **updates}, opt_state, loss, optax.tree.norm(grads)

    return tx, step


def check_train_step(cfg, model, variables):
    rgb, nir = clips(cfg)
    target = jnp.sin(jnp.linspace(0, 20, cfg.clip_length))[None].repeat(2, 0)
    tx, step = train_step(model)
    opt_state = tx.init(variables["params"])
    new, _, loss, gnorm = step(variables, opt_state, rgb, nir, target, jax.random.PRNGKey(3))
    assert np.isfinite(float(loss)) and float(gnorm) > 0 and np.isfinite(float(gnorm))
    before = variables["batch_stats"]["rgb"]["upsample"]["bn"]["mean"]
    after = new["batch_stats"]["rgb"]["upsample"]["bn"]["mean"]
    assert not np.allclose(before, after)  # running statistics were updated
    grads_reach_input = new["params"]["rgb"]["patch_embed"]["kernel"]
    assert not np.allclose(grads_reach_input, variables["params"]["rgb"]["patch_embed"]["kernel"])


def test_tiny_forward_shapes_and_finite(tiny, tiny_forward):
    cfg, _, _ = tiny
    for key in ("rgb_rppg", "nir_rppg", "fused_rppg"):
        assert tiny_forward[key].shape == (2, cfg.clip_length)
        assert np.all(np.isfinite(tiny_forward[key]))
        assert np.std(tiny_forward[key]) > 0
    assert set(tiny_forward) == {"rgb_rppg", "nir_rppg", "fused_rppg"}


def test_tiny_train_step(tiny):
    check_train_step(*tiny)


@pytest.mark.slow
def test_small_forward_and_train_step():
    cfg = model_config("small")
    model = models.build(cfg)
    variables = random_variables(model, cfg)
    rgb, nir = clips(cfg)
    out = jax.jit(lambda v, r, n: model.apply(v, r, n, train=False))(variables, rgb, nir)
    assert out["fused_rppg"].shape == (2, cfg.clip_length)
    assert np.all(np.isfinite(np.asarray(out["fused_rppg"])))
    check_train_step(cfg, model, variables)


def test_bfloat16_close_to_float32(tiny, tiny_forward):
    cfg, _, variables = tiny
    cfg16 = model_config("tiny")
    cfg16.dtype = "bfloat16"
    model16 = models.build(cfg16)
    rgb, nir = clips(cfg)
    out = jax.jit(lambda v, r, n: model16.apply(v, r, n, train=False))(variables, rgb, nir)
    for key in ("rgb_rppg", "nir_rppg", "fused_rppg"):
        assert out[key].dtype == jnp.float32
        err = rel_err(out[key], tiny_forward[key])
        assert 0 < err < 2e-2, (key, err)


def test_sharded_matches_single_device(tiny, tiny_forward):
    if jax.device_count() < 8:
        pytest.skip("needs 8 (fake) devices")
    cfg, model, variables = tiny
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    rgb, nir = clips(cfg)  # the batch of `tiny_forward`, the single-device result
    single = tiny_forward
    specs = nn.get_partition_spec(abstract_variables(model, cfg))
    shardings = nn.logical_to_mesh_sharding(specs, mesh, RULES)
    placed = jax.device_put(variables, shardings)
    qkv = placed["params"]["rgb"]["stage_0"]["block_0"]["attn"]["qkv"]["kernel"]
    assert qkv.sharding.spec == P("model", None, None, None)  # embed → model
    data = NamedSharding(mesh, P("data"))
    rgb_s, nir_s = jax.device_put(rgb, data), jax.device_put(nir, data)
    with jax.set_mesh(mesh), nn.logical_axis_rules(RULES):
        out = jax.jit(lambda v, r, n: model.apply(v, r, n, train=False))(placed, rgb_s, nir_s)
    for key in single:
        np.testing.assert_allclose(np.asarray(out[key]), np.asarray(single[key]),
                                   rtol=1e-4, atol=1e-5)


def test_fee_outputs_heart_rate():
    cfg = model_config("tiny")
    cfg.fee.enabled = True
    model = models.build(cfg)
    variables = random_variables(model, cfg)
    assert set(variables["params"]["fee"]) == {"conv1", "bn1", "conv2", "bn2"}
    rgb, nir = clips(cfg)
    out = jax.jit(lambda v, r, n: model.apply(v, r, n, train=False))(variables, rgb, nir)
    assert out["hr"].shape == (2,)
    assert np.all((out["hr"] >= cfg.fee.bpm_min) & (out["hr"] < cfg.fee.bpm_max))
    assert out["psd"].shape == (2, int(cfg.fee.bpm_max - cfg.fee.bpm_min))
    # each clip's own frame rate reaches the FEE spectrum: per-clip fps = a model built for
    # that rate, and a different rate gives a different spectrum (the configured 30 Hz is
    # only the default)
    fps = np.array([24.0, 15.0], np.float32)
    with_fps = jax.jit(lambda v, r, n, f: model.apply(v, r, n, train=False, fps=f))
    got = with_fps(variables, rgb, nir, fps)
    at_30 = with_fps(variables, rgb, nir, np.full(2, 30.0, np.float32))
    np.testing.assert_array_equal(at_30["hr"], out["hr"])  # the configured default is 30
    cfg_24 = model_config("tiny")
    cfg_24.fee.enabled, cfg_24.fps = True, 24.0
    want = jax.jit(lambda v, r, n: models.build(cfg_24).apply(v, r, n, train=False))(
        variables, rgb, nir)
    np.testing.assert_allclose(got["psd"][0], want["psd"][0], rtol=1e-5, atol=1e-6)
    assert got["hr"][0] == want["hr"][0]
    assert rel_err(got["psd"][1], want["psd"][1]) > 1e-2  # clip 1 has its own rate
    assert rel_err(got["psd"], out["psd"]) > 1e-2
    from ienet_jax.eval.inference import ClipModel

    clip_model = ClipModel(cfg, variables, batch_size=4)  # pads 2 clips to a batch of 4
    raw = np.random.default_rng(3).integers(0, 256, (2, *rgb.shape[1:4], 1), np.uint8)
    via = clip_model(np.repeat(raw, 3, -1), raw, fps=fps)["hr"]
    direct = model.apply(variables, *clip_model_inputs(raw), train=False, fps=fps)["hr"]
    np.testing.assert_array_equal(via, np.asarray(direct))


def test_get_config_variants_and_lock():
    for variant in ("reference", "small", "tiny"):
        cfg = get_config(variant)
        assert cfg.model.name == "ienet"
        assert isinstance(models.build(cfg.model), IENet)
    ref = get_config("reference").model
    assert (ref.clip_length, ref.frame_size, ref.dims, ref.depths, ref.heads) == (
        128, 64, (96, 192, 384), (2, 2, 4), (3, 6, 12))
    assert ref.context.enabled and not ref.fee.enabled and ref.drop_path == 0.2
    with pytest.raises(AttributeError):
        get_config("tiny").model.not_a_key = 1
    with pytest.raises(ValueError, match="unknown IENet config variant"):
        get_config("huge")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("frame_size", 30, r"model.frame_size=30 is not divisible by model.patch\[1\]=4"),
        ("clip_length", 33, r"model.clip_length=33 is not divisible by model.patch\[0\]=2"),
        ("heads", (1, 2), "model.heads"),
        ("heads", (1, 5, 4), r"model.dims\[1\]=48 is not divisible by model.heads\[1\]=5"),
        ("fusion", "mean", "model.fusion"),
        ("attention", "flash", "model.attention"),
        ("dtype", "float16", "model.dtype"),
        ("drop_path", 1.5, "model.drop_path"),
        ("dims", (20, 40, 80), r"model.dims\[0\]=20 is not divisible by len\(model.context"),
        ("input_norm", "diff", "model.input_norm"),
    ],
)
def test_config_errors_name_the_key(key, value, message):
    cfg = model_config("tiny")
    cfg[key] = value
    with pytest.raises(ValueError, match=message):
        models.build(cfg)


def test_wrong_channel_count_at_call(tiny):
    cfg, model, variables = tiny
    rgb, nir = clips(cfg, batch=1)
    with pytest.raises(ValueError, match="model.nir_channels=1"):
        model.apply(variables, rgb, rgb, train=False)


def test_normalize_reference_numpy_and_jax():
    u8 = np.array([0, 128, 255], np.uint8)
    want = (u8 / 255.0 - 0.5) / 0.25
    got_np = normalize_reference(u8)
    assert isinstance(got_np, np.ndarray) and got_np.dtype == np.float32
    np.testing.assert_allclose(got_np, want, rtol=1e-6, atol=1e-6)
    got_jax = normalize_reference(jnp.asarray(u8))
    assert isinstance(got_jax, jax.Array)
    np.testing.assert_allclose(np.asarray(got_jax), want, rtol=1e-6, atol=1e-6)


def test_temporal_normalize_keeps_relative_change_only():
    rng = np.random.default_rng(0)
    t = np.arange(32)
    base = rng.uniform(40, 200, (1, 1, 4, 4, 3))  # static appearance per pixel and channel
    pulse = 0.01 * np.sin(2 * np.pi * t / 8)[None, :, None, None, None]  # zero mean
    frames = base * (1 + pulse)
    x = normalize_reference(frames / 1.0)  # float frames in 0..255 → reference scale
    got = np.asarray(temporal_normalize(jnp.asarray(x)))
    # every pixel carries the same relative change: after normalisation all pixels agree
    # (up to the +1/255 guard in the denominator) and the clip has unit RMS per channel
    want = pulse / np.sqrt(np.mean(pulse ** 2))
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), atol=2e-2)
    np.testing.assert_allclose(np.sqrt(np.mean(got ** 2, axis=(1, 2, 3))), 1.0, rtol=1e-3)
    # a brighter or darker scene gives the same input
    brighter = np.asarray(temporal_normalize(jnp.asarray(normalize_reference(frames * 1.2))))
    np.testing.assert_allclose(brighter, got, atol=1e-2)


def test_input_norm_temporal_changes_the_forward(tiny, tiny_forward):
    cfg, _, variables = tiny
    cfg = model_config("tiny")
    cfg.input_norm = "temporal"
    model = models.build(cfg)
    rgb, nir = clips(cfg)
    out = model.apply(variables, rgb, nir, train=False)
    assert np.all(np.isfinite(np.asarray(out["fused_rppg"])))
    assert not np.allclose(np.asarray(out["fused_rppg"]), tiny_forward["fused_rppg"])


@pytest.mark.parametrize("modalities", [("rgb",), ("nir",)])
def test_one_modality_builds_one_backbone_and_ignores_the_other(modalities):
    """`model.modalities` of one: only that backbone's parameters, no fusion, `fused_rppg` is
    its head's output, the contract feeds only that input (a changed NIR clip changes nothing
    for the RGB-only model) and a gradient step trains it."""
    from ienet_jax.models import contract

    cfg = model_config("tiny")
    cfg.context.enabled = False
    cfg.modalities = modalities
    (m,) = modalities
    other = "nir" if m == "rgb" else "rgb"
    model = models.build(cfg)
    ienet = contract.get(cfg)
    assert ienet.modalities == modalities and contract.get("ienet").modalities == ("rgb", "nir")
    assert ienet.channels(cfg) == (cfg[f"{m}_channels"],)
    variables = jax.jit(lambda: model.init(jax.random.PRNGKey(0),
                                           *ienet.example_inputs(cfg), train=False))()
    assert m in variables["params"] and other not in variables["params"]
    assert other not in variables["batch_stats"]

    rgb, nir = clips(cfg, seed=1)
    _, nir2 = clips(cfg, seed=2)
    forward = jax.jit(lambda v, b: model.apply(v, *ienet.inputs(b), train=False))
    out = forward(variables, {"rgb": rgb, "nir": nir})
    assert set(out) == {f"{m}_rppg", "fused_rppg"}
    np.testing.assert_array_equal(out["fused_rppg"], out[f"{m}_rppg"])
    changed = forward(variables, {"rgb": rgb, "nir": nir2} if m == "rgb"
                      else {"rgb": -rgb, "nir": nir})
    np.testing.assert_array_equal(changed["fused_rppg"], out["fused_rppg"])
    if m == "rgb":  # and it does read its own input
        assert not np.allclose(forward(variables, {"rgb": -rgb, "nir": nir})["fused_rppg"],
                               out["fused_rppg"])

    target = jnp.sin(jnp.linspace(0, 20, cfg.clip_length))[None].repeat(2, 0)

    @jax.jit
    def step(params, frames):
        def loss_fn(p):
            o, _ = model.apply({"params": p, "batch_stats": variables["batch_stats"]}, frames,
                               train=True, mutable=["batch_stats"],
                               rngs={"dropout": jax.random.key(1), "drop_path": jax.random.key(2)})
            return jnp.mean((o["fused_rppg"] - target) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        return loss, optax.tree.norm(grads)

    loss, gnorm = step(variables["params"], rgb if m == "rgb" else nir)
    assert np.isfinite(float(loss)) and float(gnorm) > 0


@pytest.mark.parametrize("typed, want", [("rgb", ("rgb",)), ('("nir",)', ("nir",)),
                                          ("('rgb','nir')", ("rgb", "nir"))])
def test_modalities_from_the_command_line(monkeypatch, typed, want):
    """The README's spellings of `--config.model.modalities` (ml_collections reads overrides
    from `sys.argv`)."""
    import sys

    from absl import flags
    from ml_collections import config_flags

    from ienet_jax.models import contract

    argv = ["prog", "--config=configs/ienet.py:tiny", f"--config.model.modalities={typed}"]
    monkeypatch.setattr(sys, "argv", argv)
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=fv, lock_config=True)
    fv(argv)
    assert contract.get(fv.config.model).modalities == want


def test_modalities_config_error_names_the_key():
    cfg = model_config("tiny")
    cfg.modalities = ("nir", "rgb")
    with pytest.raises(ValueError, match=r"config key model.modalities must be one of"):
        models.build(cfg)
