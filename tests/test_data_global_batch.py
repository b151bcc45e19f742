"""Per-process numpy batches → global jax.Arrays (8 fake CPU devices, one process)."""

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import ienet_jax.data
from ienet_jax.data import make_global_batch


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
    out = make_global_batch(batch, NamedSharding(mesh, PartitionSpec("data")))
    assert out["video"] is batch["video"]
    for name in ("rgb", "hr", "mask"):
        arr = out[name]
        assert isinstance(arr, jax.Array) and arr.shape == batch[name].shape
        assert arr.sharding == NamedSharding(mesh, PartitionSpec("data"))
        np.testing.assert_array_equal(np.asarray(arr), batch[name])
        # each data shard holds 2 rows, replicated over the model axis
        shapes = {s.data.shape[0] for s in arr.addressable_shards}
        assert shapes == {2}
    out = make_global_batch(batch, NamedSharding(mesh, PartitionSpec(("data", "model"))))
    assert {s.data.shape[0] for s in out["rgb"].addressable_shards} == {1}


def test_scalar_field_is_rejected():
    mesh = Mesh(np.array(jax.devices()), ("data",))
    with pytest.raises(ValueError, match="'step' is a scalar"):
        make_global_batch({"step": np.int32(3)}, NamedSharding(mesh, PartitionSpec("data")))


def test_no_test_only_helpers_in_the_data_api():
    """The trainer builds its own batch sharding and saves the iterator with grain's orbax
    args directly: the wrappers only tests used are gone (issue 15 item 6)."""
    gone = {"batch_sharding", "checkpoint_handler", "checkpoint_args"}
    assert not gone & set(ienet_jax.data.__all__)
    for name in gone:
        with pytest.raises(AttributeError):
            getattr(ienet_jax.data, name)
