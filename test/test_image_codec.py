"""Image codec: cv_bridge-compatible decoding, encoders, and malformed-message robustness."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from bisestdc_ros.image_codec import (
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
        (("bgr16", 2, 2, 12, False, bytes(24)), "unsupported encoding"),
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


ENCODINGS = st.sampled_from([*SUPPORTED_ENCODINGS, "bgr16", "32FC1", "", "jpeg", "8UC3"])


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
                       "yuv422_yuy2": 2}.get(encoding, 1)
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
