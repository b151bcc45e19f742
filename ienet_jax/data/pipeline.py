"""The grain input pipeline over a split of converted clips, built from the `data` config section.

    index → shuffle (seeded, reshuffled every epoch) → shard by JAX process → repeat
      → load + decode → augment (train) / crop (eval) → normalise → to_iter_dataset
      → drop corrupt (counted) → batch → mp_prefetch (worker processes) → account

Everything up to `to_iter_dataset` is a grain `MapDataset`: element `k` of an epoch is a pure
function of (seed, epoch, k), so the iterator state is a few integers, and restoring it
(`get_state`/`set_state`, or orbax via `grain.checkpoint.CheckpointSave/CheckpointRestore`,
as `train/checkpoint.py` does) continues with the very next batch. A state restores into a
pipeline with the same config, process count and `data.workers` (grain keeps one position
per worker process).

Sharding (process `i` of `n`, default `jax.process_index()/process_count()`):
- training: the epochs' permutations, one after the other, form ONE global stream cut into
  global batches of `data.batch_size` clips; process `i` loads only rows `i·b … (i+1)·b − 1`
  of each (`b = batch_size / n`, `process_rows`). Augmentation is seeded by the position in
  the global stream, so with `data.workers = 0` the global batches (clips, order and
  augmentation) are the same for any process count; every host runs the same number of
  steps. A trailing partial global batch (finite `num_epochs`) is dropped.
- evaluation: nothing is dropped. Process `i` takes clips `i, i+n, …` in stored order and
  pads its share (with zero clips, `video=""`) to the same whole number of batches on every
  process (and worker); `batch["mask"]` is False on padding. A padding row is still a valid
  clip: its `fps` and `hr` are those of the split's first record (so a model's spectrum of
  it is taken at a real sample rate), its frames and `bvp` zeros. One epoch, no augmentation.

`data.batch_size` is the GLOBAL batch (like `train.batch_size`); each process yields
`batch_size / n` clips per batch (`Pipeline.batch_size`).

Batches: `{rgb, nir (per data.modalities), bvp [B, T], hr [B] bpm, fps [B] Hz, start_frame [B],
subject [B] str, video [B] str, mask [B] bool}`; frames `[B, T, H, W, C]`, dtype per
`data.normalize` (see `normalize.py`).

Corrupt records with `data.skip_corrupt` are dropped before batching in training and turned
into masked padding in evaluation; the count (including shard tails lost at index time) is
logged and kept in `iterator.stats["skipped"]` (part of the checkpointed state). In training
a record skipped after the last full batch of a finite run is only logged, and hosts may see
different batch counts per epoch: for multi-host training use `num_epochs=None` and stop on
the step count.
"""

from __future__ import annotations

import math
import os
import signal
from typing import Any

import grain
import ml_collections
import numpy as np
from absl import flags, logging

from ienet_jax.data.augment import Augment, Crop
from ienet_jax.data.decode import check_modalities, decode_record, select_modalities
from ienet_jax.data.normalize import Normalize, check_normalize
from ienet_jax.data.source import ClipSource


def default_data_config() -> ml_collections.ConfigDict:
    """The `data` config section (keys are a contract with configs and the trainer)."""
    return ml_collections.ConfigDict(dict(
        dir="",                     # converted dataset folder (features.json + shards)
        split="train",              # train | validation | test
        batch_size=8,               # GLOBAL clips per batch (divided among processes)
        seed=0,                     # shuffle + augmentation seed
        shuffle=True,               # training only
        num_epochs=None,            # None = repeat forever (training); evaluation: 1
        workers=0,                  # grain worker processes (0 = in the main process)
        prefetch=2,                 # batches buffered per worker
        read_threads=2,             # threads loading/decoding clips per process/worker
        normalize="reference",      # none | reference | standardize | tscan
        augment=ml_collections.ConfigDict(dict(
            flip=False,             # horizontal flip of RGB and NIR together, p = 0.5
            brightness=0.0,         # max |shift|, fraction of full scale
            contrast=0.0,           # max relative contrast change
            gamma=0.0,              # max relative gamma change
            temporal_crop=False,    # random start of a clip_length window
            speed_range=None,       # (lo, hi) playback speed; bvp resampled, hr × speed
        )),
        modalities=("rgb", "nir"),
        skip_corrupt=False,         # drop (and count) records with bad CRCs
        clip_length=None,           # frames per clip; None = as stored
    ))


