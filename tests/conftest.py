"""Shared test set-up: 8 fake CPU devices and the reference golden files.

XLA_FLAGS must be set before jax is imported anywhere, hence here at the top.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IENET_SHARED_DIR", REPO.parent / "shared"))
GOLDEN = SHARED / "golden"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """`../shared/golden` (reference outputs). Missing: a failure in CI, a skip elsewhere."""
    if not GOLDEN.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"golden files not found at {GOLDEN} (set IENET_SHARED_DIR)")
        pytest.skip(f"golden files not found at {GOLDEN}")
    return GOLDEN


@pytest.fixture(scope="session")
def det_init(golden_dir):
    """The golden folder's `det_init` module (deterministic reference weights)."""
    sys.path.insert(0, str(golden_dir))
    try:
        import det_init as module
    finally:
        sys.path.remove(str(golden_dir))
    return module
