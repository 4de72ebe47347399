"""Reading the rosbag2 folders ROS 2 tools write, whatever their name, version and content.

No rosbag2 (rosbag2_py, ``ros2 bag``) can be installed here, so the bags are written with
rosbags in rosbag2's own layouts: the service-event topics of Jazzy/Kilted (whose mcap schema is
the raw ``.srv`` text, which no message parser reads), metadata versions 5 to 9 with the sqlite3
schema of the distribution that wrote them, compressed files and messages, folders named
``*.bag``, and bag times that differ from the header stamps (``ros2 bag record`` stores the
receive time).
"""

from __future__ import annotations

import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Writer

from bisestdc_ros import bag_eval
from bisestdc_ros.bags.messages import (
    IMAGE,
    header_msg,
    image_msg,
    labels_msg,
    stamp_ns,
    typestore,
)
from bisestdc_ros.bags.reader import CLASS_SET_KEY, BagError, BagReader
from bisestdc_ros.bags.writer import BagWriter
from bisestdc_ros.cli import make_bag

H, W = 8, 16
SERVICE_EVENT_TYPE = "rcl_interfaces/srv/GetParameters_Event"
# What rosbag2 (Jazzy, Kilted) stores as the mcap schema of a service-event topic: the .srv
# file, not the Event message's definition (ros2/rosbag2#2365).
SERVICE_SCHEMA = ("=" * 80 + "\nSRV: rcl_interfaces/srv/GetParameters\nstring[] names\n---\n"
                  "ParameterValue[] values\n")


def write_frames(bag: BagWriter, stamps: list[int], bag_offset_ns: int = 0) -> None:
    """Image and labels at ``stamps`` (header), written at stamp + ``bag_offset_ns`` bag time."""
    for stamp in stamps:
        header = header_msg(stamp, "camera")
        image = np.full((H, W, 3), stamp % 200, np.uint8)
        bag.write("/camera/image_raw", image_msg(image, "bgr8", header), stamp + bag_offset_ns)
        bag.write("/camera/labels_gt", labels_msg(np.ones((H, W), np.uint8), header),
                  stamp + bag_offset_ns)


def camera_bag(path: Path, storage: str = "sqlite3", compression: str = "none",
               service_events: bool = False, bag_offset_ns: int = 0) -> Path:
    with BagWriter(path, storage, compression) as bag:
        bag.add_topic("/camera/image_raw", IMAGE)
        bag.add_topic("/camera/labels_gt", IMAGE)
        if service_events:
            # Added like rosbag2 records it: the type name of the event, the raw .srv schema.
            connection = bag._writer.add_connection(
                "/camera_driver/get_parameters/_service_event", SERVICE_EVENT_TYPE,
                msgdef=SERVICE_SCHEMA, rihs01="RIHS01_" + "ab" * 32)
            bag._writer.write(connection, 1, bytes(24))
        write_frames(bag, [1_000_000_000 + i * 100_000_000 for i in range(3)], bag_offset_ns)
    return path


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_service_event_topics_do_not_stop_the_bag_from_opening(tmp_path, storage):
    bag = camera_bag(tmp_path / "drive", storage, service_events=True)
    with BagReader(bag) as reader:
        assert reader.topics["/camera_driver/get_parameters/_service_event"] == SERVICE_EVENT_TYPE
        assert reader.image_topic(None) == "/camera/image_raw"
        frames = list(reader.messages(["/camera/image_raw"]))
        assert [stamp_ns(m) for _, _, m in frames] == [1_000_000_000, 1_100_000_000,
                                                       1_200_000_000]
        # Asking for the service events themselves names the topic and what is wrong.
        with pytest.raises(BagError, match="_service_event.*GetParameters_Event"):
            list(reader.messages(["/camera_driver/get_parameters/_service_event"]))
    plan = bag_eval.inspect_bag(bag, None, "/camera/labels_gt")
    assert plan.frames == 3


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_types_no_typestore_knows_are_read_from_the_bag(tmp_path, storage):
    bag = tmp_path / "bag"
    with BagWriter(bag, storage) as writer:
        writer.add_topic("/camera/image_raw", IMAGE)
        writer.add_topic("/camera/labels_gt", IMAGE)
        # A vendor message: only its definition in the bag describes it.
        connection = writer._writer.add_connection(
            "/vehicle/wheel_speed", "acme_msgs/msg/WheelSpeed",
            msgdef="float64 front_left\nfloat64 front_right\n", rihs01="RIHS01_" + "cd" * 32)
        # CDR little endian: encapsulation header, then the two float64.
        writer._writer.write(connection, 5, bytes([0, 1, 0, 0]) + struct.pack("<dd", 1.5, 2.5))
        write_frames(writer, [1_000_000_000])
    with BagReader(bag) as reader:
        assert reader.topics["/vehicle/wheel_speed"] == "acme_msgs/msg/WheelSpeed"
        assert len(list(reader.messages(["/camera/image_raw"]))) == 1
        [(_, _, wheel)] = list(reader.messages(["/vehicle/wheel_speed"]))
        assert (wheel.front_left, wheel.front_right) == (1.5, 2.5)


