"""The quickstart: synthetic RGB+NIR dataset → clips → IENet stage 1 and 2 → evaluation.

    python -m ienet_jax.quickstart --workdir=runs/quickstart

Sized for 2 CPU cores (about 4 minutes with the environment set-up, see `Settings`). Every
step is skipped when its output exists, so an interrupted run continues where it stopped:

    WORKDIR/data/raw       synthetic VIPL-HR tree (`python -m data_prep synthesize`)
    WORKDIR/data/clips     converted clips, subjects split train/validation/test
    WORKDIR/stage1         IENet stage 1 (rPPG: neg-Pearson + spectral loss) run
    WORKDIR/stage2         IENet stage 2 run: the FEE heart-rate head (L1 HR loss) on
                           the frozen stage-1 network
    WORKDIR/eval           metrics.json, per_video.json and plots on the held-out test
                           subjects: IENet (rPPG and FEE) vs POS, CHROM and the constant
                           predictor (the training split's mean HR)
    WORKDIR/quickstart.json  settings and the wall time of each step

Then try your own video: `python -m ienet_jax.predict --video … --nir … --checkpoint
WORKDIR/stage2 --output …` (or `--method pos` for an RGB-only video).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import ml_collections
from absl import app, flags, logging

DONE = ".done"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Dataset and training sizes and the training recipe (defaults: see the README).

    The recipe departs from the reference's stage 1 in measured ways (easy preset, 48
    subjects x 30 s, 800 steps of batch 8, held-out test MAE in bpm; with everything below:
    1.3 (seed 1, constant predictor 14.6) and 1.2 (seed 2, constant 12.1)). Turning the
    context module on (the reference's CET) gives 15.5. Earlier ablations (context on, another
    seed, where the full recipe gave 1.5), each change undone: reference frame
    normalisation instead of `input_norm="temporal"` (each pixel's relative change over the
    clip): 15.5; neg-Pearson on raw signals instead of the 0.6-3.3 Hz band
    (`pearson_band_hz`): 16.3; no brightness/contrast augmentation: 17.7; stochastic depth
    0.1: 18.1. Without random 64-frame windows at 0.8-1.25x speed cut from 128-frame clips
    the tiny model memorises the training clips (train |r| 0.75, held-out 0.2). On the
    `hard` preset the same budget learns nothing (35.5 vs constant 20.8; POS 24.6).
    """

    subjects: int = 48
    seconds: float = 30.0
    preset: str = "easy"
    seed: int = 1
    video_size: str = "160x120"
    crop_size: int = 16
    box_scale: float = 1.0  # crops of the face box itself (the converter's default is 1.5)
    stored_clip_length: int = 128  # frames per stored clip (random windows are cut from it)
    clip_length: int = 64  # frames per model clip
    split_fractions: str = "0.6,0.1,0.3"
    variant: str = "tiny"
    batch_size: int = 8
    stage1_steps: int = 800
    stage1_lr: float = 1e-3
    stage2_steps: int = 100
    stage2_lr: float = 1e-3
    pearson_band_hz: tuple = (0.6, 3.3)
    speed_range: tuple | None = (0.8, 1.25)  # playback-speed augmentation (None = off)
    brightness: float = 0.1  # per-clip photometric augmentation (`data.augment` keys)
    contrast: float = 0.1
    workers: int = 2
    num_devices: int = 0  # devices used for training (0 = all)
    model_overrides: tuple = (("input_norm", "temporal"), ("drop_path", 0.0),
                              ("context.enabled", False))
    # (("key.sub", value), …) set in the `model` section, after the variant's sizes


