"""rosbag2 writing with `rosbags`: sqlite3 or mcap storage, optional zstd compression.

Topics are declared with the ROS 2 Kilted typestore's definitions (see `bags.messages`), so
``ros2 bag`` reads what :class:`BagWriter` writes.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer, WriterError

from bisestdc_ros.bags.messages import typestore
from bisestdc_ros.bags.reader import BagError

STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
COMPRESSIONS = {"none": None, "file": CompressionMode.FILE, "message": CompressionMode.MESSAGE}
BAG_VERSION = 9  # rosbag2 metadata version written by Jazzy and Kilted


class BagWriter:
    """A rosbag2 being written: topics are added once, messages stamped in nanoseconds.

    Args:
        path: the bag folder to create (must not exist).
        storage: ``sqlite3`` or ``mcap``.
        compression: ``none``, ``file`` (the whole storage file zstd-compressed when closed) or
            ``message`` (each message zstd-compressed; sqlite3 only, as rosbag2 allows).
        custom_data: metadata ``custom_data`` entries (e.g. :data:`CLASS_SET_KEY`).

    Raises:
        BagError: the path exists or the options are unknown or refused by rosbag2.
    """

    def __init__(self, path: str | Path, storage: str = "sqlite3", compression: str = "none",
                 custom_data: dict[str, str] | None = None):
        if storage not in STORAGES:
            raise BagError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        if compression not in COMPRESSIONS:
            raise BagError(
                f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
        if storage == "mcap" and compression == "message":
            # rosbag2 refuses to write it, and mcap readers cannot decode zstd inside records
            # (mcap compresses whole chunks instead).
            raise BagError("mcap storage does not take per-message compression (rosbag2 refuses "
                           "it); use --compression file, or sqlite3 storage")
        self.path = Path(path)
        try:
            self._writer = Writer(self.path, version=BAG_VERSION,
                                  storage_plugin=STORAGES[storage])
        except WriterError as error:
            raise BagError(f"cannot create bag {self.path}: {error}") from error
        mode = COMPRESSIONS[compression]
        if mode is not None:
            self._writer.set_compression(mode, CompressionFormat.ZSTD)
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, value)
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # rosbags closes (writes metadata.yaml) on success and aborts on an exception.
        self._writer.__exit__(exc_type, exc, tb)

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare ``topic`` with its message type (before writing to it)."""
        if topic in self._connections:
            raise BagError(f"topic {topic} added twice to {self.path}")
        self._connections[topic] = self._writer.add_connection(topic, msgtype,
                                                               typestore=typestore())
        self.counts[topic] = 0

    def write(self, topic: str, msg: Any, timestamp: int) -> None:
        """Serialise ``msg`` and write it to ``topic`` with bag time ``timestamp`` (ns)."""
        connection = self._connections[topic]
        self._writer.write(connection, timestamp,
                           typestore().serialize_cdr(msg, connection.msgtype))
        self.counts[topic] += 1
