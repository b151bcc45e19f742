"""Dataset readers: one module per raw layout, all producing `base.Recording`/`ClipSet`.

`get_reader(name)` returns the module for a `--dataset` name; each module exposes
`discover(root, options) -> list[Entry]` and `load(entry, options) -> Recording | ClipSet`
(see `base`). New layouts register here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

READERS = {
    "vipl_hr": "data_prep.readers.vipl_hr",
    "ubfc_rppg": "data_prep.readers.ubfc_rppg",
    "pure": "data_prep.readers.pure",
    "ubfc_phys": "data_prep.readers.ubfc_phys",
    "mr_nirp": "data_prep.readers.mr_nirp",
    "ienet_pkl": "data_prep.readers.ienet_pkl",
    "generic": "data_prep.readers.generic",
}


def get_reader(name: str) -> ModuleType:
    """The reader module for dataset `name` (a key of `READERS`)."""
    if name not in READERS:
        raise ValueError(f"--dataset {name!r}: expected one of {', '.join(READERS)}")
    return importlib.import_module(READERS[name])
