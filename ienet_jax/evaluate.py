"""Evaluate a trained model on converted clips against POS, CHROM and a constant predictor.

    python -m ienet_jax.evaluate --workdir=runs/q [--config=configs/quickstart.py:tiny] \
        [--split=test] [--checkpoint=DIR] [--window=10] [--hr_method=fft]
    python -m ienet_jax.evaluate --checkpoint=CONVERTED --data_dir=CLIPS [--output=OUT]

The model runs on each stored clip in windows of its own clip length, frame size and input
rate (`ienet_jax.eval.series`): a converted model (e.g. open-rppg's PhysNet or TS-CAN,
`python -m ienet_jax.convert --open-rppg`) is scored on any converted corpus.

Per video, clips are stitched back in order of `start_frame` (overlaps averaged,
`ienet_jax.eval.stitch`); the model's rPPG, the label BVP and the per-frame mean RGB of
the face crops (the detected face box inside each crop: its inner `1 / box_scale`, with
the converter's `--box-scale` read from the dataset's `metadata.json`) go through the
rPPG-Toolbox pipeline (`ienet_jax.eval.table`): the model, POS, CHROM, IENet's FEE head
(when enabled) and a constant predictor (the training split's mean clip HR, stored by the
trainer in `WORKDIR/train_stats.json`, so `--data_dir` may be a corpus holding only the
evaluated split) are scored on the same videos and windows. Outputs, in `WORKDIR/eval/`
(or `--output`):

- `metrics.json`: `{"<model>": {mae, mae_se, rmse, mape, pearson, sd, snr, …}, "pos": …,
  "chrom": …, "constant": …, ["<model>_fee": …], "evaluation": {mode, hr_method,
  window_seconds, fps, fft_resolution_bpm, split, checkpoint, …}}` where `<model>` is
  `ienet` or `tscan` (TS-CAN's derivative output is integrated first);
- `per_video.json`: every window's HRs per method; `*.png`: plots (`ienet_jax.plots`).

Without `--config`, the config of the run in `--workdir` (`config.json`) is used. The clips
come from `--data_dir` if given, else from `--config.data.dir` if given, else from the
run's own `data.dir` (its `config.json`), with or without `--config`. `--checkpoint`
defaults to the workdir (its latest checkpoint); a converted reference directory works too.
User errors end as one `error: …` line with exit status 2 (`ienet_jax.cli`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags, logging
from tqdm import tqdm

from ienet_jax.eval import inference, series, stitch, table

NUM_EXAMPLES = 4  # videos shown in the signal and spectrum plots


def _clip_means(rgb: np.ndarray, box_scale: float) -> np.ndarray:
    """Mean colour `[T, 3]` of the face box inside crops `[T, S, S, 3]` cut at `box_scale` ×
    the box (the crop margin is left out)."""
    s = rgb.shape[1]
    m = int(round(s * (1 - 1 / box_scale) / 2))
    inner = rgb[:, m:s - m, m:s - m] if s - 2 * m >= 2 else rgb
    return inner.reshape(len(inner), -1, 3).mean(1, dtype=np.float64)


def _subclips(example: dict, length: int) -> list[dict]:
    """A stored clip split into model-length sub-clips when its length is a multiple of
    the model's (each scored on its own label); else the clip as it is (`run_clips` runs
    the model on it in windows, `ienet_jax.eval.series`)."""
    t = len(example["rgb"])
    if t == length or t % length:
        return [example]
    out = []
    for i in range(0, t, length):
        sub = dict(example)
        for k in ("rgb", "nir", "bvp"):
            if k in example:
                sub[k] = example[k][i:i + length]
        sub["start_frame"] = int(example["start_frame"]) + i
        out.append(sub)
    return out


def constant_hr(workdir: str | Path, run_data_dir: str | Path | None = None,
                data_dir: str | Path | None = None) -> tuple[float, str]:
    """(the constant predictor's one answer, where it came from): the mean clip HR (bpm) of
    the run's training split.

    From `WORKDIR/train_stats.json` (written by the trainer), so any converted corpus can be
    scored; for runs without it, the `train` split of the run's `data.dir`
    (`run_data_dir`), else of the evaluated `data_dir`; else a ValueError.
    """
    from ienet_jax.train import workdir as workdir_lib

    stats = workdir_lib.read_train_stats(workdir)
    if stats is not None:
        return float(stats["hr_mean"]), str(Path(workdir) / workdir_lib.TRAIN_STATS)
    from ienet_jax.data import split_files

    for candidate in (run_data_dir, data_dir):
        if not candidate:
            continue
        try:
            split_files(candidate, "train")
        except ValueError:
            continue
        mean, _ = workdir_lib.train_hr_mean(candidate, "train")
        return mean, f"{candidate} split 'train'"
    raise ValueError(
        f"no training mean HR for the constant predictor: {Path(workdir) / 'train_stats.json'} "
        f"not found (runs trained before it existed) and no 'train' split in "
        f"{run_data_dir or '(no data.dir)'} or --data_dir={data_dir}; pass a --data_dir "
        "holding the training split, or retrain to write train_stats.json")


def run_clips(model: inference.ClipModel | None, data_dir: str | Path, split: str) -> list[dict]:
    """Per-clip model outputs and labels of `split`: `{key, start, fps, hr, bvp, means,
    rppg?, fee?}`; the model runs in fixed batches while clips stream from disk.

    Stored clips shorter than the model's input (e.g. 128-frame clips at 24 fps for a
    network reading 160 frames at 30 fps) cannot be run one by one: the model then runs on
    whole videos (each video's clips joined in frame order, `_run_videos`) and each clip
    gets its span of the video's pulse."""
    from ienet_jax.data import crop_box_scale, read_clips

    box_scale = crop_box_scale(data_dir)
    records, pending = [], []
    videos: dict[tuple, list[tuple[int, dict]]] = {}  # whole-video mode: clips per video
    whole = None  # decided on the first clip

    def flush():
        if not pending:
            return
        outs = series.run_series(model, [p["series"] for p in pending])
        for p, out in zip(pending, outs, strict=True):
            records[p["index"]]["rppg"] = out.pulse
            if out.fee is not None:
                records[p["index"]]["fee"] = float(np.mean(out.fee))
        pending.clear()

    length = model.clip_length if model is not None else None
    for ex in tqdm(read_clips(data_dir, split), desc=f"evaluate {split}", unit="clip"):
        where = f"{data_dir} split {split!r} video {ex['video']}"
        if model is not None and whole is None:
            seen = series.model_frames(len(ex["rgb"]), float(ex["fps"]), model)
            whole = seen < length
            if whole:
                logging.info("%s split %r: stored clips of %d frames (%d at the model's rate) "
                             "are shorter than the model's input of %d frames: the model runs "
                             "on whole videos", data_dir, split, len(ex["rgb"]), seen, length)
        for sub in (_subclips(ex, length) if length and not whole else [ex]):
            records.append(dict(key=(str(sub["subject"]), str(sub["video"])),
                                start=int(sub["start_frame"]), fps=float(sub["fps"]),
                                hr=float(sub["hr"]), bvp=np.asarray(sub["bvp"], np.float64),
                                means=_clip_means(sub["rgb"], box_scale)))
            if model is None:
                continue
            if whole:
                videos.setdefault(records[-1]["key"], []).append((len(records) - 1, sub))
                continue
            times = np.arange(len(sub["rgb"])) / float(sub["fps"])
            pending.append(dict(index=len(records) - 1, series=series.Series(
                sub["rgb"], times, sub.get("nir") if model.needs_nir else None, where,
                box_scale)))
            if len(pending) == model.batch_size:
                flush()
    flush()
    for clips in videos.values():
        _run_videos(model, clips, records, box_scale,
                    f"{data_dir} split {split!r} video {clips[0][1]['video']}")
    if not records:
        raise ValueError(f"{data_dir}: split {split!r} has no clips to evaluate")
    return records


def _run_videos(model, clips: list[tuple[int, dict]], records: list[dict], box_scale: float,
                where: str) -> None:
    """The model on one video's clips joined in frame order (overlaps read once; a gap
    starts another series); each clip's record gets its frames' pulse and the FEE head's
    mean over the windows centred inside it."""
    clips = sorted(clips, key=lambda c: int(c[1]["start_frame"]))
    segments: list[list[tuple[int, dict]]] = []
    end = None
    for index, ex in clips:
        start = int(ex["start_frame"])
        if end is None or start > end:
            segments.append([])
        segments[-1].append((index, ex))
        end = max(end or 0, start + len(ex["rgb"]))
    for seg in segments:
        first = int(seg[0][1]["start_frame"])
        n = max(int(ex["start_frame"]) + len(ex["rgb"]) for _, ex in seg) - first
        fps = float(seg[0][1]["fps"])
        rgb = np.zeros((n, *seg[0][1]["rgb"].shape[1:]), np.uint8)
        nir = np.zeros((n, *seg[0][1]["nir"].shape[1:]), np.uint8) if model.needs_nir else None
        for _, ex in seg:
            at = int(ex["start_frame"]) - first
            rgb[at:at + len(ex["rgb"])] = ex["rgb"]
            if nir is not None:
                nir[at:at + len(ex["rgb"])] = ex["nir"]
        out = series.run_series(model, [series.Series(
            rgb, np.arange(n) / fps, nir, f"{where} frames {first}-{first + n - 1}",
            box_scale)])[0]
        for index, ex in seg:
            at = int(ex["start_frame"]) - first
            records[index]["rppg"] = out.pulse[at:at + len(ex["rgb"])]
            if out.fee is not None:
                t0, t1 = at / fps, (at + len(ex["rgb"])) / fps
                inside = (out.window_times >= t0) & (out.window_times < t1)
                if not inside.any():  # the window centred nearest to the clip's centre
                    inside = np.argmin(np.abs(out.window_times - (t0 + t1) / 2))
                records[index]["fee"] = float(np.mean(out.fee[inside]))


def video_series(records: list[dict], series_hr=None) -> list[table.VideoSeries]:
    """Clip records (`run_clips`) stitched into one `table.VideoSeries` per video
    (`series_hr`: the model's HR head on a series, `ClipModel.series_hr`)."""
    values = {"bvp": [r["bvp"] for r in records], "means": [r["means"] for r in records]}
    if "rppg" in records[0]:
        values["rppg"] = [r["rppg"] for r in records]
    videos = []
    for s in stitch.group_videos([r["key"] for r in records], [r["start"] for r in records],
                                 values):
        if s.gaps:
            logging.warning("video %s: %d frames between its clips are not covered; the "
                            "series joins the covered frames", s.key, s.gaps)
        clips = [records[i] for i in s.clips]
        fee = [c["fee"] for c in clips] if "fee" in clips[0] else None
        videos.append(table.VideoSeries(
            key=s.key, fps=float(np.mean([c["fps"] for c in clips])),
            rppg=s.values.get("rppg"), bvp=s.values["bvp"], means=s.values["means"],
            clip_starts=np.searchsorted(s.frames, [c["start"] for c in clips]),
            clip_length=len(clips[0]["bvp"]), clip_hr=np.array([c["hr"] for c in clips]),
            clip_fee=None if fee is None else np.array(fee), series_hr=series_hr))
    return videos


def evaluate(config: ml_collections.ConfigDict | None, workdir: str | Path | None, *,
             split: str = "test",
             checkpoint: str | Path | None = None, window: float | None = None,
             hr_method: str = "fft", data_dir: str | Path | None = None,
             output: str | Path | None = None, batch_size: int = 8,
             plots: bool = True) -> dict:
    """Evaluate (see the module docstring); returns the `metrics.json` dict.

    Without a `workdir` (a converted checkpoint, e.g. open-rppg's), the model config is the
    checkpoint's own, and the constant predictor is scored only if `data_dir` has a
    `train` split (else its row is left out and `constant_hr_from` says why)."""
    run_data_dir = str(config.data.dir or "") if config is not None else ""
    data_dir = str(data_dir or run_data_dir)
    if not data_dir:
        raise ValueError("config key data.dir is empty: evaluation needs converted clips "
                         "(python -m data_prep convert), or pass --data_dir")
    if workdir is None and checkpoint is None:
        raise ValueError("evaluate needs --workdir (a trained run) or --checkpoint")
    checkpoint = Path(checkpoint or workdir).absolute()
    out_dir = Path(output or Path(workdir or checkpoint) / "eval").absolute()
    model = inference.load(checkpoint, config, batch_size=batch_size)
    try:
        const, const_source = constant_hr(Path(workdir or checkpoint).absolute(), run_data_dir,
                                          data_dir)
    except ValueError as e:
        if workdir is not None:
            raise
        const, const_source = None, f"not scored: {e}"
        logging.warning("constant predictor %s", const_source)
    videos = video_series(run_clips(model, data_dir, split),
                          model.series_hr if model.has_fee else None)

    rows: dict[str, list[dict]] = {}
    for v in videos:
        for name, r in table.video_rows(v, model.name, window=window, method=hr_method,
                                        constant_hr=const).items():
            rows.setdefault(name, []).extend(r)
    order = [model.name, f"{model.name}_fee", f"{model.name}_fee_clips", "pos", "chrom",
             "constant"]
    result: dict = {name: table.summarize_rows(rows[name]) for name in order if name in rows}
    result["evaluation"] = {
        "mode": table.MODE,
        "hr_method": hr_method,
        "window_seconds": window,
        "unit": "whole video" if window is None else f"windows of {window} s",
        "fps": float(np.mean([v.fps for v in videos])),
        "fft_resolution_bpm": table.fft_resolution(videos, window),
        "label_hr": "the stitched label BVP through the same pipeline"
                    + ("; FEE per-clip row: mean clip label HR" if model.has_fee else ""),
        "constant_hr": const,
        "constant_hr_from": const_source,
        "model": model.name,
        "split": split,
        "data_dir": data_dir,
        "checkpoint": str(checkpoint),
        "num_videos": len(videos),
        "num_clips": int(sum(len(v.clip_starts) for v in videos)),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "per_video.json").write_text(json.dumps(rows, indent=2) + "\n")
    if plots:
        from ienet_jax import plots as plots_lib

        plots_lib.evaluation_plots(out_dir, videos[:NUM_EXAMPLES], rows, model.name,
                                   model.derivative)
    logging.info("evaluation written to %s", out_dir)
    return result


def _define_flags() -> dict:
    """The command's flags, defined on first use (other commands define `workdir` too)."""
    from ml_collections import config_flags

    return dict(
        config=config_flags.DEFINE_config_file(
            "config", None, "Config file (default: WORKDIR/config.json).", lock_config=False),
        workdir=flags.DEFINE_string("workdir", None, "Run directory (checkpoints, config); "
                                   "omit it with --checkpoint + --data_dir (a converted model)."),
        split=flags.DEFINE_string("split", "test", "Split: train | validation | test."),
        checkpoint=flags.DEFINE_string("checkpoint", None, "Checkpoint (default: the "
                                       "workdir's latest), or a converted reference dir."),
        window=flags.DEFINE_float("window", None, "Evaluation window (s); default whole video."),
        hr_method=flags.DEFINE_enum("hr_method", "fft", ["fft", "peak"], "HR from signals."),
        data_dir=flags.DEFINE_string("data_dir", None, "Converted clips (default data.dir)."),
        output=flags.DEFINE_string("output", None, "Output folder (default WORKDIR/eval)."),
        batch_size=flags.DEFINE_integer("batch_size", 8, "Clips per inference batch."),
    )


def _workdir_config(workdir: Path) -> ml_collections.ConfigDict:
    path = workdir / "config.json"
    if not path.is_file():
        what = "has no config.json" if workdir.is_dir() else "does not exist"
        raise ValueError(f"--workdir {workdir} {what}: pass the run's folder (written by "
                         "python -m ienet_jax.main), or --config with --checkpoint")
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
    if "model" in config:  # keys the model family added since the run was written
        from ienet_jax.models import contract

        contract.upgrade(config.model, str(path))
    return config


def _config(config: ml_collections.ConfigDict | None, workdir: Path,
            argv: list[str]) -> ml_collections.ConfigDict:
    """The config to evaluate with: `--config` (its file and overrides) or the run's own;
    the clips of `--config` are the run's (`data.dir` of its config.json) unless
    `--config.data.dir` is given: the config file itself names none."""
    if config is None:
        return _workdir_config(workdir)
    saved = workdir / "config.json"
    if saved.is_file() and not any(a.startswith("--config.data.dir") for a in argv):
        data_dir = json.loads(saved.read_text()).get("data", {}).get("dir")
        if data_dir:
            config.data.dir = data_dir
            logging.info("clips: %s (data.dir of %s)", data_dir, saved)
    return config


def print_result(result: dict, out_dir: Path) -> None:
    """The evaluation's header line, metrics table and output path, on stdout."""
    ev = result["evaluation"]
    res = ev["fft_resolution_bpm"]
    const = (f"constant predictor = {ev['constant_hr']:.1f} bpm"
             if ev["constant_hr"] is not None else f"constant predictor {ev['constant_hr_from']}")
    print(f"{ev['split']} split: {ev['num_videos']} videos, {ev['unit']}, HR {ev['hr_method']}"
          f" at {ev['fps']:.1f} fps (FFT bins {res['min']:.2f}-{res['max']:.2f} bpm apart); "
          f"{const}")
    print(table.format_table(result))
    print(f"metrics and plots: {out_dir}")


def main(argv, f: dict) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from ienet_jax import cli

    if f["workdir"].value is None:  # a converted checkpoint on its own
        if not f["checkpoint"].value or not f["data_dir"].value:
            raise ValueError("pass --workdir (a run of python -m ienet_jax.main), or "
                             "--checkpoint DIR with --data_dir CLIPS")
        workdir, config = None, f["config"].value
        out_dir = Path(f["output"].value or Path(f["checkpoint"].value) / "eval").absolute()
    else:
        workdir = Path(f["workdir"].value).absolute()
        out_dir = Path(f["output"].value or workdir / "eval").absolute()
        config = _config(f["config"].value, workdir, sys.argv)
    cli.check_output_dir(out_dir, "--output" if f["output"].value else "--workdir")
    result = evaluate(config, workdir, split=f["split"].value,
                      checkpoint=f["checkpoint"].value, window=f["window"].value,
                      hr_method=f["hr_method"].value, data_dir=f["data_dir"].value,
                      output=out_dir, batch_size=f["batch_size"].value)
    print_result(result, out_dir)
    return 0


def run() -> None:
    """Entry point of `python -m ienet_jax.evaluate`."""
    f = _define_flags()
    from ienet_jax import cli

    # No checkpoint in the run: the loader names `train.init_from`; the user typed a flag.
    given = any(a.split("=")[0] == "--checkpoint" for a in sys.argv[1:])
    checkpoint_flag = "--checkpoint" if given else "--workdir"
    cli.run(lambda argv: main(argv, f), keys={"train.init_from": checkpoint_flag})


if __name__ == "__main__":
    run()
