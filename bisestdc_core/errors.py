"""The user-error vocabulary every layer raises in: the command lines (:mod:`bisestdc_core.cli`)
turn these into one line and exit 2; libraries raise them without depending on the command lines.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A value the user gave (a flag, a config key, a file) that cannot be used; the message
    names it."""


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read or does not fit the network (raised by
    :mod:`bisestdc_core.models.checkpoint`; defined here so that catching it loads no torch)."""


def one_line(exc: BaseException) -> str:
    """An error message on one line (PyYAML's span several, with a caret drawing)."""
    return " ".join(str(exc).split())
