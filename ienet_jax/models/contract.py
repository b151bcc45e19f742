"""The model contract: all the trainer, evaluator, predictor and converter ask of a model family.

One `ModelContract` per family, found by `model.name` (`get`): the trainer, `evaluate`,
`predict` and `convert` call its methods and never compare model names. Adding a model is
one file defining a subclass (its flax module built from the `model` section, its inputs
and outputs) plus one line in `FAMILIES`, or a `register(contract)` call.
`check(section, TABLE)` is the one table-driven validation of a `model` section.
"""

from __future__ import annotations

import importlib

import jax.numpy as jnp

# model.name → the module defining (and registering) its contract; imported on first use
FAMILIES = {"ienet": "ienet_jax.models.ienet", "tscan": "ienet_jax.models.tscan",
            "physnet": "ienet_jax.models.physnet"}
_REGISTRY: dict = {}


class ModelContract:
    """Defaults describe a model taking `rgb` frames and giving the pulse itself, no HR.

    Attributes: `name` (`model.name`), `modalities` (batch fields it reads, `rgb`/`nir`),
    `output` (key of the predicted pulse `[B, T]` in the outputs), `derivative` (that pulse
    is the BVP's first derivative: integrated for HR, compared with the difference-
    normalised label), `losses` (the `train.loss` terms it supports), `streams` (keys of
    further pulses `[B, T]` like `output`, one per input stream, that `train.loss.streams`
    supervises: IENet's per-modality rPPG).
    """

    name = ""
    modalities: tuple[str, ...] = ("rgb",)
    output = "rppg"
    derivative = False
    losses: tuple[str, ...] = ("neg_pearson", "spectral", "mse")
    streams: tuple[str, ...] = ()

    module = None  # the flax module class: `build` is its `from_config`
    # `model` keys (dotted for nested ones) added after checkpoints were written, with the
    # value that reproduces those checkpoints (filled in by `upgrade` when a saved config
    # lacks them)
    added_keys: dict = {}

    def configured(self, model_config) -> ModelContract:
        """The contract of this `model` section (`get` calls it): `self` unless the section
        changes what the family reads, e.g. IENet's `model.modalities`."""
        return self

    def build(self, model_config):
        """The flax module for a `model` section (validated; errors name the key)."""
        return self.module.from_config(model_config)

    def example_inputs(self, model_config, batch_size: int = 1) -> tuple:
        """Zero inputs shaped like one batch, for `model.init` (`channels` per input)."""
        t, s = int(model_config.clip_length), int(model_config.frame_size)
        return tuple(jnp.zeros((batch_size, t, s, s, c), jnp.float32)
                     for c in self.channels(model_config))

    def channels(self, model_config) -> tuple[int, ...]:
        return (3,) * len(self.modalities)

    def inputs(self, batch: dict) -> tuple:
        """Positional inputs from a batch: each modality, uint8 → reference-normalised."""
        from ienet_jax.data.normalize import normalize_reference

        for m in self.modalities:
            if m not in batch:
                raise ValueError(f"model.name={self.name!r} needs a {m!r} field in every batch "
                                 "(data.modalities)")
        return tuple(normalize_reference(batch[m]) if batch[m].dtype == jnp.uint8
                     else batch[m].astype(jnp.float32) for m in self.modalities)

    def kwargs(self, batch: dict) -> dict:  # keyword inputs from a batch
        return {}

    def label(self, batch: dict):  # the training label `[B, T]` of the predicted pulse
        return self.signal_label(batch["bvp"].astype(jnp.float32))

    def signal_label(self, bvp):  # the label of a BVP series `[..., N]` (numpy or JAX)
        return bvp

    def input_fps(self, model_config) -> float | None:
        """The frame rate (Hz) the model's inputs must have (`model.input_fps`; 0 or no such
        key: None, the data's own rate). Evaluate and predict resample frames to it."""
        rate = float(model_config.input_fps) if "input_fps" in model_config else 0.0
        return rate or None

    def box_scale(self, model_config) -> float | None:
        """Crop side / face box side of the model's training crops (`model.box_scale`; 0
        or no such key: None, as the data). Evaluate and predict crop frames to it."""
        scale = float(model_config.box_scale) if "box_scale" in model_config else 0.0
        return scale or None

    def has_hr(self, model_config) -> bool:  # outputs hold an `hr` `[B]` bpm (FEE head)
        return False

    def hr_head(self, model_config):
        """`(module, name)` of the model's heart-rate head, or None: a flax module mapping a
        pulse `[B, N]` of any length and its rate `fs` to `{"hr": [B], ...}` (`train=False`),
        whose variables are the model's `name` subtree. Evaluation runs it on a whole
        window's stitched pulse (`ClipModel.series_hr`)."""
        return None

    def convert(self, state_dict: dict, model_config) -> dict:
        """Flax variables from a reference (PyTorch) state dict."""
        raise ValueError(f"model.name={self.name!r} has no reference checkpoint converter")


