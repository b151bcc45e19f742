"""`python -m data_prep {synthesize,convert} …`: raw recordings → TFRecord clips.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`main(args) -> int`; this file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "synthesize": ("data_prep.synthesize", "write realistic synthetic RGB+NIR recordings"),
    "convert": ("data_prep.convert", "convert a raw dataset into TFRecord clips"),
}


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=help_text, description=module.__doc__))
    from ienet_jax import cli

    args = cli.parse_args(parser, argv)  # --clip-length and --clip_length alike
    return cli.run_argparse(modules[args.command].main, args)


if __name__ == "__main__":
    sys.exit(run())
