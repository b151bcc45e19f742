"""The on-disk clip format: feature names, shapes, dtypes, and (de)serialisation.

Every record of a converted dataset is one `tf.train.Example` holding one clip of
`T` frames (names and shapes are FIXED: tools outside the project read them):

| name          | shape         | dtype   | meaning                                       |
|---------------|---------------|---------|-----------------------------------------------|
| `rgb`         | `[T, H, W, 3]`| uint8   | face crops, RGB order; ZLIB-compressed bytes   |
| `nir`         | `[T, H, W, 1]`| uint8   | NIR face crops (only for RGB+NIR datasets)    |
| `bvp`         | `[T]`         | float32 | label pulse signal resampled onto the frames  |
| `hr`          | `[]`          | float32 | clip heart rate, bpm                          |
| `fps`         | `[]`          | float32 | frame rate of the clip, Hz                    |
| `subject`     | `[]`          | string  | subject id (splits are subject-disjoint)      |
| `video`       | `[]`          | string  | video id, unique within the dataset           |
| `start_frame` | `[]`          | int64   | index of the clip's first frame in the video  |

The schema is a `tfds.features.FeaturesDict` (frames as `Tensor(..., encoding=ZLIB)`,
lossless; `frame_encoding="bytes"` stores them raw), so `tfds.builder_from_directory`
reads converted datasets in TensorFlow, and `features.json` next to the shards
reconstructs the spec (`ClipSpec.from_directory`). Serialising and parsing here use
only numpy/protobuf (tfds' numpy example parser): no TensorFlow, no JAX.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

FRAME_ENCODINGS = ("zlib", "bytes")
FEATURE_NAMES = ("rgb", "nir", "bvp", "hr", "fps", "subject", "video", "start_frame")
STRING_FEATURES = ("subject", "video")


@dataclasses.dataclass(frozen=True)
class ClipSpec:
    """Shapes of one clip: `clip_length` frames of `height`×`width` pixels, NIR or not."""

    clip_length: int
    height: int
    width: int
    nir: bool
    frame_encoding: str = "zlib"

    def __post_init__(self):
        if self.frame_encoding not in FRAME_ENCODINGS:
            raise ValueError(
                f"frame_encoding={self.frame_encoding!r}: expected one of {FRAME_ENCODINGS}"
            )
        for key in ("clip_length", "height", "width"):
            if int(getattr(self, key)) <= 0:
                raise ValueError(f"ClipSpec.{key}={getattr(self, key)}: expected > 0")

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names present in records of this spec."""
        return tuple(n for n in FEATURE_NAMES if n != "nir" or self.nir)

    def shapes(self) -> dict[str, tuple[tuple[int, ...], np.dtype | type]]:
        """`{name: (shape, dtype)}`; strings have dtype `str`."""
        t, h, w = self.clip_length, self.height, self.width
        out = {
            "rgb": ((t, h, w, 3), np.dtype(np.uint8)),
            "nir": ((t, h, w, 1), np.dtype(np.uint8)),
            "bvp": ((t,), np.dtype(np.float32)),
            "hr": ((), np.dtype(np.float32)),
            "fps": ((), np.dtype(np.float32)),
            "subject": ((), str),
            "video": ((), str),
            "start_frame": ((), np.dtype(np.int64)),
        }
        return {n: out[n] for n in self.names}

    def tfds_features(self):
        """The `tfds.features.FeaturesDict` describing one record."""
        return _tfds_features(self)

    @classmethod
    def from_features(cls, features) -> ClipSpec:
        """Inverts `tfds_features` (e.g. a `FeaturesDict` loaded from `features.json`)."""
        import tensorflow_datasets as tfds

        names = set(features.keys())
        missing = {n for n in FEATURE_NAMES if n != "nir"} - names
        if missing:
            raise ValueError(f"features lack {sorted(missing)}; expected {FEATURE_NAMES}")
        rgb = features["rgb"]
        t, h, w, c = rgb.shape
        if c != 3:
            raise ValueError(f"feature 'rgb' has shape {rgb.shape}: expected [T, H, W, 3]")
        encoding = "zlib" if rgb._encoding == tfds.features.Encoding.ZLIB else "bytes"
        return cls(int(t), int(h), int(w), nir="nir" in names, frame_encoding=encoding)

    @classmethod
    def from_directory(cls, directory: str | os.PathLike) -> ClipSpec:
        """The spec of a converted dataset from its `features.json`."""
        import tensorflow_datasets as tfds

        path = os.path.join(os.fspath(directory), "features.json")
        if not os.path.exists(path):
            raise ValueError(f"{path} not found: not a converted dataset directory")
        return cls.from_features(tfds.features.FeatureConnector.from_config(directory))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@functools.lru_cache(maxsize=32)
