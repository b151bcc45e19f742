"""Output files: atomic per-video record files, the resume journal, TFDS shards + metadata.

Layout of an output directory `OUT` for dataset name `NAME`:

    OUT/NAME-{split}.tfrecord-{i:05d}-of-{n:05d}   TFDS shards, one per converted video
    OUT/dataset_info.json, OUT/features.json       TFDS metadata (`tfds.builder_from_directory`)
    OUT/metadata.json                              options and subjects per split (TFDS
                                                   `info.metadata`)
    OUT/manifest.json                              options, splits, per-video results
    OUT/report.txt                                 human-readable summary
    OUT/.convert/options.json                      the options the directory was made with
    OUT/.convert/journal.jsonl                     one line per finished video (resume)
    OUT/.convert/videos/<key>.tfrecord             per-video records (shards hard-link them)

Every file is written to a temporary name and renamed, so an interrupted run leaves either
the old file or the new one. Shards are hard links to the per-video files (copies where the
file system has no hard links), so re-publishing after more videos finish costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ienet_jax.data import features as features_lib
from ienet_jax.data.tfrecord import TFRecordWriter

STAGING = ".convert"
SHARD_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"


def shard_name(name: str, split: str, index: int, count: int) -> str:
    """TFDS shard file name `{name}-{split}.tfrecord-{i:05d}-of-{n:05d}`."""
    return f"{name}-{split}.tfrecord-{index:05d}-of-{count:05d}"


def video_key(video: str) -> str:
    """A file-name-safe, unique key for a video id."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", video).strip("_")[:80]
    return f"{safe}-{hashlib.sha1(video.encode()).hexdigest()[:8]}"


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_records_atomic(path: Path, records: Iterable[bytes]) -> int:
    """Writes `records` as a TFRecord file at `path` via a temporary file; returns its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        with TFRecordWriter(tmp) as writer:
            for data in records:
                writer.write(data)
            writer.flush()
            size = writer.num_bytes
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return size


def write_json_atomic(path: Path, content: Any) -> None:
    tmp = _tmp(path)
    tmp.write_text(json.dumps(content, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = _tmp(path)
    tmp.write_text(text)
    os.replace(tmp, path)


class Journal:
    """Append-only JSON-lines record of finished videos; the last line per video wins."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = {}
        if path.exists():
            for i, line in enumerate(path.read_text().splitlines()):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    # A torn last line from an interrupted run: that video is redone.
                    if i == len(path.read_text().splitlines()) - 1:
                        continue
                    raise ValueError(f"{path}: line {i + 1} is not JSON") from None
                self.entries[item["video"]] = item

    def record(self, item: dict) -> None:
        """Appends `item` (needs a `video` key) and flushes it to disk."""
        with open(self.path, "a") as f:
            f.write(json.dumps(item, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.entries[item["video"]] = item


def _link(src: Path, dst: Path) -> None:
    """Makes `dst` a hard link to (else a copy of) `src`; a no-op if it already is one."""
    if dst.exists() and os.path.samefile(src, dst):
        return
    tmp = _tmp(dst)
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def publish(out: Path, name: str, spec: features_lib.ClipSpec,
            videos: Sequence[dict], description: str, metadata: dict) -> dict[str, list[dict]]:
    """Lays out TFDS shards for the finished `videos` and writes the TFDS metadata.

    `videos`: dicts with `video`, `split`, `file` (per-video record file), `clips`, `bytes`.
    Shards are ordered by split, then video id. Returns `{split: [shard info]}`.
    """
    import tensorflow_datasets as tfds

    by_split: dict[str, list[dict]] = {}
    for v in sorted(videos, key=lambda v: v["video"]):
        by_split.setdefault(v["split"], []).append(v)
    wanted: dict[str, list[dict]] = {}
    for split, items in by_split.items():
        wanted[split] = [
            {"file": shard_name(name, split, i, len(items)), "video": v["video"],
             "clips": v["clips"], "bytes": v["bytes"]}
            for i, v in enumerate(items)
        ]
        for v, shard in zip(items, wanted[split]):
            _link(Path(v["file"]), out / shard["file"])
    keep = {s["file"] for shards in wanted.values() for s in shards}
    for old in out.glob(f"{name}-*.tfrecord-*-of-*"):
        if old.name not in keep:
            old.unlink()
    split_infos = [
        tfds.core.SplitInfo(
            name=split,
            shard_lengths=[s["clips"] for s in shards],
            num_bytes=sum(s["bytes"] for s in shards),
            filename_template=tfds.core.ShardedFileTemplate(
                data_dir=out, template=SHARD_TEMPLATE, dataset_name=name, split=split,
                filetype_suffix="tfrecord"),
        )
        for split, shards in wanted.items()
    ]
    tfds.folder_dataset.write_metadata(
        data_dir=out,
        features=spec.tfds_features(),
        split_infos=split_infos,
        filename_template=tfds.core.ShardedFileTemplate(
            data_dir=out, template=SHARD_TEMPLATE, dataset_name=name,
            filetype_suffix="tfrecord"),
        check_data=False,
        description=description,
        metadata=tfds.core.MetadataDict(metadata),
    )
    return wanted
