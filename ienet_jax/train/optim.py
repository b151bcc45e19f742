"""The optimiser and learning-rate schedule, built from the `train` config section.

The reference recipe is PyTorch's `Adam(lr, weight_decay=wd)` with `StepLR`: weight decay
there is COUPLED (an L2 term added to the gradient before Adam's moments), so the chain is

    clip_by_global_norm → add_decayed_weights(wd) → scale_by_adam → −lr(step)

with `lr(step) = learning_rate · decay_factor^floor(step / decay_every)` (StepLR at step
granularity). Options: gradient accumulation over `train.grad_accum` batches
(`optax.MultiSteps`) and freezing a parameter subtree for the first `train.freeze_steps`
steps (`freeze_for`). All step counts in config are TRAIN steps (batches).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


def schedule(train_config) -> optax.Schedule:
    """Step-decay schedule: `learning_rate · decay_factor^floor(step / decay_every)`.

    `step` counts optimiser updates (train steps / `grad_accum`). `decay_every=0`: constant.
    """
    lr = float(train_config.learning_rate)
    every = int(train_config.lr_decay_every) // max(int(train_config.grad_accum), 1)
    if lr <= 0:
        raise ValueError(f"config key train.learning_rate must be > 0, got {lr}")
    if every <= 0:
        return optax.constant_schedule(lr)
    return optax.exponential_decay(lr, transition_steps=every,
                                   decay_rate=float(train_config.lr_decay_factor),
                                   staircase=True)


class FreezeState(NamedTuple):
    count: jnp.ndarray  # optimiser updates so far, int32 []
    inner: Any


def freeze_for(inner: optax.GradientTransformation, mask: Any,
               num_updates: int) -> optax.GradientTransformation:
    """`inner`, except that leaves where `mask` is True get no update for `num_updates` updates.

    Mirrors PyTorch's `torch.no_grad()` around a sub-network: frozen parameters see a zero
    gradient (so they do not count in gradient clipping), get a zero update, and their
    optimiser-state leaves (Adam moments) stay as they were. Shared counters (Adam's step
    count, the schedule) keep running. `mask` is a pytree of bools shaped like the params.
    """

    def init(params):
        return FreezeState(jnp.zeros([], jnp.int32), inner.init(params))

    def update(updates, state, params=None):
        frozen = state.count < num_updates

        def zero(u, m):
            return jnp.where(frozen, jnp.zeros_like(u), u) if m else u

        updates = jax.tree.map(zero, updates, mask)
        new_updates, new_inner = inner.update(updates, state.inner, params)
        new_updates = jax.tree.map(zero, new_updates, mask)
        state_mask = optax.tree_map_params(inner, lambda _, m: m, new_inner, mask,
                                           transform_non_params=lambda _: False)
        new_inner = jax.tree.map(
            lambda new, old, m: jnp.where(frozen, old, new) if m else new,
            new_inner, state.inner, state_mask)
        return new_updates, FreezeState(state.count + 1, new_inner)

    return optax.GradientTransformation(init, update)


def path_mask(params: Any, pattern: str) -> Any:
    """Bools shaped like `params`: True where the '/'-joined key path matches `pattern`."""
    regex = re.compile(pattern)

    def one(path, _):
        name = "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
        return bool(regex.search(name))

    return jax.tree_util.tree_map_with_path(one, params)


def frozen_mask(train_config, params: Any) -> Any:
    """Bools shaped like `params`: True for the leaves `train.freeze_pattern` freezes for the
    first `train.freeze_steps` steps; None when nothing is frozen (`freeze_steps` = 0)."""
    if int(train_config.freeze_steps) <= 0:
        return None
    pattern = train_config.freeze_pattern
    mask = path_mask(params, pattern)
    if not any(jax.tree.leaves(mask)):
        raise ValueError(
            f"config key train.freeze_pattern={pattern!r} matches no parameter path "
            "(paths look like 'rgb/stage0/block0/attn/qkv/kernel')"
        )
    return mask


def frozen_train_steps(train_config) -> int:
    """Train steps `0 … n-1` whose optimiser updates keep the `frozen_mask` leaves frozen:
    `freeze_steps` rounded up to whole optimiser updates of `grad_accum` steps."""
    accum = max(int(train_config.grad_accum), 1)
    return -(-max(int(train_config.freeze_steps), 0) // accum) * accum


def make_optimizer(train_config, params: Any) -> optax.GradientTransformation:
    """The optimiser of `train_config` for parameters shaped like `params` (unboxed)."""
    name = train_config.optimizer
    if name not in ("adam", "adamw"):
        raise ValueError(f"config key train.optimizer must be 'adam' or 'adamw', got {name!r}")
    lr = schedule(train_config)
    wd = float(train_config.weight_decay)
    parts = []
    if train_config.grad_clip_norm:
        parts.append(optax.clip_by_global_norm(float(train_config.grad_clip_norm)))
    if name == "adam" and wd:
        parts.append(optax.add_decayed_weights(wd))  # coupled L2, as PyTorch's Adam
    parts.append(optax.scale_by_adam(b1=float(train_config.adam_b1),
                                     b2=float(train_config.adam_b2),
                                     eps=float(train_config.adam_eps)))
    if name == "adamw" and wd:
        parts.append(optax.add_decayed_weights(wd))  # decoupled, as AdamW
    parts.append(optax.scale_by_learning_rate(lr))
    tx = optax.chain(*parts)
    accum = int(train_config.grad_accum)
    if accum < 1:
        raise ValueError(f"config key train.grad_accum must be >= 1, got {accum}")
    mask = frozen_mask(train_config, params)
    if mask is not None:
        tx = freeze_for(tx, mask, frozen_train_steps(train_config) // accum)
    if accum > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=accum).gradient_transformation()
    return tx
