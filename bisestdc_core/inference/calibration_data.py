"""Frames for INT8 calibration: a folder of images, an image topic in a rosbag, or generated
street scenes.

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

# Mixed into the generator's seed so calibration scenes differ from the dataset writer's
# train/val scenes of the same seed.
_SYNTHETIC_KEY = 0xCA11B


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


def frames_from_synthetic(count: int, height: int, width: int, seed: int = 0
                          ) -> Iterator[np.ndarray]:
    """``count`` generated street scenes (RGB, H x W), a pure function of ``seed``.

    For networks trained on the generator's scenes and for latency runs of random networks;
    a deployed network calibrates on its own camera's frames (a folder or a bag).
    """
    # Imported here: the generator is only needed when it is the calibration source.
    from ..data.synthetic import render_scene  # noqa: PLC0415

    for index in range(count):
        yield render_scene(seed, height, width, _SYNTHETIC_KEY, index)[0]



def calibration_source(
    count: int, images: str | os.PathLike | None = None, bag: str | os.PathLike | None = None,
    topic: str | None = None, synthetic_size: tuple[int, int] | None = None, seed: int = 0,
) -> Iterator[np.ndarray]:
    """Up to ``count`` RGB frames from the one source given: ``images``, ``bag`` + ``topic``,
    or (neither given) ``synthetic_size`` (H, W) generated scenes.

    Raises:
        ValueError: no source, a bag without a topic, or a missing folder (before any frame).
    """
    if images:
        if not Path(images).is_dir():  # the readers are lazy: check now, not at the first frame
            raise ValueError(f"calibration image folder not found: {images}")
        return frames_from_folder(images, count)
    if bag:
        if not topic:
            raise ValueError("a calibration bag needs its image topic (--calib-topic)")
        if not Path(bag).exists():
            raise ValueError(f"calibration bag not found: {bag}")
        return frames_from_bag(bag, topic, count)
    if synthetic_size is None:
        raise ValueError("int8 calibration needs an image folder, a bag and topic, or "
                         "generated scenes")
    return frames_from_synthetic(count, *synthetic_size, seed=seed)
