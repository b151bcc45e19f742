"""TS-CAN converters: PyTorch reference and open-rppg Keras weights: golden parity, bfloat16
compute, key/shape errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tscan as tscan_configs
from ienet_jax import convert
from ienet_jax.convert.keras_h5 import read_weights_h5
from ienet_jax.convert.tscan import keras_tscan_variables, tscan_variables
from ienet_jax.eval.inference import ClipModel
from ienet_jax.models.tscan import TSCAN

SECTION = 'tscan (keys prefixed "tscan." for det_init)'


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def golden(golden_dir):
    return dict(np.load(golden_dir / "tscan_fee_seed.npz"))


@pytest.fixture(scope="module")
def state_dict(golden_dir, det_init):
    shapes = json.loads((golden_dir / "tscan_fee_state_dict.json").read_text())[SECTION]
    return {k: det_init.det_tensor("tscan." + k, s) for k, s in shapes.items()}


@pytest.fixture(scope="module")
def frames(golden):
    """Golden inputs `(N·D, C, H, W)` → one clip `[1, 20, 36, 36, 6]` (motion ++ appearance)."""
    x = np.concatenate([golden["tscan/x_motion"], golden["tscan/x_appearance"]], axis=1)
    return jnp.asarray(x.transpose(0, 2, 3, 1)[None])


def _config(**overrides):
    cfg = tscan_configs.model_config("reference")
    cfg.clip_length = 20
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


def test_golden_parity_f32_and_bf16(state_dict, golden, frames):
    cfg = _config()
    variables = tscan_variables(state_dict, cfg)
    ref = golden["tscan/out"][:, 0]
    out = jax.jit(lambda v, x: TSCAN.from_config(cfg).apply(v, x))(variables, frames)["rppg"]
    assert out.shape == (1, 20)
    assert rel_err(out[0], ref) < 1e-4
    # The same 20 frames as two clips of one segment each give the same outputs.
    cfg10 = _config(clip_length=10)
    split = TSCAN.from_config(cfg10).apply(variables, frames.reshape(2, 10, 36, 36, 6))["rppg"]
    assert rel_err(split.reshape(-1), ref) < 1e-4
    bf16 = TSCAN.from_config(_config(dtype="bfloat16"))
    out16 = jax.jit(lambda v, x: bf16.apply(v, x))(variables, frames)["rppg"]
    assert out16.dtype == jnp.float32
    err = rel_err(out16[0], np.asarray(out[0]))
    assert 0 < err < 2e-2, err


def test_fc1_rows_are_permuted(state_dict):
    """Reference flatten index c·49 + h·7 + w must land on row (h·7 + w)·64 + c."""
    kernel = tscan_variables(state_dict, _config())["params"]["hidden"]["kernel"]
    fc1 = state_dict["fc1.weight"]
    c, h, w = 5, 3, 6
    np.testing.assert_array_equal(kernel[(h * 7 + w) * 64 + c], fc1[:, c * 49 + h * 7 + w])


def test_missing_and_misshapen_keys(state_dict):
    missing = {k: v for k, v in state_dict.items() if k != "reg_conv3.conv1.bias"}
    with pytest.raises(ValueError, match="reg_conv3.conv1.bias"):
        tscan_variables(missing, _config())
    with pytest.raises(ValueError, match=r"fc1\.weight.*\(128, 16384\)"):
        tscan_variables(state_dict, _config(frame_size=72))
    bad = dict(state_dict, **{"g2_conv.conv1.weight": np.zeros((1, 32, 1, 1), np.float32)})
    with pytest.raises(ValueError, match="g2_conv.conv1.weight"):
        tscan_variables(bad, _config())
    with pytest.raises(ValueError, match="unexpected keys.*fc3.weight"):
        tscan_variables(dict(state_dict, **{"fc3.weight": np.zeros((1, 1), np.float32)}), _config())
    with pytest.raises(ValueError, match="model.clip_length"):
        tscan_variables(state_dict, _config(clip_length=15))


# --- open-rppg 0.1.1's Keras TS-CAN (real-data weights, golden outputs of the Keras model) ---


@pytest.fixture(scope="module", params=["pure", "rlap"])
def open_rppg(request, golden_dir):
    """`(weights, golden npz)` of TSCAN.pure / TSCAN.rlap."""
    root = golden_dir / "open_rppg"
    weights = read_weights_h5(root / "weights" / f"TSCAN.{request.param}.weights.h5")
    return weights, dict(np.load(root / f"tscan_{request.param}.npz"))


def test_open_rppg_golden_parity(open_rppg):
    """uint8 clips through the evaluator's path (`ClipModel`: contract inputs → model) with the
    `open_rppg` variant reproduce the Keras model's float32 per-frame outputs."""
    weights, golden = open_rppg
    cfg = tscan_configs.model_config("open_rppg")
    variables = convert.from_reference_state_dict(weights, cfg)  # dispatched on `/vars/`
    frames, ref = golden["frames_u8"], golden["output"]
    assert frames.shape == (4, 160, 36, 36, 3)
    out = ClipModel(cfg, variables, batch_size=len(frames))(frames)["rppg"]
    err = rel_err(out, ref)
    print(f"open-rppg TS-CAN max|d|/max|ref| = {err:.2e}")
    assert err < 1e-4, err
    if str(golden["weights_file"]) != "TSCAN.pure.weights.h5":
        return
    # MTTS-CAN's zero fill is a different model: it changes the outputs within 4 frames of
    # every segment's ends (two shifts in each of two blocks), and only there.
    cfg.shift_fill = "zeros"
    zeros = ClipModel(cfg, variables, batch_size=len(frames))(frames)["rppg"]
    pos = np.arange(160) % cfg.frame_depth
    inner = (pos >= 4) & (pos < cfg.frame_depth - 4)
    assert rel_err(zeros[:, inner], out[:, inner]) < 1e-5
    assert rel_err(zeros[:, ~inner], out[:, ~inner]) > 0.1


