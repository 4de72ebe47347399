"""int8 calibration frames from a rosbag2 image topic, for the core's calibration sources.

The core (``bisestdc_core.inference.calibration_data``) reads no bags itself: this package
registers :class:`RosbagFrames` in the core's ``bisestdc.bag_frame_readers`` entry-point group
(setup.py), so ``bisestdc-export`` and ``bisestdc-quantize`` (the core's command lines) read
``--calib-bag BAG --calib-topic TOPIC`` with the bag tools' reader and decode with the node's own
decoder: every encoding the node accepts calibrates too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import cv2
import numpy as np

from bisestdc_ros.bags.messages import IMAGE_TYPES, frame_from_msg
from bisestdc_ros.bags.reader import BagError, BagReader
from bisestdc_ros.node.image_codec import ImageDecodeError

log = logging.getLogger(__name__)


class RosbagFrames:
    """:class:`~bisestdc_core.inference.calibration_data.BagFrameReader` for rosbag2 bags
    (Image or CompressedImage topics)."""

    def count(self, bag: str | os.PathLike, topic: str) -> int:
        try:
            with BagReader(bag) as reader:
                reader.require_topic(topic, IMAGE_TYPES)
                return reader.counts.get(topic, 0)
        except BagError as error:
            raise ValueError(str(error)) from error

    def frames(self, bag: str | os.PathLike, topic: str, limit: int) -> Iterator[np.ndarray]:
        try:
            yield from self._frames(bag, topic, limit)
        except BagError as error:  # the core's command lines report ValueErrors in one line
            raise ValueError(str(error)) from error

    def _frames(self, bag: str | os.PathLike, topic: str, limit: int) -> Iterator[np.ndarray]:
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
