"""Pure train and eval steps, compiled once with explicit shardings.

`train_step(state, batch, rng) -> (state, metrics)`: forward in training mode (dropout,
stochastic depth from `rng`; BatchNorm statistics updated), weighted loss, gradients,
optimiser update. A step whose loss or gradient norm is not finite leaves the state
untouched (`metrics["finite"] == False`): the trainer stops on it with the last good state.

`eval_step(state, batch) -> sums`: per-batch sums (masked rows excluded) of each loss term
and of the absolute HR error (bpm), plus the row count, to be averaged over a split.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ienet_jax.models import contract, platform
from ienet_jax.parallel import distributed
from ienet_jax.train import objectives
from ienet_jax.train.state import TrainState


def trainable_grad(loss_fn, params: Any, frozen_mask: Any = None):
    """`jax.value_and_grad(loss_fn, has_aux=True)(params)`, differentiated only with respect
    to the leaves where `frozen_mask` is False; the frozen leaves' gradients are zeros.

    The frozen leaves enter `loss_fn` as constants: XLA computes no backward pass for the
    parts of the model that only they feed (stage 2 without the stage-1 network's backward).
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if frozen_mask is None:
        return grad_fn(params)
    leaves, treedef = jax.tree.flatten(params)
    frozen = treedef.flatten_up_to(frozen_mask)
    trained = [x for x, f in zip(leaves, frozen) if not f]

    def merge(subset):
        it = iter(subset)
        return treedef.unflatten([x if f else next(it) for x, f in zip(leaves, frozen)])

    value, grads = jax.value_and_grad(lambda t: loss_fn(merge(t)), has_aux=True)(trained)
    it = iter(grads)
    full = [jnp.zeros_like(x) if f else next(it) for x, f in zip(leaves, frozen)]
    return value, treedef.unflatten(full)


def make_train_step(model: nn.Module, model_config, tx: optax.GradientTransformation,
                    weights: dict[str, float], pearson_band_hz=(), frozen_mask: Any = None):
    """The pure train step for `model` (see the module docstring; `pearson_band_hz` as in
    `objectives.weighted_loss`). `model_config`: the `model` section (its contract says which
    batch fields go in, e.g. IENet's `model.modalities`), or a model name for the family's
    default inputs.

    `frozen_mask` (bools shaped like the params, `optim.frozen_mask`): the step of the frozen
    phase, valid while the optimiser freezes those leaves (`optim.frozen_train_steps`). It
    takes gradients only of the other leaves and gives the frozen ones zero gradients, which
    `optim.freeze_for` would zero anyway: same updates, no backward pass through the frozen
    network. Its `grad_norm` metric is then the norm of the trained leaves' gradient (the one
    that `grad_clip_norm` clips).
    """
    model_contract = contract.get(model_config)

    def train_step(state: TrainState, batch: dict, rng: jax.Array):
        k_drop, k_path = jax.random.split(rng)
        inputs, kwargs = model_contract.inputs(batch), model_contract.kwargs(batch)

        def loss_fn(params):
            outputs, updates = model.apply(
                {"params": params, "batch_stats": state.batch_stats}, *inputs, train=True,
                **kwargs,
                rngs={"dropout": k_drop, "drop_path": k_path}, mutable=["batch_stats"])
            loss, metrics = objectives.weighted_loss(weights, model_config, outputs, batch,
                                                     pearson_band_hz)
            return loss, (metrics, updates.get("batch_stats", state.batch_stats))

        (loss, (metrics, batch_stats)), grads = trainable_grad(loss_fn, state.params,
                                                              frozen_mask)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            batch_stats=batch_stats, opt_state=opt_state)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
        metrics = dict(metrics, grad_norm=grad_norm, finite=finite)
        return new, metrics

    return train_step


def make_eval_step(model: nn.Module, model_config, weights: dict[str, float],
                   pearson_band_hz=()):
    """The pure eval step: `(state, batch) -> {name: sum over the batch}` + `count`."""
    model_contract = contract.get(model_config)

    def eval_step(state: TrainState, batch: dict):
        outputs = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                              *model_contract.inputs(batch), train=False,
                              **model_contract.kwargs(batch))
        mask = batch.get("mask")
        n = outputs[model_contract.output].shape[0]
        w = jnp.ones((n,), jnp.float32) if mask is None else mask.astype(jnp.float32)
        count = jnp.sum(w)
        _, metrics = objectives.weighted_loss(weights, model_config, outputs, batch,
                                              pearson_band_hz)
        sums = {k: v * jnp.maximum(count, 1.0) for k, v in metrics.items()}
        hr = objectives.predicted_hr(model_config, outputs, batch["fps"].astype(jnp.float32))
        sums["hr_mae"] = jnp.sum(jnp.abs(hr - batch["hr"].astype(jnp.float32)) * w)
        sums["count"] = count
        return sums

    return eval_step


