"""Every shell command in README.md's ```bash blocks is run (at small sizes) or checked, so
the README cannot drift from the tools.

`COMMANDS` maps each README command (as parsed: comments dropped, words joined by one
space) to what the test does with it. A README command missing from the table, or a table
entry no longer in the README, fails `test_every_readme_command_is_in_the_table`.

- `Chain(...)`: run for real, in README order, in one shared temporary folder holding
  `configs/` (a link to the repository's), so relative paths work as a user types them.
  Each entry lists the flags it sets to small sizes (replaced where the README gives the
  flag, else appended; both spellings of a flag count as the same flag).
- `Check(...)`: commands that cannot run here, each with the cheap check done instead and
  why (its cost, or a machine this is not).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from golden_weights import reference_state_dict

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# A model far below `tiny` (as tests/train_configs.micro_ienet_model): compiles in seconds.
MICRO = ["--config.model.clip_length=16", "--config.model.frame_size=16",
         "--config.model.dims=(6,12)", "--config.model.depths=(1,1)",
         "--config.model.heads=(1,1)", "--config.model.context.enabled=False"]


@dataclasses.dataclass(frozen=True)
class Chain:
    """Run as part of the README chain with `flags` (`(flag, value)`; value None: a bare
    flag) replacing or adding to the README's; `done`: relative path it must produce."""

    flags: tuple = ()
    done: str = ""
    extra: tuple = ()  # further arguments appended as they are (config overrides)


@dataclasses.dataclass(frozen=True)
class Check:
    """Not run here: `check(argv)` does the cheap check; `why` says why not run."""

    why: str
    check: Callable[[list[str]], None]


def readme_commands(text: str | None = None) -> list[str]:
    """The commands of README.md's ```bash blocks, comments dropped, one space between
    words, continuation lines joined."""
    text = README.read_text() if text is None else text
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(" ".join(words))
    return commands


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    e.pop("XLA_FLAGS", None)  # one CPU device, as a user's machine (conftest sets 8)
    return e


