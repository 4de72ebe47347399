"""Checking the bag before any inference: topics, message counts, sizes, stamps and labels.

:func:`inspect_bag` reads the whole bag once, picks the image topic and (if the bag has one)
the labels topic, and refuses bags that cannot be used (unreadable, missing or empty topics,
labels that cannot be decoded, hold class ids outside the class set, or differ in size from
their raw images, no shared stamps). A bag without labels is inspected, not scored. Image
messages that cannot be deserialised are counted and named here and skipped by every later
stage; frames whose payload turns out undecodable are counted and skipped where they are
decoded. What it learns is a :class:`BagPlan`, which every later stage (offline run, live
replay, report) reads instead of the bag's metadata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from bisestdc_core.classes import ClassSet
from bisestdc_ros.bags.messages import (
    IMAGE,
    IMAGE_TYPES,
    NS_PER_S,
    format_stamp,
    image_size,
    labels_from_msg,
    stamp_ns,
    wire_bytes,
)
from bisestdc_ros.bags.reader import BagError, BagReader
from bisestdc_ros.node.image_codec import ImageDecodeError

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"

DEFAULT_LABELS_TOPIC = "/camera/labels_gt"  # what make-bag writes


@dataclass
class BagPlan:
    """What the evaluation will read from the bag (all checked by :func:`inspect_bag`).

    Attributes:
        path: bag folder.
        image_topic, image_type: the camera topic and its message type.
        labels_topic, labels_type: the ground-truth topic and its message type (None: the bag
            is inspected without labels).
        stamps: header stamps (ns) of the usable image messages in bag order.
        bag_times: bag timestamps (ns) of the same messages (the replay schedule).
        label_stamps: header stamps (ns) that have a labels message.
        height, width: size of the first image (compressed frames may change size later).
        frame_bytes: payload bytes of the largest image message.
        class_set: the class set recorded in the bag (None when it records none).
        bad_frames: one line per image message that cannot be used (bag, topic, stamp, why).
    """

    path: Path
    image_topic: str
    image_type: str
    labels_topic: str | None
    labels_type: str | None
    stamps: list[int]
    bag_times: list[int]
    label_stamps: set[int]
    height: int
    width: int
    frame_bytes: int
    class_set: str | None = None
    bad_frames: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.stamps)

    @property
    def has_labels(self) -> bool:
        return self.labels_topic is not None

    @property
    def rate_hz(self) -> float:
        """Recorded frame rate (from the bag timestamps); 0 for a single frame."""
        if len(self.bag_times) < 2 or self.bag_times[-1] == self.bag_times[0]:
            return 0.0
        return (len(self.bag_times) - 1) * NS_PER_S / (self.bag_times[-1] - self.bag_times[0])

    def frame_problem(self, stamp: int, reason: str) -> str:
        """The line that names a frame that cannot be used: bag, topic, stamp and why."""
        return f"{where(self.path, self.image_topic, stamp)}: {reason}"

    def seconds(self, stamp: int) -> float:
        """A header stamp as seconds since the first frame's (for captions and plots)."""
        return (stamp - self.stamps[0]) / NS_PER_S if self.stamps else 0.0


def where(bag: Path, topic: str, stamp: int) -> str:
    """``bag B, topic T, stamp S``: how messages are named in errors and reports."""
    return f"bag {bag}, topic {topic}, stamp {format_stamp(stamp)}"


def choose_labels_topic(bag: BagReader, requested: str | None, use_labels: bool) -> str | None:
    """``requested`` (must exist), else make-bag's default if present, else None (inspect)."""
    if not use_labels:
        return None
    if requested:
        bag.require_topic(requested, IMAGE_TYPES)
        return requested
    if DEFAULT_LABELS_TOPIC in bag.topics:
        bag.require_topic(DEFAULT_LABELS_TOPIC, IMAGE_TYPES)
        return DEFAULT_LABELS_TOPIC
    log.info("bag %s has no %s: inspecting it without ground truth (--labels-topic names "
             "another)", bag.path, DEFAULT_LABELS_TOPIC)
    return None