def test_keras_key_errors(open_rppg):
    weights, _ = open_rppg
    cfg = tscan_configs.model_config("open_rppg")
    kernel = "inner/g2/layers/conv2d_1/vars/0"
    missing = {k: v for k, v in weights.items() if k != kernel}
    with pytest.raises(ValueError, match=f"no key '{kernel}'.*\\(3, 3, 64, 64\\)"):
        keras_tscan_variables(missing, cfg)
    with pytest.raises(ValueError, match="unexpected keys.*inner/d/layers/dense_2/vars/0"):
        keras_tscan_variables(dict(weights, **{"inner/d/layers/dense_2/vars/0": np.zeros(1)}), cfg)
    bad = dict(weights, **{"inner/attn1/layers/conv2d/vars/0": np.zeros((1, 1, 64, 1))})
    with pytest.raises(ValueError, match="inner/attn1/layers/conv2d/vars/0.*\\(1, 1, 32, 1\\)"):
        keras_tscan_variables(bad, cfg)
    cfg.frame_size = 72
    with pytest.raises(ValueError, match="inner/d/layers/dense/vars/0.*model.frame_size=72"):
        keras_tscan_variables(weights, cfg)


def test_a_converted_dir_from_before_the_new_keys_loads_as_before(state_dict, tmp_path):
    """A `model_config.json` written before `shift_fill` / `input_prep` / `input_fps`
    existed loads with the values that reproduce it (zeros, toolbox, the data's rate)."""
    from ienet_jax.eval import inference

    cfg = _config()
    convert.save_converted(tmp_path, tscan_variables(state_dict, cfg), cfg)
    saved = json.loads((tmp_path / "model_config.json").read_text())
    for key in ("shift_fill", "input_prep", "input_fps"):
        del saved[key]
    (tmp_path / "model_config.json").write_text(json.dumps(saved))
    loaded = inference.load_model_config(tmp_path)
    assert (loaded.shift_fill, loaded.input_prep, loaded.input_fps) == ("zeros", "toolbox", 0.0)
    frames = np.random.default_rng(0).integers(0, 256, (1, 20, 36, 36, 3), np.uint8)
    np.testing.assert_array_equal(inference.load(tmp_path)(frames, raw=True),
                                  ClipModel(cfg, tscan_variables(state_dict, cfg))(frames,
                                                                                    raw=True))
