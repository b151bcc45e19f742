"""The grain pipeline: process shards, seeded order, resumable state, eval padding, corruption."""

import os

import numpy as np
import pytest
from data_fixtures import shard_paths, write_dataset

from ienet_jax.data import (
    Pipeline,
    default_data_config,
    features,
    read_clips,
    tfrecord,
)

SPEC = features.ClipSpec(8, 16, 16, nir=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), SPEC,
                         {"train": 11, "validation": 5}, num_shards=3)


def _config(directory, **overrides):
    config = default_data_config()
    config.dir = str(directory)
    config.batch_size = 2
    config.num_epochs = 1
    config.augment.update(dict(flip=True, brightness=0.1, contrast=0.1, gamma=0.1,
                               temporal_crop=True, speed_range=(0.9, 1.1)))
    config.clip_length = 6
    for key, value in overrides.items():
        config[key] = value
    return config


def _batches(pipeline, limit=None):
    it = iter(pipeline)
    try:
        out = []
        for batch in it:
            out.append(batch)
            if limit is not None and len(out) == limit:
                break
        return out, it.stats
    finally:
        it.close()


def _videos(batches, masked=False):
    return [v for b in batches for v, m in zip(b["video"], b["mask"]) if m or not masked]


def _assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


def test_processes_see_disjoint_shares_covering_the_split(dataset):
    shares = []
    for i in range(2):
        p = Pipeline(_config(dataset, batch_size=4), process_index=i, process_count=2)
        assert p.batch_size == 2 and p.num_clips == 5  # 11 clips: one left over per epoch
        batches, _ = _batches(p)
        assert len(batches) == p.batches_per_epoch == 2  # 5 clips, batches of 2: 1 dropped
        assert all(b["rgb"].shape == (2, 6, 16, 16, 3) and b["mask"].all() for b in batches)
        shares.append(set(_videos(batches)))
    assert not shares[0] & shares[1]
    assert len(shares[0] | shares[1]) == 8
    # One clip per batch: the two shares together cover all but the left-over clip.
    full = [set(_videos(_batches(Pipeline(_config(dataset, batch_size=2), process_index=i,
                                          process_count=2))[0])) for i in range(2)]
    assert len(full[0]) == len(full[1]) == 5 and not full[0] & full[1]


def test_evaluation_keeps_every_clip_with_a_padding_mask(dataset):
    seen, counts = [], []
    for i in range(2):
        p = Pipeline(_config(dataset, split="validation", batch_size=4), process_index=i,
                     process_count=2)
        assert not p.training
        batches, _ = _batches(p)
        counts.append(len(batches))
        assert len(batches) == p.batches_per_epoch
        assert all(len(b["mask"]) == 2 for b in batches)
        seen += _videos(batches, masked=True)
        assert batches[0]["rgb"].shape == (2, 6, 16, 16, 3)  # crop to clip_length
    assert counts[0] == counts[1] == 2  # 3 clips on process 0, 2 (+1 padding) on process 1
    assert sorted(seen) == [f"validation/v{k}" for k in range(5)]
    # padding rows (process 1's last batch) are valid clips: the split's first fps and label
    pad = batches[-1]
    assert pad["mask"].tolist() == [False, False] and pad["video"].tolist() == ["", ""]
    first = next(read_clips(dataset, "validation"))
    assert first["fps"] == 30.0 and first["hr"] > 0
    assert (pad["fps"] == first["fps"]).all() and (pad["hr"] == first["hr"]).all()


def test_same_seed_same_order_new_seed_new_order_new_epoch_new_order(dataset):
    def order(seed, epochs=1):
        p = Pipeline(_config(dataset, seed=seed, num_epochs=epochs, batch_size=1),
                     process_index=0, process_count=1)
        return _videos(_batches(p)[0])

    a, b, c = order(0), order(0), order(1)
    assert a == b and a != c and sorted(a) == sorted(c)
    two = order(0, epochs=2)
    assert len(a) == 11 and two[:11] == a and sorted(two[11:]) == sorted(a) and two[11:] != a


def test_augmentation_is_deterministic_given_the_seed(dataset):
    a, _ = _batches(Pipeline(_config(dataset), process_index=0, process_count=1), 2)
    b, _ = _batches(Pipeline(_config(dataset), process_index=0, process_count=1), 2)
    _assert_batches_equal(a, b)


