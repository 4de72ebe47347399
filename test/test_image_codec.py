"""Image codec: cv_bridge-compatible decoding, encoders, and malformed-message robustness."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from bisestdc_ros.node.image_codec import (
    LABELS_PNG_FORMAT,
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    bgr_to_image_msg,
    compressed_msg_to_frame,
    decode_compressed,
    decode_raw,
    image_msg_to_frame,
    labels_to_image_msg,
    labels_to_png_compressed,
    to_bgr,
)


def bgr_frame(h: int = 6, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def pad_rows(rows: np.ndarray, step: int) -> bytes:
    """H x row_bytes uint8 -> bytes with each row padded to `step` bytes."""
    h, row_bytes = rows.shape
    out = np.full((h, step), 0xAB, np.uint8)
    out[:, :row_bytes] = rows
    return out.tobytes()


def test_bgr8_and_rgb8_pass_through_with_channel_order():
    bgr = bgr_frame()
    frame, order = decode_raw("bgr8", 6, 8, 24, False, bgr.tobytes())
    assert order == "bgr"
    np.testing.assert_array_equal(frame, bgr)
    rgb = bgr[..., ::-1].copy()
    frame, order = decode_raw("rgb8", 6, 8, 24, False, rgb.tobytes())
    assert order == "rgb"
    np.testing.assert_array_equal(frame, rgb)
    np.testing.assert_array_equal(to_bgr(frame, order), bgr)


def test_row_padding_is_skipped():
    bgr = bgr_frame(5, 7)
    data = pad_rows(bgr.reshape(5, 21), 32)
    frame, _ = decode_raw("bgr8", 5, 7, 32, False, data)
    np.testing.assert_array_equal(frame, bgr)


def test_rgba_bgra_drop_alpha():
    bgr = bgr_frame()
    alpha = np.full((6, 8, 1), 7, np.uint8)
    bgra = np.concatenate([bgr, alpha], axis=2)
    rgba = np.concatenate([bgr[..., ::-1], alpha], axis=2)
    for encoding, pixels in (("bgra8", bgra), ("rgba8", rgba)):
        frame, order = decode_raw(encoding, 6, 8, 32, False, pixels.tobytes())
        np.testing.assert_array_equal(to_bgr(frame, order), bgr)


def test_mono8_and_mono16_both_endiannesses():
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    frame, order = decode_raw("mono8", 6, 8, 8, False, gray.tobytes())
    assert order == "bgr" and frame.shape == (6, 8, 3)
    np.testing.assert_array_equal(frame[..., 1], gray)

    values = np.array([[0, 257, 32768, 65535]], np.uint16)
    expected = np.round(values * 255.0 / 65535.0).astype(np.uint8)  # cv_bridge's scaling
    for dtype, big in (("<u2", False), (">u2", True)):
        data = values.astype(dtype).tobytes()
        frame, _ = decode_raw("mono16", 1, 4, 8, big, data)
        np.testing.assert_array_equal(frame[..., 0], expected)
    # Padded mono16 with an odd step still decodes.
    data = pad_rows(np.frombuffer(values.astype(">u2").tobytes(), np.uint8).reshape(1, 8), 11)
    frame, _ = decode_raw("mono16", 1, 4, 11, True, data)
    np.testing.assert_array_equal(frame[..., 2], expected)


def test_yuv422_variants_match_opencv():
    rng = np.random.default_rng(1)
    packed = rng.integers(0, 256, (4, 6, 2), dtype=np.uint8)
    uyvy, _ = decode_raw("yuv422", 4, 6, 12, False, packed.tobytes())
    yuyv, _ = decode_raw("yuv422_yuy2", 4, 6, 12, False, packed.tobytes())
    np.testing.assert_array_equal(uyvy, cv2.cvtColor(packed, cv2.COLOR_YUV2BGR_UYVY))
    np.testing.assert_array_equal(yuyv, cv2.cvtColor(packed, cv2.COLOR_YUV2BGR_YUY2))
    with pytest.raises(ImageDecodeError, match="even width"):
        decode_raw("yuv422", 4, 5, 10, False, bytes(40))


# What cv_bridge runs for each packed 4:2:2 encoding (getConversionCodes: bgr8 and rgb8 targets).
YUV422_CODES = {"yuv422": (cv2.COLOR_YUV2BGR_UYVY, cv2.COLOR_YUV2RGB_UYVY),
                "yuv422_yuy2": (cv2.COLOR_YUV2BGR_YUY2, cv2.COLOR_YUV2RGB_YUY2)}


@pytest.mark.parametrize("width", [1, 3, 641])
@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_odd_width_yuv422_is_refused_like_cv_bridge(encoding, width):
    # cv_bridge builds a CV_8UC2 Mat of width x height with the message's step and calls
    # cvtColor, which asserts an even width: bgr8 and rgb8 alike, unpadded and padded rows.
    # The codec refuses the same frames, with one line naming the encoding and the width.
    height = 3
    packed = np.random.default_rng(width).integers(0, 256, (height, width, 2), dtype=np.uint8)
    for step in (2 * width, 2 * width + 3):
        rows = np.frombuffer(pad_rows(packed.reshape(height, 2 * width), step), np.uint8)
        mat = rows.reshape(height, step)[:, : 2 * width].reshape(height, width, 2)
        for code in YUV422_CODES[encoding]:
            with pytest.raises(cv2.error, match="width % 2 == 0"):
                cv2.cvtColor(mat, code)
        with pytest.raises(ImageDecodeError) as info:
            decode_raw(encoding, height, width, step, False, rows.tobytes())
        reason = info.value.reason
        assert "\n" not in reason
        assert reason.startswith(f"{encoding} needs an even width")
        assert f"width {width};" in reason
    # Malformed layouts are refused for the reason cv_bridge's matFromImage gives first.
    with pytest.raises(ImageDecodeError, match="step"):
        decode_raw(encoding, height, width, 2 * width - 1, False, bytes(2 * width * height))
    with pytest.raises(ImageDecodeError, match="data has"):
        decode_raw(encoding, height, width, 2 * width, False, bytes(2 * width * height - 1))


@pytest.mark.parametrize("width", [2, 640])
@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_even_width_yuv422_with_padding_matches_cv_bridge(encoding, width):
    # The even neighbours of the refused widths decode as cv_bridge's cvtColor does, padded
    # rows included (the Mat is a strided view, as cv_bridge's Mat with the message's step).
    height = 3
    packed = np.random.default_rng(width).integers(0, 256, (height, width, 2), dtype=np.uint8)
    step = 2 * width + 3
    frame, order = decode_raw(encoding, height, width, step, False,
                              pad_rows(packed.reshape(height, 2 * width), step))
    bgr_code, rgb_code = YUV422_CODES[encoding]
    assert order == "bgr"
    np.testing.assert_array_equal(frame, cv2.cvtColor(packed, bgr_code))
    np.testing.assert_array_equal(frame, cv2.cvtColor(packed, rgb_code)[..., ::-1])


@pytest.mark.parametrize(
    ("encoding", "pattern"),
    # Which pixel of each 2x2 block is red, green, blue in the ROS encoding name.
    [("bayer_rggb8", "RGGB"), ("bayer_bggr8", "BGGR"), ("bayer_gbrg8", "GBRG"),
     ("bayer_grbg8", "GRBG")],
)
def test_bayer_mapping_recovers_a_flat_colour(encoding, pattern):
    # A uniform scene of B=30, G=120, R=220 mosaicked with the named pattern must demosaic back
    # to that colour in the interior: a wrong cv2 code swaps R and B or mixes G in.
    value = {"B": 30, "G": 120, "R": 220}
    tile = np.array([[value[pattern[0]], value[pattern[1]]],
                     [value[pattern[2]], value[pattern[3]]]], np.uint8)
    mosaic = np.tile(tile, (8, 8))
    frame, order = decode_raw(encoding, 16, 16, 16, False, mosaic.tobytes())
    assert order == "bgr"
    np.testing.assert_allclose(frame[4:12, 4:12].reshape(-1, 3).mean(0), [30, 120, 220], atol=2)


def test_compressed_jpeg_and_png():
    bgr = bgr_frame(16, 16)
    ok, png = cv2.imencode(".png", bgr)
    assert ok
    frame, order = decode_compressed("png", png.tobytes())
    assert order == "bgr"
    np.testing.assert_array_equal(frame, bgr)
    ok, jpeg = cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))
    msg = CompressedImage(format="jpeg")
    msg.data = jpeg.tobytes()
    frame, _ = compressed_msg_to_frame(msg)
    assert frame.shape == (16, 16, 3)
    assert np.abs(frame.astype(int) - 90).max() <= 2


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("32FC1", 2, 2, 8, False, bytes(16)), "unsupported encoding"),
        (("bgr8", 0, 2, 6, False, b""), "empty image"),
        (("bgr8", 2, 0, 0, False, b""), "empty image"),
        (("bgr8", 2, 2, 5, False, bytes(10)), "step 5 <"),
        (("bgr8", 2, 2, 6, False, bytes(11)), "data has 11 bytes"),
        (("mono16", 2, 2, 3, False, bytes(8)), "step 3 <"),
        (("rgb8", 100000, 2, 6, False, b""), "too large"),
    ],
)
def test_malformed_raw_images_raise_with_reason(args, match):
    with pytest.raises(ImageDecodeError, match=match) as info:
        decode_raw(*args)
    assert info.value.reason


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff\xe0 not a jpeg", bytes(100)])
def test_corrupt_compressed_images_raise(data):
    with pytest.raises(ImageDecodeError):
        decode_compressed("jpeg", data)


def test_image_msg_round_trip_with_header():
    header = Header(frame_id="cam_front")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    bgr = bgr_frame(9, 11)
    msg = bgr_to_image_msg(bgr, header)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("bgr8", 9, 11, 33)
    assert msg.header.frame_id == "cam_front" and msg.header.stamp.nanosec == 345
    frame, order = image_msg_to_frame(msg)
    np.testing.assert_array_equal(to_bgr(frame, order), bgr)

    labels = (np.arange(99, dtype=np.uint8) % 19).reshape(9, 11)
    msg = labels_to_image_msg(labels, header)
    assert (msg.encoding, msg.step) == ("mono8", 11)
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.uint8).reshape(9, 11), labels)
    # A non-contiguous view is encoded by value.
    np.testing.assert_array_equal(
        np.frombuffer(labels_to_image_msg(labels[:, ::2]).data, np.uint8).reshape(9, 6),
        labels[:, ::2],
    )


def test_labels_png_is_lossless_and_tagged():
    labels = np.random.default_rng(2).integers(0, 19, (33, 65), dtype=np.uint8)
    msg = labels_to_png_compressed(labels, Header(frame_id="f"))
    assert msg.format == LABELS_PNG_FORMAT == "mono8; png compressed mono8"
    decoded = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, labels)
    assert msg.header.frame_id == "f"


def test_encoders_reject_wrong_shapes():
    with pytest.raises(ValueError):
        labels_to_image_msg(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError):
        bgr_to_image_msg(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        labels_to_png_compressed(np.zeros((2, 2), np.uint16))


ENCODINGS = st.sampled_from([*SUPPORTED_ENCODINGS, "bgr32", "32FC1", "", "jpeg", "8UC3"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    encoding=ENCODINGS,
    height=st.integers(-2, 40),
    width=st.integers(-2, 40),
    step_extra=st.integers(-8, 16),
    data_extra=st.integers(-64, 64),
    big_endian=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_raw_messages_decode_or_raise_decode_error(
    encoding, height, width, step_extra, data_extra, big_endian, seed
):
    bytes_per_pixel = {"rgba8": 4, "bgra8": 4, "rgb8": 3, "bgr8": 3, "mono16": 2, "yuv422": 2,
                       "yuv422_yuy2": 2, "rgb16": 6, "bgr16": 6, "rgba16": 8, "bgra16": 8,
                       }.get(encoding, 2 if encoding.endswith("16") else 1)
    step = max(width, 0) * bytes_per_pixel + step_extra
    size = max(max(step, 0) * max(height, 0) + data_extra, 0)
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    msg = Image(encoding=encoding, is_bigendian=big_endian)
    # Message fields are unsigned: out-of-range sizes only reach decode_raw directly.
    try:
        frame, order = decode_raw(encoding, height, width, step, big_endian, data)
    except ImageDecodeError as error:
        assert error.reason
        return
    assert order in ("rgb", "bgr")
    assert frame.dtype == np.uint8 and frame.shape == (height, width, 3)
    if height >= 0 and width >= 0 and step >= 0:
        msg.height, msg.width, msg.step = height, width, step
        msg.data = data
        frame2, _ = image_msg_to_frame(msg)
        np.testing.assert_array_equal(frame2, frame)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=512), prefix=st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG"]))
def test_random_bytes_as_compressed_decode_or_raise_decode_error(data, prefix):
    try:
        frame, order = decode_compressed("jpeg", prefix + data)
    except ImageDecodeError:
        return
    assert order == "bgr" and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


# --- 16-bit encodings, EXIF orientation and 16-bit PNGs as cv_bridge converts them ------------

# 16-bit values whose cv_bridge result (round(v * 255 / 65535)) differs from the high byte
# (v >> 8) that a truncating conversion gives: 200 -> 1 (not 0), 65400 -> 254 (not 255) ...
VALUES_16 = np.array([0, 200, 383, 386, 32768, 65400, 65535], np.uint16)
EXPECTED_8 = np.array([0, 1, 1, 2, 128, 254, 255], np.uint8)


def test_expected_pixels_are_rounded_not_truncated():
    # Guards the fixture itself: the expectations are cv_bridge's rounding, not v >> 8.
    np.testing.assert_array_equal(EXPECTED_8, np.round(VALUES_16 / 257.0).astype(np.uint8))
    assert (EXPECTED_8 != (VALUES_16 >> 8)).any()


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize(("encoding", "channels", "alpha", "bgr_index"), [
    ("rgb16", 3, False, (2, 1, 0)), ("bgr16", 3, False, (0, 1, 2)),
    ("rgba16", 4, True, (2, 1, 0)), ("bgra16", 4, True, (0, 1, 2)),
])
def test_16bit_colour_encodings_scale_with_rounding(encoding, channels, alpha, bgr_index,
                                                    big_endian):
    n = VALUES_16.size
    # Channel c of pixel i holds VALUES_16[(i + c) % n]: every channel sees every value.
    pixels = np.stack([np.roll(VALUES_16, -c) for c in range(channels)], axis=1)
    if alpha:
        pixels[:, 3] = 12345  # must be dropped, never blended
    image = pixels.reshape(1, n, channels)
    data = image.astype(">u2" if big_endian else "<u2").tobytes()
    frame, order = decode_raw(encoding, 1, n, n * channels * 2, big_endian, data)
    bgr = to_bgr(frame, order)
    expected = np.stack([np.roll(EXPECTED_8, -c) for c in bgr_index], axis=1)
    np.testing.assert_array_equal(bgr[0], expected)


@pytest.mark.parametrize(("encoding", "pattern"), [
    ("bayer_rggb16", "RGGB"), ("bayer_bggr16", "BGGR"), ("bayer_gbrg16", "GBRG"),
    ("bayer_grbg16", "GRBG"),
])
def test_bayer16_demosaics_then_scales(encoding, pattern):
    # A flat colour of B=200, G=32768, R=65400 (16 bit) must come back as the rounded 8-bit
    # colour (1, 128, 254) in the interior: truncation would give (0, 128, 255), a wrong
    # OpenCV code would swap R and B.
    value = {"B": 200, "G": 32768, "R": 65400}
    tile = np.array([[value[pattern[0]], value[pattern[1]]],
                     [value[pattern[2]], value[pattern[3]]]], np.uint16)
    mosaic = np.tile(tile, (8, 8))
    frame, order = decode_raw(encoding, 16, 16, 32, False, mosaic.astype("<u2").tobytes())
    assert order == "bgr" and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame[4:12, 4:12].reshape(-1, 3),
                                  np.tile([1, 128, 254], (64, 1)))


def test_bayer16_rounds_after_interpolating_at_16_bits():
    # Demosaicing averages neighbours; cv_bridge averages the 16-bit values and rounds once.
    mosaic = np.random.default_rng(3).integers(0, 65536, (8, 10), dtype=np.uint16)
    frame, _ = decode_raw("bayer_rggb16", 8, 10, 20, False, mosaic.astype("<u2").tobytes())
    demosaiced16 = cv2.cvtColor(mosaic, cv2.COLOR_BayerBG2BGR).astype(np.float64)
    np.testing.assert_array_equal(frame, np.round(demosaiced16 / 257.0).astype(np.uint8))


def jpeg_with_exif_orientation(bgr: np.ndarray, orientation: int) -> bytes:
    """A JPEG whose APP1 EXIF block says ``orientation`` (6 = rotate 90 degrees to display)."""
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    # Little-endian TIFF header, one IFD with one SHORT entry: 0x0112 Orientation.
    tiff = (b"II*\x00" + (8).to_bytes(4, "little") + (1).to_bytes(2, "little")
            + (0x0112).to_bytes(2, "little") + (3).to_bytes(2, "little")
            + (1).to_bytes(4, "little") + orientation.to_bytes(2, "little") + b"\x00\x00"
            + (0).to_bytes(4, "little"))
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    data = jpeg.tobytes()
    return data[:2] + app1 + data[2:]


def test_jpeg_exif_orientation_is_ignored():
    bgr = np.zeros((16, 32, 3), np.uint8)
    bgr[:, :16] = (0, 0, 255)  # left half red, right half black
    data = jpeg_with_exif_orientation(bgr, 6)
    # OpenCV's default decode would rotate it (the tag is really there) ...
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (32, 16, 3)
    # ... image_transport does not: the frame is the stored 32 x 16 with red on the left.
    frame, _ = decode_compressed("bgr8; jpeg compressed bgr8", data)
    assert frame.shape == (16, 32, 3)
    assert frame[:, :12, 2].min() > 200 and frame[:, 20:, 2].max() < 50


def test_16bit_png_scales_with_rounding():
    bgr16 = np.stack([np.roll(VALUES_16, -c) for c in range(3)], axis=1).reshape(1, -1, 3)
    ok, png = cv2.imencode(".png", bgr16)
    assert ok
    frame, order = decode_compressed("bgr16; png compressed bgr16", png.tobytes())
    assert order == "bgr"
    np.testing.assert_array_equal(frame[0], np.stack([np.roll(EXPECTED_8, -c) for c in range(3)],
                                                     axis=1))
    ok, png = cv2.imencode(".png", VALUES_16.reshape(1, -1))  # mono16 PNG
    frame, _ = decode_compressed("mono16; png compressed mono16", png.tobytes())
    np.testing.assert_array_equal(frame[0], np.repeat(EXPECTED_8[:, None], 3, axis=1))


def test_png_with_alpha_drops_it():
    bgra = np.concatenate([bgr_frame(4, 4), np.full((4, 4, 1), 3, np.uint8)], axis=2)
    ok, png = cv2.imencode(".png", bgra)
    frame, _ = decode_compressed("bgra8; png compressed bgra8", png.tobytes())
    np.testing.assert_array_equal(frame, bgra[..., :3])
