"""The largest frame the node accepts, and the size a compressed image declares before decoding.

A compressed image's cost is set by the size in its header, not by its length: a 631-byte JPEG
can declare 32000 x 32000 pixels and a 48 KB PNG 20000 x 20000, and OpenCV allocates the full
frame before it finds out the data is missing. So a compressed frame's declared size is read
from its header (a PNG's IHDR, a JPEG's SOF, ...) with Pillow, which parses headers without
decoding pixels, and frames above the limit are refused before OpenCV sees them. Raw frames
pass the same limit (their size is in the message fields).

Only formats whose leading signature both Pillow and OpenCV recognise are accepted, so the two
libraries cannot disagree about what the bytes are; anything else is refused.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

from PIL import Image

# No camera sends more than this; a corrupt or hostile header must not make the node allocate
# gigabytes. 8192 x 8192 (64 Mi pixels, 192 MiB as BGR) holds 8K UHD (7680 x 4320) and a
# 16384 x 4096 panorama.
MAX_SIDE = 16384
MAX_PIXELS = 8192 * 8192

# Pillow's names of the CompressedImage formats accepted (cv2.imdecode reads them all).
# image_transport's compressed plugins send JPEG and PNG. TIFF is left out on purpose: its
# tags can be read differently by two parsers, and no camera driver sends it.
COMPRESSED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


class FrameRefused(ValueError):
    """A frame refused before decoding; the message says why."""


def check_frame_size(width: int, height: int) -> None:
    """Refuse a width x height frame outside the limits.

    Raises:
        FrameRefused: empty, a side above MAX_SIDE, or more than MAX_PIXELS pixels.
    """
    if width <= 0 or height <= 0:
        raise FrameRefused(f"empty image: {width} x {height}")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise FrameRefused(f"image too large: {width} x {height} (max side {MAX_SIDE})")
    if width * height > MAX_PIXELS:
        raise FrameRefused(f"image too large: {width} x {height} = {width * height} pixels "
                           f"(max {MAX_PIXELS})")


def check_compressed_size(data: Any) -> tuple[int, int, str]:
    """Read the size compressed image bytes declare and refuse it above the limits.

    No pixel is decoded: Pillow reads the header only.

    Args:
        data: the encoded image (bytes, array.array('B'), numpy uint8 array, ...).

    Returns:
        (width, height, format) as declared, within the limits.

    Raises:
        FrameRefused: not one of COMPRESSED_FORMATS, a header that does not parse, or a
            declared size outside the limits.
    """
    raw = memoryview(data).cast("B")
    stream = io.BytesIO(raw)
    try:
        # Pillow warns about what it skips in corrupt headers and above its own pixel limit
        # (89 M pixels, raising at twice that, both far above MAX_PIXELS): the frame is
        # accepted or refused here, with the reason, so the warnings would only repeat it.
        # (The filter is process-wide for these microseconds: at worst it hides another
        # thread's warning meanwhile.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(stream, formats=COMPRESSED_FORMATS) as image:
                width, height = image.size
                kind = image.format or "image"
    except Image.DecompressionBombError as error:
        # Above Pillow's own, higher limit; its message carries the declared pixel count.
        found = re.search(r"\((\d+) pixels\)", str(error))
        declared = f"{found.group(1)} pixels" if found else str(error)
        raise FrameRefused(f"image too large: header declares {declared} (max {MAX_PIXELS})") \
            from None
    except Image.UnidentifiedImageError:
        raise FrameRefused(
            f"not a {'/'.join(COMPRESSED_FORMATS)} image (first bytes {bytes(raw[:8]).hex()})"
        ) from None
    except Exception as error:  # noqa: BLE001 - Pillow's plugins raise many types on bad bytes
        raise FrameRefused(f"unreadable header ({type(error).__name__}: {error})") from None
    try:
        check_frame_size(width, height)
    except FrameRefused as error:
        raise FrameRefused(f"{kind} header declares an {error}") from None
    return int(width), int(height), kind
