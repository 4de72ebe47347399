"""Small files a run writes (JSON, JSON lines), replaced atomically.

The writing itself is :mod:`bisestdc_core.safe_files`' one atomic-write helper (temp file
``.NAME.PID.RANDOM.tmp`` beside the target, fsync, rename), which
:func:`~bisestdc_core.safe_files.remove_stale_temps` recognises when a run starts.
"""

from __future__ import annotations

from pathlib import Path

from bisestdc_core.safe_files import atomic_write_text as _atomic_write_text


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder and rename, so a kill never leaves half a file."""
    _atomic_write_text(path, text)