CPU_YNN_FUSION = {"default": None, "dots": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def compiler_options(train_config) -> dict | None:
    """XLA compiler options of the steps from `train.cpu_ynn_fusion` (CPU back-end only)."""
    value = train_config.cpu_ynn_fusion
    if value not in CPU_YNN_FUSION:
        raise ValueError(f"config key train.cpu_ynn_fusion={value!r}: expected one of "
                         f"{tuple(CPU_YNN_FUSION)}")
    if CPU_YNN_FUSION[value] is None or jax.default_backend() != "cpu":
        return None
    return {"xla_cpu_experimental_ynn_fusion_type": CPU_YNN_FUSION[value]}


class Compiled:
    """A step function jitted once with shardings, traced under the mesh, the activation
    rules (so that `nn.with_logical_constraint` in the models takes effect) and the mesh's
    platform as the models' compile target (`ienet_jax.models.platform`: a mesh of TPU or
    GPU devices gets their formulations, XLA's convolutions among them, even in a CPU-only
    process).

    `lower(*args)` lowers for `args` (arrays or `ShapeDtypeStruct`s with shardings) without
    running: `.compile()` it for ahead-of-time analysis (`bench.topology`)."""

    def __init__(self, fn, mesh: Mesh, activation_rules, *, in_shardings, out_shardings,
                 donate_argnums=(), compiler_options: dict | None = None):
        self.mesh = mesh
        self.activation_rules = activation_rules
        self.platform = mesh.devices.flat[0].platform
        self.jitted = jax.jit(fn, in_shardings=in_shardings, out_shardings=out_shardings,
                              donate_argnums=donate_argnums, compiler_options=compiler_options)
        self._name = getattr(fn, "__name__", "step")
        self._aligned = False

    @contextlib.contextmanager
    def context(self):
        """The mesh, activation rules and platform the step is traced under."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(jax.set_mesh(self.mesh))
            stack.enter_context(nn.logical_axis_rules(self.activation_rules))
            stack.enter_context(platform.target(self.platform))
            yield

    def lower(self, *args):
        with self.context():
            return self.jitted.lower(*args)

    def __call__(self, *args):
        with self.context():
            if not self._aligned and jax.process_count() > 1:
                # Compile, then wait for the other processes before the first run: their
                # compile times differ, and on CPU (gloo) all processes must reach a new
                # collective within 30 s (`distributed.barrier`).
                self.jitted.lower(*args).compile()
                distributed.barrier(f"first {self._name}")
            self._aligned = True
            return self.jitted(*args)


def compile_steps(*, model, model_config, tx, weights, mesh: Mesh, state_shardings: Any,
                  batch_spec: PartitionSpec, activation_rules,
                  eval_batch_spec: PartitionSpec | None = None,
                  pearson_band_hz=(), compiler_options: dict | None = None,
                  ) -> tuple[Compiled, Compiled]:
    """`(train_step, eval_step)` jitted with the state's shardings and batch shardings.

    Keyword-only: `batch_spec` shards train batches, `eval_batch_spec` (default: the same)
    eval batches; `pearson_band_hz` is `train.loss.pearson_band_hz`; `compiler_options`
    XLA's (`compiler_options(config.train)`).
    """
    replicated = NamedSharding(mesh, PartitionSpec())
    eval_sharding = NamedSharding(mesh, batch_spec if eval_batch_spec is None
                                  else eval_batch_spec)
    train = compile_train_step(model=model, model_config=model_config, tx=tx, weights=weights,
                               mesh=mesh, state_shardings=state_shardings,
                               batch_spec=batch_spec, activation_rules=activation_rules,
                               pearson_band_hz=pearson_band_hz,
                               compiler_options=compiler_options)
    evaluate = Compiled(make_eval_step(model, model_config, weights, pearson_band_hz), mesh,
                        activation_rules, in_shardings=(state_shardings, eval_sharding),
                        out_shardings=replicated, compiler_options=compiler_options)
    return train, evaluate


def compile_train_step(*, model, model_config, tx, weights, mesh: Mesh, state_shardings: Any,
                       batch_spec: PartitionSpec, activation_rules, pearson_band_hz=(),
                       frozen_mask: Any = None, compiler_options: dict | None = None,
                       ) -> Compiled:
    """The train step of `compile_steps` (same keywords); with `frozen_mask`, the frozen
    phase's step (`make_train_step`)."""
    replicated = NamedSharding(mesh, PartitionSpec())
    batch_sharding = NamedSharding(mesh, batch_spec)  # a prefix for every batch field
    fn = make_train_step(model, model_config, tx, weights, pearson_band_hz, frozen_mask)
    return Compiled(fn, mesh, activation_rules,
                    in_shardings=(state_shardings, batch_sharding, replicated),
                    out_shardings=(state_shardings, replicated), donate_argnums=(0,),
                    compiler_options=compiler_options)
