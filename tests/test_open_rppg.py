"""open-rppg's real-data-trained PhysNet and TS-CAN through the importer.

Every golden output in `../shared/golden/open_rppg/` is reproduced from the weight files
there: `python -m ienet_jax.convert --open-rppg NAME --from …` (a wheel, a folder, the
installed distribution), then `ienet_jax.eval.inference.load(DIR)(frames, raw=True)`.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ienet_jax.convert import __main__ as convert_cli
from ienet_jax.convert import open_rppg
from ienet_jax.eval import inference


@pytest.fixture(scope="module")
def open_rppg_dir(golden_dir):
    return golden_dir / "open_rppg"


def _wheel(tmp_path, weights_dir, names):
    wheel = tmp_path / "open_rppg-0.1.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("rppg/__init__.py", "")
        for name in names:
            f = open_rppg.NAMES[name][0]
            z.write(weights_dir / f, f"rppg/weights/{f}")
    return wheel


def _installed(tmp_path, weights_dir, names, monkeypatch):
    """A fake installed open-rppg (dist-info + RECORD) on sys.path."""
    site = tmp_path / "site"
    (site / "rppg" / "weights").mkdir(parents=True)
    dist = site / "open_rppg-0.1.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: open-rppg\nVersion: 0.1.1\n")
    record = ["rppg/__init__.py,,"]
    for name in names:
        f = open_rppg.NAMES[name][0]
        shutil.copy(weights_dir / f, site / "rppg" / "weights" / f)
        record.append(f"rppg/weights/{f},,")
    (dist / "RECORD").write_text("\n".join(record) + "\n")
    monkeypatch.syspath_prepend(str(site))
    return None


@pytest.mark.parametrize("name,source", [("physnet.pure", "wheel"), ("physnet.rlap", "dir"),
                                         ("tscan.pure", "installed"), ("tscan.rlap", "wheel")])
def test_golden_outputs_through_the_importer(name, source, open_rppg_dir, tmp_path,
                                             monkeypatch):
    weights = open_rppg_dir / "weights"
    argv = ["--open-rppg", name, "--output", str(tmp_path / "out")]
    if source == "wheel":
        argv += ["--from", str(_wheel(tmp_path, weights, [name]))]
    elif source == "dir":
        argv += ["--from", str(weights)]
    else:
        _installed(tmp_path, weights, [name], monkeypatch)
    assert convert_cli.run(argv) == 0
    golden = np.load(open_rppg_dir / f"{name.replace('.', '_')}.npz")
    model = inference.load(tmp_path / "out")
    out = model(golden["frames_u8"], raw=True)
    want = golden["output"]
    assert out.shape == want.shape
    rel = np.max(np.abs(out - want)) / np.max(np.abs(want))
    assert rel < 1e-4, f"{name}: max |Δ| / max |output| = {rel:.2e}"
    source_json = (tmp_path / "out" / "source.json").read_text()
    assert name in source_json and "research" in source_json


def test_importer_errors_are_one_line(open_rppg_dir, tmp_path, capsys):
    weights = open_rppg_dir / "weights"
    empty = tmp_path / "empty"
    empty.mkdir()
    bad_wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(bad_wheel, "w") as z:
        z.writestr("rppg/__init__.py", "")
    not_h5 = tmp_path / "h5" / "physnet.pure.weights.h5"
    not_h5.parent.mkdir()
    not_h5.write_bytes(b"not hdf5")
    cases = [
        (["--open-rppg", "physnet.ubfc"], "--open-rppg must be one of"),
        (["--open-rppg", "physnet.pure", "--from", str(empty)],
         "no physnet.pure.weights.h5 in this folder"),
        (["--open-rppg", "tscan.pure", "--from", str(bad_wheel)],
         "the wheel has no rppg/weights/TSCAN.pure.weights.h5"),
        (["--open-rppg", "physnet.pure", "--from", str(not_h5.parent)],
         "not a readable .weights.h5 file"),
        (["--open-rppg", "physnet.pure", "--from", str(weights), "--config",
          "configs/physnet.py"], "drop --config"),
        (["--state-dict-npz", str(not_h5)], "--config is required"),
    ]
    for argv, message in cases:
        code = convert_cli.run(argv + ["--output", str(tmp_path / "o")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, argv
        assert len(err) == 1 and err[0].startswith("error:") and message in err[0], (argv, err)


def test_not_installed_names_the_pip_command(tmp_path, monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(ValueError, match=r"pip install --no-deps open-rppg==0\.1\.1"):
        open_rppg.weights_bytes("physnet.pure", None)


def test_a_mismatched_file_is_named(open_rppg_dir, tmp_path):
    """TS-CAN weights under PhysNet's file name: the converter's error names the file."""
    folder = tmp_path / "w"
    folder.mkdir()
    shutil.copy(open_rppg_dir / "weights" / "TSCAN.pure.weights.h5",
                folder / "physnet.pure.weights.h5")
    with pytest.raises(ValueError, match=r"physnet\.pure\.weights\.h5: .*ConvBlock1"):
        open_rppg.import_weights("physnet.pure", folder, tmp_path / "out")


@pytest.mark.slow
def test_fine_tuning_starts_from_the_converted_weights(open_rppg_dir, tmp_path):
    """`train.init_from` takes a converted open-rppg directory: one step of the real
    trainer moves the weights by at most the learning rate's reach, not from scratch."""
    import os
    import subprocess
    import sys

    from ienet_jax.convert.checkpoint import restore_converted
    from ienet_jax.train.checkpoint import load_variables

    converted = open_rppg.import_weights("physnet.pure", open_rppg_dir / "weights",
                                         tmp_path / "physnet_pure")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    out = subprocess.run(
        [sys.executable, "-m", "ienet_jax.main", "--config=configs/physnet.py:open_rppg",
         f"--workdir={tmp_path / 'run'}", f"--config.train.init_from={converted}",
         "--config.train.num_steps=1", "--config.train.batch_size=1",
         "--config.checkpoint.every_steps=1", "--config.eval.every_steps=0",
         "--config.logging.tensorboard=False"],
        cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
        timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    before = restore_converted(converted)["params"]
    after = load_variables(tmp_path / "run")["params"]
    import jax

    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))),
                                         before, after))
    assert 0 < max(diffs) <= 1.5e-3, max(diffs)  # Adam, lr 1e-3: one step moves ≤ lr
