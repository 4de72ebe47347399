"""What the package's command lines share: user errors as one line, exit 2.

A user error (a bad flag, a bad config key or value, a missing or unreadable file the user
named, a dataset with bad files, a checkpoint that does not fit) is the user's to fix, so it is
printed as one line naming the key, file or value, and the command exits with status 2, as
argparse does for a bad flag. ``--debug`` re-raises it with its traceback. Anything else is a
bug and keeps its traceback.

Every console script and ``python -m`` entry runs its work through :func:`run_command`, the one
boundary that decides what is the user's to fix: the project's errors (:data:`USER_ERRORS`:
usage and config errors, checkpoints, model cards, datasets), the errors a caller names (the
ROS package's bag and evaluation errors: the core imports no ROS), an ``OSError`` on a path the
user named (an option's value or a file under it) and a ``RecursionError`` (a hostile input
nested too deeply for a reader).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bisestdc_core.data.check import DatasetCheckError
from bisestdc_core.errors import CheckpointError, UsageError, one_line
from bisestdc_core.model_card import ModelCardError

# Paths the user gives are checked and reported as one of these (a training config error is a
# UsageError); an OSError from elsewhere (a package file missing from the installation, say) is
# not the user's to fix and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UsageError, CheckpointError, DatasetCheckError,
                                                 ModelCardError)
USAGE_EXIT = 2


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """ArgumentDefaultsHelpFormatter that leaves out empty defaults (None, False) and those the
    help text already describes (it says "default")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of its one-line message")


def require_file(path: str | os.PathLike | None, flag: str) -> None:
    """Refuse ``path`` (the value of option ``flag``) unless it is an existing regular file.

    Raises:
        UsageError: ``"<flag>: no such file: <path>"`` or ``"<flag>: not a file (a
            directory): <path>"``.
    """
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag}: not a file (a directory): {path}")
    if not path.is_file():
        raise UsageError(f"{flag}: no such file: {path}")


def _named_paths(args: argparse.Namespace) -> Iterator[str]:
    """The absolute forms of the paths (and path-like strings) among ``args``' values."""
    for value in vars(args).values():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, (str, os.PathLike)) and str(item) not in ("", "."):
                try:
                    yield os.path.abspath(os.fspath(item))
                except (TypeError, ValueError):  # NUL bytes and the like: not a path
                    continue


def _on_named_path(exc: OSError, args: argparse.Namespace) -> bool:
    """Whether ``exc`` is about a path the user named (an option's value, or under it)."""
    failed = [os.path.abspath(os.fspath(f)) for f in (exc.filename, exc.filename2)
              if isinstance(f, (str, os.PathLike)) and str(f)]
    for named in _named_paths(args):
        for path in failed:
            if path == named or path.startswith(named.rstrip(os.sep) + os.sep):
                return True
    return False


def error_message(exc: BaseException, args: argparse.Namespace) -> str:
    """The one-line message of an expected error."""
    if isinstance(exc, RecursionError):
        files = sorted({os.fspath(v) for v in vars(args).values()
                        if isinstance(v, (str, os.PathLike)) and Path(v).is_file()})
        where = f" ({', '.join(files)})" if files else ""
        return f"an input file{where} is nested too deeply to read: {one_line(exc)}"
    return one_line(exc)


def is_user_error(exc: BaseException, args: argparse.Namespace,
                  errors: tuple[type[BaseException], ...] = ()) -> bool:
    """Whether :func:`run_command` reports ``exc`` in one line (see the module's doc)."""
    if isinstance(exc, USER_ERRORS + tuple(errors) + (RecursionError,)):
        return True
    return isinstance(exc, OSError) and _on_named_path(exc, args)


def run_command(body: Callable[[argparse.Namespace], int], args: argparse.Namespace,
                errors: tuple[type[BaseException], ...] = ()) -> int:
    """``body(args)`` inside the package's one error boundary.

    A user error (:func:`is_user_error`: the project's errors, ``errors`` the caller adds, an
    ``OSError`` on a path among ``args``, a ``RecursionError``) prints one line
    ``error: <message>`` to stderr and returns 2; with ``args.debug`` it is re-raised with its
    traceback. Anything else propagates (a bug keeps its traceback).
    """
    try:
        return body(args)
    except Exception as exc:  # noqa: BLE001 - sorted by is_user_error, else re-raised
        if getattr(args, "debug", False) or not is_user_error(exc, args, errors):
            raise
        print(f"error: {error_message(exc, args)}", file=sys.stderr)
        return USAGE_EXIT


def tool_options(parser: argparse.ArgumentParser, **values: Any) -> argparse.Namespace:
    """What ``parser`` would parse: its defaults, with ``values`` (by option name, already of
    the option's type) over them. How code runs a tool's function without spelling a command
    line, with the tool's own defaults.

    Raises:
        TypeError: a name that is none of the parser's options, or a required option missing.
    """
    # argparse lists its options only in _actions; the help action has no value.
    actions = [a for a in parser._actions if a.default is not argparse.SUPPRESS]
    known = {a.dest for a in actions}
    unknown = sorted(set(values) - known)
    missing = sorted(a.dest for a in actions if a.required and a.dest not in values)
    if unknown or missing:
        raise TypeError(f"{parser.prog}: unknown options {unknown}, missing options {missing}")
    return argparse.Namespace(**{**{a.dest: a.default for a in actions}, **values})
