"""The quickstart: synthetic RGB+NIR dataset → clips → IENet stage 1 and 2 → evaluation.

    python -m ienet_jax.quickstart --workdir=runs/quickstart

Sized for 2 CPU cores (13 minutes at load 11, less on a quiet machine). The recipe, dataset
and training configs alike, is `configs/quickstart.py` (stage 1 and 2 train exactly
`configs/quickstart.py:stage1` / `:stage2` on the converted clips). Every
step is skipped when its output exists, so an interrupted run continues where it stopped:

    WORKDIR/data/raw       synthetic VIPL-HR tree (`python -m data_prep synthesize`)
    WORKDIR/data/clips     converted clips, subjects split train/validation/test
    WORKDIR/stage1         IENet stage 1 (rPPG: neg-Pearson + spectral loss) run
    WORKDIR/stage2         IENet stage 2 run: the FEE heart-rate head (L1 HR loss) on
                           the frozen stage-1 network
    WORKDIR/eval           metrics.json, per_video.json and plots on the held-out test
                           subjects: IENet (rPPG and FEE) vs POS, CHROM and the constant
                           predictor (the training split's mean HR)
    WORKDIR/quickstart.json  dataset settings, steps and the wall time of each step

Then try your own video: `python -m ienet_jax.predict --video … --nir … --checkpoint
WORKDIR/stage2 --output …` (or `--method pos` for an RGB-only video).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import ml_collections
from absl import app, flags, logging

DONE = ".done"


def stage_configs(arg: str, clips: Path, stage1_dir: Path, stage1_steps: int | None = None,
                  stage2_steps: int | None = None) -> tuple:
    """The trainer configs of stages 1 and 2: `configs/quickstart.py:STAGE` (+ `arg`) with
    `data.dir = clips`, stage 2's `train.init_from = stage1_dir` and the step counts if given."""
    from configs import quickstart as recipe

    configs = []
    for stage, steps in (("stage1", stage1_steps), ("stage2", stage2_steps)):
        config = recipe.get_config(",".join(p for p in (arg, stage) if p))
        config.data.dir = str(clips)
        if steps is not None:
            config.train.num_steps = steps
        configs.append(config)
    configs[1].train.init_from = str(stage1_dir)
    return tuple(configs)


def run_finished(run_dir: Path) -> bool:
    """The trainer's run in `run_dir` ran to its last step (`status.json`)."""
    status = run_dir / "status.json"
    return status.is_file() and json.loads(status.read_text()).get("finished", False)


def _data_prep(argv: list[str], what: str) -> None:
    from data_prep.__main__ import run

    code = run(argv)
    if code != 0:
        raise RuntimeError(f"quickstart: {what} failed with exit code {code} (see above)")


def synthesize_dataset(raw: Path, data: ml_collections.ConfigDict,
                       settings: tuple[str, ...] = ()) -> None:
    """`python -m data_prep synthesize` of the dataset `data` (`configs/quickstart.py`
    `dataset_config`) into `raw` (VIPL-HR layout), then `raw/.done`; `settings`: generator
    knobs `section.knob=value` (`--set`)."""
    _data_prep(["synthesize", "--layout", "vipl_hr", "--output", str(raw),
                "--subjects", str(data.subjects), "--seconds", str(data.seconds),
                "--preset", data.preset, "--seed", str(data.seed),
                "--size", data.video_size, "--workers", str(data.workers),
                *(("--set", *settings) if settings else ())], "synthesize")
    (raw / DONE).touch()


def convert_dataset(raw: Path, clips: Path, frame_size: int,
                    data: ml_collections.ConfigDict) -> None:
    """`python -m data_prep convert` of `raw` into `frame_size`-pixel clips in `clips`,
    subjects split by `data.split_fractions` (deterministic: the same subjects, the same
    splits), then `clips/.done`."""
    _data_prep(["convert", "--dataset", "vipl_hr", "--input", str(raw), "--output",
                str(clips), "--size", str(frame_size), "--box-scale",
                str(data.box_scale), "--clip-length", str(data.stored_clip_length),
                "--stride", str(data.stored_clip_length),
                "--split-fractions", data.split_fractions,
                "--workers", str(data.workers), "--allow-failures"], "convert")
    manifest = json.loads((clips / "manifest.json").read_text())
    failed = [v for v in manifest["videos"] if v.get("status") != "ok"]
    if failed:
        print(f"warning: {len(failed)} videos could not be converted (listed in "
              f"{clips / 'report.txt'}); continuing with the others")
    (clips / DONE).touch()


