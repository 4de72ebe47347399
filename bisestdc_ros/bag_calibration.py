"""int8 calibration frames from a rosbag2 image topic, for the core's calibration sources.

The core (``bisestdc_core.inference.calibration_data``) reads no bags itself: the tools this
package installs (``bisestdc-export``, ``bisestdc-quantize``) register :class:`RosbagFrames`
before running the core's command line, so their ``--calib-bag BAG --calib-topic TOPIC``
read the bag with the bag tools' reader and decode with the node's own decoder: every encoding
the node accepts calibrates too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from bisestdc_core.inference.calibration_data import register_bag_reader
from bisestdc_ros.bag_io import IMAGE_TYPES, BagError, BagReader, frame_from_msg
from bisestdc_ros.image_codec import ImageDecodeError

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


def register() -> None:
    """Let the core's calibration sources read bags."""
    register_bag_reader(RosbagFrames())


def export_main(argv: Sequence[str] | None = None) -> int:
    """``bisestdc-export`` with bag calibration."""
    from bisestdc_core import export  # noqa: PLC0415 - torch and onnx, only for this tool

    register()
    return export.main(argv, errors=(BagError,))


def quantize_main(argv: Sequence[str] | None = None) -> int:
    """``bisestdc-quantize`` with bag calibration."""
    from bisestdc_core.inference import quantize  # noqa: PLC0415

    register()
    return quantize.main(argv, errors=(BagError,))
