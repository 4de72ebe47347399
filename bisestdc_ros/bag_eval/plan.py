"""Checking the bag before any inference: topics, message counts, sizes and stamps.

:func:`inspect_bag` reads the whole bag once, picks the image and labels topics, and refuses
bags that cannot be scored (unreadable, missing or empty topics, undecodable messages, labels
of another size than the images, no shared stamps). What it learns is a :class:`BagPlan`,
which every later stage (offline run, live replay, report) reads instead of the bag's
metadata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bisestdc_ros.bag_io import (
    IMAGE,
    IMAGE_TYPES,
    NS_PER_S,
    BagError,
    BagReader,
    format_stamp,
    image_size,
    labels_from_msg,
    stamp_ns,
    wire_bytes,
)
from bisestdc_ros.image_codec import ImageDecodeError

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"


@dataclass
class BagPlan:
    """What the evaluation will read from the bag (all checked by :func:`inspect_bag`).

    Attributes:
        path: bag folder.
        image_topic, image_type: the camera topic and its message type.
        labels_topic, labels_type: the ground-truth topic and its message type.
        stamps: header stamps (ns) of the image messages in bag order.
        bag_times: bag timestamps (ns) of the same messages (the replay schedule).
        label_stamps: header stamps (ns) that have a labels message.
        height, width: image size.
        frame_bytes: payload bytes of the largest image message.
    """

    path: Path
    image_topic: str
    image_type: str
    labels_topic: str
    labels_type: str
    stamps: list[int]
    bag_times: list[int]
    label_stamps: set[int]
    height: int
    width: int
    frame_bytes: int

    @property
    def frames(self) -> int:
        return len(self.stamps)

    @property
    def rate_hz(self) -> float:
        """Recorded frame rate (from the bag timestamps); 0 for a single frame."""
        if len(self.bag_times) < 2 or self.bag_times[-1] == self.bag_times[0]:
            return 0.0
        return (len(self.bag_times) - 1) * NS_PER_S / (self.bag_times[-1] - self.bag_times[0])


def inspect_bag(path: str | Path, image_topic: str | None, labels_topic: str) -> BagPlan:
    """Open the bag, pick and check the topics, and check every labels message's size.

    Raises:
        BagError: unreadable bag, missing or empty topic, undecodable messages, labels of
            another size than the images (messages name the bag and topic).
    """
    with BagReader(path) as bag:
        topic = bag.image_topic(image_topic)
        image_type = bag.topics[topic]
        labels_type = bag.require_topic(labels_topic, IMAGE_TYPES)
        if bag.counts.get(topic, 0) == 0:
            raise BagError(f"bag {bag.path} has no messages on image topic {topic}")
        if bag.counts.get(labels_topic, 0) == 0:
            raise BagError(f"bag {bag.path} has no messages on labels topic {labels_topic}")
        stamps: list[int] = []
        bag_times: list[int] = []
        sizes: dict[int, tuple[int, int]] = {}
        label_sizes: dict[int, tuple[int, int]] = {}
        size: tuple[int, int] | None = None
        frame_bytes = 0
        for msg_topic, timestamp, msg in bag.messages([topic, labels_topic]):
            stamp = stamp_ns(msg)
            try:
                if msg_topic == topic:
                    stamps.append(stamp)
                    bag_times.append(timestamp)
                    frame_bytes = max(frame_bytes, wire_bytes(msg))
                    # Compressed frames are decoded once only: their size is in the payload.
                    if image_type == IMAGE or size is None:
                        size = image_size(msg, image_type)
                    sizes[stamp] = size
                else:
                    label_sizes[stamp] = labels_from_msg(msg, labels_type).shape[:2]
            except ImageDecodeError as error:
                raise BagError(f"bag {bag.path}, topic {msg_topic}, stamp {format_stamp(stamp)}: "
                               f"{error.reason}") from error
    if len(set(stamps)) != len(stamps):
        log.warning("%s: %d image messages share a stamp with another; each stamp is scored "
                    "once", topic, len(stamps) - len(set(stamps)))
    for stamp, label_size in label_sizes.items():
        image_hw = sizes.get(stamp, size)
        if image_hw is not None and tuple(label_size) != tuple(image_hw):
            raise BagError(
                f"bag {path}: labels on {labels_topic} are {label_size[1]}x{label_size[0]} but "
                f"images on {topic} are {image_hw[1]}x{image_hw[0]} (stamp {format_stamp(stamp)})")
    assert size is not None
    label_stamps = set(label_sizes) & set(stamps)
    if not label_stamps:
        raise BagError(f"bag {path}: no labels on {labels_topic} share a header stamp with "
                       f"the images on {topic}")
    return BagPlan(Path(path), topic, image_type, labels_topic, labels_type, stamps, bag_times,
                   label_stamps, size[0], size[1], frame_bytes)

