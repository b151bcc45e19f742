"""Convolutions: "auto" follows the platform compiled for, not the process's back-end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ienet_jax.models import conv
from ienet_jax.models import platform as compile_target


@pytest.mark.parametrize("platform, nsp, expected", [
    ("cpu", 3, "scan"), ("cpu", 2, "taps"), ("tpu", 3, "xla"), ("gpu", 2, "xla")])
def test_auto_follows_target_platform(platform, nsp, expected):
    assert jax.default_backend() == "cpu"
    with compile_target.target(platform):
        assert conv._resolve("auto", nsp) == expected
    assert conv._resolve("auto", nsp) == ("scan" if nsp == 3 else "taps")  # restored
    with compile_target.target("tpu"):
        assert conv._resolve("taps", nsp) == "taps"  # an explicit choice is kept


def test_lowering_for_an_accelerator_uses_xla_convolution():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 4, 6, 6, 2)), jnp.float32)
    k = jnp.asarray(np.random.default_rng(1).standard_normal((3, 3, 3, 2, 5)), jnp.float32)
    pad = ((1, 1),) * 3

    def text(platform):
        with compile_target.target(platform):
            return jax.jit(lambda x, k: conv.conv(x, k, pad)).lower(x, k).as_text()

    assert "convolution" in text("tpu")
    assert "convolution" not in text(None)  # this CPU: the tap sum
    with compile_target.target("gpu"):
        native = conv.conv(x, k, pad)
    np.testing.assert_allclose(native, conv.conv(x, k, pad, impl="taps"), rtol=1e-4, atol=1e-4)
