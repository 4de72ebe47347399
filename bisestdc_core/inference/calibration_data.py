"""Frames for INT8 calibration: a folder of images, an image topic in a rosbag (read by the
registered :class:`BagFrameReader`), or generated street scenes.

Every source yields H x W x 3 uint8 frames in RGB order; the calibrator converts them to the
engine's channel order and input size. :meth:`CalibrationSource.validate` checks a source
before an engine build starts: the frames are read lazily, from inside TensorRT's calibrator,
where a missing folder or topic would otherwise surface as an opaque build failure minutes in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from bisestdc_core.data.datasets import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

# Mixed into the generator's seed so calibration scenes differ from the dataset writer's
# train/val scenes of the same seed.
_SYNTHETIC_KEY = 0xCA11B

def image_files(folder: str | os.PathLike) -> list[Path]:
    """The images under ``folder`` (sorted, recursive).

    Raises:
        ValueError: the folder is missing or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"calibration image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    return files


def frames_from_folder(folder: str | os.PathLike, limit: int) -> Iterator[np.ndarray]:
    """Up to ``limit`` RGB frames from the images in ``folder`` (sorted, recursive)."""
    for path in image_files(folder)[:limit]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            log.warning("skipping unreadable image %s", path)
            continue
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class BagFrameReader(Protocol):
    """Reads image frames from a topic of a recorded bag.

    Bags are ROS data: the reader comes from the ROS side, registered in the
    :data:`BAG_READER_GROUP` entry-point group (``bisestdc_ros`` registers
    ``bisestdc_ros.bags.calibration_frames:RosbagFrames``), so this package imports nothing of
    ROS and every command line of the core reads bags wherever the ROS package is installed.
    """

    def count(self, bag: str | os.PathLike, topic: str) -> int:
        """Messages of image ``topic`` in ``bag``.

        Raises:
            ValueError: the bag is missing or unreadable, or the topic is missing or not an
                image topic (the message names the bag, the topic and the bag's topics).
        """

    def frames(self, bag: str | os.PathLike, topic: str, limit: int) -> Iterator[np.ndarray]:
        """Up to ``limit`` RGB frames (H x W x 3 uint8) of ``topic``.

        Raises:
            ValueError: the bag cannot be read (named in the message).
        """


BAG_READER_GROUP = "bisestdc.bag_frame_readers"

# A reader set in process (tests, embedding programs) wins over the entry points.
_bag_readers: list[BagFrameReader] = []


def register_bag_reader(reader: BagFrameReader) -> None:
    """Make ``reader`` the one calibration sources read bags with (replacing any other)."""
    _bag_readers[:] = [reader]


def bag_reader() -> BagFrameReader:
    """The registered bag reader: one set in process, else the first of the entry-point group.

    Raises:
        ValueError: none is registered (this package alone cannot read bags).
    """
    if not _bag_readers:
        for entry in sorted(entry_points(group=BAG_READER_GROUP), key=lambda e: e.name):
            _bag_readers.append(entry.load()())
            break
    if not _bag_readers:
        raise ValueError("calibration frames from a bag need a bag reader (installed with "
                         f"bisestdc_ros, entry-point group {BAG_READER_GROUP}); give an image "
                         "folder instead")
    return _bag_readers[-1]


@dataclass(frozen=True)
class CalibrationSource:
    """Where int8 calibration frames come from: an image folder, or a bag and its image topic.

    Attributes:
        images: folder of images (searched recursively).
        bag: rosbag2 folder or file; needs ``topic``.
        topic: Image or CompressedImage topic in ``bag``.
        count: at most this many frames are used.
    """

    images: str | os.PathLike | None = None
    bag: str | os.PathLike | None = None
    topic: str | None = None
    count: int = 256

    @property
    def given(self) -> bool:
        return bool(self.images or self.bag)

    def describe(self) -> str:
        return f"images {self.images}" if self.images else f"bag {self.bag} topic {self.topic}"

    def validate(self) -> None:
        """Check the source without reading its frames.

        Raises:
            ValueError: no source, both sources, a bag without a topic (or a topic without a
                bag), a missing or empty folder, an unreadable bag, a missing, non-image or
                empty topic, or a count below 1; the message names the path or topic.
        """
        if self.images and self.bag:
            raise ValueError("give one calibration source: an image folder or a bag, not both")
        if self.topic and not self.bag:
            raise ValueError(f"calibration topic {self.topic} given without a bag")
        if int(self.count) < 1:
            raise ValueError(f"calibration frame count must be at least 1, got {self.count}")
        if self.images:
            image_files(self.images)
        elif self.bag:
            if not self.topic:
                raise ValueError(f"calibration bag {self.bag} needs an image topic")
            if bag_reader().count(self.bag, self.topic) == 0:
                raise ValueError(f"topic {self.topic} in bag {self.bag} has no messages")
        else:
            raise ValueError("int8 calibration needs an image folder or a bag and topic")

    def frames(self) -> Iterator[np.ndarray]:
        """RGB frames (H x W x 3 uint8), at most ``count``."""
        if self.images:
            return frames_from_folder(self.images, int(self.count))
        return bag_reader().frames(self.bag, str(self.topic), int(self.count))


def frames_from_synthetic(count: int, height: int, width: int, seed: int = 0
                          ) -> Iterator[np.ndarray]:
    """``count`` generated street scenes (RGB, H x W), a pure function of ``seed``.

    For networks trained on the generator's scenes and for latency runs of random networks;
    a deployed network calibrates on its own camera's frames (a folder or a bag).
    """
    # Imported here: the generator is only needed when it is the calibration source.
    from bisestdc_core.data.synthetic import render_scene

    for index in range(count):
        yield render_scene(seed, height, width, _SYNTHETIC_KEY, index)[0]


def calibration_source(
    count: int, images: str | os.PathLike | None = None, bag: str | os.PathLike | None = None,
    topic: str | None = None, synthetic_size: tuple[int, int] | None = None, seed: int = 0,
) -> Iterator[np.ndarray]:
    """Up to ``count`` RGB frames from the one source given: ``images``, ``bag`` + ``topic``
    (validated as a :class:`CalibrationSource` before any frame is read), or (neither given)
    ``synthetic_size`` (H, W) generated scenes.

    Raises:
        ValueError: see :meth:`CalibrationSource.validate`; or no source at all.
    """
    if images or bag or topic:
        source = CalibrationSource(images=images, bag=bag, topic=topic, count=count)
        source.validate()
        return source.frames()
    if synthetic_size is None:
        raise ValueError("int8 calibration needs an image folder, a bag and topic, or "
                         "generated scenes")
    return frames_from_synthetic(count, *synthetic_size, seed=seed)
