"""Context enhancement against an independent XLA convolution in the reference layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from ienet_jax.models.context import ContextEnhancement

REFERENCE_PADDING = {1: (1, 1, 1), 3: (2, 3, 3), 5: (3, 5, 5)}


def reference(x_ncdhw, params, stats, dilations):
    """Per group: Conv3d(k (2,3,3), dilation d, padding p) → BN (eval) → drop the last frame."""
    groups = np.split(x_ncdhw, len(dilations), axis=1)
    outs = []
    for g, (part, d) in enumerate(zip(groups, dilations)):
        w = np.transpose(np.asarray(params[f"conv_{g}"]["kernel"]), (4, 3, 0, 1, 2))  # OIDHW
        y = jax.lax.conv_general_dilated(
            part, w, (1, 1, 1), [(p, p) for p in REFERENCE_PADDING[d]], rhs_dilation=(d, d, d),
            dimension_numbers=("NCDHW", "OIDHW", "NCDHW"), precision="highest",
        ) + np.asarray(params[f"conv_{g}"]["bias"])[None, :, None, None, None]
        bn, st = params[f"bn_{g}"], stats[f"bn_{g}"]
        shape = (1, -1, 1, 1, 1)
        y = (y - st["mean"].reshape(shape)) / np.sqrt(st["var"].reshape(shape) + 1e-5)
        y = y * bn["scale"].reshape(shape) + bn["bias"].reshape(shape)
        outs.append(y[:, :, :-1])
    return np.concatenate(outs, axis=1)


@pytest.mark.parametrize("impl", ["taps", "scan"])
def test_matches_reference_convolutions(impl):
    module = ContextEnhancement((1, 3, 5), conv_impl=impl)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 7, 7, 9))
    variables = nn.unbox(module.init(jax.random.PRNGKey(1), x, train=False))
    rng = np.random.default_rng(0)
    stats = jax.tree.map(lambda s: (rng.random(s.shape) + 0.5).astype(np.float32),
                         variables["batch_stats"])
    params = jax.tree.map(lambda p: p + 0.1 * rng.standard_normal(p.shape).astype(np.float32),
                          variables["params"])
    out = module.apply({"params": params, "batch_stats": stats}, x, train=False)
    assert out.shape == x.shape
    want = reference(np.moveaxis(np.asarray(x), -1, 1), params, stats, (1, 3, 5))
    np.testing.assert_allclose(np.moveaxis(np.asarray(out), -1, 1), want, rtol=1e-4, atol=1e-4)


def test_train_mode_updates_batch_stats_and_checks_groups():
    module = ContextEnhancement((1, 3, 5), conv_impl="auto")
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 5, 5, 6)) + 3.0
    variables = module.init(jax.random.PRNGKey(1), x, train=False)
    _, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
    assert not np.allclose(updates["batch_stats"]["bn_0"]["mean"], 0.0)
    with pytest.raises(ValueError, match="context.dilations"):
        module.init(jax.random.PRNGKey(1), jnp.zeros((1, 4, 5, 5, 7)), train=False)


def test_residual_option_starts_as_identity_and_adds_the_context():
    """`residual=True`: x + CE(x) with zero BN scales, so the initialised module is the
    identity; with trained (non-zero) parameters it adds exactly the plain module's output."""
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 6, 7, 7, 9))
    plain = ContextEnhancement((1, 3, 5), conv_impl="taps")
    res = ContextEnhancement((1, 3, 5), conv_impl="taps", residual=True)
    variables = nn.unbox(res.init(jax.random.PRNGKey(1), x, train=False))
    np.testing.assert_array_equal(res.apply(variables, x, train=False), x)
    assert all(float(jnp.abs(v["scale"]).max()) == 0 for k, v in variables["params"].items()
               if k.startswith("bn_"))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda p: p + 0.1 * rng.standard_normal(p.shape).astype(np.float32),
                          variables["params"])
    trained = {"params": params, "batch_stats": variables["batch_stats"]}
    np.testing.assert_allclose(res.apply(trained, x, train=False),
                               x + plain.apply(trained, x, train=False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lag0", [False, True])
def test_temporal_taps_read_the_frames_the_docstring_names(lag0):
    """Reference padding: the dilation-5 group at frame t reads t - 3 and t + 2, never t;
    `lag0=True`: it reads t - 5 and t (no frame after t)."""
    module = ContextEnhancement((1, 3, 5), conv_impl="taps", lag0=lag0)
    x = jnp.zeros((1, 12, 1, 1, 3))
    variables = nn.unbox(module.init(jax.random.PRNGKey(1), x, train=False))
    t = 6

    def reads(frame):  # output frames of the dilation-5 group (channel 2) moved by `frame`
        dx = x.at[:, frame].set(1.0)
        dy = module.apply(variables, dx, train=False) - module.apply(variables, x, train=False)
        return np.flatnonzero(np.abs(np.asarray(dy[0, :, 0, 0, 2])) > 1e-6)

    moved = {f for f in range(12) if t in reads(f)}
    assert moved == ({t - 5, t} if lag0 else {t - 3, t + 2})
