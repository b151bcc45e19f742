"""`ienet_jax.cli`: user errors as one `error:` line with exit status 2 from every entry
point (run for real in subprocesses; each error arises before anything compiles), and one
flag spelling (dashes or underscores) accepted by every tool."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ienet_jax import cli

REPO = Path(__file__).resolve().parents[1]


def run_tool(module, *args, cwd=REPO, env=None, timeout=300):
    e = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), **(env or {}))
    e.pop(cli.TRACEBACK_ENV, None)
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


def error_line(out) -> str:
    """The one `error:` line of a failed run (absl INFO lines aside); asserts exit 2."""
    lines = [x for x in out.stderr.splitlines() if x.strip() and x[:1] not in "IW"
             or x.startswith("error:")]
    assert out.returncode == 2, out.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return lines[0]


def test_normalize_flags():
    known = {"data_dir", "hr_window", "clip-length", "workdir"}
    argv = ["prog", "--data-dir=a-b_c", "--hr-window", "5", "--clip_length=32",
            "--config.train.batch_size=2", "--unknown-flag", "--workdir=x-y", "-v",
            "--", "--data-dir=z"]
    assert cli.normalize_flags(argv, known) == [
        "prog", "--data_dir=a-b_c", "--hr_window", "5", "--clip-length=32",
        "--config.train.batch_size=2", "--unknown-flag", "--workdir=x-y", "-v",
        "--", "--data-dir=z"]


def test_argparse_tools_accept_both_spellings():
    import importlib

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    importlib.import_module("data_prep.convert").add_arguments(sub.add_parser("convert"))
    base = ["convert", "--dataset", "vipl_hr", "--input", "i", "--output", "o"]
    args = cli.parse_args(parser, base + ["--clip_length", "32", "--retry_failed"])
    assert args.clip_length == 32 and args.retry_failed
    assert cli.parse_args(parser, base + ["--clip-length=16"]).clip_length == 16

    from ienet_jax.convert.__main__ import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = cli.parse_args(parser, ["--state_dict_npz", "a.npz", "--config", "c", "--output",
                                   "o-x_y"])
    assert str(args.state_dict_npz) == "a.npz" and str(args.output) == "o-x_y"

    from bench.suite import parse_args

    assert parse_args(["--conv_impl", "xla", "--model_options={}"]).conv_impl == "xla"


def test_user_errors_in_argparse_tools_are_one_line(capsys, monkeypatch):
    def raises(error):
        def main(args):
            raise error
        return main

    assert cli.run_argparse(raises(PermissionError(13, "Permission denied", "/out/x")),
                            None) == 2
    assert capsys.readouterr().err == "error: /out/x: permission denied\n"
    assert cli.run_argparse(raises(ValueError("--size: bad\nsecond line")), None) == 2
    assert capsys.readouterr().err == "error: --size: bad; second line\n"
    monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
    with pytest.raises(ValueError):
        cli.run_argparse(raises(ValueError("x")), None)
    with pytest.raises(RuntimeError):  # a bug is never disguised as a user error
        monkeypatch.delenv(cli.TRACEBACK_ENV)
        cli.run_argparse(raises(RuntimeError("bug")), None)


def test_check_output_dir(tmp_path):
    (tmp_path / "file").write_text("")
    cli.check_output_dir(tmp_path / "new" / "deeper", "--output")
    assert not (tmp_path / "new").exists()  # creates nothing
    with pytest.raises(ValueError, match=r"--workdir=.*file/run: cannot be created: .* is a "
                                         "file"):
        cli.check_output_dir(tmp_path / "file" / "run", "--workdir")
    os.chmod(tmp_path, 0o555)
    try:
        if not os.access(tmp_path, os.W_OK):  # (root writes anywhere)
            with pytest.raises(ValueError, match="no permission to write in"):
                cli.check_output_dir(tmp_path / "new", "--output")
    finally:
        os.chmod(tmp_path, 0o755)


def test_train_config_errors_are_one_line(tmp_path):
    base = ["--config=configs/ienet.py:tiny", f"--workdir={tmp_path / 'w'}"]
    line = error_line(run_tool("ienet_jax.main", *base, "--config.train.bach_size=2"))
    assert "--config.train.bach_size" in line and "batch_size" in line and "\\n" not in line
    assert not (tmp_path / "w").exists()  # before anything runs
    line = error_line(run_tool("ienet_jax.main", *base, "--config.train.batch_size=-1"))
    assert "--config.train.batch_size=-1" in line
    line = error_line(run_tool("ienet_jax.main", "--config=configs/nope.py:tiny",
                               f"--workdir={tmp_path / 'w'}"))
    assert "--config=configs/nope.py:tiny" in line and "no such file" in line


def test_unwritable_workdir_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    line = error_line(run_tool("ienet_jax.main", "--config=configs/ienet.py:tiny",
                               f"--workdir={tmp_path / 'file' / 'run'}"))
    assert "--workdir" in line and "file/run" in line


def test_convert_checkpoint_errors_are_one_line(tmp_path):
    line = error_line(run_tool("ienet_jax.convert", "--checkpoint", tmp_path / "ref.pth",
                               "--config", "configs/ienet.py:tiny", "--output", tmp_path / "o"))
    assert line == f"error: --checkpoint {tmp_path / 'ref.pth'}: no such file"
    (tmp_path / "file").write_text("")
    (tmp_path / "ref.npz").write_bytes(b"")
    line = error_line(run_tool("ienet_jax.convert", "--state_dict_npz", tmp_path / "ref.npz",
                               "--config", "configs/ienet.py:tiny",
                               "--output", tmp_path / "file" / "o"))
    assert "--output" in line and "file/o" in line


def test_predict_takes_dashed_flags_and_names_the_video(tmp_path):
    out = run_tool("ienet_jax.predict", "--video", tmp_path / "missing.mp4", "--method", "pos",
                   "--hr-window=5", "--output", tmp_path / "o")
    line = error_line(out)
    assert "missing.mp4" in line and "Unknown command line flag" not in out.stderr


def test_evaluate_names_the_flag_not_the_internal_key(tmp_path):
    (tmp_path / "run").mkdir()
    line = error_line(run_tool("ienet_jax.evaluate", "--config=configs/ienet.py:tiny",
                               f"--workdir={tmp_path / 'run'}", f"--data_dir={tmp_path}"))
    assert line.startswith("error: --workdir=") and "no checkpoint found" in line
    assert "train.init_from" not in line
    line = error_line(run_tool("ienet_jax.evaluate", f"--workdir={tmp_path / 'nope'}"))
    assert line.startswith("error: --workdir ") and "does not exist" in line
