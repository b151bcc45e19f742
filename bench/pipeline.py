"""Input pipeline throughput: clips/s of decode + augment + normalise + batch vs. worker count.

Writes a synthetic converted dataset of `--clips` RGB+NIR clips (128 × 64 × 64, zlib frames;
the IENet reference size; `bench.clips`, the tests' writer too) unless `--dir` names one,
then times the training pipeline (shuffle, flip, brightness/contrast/gamma, temporal crop +
speed change, reference normalisation, batching) with 0, 1 and 2 grain worker processes, and
prints it beside the model's consumption rate: the PyTorch reference trains at ≈ 1 clip per
3.8 s (batch 1, 2 cores; /work/shared/reference/performance.md), and the JAX model's figure
is read from the model benchmark's JSON when given (`--model_json`, from `python -m
bench.model --json PATH`).

    .venv/bin/python -m bench.pipeline [--clips 48] [--batches 12] [--workers 0,1,2]
        [--normalize none|reference|standardize] [--model_json model.json] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

REFERENCE_S_PER_CLIP = 3.8  # PyTorch reference IENet train step, batch 1, 2 cores


def write_dataset(directory: Path, clips: int, frames: int, size: int) -> None:
    """`clips` RGB+NIR training clips of `frames` × `size`² (`bench.clips`) as 4 shards."""
    from bench import clips as synthetic
    from ienet_jax.data import features

    spec = features.ClipSpec(frames, size, size, nir=True)
    synthetic.write_dataset(directory, spec, {"train": clips}, num_shards=4)


def measure(directory: Path, workers: int, batch_size: int, batches: int,
            normalize: str) -> dict:
    from ienet_jax.data import Pipeline, default_data_config

    config = default_data_config()
    config.dir = str(directory)
    config.batch_size = batch_size
    config.workers = workers
    config.normalize = normalize
    config.augment.update(dict(flip=True, brightness=0.1, contrast=0.1, gamma=0.1,
                               temporal_crop=True, speed_range=(0.8, 1.0)))
    pipeline = Pipeline(config, process_index=0, process_count=1)
    start = time.perf_counter()
    it = iter(pipeline)
    try:
        next(it)  # start-up: worker spawn, first batch
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(batches):
            batch = next(it)
        elapsed = time.perf_counter() - start
    finally:
        it.close()
    clips = batches * batch_size
    return {"workers": workers, "batch_size": batch_size, "normalize": normalize,
            "clips_per_s": clips / elapsed, "s_per_batch": elapsed / batches,
            "first_batch_s": first, "rgb_shape": list(batch["rgb"].shape)}


def model_rates(path: str | None) -> list[tuple[str, float]]:
    """(label, clips/s) of the train steps in `python -m bench.model --json` output."""
    if not path or not os.path.exists(path):
        return []
    content = json.loads(Path(path).read_text())
    variant = content.get("args", {}).get("variant", "?")
    return [(f"JAX IENet {variant} train step (batch {r['batch']})", r["batch"] / r["median_s"])
            for r in content.get("results", []) if r.get("what") == "train step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", help="existing converted dataset (default: synthesize one)")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--normalize", default="reference")
    parser.add_argument("--model_json", help="JSON of `python -m bench.model --json`")
    parser.add_argument("--json", help="write the results here")
    from ienet_jax import cli

    args = cli.parse_args(parser)  # --batch-size and --batch_size alike

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.dir) if args.dir else Path(tmp)
        if not args.dir:
            start = time.perf_counter()
            write_dataset(directory, args.clips, args.frames, args.size)
            size = sum(p.stat().st_size for p in directory.glob("*.tfrecord-*")) / 2**20
            print(f"wrote {args.clips} clips of {args.frames}×{args.size}×{args.size} RGB+NIR "
                  f"({size:.1f} MiB) in {time.perf_counter() - start:.1f} s")
        rows = [measure(directory, int(w), args.batch_size, args.batches, args.normalize)
                for w in args.workers.split(",")]

    print(f"\n{'pipeline (decode+augment+normalise+batch)':<46} {'clips/s':>9} "
          f"{'s/batch':>8} {'start-up s':>10}")
    for r in rows:
        label = f"workers={r['workers']} batch={r['batch_size']} normalize={r['normalize']}"
        print(f"{label:<46} {r['clips_per_s']:9.1f} {r['s_per_batch']:8.3f} "
              f"{r['first_batch_s']:10.2f}")
    print(f"{'PyTorch reference train step (batch 1)':<46} {1 / REFERENCE_S_PER_CLIP:9.2f}")
    for label, rate in model_rates(args.model_json):
        print(f"{label:<46} {rate:9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"rows": rows, "reference_model_clips_per_s": 1 / REFERENCE_S_PER_CLIP}, indent=2))


if __name__ == "__main__":
    main()
