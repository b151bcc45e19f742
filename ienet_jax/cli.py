"""Command-line plumbing shared by every tool: user errors as one line, one flag spelling.

- `run(main)` starts an absl tool (`ienet_jax.main`, `.evaluate`, `.predict`, `.quickstart`):
  a user error (a bad flag or config key, a config file that does not load, a `ValueError`,
  a missing, unwritable or misplaced file or folder) escaping flag parsing or `main` ends as
  ONE line `error: <message>` on stderr and exit status 2 instead of a traceback.
  `IENET_TRACEBACK=1` in the environment shows the traceback instead (for developers).
- Flag spelling: absl tools spell flags with underscores (`--data_dir`), argparse tools
  (`python -m data_prep`, `ienet_jax.convert`, `bench`) with dashes (`--clip-length`); every
  tool accepts both (`normalize_flags`). Only flag names are rewritten, never values, and
  only when the other spelling is a flag the tool knows; `--config.x.y` paths are left alone.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

EXIT_USAGE = 2
TRACEBACK_ENV = "IENET_TRACEBACK"
# Exceptions that mean "the user asked for something that cannot be done" (not a bug).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError,
               NotADirectoryError, IsADirectoryError)


def show_tracebacks() -> bool:
    return os.environ.get(TRACEBACK_ENV, "").strip() not in ("", "0", "false", "False")


def normalize_flags(argv: Sequence[str], known: Iterable[str]) -> list[str]:
    """`argv` with `--foo-bar` / `--foo_bar` respelt as whichever of the two is in `known`
    (flag names without dashes). Values (after `=` or in the next token), unknown flags,
    `--config.x.y` paths and everything after a bare `--` are left as they are."""
    known = set(known)
    out = list(argv)
    for i, token in enumerate(out):
        if token == "--":
            break
        if not token.startswith("--") or token.startswith("---"):
            continue
        name, sep, value = token[2:].partition("=")
        if name in known or "." in name:
            continue
        for alt in (name.replace("-", "_"), name.replace("_", "-")):
            if alt != name and alt in known:
                out[i] = f"--{alt}{sep}{value}"
                break
    return out


def one_line(message: str) -> str:
    """`message` on one line (newlines and indentation folded into '; ')."""
    parts = [p.strip() for p in str(message).splitlines() if p.strip()]
    return "; ".join(parts)


def error_message(error: BaseException) -> str:
    """The one-line message shown for a user error."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        what = f"{error.filename}: {error.strerror[0].lower()}{error.strerror[1:]}"
        if error.filename2 is not None:
            what += f" ({error.filename2})"
        return what
    if isinstance(error, KeyError) and error.args:
        return one_line(str(error.args[0]))
    return one_line(str(error))


