"""The platform a model is compiled FOR, which may not be the process's backend.

Some formulations are fastest on one platform only: XLA's CPU back-end wants convolutions
as tap sums (`conv`) and the window attention's projections kept off padded tokens
(`attention`), while XLA:TPU/GPU want native convolutions and the window partition done
on the narrow token tensor. Models ask `current()`; the trainer's compiled steps set
`target(...)` from their mesh's devices (`ienet_jax.train.step.Compiled`), so a CPU-only
process compiling for a TPU or GPU topology (`bench.topology`) traces the accelerator's
formulation. Outside any `target`, `current()` is `jax.default_backend()`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import jax

_TARGET: contextvars.ContextVar[str | None] = contextvars.ContextVar("target", default=None)


@contextlib.contextmanager
def target(platform: str | None) -> Iterator[None]:
    """Within this context models are traced for `platform` ("cpu", "tpu", "gpu"/"cuda",
    …; None: `jax.default_backend()`)."""
    token = _TARGET.set(platform)
    try:
        yield
    finally:
        _TARGET.reset(token)


def current() -> str:
    """The platform being compiled for: `target`'s, else `jax.default_backend()`."""
    return _TARGET.get() or jax.default_backend()
