"""Quickstart configs: a short training run sized for 2 CPU cores.

`--config configs/quickstart.py` (IENet `tiny`), `configs/quickstart.py:small` (IENet
`small`), `configs/quickstart.py:tscan` (TS-CAN `tiny`). Without `--config.data.dir` the
run trains on synthetic clips; point it at converted clips to train for real.
"""

from __future__ import annotations

import ml_collections

from configs import common, ienet, tscan


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """IENet variant `arg` (default "tiny"), or TS-CAN tiny for `arg == "tscan"`."""
    if arg == "tscan":
        return common.build_config(tscan.model_config("tiny"), "quickstart", "tiny")
    variant = arg or "tiny"
    return common.build_config(ienet.model_config(variant), "quickstart", variant)
