"""Split discovery, random access, read_clips, TensorFlow interoperability, corrupt records."""

import os
import zlib

import numpy as np
import pytest
from data_fixtures import make_clip, shard_paths, write_dataset

from ienet_jax.data import decode, features, read_clips, source, tfrecord

SPEC = features.ClipSpec(8, 16, 16, nir=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds"), SPEC, {"train": 7, "test": 3}, 3)


def _assert_clip_equal(got, want):
    assert set(got) == set(want)
    for name, value in want.items():
        if isinstance(value, str):
            assert got[name] == value
        else:
            np.testing.assert_array_equal(got[name], value)
            assert np.asarray(got[name]).dtype == np.asarray(value).dtype


def test_read_clips_yields_stored_order(dataset):
    clips = list(read_clips(dataset, "train"))
    assert [c["video"] for c in clips] == [f"train/v{k}" for k in range(7)]
    for k, clip in enumerate(clips):
        _assert_clip_equal(clip, make_clip(SPEC, k, "train"))


def test_split_files_errors(dataset, tmp_path):
    assert len(source.split_files(dataset, "test")) == 3
    with pytest.raises(ValueError, match=r"no shards for split 'validation'.*\['test', 'train'\]"):
        source.split_files(dataset, "validation")
    write_dataset(tmp_path, SPEC, {"train": 4}, 3)
    os.remove(shard_paths(tmp_path, "train", 3)[1])
    with pytest.raises(ValueError, match=r"lacks shards \[1\] of 3"):
        source.split_files(tmp_path, "train")
    with pytest.raises(ValueError, match="not a directory"):
        source.split_files(tmp_path / "nope", "train")


def test_source_random_access_and_pickle(dataset):
    import pickle

    src = source.ClipSource(dataset, "train")
    assert len(src) == 7
    back = pickle.loads(pickle.dumps(src))
    for i in (6, 0, 3):
        where, data = back[i]
        assert where.endswith(f"record {src.locate(i)[1]}")
        assert decode.decode_record(SPEC, data)["video"] == f"train/v{i}"
    with pytest.raises(IndexError):
        src[7]


def test_decode_error_names_record():
    with pytest.raises(ValueError, match="shard-x:record 4: cannot parse"):
        decode.decode_record(SPEC, b"\xff\x00garbage", "shard-x:record 4")


def test_reads_tensorflow_written_records(tmp_path):
    tf = pytest.importorskip("tensorflow")
    spec = features.ClipSpec(8, 16, 16, nir=True)
    spec.tfds_features().save_config(str(tmp_path))
    clips = [make_clip(spec, k) for k in range(3)]
    path = shard_paths(tmp_path, "train", 1)[0]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for c in clips:
            feature = {
                "rgb": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[zlib.compress(c["rgb"].tobytes())])),
                "nir": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[zlib.compress(c["nir"].tobytes())])),
                "bvp": tf.train.Feature(float_list=tf.train.FloatList(value=c["bvp"])),
                "hr": tf.train.Feature(float_list=tf.train.FloatList(value=[c["hr"]])),
                "fps": tf.train.Feature(float_list=tf.train.FloatList(value=[c["fps"]])),
                "subject": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[c["subject"].encode()])),
                "video": tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[c["video"].encode()])),
                "start_frame": tf.train.Feature(int64_list=tf.train.Int64List(
                    value=[c["start_frame"]])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    assert [len(r) for r in tfrecord.iter_records(path)] == [
        len(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    for got, want in zip(read_clips(tmp_path, "train"), clips, strict=True):
        _assert_clip_equal(got, want)


def _corrupt(directory, how):
    """Flips a payload byte of record 1 of shard 0, or cuts the tail of shard 1."""
    paths = shard_paths(directory, "train", 3)
    if how == "flip":
        index = tfrecord.RecordIndex.build(paths[0])
        offset = int(index.entries[1, 0]) + 10
        with open(paths[0], "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0xFF]))
        return paths[0]
    os.truncate(paths[1], os.path.getsize(paths[1]) - 7)
    return paths[1]


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupt_record_named_or_skipped(tmp_path, how):
    write_dataset(tmp_path, SPEC, {"train": 7}, 3)  # shards of 2, 2, 3 records
    bad_path = _corrupt(tmp_path, how)
    # record 1 of the bad shard either way: the flipped one / the cut (last) one of shard 1
    with pytest.raises(tfrecord.TFRecordError, match=rf"{bad_path.name}: record 1 "):
        list(read_clips(tmp_path, "train"))
    src = source.ClipSource(tmp_path, "train", skip_corrupt=True)
    got = [src[i] for i in range(len(src))]
    videos = [decode.decode_record(SPEC, g[1])["video"] for g in got if g is not None]
    if how == "flip":
        assert len(src) == 7 and got[1] is None and src.index_skipped == 0
        assert videos == [f"train/v{k}" for k in (0, 2, 3, 4, 5, 6)]
    else:
        assert len(src) == 6 and src.index_skipped == 1 and None not in got
        assert videos == [f"train/v{k}" for k in (0, 1, 2, 4, 5, 6)]


def test_record_index_is_cached(dataset):
    path = source.split_files(dataset, "train")[0]
    first, _ = source.record_index(path)
    assert source.record_index(path)[0] is first
    assert source.ClipSource(dataset, "train").files[0].index is first


def test_package_import_and_read_clips_stay_jax_free(dataset):
    import subprocess
    import sys

    code = (
        "import sys; import ienet_jax.data.tfrecord, ienet_jax.data.features; "
        "from ienet_jax.data import read_clips; "
        f"n = sum(1 for _ in read_clips({str(dataset)!r}, 'test')); "
        "assert n == 3, n; assert 'jax' not in sys.modules, 'jax imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_crop_box_scale_from_metadata(tmp_path):
    import json

    assert source.crop_box_scale(tmp_path) == source.DEFAULT_BOX_SCALE  # no metadata.json
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"options": {"process": {"box_scale": 1.2}}}))
    assert source.crop_box_scale(tmp_path) == pytest.approx(1.2)
    meta.write_text(json.dumps({"options": {}}))
    with pytest.raises(ValueError, match="metadata.json: no options.process.box_scale"):
        source.crop_box_scale(tmp_path)
    meta.write_text(json.dumps({"options": {"process": {"box_scale": 0.5}}}))
    with pytest.raises(ValueError, match="box_scale=0.5"):
        source.crop_box_scale(tmp_path)


def test_tfrecord_error_pickles_whole():
    """grain workers (data.workers > 0) send errors to the main process pickled: this was a
    TypeError (missing `record`, `offset`, `what`) instead of the error naming the record."""
    import pickle

    e = pickle.loads(pickle.dumps(tfrecord.TFRecordError("/d/f.tfrecord", 3, 120, "bad CRC")))
    assert isinstance(e, tfrecord.TFRecordError) and (e.path, e.record, e.offset) == (
        "/d/f.tfrecord", 3, 120)
    assert str(e) == "/d/f.tfrecord: record 3 at byte offset 120: bad CRC"
