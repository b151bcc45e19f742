"""The `python -m ienet_jax.main` entry point: config errors before anything runs, presets,
and Ctrl-C → checkpoint → exit 75 → resume giving exactly the parameters of an
uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from configs import common, ienet, quickstart, tscan
from ienet_jax.train.checkpoint import load_variables

REPO = Path(__file__).resolve().parents[1]


def main_cmd(workdir, *overrides, cache=None):
    cmd = [sys.executable, "-m", "ienet_jax.main", "--config=configs/quickstart.py:tscan",
           f"--workdir={workdir}", *overrides]
    if cache:
        cmd.append(f"--compilation_cache={cache}")
    return cmd


def env():
    e = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
    return e


def run_main(*args, **kw):
    out = subprocess.run(main_cmd(*args, **kw), cwd=REPO, env=env(), capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]


def test_misspelt_key_fails_before_anything_runs(tmp_path):
    workdir = tmp_path / "w"
    out = subprocess.run(main_cmd(workdir, "--config.train.num_stpes=3"), cwd=REPO, env=env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "num_stpes" in out.stderr
    assert not workdir.exists()


def test_presets_and_arg_parsing():
    stage2 = common.config_from_arg(ienet.model_config, "tiny,reference_stage2", "reference",
                                    "reference_stage1")
    assert stage2.model.fee.enabled and stage2.train.loss.l1_hr == 0.4
    assert stage2.train.stage == 2 and stage2.train.batch_size == 16
    with stage2.unlocked():
        stage2.train.num_steps = 1000
    assert stage2.train.freeze_steps == 800 and stage2.train.lr_decay_every == 500
    stage1 = common.build_config(ienet.model_config("tiny"), "reference_stage1", "tiny")
    assert (stage1.train.loss.neg_pearson, stage1.train.loss.spectral) == (0.3, 0.3)
    assert stage1.train.weight_decay == 5e-5 and stage1.train.learning_rate == 1e-4
    assert not stage1.model.fee.enabled
    ts = common.build_config(tscan.model_config("tiny"), "tscan", "tiny")
    assert ts.train.loss.mse == 1.0 and ts.data.modalities == ("rgb",)
    with pytest.raises(ValueError, match="preset"):
        common.build_config(tscan.model_config("tiny"), "reference_stage2")
    with pytest.raises(ValueError, match="unknown config preset"):
        common.build_config(tscan.model_config("tiny"), "nope")
    config = quickstart.get_config()
    with pytest.raises(AttributeError):
        config.train.num_stpes = 3  # locked: typos are errors


def _wait_for_step(workdir: Path, step: int, proc, timeout: float) -> None:
    log = workdir / "metrics.jsonl"
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"run exited early: {proc.stderr.read()[-3000:]}")
        if log.exists():
            steps = [json.loads(x)["step"] for x in log.read_text().splitlines() if x]
            if steps and max(steps) >= step:
                return
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached in {timeout} s")


@pytest.mark.slow
def test_ctrl_c_then_resume_matches_uninterrupted_run(tmp_path):
    """Ctrl-C (SIGINT; SIGTERM takes the same path): checkpoint, exit 75 with "resumable"
    last; the rerun continues to the parameters of an uninterrupted run."""
    cache = tmp_path / "xla_cache"
    flags = ["--config.train.num_steps=150", "--config.checkpoint.every_steps=40",
             "--config.eval.every_steps=0", "--config.logging.every_steps=1",
             "--config.logging.tensorboard=False", "--config.train.batch_size=8",
             "--config.mesh.shape=(4,2)", "--config.data.synthetic.num_clips=24"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    run_main(full, *flags, cache=cache)

    proc = subprocess.Popen(main_cmd(cut, *flags, cache=cache), cwd=REPO, env=env(),
                            # CI may start us with SIGINT ignored (`cmd &`): a terminal's default
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_step(cut, 5, proc, timeout=600)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 75, err[-3000:]  # EX_TEMPFAIL: interrupted, resumable
    status = json.loads((cut / "status.json").read_text())
    assert not status["finished"] and 5 <= status["step"] < 150, status
    last = err.strip().splitlines()[-1]
    assert (f"interrupted by SIGINT at step {status['step']}, resumable" in last
            and f"rerun the same command to continue from step {status['step']}" in last), last
    assert (cut / "checkpoints" / str(status["step"])).is_dir()

    run_main(cut, *flags, cache=cache)
    assert json.loads((cut / "status.json").read_text())["finished"]
    a, b = load_variables(full), load_variables(cut)
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))
    # the resumed run did not start over: its log holds each step once after the restart
    steps = [json.loads(x)["step"] for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert sorted(steps) == list(range(1, 151))
