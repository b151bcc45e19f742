"""Flax models: IENet (CET backbones, MDEF fusion, rPPG and FEE heads) and TS-CAN.

`build(config.model)` is the one entry point; apply as
`model.apply(variables, rgb, nir, train=False)` for IENet and
`model.apply(variables, frames, train=False)` for TS-CAN.
"""

from __future__ import annotations

from flax import linen as nn


def build(model_config) -> nn.Module:
    """The model named by `model_config.name` (`"ienet"` or `"tscan"`), built from the config."""
    name = model_config.get("name") if hasattr(model_config, "get") else None
    if name == "ienet":
        from ienet_jax.models.ienet import IENet

        return IENet.from_config(model_config)
    if name == "tscan":
        from ienet_jax.models.tscan import TSCAN

        return TSCAN.from_config(model_config)
    raise ValueError(f"config key model.name must be 'ienet' or 'tscan', got {name!r}")
