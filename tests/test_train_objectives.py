"""Objectives: weighted loss terms, masking, model inputs, weight validation."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ienet_jax import losses
from ienet_jax.models import contract
from ienet_jax.train.objectives import check_weights, predicted_hr, weighted_loss


def batch(b=3, t=64, seed=0):
    rng = np.random.default_rng(seed)
    tt = np.arange(t) / 30.0
    hr = np.array([60.0, 90.0, 120.0])[:b]
    bvp = np.sin(2 * np.pi * hr[:, None] / 60 * tt).astype(np.float32)
    return {"rgb": jnp.asarray(rng.integers(0, 255, (b, t, 4, 4, 3), dtype=np.uint8)),
            "nir": jnp.asarray(rng.integers(0, 255, (b, t, 4, 4, 1), dtype=np.uint8)),
            "bvp": jnp.asarray(bvp), "hr": jnp.asarray(hr, jnp.float32),
            "fps": jnp.full((b,), 30.0), "mask": jnp.array([True, True, False])[:b]}


def test_weighted_sum_of_terms_with_mask():
    bt = batch()
    pred = bt["bvp"] + jnp.asarray(np.random.default_rng(1).normal(0, 0.5, bt["bvp"].shape))
    outputs = {"fused_rppg": pred}
    total, metrics = weighted_loss({"neg_pearson": 0.3, "spectral": 0.3}, "ienet", outputs, bt)
    np_ = losses.neg_pearson(pred[:2], bt["bvp"][:2])
    sp = losses.spectral_distance(pred[:2], bt["bvp"][:2], 30.0)
    np.testing.assert_allclose(metrics["neg_pearson"], np_, rtol=1e-5)
    np.testing.assert_allclose(total, 0.3 * np_ + 0.3 * sp, rtol=1e-5)


def test_pearson_band_reaches_the_neg_pearson_term():
    bt = batch()
    pred = bt["bvp"] + jnp.asarray(np.random.default_rng(1).normal(0, 0.5, bt["bvp"].shape))
    band = (0.6, 3.3)
    _, metrics = weighted_loss({"neg_pearson": 1.0}, "ienet", {"fused_rppg": pred}, bt, band)
    want = losses.neg_pearson(pred[:2], bt["bvp"][:2], fs=30.0, band_hz=band)
    np.testing.assert_allclose(metrics["neg_pearson"], want, rtol=1e-5)
    _, raw = weighted_loss({"neg_pearson": 1.0}, "ienet", {"fused_rppg": pred}, bt)
    assert float(metrics["neg_pearson"]) < float(raw["neg_pearson"])  # white noise filtered


def test_model_inputs_normalise_uint8_and_tscan_labels():
    bt = batch()
    rgb, nir = contract.get("ienet").inputs(bt)
    np.testing.assert_allclose(rgb, (np.asarray(bt["rgb"]) / 255 - 0.5) / 0.25, atol=1e-6)
    assert nir.shape[-1] == 1
    (frames,) = contract.get("tscan").inputs(bt)  # raw: the module applies model.input_prep
    np.testing.assert_array_equal(frames, bt["rgb"])
    prepared = jnp.zeros(bt["rgb"].shape[:-1] + (6,), jnp.bfloat16)  # data.normalize="tscan"
    (frames,) = contract.get("tscan").inputs(dict(bt, rgb=prepared))
    assert frames.shape == prepared.shape and frames.dtype == jnp.float32
    label = contract.get("tscan").label(bt)
    np.testing.assert_allclose(np.std(np.asarray(label)[:, :-1], axis=-1), 1.0, rtol=1e-3)


def test_predicted_hr_from_psd_peak():
    bt = batch()
    hr = predicted_hr("ienet", {"fused_rppg": bt["bvp"]}, bt["fps"])
    np.testing.assert_allclose(hr, bt["hr"], atol=1.0)


def test_check_weights():
    model = ml_collections.ConfigDict(dict(name="ienet", fee=dict(enabled=False)))
    loss = ml_collections.ConfigDict(dict(neg_pearson=0.3, spectral=0.0, l1_hr=0.0, mse=0.0))
    assert check_weights(loss, model) == {"neg_pearson": 0.3}
    loss.neg_pearson = 0.0
    with pytest.raises(ValueError, match="no non-zero weight"):
        check_weights(loss, model)
    loss.l1_hr = 0.4
    with pytest.raises(ValueError, match="model.fee.enabled"):
        check_weights(loss, model)


def test_streams_weight_supervises_each_backbone_pulse():
    bt = batch()
    rng = np.random.default_rng(2)
    noisy = {k: bt["bvp"] + jnp.asarray(rng.normal(0, s, bt["bvp"].shape), jnp.float32)
             for k, s in (("fused_rppg", 0.3), ("rgb_rppg", 0.6), ("nir_rppg", 2.0))}
    weights = {"neg_pearson": 0.3, "spectral": 0.3}
    base, _ = weighted_loss(weights, "ienet", noisy, bt)
    total, metrics = weighted_loss(dict(weights, streams=0.5), "ienet", noisy, bt)
    streams = sum(0.3 * losses.neg_pearson(noisy[k][:2], bt["bvp"][:2])
                  + 0.3 * losses.spectral_distance(noisy[k][:2], bt["bvp"][:2], 30.0)
                  for k in ("rgb_rppg", "nir_rppg"))
    np.testing.assert_allclose(metrics["streams"], streams, rtol=1e-5)
    np.testing.assert_allclose(total, base + 0.5 * streams, rtol=1e-5)


def test_check_weights_streams():
    model = ml_collections.ConfigDict(dict(name="ienet", modalities=("rgb", "nir"),
                                           fee=dict(enabled=False)))
    loss = ml_collections.ConfigDict(dict(neg_pearson=0.3, spectral=0.0, l1_hr=0.0, mse=0.0,
                                          streams=1.0))
    assert check_weights(loss, model) == {"neg_pearson": 0.3, "streams": 1.0}
    model.modalities = ("rgb",)  # one backbone: its pulse is the output, nothing to add
    assert check_weights(loss, model) == {"neg_pearson": 0.3}
    model.modalities = ("rgb", "nir")
    loss.neg_pearson, loss.l1_hr = 0.0, 0.4
    model.fee.enabled = True
    with pytest.raises(ValueError, match="pulse terms"):
        check_weights(loss, model)
