"""Keras 3 `.weights.h5` files → a flat `{path: array}` dict.

Keras 3 stores each layer's weights as datasets `<layer path>/vars/<i>` in creation order
(e.g. `ConvBlock1/layers/conv3d/vars/0` = the kernel). Reading needs `h5py`, not Keras.
"""

from __future__ import annotations

from typing import IO

import numpy as np


def read_weights_h5(path_or_fileobj: str | IO[bytes]) -> dict[str, np.ndarray]:
    """Every dataset of a `.weights.h5` file (a path or a binary file object) by its path;
    floating values (Keras may store float16) cast to float32, others kept as stored."""
    import h5py

    out: dict[str, np.ndarray] = {}

    def visit(name: str, node) -> None:
        if isinstance(node, h5py.Dataset):
            value = np.asarray(node[()])
            out[name] = value.astype(np.float32) if np.issubdtype(value.dtype,
                                                                   np.floating) else value

    with h5py.File(path_or_fileobj, "r") as f:
        f.visititems(visit)
    return out