def check_settings(log_path: Path, old: dict | None, new: dict) -> None:
    """ValueError naming the settings that differ when `log_path`'s workdir was made with
    others (its finished steps would otherwise be reused for the new settings, e.g. an
    `easy` corpus under a `realistic` run)."""
    if not old:
        return

    from flax import traverse_util

    a, b = (traverse_util.flatten_dict(json.loads(json.dumps(d)), sep=".") for d in (old, new))
    diff = [f"{k}: {a.get(k)!r} → {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]
    if diff:
        raise ValueError(f"{log_path.parent} holds a quickstart run of other settings "
                         f"({'; '.join(diff)}; {log_path}): pass another --workdir, or delete "
                         "that folder to start over")


def run_quickstart(workdir: str | Path, arg: str = "", dataset: dict | None = None,
                   stage1_steps: int | None = None, stage2_steps: int | None = None) -> dict:
    """Run (or resume) every step in `workdir`; returns the evaluation's metrics dict.

    `arg`: extra `configs/quickstart.py` arg (variant, `runlocal`); `dataset`: values replacing
    those of its `dataset_config`; `stageN_steps`: `train.num_steps` of stage N if given.
    """
    from configs import quickstart as recipe

    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    raw, clips = workdir / "data" / "raw", workdir / "data" / "clips"
    stage1, stage2, eval_dir = workdir / "stage1", workdir / "stage2", workdir / "eval"
    log_path = workdir / "quickstart.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    data = recipe.dataset_config(arg)
    data.update(dataset or {})
    config1, config2 = stage_configs(arg, clips, stage1, stage1_steps, stage2_steps)
    settings = dict(arg=arg, dataset=data.to_dict(), stage1_steps=config1.train.num_steps,
                    stage2_steps=config2.train.num_steps)
    check_settings(log_path, log.get("settings"), settings)
    log["settings"] = settings
    log.setdefault("seconds", {})

    def step(i: int, name: str, done: bool, fn) -> None:
        if done:
            print(f"[{i}/5] {name}: already done, skipped", flush=True)
            return
        print(f"[{i}/5] {name} ...", flush=True)
        t0 = time.perf_counter()
        fn()
        log["seconds"][name] = round(time.perf_counter() - t0, 1)
        log_path.write_text(json.dumps(log, indent=2) + "\n")
        print(f"[{i}/5] {name}: done in {log['seconds'][name]:.0f} s", flush=True)

    def synthesize():
        synthesize_dataset(raw, data)

    def convert():
        convert_dataset(raw, clips, config1.model.frame_size, data)

    def train(config: ml_collections.ConfigDict, run_dir: Path):
        from ienet_jax.train.loop import train_and_evaluate

        train_and_evaluate(config, run_dir)

    def evaluate():
        from ienet_jax.evaluate import evaluate as evaluate_fn

        evaluate_fn(config2, stage2, split="test", output=eval_dir)

    step(1, "synthesize", (raw / DONE).is_file(), synthesize)
    step(2, "convert", (clips / DONE).is_file(), convert)
    step(3, "train stage 1", run_finished(stage1), lambda: train(config1, stage1))
    step(4, "train stage 2", run_finished(stage2), lambda: train(config2, stage2))
    step(5, "evaluate", (eval_dir / "metrics.json").is_file(), evaluate)
    log["total_seconds"] = round(sum(log["seconds"].values()), 1)
    log_path.write_text(json.dumps(log, indent=2) + "\n")
    return json.loads((eval_dir / "metrics.json").read_text())


def _define_flags() -> dict:
    from configs import quickstart as recipe
    from data_prep.synth.config import PRESETS as SYNTH_PRESETS

    d = recipe.dataset_config()
    return dict(
        workdir=flags.DEFINE_string("workdir", "runs/quickstart", "Output folder."),
        subjects=flags.DEFINE_integer("subjects", d.subjects, "Synthetic subjects."),
        seconds=flags.DEFINE_float("seconds", d.seconds, "Seconds per recording."),
        preset=flags.DEFINE_enum("preset", d.preset, sorted(SYNTH_PRESETS), "Synthetic realism."),
        stage1_steps=flags.DEFINE_integer("stage1_steps", recipe.STEPS["stage1"], "Stage-1 steps."),
        stage2_steps=flags.DEFINE_integer("stage2_steps", recipe.STEPS["stage2"], "Stage-2 steps."),
    )


def main(argv, f: dict) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from ienet_jax.eval.table import format_table

    dataset = {k: f[k].value for k in ("subjects", "seconds", "preset")}
    t0 = time.perf_counter()
    metrics = run_quickstart(f["workdir"].value, "", dataset, f["stage1_steps"].value,
                             f["stage2_steps"].value)
    workdir = Path(f["workdir"].value).absolute()
    ev = metrics["evaluation"]
    print(f"\nHeld-out test subjects: {ev['num_videos']} videos, HR per whole video "
          f"(FFT bins {ev['fft_resolution_bpm']['min']:.2f}-"
          f"{ev['fft_resolution_bpm']['max']:.2f} bpm apart at {ev['fps']:.1f} fps); "
          f"constant predictor = training mean {ev['constant_hr']:.1f} bpm")
    print(format_table(metrics))
    mae, const = metrics["ienet"]["mae"], metrics["constant"]["mae"]
    verdict = "learned" if mae < 0.5 * const else "NOT yet below half the constant's MAE"
    print(f"IENet MAE {mae:.2f} vs constant {const:.2f} bpm: {verdict}")
    print(f"this run: {time.perf_counter() - t0:.0f} s; everything is in {workdir}")
    logging.info("quickstart finished in %s", workdir)
    return 0


def run() -> None:
    """Entry point of `python -m ienet_jax.quickstart`."""
    f = _define_flags()
    from ienet_jax import cli

    cli.run(lambda argv: main(argv, f))


if __name__ == "__main__":
    run()
