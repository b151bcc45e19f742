"""Keras 3 `.weights.h5` files → `{h5 path: float32 array}` (h5py; Keras is not needed).

Keras stores each layer's variables as datasets `…/vars/0`, `…/vars/1`, … in creation
order under the layer's path (`ConvBlock1/layers/conv3d/vars/0`); floating values (open-rppg
stores float16) are cast to float32 here, others kept as stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np


def read_weights_h5(source: str | Path | BinaryIO, where: str | None = None) -> dict:
    """Every dataset of a `.weights.h5` file (a path or a binary file object) by its path."""
    import h5py

    where = where or str(source)
    out: dict[str, np.ndarray] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            value = np.asarray(obj[()])
            floating = np.issubdtype(value.dtype, np.floating)
            out[name] = value.astype(np.float32) if floating else value

    try:
        with h5py.File(source, "r") as f:
            f.visititems(visit)
    except OSError as e:
        raise ValueError(f"{where}: not a readable .weights.h5 file ({e})") from e
    if not out:
        raise ValueError(f"{where}: the .weights.h5 file holds no weights")
    return out
