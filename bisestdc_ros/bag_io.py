"""rosbag2 reading and writing with `rosbags` (no rosbag2_py, no ROS installation needed).

Writing: :class:`BagWriter` (sqlite3 or mcap storage, optional zstd file/message compression)
plus constructors for the messages the bag tools write (Header, Image, CompressedImage,
CameraInfo, mono8 labels), all built from the ``ROS2_KILTED`` typestore so the bag carries
the definitions ``ros2 bag`` expects.

Reading: :class:`BagReader` wraps ``rosbags.rosbag2.Reader`` (a folder is always a rosbag2,
whatever its name: ``ros2 bag record -o run.bag`` makes such folders) and turns every way a bag
can be unreadable (missing folder, broken metadata.yaml, truncated database or mcap file) into
one :class:`BagError` whose message names the bag. Only the message types of the topics read
are resolved, on first use: a bag may hold service events or types no typestore knows. A type
the ROS 2 Kilted typestore knows is deserialised with it (sensor_msgs/Image has not changed
since Foxy); any other type with the definition the bag stores. Messages are rosbags'
dataclasses, whose field names match rclpy's, so `image_codec` decodes them unchanged.

The label class set a bag was made for is recorded in its metadata ``custom_data`` under
:data:`CLASS_SET_KEY` (rosbag2 metadata version 6 and later keep it; ``ros2 bag info`` shows it).

Stamps are integer nanoseconds everywhere (``sec * 1e9 + nanosec``): exact keys for matching
images, labels and node outputs.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from rosbags.interfaces import Connection, MessageDefinitionFormat
from rosbags.rosbag2 import (
    CompressionFormat,
    CompressionMode,
    Reader,
    ReaderError,
    StoragePlugin,
    Writer,
    WriterError,
)
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
from bisestdc_ros.image_codec import (
    ImageDecodeError,
    compressed_msg_to_frame,
    image_msg_to_frame,
)

log = logging.getLogger(__name__)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)

STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
COMPRESSIONS = {"none": None, "file": CompressionMode.FILE, "message": CompressionMode.MESSAGE}
BAG_VERSION = 9  # rosbag2 metadata version written by Jazzy and Kilted

NS_PER_S = 1_000_000_000
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


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The message definitions of ROS 2 Kilted (the distribution this package targets)."""
    return get_typestore(Stores.ROS2_KILTED)


# --- stamps and messages ----------------------------------------------------------------------


