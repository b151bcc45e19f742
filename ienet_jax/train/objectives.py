"""Training objectives: model inputs from a batch, and the weighted loss of `train.loss`.

One table of loss terms; presets only change the weights (`configs/common.py`):

| term          | compares                                   | reference recipe            |
|---------------|--------------------------------------------|-----------------------------|
| `neg_pearson` | predicted rPPG vs label pulse `[B, T]`     | IENet stage 1: 0.3          |
| `spectral`    | their normalised bpm-grid PSDs             | IENet stage 1: 0.3          |
| `l1_hr`       | predicted HR vs label HR `[B]` (bpm)       | IENet stage 2: 0.4          |
| `mse`         | predicted rPPG vs label pulse              | TS-CAN: 1.0                 |

`train.loss.streams` (deep supervision, a DEVIATION from the reference, default 0): each of
the contract's `streams` (IENet: `rgb_rppg`, `nir_rppg`, every backbone's own pulse before
the fusion) gets the configured rPPG terms (`neg_pearson`, `spectral`, `mse`) too, at
`streams × weight` each; its metric `streams` is their sum over streams, unweighted by
`streams`. A fused model whose loss sees only the fused pulse can let one backbone drift
(the README's accuracy section has the measurement).

The predicted rPPG, its label and the model inputs come from the model's contract
(`ienet_jax.models.contract`: IENet's `fused_rppg`; TS-CAN's `rppg`, a BVP derivative
compared with the difference-normalised label). Batches are the input pipeline's dicts: `rgb`
`[B, T, H, W, 3]` (uint8 → normalised here, on device; float → used as is), `nir`
`[B, T, H, W, 1]`, `bvp` `[B, T]`, `hr` `[B]` bpm, `fps` `[B]` Hz, optional `mask` `[B]`.
"""

from __future__ import annotations

import jax.numpy as jnp
from absl import logging

from ienet_jax import losses
from ienet_jax.models import contract
from ienet_jax.signal.spectrum import bpm_grid, hard_gate_hr, normalized_psd

TERMS = ("neg_pearson", "spectral", "l1_hr", "mse")
PULSE_TERMS = ("neg_pearson", "spectral", "mse")  # the terms comparing a pulse `[B, T]`


def predicted_hr(model_name: str, outputs: dict, fps: jnp.ndarray) -> jnp.ndarray:
    """Heart rate `[B]` (bpm): the model's own HR output when present, else the PSD peak of
    the rPPG (integrated first when it is a derivative)."""
    if "hr" in outputs:
        return outputs["hr"]
    model = contract.get(model_name)
    signal = outputs[model.output]
    if model.derivative:
        signal = jnp.cumsum(signal, axis=-1)
    bpm = jnp.asarray(bpm_grid())
    return hard_gate_hr(normalized_psd(signal, fps, bpm, 1e-8), bpm)


def check_weights(loss_config, model_config) -> dict[str, float]:
    """`{term: weight}` of the non-zero weights in `train.loss`, validated against the model."""
    weights = {t: float(loss_config[t]) for t in TERMS if float(loss_config[t]) != 0.0}
    if not weights:
        raise ValueError(f"config section train.loss has no non-zero weight among {TERMS}")
    model = contract.get(model_config)
    if "l1_hr" in weights and not model.has_hr(model_config):
        raise ValueError("config key train.loss.l1_hr needs an HR output: set "
                         "model.fee.enabled=True (IENet stage 2)")
    for term in weights:
        if term not in model.losses:
            raise ValueError(f"config key train.loss.{term}: model.name={model.name!r} "
                             f"supports the terms {model.losses}")
    streams = float(loss_config.get("streams", 0.0))
    if streams and not model.streams:  # e.g. IENet with one modality: the output is the stream
        logging.info("train.loss.streams=%s: model.name=%r with these inputs has one stream, "
                     "whose pulse is the output: nothing more to supervise", streams,
                     model.name)
    elif streams:
        if not any(t in weights for t in PULSE_TERMS):
            raise ValueError(f"config key train.loss.streams={streams} weights the pulse "
                             f"terms {PULSE_TERMS}, but all of them are 0")
        weights["streams"] = streams
    return weights


def weighted_loss(weights: dict[str, float], model_name: str, outputs: dict,
                  batch: dict, pearson_band_hz=()) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """`(Σ weight · term, {term: value, "loss": total})`, each a batch mean (masked rows out);
    `weights["streams"]` (`check_weights`) adds the pulse terms of the contract's streams.

    `pearson_band_hz`: `(lo, hi)` Hz limits `neg_pearson` to that band (`train.pearson_band_hz`;
    empty = the raw signals, as the reference).
    """
    mask = batch.get("mask")
    model = contract.get(model_name)
    pred = outputs[model.output]
    n = pred.shape[0]
    w = jnp.ones((n,), jnp.float32) if mask is None else mask.astype(jnp.float32)
    denom = jnp.maximum(jnp.sum(w), 1.0)
    label = model.label(batch)
    fps = batch["fps"].astype(jnp.float32)

    def pulse_terms(signal):
        return {
            "neg_pearson": lambda: losses.neg_pearson(signal, label, fs=fps,
                                                      band_hz=pearson_band_hz,
                                                      reduction="none"),
            "spectral": lambda: losses.spectral_distance(signal, label, fps,
                                                         reduction="none"),
            "mse": lambda: losses.mse(signal, label, reduction="none"),
        }

    per_sample = dict(pulse_terms(pred), l1_hr=lambda: losses.l1_hr(
        outputs["hr"], batch["hr"].astype(jnp.float32), reduction="none"))

    def mean(values):
        return jnp.sum(values * w) / denom

    metrics = {}
    total = jnp.zeros([], jnp.float32)
    streams = weights.get("streams", 0.0)
    for term, weight in weights.items():
        if term == "streams":
            continue
        metrics[term] = mean(per_sample[term]())
        total = total + weight * metrics[term]
    if streams:
        metrics["streams"] = jnp.zeros([], jnp.float32)
        for key in model.streams:
            terms = pulse_terms(outputs[key])
            for term, weight in weights.items():
                if term in terms:
                    value = mean(terms[term]())
                    metrics["streams"] = metrics["streams"] + weight * value
        total = total + streams * metrics["streams"]
    metrics["loss"] = total
    return total, metrics