def stage_config(settings: Settings, stage: int, data_dir: Path,
                 init_from: Path | None = None) -> ml_collections.ConfigDict:
    """The trainer config of quickstart stage 1 (rPPG) or 2 (+ FEE, from `init_from`)."""
    from configs import common, ienet

    model = ienet.model_config(settings.variant)
    model.clip_length = settings.clip_length
    model.frame_size = settings.crop_size
    for key, value in settings.model_overrides:  # dotted keys reach nested sections
        *path, last = key.split(".")
        section = model
        for part in path:
            section = section[part]
        section[last] = value
    preset = "quickstart" if stage == 1 else "reference_stage2"
    config = common.build_config(model, preset, settings.variant)
    config.data.dir = str(data_dir)
    config.mesh.num_devices = settings.num_devices
    config.train.batch_size = settings.batch_size
    config.data.clip_length = settings.clip_length
    augment = config.data.augment
    augment.flip = True
    augment.brightness = settings.brightness
    augment.contrast = settings.contrast
    augment.temporal_crop = settings.stored_clip_length > settings.clip_length
    augment.speed_range = settings.speed_range
    config.train.num_steps = settings.stage1_steps if stage == 1 else settings.stage2_steps
    config.train.learning_rate = settings.stage1_lr if stage == 1 else settings.stage2_lr
    steps = int(config.train.num_steps)
    if stage == 1:
        config.train.loss.pearson_band_hz = tuple(settings.pearson_band_hz)
    else:
        config.train.init_from = str(init_from)
        # Unlike the reference stage 2 (stage-1 network unfrozen for the last 20 %), only
        # the FEE head trains: in a run this short the L1 HR loss (tens of bpm) otherwise
        # drags the rPPG away (measured: held-out MAE 15.6 -> 20.7 bpm on the hard preset).
        config.train.freeze_steps = steps
    config.checkpoint.every_steps = steps
    config.checkpoint.async_save = False
    config.eval.every_steps = steps
    config.eval.num_batches = 0
    config.logging.every_steps = max(1, steps // 10)
    config.logging.tensorboard = False
    return config


def _finished(run_dir: Path) -> bool:
    status = run_dir / "status.json"
    return status.is_file() and json.loads(status.read_text()).get("finished", False)


def _data_prep(argv: list[str], what: str) -> None:
    from data_prep.__main__ import run

    code = run(argv)
    if code != 0:
        raise RuntimeError(f"quickstart: {what} failed with exit code {code} (see above)")


def run_quickstart(workdir: str | Path, settings: Settings = Settings()) -> dict:
    """Run (or resume) every step in `workdir`; returns the evaluation's metrics dict."""
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    raw, clips = workdir / "data" / "raw", workdir / "data" / "clips"
    stage1, stage2, eval_dir = workdir / "stage1", workdir / "stage2", workdir / "eval"
    log_path = workdir / "quickstart.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    log["settings"] = dataclasses.asdict(settings)
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
        _data_prep(["synthesize", "--layout", "vipl_hr", "--output", str(raw),
                    "--subjects", str(settings.subjects), "--seconds", str(settings.seconds),
                    "--preset", settings.preset, "--seed", str(settings.seed),
                    "--size", settings.video_size, "--workers", str(settings.workers)],
                   "synthesize")
        (raw / DONE).touch()

    def convert():
        _data_prep(["convert", "--dataset", "vipl_hr", "--input", str(raw), "--output",
                    str(clips), "--size", str(settings.crop_size), "--box-scale",
                    str(settings.box_scale), "--clip-length", str(settings.stored_clip_length),
                    "--stride", str(settings.stored_clip_length),
                    "--split-fractions", settings.split_fractions,
                    "--workers", str(settings.workers), "--allow-failures"], "convert")
        manifest = json.loads((clips / "manifest.json").read_text())
        failed = [v for v in manifest["videos"] if v.get("status") != "ok"]
        if failed:
            print(f"warning: {len(failed)} videos could not be converted (listed in "
                  f"{clips / 'report.txt'}); continuing with the others")
        (clips / DONE).touch()

    def train(stage: int, run_dir: Path):
        from ienet_jax.train.loop import train_and_evaluate

        config = stage_config(settings, stage, clips, stage1 if stage == 2 else None)
        train_and_evaluate(config, run_dir)

    def evaluate():
        from ienet_jax.evaluate import evaluate as evaluate_fn

        config = stage_config(settings, 2, clips, stage1)
        evaluate_fn(config, stage2, split="test", output=eval_dir)

    step(1, "synthesize", (raw / DONE).is_file(), synthesize)
    step(2, "convert", (clips / DONE).is_file(), convert)
    step(3, "train stage 1", _finished(stage1), lambda: train(1, stage1))
    step(4, "train stage 2", _finished(stage2), lambda: train(2, stage2))
    step(5, "evaluate", (eval_dir / "metrics.json").is_file(), evaluate)
    log["total_seconds"] = round(sum(log["seconds"].values()), 1)
    log_path.write_text(json.dumps(log, indent=2) + "\n")
    return json.loads((eval_dir / "metrics.json").read_text())


def _define_flags() -> dict:
    d = Settings()
    return dict(
        workdir=flags.DEFINE_string("workdir", "runs/quickstart", "Output folder."),
        subjects=flags.DEFINE_integer("subjects", d.subjects, "Synthetic subjects."),
        seconds=flags.DEFINE_float("seconds", d.seconds, "Seconds per recording."),
        preset=flags.DEFINE_enum("preset", d.preset, ["easy", "hard"], "Synthetic realism."),
        stage1_steps=flags.DEFINE_integer("stage1_steps", d.stage1_steps, "Stage-1 steps."),
        stage2_steps=flags.DEFINE_integer("stage2_steps", d.stage2_steps, "Stage-2 steps."),
    )


def main(argv, f: dict) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from ienet_jax.eval.table import format_table

    settings = Settings(subjects=f["subjects"].value, seconds=f["seconds"].value,
                        preset=f["preset"].value, stage1_steps=f["stage1_steps"].value,
                        stage2_steps=f["stage2_steps"].value)
    t0 = time.perf_counter()
    metrics = run_quickstart(f["workdir"].value, settings)
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
