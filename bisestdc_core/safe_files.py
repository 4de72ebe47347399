"""Limits on the files the project reads, and on the folders it writes into.

* :func:`require_regular_file`: weights, datasets, bags and configs must be regular files;
  FIFOs (an ``open()`` would block forever), devices, folders and symlink loops are refused by
  name, with ``os.stat`` (which never blocks) before anything opens them.
* :func:`check_text_limits` / :func:`read_limited_yaml`: a YAML text's size and nesting are
  bounded before a parser sees it (a file 3000 brackets deep makes the parsers recurse for
  minutes, then crash).
* :func:`check_output_dir`: an output folder is made and proven writable before any work.

Writing files (atomically, with their sidecars) is :mod:`bisestdc_core.artefacts`. No other
project imports: every module (checkpoints, configs, bags) can use it; callers pass the error
type their command-line boundary reports.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from bisestdc_core.artefacts import temp_path

# ---- regular files ---------------------------------------------------------------------------


def require_regular_file(path: str | os.PathLike, what: str,
                         error: type[Exception] = ValueError) -> Path:
    """``path`` as a Path if it is a regular file (symlinks followed), else raise ``error``.

    The message names ``what`` and the path and says what it is instead (missing, a folder, a
    FIFO, a device, a socket, a symlink loop). Never opens the file, so never blocks.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {path}: no such file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{what} {path}: a symlink loop, not a file") from None
        raise error(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {path}: {_kind(st.st_mode)}, not a regular file")
    return path


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def read_limited_text(path: str | os.PathLike, what: str, max_bytes: int,
                      error: type[Exception] = ValueError) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` bytes (checked before reading)."""
    path = require_regular_file(path, what, error)
    size = path.stat().st_size
    if size > max_bytes:
        raise error(f"{what} {path}: {size} bytes, more than the {max_bytes} allowed")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise error(f"{what} {path}: more than the {max_bytes} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


# ---- YAML size and nesting --------------------------------------------------------------------

MAX_YAML_DEPTH = 64
_OPEN, _CLOSE = "[{", "]}"
_SEQ_ITEM = re.compile(r"(?:-[ \t]+)+")


def nesting_depth(text: str) -> int:
    """An upper bound of a YAML text's nesting: flow brackets plus block indentation levels.

    Cheap and conservative: brackets inside quoted strings count too (a limit far above any
    real config keeps that harmless), and ``- - x`` counts one level per dash.
    """
    deepest = 0
    flow = 0
    indents: list[int] = []
    for line in text.splitlines():
        stripped = line.lstrip(" \t")
        if flow == 0 and stripped and not stripped.startswith("#"):
            indent = len(line) - len(stripped)
            while indents and indents[-1] > indent:
                indents.pop()
            if not indents or indents[-1] < indent:
                indents.append(indent)
            dashes = _SEQ_ITEM.match(stripped)
            block = len(indents) + (dashes.group(0).count("-") if dashes else 0)
            deepest = max(deepest, block)
        for char in line:
            if char in _OPEN:
                flow += 1
                deepest = max(deepest, len(indents) + flow)
            elif char in _CLOSE and flow:
                flow -= 1
    return deepest


def check_text_limits(text: str, source: str, error: type[Exception] = ValueError,
                      max_depth: int = MAX_YAML_DEPTH) -> None:
    """Raise ``error`` naming ``source`` if ``text`` nests deeper than ``max_depth``."""
    depth = nesting_depth(text)
    if depth > max_depth:
        raise error(f"{source}: nested {depth} levels deep, more than the {max_depth} allowed")


def read_limited_yaml(path: str | os.PathLike, what: str, max_bytes: int, max_depth: int,
                      error: type[Exception] = ValueError) -> Any:
    """``path`` parsed by PyYAML's safe loader, once it passed the size and nesting limits;
    every refusal is ``error`` naming the file."""
    text = read_limited_text(path, what, max_bytes, error)
    check_text_limits(text, str(path), error, max_depth)
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise error(f"{path}: nested too deeply") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc


# ---- output folders ---------------------------------------------------------------------------


def check_output_dir(path: str | os.PathLike, what: str,
                     error: type[Exception] = ValueError) -> Path:
    """Create ``path`` (and parents) and check it is a writable folder; raise ``error`` naming
    ``what`` otherwise (an existing file, a folder that cannot be made, no write permission)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise error(f"{what}: {path} cannot be used as a folder ({exc.strerror or exc})") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise error(f"{what}: {path} is {_kind(st.st_mode)}, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"{what}: cannot create the folder {path} ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise error(f"{what}: the folder {path} is not writable")
    probe = temp_path(path / "write-check")
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise error(f"{what}: cannot write into the folder {path} "
                    f"({exc.strerror or exc})") from None
    return path