def register(contract: ModelContract) -> ModelContract:
    _REGISTRY[contract.name] = contract
    return contract


def get(model) -> ModelContract:
    """The contract of a `model` section (`configured` by it) or a model name (the family's
    defaults)."""
    name = model if isinstance(model, str) else getattr(model, "name", None)
    if name not in _REGISTRY and name in FAMILIES:
        importlib.import_module(FAMILIES[name])
    if name not in _REGISTRY:
        names = tuple(dict.fromkeys([*FAMILIES, *_REGISTRY]))
        raise ValueError(f"config key model.name must be one of {names}, got {name!r}")
    return _REGISTRY[name] if isinstance(model, str) else _REGISTRY[name].configured(model)


def upgrade(model_config, where: str):
    """A saved `model` section with the keys its family added since (`added_keys`) filled
    in at the values that reproduce older checkpoints; one log line names them."""
    from absl import logging

    def parent(key):  # the section holding a dotted key, and the key's last part
        *path, leaf = key.split(".")
        node = model_config
        for part in path:
            node = node[part]
        return node, leaf

    missing = {k: v for k, v in get(model_config).added_keys.items()
               if parent(k)[1] not in parent(k)[0]}
    if missing:
        with model_config.unlocked():
            for key, value in missing.items():
                node, leaf = parent(key)
                node[leaf] = value
        logging.info("%s: model config written before %s existed: using %s", where,
                     ", ".join(missing), missing)
    return model_config


def check(section, table: dict, prefix: str = "model") -> dict:
    """`{key: value}` of `section` converted and checked by `table`
    (`{key: (convert, ok(value) -> bool, expected)}`; a nested table is a sub-section).

    A missing key or a failed check raises one ValueError naming `prefix.key`."""
    out = {}
    for key, rule in table.items():
        where = f"{prefix}.{key}"
        if key not in section:
            raise ValueError(f"config key {where} is missing")
        if isinstance(rule, dict):
            out[key] = check(section[key], rule, where)
            continue
        convert, ok, expected = rule
        raw = section[key]
        try:
            value = convert(raw)
            good = ok(value)
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ValueError(f"config key {where} must be {expected}, got {raw!r}")
        out[key] = value
    return out


# `model` keys that describe the model's data (read by the contract, evaluate and predict),
# not fields of its flax module
DATA_KEYS = ("name", "clip_length", "frame_size", "input_fps", "box_scale")


def module_fields(checked: dict) -> dict:
    """The checked `model` section (`check`) without `DATA_KEYS`: the module's fields."""
    return {k: v for k, v in checked.items() if k not in DATA_KEYS}


def ints(value) -> tuple[int, ...]:
    """An int or a sequence of ints → a tuple of ints."""
    return (int(value),) if isinstance(value, int) else tuple(int(v) for v in value)


def choice(*options):  # `check` rules
    return str, lambda v: v in options, f"one of {options}"


RATE = (float, lambda v: 0.0 <= v < 1.0, "a rate in [0, 1)")
POSITIVE = (int, lambda v: v > 0, "a positive int")
FLAG = (bool, lambda v: True, "a bool")
# model.input_fps: the rate the model was trained at (evaluate/predict resample to it)
INPUT_FPS = (float, lambda v: v >= 0, "a frame rate in Hz (0: the data's own rate)")
# model.box_scale: crop side / face box side of its training crops (evaluate/predict crop)
BOX_SCALE = (float, lambda v: v == 0 or v >= 0.5, "0 (as the data) or a crop/box ratio >= 0.5")
