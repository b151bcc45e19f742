"""TS-CAN reference converter: golden parity, bfloat16 compute, key/shape errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tscan as tscan_configs
from ienet_jax.convert.tscan import tscan_variables
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
