"""The accuracy study: IENet fused vs RGB-only vs NIR-only, context on/off, FEE vs rPPG path,
next to hand-made methods and real-trained networks, on held-out synthetic subjects.

    python -m bench.accuracy [--preset realistic] [--subjects 48] [--seconds 30] \
        [--variant tiny|small] [--budget 8] [--only fused,rgb,nir,context,fee] \
        [--scenarios still dark light] [--from WHEEL_OR_DIR] [--output runs/accuracy]
    python -m bench.accuracy --short    # the same path in seconds, arms fused, nir, fee (CI)

Per preset, in `OUTPUT/PRESET/`:
1. data: `data_prep synthesize --preset PRESET` once per scenario (`bench.realism.SCENARIOS`:
   `still`, `dark`, `light`; the same subjects, seed and pulses) and `convert` with the
   dataset's subject split (`configs/accuracy.py` `dataset_config`): the same subjects land
   in the test split of every scenario, and no test subject is ever trained on;
2. train, on the `still` corpus, each arm of `configs/accuracy.py` (`fused`, `rgb`, `nir`,
   `context`) with the trainer, and `fee`: stage 2 (the FEE head on the frozen `fused`
   network). Budget: `--budget` minutes of training per arm. Calibration runs of
   `CALIBRATION_STEPS` steps measure each arm's step time, one after the other
   (compilation excluded, the trainer's own `step_time_s`); every arm then trains the same
   `budget / slowest step time` steps, so that the arms differ only in the model (stage 2:
   `STAGE2_FRACTION` of them). `--steps N` skips the calibration;
3. evaluate every trained model on the test subjects of each scenario, 10 s windows and
   whole videos (`ienet_jax.evaluate`'s pipeline: the same rPPG-Toolbox estimator for
   every method), next to POS, CHROM, the NIR face mean (`bench.realism`), the constant
   predictor (the training split's mean HR), the true pulse (the label BVP through the same
   estimator vs the generator's HR) and, with `--from`, the converted open-rppg networks.

Output: one Markdown table per preset and scenario (printed and in `OUTPUT/accuracy.md`),
`OUTPUT/results.json` (`mae[preset][scenario][method][window]`, the budget, steps and step
times of every run) and `OUTPUT/accuracy.png` (MAE per method, 10 s windows). Every finished
step is skipped on a re-run (same `--output`): data (`.done`), runs (`status.json`),
evaluations (`results.json`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from bench import realism
from bench import results as study_results
from configs import accuracy as recipe

WINDOWS = realism.WINDOWS  # {"10 s": 10.0, "whole": None}
TRAINED = "still"  # the scenario the arms train on
ARM_ORDER = (*recipe.ARMS, "fee")
CALIBRATION_STEPS = 8
# --short: the micro model for the given steps, 2 scenarios, and (without --only) the arms
# that exercise every path: two streams, one stream, stage 2 (each arm's config is tested
# apart; the others only add compile time)
SHORT = dict(steps=2, scenarios=("still", "dark"), arms=("fused", "nir", "fee"))
METHOD_NAMES = {"fused": "IENet fused", "fused_no_streams": "IENet fused, fused-pulse loss only",
                "rgb": "IENet RGB only", "nir": "IENet NIR only",
                "context": "IENet fused + context",
                "context_residual": "IENet fused + residual context",
                "fee": "IENet fused FEE head"}


# ----------------------------------------------------------------------------- data
def corpora(out: Path, preset: str, data, scenarios, size: str) -> dict[str, Path]:
    """`{scenario: clips}` of the preset, synthesized and converted (skipped when done)."""
    from ienet_jax.quickstart import DONE, convert_dataset, synthesize_dataset

    data.preset = preset
    clips = {}
    for scenario in scenarios:
        raw, c = out / f"raw_{scenario}", out / f"clips_{scenario}"
        if not (raw / DONE).is_file():
            _say(f"{preset}/{scenario}: synthesize")
            synthesize_dataset(raw, data, realism.SCENARIOS[scenario])
        if not (c / DONE).is_file():
            _say(f"{preset}/{scenario}: convert")
            convert_dataset(raw, c, recipe.FRAME_SIZE[size], data)
        clips[scenario] = c
    return clips


# ----------------------------------------------------------------------------- training
def _say(message: str) -> None:
    print(f"[accuracy] {message}", file=sys.stderr, flush=True)


def _detach(section, key: str, value) -> None:
    """`section[key] = value` without touching the field it references: the recipe's
    checkpoint/eval/logging intervals are references to `train.num_steps`, and assigning
    to a reference would set the step count itself."""
    with section.unlocked():
        del section[key]
        section[key] = value


def _config(size: str, arm: str, stage: str, short: bool, clips: Path, steps: int,
            init_from: Path | None = None):
    config = recipe.get_config(",".join([size, arm, stage] + (["short"] if short else [])))
    config.data.dir = str(clips)
    config.train.num_steps = int(steps)
    _detach(config.eval, "every_steps", 0)  # the study evaluates the test subjects itself
    if init_from is not None:
        config.train.init_from = str(init_from)
    return config


def step_time(run_dir: Path) -> float:
    """Mean train-step time (s, compilation excluded) the trainer logged in `run_dir`."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    times = [r["step_time_s"] for r in rows if "step_time_s" in r]
    if not times:
        raise ValueError(f"{run_dir}/metrics.jsonl: no step_time_s row (too few steps?)")
    return float(times[-1])


