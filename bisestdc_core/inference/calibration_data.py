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

from ..data.datasets import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

def frames_from_folder(folder: str | os.PathLike, limit: int) -> Iterator[np.ndarray]:
    """Up to ``limit`` RGB frames from the images in ``folder`` (sorted, recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"calibration image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    for path in files[:limit]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            log.warning("skipping unreadable image %s", path)
            continue
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def frames_from_bag(bag: str | os.PathLike, topic: str, limit: int) -> Iterator[np.ndarray]:
    """Up to ``limit`` RGB frames from an Image or CompressedImage ``topic``.

    Read with the bag tools' reader and decoded by the node's own decoder, so every encoding
    the node accepts calibrates too.
    """
    # Only bag calibration needs rosbags: imported here, not with the engines.
    from bisestdc_ros.bag_io import IMAGE_TYPES, BagReader, frame_from_msg  # noqa: PLC0415
    from bisestdc_ros.image_codec import ImageDecodeError  # noqa: PLC0415

    count = 0
    with BagReader(bag) as reader:
        msgtype = reader.require_topic(topic, IMAGE_TYPES)
        for _topic, _stamp, msg in reader.messages([topic]):
            try:
                frame, order = frame_from_msg(msg, msgtype)
            except ImageDecodeError as error:
                log.warning("skipping an undecodable calibration frame: %s", error)
                continue
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if order == "bgr" else frame
            count += 1
            if count >= limit:
                return
