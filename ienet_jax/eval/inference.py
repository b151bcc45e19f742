"""A trained model from its checkpoint, and jitted, batched inference over clips.

`load_model_config(checkpoint, config=None)` finds the `model` section: the given config,
else the checkpoint's own (`config.json` of a trainer workdir, `model_config.json` of a
converted reference directory). `ClipModel(model_config, variables)` runs the model on
uint8 clips in fixed-size batches: one compilation per clip shape, the last batch padded.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from ienet_jax.models import build, contract


def find_workdir_config(path: Path) -> Path | None:
    for candidate in (path, *path.parents[:3]):
        if (candidate / "config.json").is_file():
            return candidate / "config.json"
    return None


def load_model_config(checkpoint: str | Path,
                      config: ml_collections.ConfigDict | None = None) -> ml_collections.ConfigDict:
    """The `model` config section for `checkpoint` (see the module docstring)."""
    if config is not None:
        return config.model if "model" in config else config
    path = Path(checkpoint).absolute()
    from ienet_jax.convert.checkpoint import MODEL_CONFIG, restore_model_config

    if (path / MODEL_CONFIG).is_file():
        return contract.upgrade(restore_model_config(path), str(path / MODEL_CONFIG))
    found = find_workdir_config(path)
    if found is None:
        raise ValueError(f"checkpoint {str(path)!r}: no config.json (trainer workdir) or "
                         f"{MODEL_CONFIG} (converted checkpoint) found; pass --config")
    return contract.upgrade(ml_collections.ConfigDict(json.loads(found.read_text())["model"]),
                            str(found))


def load(checkpoint: str | Path, config: ml_collections.ConfigDict | None = None,
         batch_size: int = 8) -> ClipModel:
    """`ClipModel` from a trainer workdir / checkpoint folder or a converted reference dir."""
    from ienet_jax.train import checkpoint as checkpoint_lib
    from ienet_jax.train.state import abstract_variables

    model_config = load_model_config(checkpoint, config)
    variables = checkpoint_lib.load_variables(checkpoint)
    variables = checkpoint_lib.upgrade_layout(
        variables, abstract_variables(build(model_config), model_config), str(checkpoint))
    return ClipModel(model_config, variables, batch_size=batch_size)


class ClipModel:
    """Inference of a model on clips `[N, T, S, S, C]` uint8 (see `__call__`)."""

    def __init__(self, model_config: ml_collections.ConfigDict, variables: dict,
                 batch_size: int = 8):
        self.config = model_config
        self.name = str(model_config.name)
        self.clip_length = int(model_config.clip_length)
        self.frame_size = int(model_config.frame_size)
        self.contract = contract.get(model_config)
        self.needs_nir = "nir" in self.contract.modalities
        self.has_fee = self.contract.has_hr(model_config)
        self.derivative = self.contract.derivative  # e.g. TS-CAN: the BVP's derivative
        self.input_fps = self.contract.input_fps(model_config)  # None: the data's own rate
        self.box_scale = self.contract.box_scale(model_config)  # None: as the data's crops
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = build(model_config)
        self.variables = {k: v for k, v in variables.items() if k in ("params", "batch_stats")
                          and len(jax.tree.leaves(v))}
        self._forward = jax.jit(self._apply)
        head = self.contract.hr_head(model_config)
        self._hr_head = None
        if head is not None:
            module, name = head
            head_vars = {k: v[name] for k, v in self.variables.items() if name in v}
            self._hr_head = jax.jit(lambda x, fs: module.apply(head_vars, x, fs, train=False)["hr"])

    def _apply(self, variables, batch):
        outputs = self.model.apply(variables, *self.contract.inputs(batch), train=False,
                                   **self.contract.kwargs(batch))
        out = {"rppg": outputs[self.contract.output].astype(jnp.float32)}
        if "hr" in outputs:
            out["hr"] = outputs["hr"].astype(jnp.float32)
        return out

    def series_hr(self, pulse: np.ndarray, fps: float) -> float | None:
        """The model's heart-rate head (IENet: FEE) on one pulse series `[N]` of any length at
        `fps` Hz, e.g. a window's stitched output (bpm); None for a model without one."""
        if self._hr_head is None:
            return None
        x = jnp.asarray(np.asarray(pulse, np.float32)[None])
        return float(self._hr_head(x, jnp.float32(fps))[0])

    def check_clips(self, rgb: np.ndarray, nir: np.ndarray | None, where: str) -> None:
        t, s = self.clip_length, self.frame_size
        if rgb.ndim != 5 or rgb.shape[1:4] != (t, s, s):
            raise ValueError(f"{where}: RGB clips have shape {rgb.shape}; the model "
                             f"(model.clip_length={t}, model.frame_size={s}) expects "
                             f"[N, {t}, {s}, {s}, 3]")
        if self.needs_nir and nir is None:
            raise ValueError(f"{where}: IENet needs NIR clips (the data has none)")
        if self.needs_nir and nir.shape[:4] != rgb.shape[:4]:
            raise ValueError(f"{where}: NIR clips {nir.shape} do not match RGB {rgb.shape}")

    def __call__(self, rgb: np.ndarray, nir: np.ndarray | None = None,
                 where: str = "clips", fps: float | np.ndarray | None = None,
                 raw: bool = False) -> dict[str, np.ndarray] | np.ndarray:
        """`rgb` `[N, T, S, S, 3]`, `nir` `[N, T, S, S, 1]` uint8 → `rppg` `[N, T]` (a BVP
        derivative for TS-CAN) and, with an FEE head, `hr` `[N]` bpm (numpy float32).

        `fps` (Hz, one value or one per clip) is the clips' frame rate, which the FEE
        spectrum needs; `None` means the configured `model.fps`. `raw=True`: only the
        model's pulse output `[N, T]` (the network's own output quantity)."""
        self.check_clips(rgb, nir, where)
        n, b = len(rgb), self.batch_size
        if fps is not None:
            fps = np.broadcast_to(np.asarray(fps, np.float32), (n,))
            if not np.all(fps > 0):
                raise ValueError(f"{where}: frame rates must be > 0, got {fps}")
        outs: dict[str, list] = {}
        for i in range(0, n, b):
            batch = {"rgb": _padded(rgb[i:i + b], b)}
            if fps is not None:  # padding rows get 1 Hz: finite, discarded
                batch["fps"] = _padded(fps[i:i + b], b, fill=1.0)
            if self.needs_nir:
                batch["nir"] = _padded(nir[i:i + b], b)
            result = jax.device_get(self._forward(self.variables, batch))
            for k, v in result.items():
                outs.setdefault(k, []).append(np.asarray(v)[:min(b, n - i)])
        logging.info("inference: %d clips of %s in batches of %d", n, where, b)
        result = {k: np.concatenate(v) for k, v in outs.items()}
        return result["rppg"] if raw else result


def _padded(x: np.ndarray, size: int, fill: float = 0) -> np.ndarray:
    """`x` `[n, ...]` padded with `fill` to `[size, ...]` (a fixed batch shape: no recompiles)."""
    if len(x) == size:
        return x
    return np.concatenate([x, np.full((size - len(x),) + x.shape[1:], fill, x.dtype)])
