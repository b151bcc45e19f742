"""TS-CAN weights → Flax variables of `TSCAN`: a PyTorch reference state dict (AimaNet
`TemporalShiftCAN`, `tscan_variables`) or open-rppg's Keras weights (`keras_tscan_variables`).

Key map (reference → Flax): `tsm_conv{1,2}` → `block1/motion_{same,valid}`,
`reg_conv{1,2}` → `block1/appearance_{same,valid}`, `g1_conv` → `block1/gate`, the same with
`tsm_conv{3,4}`, `reg_conv{3,4}`, `g2_conv` for `block2`; `fc1` → `hidden`, `fc2` → `out`.
Conv2d weights `(out, in, kh, kw)` become `(kh, kw, in, out)`; Linear weights `(out, in)`
become `(in, out)`. The reference flattens the last feature map in (C, H, W) order, the
channels-last model in (H, W, C) order, so `fc1`'s input rows are permuted.

Keras (open-rppg 0.1.1 `TSCAN.*.weights.h5`, flattened to `{h5 path: array}`): weights are
`<layer>/vars/0` (kernel) and `vars/1` (bias) of `inner/d1`, `inner/d2` (motion convs
`conv2d` same, `conv2d_1` valid), `inner/g1`, `inner/g2` (appearance convs), `inner/attn1`,
`inner/attn2` (1×1 gate `conv2d`), `inner/d` (`dense` → `hidden`, `dense_1` → `out`). Keras
layouts are Flax's (conv `[kh, kw, in, out]`, Dense `[in, out]`, flatten in (H, W, C) order),
so arrays are only cast to float32 (the file stores float16) and shape-checked.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from ienet_jax.convert.fee import reference_array, torch_conv_kernel
from ienet_jax.models.tscan import RAW_CHANNELS, TSCAN, flat_spatial_size

_REFERENCE_CONVS = tuple(f"{kind}_conv{i}" for kind in ("tsm", "reg") for i in range(1, 5)) + (
    "g1_conv", "g2_conv")


def _conv(state_dict, key: str, c_in: int, c_out: int, k: int) -> dict:
    weight = reference_array(state_dict, f"{key}.conv1.weight", (c_out, c_in, k, k))
    bias = reference_array(state_dict, f"{key}.conv1.bias", (c_out,))
    return {"kernel": torch_conv_kernel(weight), "bias": bias}


def tscan_variables(state_dict: Mapping[str, np.ndarray], model_config) -> dict:
    """`{"params": …}` of `TSCAN.from_config(model_config)` (plain numpy arrays).

    `model_config.frame_size` fixes the size of `fc1`'s input. Missing, unexpected or
    mis-shaped keys raise a ValueError naming the key; the result is checked against the
    structure and shapes of the model's own initialisation.
    """
    model = TSCAN.from_config(model_config)
    frame_size = int(model_config.frame_size)
    k = model.kernel_size
    f1, f2 = model.filters
    params: dict = {}
    c_in = 3
    for block, filters, (m1, m2, a1, a2, g) in (
        ("block1", f1, ("tsm_conv1", "tsm_conv2", "reg_conv1", "reg_conv2", "g1_conv")),
        ("block2", f2, ("tsm_conv3", "tsm_conv4", "reg_conv3", "reg_conv4", "g2_conv")),
    ):
        params[block] = {
            "motion_same": _conv(state_dict, m1, c_in, filters, k),
            "motion_valid": _conv(state_dict, m2, filters, filters, k),
            "appearance_same": _conv(state_dict, a1, c_in, filters, k),
            "appearance_valid": _conv(state_dict, a2, filters, filters, k),
            "gate": _conv(state_dict, g, filters, 1, 1),
        }
        c_in = filters
    side = flat_spatial_size(frame_size, k, model.pool)
    fc1 = reference_array(state_dict, "fc1.weight", (model.hidden, f2 * side * side))
    # rows (c, h, w) → (h, w, c)
    fc1 = fc1.reshape(model.hidden, f2, side, side).transpose(2, 3, 1, 0)
    params["hidden"] = {
        "kernel": np.ascontiguousarray(fc1.reshape(side * side * f2, model.hidden)),
        "bias": reference_array(state_dict, "fc1.bias", (model.hidden,)),
    }
    params["out"] = {
        "kernel": reference_array(state_dict, "fc2.weight", (1, model.hidden)).T.copy(),
        "bias": reference_array(state_dict, "fc2.bias", (1,)),
    }
    expected = {f"{name}.conv1.{p}" for name in _REFERENCE_CONVS for p in ("weight", "bias")}
    expected |= {f"fc{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
    unexpected = sorted(set(state_dict) - expected)
    if unexpected:
        raise ValueError(
            f"reference TS-CAN state dict has unexpected keys {unexpected[:8]}"
            f"{' …' if len(unexpected) > 8 else ''} (a different model or a prefixed state dict?)"
        )
    variables = {"params": params}
    _check_against_init(variables, model, frame_size)
    return variables


def _keras_paths() -> dict[str, tuple[str, ...]]:
    """`{h5 path: Flax params path}` of open-rppg's Keras TS-CAN."""
    layers = {"inner/d/layers/dense": ("hidden",), "inner/d/layers/dense_1": ("out",)}
    for i in (1, 2):
        block = f"block{i}"
        layers |= {
            f"inner/d{i}/layers/conv2d": (block, "motion_same"),
            f"inner/d{i}/layers/conv2d_1": (block, "motion_valid"),
            f"inner/g{i}/layers/conv2d": (block, "appearance_same"),
            f"inner/g{i}/layers/conv2d_1": (block, "appearance_valid"),
            f"inner/attn{i}/layers/conv2d": (block, "gate"),
        }
    return {f"{layer}/vars/{v}": (*path, name) for layer, path in layers.items()
            for v, name in enumerate(("kernel", "bias"))}


