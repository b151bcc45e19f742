"""Sharded training equals single-device training (8 fake CPU devices).

Tolerance: losses agree to 1e-5 relative. Data parallelism changes the order of the batch
reductions (per-device partial sums, then an all-reduce) and tensor parallelism splits
matmul contractions, so float32 results differ in the last bits; anything beyond that is a
sharding bug. Final parameters agree to `2 · lr · steps` absolute: Adam's update
`m / √v` is ±lr for a gradient element at rounding level whatever its size, so such
elements (e.g. biases with a vanishing gradient) may move by up to lr per step in either
direction; every other element agrees far more closely.
"""

import json

import jax
import numpy as np
import pytest
from train_configs import ienet_config, tscan_config

from ienet_jax.train.loop import train_and_evaluate


def losses(workdir):
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return np.array([r["loss"] for r in rows if r["split"] == "train"])


def run(config, workdir, mesh, num_devices):
    config.mesh.shape = mesh
    config.mesh.num_devices = num_devices
    state = train_and_evaluate(config, workdir)
    return losses(workdir), jax.device_get(state.params), state


def check_equal(make_config, tmp_path):
    assert jax.device_count() == 8
    config = make_config()
    atol = 2 * config.train.learning_rate * config.train.num_steps
    sharded_losses, sharded_params, state = run(config, tmp_path / "sharded", (4, 2), 8)
    specs = {str(x.sharding.spec) for x in jax.tree.leaves(state.params)}
    assert any("model" in s for s in specs), f"no parameter is model-sharded: {specs}"
    single_losses, single_params, _ = run(make_config(), tmp_path / "single", (1, 1), 1)
    assert len(sharded_losses) == len(single_losses) > 1
    assert np.all(np.isfinite(sharded_losses))
    np.testing.assert_allclose(sharded_losses, single_losses, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(sharded_params), jax.tree.leaves(single_params)):
        np.testing.assert_allclose(a, b, atol=atol)
    # training moved the parameters (the comparison is not between two initial states)
    assert not np.allclose(sharded_losses[0], sharded_losses[-1])


def test_tscan_sharded_equals_single_device(tmp_path):
    check_equal(lambda: tscan_config(steps=3), tmp_path)


@pytest.mark.slow
def test_ienet_sharded_equals_single_device(tmp_path):
    check_equal(lambda: ienet_config(steps=2), tmp_path)


def test_frozen_phase_step_equals_full_step(tmp_path):
    """Stage 2's frozen-phase step (gradients of the FEE head only) makes the same update as
    the full step under the freezing optimiser, with far fewer FLOPs."""
    import jax.numpy as jnp

    from ienet_jax.train import inputs
    from ienet_jax.train.loop import setup

    config = ienet_config("reference_stage2", steps=3)
    config.train.freeze_steps = 2
    config.train.grad_clip_norm = 0.5  # the clip's global norm sees zeros for frozen leaves
    run_ = setup(config, tmp_path)
    assert run_.frozen_until == 2 and run_.frozen_step is not None
    assert run_.step_fn(1) is run_.frozen_step and run_.step_fn(2) is run_.train_step
    batch = inputs.to_device(next(run_.train_it), run_.data_sharding)
    rng = jax.random.PRNGKey(3)
    copy = lambda: jax.tree.map(jnp.copy, run_.state)  # noqa: E731 (steps donate the state)
    full, full_metrics = jax.device_get(run_.train_step(copy(), batch, rng))
    frozen, frozen_metrics = jax.device_get(run_.frozen_step(copy(), batch, rng))
    for k in ("loss", "l1_hr"):
        np.testing.assert_allclose(frozen_metrics[k], full_metrics[k], rtol=1e-6)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(full), jax.tree.leaves(frozen)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7,
                                   err_msg=jax.tree_util.keystr(path))
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(full.params["fee"]),
                                                   jax.tree.leaves(run_.state.params["fee"]))]
    assert any(moved)  # the FEE head trained in both

    def flops(step):
        with jax.set_mesh(step.mesh):
            cost = step.jitted.lower(run_.state, batch, rng).cost_analysis()
        return float((cost[0] if isinstance(cost, list) else cost)["flops"])

    assert flops(run_.frozen_step) < 0.6 * flops(run_.train_step)


def test_cpu_ynn_fusion_dots_keeps_library_fusions_to_matmuls():
    """`train.cpu_ynn_fusion="dots"` reaches XLA: no YNNPACK reduce/elementwise fusions."""
    import jax.numpy as jnp

    from ienet_jax.parallel.mesh import single_device_mesh
    from ienet_jax.train.step import Compiled, compiler_options

    config = tscan_config()

    def f(x):
        return jnp.sum(jnp.tanh(x), axis=0)

    x = jnp.ones((64, 256))
    texts = {}
    for value in ("default", "dots"):
        config.train.cpu_ynn_fusion = value
        step = Compiled(f, single_device_mesh(("data",)), (), in_shardings=None,
                        out_shardings=None,
                        compiler_options=compiler_options(config.train))
        texts[value] = step.jitted.lower(x).compile().as_text()
    assert "__ynn_fusion" in texts["default"] and "__ynn_fusion" not in texts["dots"]
    config.train.cpu_ynn_fusion = "all"
    with pytest.raises(ValueError, match="train.cpu_ynn_fusion"):
        compiler_options(config.train)