def run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    if argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    out = subprocess.run(argv, cwd=cwd, env=env(), capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{shlex.join(argv)}\n{out.stdout[-2000:]}{out.stderr[-4000:]}"
    return out


def with_flags(argv: list[str], flags) -> list[str]:
    """`argv` with each `(flag, value)` replacing the README's value of that flag (either
    spelling, `--flag value` or `--flag=value`), else appended as `--flag=value` (which
    argparse and absl tools both read)."""
    argv = list(argv)
    for flag, value in flags:
        names = {flag, flag.replace("-", "_"), flag.replace("_", "-")}
        for i, arg in enumerate(argv):
            name, eq, _ = arg.partition("=")
            if name in names:
                if eq:
                    argv[i] = f"{name}={value}"
                else:
                    argv[i + 1] = str(value)
                break
        else:
            argv.append(f"{flag}={value}")
    return argv


# ------------------------------------------------------------------ cheap checks

def make_dry_run(target: str, expect: str):
    def check(argv):
        out = run(["make", "-n", target], REPO)
        assert expect in out.stdout, out.stdout
    return check


def parses(module: str, extra: tuple = ("--help",)):
    """The README's arguments are accepted by the tool's own parser (`--help` after them
    stops before any work; an unknown flag or bad value before it is still an error)."""
    def check(argv):
        assert argv[:3] == ["python", "-m", module], argv
        run([*argv, *extra], REPO)
    return check


def trainer_args(script: str, start: int, *added: str):
    """A launch script: `bash -n` (syntax), its usage on no arguments (exit 2), and the
    trainer arguments it forwards (`argv[start:]`) checked by the trainer's own flag parser
    (`--only_check_args`: flags and config file parsed, nothing run)."""
    def check(argv):
        run(["bash", "-n", script], REPO)
        usage = subprocess.run(["bash", script], cwd=REPO, env=env(), capture_output=True,
                               text=True, timeout=60)
        if script.endswith(".sh"):
            assert usage.returncode == 2 and "Usage:" in usage.stderr, usage.stderr
        run(["python", "-m", "ienet_jax.main", *argv[start:], *added, "--only_check_args"],
            REPO)
    return check


# ------------------------------------------------------------------ the table

COMMANDS: dict[str, Chain | Check] = {
    "make quickstart": Check(
        "3.5 min (the full quickstart); tests/test_quickstart.py runs it at small size. "
        "Here: the target runs that module with the README's workdir.",
        make_dry_run("quickstart", "-m ienet_jax.quickstart --workdir=runs/quickstart")),
    "make test": Check(
        "it is this test suite; here: the target runs ruff and pytest.",
        make_dry_run("test", "-m pytest")),
    "python -m data_prep synthesize --layout vipl_hr --output raw --subjects 8 --seconds 30 "
    "--preset hard --seed 0": Chain(
        flags=(("--subjects", 3), ("--seconds", 12), ("--size", "160x120")),
        done="raw/p1/v1/source4/video.avi"),
    "python -m data_prep convert --dataset vipl_hr --input raw --output clips --size 64 "
    "--clip-length 64 --workers 2": Chain(
        flags=(("--size", 16), ("--clip-length", 16)), done="clips/manifest.json"),
    "python -m ienet_jax.main --config=configs/ienet.py:small --workdir=runs/s1 "
    "--config.data.dir=clips --config.train.num_steps=1000": Chain(
        flags=(("--config", "configs/ienet.py:tiny"), ("--config.train.num_steps", 2)),
        extra=(*MICRO, "--config.eval.every_steps=0", "--config.logging.tensorboard=False"),
        done="runs/s1/checkpoints/2"),
    "python -m ienet_jax.evaluate --config=configs/ienet.py:small --workdir=runs/s1": Chain(
        flags=(("--config", "configs/ienet.py:tiny"),), extra=tuple(MICRO),
        done="runs/s1/eval/metrics.json"),
    "python -m ienet_jax.predict --video raw/p1/v1/source1/video.avi --nir "
    "raw/p1/v1/source4/video.avi --checkpoint runs/s1 --output out": Chain(
        done="out/prediction.json"),
    "python -m ienet_jax.convert --checkpoint ref.pth --config configs/ienet.py:reference "
    "--output conv": Chain(done="conv/variables"),
    "pip download --no-deps open-rppg==0.1.1 -d wheels": Check(
        "needs the internet (the package registry). Here: the version is the importer's.",
        lambda argv: _open_rppg_version(argv)),
    "python -m ienet_jax.convert --open-rppg physnet.pure --from "
    "wheels/open_rppg-0.1.1-py3-none-any.whl --output physnet_pure": Chain(
        done="physnet_pure/variables"),  # --from: the test copies of the weights (below)
    "python -m data_prep convert --dataset vipl_hr --input raw --output clips160 --size 72 "
    "--clip-length 160": Chain(flags=(("--size", 36),), done="clips160/manifest.json"),
    "python -m ienet_jax.evaluate --checkpoint physnet_pure --data_dir clips160 --output "
    "eval_physnet": Chain(done="eval_physnet/metrics.json"),
    "python -m ienet_jax.predict --video raw/p1/v1/source1/video.avi --checkpoint physnet_pure "
    "--output out_physnet": Chain(done="out_physnet/prediction.json"),
    "pip install -e .[aot]": Check(
        "installs packages (.ci/run does it). Here: the extra exists, pinned exactly.",
        lambda argv: _aot_extra_pinned()),
    "python -m bench.topology --config=configs/ienet.py:reference --topology v5p:2x4x4 "
    "--topology h100:1x2x8 --json plan.json": Check(
        "compiles the reference IENet for 32 TPU and 16 GPU devices (tens of minutes here); "
        "tests/test_topology.py compiles the tiny config. Here: the flags and config parse.",
        parses("bench.topology", ("--only_check_args",))),
    "python -m bench.topology --config=configs/ienet.py:reference "
    "--config.model.attention=fused --topology v5e:4x4 --classes": Check(
        "compiles the reference IENet with the fused attention for 16 TPU chips (5-10 min "
        "here); tests/test_topology.py compiles a micro IENet with it. Here: the flags, the "
        "config and the override parse.",
        parses("bench.topology", ("--only_check_args",))),
    "python -m bench.topology_grid --config=configs/ienet.py:reference --topology v5e:4x4 "
    "--strategy dp --strategy fsdp --strategy dp_tp --dtype float32 --dtype bfloat16 "
    "--largest --out runs/grid": Check(
        "hours here (a dozen reference compiles and more); tests/test_topology_grid.py "
        "compiles a micro IENet row. Here: the flags and config parse.",
        parses("bench.topology_grid", ("--only_check_args",))),
    "python -m bench --json runs/bench.json": Check(
        "4 min and more (the whole benchmark table); tests/test_bench.py runs "
        "`python -m bench --short --json`. Here: the flags parse.", parses("bench")),
    "python -m bench.model --variant reference --batch 1 2": Check(
        "minutes (compiles the reference model twice). Here: the flags parse.",
        parses("bench.model")),
    "python -m bench.profile --variant reference --batch 1 --context off": Check(
        "minutes (compiles and profiles the reference train step); tests/test_bench.py tests "
        "its FLOP counting and op classes. Here: the flags parse.", parses("bench.profile")),
    "python -m bench.vs_torch --repeats 5 --rounds 2": Check(
        "minutes, needs the torch extra and a quiet machine; tests/test_torch_reference.py "
        "runs it at a tiny size where torch is installed. Here: the flags parse.",
        parses("bench.vs_torch")),
    "python -m bench.convert --seconds 30 --videos 2 --repeats 2": Check(
        "minutes (generates two 30 s 640×480 videos, converts them four times and runs the "
        "toolbox's preprocessing twice); tests/test_bench.py runs it at 6 s 160×120. Here: "
        "the flags parse.", parses("bench.convert")),
    "python -m bench.accuracy --preset realistic --variant tiny --budget 8": Check(
        "about an hour (five training runs of 8 minutes, evaluation); tests/test_accuracy.py "
        "runs the same path with --short. Here: the flags parse.", parses("bench.accuracy")),
    "python -m bench.subjects --preset realistic --variant tiny --counts 6 12 24 48 96 "
    "--seeds 0 1 2": Check(
        "about an hour (15 training runs of 2-5 minutes); tests/test_subjects.py tests its "
        "views and report. Here: the flags parse.", parses("bench.subjects")),
    "python -m bench.accuracy --short": Check(
        "run by tests/test_accuracy.py already. Here: the flags parse.",
        parses("bench.accuracy")),
    "python -m bench --short": Check(
        "under a minute but run by tests/test_bench.py already (with --json). Here: the flags "
        "parse.", parses("bench")),
    "launch/local.sh 2 2 -- --config=configs/quickstart.py:tscan --workdir=runs/mp": Check(
        "200 steps in 2 processes (minutes); tests/test_parallel_distributed.py runs "
        "launch/local.sh. Here: syntax, usage and the trainer arguments.",
        trainer_args("launch/local.sh", 4)),
    "launch/tpu_pod.sh my-v4-32 us-central2-b -- --config=configs/ienet.py:reference "
    "--workdir=/shared/ref": Check(
        "needs gcloud and a TPU pod. Here: syntax, usage and the trainer arguments.",
        trainer_args("launch/tpu_pod.sh", 4, "--distributed")),
    "sbatch --nodes=4 launch/slurm_gpu.sbatch --config=configs/ienet.py:reference "
    "--workdir=/shared/ref": Check(
        "needs a SLURM cluster with GPUs. Here: syntax and the trainer arguments.",
        trainer_args("launch/slurm_gpu.sbatch", 3, "--distributed")),
}


def _aot_extra_pinned() -> None:
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert extras["aot"] and all("==" in r for r in extras["aot"]), extras.get("aot")


def _open_rppg_version(argv: list[str]) -> None:
    from ienet_jax.convert import open_rppg

    assert f"{open_rppg.DISTRIBUTION}=={open_rppg.VERSION}" in argv, argv


def test_every_readme_command_is_in_the_table():
    commands = readme_commands()
    missing = [c for c in commands if c not in COMMANDS]
    assert not missing, f"README commands with no entry in tests/test_readme.py: {missing}"
    stale = [c for c in COMMANDS if c not in commands]
    assert not stale, f"entries of tests/test_readme.py no longer in the README: {stale}"


def test_readme_commands_that_cannot_run_here():
    for command, entry in COMMANDS.items():
        if isinstance(entry, Check):
            entry.check(command.split())




def _weights_wheel(tmp_path: Path, golden_dir: Path) -> Path:
    import zipfile

    wheel = tmp_path / "wheels" / "open_rppg-0.1.1-py3-none-any.whl"
    wheel.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as z:
        for f in (golden_dir / "open_rppg" / "weights").glob("*.weights.h5"):
            z.write(f, f"rppg/weights/{f.name}")
    return wheel


@pytest.mark.slow
def test_readme_chain_runs_as_written(tmp_path, request):
    """synthesize → convert → train → evaluate → predict → convert a reference checkpoint,
    the README's lines in its order, at small sizes, in one folder."""
    (tmp_path / "configs").symlink_to(REPO / "configs", target_is_directory=True)
    for command in readme_commands():
        entry = COMMANDS[command]
        if not isinstance(entry, Chain):
            continue
        argv = with_flags(command.split(), entry.flags)
        argv = [*argv, *entry.extra]
        if "ienet_jax.convert --checkpoint" in command:  # a reference PyTorch checkpoint
            state_dict = reference_state_dict(request.getfixturevalue("golden_dir"),
                                              request.getfixturevalue("det_init"))
            if importlib.util.find_spec("torch") is not None:
                import torch

                torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()},
                           tmp_path / "ref.pth")
            else:  # the torch extra is not installed: the same weights as an .npz
                np.savez(tmp_path / "ref.npz", **state_dict)
                i = argv.index("--checkpoint")
                argv[i:i + 2] = ["--state-dict-npz", "ref.npz"]
        if "--open-rppg" in command:  # the wheel: a zip of the test copy of the weights
            argv = with_flags(argv, [("--from", _weights_wheel(
                tmp_path, request.getfixturevalue("golden_dir")))])
        out = run(argv, tmp_path)
        assert (tmp_path / entry.done).exists(), (command, out.stdout[-2000:])
        if "ienet_jax.evaluate --config" in command:
            metrics = json.loads((tmp_path / entry.done).read_text())
            assert metrics["evaluation"]["data_dir"] == "clips"  # the run's own clips
        if "data_prep convert" in command:
            manifest = json.loads((tmp_path / entry.done).read_text())
            assert manifest["counts"]["failed"] == 0 and manifest["counts"]["clips"] > 0
