"""What the package's command lines share: user errors as one line, exit 2.

A user error (a bad flag, a bad config key or value, a missing or unreadable file the user
named, a dataset with bad files, a checkpoint that does not fit) is the user's to fix, so it is
printed as one line naming the key, file or value, and the command exits with status 2, as
argparse does for a bad flag. ``--debug`` re-raises it with its traceback. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from bisestdc_core.data.check import DatasetCheckError
from bisestdc_core.models.checkpoint import CheckpointError


class UsageError(ValueError):
    """A value the user gave (a flag, a config key, a file) that cannot be used; the message
    names it."""


# Paths the user gives are checked and reported as one of these (a training config error is a
# UsageError); an OSError from elsewhere (a package file missing from the installation, say) is
# not the user's to fix and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UsageError, CheckpointError, DatasetCheckError)
USAGE_EXIT = 2


def one_line(exc: BaseException) -> str:
    """An error message on one line (PyYAML's span several, with a caret drawing)."""
    return " ".join(str(exc).split())


def require_cuda_message(what: str) -> str:
    """Why CUDA is unavailable, for a one-line refusal that starts with ``what``."""
    import torch  # noqa: PLC0415 - only a refusal needs it

    if torch.version.cuda is None:
        reason = f"this torch ({torch.__version__}) is a CPU-only build"
    else:
        reason = f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
    return f"{what} but {reason}"


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


def run_command(body: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``body(args)``; a user error prints ``error: <message>`` to stderr and returns 2."""
    try:
        return body(args)
    except USER_ERRORS as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
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
