"""Per-process numpy batches → global jax.Arrays (8 fake CPU devices, one process)."""

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ienet_jax.data import batch_sharding, make_global_batch


def _batch(b=8):
    rng = np.random.default_rng(0)
    return {
        "rgb": rng.integers(0, 256, (b, 4, 2, 2, 3)).astype(np.uint8),
        "hr": rng.uniform(50, 120, b).astype(np.float32),
        "mask": np.ones(b, bool),
        "video": np.array([f"v{i}" for i in range(b)]),
    }


def test_global_batch_over_a_data_mesh():
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
    batch = _batch()
    out = make_global_batch(batch, mesh, "data")
    assert out["video"] is batch["video"]
    for name in ("rgb", "hr", "mask"):
        arr = out[name]
        assert isinstance(arr, jax.Array) and arr.shape == batch[name].shape
        assert arr.sharding == NamedSharding(mesh, PartitionSpec("data"))
        np.testing.assert_array_equal(np.asarray(arr), batch[name])
        # each data shard holds 2 rows, replicated over the model axis
        shapes = {s.data.shape[0] for s in arr.addressable_shards}
        assert shapes == {2}
    all_axes = batch_sharding(mesh)
    assert all_axes.spec == PartitionSpec(("data", "model"))
    out = make_global_batch(batch, all_axes)
    assert {s.data.shape[0] for s in out["rgb"].addressable_shards} == {1}


def test_scalar_field_is_rejected():
    mesh = Mesh(np.array(jax.devices()), ("data",))
    with pytest.raises(ValueError, match="'step' is a scalar"):
        make_global_batch({"step": np.int32(3)}, mesh)
