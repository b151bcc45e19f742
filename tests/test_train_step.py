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
