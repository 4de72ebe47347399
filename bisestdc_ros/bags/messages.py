"""The messages the bag tools write and read, built from the ROS 2 Kilted typestore.

Constructors for Header, Image, CompressedImage, CameraInfo and mono8 labels, all from the
``ROS2_KILTED`` typestore so a bag carries the definitions ``ros2 bag`` expects; and the readers
that turn an image or labels message back into arrays, as the node's `image_codec` does.
Messages are rosbags' dataclasses, whose field names match rclpy's, so rclpy messages read the
same way.

Stamps are integer nanoseconds everywhere (``sec * 1e9 + nanosec``): exact keys for matching
images, labels and node outputs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from bisestdc_ros.node.image_codec import (
    ImageDecodeError,
    compressed_msg_to_frame,
    image_msg_to_frame,
)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)

NS_PER_S = 1_000_000_000


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The message definitions of ROS 2 Kilted (the distribution this package targets)."""
    return get_typestore(Stores.ROS2_KILTED)


# --- stamps and messages ----------------------------------------------------------------------


def stamp_ns(msg: Any) -> int:
    """Header stamp of a message (rclpy or rosbags) as integer nanoseconds."""
    stamp = msg.header.stamp
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def header_msg(stamp: int, frame_id: str) -> Any:
    """std_msgs/Header with ``stamp`` (ns)."""
    types = typestore().types
    time = types["builtin_interfaces/msg/Time"](sec=stamp // NS_PER_S, nanosec=stamp % NS_PER_S)
    return types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def image_msg(image: np.ndarray, encoding: str, header: Any) -> Any:
    """H x W x C (or H x W) uint8 array -> sensor_msgs/Image with ``encoding`` (no padding)."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"image must be H x W [x C] uint8, got {image.shape} {image.dtype}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    return typestore().types[IMAGE](
        header=header, height=int(image.shape[0]), width=int(image.shape[1]), encoding=encoding,
        is_bigendian=0, step=int(image.shape[1] * channels),
        data=np.ascontiguousarray(image).reshape(-1),
    )


def labels_msg(labels: np.ndarray, header: Any) -> Any:
    """H x W uint8 train ids -> sensor_msgs/Image mono8."""
    if labels.ndim != 2:
        raise ValueError(f"labels must be H x W, got {labels.shape}")
    return image_msg(labels, "mono8", header)


def compressed_image_msg(image_bgr: np.ndarray, fmt: str, header: Any,
                         jpeg_quality: int = 95) -> Any:
    """H x W x 3 BGR -> sensor_msgs/CompressedImage, as image_transport's compressed plugin.

    Args:
        image_bgr: H x W x 3 uint8 BGR.
        fmt: ``jpeg`` or ``png``.
        header: std_msgs/Header.
        jpeg_quality: 1..100 (the plugin's default is 95).
    """
    if fmt == "jpeg":
        ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    elif fmt == "png":
        ok, encoded = cv2.imencode(".png", image_bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    else:
        raise ValueError(f"compressed format must be jpeg or png, got {fmt!r}")
    if not ok:
        raise ValueError(f"{fmt} encoding failed for an image of shape {image_bgr.shape}")
    # The format string compressed_image_transport writes for a bgr8 source.
    return typestore().types[COMPRESSED_IMAGE](
        header=header, format=f"bgr8; {fmt} compressed bgr8", data=encoded.reshape(-1))


def camera_info_msg(height: int, width: int, header: Any,
                    horizontal_fov_deg: float = 60.0) -> Any:
    """sensor_msgs/CameraInfo of an undistorted pinhole camera with a plausible focal length.

    The bag sources carry no calibration; a 60 degree horizontal field of view with the principal
    point at the image centre is what a typical automotive front camera has.
    """
    focal = (width / 2.0) / np.tan(np.radians(horizontal_fov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    types = typestore().types
    return types[CAMERA_INFO](
        header=header, height=int(height), width=int(width), distortion_model="plumb_bob",
        d=np.zeros(5, np.float64),
        k=np.array([focal, 0, cx, 0, focal, cy, 0, 0, 1], np.float64),
        r=np.eye(3, dtype=np.float64).reshape(-1),
        p=np.array([focal, 0, cx, 0, 0, focal, cy, 0, 0, 0, 1, 0], np.float64),
        binning_x=0, binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                      do_rectify=False),
    )


# --- decoding ---------------------------------------------------------------------------------


def frame_from_msg(msg: Any, msgtype: str) -> tuple[np.ndarray, str]:
    """Image or CompressedImage -> (H x W x 3 uint8 frame, channel order), as segment_node does.

    Raises:
        ImageDecodeError: an encoding or payload the node could not decode either.
    """
    if msgtype == COMPRESSED_IMAGE:
        return compressed_msg_to_frame(msg)
    return image_msg_to_frame(msg)


def labels_from_msg(msg: Any, msgtype: str) -> np.ndarray:
    """A labels message (mono8 Image, or a PNG CompressedImage) -> H x W uint8 train ids.

    Raises:
        ImageDecodeError: not a single-channel 8-bit label image.
    """
    if msgtype == COMPRESSED_IMAGE:
        buffer = np.frombuffer(msg.data, np.uint8)
        labels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
        if labels is None or labels.ndim != 2 or labels.dtype != np.uint8:
            raise ImageDecodeError(f"labels must be a mono8 PNG (format {msg.format!r})")
        return labels
    if msg.encoding not in ("mono8", "8UC1"):
        raise ImageDecodeError(f"labels must be mono8, got encoding {msg.encoding!r}")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, np.uint8)
    if step < width or data.size < step * height:
        raise ImageDecodeError(f"labels data of {data.size} bytes does not hold {width} x "
                               f"{height} with step {step}")
    return data[: step * height].reshape(height, step)[:, :width]


def image_size(msg: Any, msgtype: str) -> tuple[int, int]:
    """(height, width) of an image message (compressed ones are decoded to find out)."""
    if msgtype == COMPRESSED_IMAGE:
        frame, _ = frame_from_msg(msg, msgtype)
        return int(frame.shape[0]), int(frame.shape[1])
    return int(msg.height), int(msg.width)


def wire_bytes(msg: Any) -> int:
    """Bytes one message of this image puts on the wire (what DDS has to carry)."""
    return int(np.asarray(msg.data).size)


def format_stamp(stamp: int) -> str:
    """A stamp in ns as ``seconds.nanoseconds``."""
    return f"{stamp // NS_PER_S}.{stamp % NS_PER_S:09d}"
