"""sensor_msgs Image / CompressedImage <-> numpy, with cv_bridge's semantics and no cv_bridge.

cv_bridge is not available everywhere this node runs (pip-installed ROS, containers without the
vision_opencv stack), so the conversions it would do are reimplemented here. The decoding core
(`decode_raw`, `decode_compressed`) takes plain fields (encoding, sizes, step, endianness,
bytes) and never touches ROS types; the `*_msg` helpers only read or build the messages.

Decoding returns the frame *and* its channel order ("rgb" or "bgr") so an rgb8 camera is handed
to the segmenter without a colour conversion; views into the message buffer are returned where
the layout allows (row padding is skipped with strides, not copied).

Conversions (what ``cv_bridge.toCvCopy(msg, "bgr8")`` does, see vision_opencv
cv_bridge/src/cv_bridge.cpp, getConversionCodes()):

- rgb8 / bgr8: as is (rgb8 reported as channel order "rgb").
- rgba8 / bgra8: alpha dropped (cv2.COLOR_RGBA2BGR / COLOR_BGRA2BGR).
- mono8: replicated to 3 channels (COLOR_GRAY2BGR).
- 16-bit encodings (mono16, rgb16, bgr16, rgba16, bgra16, bayer_*16): the colour conversion
  runs on the 16-bit pixels first and the depth change last, as toCvCopyImpl applies
  getConversionCode's list (colour code, then SAME_FORMAT = ``convertTo(..., 255. / 65535.)``
  with rounding). The order matters for Bayer, whose demosaicing interpolates at 16 bits.
  cvtColorForDisplay's dynamic min/max scaling is *not* used: it would make the network's
  input depend on each frame's contents. ``is_bigendian`` is honoured (cv_bridge byte-swaps
  with mixChannels likewise).
- yuv422 (UYVY byte order, ROS's historical name) -> COLOR_YUV2BGR_UYVY;
  yuv422_yuy2 (YUYV) -> COLOR_YUV2BGR_YUY2. Both need an even width: cv_bridge hands the
  CV_8UC2 Mat (width x height, the message's step) to cvtColor, whose FROM_UYVY size check
  (``CV_Assert(sz.width % 2 == 0)``, OpenCV 4.x and 5.x, for the BGR, RGB, BGRA, RGBA and GRAY
  codes alike) throws for an odd width, so cv_bridge decodes no odd-width yuv422 frame to any
  colour encoding; only ``passthrough`` returns it, still 2-channel, which is no frame. The
  codec refuses it too, after the step and data-size checks cv_bridge's matFromImage makes
  first, so a malformed odd-width message is refused for the same reason cv_bridge gives.
- Bayer: OpenCV names its Bayer codes after the 2x2 block starting at the *second* row and
  column, so cv_bridge maps bayer_rggb8 -> COLOR_BayerBG2BGR, bayer_bggr8 -> COLOR_BayerRG2BGR,
  bayer_gbrg8 -> COLOR_BayerGR2BGR, bayer_grbg8 -> COLOR_BayerGB2BGR; the same mapping is used
  here.
- CompressedImage (JPEG, PNG, WebP, BMP: see image_limits): after the size its header declares
  passed the frame limit, decoded as stored (IMREAD_UNCHANGED, as the ROS 2 cv_bridge and
  compressed_image_transport decode), so a JPEG's EXIF orientation tag is ignored like
  image_transport ignores it; 1 channel -> GRAY2BGR, 4 -> BGRA2BGR, and a 16-bit PNG gets the
  same rounded 255/65535 depth change as a raw 16-bit image (IMREAD_COLOR would truncate it to
  the high byte and rotate by EXIF).

Stricter than cv_bridge in one place and looser in another: data longer than step * height is
accepted (the excess is ignored; cv_bridge refuses it), shorter data is refused.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from bisestdc_ros.node.image_limits import FrameRefused, check_compressed_size, check_frame_size

RGB = "rgb"
BGR = "bgr"


class ImageDecodeError(ValueError):
    """A message that cannot be turned into a frame; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _within_limits(check, *args):
    """Run an image_limits size check (the frame limits live there); a refusal becomes an
    ImageDecodeError."""
    try:
        return check(*args)
    except FrameRefused as error:
        raise ImageDecodeError(str(error)) from None


@dataclass(frozen=True)
class _Layout:
    channels: int
    bytes_per_channel: int
    conversion: int | None  # cv2 colour code to BGR; None: usable as is
    order: str  # channel order of the result