def inspect_bag(path: str | Path, image_topic: str | None, labels_topic: str | None,
                class_set: ClassSet | None = None, use_labels: bool = True) -> BagPlan:
    """Open the bag, pick and check the topics, and check every labels message.

    Args:
        path: the bag folder.
        image_topic: the camera topic (None: the bag's only image topic).
        labels_topic: the ground-truth topic (None: make-bag's default when the bag has it).
        class_set: the model's classes: labels with other ids are refused.
        use_labels: False inspects the bag without labels even when it has some.

    Raises:
        BagError: unreadable bag, missing or empty topic, labels that are undecodable, out of
            the class set's range or of another size than the images (messages name the bag,
            topic and stamp).
    """
    with BagReader(path) as bag:
        topic = bag.image_topic(image_topic)
        image_type = bag.topics[topic]
        labels_topic = choose_labels_topic(bag, labels_topic, use_labels)
        labels_type = bag.topics[labels_topic] if labels_topic else None
        if bag.counts.get(topic, 0) == 0:
            raise BagError(f"bag {bag.path} has no messages on image topic {topic}")
        if labels_topic and bag.counts.get(labels_topic, 0) == 0:
            raise BagError(f"bag {bag.path} has no messages on labels topic {labels_topic}")
        plan = BagPlan(Path(path), topic, image_type, labels_topic, labels_type, [], [], set(),
                       0, 0, 0, bag.class_set)
        sizes: dict[int, tuple[int, int]] = {}
        label_sizes: dict[int, tuple[int, int]] = {}
        first_size: tuple[int, int] | None = None

        def bad_message(msg_topic: str, timestamp: int, reason: str) -> None:
            if msg_topic != topic:
                raise BagError(reason)  # ground truth must be intact
            plan.bad_frames.append(reason)

        topics = [topic, labels_topic] if labels_topic else [topic]
        for msg_topic, timestamp, msg in bag.messages(topics, on_bad_message=bad_message):
            stamp = stamp_ns(msg)
            place = where(bag.path, msg_topic, stamp)
            try:
                if msg_topic == topic:
                    # Compressed frames are decoded once only: their size is in the payload.
                    if image_type == IMAGE or first_size is None:
                        size = image_size(msg, image_type)
                        first_size = first_size or size
                        if image_type == IMAGE:
                            sizes[stamp] = size
                    plan.stamps.append(stamp)
                    plan.bag_times.append(timestamp)
                    plan.frame_bytes = max(plan.frame_bytes, wire_bytes(msg))
                else:
                    labels = labels_from_msg(msg, labels_type)
                    if class_set is not None:
                        check_labels(labels, class_set, place)
                    label_sizes[stamp] = labels.shape[:2]
            except ImageDecodeError as error:
                if msg_topic != topic:
                    raise BagError(f"{place}: {error.reason}") from error
                plan.bad_frames.append(f"{place}: {error.reason}")
    for reason in plan.bad_frames:
        log.warning("skipped: %s", reason)
    if first_size is None:
        raise BagError(f"bag {path}: no usable image on {topic} ({len(plan.bad_frames)} bad)")
    plan.height, plan.width = first_size
    if len(set(plan.stamps)) != len(plan.stamps):
        log.warning("%s: %d image messages share a stamp with another; each stamp is scored "
                    "once", topic, len(plan.stamps) - len(set(plan.stamps)))
    for stamp, label_size in label_sizes.items():
        image_hw = sizes.get(stamp)  # raw frames only: a compressed frame's size may change
        if image_hw is not None and tuple(label_size) != tuple(image_hw):
            raise BagError(
                f"bag {path}: labels on {labels_topic} are {label_size[1]}x{label_size[0]} but "
                f"images on {topic} are {image_hw[1]}x{image_hw[0]} (stamp {format_stamp(stamp)})")
    if labels_topic:
        plan.label_stamps = set(label_sizes) & set(plan.stamps)
        if not plan.label_stamps:
            raise BagError(f"bag {path}: no labels on {labels_topic} share a header stamp with "
                           f"the images on {topic}")
    return plan


def check_labels(labels, class_set: ClassSet, place: str) -> None:
    """Refuse class ids outside ``class_set`` (and the ignore id) before any inference."""
    from bisestdc_core.data.datasets import check_train_ids  # noqa: PLC0415

    try:
        check_train_ids(labels, class_set.num_classes, f"{place} ({class_set.name} labels)")
    except ValueError as error:
        raise BagError(str(error)) from error
