"""TFRecord framing: round trip, random access, and errors naming file/record/offset."""

import pickle
import struct

import numpy as np
import pytest

from ienet_jax.data import tfrecord


def _payloads(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
            for _ in range(n)]


def test_masked_crc_known_value():
    # Reference: TensorFlow's framing of an empty payload / the 8-byte length 0.
    # crc32c(b"") == 0 → masked value is the mask delta itself.
    assert tfrecord.masked_crc(b"") == 0xA282EAD8
    # crc32c("123456789") == 0xE3069283 (the standard CRC-32C check value).
    crc = 0xE3069283
    expected = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert tfrecord.masked_crc(b"123456789") == expected


def test_round_trip_stream_and_random_access(tmp_path):
    path = tmp_path / "x.tfrecord"
    payloads = _payloads()
    assert tfrecord.write_records(path, payloads) == len(payloads)
    assert list(tfrecord.iter_records(path)) == payloads
    f = tfrecord.TFRecordFile(path)
    assert len(f) == len(payloads)
    assert [f[i] for i in (3, 0, 4, -1)] == [payloads[3], payloads[0], payloads[4], payloads[-1]]
    with pytest.raises(IndexError):
        f[len(payloads)]
    clone = pickle.loads(pickle.dumps(f))
    assert clone[2] == payloads[2]
    # Offsets in the index point at the payloads.
    raw = path.read_bytes()
    for (off, n), p in zip(f.index.entries, payloads):
        assert raw[off:off + n] == p


def test_multi_file_sequence(tmp_path):
    a, b = _payloads(3, 1), _payloads(4, 2)
    tfrecord.write_records(tmp_path / "a", a)
    tfrecord.write_records(tmp_path / "b", b)
    files = tfrecord.TFRecordFiles([tmp_path / "a", tmp_path / "b"])
    assert len(files) == 7
    assert [files[i] for i in range(7)] == a + b
    assert files.locate(4) == (1, 1)


def test_corrupted_data_crc_names_file_record_offset(tmp_path):
    path = tmp_path / "bad.tfrecord"
    payloads = [b"a" * 10, b"b" * 20, b"c" * 5]
    tfrecord.write_records(path, payloads)
    raw = bytearray(path.read_bytes())
    second = 12 + 10 + 4  # header + payload + footer of record 0
    raw[second + 12 + 3] ^= 0xFF
    path.write_bytes(bytes(raw))
    msg = rf"bad.tfrecord: record 1 at byte offset {second}: .*data CRC"
    with pytest.raises(tfrecord.TFRecordError, match=msg):
        list(tfrecord.iter_records(path))
    f = tfrecord.TFRecordFile(path)
    assert f[0] == payloads[0] and f[2] == payloads[2]
    with pytest.raises(tfrecord.TFRecordError, match="record 1"):
        f[1]


def test_corrupted_length_and_truncated_tail(tmp_path):
    path = tmp_path / "t.tfrecord"
    tfrecord.write_records(path, [b"x" * 50, b"y" * 50])
    raw = path.read_bytes()
    (tmp_path / "trunc").write_bytes(raw[:-10])
    for fn in (tfrecord.RecordIndex.build, lambda p: list(tfrecord.iter_records(p))):
        msg = r"trunc: record 1 at byte offset 66: truncated"
        with pytest.raises(tfrecord.TFRecordError, match=msg):
            fn(tmp_path / "trunc")
    (tmp_path / "half").write_bytes(raw[:66 + 5])
    with pytest.raises(tfrecord.TFRecordError, match="record 1 .*truncated header"):
        tfrecord.RecordIndex.build(tmp_path / "half")
    bad = bytearray(raw)
    bad[66:74] = struct.pack("<Q", 49)
    (tmp_path / "len").write_bytes(bytes(bad))
    with pytest.raises(tfrecord.TFRecordError, match="record 1 .*length"):
        tfrecord.RecordIndex.build(tmp_path / "len")


def test_empty_file(tmp_path):
    tfrecord.write_records(tmp_path / "e", [])
    assert len(tfrecord.TFRecordFile(tmp_path / "e")) == 0


def test_build_intact_indexes_the_records_before_a_damaged_tail(tmp_path):
    path = tmp_path / "t.tfrecord"
    tfrecord.write_records(path, [b"a" * 7, b"b" * 9, b"c" * 11])
    raw = path.read_bytes()
    path.write_bytes(raw[:-5])
    index, error = tfrecord.RecordIndex.build_intact(path)
    assert len(index) == 2 and error is not None and error.record == 2
    assert tfrecord.TFRecordFile(path, index=index)[1] == b"b" * 9
    path.write_bytes(raw)
    index, error = tfrecord.RecordIndex.build_intact(path)
    assert len(index) == 3 and error is None