def fail(message: str) -> None:
    """Prints `error: message` on stderr and exits with status 2."""
    sys.stdout.flush()
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def check_output_dir(path: str | os.PathLike | None, flag: str) -> None:
    """Raises ValueError naming `flag` if the folder `path` cannot be created or written
    (a file in the way, no write permission); creates nothing."""
    if path is None or str(path) == "":
        return
    target = Path(path).absolute()
    for p in (target, *target.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == target else f"cannot be created: {p} is a file"
                raise ValueError(f"{flag}={path}: {where}, not a folder")
            if not os.access(p, os.W_OK | os.X_OK):
                raise ValueError(f"{flag}={path}: no permission to write in {p}")
            return


# --- absl tools --------------------------------------------------------------------------

def _config_key_message(error: BaseException, argv: Sequence[str]) -> str | None:
    """A misspelt `--config.a.b=…` key (ml_collections' escaped KeyError/AttributeError);
    None if no `--config.…` flag of `argv` names that key (then it is not the user's)."""
    text = str(error.args[0]) if error.args else str(error)
    text = text.encode().decode("unicode_escape") if "\\n" in text else text
    lines = [line.strip().strip("'\"") for line in text.splitlines() if line.strip()]
    key = lines[0].strip("'\"") if lines else "?"
    hint = f" ({lines[1][0].lower()}{lines[1][1:]})" if len(lines) > 1 else ""
    flag = next((a.split("=")[0] for a in argv if a.startswith("--config.")
                 and re.search(rf"\.{re.escape(key)}(\.|$)", a.split("=")[0])), None)
    return None if flag is None else f"{flag}: no config key {key!r}{hint}"


def _flags_error_message(error: BaseException, argv: Sequence[str]) -> str:
    """absl's flag error; a config file that raised shows only its exception line."""
    text = str(error)
    missing = re.search(r"Flag --(\w+) must have a value other than None", text)
    if missing:
        return f"--{missing.group(1)} is required"
    if "Error whilst parsing config file" in text:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        name = getattr(getattr(error, "flag", None), "name", None) or "config"
        m = re.match(r"flag --(\w+)=", text)
        name = m.group(1) if m else name
        last = re.sub(r"^\w+(Error|Exception): ", "", lines[-1])
        return f"--{name}={_flag_value(argv, name)}: {last}"
    return one_line(text)


def parse_absl_flags(argv: Sequence[str]) -> list[str]:
    """absl flag parsing for `run`: both spellings, and any error as one `error:` line."""
    from absl import flags
    from ml_collections import config_flags

    argv = normalize_flags(argv, list(flags.FLAGS))
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        if show_tracebacks():
            raise
        fail(_flags_error_message(e, argv))
    except (AttributeError, KeyError) as e:  # ml_collections: an unknown `--config.x.y` key
        message = _config_key_message(e, argv)
        if message is None or show_tracebacks():
            raise
        fail(message)
    # A config file that cannot be read is only reported when the config is used: now.
    for name in list(flags.FLAGS):
        value = flags.FLAGS[name].value
        if isinstance(value, config_flags.config_flags._ErrorConfig):  # noqa: SLF001
            if show_tracebacks():
                value.lock()  # raises the loader's error
            fail(f"--{name}={_flag_value(argv, name)}: cannot load the config file "
                 f"({_config_load_reason(value._error)})")  # noqa: SLF001
    return rest


def _flag_value(argv: Sequence[str], name: str) -> str:
    """The value given to `--name` in `argv` (as typed)."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return "?"


def _config_load_reason(error: BaseException) -> str:
    text = str(error)
    m = re.search(r"\[Errno \d+\] ([^:\n]*)", text)
    return m.group(1).strip().lower() if m else one_line(text)


def user_terms(message: str, argv: Sequence[str], keys: dict[str, str] | None = None) -> str:
    """`message` with internal names replaced by what the user typed: `config key a.b` by
    `--config.a.b` when that override is in `argv`, and each `config key K` in `keys` by
    the flag `keys[K]` (e.g. `train.init_from` → `--checkpoint`)."""
    for key, flag in (keys or {}).items():
        message = message.replace(f"config key {key}", flag)
    for arg in argv:
        if arg.startswith("--config."):
            key = arg.split("=", 1)[0][len("--config."):]
            message = re.sub(rf"config key {re.escape(key)}\b", f"--config.{key}", message)
    return message


def run(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None,
        keys: dict[str, str] | None = None) -> None:
    """`absl.app.run(main)` with user errors as one `error:` line and exit status 2;
    `keys`: config keys the tool's flags set (see `user_terms`)."""
    from absl import app

    def guarded(args):
        try:
            return main(args)
        except app.UsageError as e:
            if show_tracebacks():
                raise
            fail(str(e))
        except USER_ERRORS as e:
            if show_tracebacks():
                raise
            fail(user_terms(error_message(e), sys.argv if argv is None else argv, keys))

    app.run(guarded, argv=None if argv is None else list(argv), flags_parser=parse_absl_flags)


# --- argparse tools ----------------------------------------------------------------------

def _option_names(parser: argparse.ArgumentParser) -> set[str]:
    """Every `--long` option name of `parser` and its subcommands (without the dashes)."""
    names = set()
    for action in parser._actions:  # noqa: SLF001 (argparse has no public accessor)
        names |= {s[2:] for s in action.option_strings if s.startswith("--")}
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                names |= _option_names(sub)
    return names


def parse_args(parser: argparse.ArgumentParser,
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`parser.parse_args(argv)` accepting `--foo_bar` for `--foo-bar` (and the reverse)."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    return parser.parse_args(normalize_flags(argv, _option_names(parser)))


def run_argparse(main: Callable[[argparse.Namespace], int | None], args: argparse.Namespace,
                 ) -> int:
    """`main(args)` with user errors as one `error:` line and status 2 (returned)."""
    try:
        return int(main(args) or 0)
    except USER_ERRORS as e:
        if show_tracebacks():
            raise
        sys.stdout.flush()
        print(f"error: {error_message(e)}", file=sys.stderr, flush=True)
        return EXIT_USAGE