def _mark_flags_parsed() -> None:
    """grain's worker processes read absl flags; outside `app.run` they are unparsed."""
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _ignore_ctrl_c(worker_index: int, worker_count: int) -> None:
    """grain worker start-up: Ctrl-C reaches the whole process group; the trainer (main
    process) handles it (checkpoint, exit) and stops its workers, which must not die first."""
    del worker_index, worker_count
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Load(grain.transforms.Map):
    """Index → decoded example with `mask` and `skipped` (see `Pipeline`).

    Index −1 is padding: a zero clip of the stored shapes, masked out. A corrupt record
    (with `skip_corrupt`) becomes `None` in training (dropped later) and masked padding
    with `skipped = 1` in evaluation, so evaluation batch counts never change.
    """

    def __init__(self, source: ClipSource, modalities: tuple[str, ...], training: bool,
                 padding_labels: dict[str, float] | None = None):
        self.source = source
        self.modalities = modalities
        self.training = training
        self.padding_labels = padding_labels or {}

    def __setstate__(self, state):
        # In a grain worker: build the tfds parser (importing tensorflow_datasets) here, in
        # the worker's main thread, not concurrently in its reader threads.
        self.__dict__.update(state)
        self.source.spec.tfds_features()

    def _padding(self, skipped: int) -> dict[str, Any]:
        example: dict[str, Any] = {
            name: np.zeros(shape, dtype)
            for name, (shape, dtype) in self.source.spec.shapes().items() if dtype is not str
        }
        example.update(subject="", video="", start_frame=np.int64(-1))
        example.update({k: np.float32(v) for k, v in self.padding_labels.items()})
        example = select_modalities(example, self.modalities)
        example.update(mask=np.bool_(False), skipped=np.int32(skipped))
        return example

    def map(self, index) -> dict[str, Any] | None:
        index = int(index)
        if index < 0:
            return self._padding(0)
        record = self.source[index]
        if record is None:  # corrupt, skip_corrupt=True
            return None if self.training else self._padding(1)
        example = select_modalities(decode_record(self.source.spec, record[1], record[0]),
                                    self.modalities)
        example.update(mask=np.bool_(True), skipped=np.int32(0))
        return example


class _DropCorruptIterator(grain.DatasetIterator):
    def __init__(self, parent):
        super().__init__(parent)
        self._pending = 0

    def __next__(self):
        element = next(self._parent)
        while element is None:
            self._pending += 1
            element = next(self._parent)
        element = dict(element)
        element["skipped"] = np.int32(element["skipped"] + self._pending)
        self._pending = 0
        return element

    def get_state(self):
        return {"parent": self._parent.get_state(), "pending": int(self._pending)}

    def set_state(self, state):
        self._parent.set_state(state["parent"])
        self._pending = int(state["pending"])


class _DropCorrupt(grain.IterDataset):
    """Drops `None` (corrupt) elements, adding their count to the next element's `skipped`."""

    def __iter__(self):
        return _DropCorruptIterator(self._parent.__iter__())


class PipelineIterator(grain.DatasetIterator):
    """The pipeline's iterator: batches of numpy arrays; `stats` = {batches, skipped}.

    A grain `DatasetIterator`: `get_state()`/`set_state()` (JSON-serialisable dicts) and
    grain's orbax handler work on it directly.
    """

    def __init__(self, parent, index_skipped: int):
        super().__init__(parent)
        self._index_skipped = index_skipped
        self._skipped = 0
        self._batches = 0

    @property
    def stats(self) -> dict[str, int]:
        """`batches` yielded so far, corrupt records `skipped` so far (incl. lost shard tails)."""
        return {"batches": self._batches, "skipped": self._index_skipped + self._skipped}

    def __next__(self) -> dict[str, np.ndarray]:
        batch = dict(next(self._parent))
        skipped = int(np.sum(batch.pop("skipped")))
        if skipped:
            self._skipped += skipped
            logging.warning("input pipeline: skipped %d corrupt records (%d in total)",
                            skipped, self.stats["skipped"])
        self._batches += 1
        return batch

    def get_state(self):
        return {"parent": self._parent.get_state(), "skipped": int(self._skipped),
                "batches": int(self._batches)}

    def set_state(self, state):
        self._parent.set_state(state["parent"])
        self._skipped = int(state["skipped"])
        self._batches = int(state["batches"])


