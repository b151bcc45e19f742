"""TFRecord framing: write, stream and randomly access records without TensorFlow.

A TFRecord file is a sequence of records, each framed as

    uint64 length (little endian) | uint32 masked_crc32c(length bytes)
    | data (length bytes)         | uint32 masked_crc32c(data)

with `masked_crc(c) = ((c >> 15) | (c << 17)) + 0xA282EAD8 (mod 2**32)` over the
Castagnoli CRC (`google-crc32c`, C implementation). Files written here are read by
`tf.data.TFRecordDataset` and vice versa (uncompressed files only).

Random access: `RecordIndex.build(path)` scans the 12-byte headers once (seeking over the
payloads) into an `[N, 2]` int64 array of (payload offset, payload length) in bytes;
`TFRecordFile(path)[i]` then reads record `i` with one `os.pread`, so it is cheap, thread
safe and picklable (the file handle is reopened lazily in each process). Every framing
problem raises `TFRecordError` naming the file, the record index and the byte offset.

Pure Python/numpy: no JAX, no TensorFlow.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import google_crc32c
import numpy as np

_HEADER = struct.Struct("<QI")  # length, masked crc of the length bytes
_FOOTER = struct.Struct("<I")  # masked crc of the data
_LENGTH = struct.Struct("<Q")
_MASK_DELTA = 0xA282EAD8


class TFRecordError(ValueError):
    """A malformed TFRecord file: names the file, record index and byte offset."""

    def __init__(self, path: str | os.PathLike, record: int, offset: int, what: str):
        self.path = str(path)
        self.record = record
        self.offset = offset
        self.what = what
        super().__init__(f"{self.path}: record {record} at byte offset {offset}: {what}")

    def __reduce__(self):  # pickles whole (grain workers send errors to the main process)
        return type(self), (self.path, self.record, self.offset, self.what)


def masked_crc(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC32C of `data` (uint32)."""
    crc = google_crc32c.value(bytes(data) if isinstance(data, memoryview) else data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """The bytes of one framed record (header + data + footer)."""
    length = _LENGTH.pack(len(data))
    return b"".join(
        (length, _FOOTER.pack(masked_crc(length)), data, _FOOTER.pack(masked_crc(data)))
    )


class TFRecordWriter:
    """Appends framed records to a file. Use as a context manager.

    Writes go straight to `path`; callers wanting atomic files write to a temporary path
    and rename (see `data_prep.writer`).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed in close())
        self.num_records = 0
        self.num_bytes = 0

    def write(self, data: bytes) -> None:
        """Appends one record holding `data`."""
        record = frame_record(data)
        self._file.write(record)
        self.num_records += 1
        self.num_bytes += len(record)

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_records(path: str | os.PathLike, records: Iterable[bytes]) -> int:
    """Writes `records` to a new TFRecord file at `path`; returns the record count."""
    with TFRecordWriter(path) as writer:
        for data in records:
            writer.write(data)
        return writer.num_records


def _read_header(path, f, record: int, offset: int, file_size: int) -> int | None:
    """Reads and checks a header at `offset`; returns the payload length or None at EOF."""
    header = f.read(_HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise TFRecordError(
            path, record, offset, f"truncated header: {len(header)} of {_HEADER.size} bytes"
        )
    length, length_crc = _HEADER.unpack(header)
    if masked_crc(header[:8]) != length_crc:
        raise TFRecordError(path, record, offset, "corrupted length (header CRC mismatch)")
    end = offset + _HEADER.size + length + _FOOTER.size
    if end > file_size:
        raise TFRecordError(
            path, record, offset,
            f"truncated record: needs {end - offset} bytes, file has {file_size - offset} left",
        )
    return length


def iter_records(path: str | os.PathLike, verify: bool = True) -> Iterator[bytes]:
    """Streams the payloads of a TFRecord file in order, checking every CRC if `verify`."""
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        record, offset = 0, 0
        while True:
            length = _read_header(path, f, record, offset, file_size)
            if length is None:
                return
            data = f.read(length)
            (data_crc,) = _FOOTER.unpack(f.read(_FOOTER.size))
            if verify and masked_crc(data) != data_crc:
                raise TFRecordError(path, record, offset, "corrupted data (data CRC mismatch)")
            yield data
            record += 1
            offset += _HEADER.size + length + _FOOTER.size


class RecordIndex:
    """Offsets of the records of one file: `entries` `[N, 2]` int64 (payload offset, length)."""

    def __init__(self, path: str | os.PathLike, entries: np.ndarray):
        self.path = str(path)
        self.entries = np.asarray(entries, dtype=np.int64).reshape(-1, 2)

    @classmethod
    def build(cls, path: str | os.PathLike) -> RecordIndex:
        """Scans the headers of `path` (checking their CRCs and the file's completeness).

        Raises `TFRecordError` at the first bad header or truncated record.
        """
        index, error = cls.build_intact(path)
        if error is not None:
            raise error
        return index

    @classmethod
    def build_intact(cls, path: str | os.PathLike) -> tuple[RecordIndex, TFRecordError | None]:
        """(index of the records before the first framing error, that error or None).

        For readers that choose to skip a damaged tail (e.g. a shard cut short by a crash).
        """
        file_size = os.path.getsize(path)
        entries, error = [], None
        with open(path, "rb") as f:
            offset = 0
            while True:
                try:
                    length = _read_header(path, f, len(entries), offset, file_size)
                except TFRecordError as e:
                    error = e
                    break
                if length is None:
                    break
                entries.append((offset + _HEADER.size, length))
                offset += _HEADER.size + length + _FOOTER.size
                f.seek(offset)
        return cls(path, np.array(entries, dtype=np.int64).reshape(-1, 2)), error

    def __len__(self) -> int:
        return len(self.entries)


class TFRecordFile(Sequence[bytes]):
    """Random access to the records of one TFRecord file: `len(f)`, `f[i] -> bytes`.

    Thread safe (positional reads) and picklable (only the path and index travel).
    """

    def __init__(self, path: str | os.PathLike, index: RecordIndex | None = None,
                 verify: bool = True):
        self.path = str(path)
        self.index = index if index is not None else RecordIndex.build(path)
        self.verify = verify
        self._fd: int | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.index)

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDONLY)
            self._pid = os.getpid()
        return self._fd

    def __getitem__(self, i: int) -> bytes:  # type: ignore[override]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.path}: record {i} out of range (file has {n} records)")
        offset, length = (int(v) for v in self.index.entries[i % n])
        raw = os.pread(self._descriptor(), length + _FOOTER.size, offset)
        if len(raw) != length + _FOOTER.size:
            raise TFRecordError(self.path, i % n, offset - _HEADER.size,
                                "file shrank since it was indexed")
        data = raw[:length]
        if self.verify:
            (data_crc,) = _FOOTER.unpack(raw[length:])
            if masked_crc(data) != data_crc:
                raise TFRecordError(self.path, i % n, offset - _HEADER.size,
                                    "corrupted data (data CRC mismatch)")
        return data

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fd"] = None
        state["_pid"] = None
        return state

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 (interpreter shutdown)
            pass


class TFRecordFiles(Sequence[bytes]):
    """Several TFRecord files as one random-access sequence (file order, then record order)."""

    def __init__(self, paths: Sequence[str | os.PathLike], verify: bool = True):
        self.files = [TFRecordFile(p, verify=verify) for p in paths]
        self._starts = np.cumsum([0] + [len(f) for f in self.files])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """(file number, record number in that file) of global record `i`."""
        if not 0 <= i < len(self):
            raise IndexError(f"record {i} out of range ({len(self)} records)")
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return k, i - int(self._starts[k])

    def __getitem__(self, i: int) -> bytes:  # type: ignore[override]
        k, j = self.locate(i)
        return self.files[k][j]