def test_folder_named_like_a_ros1_bag_is_a_rosbag2(tmp_path):
    out = tmp_path / "run.bag"  # `ros2 bag record -o run.bag` and `make-bag --out run.bag`
    assert make_bag.main(["--source", "synthetic", "--frames", "2", "--height", str(H),
                          "--width", str(W), "--storage", "mcap", "--out", str(out)]) == 0
    with BagReader(out) as reader:
        assert reader.counts["/camera/image_raw"] == 2
        assert len(list(reader.messages(["/camera/image_raw"]))) == 2
    ros1 = tmp_path / "old.bag"
    ros1.write_bytes(b"#ROSBAG V2.0\n")
    with pytest.raises(BagError, match="ROS 1 bag"):
        BagReader(ros1)


def downgrade(bag: Path, version: int) -> None:
    """Rewrite a rosbags-written sqlite3 bag as the rosbag2 of metadata ``version`` writes it.

    Versions 5 (Humble) to 7 have no ros_distro (8); 5 has no custom_data (6) and no
    type_description_hash (7). Their sqlite3 schema is 3: no message_definitions table, no
    type hash column.
    """
    meta_path = bag / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    info = meta["rosbag2_bagfile_information"]
    info["version"] = version
    info.pop("ros_distro", None)
    if version < 7:
        for topic in info["topics_with_message_count"]:
            topic["topic_metadata"].pop("type_description_hash", None)
    if version < 6:
        info.pop("custom_data", None)
    meta_path.write_text(yaml.safe_dump(meta))
    db = sqlite3.connect(next(bag.glob("*.db3")))
    with db:
        db.execute("DROP TABLE message_definitions")
        db.execute("ALTER TABLE topics DROP COLUMN type_description_hash")
        db.execute("UPDATE schema SET schema_version = 3")
    db.close()


@pytest.mark.parametrize("version", [5, 6, 7, 8, 9])
def test_metadata_versions_5_to_9(tmp_path, version):
    bag = tmp_path / "bag"
    if version == 9:
        camera_bag(bag)
    else:
        writer = Writer(bag, version=8)
        with writer:
            for topic in ("/camera/image_raw", "/camera/labels_gt"):
                connection = writer.add_connection(topic, IMAGE, typestore=typestore())
                header = header_msg(7, "camera")
                writer.write(connection, 7, typestore().serialize_cdr(
                    labels_msg(np.zeros((H, W), np.uint8), header), IMAGE))
        if version < 8:
            downgrade(bag, version)
    with BagReader(bag) as reader:
        assert set(reader.topics) == {"/camera/image_raw", "/camera/labels_gt"}
        messages = list(reader.messages(["/camera/image_raw"]))
        assert len(messages) == (3 if version == 9 else 1)
        assert all(m.height == H and m.width == W for _, _, m in messages)


@pytest.mark.parametrize(("storage", "compression"), [
    ("sqlite3", "file"), ("sqlite3", "message"), ("mcap", "file"),
])
def test_compressed_bags_as_rosbag2_writes_them(tmp_path, storage, compression):
    bag = camera_bag(tmp_path / "bag", storage, compression)
    meta_path = bag / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    info = meta["rosbag2_bagfile_information"]
    assert info["compression_format"] == "zstd"
    info["compression_mode"] = compression.upper()  # rosbag2 writes FILE / MESSAGE
    meta_path.write_text(yaml.safe_dump(meta))
    with BagReader(bag) as reader:
        assert len(list(reader.messages(["/camera/image_raw", "/camera/labels_gt"]))) == 6


def test_stamps_are_taken_as_recorded(tmp_path):
    # ros2 bag record stores the receive time as bag time: 35 ms after the header stamp here.
    bag = camera_bag(tmp_path / "bag", bag_offset_ns=35_000_000)
    plan = bag_eval.inspect_bag(bag, None, "/camera/labels_gt")
    assert plan.stamps == [1_000_000_000, 1_100_000_000, 1_200_000_000]
    assert plan.bag_times == [1_035_000_000, 1_135_000_000, 1_235_000_000]
    assert plan.label_stamps == set(plan.stamps)


def test_undeserialisable_message_is_reported_and_skipped(tmp_path):
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        writer.add_topic("/camera/image_raw", IMAGE)
        writer.add_topic("/camera/labels_gt", IMAGE)
        write_frames(writer, [1_000_000_000])
        connection = writer._connections["/camera/image_raw"]
        writer._writer.write(connection, 1_050_000_000, b"\x00\x01\x00\x00\x05")  # truncated
        write_frames(writer, [1_100_000_000])
    bad: list[tuple[str, int, str]] = []
    with BagReader(bag) as reader:
        good = list(reader.messages(["/camera/image_raw"],
                                    on_bad_message=lambda *a: bad.append(a)))
        assert [stamp_ns(m) for _, _, m in good] == [1_000_000_000, 1_100_000_000]
        assert [(t, ts) for t, ts, _ in bad] == [("/camera/image_raw", 1_050_000_000)]
        assert f"bag {bag}, topic /camera/image_raw, bag time 1.050000000" in bad[0][2]
        with pytest.raises(BagError, match="cannot deserialise"):
            list(reader.messages(["/camera/image_raw"]))


def test_make_bag_records_the_class_set(tmp_path):
    out = tmp_path / "bag"
    assert make_bag.main(["--source", "synthetic", "--frames", "1", "--height", str(H),
                          "--width", str(W), "--out", str(out)]) == 0
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["custom_data"] == {CLASS_SET_KEY: "cityscapes"}
    with BagReader(out) as reader:
        assert reader.class_set == "cityscapes"
    with BagReader(camera_bag(tmp_path / "foreign")) as reader:
        assert reader.class_set is None  # a bag another tool recorded
