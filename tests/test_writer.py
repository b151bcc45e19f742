"""Output files: atomic record files, the resume journal, TFDS shards and metadata."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep import writer
from ienet_jax.data import features, tfrecord

SPEC = features.ClipSpec(4, 8, 8, nir=True)


def _example(i, video):
    rng = np.random.default_rng(i)
    return {"rgb": rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
            "nir": rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8),
            "bvp": rng.standard_normal(4).astype(np.float32), "hr": np.float32(60 + i),
            "fps": np.float32(30), "subject": video.split("/")[0], "video": video,
            "start_frame": np.int64(4 * i)}


def _video(tmp_path, video, split, n):
    path = tmp_path / writer.STAGING / "videos" / f"{writer.video_key(video)}.tfrecord"
    size = writer.write_records_atomic(
        path, (features.serialize_example(SPEC, _example(i, video)) for i in range(n)))
    return {"video": video, "split": split, "file": str(path), "clips": n, "bytes": size}


def test_atomic_write_leaves_no_temporaries(tmp_path):
    path = tmp_path / "a.tfrecord"
    assert writer.write_records_atomic(path, [b"x", b"yy"]) == 2 * 16 + 3
    assert list(tfrecord.iter_records(path)) == [b"x", b"yy"]

    def broken():
        yield b"z"
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        writer.write_records_atomic(path, broken())
    assert list(tfrecord.iter_records(path)) == [b"x", b"yy"]  # the old file survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tfrecord"]


def test_video_key_is_safe_and_unique():
    a, b = writer.video_key("p1/v1/source1"), writer.video_key("p1_v1_source1")
    assert a != b and "/" not in a and a.startswith("p1_v1_source1-")


def test_journal_last_entry_wins_and_torn_line_is_ignored(tmp_path):
    j = writer.Journal(tmp_path / "j.jsonl")
    j.record({"video": "a", "status": "failed"})
    j.record({"video": "b", "status": "ok"})
    j.record({"video": "a", "status": "ok"})
    with open(tmp_path / "j.jsonl", "a") as f:
        f.write('{"video": "c", "sta')  # killed mid-write
    again = writer.Journal(tmp_path / "j.jsonl")
    assert {k: v["status"] for k, v in again.entries.items()} == {"a": "ok", "b": "ok"}


def test_publish_shards_and_tfds_metadata(tmp_path):
    videos = [_video(tmp_path, "s1/a", "train", 3), _video(tmp_path, "s2/a", "train", 2),
              _video(tmp_path, "s3/a", "test", 1)]
    shards = writer.publish(tmp_path, "toy", SPEC, videos, "a toy", {"seed": 0})
    assert [s["file"] for s in shards["train"]] == [
        "toy-train.tfrecord-00000-of-00002", "toy-train.tfrecord-00001-of-00002"]
    builder = tfds.builder_from_directory(str(tmp_path))
    info = builder.info
    assert info.name == "toy"
    assert info.splits["train"].shard_lengths == [3, 2]
    assert info.splits["test"].num_examples == 1
    assert set(info.features.keys()) == set(SPEC.names)
    assert features.ClipSpec.from_directory(tmp_path) == SPEC
    assert json.loads((tmp_path / "metadata.json").read_text()) == {"seed": 0}
    # Shards hold the per-video records, readable with our framing and spec.
    recs = tfrecord.TFRecordFile(tmp_path / "toy-train.tfrecord-00001-of-00002")
    ex = features.deserialize_example_np(SPEC, recs[1])
    assert ex["video"] == "s2/a" and ex["start_frame"] == 4
    # Re-publishing with another video set renames shards and removes stale ones.
    videos.append(_video(tmp_path, "s4/a", "train", 1))
    writer.publish(tmp_path, "toy", SPEC, videos, "a toy", {"seed": 0})
    names = sorted(p.name for p in tmp_path.glob("toy-*"))
    assert names == ["toy-test.tfrecord-00000-of-00001"] + [
        f"toy-train.tfrecord-0000{i}-of-00003" for i in range(3)]
    assert tfds.builder_from_directory(str(tmp_path)).info.splits["train"].num_examples == 6