def budget_steps(budget_minutes: float, seconds_per_step: float) -> int:
    """Steps that fill `budget_minutes` of training at `seconds_per_step` (at least 1)."""
    return max(1, math.floor(budget_minutes * 60.0 / seconds_per_step))


def train_arms(out: Path, arms: list[str], size: str, short: bool, clips: Path,
               budget: float, steps: int | None, runs: dict) -> dict[str, Path]:
    """Train (or resume) every arm; `runs[arm]` records steps, step time and seconds.
    Returns `{arm: run dir to evaluate}`."""
    from ienet_jax.quickstart import run_finished
    from ienet_jax.train.loop import train_and_evaluate

    def train(config, run_dir: Path, name: str, record: dict, key: str = "seconds") -> None:
        if run_finished(run_dir):
            return
        _say(f"train {name}: {config.train.num_steps} steps -> {run_dir}")
        t0 = time.perf_counter()
        train_and_evaluate(config, run_dir)
        record[key] = round(time.perf_counter() - t0, 1)

    stage1 = [a for a in ARM_ORDER if a in arms and a != "fee"]
    if steps is None and "steps" not in runs.get("budget", {}):
        # every arm trains the same steps (the comparison is of models trained the same
        # way): the budget at the slowest arm's step time, all measured back to back
        for arm in stage1:
            record = runs.setdefault(arm, {})
            calib = out / arm / "calibrate"
            config = _config(size, arm, "stage1", short, clips, CALIBRATION_STEPS)
            _detach(config.logging, "every_steps", CALIBRATION_STEPS)
            _detach(config.checkpoint, "every_steps", 0)
            train(config, calib, f"{arm} calibration", record, "calibration_seconds")
            record["step_time_s"] = step_time(calib)
        slowest = max(runs[a]["step_time_s"] for a in stage1)
        runs["budget"] = dict(minutes=budget, step_time_s=slowest,
                              steps=budget_steps(budget, slowest))
    if steps is None:
        steps = runs["budget"]["steps"]
    dirs = {}
    for arm in stage1:
        record = runs.setdefault(arm, {})
        record["steps"] = steps
        dirs[arm] = out / arm / "stage1"
        train(_config(size, arm, "stage1", short, clips, steps), dirs[arm], arm, record)
    if "fee" in arms:
        if "fused" not in dirs:
            raise ValueError("--only: the fee arm trains on the fused arm's network; add fused")
        record = runs.setdefault("fee", {})
        record["steps"] = max(1, round(steps * recipe.STAGE2_FRACTION))
        dirs["fee"] = out / "fused" / "stage2"
        train(_config(size, "fused", "stage2", short, clips, record["steps"], dirs["fused"]),
              dirs["fee"], "fee", record)
    return dirs


# ----------------------------------------------------------------------------- evaluation
def _mae(rows: list[dict]) -> float:
    return float(np.mean([abs(r["hr_pred"] - r["hr_label"]) for r in rows]))


def true_pulse_rows(video, window: float | None) -> list[dict]:
    """The label BVP through the estimator vs the generator's HR (the mean clip `hr` of the
    clips inside each window): the estimator's own error floor."""
    from ienet_jax import signal

    rows = []
    for w in signal.evaluation_windows(len(video.bvp), video.fps, window):
        if w.stop - w.start < signal.per_video.MIN_WINDOW:
            continue
        starts, n = video.clip_starts, video.clip_length
        inside = (starts >= w.start) & (starts + n <= w.stop)
        if not inside.any():
            inside = (starts < w.stop) & (starts + n > w.start)
        r = signal.evaluate_video(video.bvp[w], video.bvp[w], video.fps)
        rows.append(dict(hr_pred=float(r["hr_label"]),
                         hr_label=float(np.mean(video.clip_hr[inside]))))
    return rows


