"""Flax models: IENet (CET backbones, MDEF fusion, rPPG and FEE heads), TS-CAN and PhysNet.

`build(config.model)` is the one entry point; apply as
`model.apply(variables, *contract.inputs(batch), train=False)`, the family's
`ienet_jax.models.contract.ModelContract` (found by `model.name`) saying what goes in and out.
"""

from __future__ import annotations

from flax import linen as nn

from ienet_jax.models import contract


def build(model_config) -> nn.Module:
    """The model named by `model_config.name`, built (and validated) from the config."""
    return contract.get(model_config).build(model_config)
