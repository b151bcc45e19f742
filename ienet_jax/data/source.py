"""Random access to the records of one split of a converted dataset, and the corrupt-record policy.

A converted dataset is a TFDS-style folder holding shards
`{name}-{split}.tfrecord-{i:05d}-of-{n:05d}` (see `data_prep.writer`). `split_files` finds
and checks the shards of a split; `ClipSource` turns them into one random-access sequence
(shard order, then record order) of `(where, payload)` pairs, `where` = `"file:record"` naming
the record for error messages.

Record index: each shard's headers are scanned once (seeking over the payloads, so a file is
never read into memory) into an `[N, 2]` int64 offset table, cached per process keyed by
(path, size, mtime); the source pickles with its tables, so grain workers never rescan.

Corrupt records (`skip_corrupt`):
- False (default): a bad CRC raises `tfrecord.TFRecordError` naming file, record and byte
  offset, at index time (header, truncated tail) or at read time (payload).
- True: a record whose payload CRC fails reads as `None` (logged with `absl.logging`; the
  pipeline drops it and counts it); a shard whose header is corrupt or whose tail is
  truncated is indexed up to the last intact record, the rest counted as ONE skipped record
  (how many records the lost bytes held cannot be known) in `ClipSource.index_skipped`.

Pure Python/numpy: no JAX, no TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from absl import logging

from ienet_jax.data import tfrecord
from ienet_jax.data.features import ClipSpec

_SHARD = re.compile(r"^(?P<name>.+)-(?P<split>[^-]+)\.tfrecord-(?P<i>\d{5})-of-(?P<n>\d{5})$")
_INDEX_CACHE: dict[tuple[str, int, int, bool], tuple[tfrecord.RecordIndex, int]] = {}
_INDEX_LOCK = threading.Lock()


def split_files(directory: str | os.PathLike, split: str) -> list[Path]:
    """The shard paths of `split` in `directory`, in shard order.

    Raises a `ValueError` naming the directory and split when no shard exists, when shards of
    several dataset names are mixed, or when some of the `n` shards are missing.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"data.dir={str(directory)!r} is not a directory")
    found: dict[str, dict[int, Path]] = {}
    counts: set[int] = set()
    for path in directory.iterdir():
        m = _SHARD.match(path.name)
        if m and m["split"] == split:
            found.setdefault(m["name"], {})[int(m["i"])] = path
            counts.add(int(m["n"]))
    if not found:
        splits = sorted({m["split"] for p in directory.iterdir() if (m := _SHARD.match(p.name))})
        raise ValueError(
            f"{directory}: no shards for split {split!r} "
            f"(expected {{name}}-{split}.tfrecord-NNNNN-of-NNNNN; splits present: {splits})"
        )
    if len(found) > 1 or len(counts) > 1:
        raise ValueError(
            f"{directory}: split {split!r} mixes shard sets {sorted(found)} "
            f"with shard counts {sorted(counts)}; expected one `name` and one `n`"
        )
    ((name, shards),) = found.items()
    (n,) = counts
    missing = sorted(set(range(n)) - set(shards))
    if missing:
        raise ValueError(
            f"{directory}: split {split!r} of {name!r} lacks shards {missing} of {n}"
        )
    return [shards[i] for i in range(n)]


def record_index(path: str | os.PathLike, skip_corrupt: bool = False
                 ) -> tuple[tfrecord.RecordIndex, int]:
    """(index of the intact records of `path`, number of skipped tail records: 0 or 1), cached."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, skip_corrupt)
    with _INDEX_LOCK:
        if key in _INDEX_CACHE:
            return _INDEX_CACHE[key]
    index, error = tfrecord.RecordIndex.build_intact(path)
    if error is not None and not skip_corrupt:
        raise error
    if error is not None:
        logging.warning("skip_corrupt: %s; indexing the %d records before it", error, len(index))
    result = index, int(error is not None)
    with _INDEX_LOCK:
        _INDEX_CACHE[key] = result
    return result


class ClipSource:
    """The records of one split as a grain random-access source.

    `len(source)` records; `source[i]` → `(where, payload bytes)`, or `None` for a corrupt
    record when `skip_corrupt` (see the module docstring). Picklable and thread safe.
    Attributes: `spec` (`ClipSpec` from `features.json`), `files`, `index_skipped`.
    """

    def __init__(self, directory: str | os.PathLike, split: str, skip_corrupt: bool = False):
        self.directory = str(directory)
        self.split = split
        self.skip_corrupt = skip_corrupt
        self.spec = ClipSpec.from_directory(directory)
        paths = split_files(directory, split)
        files, self.index_skipped = [], 0
        for path in paths:
            index, skipped = record_index(path, skip_corrupt)
            files.append(tfrecord.TFRecordFile(path, index=index))
            self.index_skipped += skipped
        self.files = files
        self._starts = np.cumsum([0] + [len(f) for f in files])
        logging.info("%s split %r: %d records in %d shards", self.directory, split,
                     len(self), len(files))

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """(shard number, record number in that shard) of global record `i`."""
        if not 0 <= i < len(self):
            raise IndexError(f"record {i} out of range ({len(self)} records in {self!r})")
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return k, i - int(self._starts[k])

    def __getitem__(self, i: int) -> tuple[str, bytes] | None:
        k, j = self.locate(int(i))
        try:
            data = self.files[k][j]
        except tfrecord.TFRecordError as e:
            if not self.skip_corrupt:
                raise
            logging.warning("skip_corrupt: skipping %s", e)
            return None
        return f"{self.files[k].path}:record {j}", data

    def __repr__(self) -> str:
        return f"ClipSource({self.directory!r}, {self.split!r})"


def read_clips(directory: str | os.PathLike, split: str) -> Iterator[dict[str, np.ndarray]]:
    """Decoded examples of `split` in stored order, no augmentation (see `features.py` names).

    Frames are uint8 `[T, H, W, C]`, `bvp` float32 `[T]`, `hr`/`fps` float32 (bpm, Hz),
    `start_frame` int64, `subject`/`video` str. Corrupt records raise `TFRecordError`.
    """
    from ienet_jax.data.decode import decode_record

    source = ClipSource(directory, split)
    for i in range(len(source)):
        where, data = source[i]
        yield decode_record(source.spec, data, where)


DEFAULT_BOX_SCALE = 1.5  # the converter's default: crop side / detected face box side


def crop_box_scale(directory: str | os.PathLike) -> float:
    """Crop side / face box side the clips of `directory` were cut with (`--box-scale` of
    `data_prep convert`, read from its `metadata.json`); 1.5, the converter's default, for a
    folder without that record (logged)."""
    path = Path(directory) / "metadata.json"
    try:
        scale = json.loads(path.read_text())["options"]["process"]["box_scale"]
    except FileNotFoundError:
        logging.warning("%s not found: assuming face crops of %.2f x the face box", path,
                        DEFAULT_BOX_SCALE)
        return DEFAULT_BOX_SCALE
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: no options.process.box_scale ({err!r})") from err
    scale = float(scale)
    if scale < 1.0:
        raise ValueError(f"{path}: options.process.box_scale={scale} (expected >= 1)")
    return scale
