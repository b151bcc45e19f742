"""Input pipeline throughput: clips/s of decode + augment + normalise + batch vs. worker count.

Writes a synthetic converted dataset of `--clips` RGB+NIR clips (128 × 64 × 64, zlib frames;
the IENet reference size) unless `--dir` names one, then times the training pipeline
(shuffle, flip, brightness/contrast/gamma, temporal crop + speed change, reference
normalisation, batching) with 0, 1 and 2 grain worker processes, and prints it beside the
model's consumption rate: the PyTorch reference trains at ≈ 1 clip per 3.8 s (batch 1, 2 cores;
/work/shared/reference/performance.md), and the JAX model's figure is read from the model
benchmark's JSON when given (`--model_json`, from `python -m bench.model --json PATH`).

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

import numpy as np

REFERENCE_S_PER_CLIP = 3.8  # PyTorch reference IENet train step, batch 1, 2 cores


def write_dataset(directory: Path, clips: int, frames: int, size: int) -> None:
    """`clips` smooth synthetic RGB+NIR clips (texture + pulse) as 4 train shards."""
    from ienet_jax.data import features, tfrecord

    spec = features.ClipSpec(frames, size, size, nir=True)
    spec.tfds_features().save_config(str(directory))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    t = np.arange(frames) / 30.0
    shards = 4
    per = int(np.ceil(clips / shards))
    for s in range(shards):
        path = directory / f"bench-train.tfrecord-{s:05d}-of-{shards:05d}"
        records = []
        for k in range(s * per, min(clips, (s + 1) * per)):
            hr = rng.uniform(50, 120)
            bvp = np.sin(2 * np.pi * hr / 60 * t).astype(np.float32)
            face = 120 + 60 * np.sin(3 * xx + k) * np.cos(2 * yy)
            noise = rng.normal(0, 2, (frames, size, size))
            video = face[None] + 8 * bvp[:, None, None] + noise
            video = np.clip(video, 0, 255).astype(np.uint8)[..., None]
            example = {
                "rgb": np.repeat(video, 3, axis=-1), "nir": video, "bvp": bvp,
                "hr": np.float32(hr), "fps": np.float32(30.0), "subject": f"s{k % 5}",
                "video": f"v{k}", "start_frame": np.int64(0),
            }
            records.append(features.serialize_example(spec, example))
        tfrecord.write_records(path, records)


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
