"""Train IENet or TS-CAN: `python -m ienet_jax.main --config=CONFIG --workdir=DIR [overrides]`.

    python -m ienet_jax.main --config=configs/quickstart.py:tiny --workdir=runs/q \
        --config.train.num_steps=20 --config.data.dir=data/clips

Every config key can be overridden as `--config.section.key=value`; a misspelt key is an
error before anything runs (the config is locked). Re-running with the same workdir
resumes from its latest checkpoint. The console script `ienet-train` is `run()`.
"""

from __future__ import annotations

import jax
from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config file, e.g. configs/ienet.py:tiny.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", None, "Persistent XLA compilation cache directory (optional).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Multi-process run: call jax.distributed.initialize() first.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from ienet_jax.parallel.distributed import initialize

    initialize(_DISTRIBUTED.value)
    if _COMPILATION_CACHE.value:
        jax.config.update("jax_compilation_cache_dir", _COMPILATION_CACHE.value)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    from ienet_jax.train.loop import train_and_evaluate

    logging.info("JAX process %d/%d, %d local devices", jax.process_index(),
                 jax.process_count(), jax.local_device_count())
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run() -> None:
    """Entry point of the `ienet-train` console script."""
    app.run(main)


if __name__ == "__main__":
    run()
