"""Safe handling of the files the project reads and writes.

* :func:`require_regular_file`: weights, datasets, bags and configs must be regular files;
  FIFOs (an ``open()`` would block forever), devices, folders and symlink loops are refused by
  name, with ``os.stat`` (which never blocks) before anything opens them.
* :func:`check_text_limits`: a YAML text's size and nesting are bounded before a parser sees
  it (a file 3000 brackets deep makes the parsers recurse for minutes, then crash).
* :func:`atomic_path` / :func:`atomic_write_bytes` / :func:`atomic_write_text`: the one
  atomic-write helper: a temp file in the same folder named ``.NAME.PID.RANDOM.tmp``, fsync,
  rename over the target, so a kill leaves the old file or the new one, never half a file.
* :func:`remove_stale_temps`: removes the temp files a killed process left in a folder
  (only the project's own pattern, only those of processes no longer alive).

No project imports: every module (checkpoints, configs, bags) can use it; callers pass the
error type their command-line boundary reports.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

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


# ---- atomic writes ---------------------------------------------------------------------------

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(?:\.json)?$")
# Names earlier versions used: ``.NAME.XXXXXXXX.tmp`` (mkstemp), ``.NAME.PID.tmp``, ``.NAME.tmp``.
_LEGACY_TEMP = re.compile(r"^\..+\.tmp(?:\.json)?$")
_PROCESS_START = time.time()


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temp name beside ``path``: ``.NAME.PID.RANDOM.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _fsync(path: Path, ignore: tuple[type[OSError], ...] = (FileNotFoundError,)) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk; ``ignore``: errors to skip."""
    with contextlib.suppress(*ignore):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int | None = 0o644,
                companions: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync it and rename it over ``path``.

    ``companions`` are suffixes of files the writer makes beside the temp file (``".json"``:
    a model's sidecar), renamed first onto the same suffix of ``path`` so a reader that finds
    the file always finds them. On an error every temp file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    extra = [(tmp.with_name(tmp.name + s), path.with_name(path.name + s)) for s in companions]
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        for src, _dst in extra:
            _fsync(src)
        _fsync(tmp)
        for src, dst in extra:
            os.replace(src, dst)
        os.replace(tmp, path)
    except BaseException:
        for leftover in [tmp, *(src for src, _dst in extra)]:
            leftover.unlink(missing_ok=True)
        raise
    _fsync(path.parent, ignore=(OSError,))  # some file systems cannot fsync a folder


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, mode: int | None = 0o644) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    except OSError:
        return False
    return True


def is_stale_temp(entry: Path) -> bool:
    """Whether ``entry`` is a temp file of this project's pattern left by a dead process.

    Our own pattern carries the writer's pid: stale when that process is gone. Older patterns
    without a (parseable) pid are stale when modified before this process started.
    """
    match = _TEMP.match(entry.name)
    try:
        st = entry.lstat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    if match:
        return not _pid_alive(int(match.group("pid")))
    return bool(_LEGACY_TEMP.match(entry.name)) and st.st_mtime < _PROCESS_START


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Remove the stale temp files (:func:`is_stale_temp`) in ``folder``; return how many.

    Logs the count when there were any. A missing folder has none.
    """
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        if is_stale_temp(entry):
            try:
                entry.unlink()
            except OSError as exc:
                log.warning("cannot remove stale temp file %s: %s", entry, exc)
                continue
            removed += 1
    if removed:
        log.info("removed %d stale temp file(s) of killed runs from %s", removed, folder)
    return removed


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
