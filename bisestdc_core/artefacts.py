"""The files the project writes: atomic writes, their stale temps, the cache, hashes, sidecars.

* :func:`atomic_path` / :func:`atomic_write_bytes` / :func:`atomic_write_text`: the one
  atomic-write helper: a temp file in the same folder named ``.NAME.PID.RANDOM.tmp``, fsync,
  rename over the target (companion files such as a sidecar first), so a kill leaves the old
  file or the new one, never half a file.
* :func:`remove_stale_temps`: removes the temp files a killed process left in a folder
  (only the project's own pattern, only those of processes no longer alive).
* :func:`cache_dir`: the per-user cache folder of exports and engines.
* :func:`file_sha256`: a file's hash (hashlib, no torch: the runtime of exported models uses
  it to key its caches).
* :func:`sidecar_path` / :func:`read_json_sidecar` / :func:`write_json_sidecar`: the JSON file
  beside a model file (``x.onnx`` -> ``x.onnx.json``); what it holds is
  :mod:`bisestdc_core.inference.model_files`' business.

No project imports: checkpoints, exports, engines, training and the ROS tools all use it;
callers pass the error type their command-line boundary reports.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# ---- atomic writes -----------------------------------------------------------------------------

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


# ---- cache, hashes, sidecars --------------------------------------------------------------------

_HASH_CHUNK = 1 << 20


def cache_dir(kind: str) -> Path:
    """``$BISESTDC_CACHE_DIR/kind``, else ``$XDG_CACHE_HOME/bisestdc/kind`` (~/.cache); created."""
    root = os.environ.get("BISESTDC_CACHE_DIR")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(xdg) / "bisestdc"
    path = Path(root) / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (a checkpoint never sits in memory twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.onnx.json`` (engines alike: ``x.engine`` -> ``x.engine.json``)."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


def read_json_object(path: str | os.PathLike,
                     error: type[Exception] = ValueError) -> dict[str, Any]:
    """The JSON object in ``path``; ``error`` naming the file when it is not valid JSON or not
    an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise error(f"{path}: not a sidecar (found {type(data).__name__})")
    return data


def read_json_sidecar(model_path: str | os.PathLike,
                      error: type[Exception] = ValueError) -> dict[str, Any] | None:
    """The JSON object beside ``model_path`` (:func:`sidecar_path`), or None if it has none."""
    path = sidecar_path(model_path)
    return read_json_object(path, error) if path.is_file() else None


def write_json_sidecar(model_path: str | os.PathLike, data: Mapping[str, Any]) -> None:
    """Write ``data`` beside ``model_path`` atomically: a reader never sees half a sidecar."""
    atomic_write_text(sidecar_path(model_path), json.dumps(dict(data), indent=2) + "\n")
