"""open-rppg's real-data-trained PhysNet and TS-CAN → converted checkpoints.

The PyPI package `open-rppg==0.1.1` ships PhysNet and TS-CAN trained on PURE and RLAP as
Keras `.weights.h5` files (`rppg/weights/` in its wheel). Their licence is that of the
original papers (research use only; PhysNet's code: "only for research purpose, commercial
use is not allowed"), so the project never bundles them: the user gets the wheel
(`pip download --no-deps open-rppg==0.1.1`) or installs the package
(`pip install --no-deps open-rppg==0.1.1`), and this module reads the files from there with
h5py, without importing the package (which pulls Keras, onnxruntime and a second OpenCV).

    python -m ienet_jax.convert --open-rppg physnet.pure [--from WHEEL_OR_DIR] --output DIR

`--from` is the wheel (a zip), a folder holding the `.weights.h5` files (searched
recursively: an unpacked wheel or a site-packages folder work too), or omitted: the
installed distribution, found through its metadata. `NAMES` maps each name to its file and
to the `model` config (`configs/<family>.py`, variant `open_rppg`) the weights fit; the
model family's contract (`convert`) maps the weights. The output is a converted
directory as `save_converted` writes it, plus `source.json` (where the weights came from,
their SHA-256 and the licence terms).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import zipfile
from pathlib import Path

DISTRIBUTION = "open-rppg"
VERSION = "0.1.1"
WEIGHTS_DIR = "rppg/weights"
VARIANT = "open_rppg"  # the configs' variant these weights fit
# name → (file in rppg/weights/, model family = configs/<family>.py)
NAMES = {
    "physnet.pure": ("physnet.pure.weights.h5", "physnet"),
    "physnet.rlap": ("physnet.rlap.weights.h5", "physnet"),
    "tscan.pure": ("TSCAN.pure.weights.h5", "tscan"),
    "tscan.rlap": ("TSCAN.rlap.weights.h5", "tscan"),
}
LICENCE = ("open-rppg's pretrained models are under the terms of their original papers "
           "(research use; PhysNet: only for research purpose, commercial use is not "
           "allowed); the package's code is MIT. Not redistributed by ienet-jax.")
HOW_TO_GET = (f"pip download --no-deps {DISTRIBUTION}=={VERSION} (then --from the .whl) or "
              f"pip install --no-deps {DISTRIBUTION}=={VERSION}")


def check_name(name: str) -> tuple[str, str]:
    if name not in NAMES:
        raise ValueError(f"--open-rppg must be one of {tuple(NAMES)}, got {name!r}")
    return NAMES[name]


def model_config(name: str):
    """The `model` section the weights of `name` fit (`configs/<family>.py:open_rppg`)."""
    _, family = check_name(name)
    return importlib.import_module(f"configs.{family}").model_config(VARIANT)


def _installed_file(filename: str) -> Path:
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise ValueError(f"--open-rppg without --from reads the installed {DISTRIBUTION} "
                         f"package, which is not installed: {HOW_TO_GET}") from None
    for f in dist.files or ():
        if f.as_posix().endswith(f"{WEIGHTS_DIR}/{filename}"):
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise ValueError(f"installed {DISTRIBUTION} {dist.version} has no {WEIGHTS_DIR}/{filename}"
                     f" (expected version {VERSION})")


def weights_bytes(name: str, source: str | Path | None) -> tuple[bytes, str]:
    """(the `.weights.h5` file's bytes, where it was found) for `name` from `source`."""
    filename, _ = check_name(name)
    if source is None:
        path = _installed_file(filename)
        return path.read_bytes(), str(path)
    source = Path(source)
    if source.is_dir():
        found = sorted(source.rglob(filename))
        if not found:
            raise ValueError(f"--from {source}: no {filename} in this folder or below "
                             f"(a folder of open-rppg's .weights.h5 files, or {HOW_TO_GET})")
        return found[0].read_bytes(), str(found[0])
    if not source.is_file():
        raise ValueError(f"--from {source}: no such file or folder")
    if not zipfile.is_zipfile(source):
        raise ValueError(f"--from {source}: not a wheel (zip) or a folder")
    with zipfile.ZipFile(source) as wheel:
        members = [m for m in wheel.namelist() if m.endswith(f"{WEIGHTS_DIR}/{filename}")]
        if not members:
            raise ValueError(f"--from {source}: the wheel has no {WEIGHTS_DIR}/{filename} "
                             f"(expected {DISTRIBUTION}-{VERSION}-*.whl)")
        return wheel.read(members[0]), f"{source}!{members[0]}"


def import_weights(name: str, source: str | Path | None, output: str | Path) -> Path:
    """Convert open-rppg's `name` weights from `source` (see the module docstring) into the
    converted directory `output`; returns its path."""
    from ienet_jax.convert.checkpoint import save_converted
    from ienet_jax.convert.keras_h5 import read_weights_h5
    from ienet_jax.models import contract

    config = model_config(name)
    data, where = weights_bytes(name, source)
    weights = read_weights_h5(io.BytesIO(data), where)
    try:
        variables = contract.get(config).convert(weights, config)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e
    out = save_converted(output, variables, config)
    (out / "source.json").write_text(json.dumps(dict(
        open_rppg=name, distribution=f"{DISTRIBUTION}=={VERSION}", weights=where,
        sha256=hashlib.sha256(data).hexdigest(), licence=LICENCE), indent=2) + "\n")
    return out