def is_keras(weights: Mapping) -> bool:
    """Whether `weights` are Keras `.weights.h5` paths (`…/vars/N`), not a PyTorch state dict."""
    return any("/vars/" in key for key in weights)


def keras_tscan_variables(weights: Mapping[str, np.ndarray], model_config) -> dict:
    """`{"params": …}` of `TSCAN.from_config(model_config)` from open-rppg's Keras weights
    `{"inner/d1/layers/conv2d/vars/0": array, …}` (float32 numpy arrays).

    Missing, unexpected or mis-shaped keys raise a ValueError naming the h5 path; shapes are
    those of the model's own initialisation (`model_config.frame_size` fixes `dense`'s input).
    """
    model = TSCAN.from_config(model_config)
    frame_size = int(model_config.frame_size)
    expected = _init_shapes(model, frame_size)["params"]
    paths = _keras_paths()
    unexpected = sorted(set(weights) - set(paths))
    if unexpected:
        raise ValueError(
            f"Keras TS-CAN weights have unexpected keys {unexpected[:8]}"
            f"{' …' if len(unexpected) > 8 else ''} (a different model?)")
    params: dict = {}
    for key, path in paths.items():
        want = expected
        for name in path:
            want = want[name]
        if key not in weights:
            raise ValueError(f"Keras TS-CAN weights have no key {key!r} "
                             f"(expected shape {tuple(want.shape)})")
        value = np.asarray(weights[key], dtype=np.float32)
        if value.shape != tuple(want.shape):
            raise ValueError(f"Keras TS-CAN weights key {key!r} has shape {value.shape}, the "
                             f"model (model.frame_size={frame_size}) expects {tuple(want.shape)}")
        node = params
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    variables = {"params": params}
    _check_against_init(variables, model, frame_size)
    return variables


def _init_shapes(model: TSCAN, frame_size: int) -> dict:
    frames = jax.ShapeDtypeStruct(
        (1, model.frame_depth, frame_size, frame_size, RAW_CHANNELS), jnp.float32)
    return nn.unbox(jax.eval_shape(
        lambda x: model.init(jax.random.key(0), x, train=False), frames))


def _check_against_init(variables: dict, model: TSCAN, frame_size: int) -> None:
    expected = _init_shapes(model, frame_size)
    if jax.tree.structure(expected) != jax.tree.structure(variables):
        raise ValueError(
            "converted TS-CAN variables do not match the model's structure: "
            f"expected {jax.tree.structure(expected)}, got {jax.tree.structure(variables)}"
        )
    for (path, want), got in zip(jax.tree_util.tree_leaves_with_path(expected),
                                 jax.tree.leaves(variables)):
        if tuple(want.shape) != got.shape:
            raise ValueError(
                f"converted TS-CAN variable {jax.tree_util.keystr(path)} has shape {got.shape}, "
                f"the model expects {tuple(want.shape)}"
            )
