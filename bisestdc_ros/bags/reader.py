"""rosbag2 reading with `rosbags` (no rosbag2_py, no ROS installation needed).

:class:`BagReader` wraps ``rosbags.rosbag2.Reader`` (a folder is always a rosbag2, whatever its
name: ``ros2 bag record -o run.bag`` makes such folders) and turns every way a bag can be
unreadable (missing folder, broken metadata.yaml, truncated database or mcap file) into one
:class:`BagError` whose message names the bag. Only the message types of the topics read are
resolved, on first use: a bag may hold service events or types no typestore knows. A type the
ROS 2 Kilted typestore knows is deserialised with it (sensor_msgs/Image has not changed since
Foxy); any other type with the definition the bag stores.

The label class set a bag was made for is recorded in its metadata ``custom_data`` under
:data:`CLASS_SET_KEY` (rosbag2 metadata version 6 and later keep it; ``ros2 bag info`` shows it).
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.interfaces import Connection, MessageDefinitionFormat
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys import (
    Stores,
    TypesysError,
    get_types_from_idl,
    get_types_from_msg,
    get_typestore,
)
from rosbags.typesys.store import Typestore

from bisestdc_core.safe_files import read_limited_yaml, require_regular_file
from bisestdc_ros.bags.messages import IMAGE_TYPES, format_stamp, typestore

CLASS_SET_KEY = "bisestdc.class_set"  # custom_data key: the label class set of the bag

# Errors rosbags and the storage libraries raise for files that are not (complete) bags.
_READ_ERRORS = (ReaderError, sqlite3.Error, struct.error, OSError, ValueError, KeyError,
                EOFError)
# Errors of deserialising one message (a corrupt record, a definition that does not fit).
_MESSAGE_ERRORS = (SerdeError, TypesysError, ValueError, IndexError, struct.error, KeyError,
                   UnicodeDecodeError)


class BagError(RuntimeError):
    """A bag that cannot be used; the message names the bag (and topic) and says why."""


# --- metadata.yaml checks, before rosbags (ruamel.yaml) parses it --------------------------------

METADATA = "metadata.yaml"
# A metadata.yaml of a bag with hundreds of topics and files is well under a MiB, nesting about
# 6 levels (QoS profiles in it). Deeper or bigger files make ruamel.yaml recurse until it
# crashes (or takes minutes): refused before parsing.
MAX_METADATA_BYTES = 16 << 20
MAX_METADATA_DEPTH = 32
_STORAGE_SUFFIXES = (".db3", ".mcap", ".zstd")


def _need(where: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise BagError(f"{where}: must be {what}, got {'null' if value is None else repr(value)}")
    return value


def _count(where: str, value: Any) -> None:
    if _need(where, value, int, "a whole number") < 0:
        raise BagError(f"{where}: must not be negative, got {value!r}")


def _check_metadata(meta: Path, doc: Any) -> list[str]:
    """The storage file names of a parsed metadata.yaml, after checking the keys rosbags reads
    for their types (message counts, times, topics, files)."""
    top = "rosbag2_bagfile_information"
    info = _need(f"{meta}: '{top}'", (doc or {}).get(top) if isinstance(doc, dict) else doc,
                 dict, "a mapping")
    key = f"{meta}: '{top}."
    _need(f"{key}version'", info.get("version"), int, "a whole number")
    if "message_count" in info:
        _count(f"{key}message_count'", info["message_count"])
    for name in ("duration", "starting_time"):
        if name in info:
            value = _need(f"{key}{name}'", info[name], dict, "a mapping")
            for sub, number in value.items():
                _need(f"{key}{name}.{sub}'", number, int, "a whole number")
    topics = _need(f"{key}topics_with_message_count'",
                   info.get("topics_with_message_count", []), list, "a list")
    for i, entry in enumerate(topics):
        where = f"{key}topics_with_message_count[{i}]"
        _need(f"{where}'", entry, dict, "a mapping")
        _count(f"{where}.message_count'", entry.get("message_count"))
        topic = _need(f"{where}.topic_metadata'", entry.get("topic_metadata"), dict, "a mapping")
        for name in ("name", "type"):
            _need(f"{where}.topic_metadata.{name}'", topic.get(name), str, "a string")
    paths = _need(f"{key}relative_file_paths'", info.get("relative_file_paths", []), list,
                  "a list")
    for i, rel in enumerate(paths):
        _need(f"{key}relative_file_paths[{i}]'", rel, str, "a file name")
    for i, entry in enumerate(_need(f"{key}files'", info.get("files", []), list, "a list")):
        _need(f"{key}files[{i}]'", entry, dict, "a mapping")
        if "message_count" in entry:
            _count(f"{key}files[{i}].message_count'", entry["message_count"])
    return paths


def check_bag_folder(path: Path) -> None:
    """Refuse a bag folder rosbags would crash or block on, with one line naming the file.

    metadata.yaml must be a regular file of bounded size and nesting whose keys have the types
    rosbags reads; the storage files (those it lists and any ``.db3``/``.mcap`` there) must be
    regular files: a FIFO would block the reader's ``open()`` forever.
    """
    meta = path / METADATA
    storage: list[Path] = []
    if meta.exists() or meta.is_symlink():
        doc = read_limited_yaml(meta, "bag metadata", MAX_METADATA_BYTES, MAX_METADATA_DEPTH,
                                BagError)
        storage += [path / rel for rel in _check_metadata(meta, doc)]
    try:
        storage += [p for p in path.iterdir() if p.suffix in _STORAGE_SUFFIXES]
    except OSError as exc:
        raise BagError(f"cannot list bag folder {path}: {exc.strerror or exc}") from None
    for file in dict.fromkeys(storage):
        require_regular_file(file, "bag storage file", BagError)


# --- reading ----------------------------------------------------------------------------------


class BagReader:
    """A rosbag2 (sqlite3 or mcap, compressed files or messages) opened for reading.

    Use as a context manager. ``topics`` maps topic -> message type, ``counts`` topic ->
    messages, ``custom_data`` the metadata's custom_data (empty before version 6).

    Raises:
        BagError: the path is missing or is not a readable rosbag2 (message names the path).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag not found: {self.path}")
        if self.path.is_file() and self.path.suffix == ".bag":
            raise BagError(f"{self.path} is a ROS 1 bag; convert it first "
                           f"(rosbags-convert --src {self.path} --dst <folder>)")
        if self.path.is_dir():
            check_bag_folder(self.path)
        else:
            require_regular_file(self.path, "bag", BagError)
        self._reader: Reader | None = None
        self._stores: dict[str, Typestore] = {}
        self.topics: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.custom_data: dict[str, str] = {}

    def __enter__(self) -> BagReader:
        try:
            reader = Reader(self.path)
            reader.open()
        except _READ_ERRORS as error:
            raise BagError(f"cannot read bag {self.path} (corrupt or not a rosbag2): "
                           f"{error}") from error
        self._reader = reader
        for connection in reader.connections:
            self.topics[connection.topic] = connection.msgtype
            self.counts[connection.topic] = (self.counts.get(connection.topic, 0)
                                             + int(connection.msgcount))
        metadata = getattr(reader.storage, "metadata", None)  # a folder's metadata.yaml
        self.custom_data = dict(getattr(metadata, "custom", None) or {})
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def class_set(self) -> str | None:
        """The label class set recorded by make-bag (None for other bags)."""
        return self.custom_data.get(CLASS_SET_KEY) or None

    def describe_topics(self) -> str:
        """``topic (type, N msgs)`` per topic, for error messages."""
        if not self.topics:
            return "none"
        return ", ".join(f"{t} ({m.rsplit('/', 1)[-1]}, {self.counts.get(t, 0)} msgs)"
                         for t, m in sorted(self.topics.items()))

    def require_topic(self, topic: str, msgtypes: Iterable[str]) -> str:
        """Check that ``topic`` exists with one of ``msgtypes``; returns its type.

        Raises:
            BagError: naming the bag, the topic and the topics that do exist.
        """
        msgtypes = tuple(msgtypes)
        if topic not in self.topics:
            raise BagError(f"topic {topic} not in bag {self.path}; its topics: "
                           f"{self.describe_topics()}")
        if self.topics[topic] not in msgtypes:
            raise BagError(f"topic {topic} in bag {self.path} has type {self.topics[topic]}, "
                           f"expected {' or '.join(msgtypes)}")
        return self.topics[topic]

    def image_topic(self, requested: str | None) -> str:
        """The image topic to use: ``requested``, else the bag's only Image/CompressedImage
        topic that is not a labels-like topic.

        Raises:
            BagError: requested topic missing, or none / several candidates.
        """
        if requested:
            self.require_topic(requested, IMAGE_TYPES)
            return requested
        candidates = [t for t, m in sorted(self.topics.items())
                      if m in IMAGE_TYPES and not _looks_like_labels(t)]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise BagError(f"no image topic in bag {self.path}; its topics: "
                           f"{self.describe_topics()}")
        raise BagError(f"bag {self.path} has several image topics ({', '.join(candidates)}); "
                       f"choose one with --image-topic")

    def messages(self, topics: Iterable[str],
                 on_bad_message: Callable[[str, int, str], None] | None = None,
                 ) -> Iterator[tuple[str, int, Any]]:
        """(topic, bag timestamp ns, deserialised message) of ``topics`` in bag time order.

        Args:
            topics: the topics to read (only their types are resolved).
            on_bad_message: called with (topic, bag timestamp, reason) for a message that
                cannot be deserialised, which is then skipped; without it such a message
                raises BagError.

        Raises:
            BagError: unreadable storage (truncated file), or a bad message (see above).
        """
        assert self._reader is not None, "use BagReader as a context manager"
        wanted = set(topics)
        connections = [c for c in self._reader.connections if c.topic in wanted]
        if not connections:
            return
        stores = {c.msgtype: self._store_for(c) for c in connections}
        try:
            for connection, timestamp, raw in self._reader.messages(connections=connections):
                try:
                    msg = stores[connection.msgtype].deserialize_cdr(raw, connection.msgtype)
                except _MESSAGE_ERRORS as error:
                    reason = (f"bag {self.path}, topic {connection.topic}, bag time "
                              f"{format_stamp(timestamp)}: cannot deserialise "
                              f"{connection.msgtype} ({type(error).__name__}: {error})")
                    if on_bad_message is None:
                        raise BagError(reason) from error
                    on_bad_message(connection.topic, int(timestamp), reason)
                    continue
                yield connection.topic, int(timestamp), msg
        except _READ_ERRORS as error:
            raise BagError(f"cannot read messages of {sorted(wanted)} from bag {self.path} "
                           f"(corrupt?): {error}") from error

    def _store_for(self, connection: Connection) -> Typestore:
        """The typestore that deserialises ``connection``'s type (resolved once per type)."""
        msgtype = connection.msgtype
        if msgtype in self._stores:
            return self._stores[msgtype]
        if msgtype in typestore().fielddefs:
            store = typestore()
        else:
            try:
                types = _types_from_definition(connection)
                store = get_typestore(Stores.EMPTY)
                store.register(types)
            except (TypesysError, ValueError, AssertionError) as error:
                raise BagError(f"bag {self.path}, topic {connection.topic}: cannot use the "
                               f"definition of {msgtype} ({error})") from error
            if msgtype not in store.fielddefs:
                raise BagError(f"bag {self.path}, topic {connection.topic}: no definition of "
                               f"{msgtype} in the bag, and ROS 2 Kilted does not know it")
        self._stores[msgtype] = store
        return store


def _types_from_definition(connection: Connection) -> dict[str, Any]:
    """The types a connection's stored definition declares ({} if it stores none)."""
    msgdef = connection.msgdef
    if msgdef.format == MessageDefinitionFormat.MSG:
        return dict(get_types_from_msg(msgdef.data, connection.msgtype))
    if msgdef.format == MessageDefinitionFormat.IDL:
        separator = "=" * 80 + "\n"
        types: dict[str, Any] = {}
        blocks = msgdef.data.split(separator)[1:] if msgdef.data.startswith(
            f"{separator}IDL: ") else [f"IDL: \n{msgdef.data}"]
        for block in blocks:
            types.update(get_types_from_idl(block.split("\n", 1)[1]))
        return types
    return {}


def _looks_like_labels(topic: str) -> bool:
    """Label and segmentation outputs are images too; they are never the camera."""
    lowered = topic.lower()
    return any(word in lowered for word in ("label", "segmentation", "/depth"))
