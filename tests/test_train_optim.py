"""Optimiser: PyTorch-style coupled weight decay, step decay, freezing, accumulation."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ienet_jax.train.optim import make_optimizer, path_mask, schedule


def train_cfg(**kw):
    base = dict(learning_rate=0.1, lr_decay_every=0, lr_decay_factor=0.5, optimizer="adam",
                weight_decay=0.0, adam_b1=0.9, adam_b2=0.999, adam_eps=1e-8, grad_clip_norm=0.0,
                grad_accum=1, freeze_steps=0, freeze_pattern="^(?!fee/)")
    base.update(kw)
    return ml_collections.ConfigDict(base)


def torch_adam(p, grads, lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.Adam(weight_decay=wd) in numpy: the decay joins the gradient."""
    m = v = np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return p


def run(tx, params, grads):
    state = tx.init(params)
    history = []
    for g in grads:
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        history.append(params)
    return history, state


def test_coupled_weight_decay_matches_torch_adam():
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=5).astype(np.float32)
    grads = [rng.normal(size=5).astype(np.float32) for _ in range(4)]
    tx = make_optimizer(train_cfg(weight_decay=0.5), {"w": p0})
    history, _ = run(tx, {"w": jnp.asarray(p0)}, [{"w": jnp.asarray(g)} for g in grads])
    np.testing.assert_allclose(history[-1]["w"], torch_adam(p0, grads, 0.1, 0.5), rtol=1e-5)
    # decoupled (AdamW) differs: the check above can fail
    tx = make_optimizer(train_cfg(weight_decay=0.5, optimizer="adamw"), {"w": p0})
    history, _ = run(tx, {"w": jnp.asarray(p0)}, [{"w": jnp.asarray(g)} for g in grads])
    assert not np.allclose(history[-1]["w"], torch_adam(p0, grads, 0.1, 0.5), rtol=1e-3)


def test_step_decay_schedule():
    lr = schedule(train_cfg(learning_rate=1.0, lr_decay_every=10))
    assert [float(lr(s)) for s in (0, 9, 10, 19, 20)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    lr = schedule(train_cfg(learning_rate=1.0, lr_decay_every=10, grad_accum=2))
    assert float(lr(4)) == 1.0 and float(lr(5)) == 0.5  # counted in optimiser updates
    with pytest.raises(ValueError, match="train.learning_rate"):
        schedule(train_cfg(learning_rate=0.0))


def test_freeze_keeps_subtree_and_its_moments_for_k_steps():
    params = {"backbone": {"w": jnp.ones(3)}, "fee": {"w": jnp.ones(2)}}
    grads = [{"backbone": {"w": jnp.full(3, 0.5)}, "fee": {"w": jnp.full(2, -1.0)}}] * 4
    tx = make_optimizer(train_cfg(freeze_steps=2, weight_decay=0.1), params)
    history, state = run(tx, params, grads)
    for h in history[:2]:
        np.testing.assert_array_equal(h["backbone"]["w"], np.ones(3))
    assert not np.allclose(history[1]["fee"]["w"], 1.0)
    assert not np.allclose(history[2]["backbone"]["w"], 1.0)  # unfrozen after 2 updates
    # frozen leaves' moments only started at step 3: they equal 2 Adam steps' worth
    mu = jax.tree.leaves(state.inner, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
    adam = [s for s in mu if isinstance(s, optax.ScaleByAdamState)][0]
    g = 0.5 + 0.1 * np.asarray(history[1]["backbone"]["w"])  # coupled decay at step 3
    assert np.all(np.abs(adam.mu["backbone"]["w"]) < np.abs(g))  # not 4 steps' worth
    with pytest.raises(ValueError, match="freeze_pattern"):
        make_optimizer(train_cfg(freeze_steps=2, freeze_pattern="^nothing"), params)


def test_gradient_accumulation_updates_every_k_batches():
    params = {"w": jnp.ones(2)}
    grads = [{"w": jnp.array([1.0, -1.0])}, {"w": jnp.array([3.0, 1.0])}]
    history, _ = run(make_optimizer(train_cfg(grad_accum=2), params), params, grads)
    np.testing.assert_array_equal(history[0]["w"], np.ones(2))
    single, _ = run(make_optimizer(train_cfg(), params), params, [{"w": jnp.array([2.0, 0.0])}])
    np.testing.assert_allclose(history[1]["w"], single[0]["w"], rtol=1e-6)


def test_path_mask():
    mask = path_mask({"rgb": {"k": 1}, "fee": {"k": 2}}, "^(?!fee/)")
    assert mask == {"rgb": {"k": True}, "fee": {"k": False}}
