"""Mesh construction from config: -1 fill, validation errors naming the key."""

import jax
import ml_collections
import pytest

from ienet_jax.parallel.mesh import create_mesh, resolve_shape, single_device_mesh


def cfg(shape, axes=("data", "model")):
    return ml_collections.ConfigDict(dict(shape=shape, axes=axes))


def test_resolve_shape_fills_minus_one():
    assert resolve_shape((-1, 2), 8) == (4, 2)
    assert resolve_shape((2, -1), 8) == (2, 4)
    assert resolve_shape((8, 1), 8) == (8, 1)


@pytest.mark.parametrize("shape", [(-1, -1), (3, -1), (4, 4), (0, 8)])
def test_resolve_shape_rejects(shape):
    with pytest.raises(ValueError, match="mesh.shape"):
        resolve_shape(shape, 8)


def test_create_mesh_uses_all_devices():
    mesh = create_mesh(cfg((-1, 2)))
    assert dict(mesh.shape) == {"data": 4, "model": 2}
    assert sorted(d.id for d in mesh.devices.flat) == sorted(d.id for d in jax.devices())


def test_create_mesh_subset_and_errors():
    mesh = create_mesh(cfg((-1, 1)), jax.devices()[:2])
    assert dict(mesh.shape) == {"data": 2, "model": 1}
    with pytest.raises(ValueError, match="same length"):
        create_mesh(cfg((-1,)))
    with pytest.raises(ValueError, match="repeats"):
        create_mesh(cfg((-1, 1), ("data", "data")))


def test_single_device_mesh():
    mesh = single_device_mesh(("data", "model"))
    assert mesh.size == 1 and mesh.axis_names == ("data", "model")
