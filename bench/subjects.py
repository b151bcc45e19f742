"""How many synthetic subjects a model needs: held-out error against training subjects.

    python -m bench.subjects [--preset realistic] [--variant tiny] [--counts 6 12 24 48 96] \
        [--steps 800] [--arm fused] [--seeds 0 1] [--output runs/subjects]
    python -m bench.subjects --short    # the same path in seconds (tests)

1. data: one `still` corpus of the study's dataset (`configs/accuracy.py` `dataset_config`,
   `bench.accuracy.corpora`) with enough subjects that its training split holds the
   largest count: `ceil(max(counts) / train fraction)` subjects; the rest are the
   validation and test subjects, the same held-out subjects for every count;
2. views: `OUTPUT/views/nN/` is the corpus with only the first N training subjects (the
   shards of their videos, linked and renumbered) and every validation and test shard;
3. train: the arm (`configs/accuracy.py`) the same `--steps` on every view and seed, so the
   runs differ only in how many subjects they saw; each is evaluated on the test split
   (`ienet_jax.evaluate`'s pipeline, 10 s windows and whole videos) next to the constant
   predictor of its own training split.

Output: a Markdown table (count × MAE per seed and their mean, the final training loss;
printed and in `OUTPUT/subjects.md`), `OUTPUT/results.json` and `OUTPUT/subjects.png` (MAE
against subjects, log scale). Every finished step is skipped on a re-run (same `--output`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from bench import accuracy
from bench import results as study_results
from configs import accuracy as recipe

DEFAULT_COUNTS = (6, 12, 24, 48, 96)
# --short: the micro model, 2 steps, counts 1 and 2 of a 4-subject corpus
SHORT = dict(counts=(1, 2), steps=2)
WINDOWS = tuple(accuracy.WINDOWS)


# ----------------------------------------------------------------------------- data
def subjects_needed(count: int, split_fractions: str) -> int:
    """Subjects to synthesize so that the training split holds `count` of them."""
    train = float(split_fractions.split(",")[0])
    if not 0.0 < train <= 1.0:
        raise ValueError(f"split_fractions={split_fractions!r}: the train fraction must be in "
                         "(0, 1]")
    return max(count, math.ceil(count / train - 1e-9))


def train_subjects(clips: Path) -> list[tuple[str, list[Path]]]:
    """`[(subject, its training shards)]` in shard order. Views select whole shards, so each
    shard must hold one subject (as `data_prep convert` writes: a shard per video)."""
    from ienet_jax.data import source
    from ienet_jax.data.decode import decode_record

    src = source.ClipSource(clips, "train")
    grouped: dict[str, list[Path]] = {}
    for f in src.files:
        found = {str(decode_record(src.spec, f[j], f"{f.path}:record {j}")["subject"])
                 for j in range(len(f))}
        if len(found) > 1:
            raise ValueError(f"{f.path}: holds subjects {sorted(found)}; a subject view needs "
                             "one subject per shard (as data_prep convert writes)")
        if found:
            grouped.setdefault(found.pop(), []).append(Path(f.path))
    return list(grouped.items())


def make_view(clips: Path, view: Path, count: int) -> Path:
    """`view`: `clips` with only its first `count` training subjects (links)."""
    subjects = train_subjects(clips)
    if count > len(subjects):
        raise ValueError(f"{clips}: the train split has {len(subjects)} subjects, fewer than "
                         f"the {count} asked for")
    shards = [p for _, paths in subjects[:count] for p in paths]
    view.mkdir(parents=True, exist_ok=True)
    for old in view.iterdir():
        old.unlink()
    for path in clips.iterdir():
        if path.is_file() and "-train.tfrecord-" not in path.name:
            (view / path.name).symlink_to(path.resolve())
    name = shards[0].name.split("-train.tfrecord-")[0]
    for i, path in enumerate(shards):
        (view / f"{name}-train.tfrecord-{i:05d}-of-{len(shards):05d}").symlink_to(path.resolve())
    return view


# ----------------------------------------------------------------------------- runs
def final_loss(run_dir: Path) -> float | None:
    """The last logged training loss of a run (`metrics.jsonl`)."""
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    return float(losses[-1]) if losses else None


def run_one(view: Path, run_dir: Path, size: str, arm: str, short: bool, steps: int,
            seed: int) -> dict:
    """Train (or resume) one run on `view` and evaluate it on its test split."""
    from ienet_jax.eval import inference
    from ienet_jax.evaluate import constant_hr
    from ienet_jax.quickstart import run_finished
    from ienet_jax.train.loop import train_and_evaluate

    config = accuracy._config(size, arm, "stage1", short, view, steps)
    config.seed = int(seed)
    t0 = time.perf_counter()
    if not run_finished(run_dir):
        accuracy._say(f"train {arm} seed {seed} on {view.name}: {steps} steps -> {run_dir}")
        train_and_evaluate(config, run_dir)
    seconds = round(time.perf_counter() - t0, 1)
    accuracy._say(f"evaluate {run_dir}")
    constant = constant_hr(run_dir, str(view), view)[0]
    found = accuracy.model_maes(inference.load(run_dir), view, constant,
                                accuracy.METHOD_NAMES[arm])
    return dict(model=found[accuracy.METHOD_NAMES[arm]], constant=found["constant"],
                pos=found["pos"], true_pulse=found["true pulse"], loss=final_loss(run_dir),
                seconds=seconds)


# ----------------------------------------------------------------------------- report
def table(results: dict) -> str:
    """One Markdown row per subject count: model MAE per seed and mean, constant, loss."""
    runs = results.get("runs", {})
    seeds = results["settings"]["seeds"]
    head = ["training subjects"]
    head += [f"seed {s} {w}" for s in seeds for w in WINDOWS]
    head += [f"mean {w}" for w in WINDOWS] + ["constant 10 s", "final loss"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for count in results["settings"]["counts"]:
        got = [runs.get(f"n{count}/seed{s}") for s in seeds]
        cells = [str(count)]
        for r in got:
            cells += ["-" if r is None else f"{r['model'][w]:.2f}" for w in WINDOWS]
        done = [r for r in got if r is not None]
        cells += [f"{np.mean([r['model'][w] for r in done]):.2f}" if done else "-"
                  for w in WINDOWS]
        cells.append(f"{done[0]['constant']['10 s']:.2f}" if done else "-")
        cells.append(", ".join("-" if r["loss"] is None else f"{r['loss']:.3f}" for r in done)
                     or "-")
        lines.append("| " + " | ".join(cells) + " |")
    first = next(iter(runs.values()), None)
    if first is not None:
        lines += ["", "Same test subjects for every row: POS "
                  + " / ".join(f"{first['pos'][w]:.2f}" for w in WINDOWS)
                  + ", true pulse " + " / ".join(f"{first['true_pulse'][w]:.2f}" for w in WINDOWS)
                  + f" ({' / '.join(WINDOWS)})."]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> Path:
    """MAE (10 s windows) against training subjects, one line per seed and the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts, seeds = results["settings"]["counts"], results["settings"]["seeds"]
    runs = results.get("runs", {})
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in seeds:
        xs = [c for c in counts if f"n{c}/seed{s}" in runs]
        ax.plot(xs, [runs[f"n{c}/seed{s}"]["model"]["10 s"] for c in xs], "o-", alpha=0.5,
                label=f"seed {s}")
    first = next(iter(runs.values()), None)
    if first is not None:
        ax.axhline(first["pos"]["10 s"], color="tab:gray", ls="--", label="POS")
        ax.axhline(first["constant"]["10 s"], color="k", ls=":", label="constant")
    ax.set_xscale("log")
    ax.set_xlabel("training subjects")
    ax.set_ylabel("held-out MAE (bpm), 10 s windows")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.subjects", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="realistic", choices=["easy", "realistic", "hard"])
    parser.add_argument("--variant", default="tiny", choices=list(recipe.FRAME_SIZE))
    parser.add_argument("--arm", default="fused", choices=list(recipe.ARMS))
    parser.add_argument("--counts", type=int, nargs="+", default=None,
                        help=f"training subjects per run (default {DEFAULT_COUNTS})")
    parser.add_argument("--steps", type=int, default=None,
                        help="train steps of every run (default: the recipe's stage 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds per recording (default: the dataset config's)")
    parser.add_argument("--short", action="store_true",
                        help="micro model, 4 subjects, counts 1 2, 2 steps (tests)")
    parser.add_argument("--output", type=Path, default=Path("runs/subjects"))
    args = parser.parse_args(argv)

    counts = sorted(set(args.counts or (SHORT["counts"] if args.short else DEFAULT_COUNTS)))
    if counts[0] < 1:
        parser.error(f"--counts {counts}: expected positive subject counts")
    short = ["short"] if args.short else []
    steps = args.steps or (SHORT["steps"] if args.short else
                           recipe.get_config(",".join([args.variant, args.arm])).train.num_steps)
    data = recipe.dataset_config(",".join([args.variant, *short]))
    data.subjects = max(data.subjects, subjects_needed(counts[-1], data.split_fractions))
    if args.seconds is not None:
        data.seconds = args.seconds

    out = args.output.absolute()
    out.mkdir(parents=True, exist_ok=True)
    results, save = study_results.load(out)
    results["settings"] = dict(preset=args.preset, variant=args.variant, arm=args.arm,
                               counts=counts, seeds=args.seeds, steps=steps, short=args.short,
                               dataset=dict(data.items()))

    clips = accuracy.corpora(out / "data", args.preset, data, [accuracy.TRAINED],
                             args.variant)[accuracy.TRAINED]
    runs = results.setdefault("runs", {})
    for count in counts:
        view = None
        for seed in args.seeds:
            key = f"n{count}/seed{seed}"
            if key in runs:
                continue
            view = view or make_view(clips, out / "views" / f"n{count}", count)
            runs[key] = run_one(view, out / "runs" / f"n{count}" / f"seed{seed}",
                                args.variant, args.arm, args.short, steps, seed)
            save()
            print(f"{key}: " + ", ".join(f"{w} {runs[key]['model'][w]:.2f}" for w in WINDOWS),
                  flush=True)
    save()
    study_results.report(out, "subjects", table(results), lambda path: plot(results, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
