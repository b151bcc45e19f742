"""Per-clip normalisation choices."""

import numpy as np
import pytest

from ienet_jax.data import normalize
from ienet_jax.data.tscan_inputs import tscan_inputs, tscan_label


def _example():
    rng = np.random.default_rng(0)
    return {
        "rgb": rng.integers(0, 256, (6, 4, 4, 3)).astype(np.uint8),
        "nir": rng.integers(0, 256, (6, 4, 4, 1)).astype(np.uint8),
        "bvp": rng.standard_normal(6).astype(np.float32),
        "hr": np.float32(70.0),
    }


def test_reference_and_standardize():
    ex = _example()
    out = normalize.normalize_example(ex, "reference")
    np.testing.assert_allclose(out["rgb"], (ex["rgb"] / 255.0 - 0.5) / 0.25, atol=1e-6)
    assert out["nir"].dtype == np.float32 and out["bvp"] is ex["bvp"]
    out = normalize.Normalize("standardize").map(ex)
    for name in ("rgb", "nir"):
        assert out[name].dtype == np.float32
        assert abs(out[name].mean()) < 1e-5 and out[name].std() == pytest.approx(1.0, abs=1e-4)
    assert normalize.normalize_example(ex, "none")["rgb"] is ex["rgb"]


def test_tscan():
    ex = _example()
    ex.pop("nir")
    out = normalize.normalize_example(ex, "tscan")
    assert out["rgb"].shape == (6, 4, 4, 6)
    np.testing.assert_allclose(out["rgb"], tscan_inputs(ex["rgb"], num_frames=6), rtol=1e-6)
    np.testing.assert_allclose(out["bvp"], tscan_label(ex["bvp"], num_samples=6), rtol=1e-6)
    d = np.diff(ex["bvp"])
    np.testing.assert_allclose(out["bvp"][:5], d / d.std(), rtol=1e-4)


def test_errors():
    with pytest.raises(ValueError, match="data.normalize='zscore'"):
        normalize.Normalize("zscore")
    with pytest.raises(ValueError, match="RGB only"):
        normalize.check_normalize("tscan", ("rgb", "nir"))