def model_maes(model, clips: Path, constant: float | None, name: str) -> dict:
    """`{method: {window: MAE}}` of one trained model on the test split of `clips` (and,
    when `constant` is given, of POS, CHROM, the NIR face mean, the constant predictor and
    the true pulse on the same windows)."""
    from ienet_jax.eval import table
    from ienet_jax.evaluate import run_clips, video_series

    videos = video_series(run_clips(model, clips, "test"),
                          model.series_hr if model.has_fee else None)
    nir_videos = realism.nir_series(clips) if constant is not None else []
    out: dict[str, dict[str, float]] = {}
    for label, window in WINDOWS.items():
        rows: dict[str, list[dict]] = {}
        for v in videos:
            vr = table.video_rows(v, model.name, window=window, constant_hr=constant)
            if constant is not None:
                vr["true pulse"] = true_pulse_rows(v, window)
            for method, r in vr.items():
                rows.setdefault(method, []).extend(r)
        if constant is not None:
            rows["nir face-mean"] = realism.nir_rows(nir_videos, window)
        # the stage-2 run's rPPG row is named as its own (`fee` arm); its FEE row is the head's
        names = {model.name: name if name != METHOD_NAMES["fee"] else "stage-2 rPPG",
                 f"{model.name}_fee": METHOD_NAMES["fee"]}
        for method, r in rows.items():
            if constant is None and method not in names:
                continue
            out.setdefault(names.get(method, method), {})[label] = _mae(r)
    return out


def evaluate_all(out: Path, preset: str, dirs: dict[str, Path], clips: dict[str, Path],
                 results: dict, save, models: dict[str, Path]) -> None:
    """Fill `results["mae"][preset][scenario]` (each finished model × scenario is kept)."""
    from ienet_jax.eval import inference
    from ienet_jax.evaluate import constant_hr

    mae = results.setdefault("mae", {}).setdefault(preset, {})
    done = results.setdefault("evaluated", {}).setdefault(preset, {})
    baseline_arm = next(iter(dirs), None)  # the baselines come with the first arm's pass
    for arm, run_dir in dirs.items():
        model = None
        for scenario, c in clips.items():
            if scenario in done.get(arm, []):
                continue
            _say(f"evaluate {arm} on {preset}/{scenario}")
            model = model or inference.load(run_dir)  # compiled once per arm
            constant = (constant_hr(run_dir, str(clips[TRAINED]), c)[0]
                        if arm == baseline_arm else None)
            found = model_maes(model, c, constant, METHOD_NAMES[arm])
            if arm == "fee":  # its rPPG path is the frozen fused network's: only the FEE row
                found = {METHOD_NAMES["fee"]: found[METHOD_NAMES["fee"]]}
            for method, values in found.items():
                mae.setdefault(scenario, {}).setdefault(method, {}).update(values)
            done.setdefault(arm, []).append(scenario)
            save()
    for name, checkpoint in models.items():
        for scenario, c in clips.items():
            if scenario in done.get(name, []):
                continue
            _say(f"evaluate {name} on {preset}/{scenario}")
            try:
                found = realism.model_maes(name, checkpoint, c, out / "eval" / scenario / name)
            except ValueError as err:  # e.g. stored clips shorter than the network's input
                _say(f"{name} cannot run on {preset}/{scenario}: {err}")
                results.setdefault("not_run", {}).setdefault(preset, {}).setdefault(
                    scenario, {})[name] = str(err)
                found = {}
            for key, value in found.items():
                method, label = key.split("/")
                mae.setdefault(scenario, {}).setdefault(method, {})[label] = value
            done.setdefault(name, []).append(scenario)
            save()


# ----------------------------------------------------------------------------- report
BASELINE_ORDER = ("true pulse", "pos", "chrom", "nir face-mean", "constant")


def ordered(methods: dict) -> list[str]:
    """Method names: the IENet arms, the baselines, then the converted networks."""
    first = [*METHOD_NAMES.values(), *BASELINE_ORDER]
    return [m for m in first if m in methods] + [m for m in methods if m not in first]


def tables(results: dict) -> str:
    """One Markdown table per preset and scenario: MAE (bpm) per method and window."""
    lines = []
    for preset, scenarios in results.get("mae", {}).items():
        for scenario, methods in scenarios.items():
            lines += [f"### {preset} / {scenario}", "",
                      "| method | " + " | ".join(f"MAE {w}" for w in WINDOWS) + " |",
                      "|---" * (1 + len(WINDOWS)) + "|"]
            for method in ordered(methods):
                values = methods[method]
                cells = ["-" if values.get(w) is None else f"{values[w]:.2f}" for w in WINDOWS]
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
            not_run = results.get("not_run", {}).get(preset, {}).get(scenario, {})
            lines += ["", *(f"Not run: {name}: {why}" for name, why in not_run.items())]
            lines.append("")
    return "\n".join(lines)


