"""Frame size limits: decompression bombs refused from their headers, every valid size decoded.

The bombs are the ones a hostile or corrupt camera can send: a 631-byte JPEG whose SOF says
32000 x 32000, a 48 KB bilevel PNG of 20000 x 20000, and headers of the other accepted formats
declaring more than the limits. Each must be refused from its header, before decoding, in well
under 100 ms and 100 MB (measured in a fresh process, so the peak RSS is the decoder's alone).
"""

from __future__ import annotations

import functools
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bisestdc_ros.node.image_codec import ImageDecodeError, decode_compressed, decode_raw
from bisestdc_ros.node.image_limits import (
    MAX_PIXELS,
    MAX_SIDE,
    FrameRefused,
    check_compressed_size,
    check_frame_size,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REFUSAL_MS = 100.0
REFUSAL_MIB = 100.0


# ---- hostile files, built from their format specifications ----------------------------------

def jpeg_declaring(width: int, height: int) -> bytes:
    """A real 8 x 8 baseline JPEG with its SOF0 frame size rewritten (ITU T.81, B.2.2)."""
    ok, encoded = cv2.imencode(".jpg", np.full((8, 8), 128, np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    pos = 2  # after SOI
    while data[pos + 1] != 0xC0:  # walk the marker segments to SOF0
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    # FF C0, length (2), precision (1), then height and width (2 each).
    data[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + \
        struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int, bit_depth: int = 1, colour_type: int = 0,
                  rows: int | None = None) -> bytes:
    """A PNG of ``rows`` zero rows (all of them by default) under an IHDR of width x height.

    Bilevel zeros compress about 1000:1, which is how a 48 KB file holds 20000 x 20000 pixels.
    """
    channels = {0: 1, 2: 3}[colour_type]
    row = bytes(1 + (width * channels * bit_depth + 7) // 8)  # filter byte + pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height if rows is None else rows))
    idat += packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def bmp_declaring(width: int, height: int) -> bytes:
    """A BITMAPINFOHEADER for a 24-bit width x height image, and no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def tiff_declaring(width: int, height: int) -> bytes:
    """A little-endian baseline TIFF IFD for an 8-bit grey width x height image, one strip."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, width * height)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        ifd += struct.pack("<HHII", tag, kind, 1, value) if kind == 4 else \
            struct.pack("<HHIHH", tag, kind, 1, value, 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def webp_declaring(width: int, height: int) -> bytes:
    """A lossless (VP8L) WebP header: 14-bit width - 1 and height - 1 after the signature."""
    bits = (width - 1) | (height - 1) << 14
    vp8l = b"\x2f" + struct.pack("<I", bits) + bytes(8)
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


@functools.cache
def bombs() -> dict[str, bytes]:
    """Name -> bytes of each decompression bomb."""
    return {
        "jpeg_32000x32000": jpeg_declaring(32000, 32000),
        "png_20000x20000_bilevel": png_declaring(20000, 20000),
        # Within the side limit, above the pixel limit: 16384 x 16384 RGB is 768 MiB decoded.
        "png_16384x16384_rgb": png_declaring(16384, 16384, 8, 2, rows=4),
        "jpeg_16384x8192": jpeg_declaring(16384, 8192),
        "bmp_30000x30000": bmp_declaring(30000, 30000),
        "webp_16384x16384": webp_declaring(16384, 16384),
    }


# ---- the bombs ------------------------------------------------------------------------------

def test_the_bombs_are_what_they_claim():
    """Tiny files whose headers declare huge frames, as reported."""
    made = bombs()
    assert len(made["jpeg_32000x32000"]) < 1024
    assert len(made["png_20000x20000_bilevel"]) < 64 * 1024
    assert struct.unpack(">II", made["png_20000x20000_bilevel"][16:24]) == (20000, 20000)


@pytest.mark.parametrize("name", sorted(bombs()))
def test_bombs_are_refused_from_the_header(name):
    with pytest.raises(ImageDecodeError, match="too large") as info:
        decode_compressed("jpeg", bombs()[name])
    assert re.search(r"\d{5}", info.value.reason)  # the declared size is named


_MEASURE = """
import json, resource, sys, time
import cv2, numpy as np
sys.path.insert(0, sys.argv[1])
from test_image_limits import bombs
from bisestdc_ros.node.image_codec import ImageDecodeError, decode_compressed
# Warm-up: codecs and Pillow plugins loaded, so only the bombs' own cost is measured.
for ext in (".jpg", ".png", ".bmp", ".webp"):
    decode_compressed(ext, cv2.imencode(ext, np.zeros((4, 4, 3), np.uint8))[1])
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {}
for name, data in bombs().items():
    start = time.perf_counter()
    try:
        decode_compressed("jpeg", data)
        reason = None
    except ImageDecodeError as error:
        reason = error.reason
    out[name] = {"ms": (time.perf_counter() - start) * 1e3, "reason": reason,
                 "bytes": len(data)}
grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib
print(json.dumps({"bombs": out, "peak_growth_mib": grown_kib / 1024}))
"""


def test_bombs_cost_under_100_ms_and_100_mb():
    """In a fresh process: refusal time per bomb and the growth of the peak RSS over all."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(Path(__file__).parent)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for name, bomb in result["bombs"].items():
        print(f"{name}: {bomb['bytes']} bytes refused in {bomb['ms']:.2f} ms: {bomb['reason']}")
        assert bomb["reason"] and "too large" in bomb["reason"], name
        assert bomb["ms"] < REFUSAL_MS, name
    print(f"peak RSS growth over all bombs: {result['peak_growth_mib']:.1f} MiB")
    assert result["peak_growth_mib"] < REFUSAL_MIB


# ---- the limits -----------------------------------------------------------------------------

def test_limits_at_and_beyond_the_boundary():
    check_frame_size(1, 1)
    check_frame_size(MAX_SIDE, MAX_PIXELS // MAX_SIDE)
    check_frame_size(MAX_PIXELS // MAX_SIDE, MAX_SIDE)
    for width, height in [(0, 1), (1, 0), (-1, 5), (MAX_SIDE + 1, 1), (1, MAX_SIDE + 1),
                          (MAX_SIDE, MAX_PIXELS // MAX_SIDE + 1)]:
        with pytest.raises(FrameRefused):
            check_frame_size(width, height)
    # The same limits hold for compressed headers (read only, nothing decoded here).
    at_limit = png_declaring(MAX_SIDE, MAX_PIXELS // MAX_SIDE, rows=1)
    assert check_compressed_size(at_limit) == (MAX_SIDE, MAX_PIXELS // MAX_SIDE, "PNG")
    with pytest.raises(FrameRefused, match="too large"):
        check_compressed_size(png_declaring(MAX_SIDE, MAX_PIXELS // MAX_SIDE + 1, rows=1))
    with pytest.raises(FrameRefused, match="too large"):
        check_compressed_size(png_declaring(MAX_SIDE + 1, 1))
    # Raw frames pass the same limit.
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_raw("mono8", MAX_SIDE, MAX_SIDE, MAX_SIDE, False, b"")


@pytest.mark.parametrize("data", [
    b"P5\n30000 30000\n255\n",  # PGM: OpenCV reads it, but it is not an accepted format
    b"GIF89a\x30\x75\x30\x75\x00\x00\x00",
    b"#?RADIANCE\n\n-Y 30000 +X 30000\n",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",  # JPEG 2000 signature box
    tiff_declaring(30000, 30000),
    tiff_declaring(4, 4),  # TIFF is not accepted at any size
])
def test_formats_outside_the_list_are_refused_undecoded(data):
    with pytest.raises(ImageDecodeError, match="not a JPEG/PNG"):
        decode_compressed("jpeg", data)


SIZES = [(1, 1), (1, 2), (2, 1), (3, 5), (1, MAX_SIDE), (MAX_SIDE, 1)]


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp"])
@pytest.mark.parametrize(("height", "width"), SIZES)
def test_every_size_up_to_the_limit_decodes(ext, height, width):
    if ext == ".webp" and max(height, width) > 16383:
        width, height = min(width, 16383), min(height, 16383)  # WebP's own maximum
    frame = np.random.default_rng(height * 7 + width).integers(0, 256, (height, width, 3),
                                                               np.uint8)
    ok, encoded = cv2.imencode(ext, frame)
    assert ok
    assert check_compressed_size(encoded)[:2] == (width, height)
    decoded, order = decode_compressed(ext, encoded.tobytes())
    assert order == "bgr"
    np.testing.assert_array_equal(decoded, cv2.imdecode(encoded, cv2.IMREAD_COLOR))
    raw, _ = decode_raw("bgr8", height, width, width * 3, False, frame.tobytes())
    np.testing.assert_array_equal(raw, frame)


# ---- property: corrupt headers of real images ----------------------------------------------

@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ext=st.sampled_from([".png", ".jpg", ".webp", ".bmp"]),
       height=st.integers(1, 24), width=st.integers(1, 24),
       edits=st.lists(st.tuples(st.integers(0, 95), st.integers(0, 255)), min_size=1,
                      max_size=3),
       seed=st.integers(0, 2**16))
def test_corrupt_headers_are_refused_or_decode_to_the_declared_size(ext, height, width, edits,
                                                                    seed):
    """Property: bytes in a real image's header overwritten (sizes, markers, chunk lengths):
    the frame is refused, or decoded to exactly the size its header declares, within limits."""
    frame = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    data = bytearray(cv2.imencode(ext, frame)[1].tobytes())
    for position, value in edits:
        data[position % len(data)] = value
    try:
        decoded, _ = decode_compressed(ext, bytes(data))
    except ImageDecodeError as error:
        assert error.reason
        return
    declared_width, declared_height, _ = check_compressed_size(bytes(data))
    assert decoded.shape == (declared_height, declared_width, 3)
    assert decoded.shape[0] * decoded.shape[1] <= MAX_PIXELS
