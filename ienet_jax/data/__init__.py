"""Input data: TFRecord framing, the clip schema, and the grain input pipeline.

Importing this package is cheap and JAX free (`data_prep` imports `tfrecord`/`features`);
the names below load their modules on first use:

- `read_clips(directory, split)`: decoded examples in stored order; `crop_box_scale(directory)`:
  the converter's crop side / face box side (`source.py`).
- `Pipeline(config, ...)`, `default_data_config()` (`pipeline.py`).
- `make_global_batch(batch, sharding)` (`global_batch.py`).
"""

import importlib

_LAZY = {
    "read_clips": "source",
    "ClipSource": "source",
    "crop_box_scale": "source",
    "split_files": "source",
    "Pipeline": "pipeline",
    "PipelineIterator": "pipeline",
    "default_data_config": "pipeline",
    "make_global_batch": "global_batch",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
