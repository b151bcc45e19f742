"""Real-data-trained networks (open-rppg) on the synthetic presets, next to POS and CHROM.

    python -m bench.real_models --from WHEEL_OR_DIR [--presets easy hard] [--subjects 6] \
        [--seconds 30] [--models physnet.pure tscan.pure ...] [--output runs/real_models]

Per preset: `data_prep synthesize` (UBFC-rPPG layout, seed 0) → `data_prep convert` (every
subject in the test split; 72 px crops, 160-frame clips, so that PhysNet's 128 and TS-CAN's
160 frames fit) → per model: `convert --open-rppg` (the weights from `--from`), then
- `evaluate` (whole video and 10 s windows): MAE against the label PPG through the same
  HR pipeline, next to POS and CHROM on the same face crops;
- `predict` on every raw video: its whole-video HR against the true pulse (the ground-truth
  PPG through the same filter and periodogram) and against the generator's mean HR, next to
  `predict --method pos|chrom`; the `true pulse` row is that PPG's HR against the
  generator's mean HR (the estimator's own floor on these videos).
Every finished step is kept under `--output` (a re-run resumes); the table is printed and
written to `OUTPUT/results.json` as rows are measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WINDOWS = {"whole video": None, "10 s windows": 10.0}


def _run(argv: list[str]) -> None:
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
    if out.returncode not in (0, 1):  # convert: 1 = some videos failed (reported)
        raise SystemExit(f"{' '.join(argv)} failed:\n{out.stderr[-3000:]}")


def corpus(out: Path, preset: str, subjects: int, seconds: float, *, layout: str = "ubfc_rppg",
           tag: str = "", synth_args: tuple[str, ...] = (),
           convert_args: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """`out/raw_<preset><tag>` synthesized (seed 0, `synth_args` appended, e.g. `--size`,
    `--set`) and `out/clips_<preset><tag>` converted (every subject in the test split;
    `convert_args` appended, e.g. `--box-scale`)."""
    raw, clips = out / f"raw_{preset}{tag}", out / f"clips_{preset}{tag}"
    _run(["-m", "data_prep", "synthesize", "--layout", layout, "--output", str(raw),
          "--subjects", str(subjects), "--seconds", str(seconds), "--preset", preset,
          "--seed", "0", "--workers", "2", *synth_args])
    if not (clips / "manifest.json").is_file():
        _run(["-m", "data_prep", "convert", "--dataset", layout, "--input", str(raw),
              "--output", str(clips), "--size", "72", "--clip-length", "160",
              "--split-fractions", "0,0,1", "--workers", "2", *convert_args])
    return raw, clips


def true_pulse_hr(gt: Path) -> tuple[float, float]:
    """(HR of the ground-truth PPG through predict's filter and periodogram, the
    generator's mean HR) of one UBFC-rPPG recording."""
    from data_prep.readers.ubfc_rppg import read_ground_truth
    from ienet_jax import signal
    from ienet_jax.video.clock import mean_rate

    ppg, hr, t = read_ground_truth(gt)
    fps = mean_rate(t)
    filtered = signal.filter_signal(ppg, fps)
    return float(signal.fft_hr(filtered, fps, *signal.per_video.BAND_HZ)), float(np.mean(hr))


def predict_rows(raw: Path, checkpoint: Path | None, method: str, out: Path) -> dict:
    """Whole-video MAE of `predict` over the recordings of `raw`: against the true pulse's
    HR (`predict`) and against the generator's mean HR (`predict vs generator HR`)."""
    from ienet_jax.predict import predict

    errors, generator = [], []
    for video in sorted(raw.glob("*/vid.avi")):
        target = out / video.parent.name
        done = target / "prediction.json"
        if done.is_file():
            result = json.loads(done.read_text())
        else:
            result = predict(video, method=method, checkpoint=checkpoint, output=target)
        pulse_hr, mean_hr = true_pulse_hr(video.parent / "ground_truth.txt")
        errors.append(abs(result["hr_bpm"] - pulse_hr))
        generator.append(abs(result["hr_bpm"] - mean_hr))
    return {"predict": float(np.mean(errors)),
            "predict vs generator HR": float(np.mean(generator))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.real_models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="from_", required=True,
                        help="open-rppg wheel or folder of .weights.h5 files")
    parser.add_argument("--presets", nargs="+", default=["easy", "hard"])
    parser.add_argument("--models", nargs="+",
                        default=["physnet.pure", "physnet.rlap", "tscan.pure", "tscan.rlap"])
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--output", type=Path, default=Path("runs/real_models"))
    args = parser.parse_args(argv)
    from ienet_jax.convert import open_rppg
    from ienet_jax.evaluate import evaluate

    out = args.output.absolute()
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}

    def record(key: str, value) -> None:
        results[key] = value
        results_path.write_text(json.dumps(results, indent=2) + "\n")

    for preset in args.presets:
        start = time.perf_counter()
        raw, clips = corpus(out, preset, args.subjects, args.seconds)
        truth = [true_pulse_hr(v.parent / "ground_truth.txt") for v in
                 sorted(raw.glob("*/vid.avi"))]
        record(f"{preset}/true pulse/predict vs generator HR",
               float(np.mean([abs(a - b) for a, b in truth])))
        for method in ("pos", "chrom"):
            if f"{preset}/{method}/predict vs generator HR" not in results:
                for column, mae in predict_rows(raw, None, method,
                                                out / "predict" / preset / method).items():
                    record(f"{preset}/{method}/{column}", mae)
        for name in args.models:
            checkpoint = out / "models" / name
            if not (checkpoint / "source.json").is_file():
                open_rppg.import_weights(name, args.from_, checkpoint)
            for label, window in WINDOWS.items():
                key = f"{preset}/{name}/evaluate {label}"
                if key in results:
                    continue
                m = evaluate(None, None, split="test", checkpoint=checkpoint, window=window,
                             data_dir=clips, output=out / "eval" / preset / name / label,
                             plots=False)
                family = m["evaluation"]["model"]
                record(key, m[family]["mae"])
                for method in ("pos", "chrom"):
                    record(f"{preset}/{method}/evaluate {label}", m[method]["mae"])
            if f"{preset}/{name}/predict vs generator HR" not in results:
                for column, mae in predict_rows(raw, checkpoint, "model",
                                                out / "predict" / preset / name).items():
                    record(f"{preset}/{name}/{column}", mae)
        print(f"{preset}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(table(results, args.presets))
    return 0


def table(results: dict, presets: list[str]) -> str:
    """Markdown table: rows = methods, columns = (preset, measurement), MAE in bpm."""
    columns = [f"evaluate {label}" for label in WINDOWS] + ["predict",
                                                             "predict vs generator HR"]
    methods = list(dict.fromkeys(k.split("/")[1] for k in results))
    head = "| method | " + " | ".join(f"{p} {c}" for p in presets for c in columns) + " |"
    lines = [head, "|" + "---|" * (1 + len(presets) * len(columns))]
    for m in methods:
        cells = [results.get(f"{p}/{m}/{c}") for p in presets for c in columns]
        lines.append(f"| {m} | " + " | ".join("-" if v is None else f"{v:.2f}"
                                              for v in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
