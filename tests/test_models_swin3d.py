"""Swin backbone pieces: patch embedding, patch merging, drop path, remat, backbone shapes."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from ienet_jax.models.swin3d import (
    BlockOptions,
    DropPath,
    PatchEmbed,
    PatchMerging,
    SwinStage,
    SwinTransformer3D,
)


def options(**overrides) -> BlockOptions:
    """The reference's block options (configs/ienet.py, context off), with `overrides`."""
    return BlockOptions(**dict(dict(window=(2, 7, 7), mlp_ratio=4.0, qkv_bias=True, dropout=0.0,
                                    attn_dropout=0.0, context=False, dilations=(1, 3, 5),
                                    attention="einsum", conv_impl="auto"), **overrides))


def test_patch_embed_pads_at_the_end_like_a_strided_conv():
    module = PatchEmbed(dim=5, patch=(2, 4, 4), opts=options())
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 5, 9, 8, 3))  # T, H not multiples
    variables = nn.unbox(module.init(jax.random.PRNGKey(1), x))
    out = module.apply(variables, x)
    assert out.shape == (1, 3, 3, 2, 5)
    xp = jnp.pad(x, ((0, 0), (0, 1), (0, 3), (0, 0), (0, 0)))
    want = jax.lax.conv_general_dilated(
        xp, variables["params"]["kernel"], (2, 4, 4), "VALID",
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"), precision="highest",
    ) + variables["params"]["bias"]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_patch_merging_phase_order_and_odd_sizes():
    module = PatchMerging(features=2, opts=options())
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 2, 3, 4, 3))  # odd H is padded
    variables = nn.unbox(module.init(jax.random.PRNGKey(1), x))
    out = module.apply(variables, x)
    assert out.shape == (1, 2, 2, 2, 2)
    xp = np.pad(np.asarray(x), ((0, 0), (0, 0), (0, 1), (0, 0), (0, 0)))
    # Output token (h=1, w=0) gathers input (2,0), (3,0), (2,1), (3,1) in that order.
    cat = np.concatenate([xp[0, 0, 2, 0], xp[0, 0, 3, 0], xp[0, 0, 2, 1], xp[0, 0, 3, 1]])
    norm = variables["params"]["norm"]
    cat = (cat - cat.mean()) / np.sqrt(cat.var() + 1e-5) * norm["scale"] + norm["bias"]
    want = cat @ variables["params"]["reduction"]["kernel"]
    np.testing.assert_allclose(out[0, 0, 1, 0], want, rtol=1e-5, atol=1e-5)


def test_drop_path_drops_whole_examples_and_rescales():
    x = jnp.ones((64, 3, 2))
    out = DropPath(0.5).apply({}, x, train=True, rngs={"drop_path": jax.random.PRNGKey(0)})
    per_example = np.asarray(out).reshape(64, -1)
    assert set(np.unique(per_example)) <= {0.0, 2.0}
    assert np.all(per_example.min(1) == per_example.max(1))
    assert 10 < np.count_nonzero(per_example[:, 0]) < 54
    np.testing.assert_array_equal(DropPath(0.5).apply({}, x, train=False), x)


def test_remat_gives_same_values_and_gradients():
    opts = options(window=(2, 4, 4))
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 6, 6, 6))
    plain = SwinStage(6, 2, 2, (0.0, 0.0), None, False, opts)
    remat = SwinStage(6, 2, 2, (0.0, 0.0), None, True, opts)
    variables = nn.unbox(plain.init(jax.random.PRNGKey(1), x, False))

    def grads(module):
        def loss(params, x):
            y = module.apply({**variables, "params": params}, x, False)
            return jnp.sum(jnp.sin(y))

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(variables["params"], x)

    (v1, g1), (v2, g2) = grads(plain), grads(remat)
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_backbone_shapes_and_intermediates():
    model = SwinTransformer3D(patch=(2, 4, 4), dims=(6, 12), depths=(1, 1), heads=(1, 2),
                              drop_path=0.0, remat=False, opts=options(window=(2, 4, 4)))
    x = jnp.ones((1, 8, 16, 16, 1))
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    out, state = jax.eval_shape(
        lambda v: model.apply(v, x, train=False, mutable=["intermediates"]), variables
    )
    assert out.shape == (1, 8, 2, 2, 12)  # T restored by the temporal upsampling
    inter = state["intermediates"]
    assert inter["patch_embed_out"][0].shape == (1, 4, 4, 4, 6)
    assert inter["stage_0_out"][0].shape == (1, 4, 2, 2, 12)
    params = nn.unbox(variables["params"])
    assert params["stage_0"]["block_0"]["attn"]["relative_position_bias_table"].shape == (147, 1)
    assert "merge" in params["stage_0"] and "merge" not in params["stage_1"]
