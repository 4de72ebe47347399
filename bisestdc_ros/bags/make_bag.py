"""Writing a rosbag2 camera recording with ground-truth labels (``bisestdc-make-bag``).

Sources: a Cityscapes split (optionally one city; frames in name order, i.e. sequence order),
CamVid, synthetic streets (a temporally coherent drive from ``render_sequence``) or a folder of
images with optional train-id label PNGs. The bag holds, per frame i, stamped
``start + i / rate``:

- the image on ``--image-topic`` (sensor_msgs/Image bgr8 or rgb8), or for ``--image-format
  jpeg|png`` a sensor_msgs/CompressedImage on ``<image-topic>/compressed`` (image_transport
  naming);
- sensor_msgs/CameraInfo on ``--camera-info-topic`` (default: ``camera_info`` next to the image
  topic), a pinhole model guessed from the image size;
- the labels on ``--labels-topic`` (sensor_msgs/Image mono8 train ids; frames without labels
  get none).

All three share one header (stamp and ``--frame-id``), and the bag timestamps equal the stamps,
as if recorded with ``ros2 bag record --use-sim-time`` from a perfect camera. The labels' class
set (Cityscapes for cityscapes and synthetic, CamVid for camvid, ``--class-set`` for a folder)
is recorded in the bag's metadata ``custom_data`` (``bisestdc.class_set``), so bag-eval can
refuse to score a model of another class set. mcap with per-message compression is refused as
rosbag2 refuses it.

The command line is `bisestdc_ros.cli.make_bag`; other callers (the demo, tests) pass its
options as a Namespace: ``make_bag(tool_options(build_parser(), out=..., frames=...))``
with ``build_parser`` from there.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from bisestdc_core.data.registry import DATASET_NAMES, DATASETS
from bisestdc_core.errors import UsageError
from bisestdc_ros.bags.messages import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    NS_PER_S,
    camera_info_msg,
    compressed_image_msg,
    header_msg,
    image_msg,
    labels_msg,
)
from bisestdc_ros.bags.reader import CLASS_SET_KEY
from bisestdc_ros.bags.writer import BagWriter
from bisestdc_ros.node.config import input_topic

log = logging.getLogger(__name__)

# "synthetic" renders frames on the fly; the other sources are the datasets of the registry
# (its "synthetic" is a written folder of those frames, read here as "cityscapes").
SOURCES = ("synthetic", *(name for name in DATASET_NAMES if name != "synthetic"))
IMAGE_FORMATS = ("raw", "jpeg", "png")
DEFAULT_START = 1_700_000_000.0  # a fixed epoch start: the same inputs give the same bag


# The label class set each source's train ids belong to (folder: --class-set).
SOURCE_CLASS_SETS = {name: kind.class_set.name for name, kind in DATASETS.items() if kind.class_set}


@dataclass
class Frame:
    """One source frame: RGB image, train-id labels or None, a name for logs."""

    name: str
    rgb: np.ndarray
    labels: np.ndarray | None


def synthetic_frames(n: int, height: int, width: int, seed: int) -> Iterator[Frame]:
    """``n`` frames of one synthetic drive (exact Cityscapes train-id labels)."""
    from bisestdc_core.data.synthetic import render_sequence  # noqa: PLC0415 (cv2-heavy)

    for i, (rgb, labels) in enumerate(render_sequence(seed, n, height, width)):
        yield Frame(f"synthetic_{seed}_{i:06d}", rgb, labels)


def dataset_frames(kind: str, root: Path, split: str, city: str | None,
                   label_dir: Path | None, limit: int | None, class_set: str = "cityscapes",
                   ) -> tuple[int, Iterator[Frame]]:
    """(frame count, frames) of a dataset on disk, in name order.

    Raises:
        UsageError: a missing folder, no images, no frames of ``city``, an unreadable frame
            (when the frames are read).
    """
    from bisestdc_core.classes import get_class_set  # noqa: PLC0415
    from bisestdc_core.data import build_dataset  # noqa: PLC0415

    extra = {"class_set": get_class_set(class_set)} if kind == "folder" else {}
    try:
        dataset = build_dataset(kind, root, split, label_dir=label_dir, **extra)
    except (OSError, ValueError) as error:
        raise UsageError(f"--root: {error}") from error
    indices = list(range(len(dataset)))
    if city is not None:
        if kind != "cityscapes":
            raise UsageError("--city applies to --source cityscapes only")
        indices = [i for i in indices if dataset.items[i][1].parent.name == city]
        if not indices:
            cities = sorted({item[1].parent.name for item in dataset.items})
            raise UsageError(f"no frames of city {city!r} in {root} ({split}); cities: {cities}")
    if limit is not None:
        indices = indices[:limit]

    def frames() -> Iterator[Frame]:
        for i in indices:
            try:
                sample = dataset[i]
            except (OSError, ValueError) as error:  # a file that cannot be read, by name
                raise UsageError(f"--root: {error}") from error
            yield Frame(sample["name"], sample["image"], sample["label"])

    return len(indices), frames()


def camera_info_topic(image_topic: str) -> str:
    """``camera_info`` beside the image topic (``/camera/image_raw`` -> ``/camera/camera_info``)."""
    namespace = image_topic.rpartition("/")[0]
    return f"{namespace}/camera_info" if namespace else "camera_info"


def write_bag(frames: Iterator[Frame], total: int, args: argparse.Namespace) -> dict[str, int]:
    """Write ``frames`` to ``args.out``; returns messages per topic."""
    compressed = args.image_format != "raw"
    # image_transport's naming, as the node subscribes it.
    image_topic = input_topic(args.image_topic, "compressed" if compressed else "raw")
    info_topic = args.camera_info_topic or camera_info_topic(args.image_topic)
    start_ns = round(args.start * NS_PER_S)
    # A bag without labels has no class set to record.
    custom_data = {} if args.no_labels else {CLASS_SET_KEY: label_class_set(args)}
    with BagWriter(args.out, args.storage, args.compression, custom_data) as bag:
        bag.add_topic(image_topic, COMPRESSED_IMAGE if compressed else IMAGE)
        bag.add_topic(info_topic, CAMERA_INFO)
        if not args.no_labels:
            bag.add_topic(args.labels_topic, IMAGE)
        size: tuple[int, int] | None = None
        for i, frame in enumerate(tqdm(frames, total=total, desc="frames", unit="frame")):
            if size is not None and frame.rgb.shape[:2] != size:
                # One camera, one size: consumers (and CameraInfo) assume it.
                raise UsageError(f"frame {frame.name} is {frame.rgb.shape[1]}x"
                                 f"{frame.rgb.shape[0]}, earlier frames {size[1]}x{size[0]}")
            size = frame.rgb.shape[:2]
            stamp = start_ns + round(i * NS_PER_S / args.rate)
            header = header_msg(stamp, args.frame_id)
            if compressed:
                bgr = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)
                msg = compressed_image_msg(bgr, args.image_format, header, args.jpeg_quality)
            elif args.encoding == "bgr8":
                msg = image_msg(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR), "bgr8", header)
            else:
                msg = image_msg(frame.rgb, "rgb8", header)
            bag.write(image_topic, msg, stamp)
            bag.write(info_topic, camera_info_msg(size[0], size[1], header), stamp)
            if frame.labels is not None and not args.no_labels:
                bag.write(args.labels_topic, labels_msg(frame.labels, header), stamp)
        if size is None:
            raise UsageError("the source gave no frames")
        return dict(bag.counts)


def label_class_set(args: argparse.Namespace) -> str:
    """The class set of the labels this run writes."""
    return SOURCE_CLASS_SETS.get(args.source, args.class_set)


def make_bag(args: argparse.Namespace) -> dict[str, int]:
    """Write the bag ``args`` describe (the command line's options, checked by its
    ``option_error``); returns messages per topic.

    Raises:
        UsageError: a missing dataset folder, a source without frames or with frames of
            different sizes.
        BagError: the bag cannot be written.
    """
    if args.source == "synthetic":
        total = args.frames or 30
        frames = synthetic_frames(total, args.height, args.width, args.seed)
    else:
        total, frames = dataset_frames(args.source, args.root, args.split, args.city,
                                       args.label_dir, args.frames, args.class_set)
    return write_bag(frames, total, args)
