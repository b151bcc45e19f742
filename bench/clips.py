"""Synthetic converted datasets (TFDS-style shards + features.json): the one clip writer of
the input-pipeline benchmark (`bench.pipeline`, `python -m bench`) and the tests
(`tests/data_fixtures.py`).

Clip `k` of a split has `video = f"{split}/v{k}"` and `start_frame = k`, so tests can tell
clips apart; its frames carry the pulse `bvp = sin(2π·hr/60·t/fps)` as a brightness
modulation on top of fixed random texture (RGB and NIR alike).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ienet_jax.data import features, tfrecord

NAME = "synth"


def make_clip(spec: features.ClipSpec, k: int, split: str = "train", hr: float | None = None,
              fps: float = 30.0, amplitude: float = 40.0) -> dict:
    """One example of `spec`: texture + pulse-modulated brightness, labels aligned."""
    rng = np.random.default_rng(k)
    t = np.arange(spec.clip_length) / fps
    hr = float(60.0 + (k % 7) * 10.0) if hr is None else hr
    bvp = np.sin(2 * np.pi * hr / 60.0 * t).astype(np.float32)
    shape = (spec.clip_length, spec.height, spec.width)
    texture = rng.integers(60, 140, (1, spec.height, spec.width, 4)).astype(np.float64)
    frames = texture + amplitude * bvp[:, None, None, None]
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    ex = {
        "rgb": np.ascontiguousarray(frames[..., :3]).reshape(*shape, 3),
        "bvp": bvp,
        "hr": np.float32(hr),
        "fps": np.float32(fps),
        "subject": f"s{k % 3}",
        "video": f"{split}/v{k}",
        "start_frame": np.int64(k),
    }
    if spec.nir:
        ex["nir"] = np.ascontiguousarray(frames[..., 3:]).reshape(*shape, 1)
    return ex


def shard_paths(directory: Path, split: str, num_shards: int) -> list[Path]:
    return [directory / f"{NAME}-{split}.tfrecord-{i:05d}-of-{num_shards:05d}"
            for i in range(num_shards)]


def write_dataset(directory: str | Path, spec: features.ClipSpec,
                  splits: dict[str, int] | None = None, num_shards: int = 2) -> Path:
    """Writes `splits` (`{split: clips}`, default 10 train / 5 validation) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec.tfds_features().save_config(str(directory))
    for split, count in (splits or {"train": 10, "validation": 5}).items():
        paths = shard_paths(directory, split, num_shards)
        bounds = np.linspace(0, count, num_shards + 1).astype(int)
        for path, lo, hi in zip(paths, bounds[:-1], bounds[1:]):
            tfrecord.write_records(path, (
                features.serialize_example(spec, make_clip(spec, k, split))
                for k in range(lo, hi)))
    return directory
