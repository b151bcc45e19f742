"""Serialized clip records → numpy examples (the `features.py` schema), with record names in errors.

Example after decoding: `rgb` uint8 `[T, H, W, 3]`, `nir` uint8 `[T, H, W, 1]` (when stored
and asked for), `bvp` float32 `[T]`, `hr` float32 (bpm), `fps` float32 (Hz), `start_frame`
int64, `subject`/`video` str. No JAX, no TensorFlow, no grain (`read_clips` stays light).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ienet_jax.data.features import ClipSpec, deserialize_example_np

MODALITIES = ("rgb", "nir")


class RecordDecodeError(ValueError):
    """A record whose framing and CRC are intact but whose payload is not a clip."""


def decode_record(spec: ClipSpec, data: bytes, where: str = "record") -> dict[str, Any]:
    """One serialized `tf.train.Example` → `{name: numpy value}`; errors (`RecordDecodeError`)
    name `where`."""
    try:
        return deserialize_example_np(spec, data)
    except Exception as e:  # protobuf / tfds raise assorted types for malformed payloads
        raise RecordDecodeError(
            f"{where}: cannot parse the record as a clip of {spec} ({type(e).__name__}: {e})"
        ) from e


def check_modalities(spec: ClipSpec, modalities: Sequence[str], where: str) -> tuple[str, ...]:
    """Validates `data.modalities` against the stored spec; returns them as a tuple."""
    modalities = tuple(modalities)
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
        raise ValueError(f"data.modalities={modalities}: expected a non-empty subset of "
                         f"{MODALITIES}")
    if "nir" in modalities and not spec.nir:
        raise ValueError(f"data.modalities={modalities} asks for 'nir' but {where} stores RGB "
                         "only (features.json has no 'nir' feature)")
    return modalities


def select_modalities(example: dict[str, Any], modalities: Sequence[str]) -> dict[str, Any]:
    """Drops the frame features not in `modalities` (in place; returns `example`)."""
    for name in MODALITIES:
        if name not in modalities:
            example.pop(name, None)
    return example