def stamp_ns(msg: Any) -> int:
    """Header stamp of a message (rclpy or rosbags) as integer nanoseconds."""
    stamp = msg.header.stamp
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def header_msg(stamp: int, frame_id: str) -> Any:
    """std_msgs/Header with ``stamp`` (ns)."""
    types = typestore().types
    time = types["builtin_interfaces/msg/Time"](sec=stamp // NS_PER_S, nanosec=stamp % NS_PER_S)
    return types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def image_msg(image: np.ndarray, encoding: str, header: Any) -> Any:
    """H x W x C (or H x W) uint8 array -> sensor_msgs/Image with ``encoding`` (no padding)."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"image must be H x W [x C] uint8, got {image.shape} {image.dtype}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    return typestore().types[IMAGE](
        header=header, height=int(image.shape[0]), width=int(image.shape[1]), encoding=encoding,
        is_bigendian=0, step=int(image.shape[1] * channels),
        data=np.ascontiguousarray(image).reshape(-1),
    )


def labels_msg(labels: np.ndarray, header: Any) -> Any:
    """H x W uint8 train ids -> sensor_msgs/Image mono8."""
    if labels.ndim != 2:
        raise ValueError(f"labels must be H x W, got {labels.shape}")
    return image_msg(labels, "mono8", header)


def compressed_image_msg(image_bgr: np.ndarray, fmt: str, header: Any,
                         jpeg_quality: int = 95) -> Any:
    """H x W x 3 BGR -> sensor_msgs/CompressedImage, as image_transport's compressed plugin.

    Args:
        image_bgr: H x W x 3 uint8 BGR.
        fmt: ``jpeg`` or ``png``.
        header: std_msgs/Header.
        jpeg_quality: 1..100 (the plugin's default is 95).
    """
    if fmt == "jpeg":
        ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    elif fmt == "png":
        ok, encoded = cv2.imencode(".png", image_bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        raise ValueError(f"compressed format must be jpeg or png, got {fmt!r}")
    if not ok:
        raise ValueError(f"{fmt} encoding failed for an image of shape {image_bgr.shape}")
    # The format string compressed_image_transport writes for a bgr8 source.
    return typestore().types[COMPRESSED_IMAGE](
        header=header, format=f"bgr8; {fmt} compressed bgr8", data=encoded.reshape(-1))


def camera_info_msg(height: int, width: int, header: Any,
                    horizontal_fov_deg: float = 60.0) -> Any:
    """sensor_msgs/CameraInfo of an undistorted pinhole camera with a plausible focal length.

    The bag sources carry no calibration; a 60 degree horizontal field of view with the principal
    point at the image centre is what a typical automotive front camera has.
    """
    focal = (width / 2.0) / np.tan(np.radians(horizontal_fov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    types = typestore().types
    return types[CAMERA_INFO](
        header=header, height=int(height), width=int(width), distortion_model="plumb_bob",
        d=np.zeros(5, np.float64),
        k=np.array([focal, 0, cx, 0, focal, cy, 0, 0, 1], np.float64),
        r=np.eye(3, dtype=np.float64).reshape(-1),
        p=np.array([focal, 0, cx, 0, 0, focal, cy, 0, 0, 0, 1, 0], np.float64),
        binning_x=0, binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                      do_rectify=False),
    )


# --- decoding ---------------------------------------------------------------------------------


def frame_from_msg(msg: Any, msgtype: str) -> tuple[np.ndarray, str]:
    """Image or CompressedImage -> (H x W x 3 uint8 frame, channel order), as segment_node does.

    Raises:
        ImageDecodeError: an encoding or payload the node could not decode either.
    """
    if msgtype == COMPRESSED_IMAGE:
        return compressed_msg_to_frame(msg)
    return image_msg_to_frame(msg)


def labels_from_msg(msg: Any, msgtype: str) -> np.ndarray:
    """A labels message (mono8 Image, or a PNG CompressedImage) -> H x W uint8 train ids.

    Raises:
        ImageDecodeError: not a single-channel 8-bit label image.
    """
    if msgtype == COMPRESSED_IMAGE:
        buffer = np.frombuffer(msg.data, np.uint8)
        labels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
        if labels is None or labels.ndim != 2 or labels.dtype != np.uint8:
            raise ImageDecodeError(f"labels must be a mono8 PNG (format {msg.format!r})")
        return labels
    if msg.encoding not in ("mono8", "8UC1"):
        raise ImageDecodeError(f"labels must be mono8, got encoding {msg.encoding!r}")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, np.uint8)
    if step < width or data.size < step * height:
        raise ImageDecodeError(f"labels data of {data.size} bytes does not hold {width} x "
                               f"{height} with step {step}")
    return data[: step * height].reshape(height, step)[:, :width]


def image_size(msg: Any, msgtype: str) -> tuple[int, int]:
    """(height, width) of an image message (compressed ones are decoded to find out)."""
    if msgtype == COMPRESSED_IMAGE:
        frame, _ = frame_from_msg(msg, msgtype)
        return int(frame.shape[0]), int(frame.shape[1])
    return int(msg.height), int(msg.width)


def wire_bytes(msg: Any) -> int:
    """Bytes one message of this image puts on the wire (what DDS has to carry)."""
    return int(np.asarray(msg.data).size)


# --- writing ----------------------------------------------------------------------------------


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


def format_stamp(stamp: int) -> str:
    """A stamp in ns as ``seconds.nanoseconds``."""
    return f"{stamp // NS_PER_S}.{stamp % NS_PER_S:09d}"


def _looks_like_labels(topic: str) -> bool:
    """Label and segmentation outputs are images too; they are never the camera."""
    lowered = topic.lower()
    return any(word in lowered for word in ("label", "segmentation", "/depth"))
