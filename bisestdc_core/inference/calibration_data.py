"""Frames for INT8 calibration: from a folder of images or from an image topic in a rosbag.

Every source yields H x W x 3 uint8 frames in RGB order; the calibrator converts them to the
engine's channel order and input size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")


def frames_from_folder(folder: str | os.PathLike, limit: int) -> Iterator[np.ndarray]:
    """Up to ``limit`` RGB frames from the images in ``folder`` (sorted, recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"calibration image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    for path in files[:limit]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            log.warning("skipping unreadable image %s", path)
            continue
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _image_msg_to_rgb(msg) -> np.ndarray | None:
    """sensor_msgs/Image or CompressedImage -> RGB, None for encodings we do not read."""
    if hasattr(msg, "format"):  # CompressedImage
        bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
        return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    pixels = data[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    if msg.encoding == "rgb8":
        return pixels.copy()
    if msg.encoding == "bgr8":
        return np.ascontiguousarray(pixels[..., ::-1])
    return None


def frames_from_bag(bag: str | os.PathLike, topic: str, limit: int) -> Iterator[np.ndarray]:
    """Up to ``limit`` RGB frames (rgb8/bgr8 Image or CompressedImage) from ``topic``."""
    from rosbags.highlevel import AnyReader  # noqa: PLC0415 - only needed for bag calibration

    bag = Path(bag)
    if not bag.exists():
        raise ValueError(f"calibration bag not found: {bag}")
    count = 0
    with AnyReader([bag]) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            topics = sorted({c.topic for c in reader.connections})
            raise ValueError(f"topic {topic!r} not in {bag}; it has {topics}")
        for connection, _stamp, raw in reader.messages(connections=connections):
            frame = _image_msg_to_rgb(reader.deserialize(raw, connection.msgtype))
            if frame is None:
                log.warning("skipping %s message with unsupported encoding", connection.msgtype)
                continue
            yield frame
            count += 1
            if count >= limit:
                return
