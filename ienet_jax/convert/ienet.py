"""Reference IENet state dicts (PyTorch layout) → Flax variables for `IENet`.

Handles the reference fusion model (`RGB_feature_extraction.`, `NIR_feature_extraction.`,
`rPPG_net.dense7.` keys) and the reference HR network (the fusion model under
`rPPG_model.` plus FEE layers `conv1/bn1/conv2/bn2` under whatever prefix they carry,
converted by `ienet_jax.convert.fee.fee_variables`).

Conversion walks the Flax variable tree the model expects (`jax.eval_shape` of its
init), so the result has exactly that structure; every leaf names the reference key it
comes from. Layout changes: Linear `(out, in)` → `(in, out)`; ConvNd
`(out, in, *k)` → `(*k, in, out)`; the 1×1×1 head conv → a Dense kernel; the attention's
Linears head-major (`HEAD_MAJOR`, a reshape): `qkv` `(3·C, C)` → `[C, 3, heads, C/heads]`
(bias `[3, heads, C/heads]`), `proj` `(C, C)` → `[heads, C/heads, C]`. Of the three
context-enhancement modules the reference stores per block (`context_enhance1/2/3`),
the one whose width matches the block is used (as the reference chooses it); the others
are dropped. A NIR model with fewer input channels than the checkpoint (1 vs the
reference's 3 identical channels) gets the patch-embedding kernel summed over them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import linen as nn
from flax import traverse_util

from ienet_jax.models.attention import relative_position_index

BACKBONES = {"rgb": "RGB_feature_extraction.", "nir": "NIR_feature_extraction."}
HEAD = "rPPG_net.dense7."
# Flax modules whose variables are the reference's (transposed) reshaped to head-major axes
# (`ienet_jax.models.attention`: tensor parallelism splits them by heads).
HEAD_MAJOR = ("qkv", "proj")
HR_MODEL_PREFIX = "rPPG_model."
LEAF_NAMES = {
    "kernel": "weight", "scale": "weight", "bias": "bias",
    "mean": "running_mean", "var": "running_var",
}
# Reference keys that carry no Flax variable (verified or legitimately unused).
IGNORED = (
    re.compile(r".*num_batches_tracked$"),
    re.compile(r".*relative_position_index$"),
    re.compile(r".*\.context_enhance\d+\..*"),
)


def expected_variables(model, model_config) -> dict:
    """Abstract (shape/dtype) unboxed variables of `model` as `model.init` would create them."""
    from ienet_jax.models import contract

    frame = model_config.frame_size
    h, w = (frame, frame) if isinstance(frame, int) else tuple(frame)
    t = model_config.clip_length
    inputs = [jax.ShapeDtypeStruct((1, t, h, w, c), jnp.float32)
              for c in contract.get(model_config).channels(model_config)]
    shapes = jax.eval_shape(
        lambda *frames: model.init(jax.random.PRNGKey(0), *frames, train=False), *inputs
    )
    return nn.unbox(dict(shapes))


def _layout(ref: np.ndarray, leaf: str) -> np.ndarray:
    """PyTorch layout → Flax layout for one tensor."""
    if leaf != "kernel":
        return ref
    if ref.ndim == 2:
        return ref.T
    return np.transpose(ref, (*range(2, ref.ndim), 1, 0))


def _context_module(state_dict, prefix: str, channels: int) -> str:
    """`prefix + "context_enhanceK."` whose group width is `channels` (reference: by width)."""
    k = 1
    while (key := f"{prefix}context_enhance{k}.conv1.weight") in state_dict:
        if state_dict[key].shape[0] == channels:
            return f"{prefix}context_enhance{k}."
        k += 1
    raise ValueError(
        f"checkpoint has no context-enhancement module of width {channels} under {prefix!r} "
        f"(keys {prefix}context_enhance<k>.conv1.weight); is model.context.enabled right?"
    )


def _reference_key(path: tuple[str, ...], state_dict, fusion_prefix: str, group_width) -> str:
    """The reference state-dict key of the Flax variable at `path` (collection stripped)."""
    leaf = LEAF_NAMES.get(path[-1], path[-1])
    if path[0] == "head":
        return f"{fusion_prefix}{HEAD}{leaf}"
    prefix = fusion_prefix + BACKBONES[path[0]]
    rest = "/".join(path[1:-1])
    if rest == "patch_embed":
        return f"{prefix}patch_embed.proj.{leaf}"
    if rest == "norm":
        return f"{prefix}norm.{leaf}"
    if rest == "upsample/conv":
        return f"{prefix}upsample.1.{leaf}"
    if rest == "upsample/bn":
        return f"{prefix}upsample.2.{leaf}"
    if m := re.fullmatch(r"stage_(\d+)/merge/(norm|reduction)", rest):
        return f"{prefix}layers.{m[1]}.downsample.{m[2]}.{leaf}"
    if m := re.fullmatch(r"stage_(\d+)/block_(\d+)/context/(conv|bn)_(\d+)", rest):
        block = f"{prefix}layers.{m[1]}.blocks.{m[2]}."
        module = _context_module(state_dict, block, group_width(int(m[1])))
        kind = "conv" if m[3] == "conv" else "norm"
        return f"{module}{kind}{int(m[4]) + 1}.{leaf}"
    if m := re.fullmatch(r"stage_(\d+)/block_(\d+)/(.+)", rest):
        inner = m[3].replace("/", ".")
        return f"{prefix}layers.{m[1]}.blocks.{m[2]}.{inner}.{leaf}"
    raise ValueError(f"no reference key known for Flax variable {'/'.join(path)}")


def _detect_prefixes(state_dict: Mapping[str, np.ndarray]) -> tuple[str, str | None]:
    """(fusion-model prefix, FEE prefix or None) of a reference state dict."""
    if not any(k.startswith(HR_MODEL_PREFIX) for k in state_dict):
        return "", None
    others = [k for k in state_dict if not k.startswith(HR_MODEL_PREFIX)]
    fee = [k[: -len("conv1.weight")] for k in others if k.endswith("conv1.weight")]
    if len(set(fee)) > 1:
        raise ValueError(f"checkpoint has several candidate FEE layer prefixes: {sorted(set(fee))}")
    return HR_MODEL_PREFIX, (fee[0] if fee else None)


def ienet_variables(state_dict: Mapping[str, np.ndarray], model_config) -> dict:
    """Flax variables `{"params", "batch_stats"}` for `IENet.from_config(model_config)`."""
    from ienet_jax.models.ienet import IENet

    model = IENet.from_config(model_config)
    expected = expected_variables(model, model_config)
    fusion_prefix, fee_prefix = _detect_prefixes(state_dict)
    consumed: set[str] = set()
    dims = model.dims

    def group_width(stage: int) -> int:
        return dims[stage] // len(model.dilations)

    flat = {}
    for collection in ("params", "batch_stats"):
        for path, spec in traverse_util.flatten_dict(expected.get(collection, {})).items():
            if path[0] == "fee":
                continue
            key = _reference_key(path, state_dict, fusion_prefix, group_width)
            if key not in state_dict:
                raise ValueError(
                    f"checkpoint is missing key {key!r} (needed for {collection}/{'/'.join(path)})"
                )
            value = _layout(np.asarray(state_dict[key], np.float32), path[-1])
            if path[:2] == ("nir", "patch_embed") and path[-1] == "kernel":
                value = _fold_channels(value, spec.shape, key)
            if value.shape != spec.shape:
                if value.size == int(np.prod(spec.shape)) and (path[0] == "head"
                                                               or path[-2] in HEAD_MAJOR):
                    value = value.reshape(spec.shape)
                else:
                    raise ValueError(
                        f"checkpoint key {key!r} has shape {np.shape(state_dict[key])}, which "
                        f"does not convert to {collection}/{'/'.join(path)} of shape {spec.shape}"
                    )
            flat[(collection, *path)] = value.astype(spec.dtype)
            consumed.add(key)

    variables = traverse_util.unflatten_dict(flat)
    variables.setdefault("batch_stats", {})
    if model.fee:
        if fee_prefix is None:
            raise ValueError(
                "model.fee.enabled=True but the checkpoint holds no FEE layers "
                "(expected keys like '<prefix>conv1.weight' next to 'rPPG_model.*')"
            )
        from ienet_jax.convert.fee import fee_variables

        fee = fee_variables(state_dict, fee_prefix)
        variables["params"]["fee"] = fee["params"]
        variables["batch_stats"]["fee"] = fee.get("batch_stats", {})
        consumed |= {
            k for k in state_dict
            if k.startswith(fee_prefix) and not k.startswith(HR_MODEL_PREFIX)
        }
    _check_relative_position_index(state_dict, model)
    # the backbone a one-modality model (model.modalities) drops, and MDEF has no weights
    dropped = tuple(BACKBONES[m] for m in BACKBONES if m not in model.modalities)
    leftover = sorted(
        k for k in state_dict
        if k not in consumed and not any(p.fullmatch(k) for p in IGNORED)
        and not k.removeprefix(HR_MODEL_PREFIX).startswith(dropped)
    )
    if fee_prefix is not None and not model.fee:
        hint = " (the checkpoint has FEE layers: set model.fee.enabled=True)"
    else:
        hint = ""
    if leftover:
        raise ValueError(
            f"checkpoint has {len(leftover)} unexpected keys{hint}, e.g. {leftover[:5]}"
        )
    _check_structure(variables, expected)
    return variables


def _fold_channels(kernel: np.ndarray, shape, key: str) -> np.ndarray:
    """Sum a patch-embedding kernel `[*k, Cin_ref, Co]` over input channels to `shape`."""
    if kernel.shape[-2] != shape[-2] and shape[-2] == 1:
        logging.info("folding %d NIR input channels of %s into one", kernel.shape[-2], key)
        return kernel.sum(axis=-2, keepdims=True)
    return kernel


def _check_relative_position_index(state_dict, model) -> None:
    want = relative_position_index(tuple(model.window))
    for key, value in state_dict.items():
        if key.endswith("relative_position_index") and not np.array_equal(np.asarray(value), want):
            raise ValueError(
                f"checkpoint key {key!r} does not match the index of model.window={model.window}"
            )


def _check_structure(variables: dict, expected: dict) -> None:
    """Raise unless `variables` has exactly the structure, shapes and dtypes of `expected`."""
    got = {k: v for k, v in variables.items() if v or k in expected}
    want = {k: v for k, v in expected.items() if k in ("params", "batch_stats")}
    got_flat = traverse_util.flatten_dict(got)
    want_flat = traverse_util.flatten_dict(want)
    missing = sorted("/".join(p) for p in set(want_flat) - set(got_flat))
    extra = sorted("/".join(p) for p in set(got_flat) - set(want_flat))
    if missing or extra:
        raise ValueError(f"converted variables differ from the model's: missing {missing[:5]}, "
                         f"unexpected {extra[:5]}")
    for path, spec in want_flat.items():
        value = got_flat[path]
        if tuple(value.shape) != tuple(spec.shape) or value.dtype != spec.dtype:
            raise ValueError(
                f"converted {'/'.join(path)} has {value.shape} {value.dtype}, the model expects "
                f"{spec.shape} {spec.dtype}"
            )