def plot(results: dict, path: Path, window: str = "10 s") -> Path:
    """Bar chart of the MAE per method, one panel per preset and scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(p, s, m) for p, ss in results.get("mae", {}).items() for s, m in ss.items()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * max(len(panels), 1)),
                             squeeze=False)
    for ax, (preset, scenario, methods) in zip(axes[:, 0], panels):
        names = ordered(methods)
        values = [methods[n].get(window, np.nan) for n in names]
        colors = ["tab:blue" if n.startswith("IENet") else "tab:gray" for n in names]
        bars = ax.barh(names, values, color=colors)
        ax.bar_label(bars, fmt="%.1f", padding=2)
        ax.invert_yaxis()
        ax.set_xlabel(f"MAE (bpm), {window} windows")
        ax.set_title(f"{preset} / {scenario} (held-out subjects)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", nargs="+", default=["realistic"],
                        choices=["easy", "realistic", "hard"])
    parser.add_argument("--subjects", type=int, default=None,
                        help="synthetic subjects (default: the dataset config's)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds per recording (default: the dataset config's)")
    parser.add_argument("--variant", default="tiny", choices=list(recipe.FRAME_SIZE),
                        help="IENet size (configs/ienet.py)")
    parser.add_argument("--budget", type=float, default=8.0,
                        help="minutes of training per arm (stage 2: a fraction of it)")
    parser.add_argument("--steps", type=int, default=None,
                        help="train steps per arm instead of --budget (no calibration)")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated arms among {ARM_ORDER} (default: all; with "
                             f"--short {','.join(SHORT['arms'])})")
    parser.add_argument("--scenarios", nargs="+", default=None,
                        choices=list(realism.SCENARIOS))
    parser.add_argument("--from", dest="from_", default=None,
                        help="open-rppg wheel or folder of .weights.h5 files (optional)")
    parser.add_argument("--models", nargs="+", default=["physnet.pure", "tscan.pure"])
    parser.add_argument("--short", action="store_true",
                        help="CI: micro model, tiny data, 2 steps, still + dark")
    parser.add_argument("--output", type=Path, default=Path("runs/accuracy"))
    args = parser.parse_args(argv)

    if args.only is None:
        args.only = ",".join(SHORT["arms"] if args.short else ARM_ORDER)
    arms = [a for a in args.only.split(",") if a]
    unknown = [a for a in arms if a not in ARM_ORDER]
    if unknown or not arms:
        parser.error(f"--only {args.only!r}: expected arms among {ARM_ORDER}")
    steps = SHORT["steps"] if args.short and args.steps is None else args.steps
    scenarios = args.scenarios or list(SHORT["scenarios"] if args.short else realism.SCENARIOS)
    if TRAINED not in scenarios:
        scenarios = [TRAINED, *scenarios]
    data = recipe.dataset_config(",".join([args.variant] + (["short"] if args.short else [])))
    if args.subjects is not None:
        data.subjects = args.subjects
    if args.seconds is not None:
        data.seconds = args.seconds

    out = args.output.absolute()
    out.mkdir(parents=True, exist_ok=True)
    results, save = study_results.load(out)
    results["settings"] = dict(
        presets=args.preset, variant=args.variant, arms=arms, scenarios=scenarios,
        short=args.short, dataset={k: v for k, v in data.items() if k != "preset"},
        budget_minutes=None if steps is not None else args.budget, steps=steps,
        budget_rule=(f"{CALIBRATION_STEPS}-step calibration runs measure each arm's step "
                     "time (compilation excluded); every arm trains floor(budget / the "
                     "slowest arm's step time) steps (runs.budget); stage 2 (fee) "
                     f"{recipe.STAGE2_FRACTION:g} of them"),
        trained_on=TRAINED, windows=list(WINDOWS))

    models = {}
    if args.from_:
        from ienet_jax.convert import open_rppg

        for name in args.models:
            models[name] = out / "models" / name
            if not (models[name] / "source.json").is_file():
                open_rppg.import_weights(name, args.from_, models[name])
    t0 = time.perf_counter()
    for preset in args.preset:
        root = out / preset
        clips = corpora(root, preset, data.copy_and_resolve_references(), scenarios,
                        args.variant)
        runs = results.setdefault("runs", {}).setdefault(preset, {})
        dirs = train_arms(root, arms, args.variant, args.short, clips[TRAINED], args.budget,
                          steps, runs)
        save()
        evaluate_all(root, preset, dirs, clips, results, save, models)
    results["seconds"] = round(time.perf_counter() - t0, 1) + results.get("seconds", 0.0)
    save()
    study_results.report(out, "accuracy", tables(results), lambda path: plot(results, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
