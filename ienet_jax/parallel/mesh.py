"""The device mesh, built from the `mesh` config section.

`mesh.axes` names the mesh axes (e.g. `("data", "model")`) and `mesh.shape` their sizes;
one size may be `-1`, filled with the devices left over (`(-1, 1)` = pure data parallel
on every device); `mesh.num_devices` (0 = all) restricts the mesh to the first devices.
Devices are laid out by `jax.experimental.mesh_utils` so that the last axis (the one
tensor parallelism talks over most) gets the closest devices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh


def resolve_shape(shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """`shape` with its (at most one) `-1` replaced so the product is `num_devices`."""
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ValueError(
            f"config key mesh.shape={shape}: expected positive sizes and at most one -1"
        )
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise ValueError(
                f"config key mesh.shape={shape}: {num_devices} devices are not divisible by "
                f"the fixed axis sizes (product {known})"
            )
        shape = tuple(num_devices // known if s == -1 else s for s in shape)
    if math.prod(shape) != num_devices:
        raise ValueError(
            f"config key mesh.shape={shape} needs {math.prod(shape)} devices, "
            f"but {num_devices} are available"
        )
    return shape


def create_mesh(mesh_config, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A `Mesh` over `devices` (default: all) from `mesh_config.{shape, axes}`."""
    devices = list(jax.devices() if devices is None else devices)
    wanted = int(mesh_config.get("num_devices", 0) or 0)
    if wanted:
        if wanted > len(devices):
            raise ValueError(f"config key mesh.num_devices={wanted}: only {len(devices)} "
                             "devices are available")
        devices = devices[:wanted]
    axes = tuple(str(a) for a in mesh_config.axes)
    if len(axes) != len(mesh_config.shape):
        raise ValueError(
            f"config keys mesh.axes={axes} and mesh.shape={tuple(mesh_config.shape)} must have "
            "the same length"
        )
    if len(set(axes)) != len(axes):
        raise ValueError(f"config key mesh.axes={axes} repeats an axis name")
    shape = resolve_shape(mesh_config.shape, len(devices))
    try:
        grid = mesh_utils.create_device_mesh(shape, devices=devices)
    except (AssertionError, ValueError, NotImplementedError):
        grid = np.asarray(devices, dtype=object).reshape(shape)
    return Mesh(grid, axes)


def single_device_mesh(axes: Sequence[str], device: jax.Device | None = None) -> Mesh:
    """A mesh of one device with the given axis names (each of size 1)."""
    device = jax.devices()[0] if device is None else device
    return Mesh(np.asarray([device], dtype=object).reshape((1,) * len(axes)), tuple(axes))