@pytest.mark.parametrize("workers", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_restored_state_continues_with_the_next_batch(dataset, workers):
    config = _config(dataset, num_epochs=None, workers=workers)
    p = Pipeline(config, process_index=0, process_count=1)
    it = iter(p)
    try:
        for _ in range(3):
            next(it)
        state = it.get_state()
        expected = [next(it) for _ in range(7)]  # crosses the epoch boundary
    finally:
        it.close()
    it = iter(Pipeline(config, process_index=0, process_count=1))
    try:
        it.set_state(state)
        assert it.stats["batches"] == 3
        _assert_batches_equal([next(it) for _ in range(7)], expected)
    finally:
        it.close()


def test_orbax_checkpoint_of_the_iterator(dataset, tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    import grain

    config = _config(dataset, num_epochs=None)
    it = iter(Pipeline(config, process_index=0, process_count=1))
    next(it)
    next(it)
    ckpt = ocp.Checkpointer(grain.checkpoint.CheckpointHandler())
    ckpt.save(tmp_path / "data", args=grain.checkpoint.CheckpointSave(it))
    expected = [next(it) for _ in range(2)]
    fresh = iter(Pipeline(config, process_index=0, process_count=1))
    ckpt.restore(tmp_path / "data", args=grain.checkpoint.CheckpointRestore(fresh))
    _assert_batches_equal([next(fresh) for _ in range(2)], expected)
    assert fresh.stats["batches"] == 4
    it.close()
    fresh.close()


def test_process_defaults_come_from_jax(dataset):
    p = Pipeline(_config(dataset, batch_size=4))
    assert (p.process_index, p.process_count, p.batch_size) == (0, 1, 4)


def test_normalisations(dataset):
    batches, _ = _batches(Pipeline(_config(dataset, normalize="none"), process_index=0,
                                   process_count=1), 1)
    assert batches[0]["rgb"].dtype == np.uint8
    batches, _ = _batches(Pipeline(_config(dataset, normalize="tscan", modalities=("rgb",)),
                                   process_index=0, process_count=1), 1)
    assert batches[0]["rgb"].shape == (2, 6, 16, 16, 6) and "nir" not in batches[0]
    assert batches[0]["bvp"].shape == (2, 6)


def test_config_errors_name_the_key(dataset, tmp_path):
    with pytest.raises(ValueError, match="data.batch_size=3"):
        Pipeline(_config(dataset, batch_size=3), process_index=0, process_count=2)
    with pytest.raises(ValueError, match="data.normalize='tscan' is RGB only"):
        Pipeline(_config(dataset, normalize="tscan"), process_index=0, process_count=1)
    with pytest.raises(ValueError, match="data.normalize='bogus'"):
        Pipeline(_config(dataset, normalize="bogus"), process_index=0, process_count=1)
    with pytest.raises(ValueError, match="data.clip_length=9"):
        Pipeline(_config(dataset, clip_length=9), process_index=0, process_count=1)
    rgb_only = write_dataset(tmp_path, features.ClipSpec(8, 16, 16, nir=False), {"train": 4})
    with pytest.raises(ValueError, match="asks for 'nir'.*RGB only"):
        Pipeline(_config(rgb_only), process_index=0, process_count=1)
    with pytest.raises(ValueError, match="data.dir is empty"):
        Pipeline(_config(""), process_index=0, process_count=1)


def _flip_byte(path, record):
    offset = int(tfrecord.RecordIndex.build(path).entries[record, 0]) + 5
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x55]))


def test_corrupt_records_raise_or_are_skipped_and_counted(tmp_path):
    write_dataset(tmp_path, SPEC, {"validation": 9}, num_shards=3)  # 3 records per shard
    paths = shard_paths(tmp_path, "validation", 3)
    _flip_byte(paths[0], 1)
    os.truncate(paths[2], os.path.getsize(paths[2]) - 3)  # loses record 2 of shard 2
    with pytest.raises(tfrecord.TFRecordError, match=rf"{paths[2].name}: record 2 .*truncated"):
        Pipeline(_config(tmp_path, split="validation"), process_index=0, process_count=1)
    os.truncate(paths[2], 0)  # rewrite shard 2 intact, keep the flipped byte in shard 0
    write_dataset(tmp_path / "fresh", SPEC, {"validation": 9}, num_shards=3)
    paths[2].write_bytes(shard_paths(tmp_path / "fresh", "validation", 3)[2].read_bytes())
    config = _config(tmp_path, split="validation", batch_size=4)
    with pytest.raises(tfrecord.TFRecordError, match=rf"{paths[0].name}: record 1 .*CRC"):
        _batches(Pipeline(config, process_index=0, process_count=1))
    os.truncate(paths[2], os.path.getsize(paths[2]) - 3)
    config.skip_corrupt = True
    batches, stats = _batches(Pipeline(config, process_index=0, process_count=1))
    assert stats["skipped"] == 2  # the flipped record + the lost tail of shard 2
    assert _videos(batches, masked=True) == [f"validation/v{k}" for k in (0, 2, 3, 4, 5, 6, 7)]
    assert [b["mask"].tolist() for b in batches] == [[True, False, True, True], [True] * 4]
    assert batches[0]["video"][1] == "" and (batches[0]["rgb"][1] == -2.0).all()  # zeros
    # Training drops the corrupt record instead.
    config.split = "validation"
    batches, stats = _batches(Pipeline(config, training=True, process_index=0, process_count=1))
    assert stats["skipped"] >= 1 and "validation/v1" not in _videos(batches)


@pytest.mark.slow
def test_evaluation_with_two_workers_pads_every_worker(dataset):
    seen, counts = [], []
    for i in range(2):
        p = Pipeline(_config(dataset, split="validation", batch_size=2, workers=2),
                     process_index=i, process_count=2)
        batches, _ = _batches(p)
        counts.append(len(batches))
        assert len(batches) == p.batches_per_epoch
        seen += _videos(batches, masked=True)
    assert counts == [4, 4]  # 3 clips per process, padded to 2 workers × 2 batches of 1
    assert sorted(seen) == [f"validation/v{k}" for k in range(5)]


def test_global_batches_do_not_depend_on_the_process_count(dataset):
    """Process i's rows of each global batch: 2 processes stitched = 1 process, augmentation
    included (its seeds are global stream positions), across an epoch boundary."""
    config = _config(dataset, batch_size=4, num_epochs=None)
    one, _ = _batches(Pipeline(config, process_index=0, process_count=1), 3)
    two = [_batches(Pipeline(config, process_index=i, process_count=2), 3)[0] for i in range(2)]
    for k in range(3):
        assert one[k].keys() == two[0][k].keys()
        for name in one[k]:
            np.testing.assert_array_equal(np.concatenate([two[0][k][name], two[1][k][name]]),
                                          one[k][name], err_msg=f"batch {k}, {name}")
