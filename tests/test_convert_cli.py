"""The conversion CLI, the orbax round trip, HR-network (FEE) checkpoints and torch loading."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from configs.ienet import model_config
from ienet_jax import convert
from ienet_jax.convert.__main__ import run

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ienet.py"


@pytest.fixture(scope="module")
def state_dict(golden_dir, det_init):
    spec = json.loads((golden_dir / "ienet_seed_state_dict.json").read_text())
    return {
        k: det_init.det_tensor(k, shape) for k, (shape, dtype) in spec.items() if "float" in dtype
    }


@pytest.fixture(scope="module")
def fee_state_dict(golden_dir, det_init):
    spec = json.loads((golden_dir / "tscan_fee_state_dict.json").read_text())
    (fee_spec,) = [v for k, v in spec.items() if k.startswith("fee")]
    return {k: det_init.det_tensor("fee." + k, s) for k, s in fee_spec.items() if s}


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_cli_npz_round_trip(tmp_path, state_dict):
    npz = tmp_path / "ref.npz"
    np.savez(npz, **state_dict)
    out = tmp_path / "converted"
    code = run([
        "--state-dict-npz", str(npz), "--config", f"{CONFIG}:reference", "--output", str(out),
        "--set", "model.nir_channels=3", "--set", "model.context.enabled=False",
    ])
    assert code == 0
    restored = convert.restore_converted(out)
    cfg = model_config("reference")
    cfg.nir_channels = 3
    cfg.context.enabled = False
    assert_trees_equal(restored, convert.from_reference_state_dict(state_dict, cfg))
    saved = convert.restore_model_config(out)
    assert saved.nir_channels == 3 and not saved.context.enabled
    assert tuple(saved.dims) == (96, 192, 384)


def test_cli_rejects_unknown_override(tmp_path, state_dict, capsys):
    npz = tmp_path / "ref.npz"
    np.savez(npz, **{k: state_dict[k] for k in list(state_dict)[:3]})
    assert run(["--state-dict-npz", str(npz), "--config", f"{CONFIG}:reference",
                "--output", str(tmp_path / "o"), "--set", "model.no_such_key=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "model.no_such_key" in err and err.count("\n") == 1


def test_hr_network_with_fee(state_dict, fee_state_dict):
    hr = {f"rPPG_model.{k}": v for k, v in state_dict.items()}
    hr.update({f"hr_head.{k}": v for k, v in fee_state_dict.items()})
    cfg = model_config("reference")
    cfg.fee.enabled = True
    variables = convert.from_reference_state_dict(hr, cfg)
    np.testing.assert_array_equal(
        variables["params"]["fee"]["bn1"]["scale"], fee_state_dict["bn1.weight"]
    )
    np.testing.assert_array_equal(
        variables["batch_stats"]["fee"]["bn2"]["var"], fee_state_dict["bn2.running_var"]
    )
    np.testing.assert_array_equal(
        variables["params"]["head"]["conv"]["bias"], state_dict["rPPG_net.dense7.bias"]
    )
    cfg.fee.enabled = False
    with pytest.raises(ValueError, match="fee.enabled"):
        convert.from_reference_state_dict(hr, cfg)


def test_load_torch_checkpoint_without_torch(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    with pytest.raises(ImportError, match=r"ienet-jax\[torch\]"):
        convert.load_torch_checkpoint(tmp_path / "x.pth")


def test_load_torch_checkpoint_nested_data_parallel(tmp_path):
    torch = pytest.importorskip("torch")
    sd = {"module.a.weight": torch.arange(6.0).reshape(2, 3), "module.b.bias": torch.ones(2)}
    path = tmp_path / "ref.pth"
    torch.save({"epoch": 3, "state_dict": sd}, path)
    loaded = convert.load_torch_checkpoint(path)
    assert set(loaded) == {"a.weight", "b.bias"}
    np.testing.assert_array_equal(loaded["a.weight"], np.arange(6.0).reshape(2, 3))


def test_tscan_checkpoints_are_delegated(golden_dir, det_init):
    from configs.tscan import model_config as tscan_model_config
    from ienet_jax.convert.tscan import tscan_variables

    spec = json.loads((golden_dir / "tscan_fee_state_dict.json").read_text())
    (tscan_spec,) = [v for k, v in spec.items() if k.startswith("tscan")]
    sd = {k: det_init.det_tensor("tscan." + k, s) for k, s in tscan_spec.items() if s}
    cfg = tscan_model_config("reference")
    assert_trees_equal(convert.from_reference_state_dict(sd, cfg), tscan_variables(sd, cfg))
