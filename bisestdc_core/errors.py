"""The user-error vocabulary every layer raises in: the command lines (:mod:`bisestdc_core.cli`)
turn these into one line and exit 2; libraries raise them without depending on the command lines.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A value the user gave (a flag, a config key, a file) that cannot be used; the message
    names it."""


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