def _tfds_features(spec: ClipSpec):
    import tensorflow_datasets as tfds

    enc = tfds.features.Encoding
    encoding = enc.ZLIB if spec.frame_encoding == "zlib" else enc.BYTES
    features = {}
    for name, (shape, dtype) in spec.shapes().items():
        if dtype is str:
            features[name] = tfds.features.Text(doc=f"{name} id")
        elif shape == ():
            features[name] = tfds.features.Scalar(dtype=dtype)
        elif dtype == np.uint8:
            features[name] = tfds.features.Tensor(shape=shape, dtype=dtype, encoding=encoding)
        else:
            features[name] = tfds.features.Tensor(shape=shape, dtype=dtype)
    return tfds.features.FeaturesDict(features)


def validate_example(spec: ClipSpec, example: Mapping[str, Any], where: str = "example") -> None:
    """Raises a `ValueError` naming the feature whose value breaks `spec`."""
    expected = spec.shapes()
    extra = set(example) - set(expected)
    missing = set(expected) - set(example)
    if extra or missing:
        raise ValueError(
            f"{where}: features {sorted(example)} do not match the spec {sorted(expected)} "
            f"(missing {sorted(missing)}, unexpected {sorted(extra)})"
        )
    for name, (shape, dtype) in expected.items():
        value = example[name]
        if dtype is str:
            if not isinstance(value, str | bytes):
                raise ValueError(f"{where}: feature {name!r} must be a string, got {type(value)}")
            continue
        arr = np.asarray(value)
        if arr.shape != shape:
            raise ValueError(f"{where}: feature {name!r} has shape {arr.shape}, expected {shape}")
        if dtype == np.uint8 and arr.dtype != np.uint8:
            raise ValueError(f"{where}: feature {name!r} has dtype {arr.dtype}, expected uint8")
        if dtype == np.float32 and not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: feature {name!r} holds NaN/inf")


def serialize_example(spec: ClipSpec, example: Mapping[str, Any]) -> bytes:
    """One clip (`{name: value}` per `spec.shapes()`) → serialized `tf.train.Example` bytes."""
    validate_example(spec, example)
    return spec.tfds_features().serialize_example(dict(example))


def deserialize_example_np(spec: ClipSpec, data: bytes) -> dict[str, Any]:
    """Serialized `tf.train.Example` → `{name: numpy value}`.

    Frames come back as uint8 arrays of the spec's shapes, `bvp` float32 `[T]`, `hr`/`fps`
    float32 scalars, `start_frame` int64 scalar, `subject`/`video` as `str`.
    """
    raw = spec.tfds_features().deserialize_example_np(data)
    out: dict[str, Any] = {}
    for name, (_, dtype) in spec.shapes().items():
        value = raw[name]
        if dtype is str:
            out[name] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        elif isinstance(dtype, np.dtype) and np.ndim(value) == 0:
            out[name] = dtype.type(value)
        else:
            out[name] = np.asarray(value, dtype=dtype)
    return out


def read_scalars(data: bytes, names: tuple[str, ...] = ("hr", "fps"),
                 where: str = "record") -> dict[str, float]:
    """Float scalar features (`hr`, `fps`) of a serialized example, without decoding frames."""
    from tensorflow_datasets.proto import tf_example_pb2

    try:
        feature = tf_example_pb2.Example.FromString(data).features.feature
        return {n: float(feature[n].float_list.value[0]) for n in names}
    except Exception as e:  # protobuf raises assorted types for malformed payloads
        raise ValueError(f"{where}: no float feature among {names} ({type(e).__name__}: {e})"
                         ) from e
