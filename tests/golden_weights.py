"""The reference IENet state dict the golden outputs were computed with (tests only)."""

import json

import numpy as np


def reference_state_dict(golden_dir, det_init) -> dict:
    """A reference IENet state dict (the golden files' deterministic weights)."""
    from ienet_jax.models.attention import relative_position_index

    spec = json.loads((golden_dir / "ienet_seed_state_dict.json").read_text())
    out = {}
    for key, (shape, dtype) in spec.items():
        if "float" in dtype:
            out[key] = det_init.det_tensor(key, shape)
        elif key.endswith("relative_position_index"):
            out[key] = relative_position_index((2, 7, 7)).astype(np.int64)
        else:
            out[key] = np.zeros(shape, np.int64)
    return out