_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout(3, 1, None, RGB),
    "bgr8": _Layout(3, 1, None, BGR),
    "rgba8": _Layout(4, 1, cv2.COLOR_RGBA2BGR, BGR),
    "bgra8": _Layout(4, 1, cv2.COLOR_BGRA2BGR, BGR),
    "mono8": _Layout(1, 1, cv2.COLOR_GRAY2BGR, BGR),
    "mono16": _Layout(1, 2, cv2.COLOR_GRAY2BGR, BGR),
    "rgb16": _Layout(3, 2, None, RGB),
    "bgr16": _Layout(3, 2, None, BGR),
    "rgba16": _Layout(4, 2, cv2.COLOR_RGBA2BGR, BGR),
    "bgra16": _Layout(4, 2, cv2.COLOR_BGRA2BGR, BGR),
    "yuv422": _Layout(2, 1, cv2.COLOR_YUV2BGR_UYVY, BGR),
    "yuv422_yuy2": _Layout(2, 1, cv2.COLOR_YUV2BGR_YUY2, BGR),
    # See the module docstring: OpenCV's Bayer names are shifted by one row and column.
    "bayer_rggb8": _Layout(1, 1, cv2.COLOR_BayerBG2BGR, BGR),
    "bayer_bggr8": _Layout(1, 1, cv2.COLOR_BayerRG2BGR, BGR),
    "bayer_gbrg8": _Layout(1, 1, cv2.COLOR_BayerGR2BGR, BGR),
    "bayer_grbg8": _Layout(1, 1, cv2.COLOR_BayerGB2BGR, BGR),
    "bayer_rggb16": _Layout(1, 2, cv2.COLOR_BayerBG2BGR, BGR),
    "bayer_bggr16": _Layout(1, 2, cv2.COLOR_BayerRG2BGR, BGR),
    "bayer_gbrg16": _Layout(1, 2, cv2.COLOR_BayerGR2BGR, BGR),
    "bayer_grbg16": _Layout(1, 2, cv2.COLOR_BayerGB2BGR, BGR),
}

# Packed 4:2:2 codes: each U, V pair belongs to two pixels, so cvtColor wants an even width.
_PAIRED_PIXEL_CODES = frozenset({cv2.COLOR_YUV2BGR_UYVY, cv2.COLOR_YUV2BGR_YUY2})

# cv_bridge's 16 -> 8 bit depth change: convertTo(..., 255. / 65535.), rounded and saturated.
_SCALE_16_TO_8 = 255.0 / 65535.0

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)

LABELS_PNG_FORMAT = "mono8; png compressed mono8"


def decode_raw(
    encoding: str,
    height: int,
    width: int,
    step: int,
    is_bigendian: bool,
    data: Any,
) -> tuple[np.ndarray, str]:
    """Raw image fields -> (H x W x 3 uint8 frame, channel order "rgb" | "bgr").

    Args:
        encoding: sensor_msgs/image_encodings name (see SUPPORTED_ENCODINGS).
        height, width: image size in pixels.
        step: bytes per row, padding included.
        is_bigendian: byte order of the 16-bit encodings' channels.
        data: any buffer (bytes, array.array('B') as rclpy gives, numpy array).

    Raises:
        ImageDecodeError: unknown encoding or an inconsistent layout.
    """
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageDecodeError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    _within_limits(check_frame_size, width, height)
    row_bytes = width * layout.channels * layout.bytes_per_channel
    if step < row_bytes:
        raise ImageDecodeError(
            f"step {step} < width * channels * bytes ({width} * {layout.channels} * "
            f"{layout.bytes_per_channel} = {row_bytes})"
        )
    buffer = np.frombuffer(data, np.uint8)
    if buffer.size < step * height:
        raise ImageDecodeError(
            f"data has {buffer.size} bytes, expected step * height = {step} * {height} = "
            f"{step * height}"
        )
    if layout.conversion in _PAIRED_PIXEL_CODES and width % 2:
        # cv_bridge refuses these too (cvtColor asserts an even width, see the module
        # docstring); checked here, not left to cv2, so the reason is one line naming both.
        raise ImageDecodeError(
            f"{encoding} needs an even width (2 pixels share each U, V pair), got width "
            f"{width}; cv_bridge's cvtColor refuses it as well"
        )
    # Rows are a strided view: padding (step > row_bytes) is skipped without a copy.
    rows = buffer[: step * height].reshape(height, step)[:, :row_bytes]

    shape = (height, width) if layout.channels == 1 else (height, width, layout.channels)
    if layout.bytes_per_channel == 1:
        pixels = rows.reshape(shape)
    else:
        # The copy to an aligned native-order array is needed anyway for the depth change.
        dtype = ">u2" if is_bigendian else "<u2"
        pixels = np.ascontiguousarray(rows).view(dtype).reshape(shape).astype(np.uint16)
    if layout.conversion is not None:
        pixels = cv2.cvtColor(pixels, layout.conversion)
    if pixels.dtype == np.uint16:
        pixels = to_8bit(pixels)
    return pixels, layout.order


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 as cv_bridge's depth change does (x * 255 / 65535, rounded)."""
    return cv2.convertScaleAbs(pixels, alpha=_SCALE_16_TO_8)


