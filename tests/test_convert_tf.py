"""Interoperability: TensorFlow/TFDS read the converted output with identical arrays."""

import numpy as np
import pytest
from convert_fakes import generic, read_output, run_convert


@pytest.mark.slow
def test_tfds_builder_reads_what_we_wrote(tmp_path):
    tf = pytest.importorskip("tensorflow")
    import tensorflow_datasets as tfds

    generic(tmp_path / "raw")
    out = tmp_path / "out"
    assert run_convert("--dataset", "generic", "--input", tmp_path / "raw", "--output", out,
                       "--size", 16, "--clip-length", 64, "--stride", 32) == 0
    ours = read_output(out)
    builder = tfds.builder_from_directory(str(out))
    assert set(builder.info.splits) == set(ours)
    for split, examples in ours.items():
        theirs = list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))
        assert len(theirs) == len(examples) == builder.info.splits[split].num_examples
        for a, b in zip(examples, theirs):
            assert set(a) == set(b) == {"rgb", "nir", "bvp", "hr", "fps", "subject", "video",
                                        "start_frame"}
            for k in a:
                if isinstance(a[k], str):
                    assert b[k].decode() == a[k]
                else:
                    assert b[k].dtype == a[k].dtype, k
                    np.testing.assert_array_equal(b[k], a[k])
    # Plain tf.data over one shard parses with the published features too.
    shard = sorted(out.glob("generic-train.tfrecord-*"))[0]
    raw = next(iter(tf.data.TFRecordDataset(str(shard))))
    decoded = builder.info.features.deserialize_example(raw)
    np.testing.assert_array_equal(decoded["rgb"].numpy(), ours["train"][0]["rgb"])
