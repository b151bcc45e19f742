"""MDEF fusion: the reference l1_mean formula, and per-example l2_mean / linf variants."""

import numpy as np
import pytest

from ienet_jax.models.fusion import mdef


def reference_l1_mean(rgb, nir, eps=1e-5):
    """The published formula in the reference layout `B, C, T, H, W`."""
    s_r, s_n = np.abs(rgb).mean(axis=(3, 4), keepdims=True), np.abs(nir).mean(axis=(3, 4),
                                                                              keepdims=True)
    a_r = np.exp(s_r) / (np.exp(s_r) + np.exp(s_n) + eps)
    a_n = np.exp(s_n) / (np.exp(s_r) + np.exp(s_n) + eps)
    c = rgb.shape[1]
    c_r, c_n = np.abs(rgb).sum(axis=1, keepdims=True) / c, np.abs(nir).sum(axis=1,
                                                                           keepdims=True) / c
    b_r = np.exp(c_r) / (np.exp(c_r) + np.exp(c_n) + eps)
    b_n = np.exp(c_n) / (np.exp(c_r) + np.exp(c_n) + eps)
    return (a_r * rgb + a_n * nir) + (b_r * rgb + b_n * nir)


@pytest.fixture
def maps():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((2, 6, 3, 4, 5)).astype(np.float32) for _ in range(2)]


def test_l1_mean_matches_reference(maps):
    rgb, nir = maps  # [B, T, H, W, C]
    got = np.asarray(mdef(rgb, nir, "l1_mean"))
    want = reference_l1_mean(*(np.moveaxis(m, -1, 1).astype(np.float64) for m in maps))
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["l1_mean", "l2_mean", "linf"])
def test_fusion_is_per_example(maps, kind):
    rgb, nir = maps
    whole = np.asarray(mdef(rgb, nir, kind))
    for b in range(2):
        np.testing.assert_allclose(whole[b:b + 1], mdef(rgb[b:b + 1], nir[b:b + 1], kind),
                                   rtol=1e-6)


def test_variants_differ_and_equal_inputs_are_fixed_points(maps):
    rgb, nir = maps
    assert not np.allclose(mdef(rgb, nir, "l2_mean"), mdef(rgb, nir, "l1_mean"))
    # Identical modalities: the weights sum to 1 - O(eps) per term, so fused ≈ 2 F.
    np.testing.assert_allclose(mdef(rgb, rgb, "linf"), 2 * rgb, rtol=1e-4, atol=1e-4)


def test_errors(maps):
    rgb, nir = maps
    with pytest.raises(ValueError, match="model.fusion"):
        mdef(rgb, nir, "max")
    with pytest.raises(ValueError, match="differ"):
        mdef(rgb, nir[:, :3], "l1_mean")