class _Account(grain.IterDataset):
    def __init__(self, parent, index_skipped: int):
        super().__init__(parent)
        self._index_skipped = index_skipped

    def __iter__(self):
        return PipelineIterator(self._parent.__iter__(), self._index_skipped)


class _ProcessRows(grain.MapDataset):
    def __init__(self, parent: grain.MapDataset, global_batch: int, index: int, count: int):
        super().__init__(parent)
        self._global, self._local = global_batch, global_batch // count
        self._offset = index * self._local
        self._length = len(parent) // global_batch * self._local

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        batch, row = divmod(int(index), self._local)
        return self._parent[batch * self._global + self._offset + row]

    def __str__(self) -> str:
        return f"ProcessRows(global_batch={self._global}, rows={self._offset}+{self._local})"


def process_rows(ds: grain.MapDataset, global_batch: int, process_index: int,
                 process_count: int) -> grain.MapDataset:
    """Process `process_index`'s rows of each global batch of the stream `ds`.

    `ds` is cut into consecutive global batches of `global_batch` elements; element
    `k·b + j` of the result (`b = global_batch / process_count`) is row `process_index·b + j`
    of global batch `k` (a trailing partial global batch is dropped). Batched by `b` and
    stitched in process order (`make_global_batch`), the processes' batches are exactly the
    batches of `ds` read by one process, whatever the process count.
    """
    if global_batch <= 0 or global_batch % process_count:
        raise ValueError(f"global batch {global_batch} (data.batch_size / train.batch_size) "
                         f"must be a positive multiple of the process count {process_count}")
    if process_count == 1:
        return ds
    return _ProcessRows(ds, global_batch, process_index, process_count)