def decode_compressed(fmt: str, data: Any) -> tuple[np.ndarray, str]:
    """CompressedImage fields -> (H x W x 3 uint8 BGR frame, "bgr").

    The format string is informational only (cv2.imdecode sniffs the content), as in cv_bridge.
    The size the header declares is checked against the limits before anything is decoded.
    See the module docstring for channels, 16-bit depth and EXIF orientation.

    Raises:
        ImageDecodeError: empty or undecodable data, a format other than
            image_limits.COMPRESSED_FORMATS, a declared size above the limits, or a layout
            cv_bridge cannot make bgr8 of.
    """
    buffer = np.frombuffer(data, np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError(f"empty compressed image (format {fmt!r})")
    # Refused before decoding: the header's size, not the data length, sets what decoding costs.
    _within_limits(check_compressed_size, buffer)
    image = _imdecode_as_stored(fmt, buffer)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype not in (np.uint8, np.uint16) or channels not in _COMPRESSED_TO_BGR:
        raise ImageDecodeError(f"decoded {fmt!r} image has layout {image.shape} {image.dtype}; "
                               f"expected 1, 3 or 4 channels of 8 or 16 bits")
    conversion = _COMPRESSED_TO_BGR[channels]
    frame = image if conversion is None else cv2.cvtColor(image, conversion)
    if frame.dtype == np.uint16:
        frame = to_8bit(frame)
    return frame, BGR


# Channels of a decoded image -> the colour code to BGR (cv_bridge's mono8/bgr8/bgra8 cases).
_COMPRESSED_TO_BGR = {1: cv2.COLOR_GRAY2BGR, 3: None, 4: cv2.COLOR_BGRA2BGR}


def _imdecode_as_stored(fmt: str, buffer: np.ndarray) -> np.ndarray:
    """cv2.imdecode with IMREAD_UNCHANGED: stored depth and channels, EXIF orientation ignored."""
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as error:  # some codecs raise instead of returning None
        raise ImageDecodeError(f"cannot decode {fmt!r} image: {error}") from error
    if image is None or image.size == 0:
        raise ImageDecodeError(f"cannot decode {fmt!r} image of {buffer.size} bytes")
    return image


def image_msg_to_frame(msg: Any) -> tuple[np.ndarray, str]:
    """sensor_msgs/Image -> (frame, channel order); see decode_raw."""
    return decode_raw(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian),
                      msg.data)


def compressed_msg_to_frame(msg: Any) -> tuple[np.ndarray, str]:
    """sensor_msgs/CompressedImage -> (BGR frame, "bgr"); see decode_compressed."""
    return decode_compressed(msg.format, msg.data)


def to_bgr(frame: np.ndarray, order: str) -> np.ndarray:
    """A decoded frame in BGR order (no copy when it already is)."""
    return frame if order == BGR else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)


def byte_array(image: np.ndarray) -> array.array:
    # array('B') is what rclpy stores uint8[] fields as; assigning one skips the per-element
    # check the setter does for other sequences (10 ms -> <1 ms for a 1080p bgr8 frame).
    owner = image.base
    while isinstance(owner, np.ndarray):
        owner = owner.base
    if isinstance(owner, memoryview):  # np.frombuffer's view of the array
        owner = owner.obj
    if (isinstance(owner, array.array) and owner.typecode == "B" and image.flags.c_contiguous
            and len(owner) == image.nbytes and owner.buffer_info()[0] == image.ctypes.data):
        # The image is a whole array('B') already (see `array_backed`): publishing copies
        # the message, so the array itself can go in, without another copy.
        return owner
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(image).data)
    return out


def array_backed(shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 image whose memory is an array('B'): `byte_array` hands it over uncopied."""
    return np.frombuffer(array.array("B", bytes(int(np.prod(shape)))), np.uint8).reshape(shape)


def _image_msg(image: np.ndarray, encoding: str, header: Any):
    from sensor_msgs.msg import Image  # message package only; the decoders do not need it

    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(image.shape[1] * (image.shape[2] if image.ndim == 3 else 1))
    msg.data = byte_array(image)
    return msg


def labels_to_image_msg(labels: np.ndarray, header: Any = None):
    """H x W uint8 train ids -> sensor_msgs/Image mono8."""
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels must be H x W uint8, got {labels.shape} {labels.dtype}")
    return _image_msg(labels, "mono8", header)


def bgr_to_image_msg(image: np.ndarray, header: Any = None):
    """H x W x 3 uint8 BGR -> sensor_msgs/Image bgr8."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be H x W x 3 uint8, got {image.shape} {image.dtype}")
    return _image_msg(image, "bgr8", header)


def labels_to_png_compressed(labels: np.ndarray, header: Any = None, compression: int = 1):
    """H x W uint8 train ids -> lossless PNG sensor_msgs/CompressedImage.

    The format string is the one image_transport's compressed plugin writes for a mono8 PNG, so
    ``republish compressed raw`` and compressed_image_transport subscribers decode it as mono8.
    Compression level 1: label maps are highly redundant, higher levels cost time, not size.
    """
    from sensor_msgs.msg import CompressedImage

    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels must be H x W uint8, got {labels.shape} {labels.dtype}")
    ok, encoded = cv2.imencode(".png", labels, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ValueError("PNG encoding failed")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = LABELS_PNG_FORMAT
    msg.data = byte_array(encoded)
    return msg
