"""`python -m ienet_jax.convert`: a reference checkpoint → an orbax checkpoint of Flax variables.

    python -m ienet_jax.convert --checkpoint ref.pth --config configs/ienet.py:reference \
        --output converted/
    python -m ienet_jax.convert --state-dict-npz ref.npz --config configs/ienet.py:tiny \
        --output converted/
    python -m ienet_jax.convert --open-rppg physnet.pure [--from WHEEL_OR_DIR] --output DIR

The last form imports open-rppg's real-data-trained PhysNet / TS-CAN weights
(`ienet_jax.convert.open_rppg`: from the wheel, a folder, or the installed package; their
own model config, so no `--config`).

The output directory holds `variables/` (orbax: params + batch_stats) and
`model_config.json`; read it back with `ienet_jax.convert.restore_converted(DIR)`.
Reading `.pth` files needs the `torch` extra; `.npz` files (state-dict keys → arrays) do not.
`--set model.nir_channels=3` style overrides adjust the model section before converting.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
from pathlib import Path

from absl import logging


def load_config(spec: str):
    """`path/to/config.py[:arg]` → `get_config(arg)` of that file."""
    path, _, arg = spec.partition(":")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--config {spec}: config file {path} not found")
    module_spec = importlib.util.spec_from_file_location("_convert_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path} has no get_config(arg) function")
    return module.get_config(arg or None)


def apply_overrides(config, overrides: list[str]) -> None:
    """Apply `dotted.key=value` overrides (values parsed as Python literals when possible)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        node = config
        *parents, leaf = key.split(".")
        for name in parents:
            node = node[name]
        if leaf not in node:
            raise ValueError(f"--set: unknown config key {key!r}")
        node[leaf] = value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="reference PyTorch checkpoint (.pth)")
    source.add_argument("--state-dict-npz", type=Path, help=".npz of reference state-dict arrays")
    source.add_argument("--open-rppg", metavar="NAME",
                        help="open-rppg weights: physnet.pure|physnet.rlap|tscan.pure|tscan.rlap")
    parser.add_argument("--from", dest="from_", type=Path, metavar="WHEEL_OR_DIR",
                        help="with --open-rppg: the wheel or a folder of .weights.h5 files "
                             "(default: the installed open-rppg package)")
    parser.add_argument("--config",
                        help="config file and variant, e.g. configs/ienet.py:reference "
                             "(required with --checkpoint / --state-dict-npz)")
    parser.add_argument("--output", required=True, type=Path, help="output directory")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. model.nir_channels=3 (repeatable)")


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ienet_jax import cli, convert

    if args.open_rppg is not None:
        return _open_rppg(args)
    if args.from_ is not None:
        raise ValueError("--from goes with --open-rppg NAME")
    if args.config is None:
        raise ValueError("--config is required with --checkpoint / --state-dict-npz (e.g. "
                         "--config configs/ienet.py:reference)")
    # Every argument is checked before the progress bar starts (errors: one line).
    flag, source = (("--checkpoint", args.checkpoint) if args.checkpoint is not None
                    else ("--state-dict-npz", args.state_dict_npz))
    if not source.is_file():
        raise ValueError(f"{flag} {source}: no such file")
    cli.check_output_dir(args.output, "--output")
    config = load_config(args.config)
    apply_overrides(config, args.set)
    steps = tqdm(total=3, desc="convert", unit="step")
    if args.checkpoint is not None:
        try:
            state_dict = convert.load_torch_checkpoint(args.checkpoint)
        except ImportError as e:  # the optional torch extra: a set-up step, not a bug
            steps.close()
            raise ValueError(f"--checkpoint {args.checkpoint}: {e}") from e
    else:
        state_dict = convert.load_npz_state_dict(args.state_dict_npz)
    steps.set_postfix_str(f"{len(state_dict)} tensors read")
    steps.update()
    variables = convert.from_reference_state_dict(state_dict, config.model)
    steps.update()
    out = convert.save_converted(args.output, variables, config.model)
    steps.update()
    steps.close()
    logging.info("wrote converted %s variables to %s", config.model.name, out)
    print(f"converted {config.model.name} checkpoint written to {out}")
    return 0


def _open_rppg(args: argparse.Namespace) -> int:
    from ienet_jax import cli
    from ienet_jax.convert import open_rppg

    open_rppg.check_name(args.open_rppg)
    if args.config is not None or args.set:
        raise ValueError("--open-rppg takes its own model config (configs/<family>.py:"
                         f"{open_rppg.VARIANT}): drop --config / --set")
    cli.check_output_dir(args.output, "--output")
    out = open_rppg.import_weights(args.open_rppg, args.from_, args.output)
    print(f"converted open-rppg {args.open_rppg} written to {out} (licence: "
          f"{open_rppg.LICENCE})")
    return 0


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ienet_jax.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    from ienet_jax import cli

    args = cli.parse_args(parser, argv)  # --state-dict-npz and --state_dict_npz alike
    return cli.run_argparse(main, args)


if __name__ == "__main__":
    sys.exit(run())