class Pipeline:
    """The input pipeline of one process for `config` (the `data` section).

    Args:
      config: the `data` ConfigDict (`default_data_config()` keys).
      training: shuffle/augment/drop-remainder/repeat (True) or evaluation (False: stored
        order, padded + masked last batch, one epoch). Default: `config.split == "train"`.
      process_index, process_count: this process's share (default: JAX's).

    `iter(pipeline)` → `PipelineIterator` over per-process batches. Attributes: `source`,
    `dataset` (the grain `IterDataset`), `batch_size` (per process), `num_clips` (this
    process's real clips per epoch), `batches_per_epoch` (per process).
    """

    def __init__(self, config: ml_collections.ConfigDict, *, training: bool | None = None,
                 process_index: int | None = None, process_count: int | None = None):
        if process_index is None or process_count is None:
            import jax

            process_index = jax.process_index() if process_index is None else process_index
            process_count = jax.process_count() if process_count is None else process_count
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index={process_index} outside [0, {process_count})")
        self.config = config
        self.training = config.split == "train" if training is None else bool(training)
        self.process_index, self.process_count = process_index, process_count
        if not config.dir:
            raise ValueError("data.dir is empty: set it to a converted dataset folder")
        if config.batch_size <= 0 or config.batch_size % process_count:
            raise ValueError(f"data.batch_size={config.batch_size} (global) must be a positive "
                             f"multiple of the process count {process_count}")
        self.batch_size = config.batch_size // process_count
        for key in ("workers", "prefetch", "read_threads"):
            if config[key] < 0 or (key != "workers" and config[key] == 0):
                raise ValueError(f"data.{key}={config[key]}: expected "
                                 f"{'>= 0' if key == 'workers' else '> 0'}")
        self.source = ClipSource(config.dir, config.split, skip_corrupt=config.skip_corrupt)
        self.modalities = check_modalities(self.source.spec, config.modalities,
                                           os.fspath(config.dir))
        check_normalize(config.normalize, self.modalities)
        if config.clip_length is not None and not (
                0 < config.clip_length <= self.source.spec.clip_length):
            raise ValueError(f"data.clip_length={config.clip_length}: expected 1 … "
                             f"{self.source.spec.clip_length} (stored clip length)")
        self.dataset = self._build()

    # ---------------------------------------------------------------- index stage
    def _train_indices(self) -> grain.MapDataset:
        """The GLOBAL index stream (every process's); `_build` takes this process's rows."""
        n, pc = len(self.source), self.process_count
        per = n // pc
        if per < self.batch_size * max(self.config.workers, 1):
            raise ValueError(
                f"data.split={self.config.split!r} has {n} clips: {per} per process, fewer than "
                f"one batch of {self.batch_size} per worker (data.batch_size, data.workers)")
        ds = grain.MapDataset.range(n).seed(self.config.seed)
        if self.config.shuffle:
            ds = ds.shuffle()
        self.num_clips = self._epoch_positions = per
        return ds.repeat(self.config.num_epochs)

    def _eval_indices(self) -> grain.MapDataset:
        n, pc, pi = len(self.source), self.process_count, self.process_index
        if n < pc:
            raise ValueError(f"data.split={self.config.split!r} has {n} clips for {pc} processes")
        mine = np.arange(pi, n, pc)
        chunk = self.batch_size * max(self.config.workers, 1)
        padded = math.ceil(math.ceil(n / pc) / chunk) * chunk
        pads = np.full(padded - len(mine), -1)
        self.num_clips, self._epoch_positions = len(mine), padded
        return grain.MapDataset.source(np.concatenate([mine, pads]))

    def _padding_labels(self) -> dict[str, float]:
        """`fps` and `hr` of the split's first readable record, for padding rows."""
        from ienet_jax.data.features import read_scalars

        for i in range(len(self.source)):
            record = self.source[i]  # a corrupt record raises unless skip_corrupt
            if record is not None:
                return read_scalars(record[1], ("fps", "hr"), record[0])
        return {}  # every record corrupt: nothing to evaluate anyway

    # ---------------------------------------------------------------- the pipeline
    def _build(self) -> grain.IterDataset:
        c = self.config
        ds = self._train_indices() if self.training else self._eval_indices()
        padding = None if self.training else self._padding_labels()
        ds = ds.map(_Load(self.source, self.modalities, self.training, padding))
        if self.training:
            ds = ds.random_map(Augment.from_config(c.augment, c.clip_length))
        elif c.clip_length is not None:
            ds = ds.map(Crop(c.clip_length))
        ds = ds.map(Normalize(c.normalize))
        if self.training:  # after augmentation: its seeds are global stream positions
            ds = process_rows(ds, c.batch_size, self.process_index, self.process_count)
        it = ds.to_iter_dataset(
            grain.ReadOptions(num_threads=c.read_threads,
                              prefetch_buffer_size=c.prefetch * self.batch_size),
            allow_nones=True,
        )
        it = _DropCorrupt(it).batch(self.batch_size, drop_remainder=self.training)
        if c.workers > 0:
            _mark_flags_parsed()
            it = it.mp_prefetch(grain.MultiprocessingOptions(
                num_workers=c.workers, per_worker_buffer_size=c.prefetch),
                worker_init_fn=_ignore_ctrl_c)
        # Exact for evaluation (padded to whole batches per worker); for training the
        # mean rate (each worker drops its own remainder only where a run ends).
        self.batches_per_epoch = self._epoch_positions // self.batch_size
        if self.process_index == 0:
            logging.info(
                "data %s/%s: %d clips, %d processes × %d clips per batch, %d batches per epoch "
                "per process, %s", c.dir, c.split, len(self.source), self.process_count,
                self.batch_size, self.batches_per_epoch,
                "training" if self.training else "evaluation")
        return _Account(it, self.source.index_skipped)

    def __iter__(self) -> PipelineIterator:
        if self.config.workers > 0:
            _mark_flags_parsed()
        return iter(self.dataset)
