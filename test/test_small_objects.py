"""Small-object extraction and overlay rendering on hand-computable label maps."""

from __future__ import annotations

import numpy as np
import pytest

from bisestdc_core.classes import CITYSCAPES
from bisestdc_core.small_objects import (
    SmallObject,
    colorize,
    draw_overlay,
    find_small_objects,
    find_small_objects_at,
    palette_lut,
)

POLE = CITYSCAPES.names.index("pole")  # 5
LIGHT = CITYSCAPES.names.index("traffic light")  # 6
SIGN = CITYSCAPES.names.index("traffic sign")  # 7
ROAD = 0


def two_blobs() -> np.ndarray:
    """20 x 30 road with a 4 x 3 pole (12 px) and a 2 x 2 pole (4 px), plus a 3 x 3 sign."""
    labels = np.full((20, 30), ROAD, np.uint8)
    labels[2:6, 3:6] = POLE  # y 2..5, x 3..5 -> box (3, 2, 3, 4), 12 px
    labels[10:12, 20:22] = POLE  # box (20, 10, 2, 2), 4 px
    labels[15:18, 25:28] = SIGN  # box (25, 15, 3, 3), 9 px
    return labels


def test_two_blobs_one_under_min_area():
    objects = find_small_objects(two_blobs(), [POLE], min_area=5)
    assert objects == [SmallObject(POLE, (3, 2, 3, 4), 12, None, None)]


def test_all_blobs_per_class_in_given_order_largest_first():
    objects = find_small_objects(
        two_blobs(), [SIGN, POLE], min_area=1, class_names=CITYSCAPES.names
    )
    assert [(o.class_id, o.box, o.pixel_count) for o in objects] == [
        (SIGN, (25, 15, 3, 3), 9),
        (POLE, (3, 2, 3, 4), 12),
        (POLE, (20, 10, 2, 2), 4),
    ]
    assert [o.class_name for o in objects] == ["traffic sign", "pole", "pole"]


def test_absent_class_and_empty_class_list():
    assert find_small_objects(two_blobs(), [LIGHT], min_area=1) == []
    assert find_small_objects(two_blobs(), [], min_area=1) == []


def test_eight_connectivity_joins_diagonal_pixels():
    labels = np.zeros((5, 5), np.uint8)
    labels[0, 0] = labels[1, 1] = labels[2, 2] = POLE
    objects = find_small_objects(labels, [POLE], min_area=1)
    assert len(objects) == 1
    assert objects[0].box == (0, 0, 3, 3)
    assert objects[0].pixel_count == 3


def test_mean_confidence_over_the_region_only():
    labels = two_blobs()
    confidence = np.zeros_like(labels)
    confidence[2:4, 3:6] = 255  # half of the big pole's rows (6 of 12 px) fully confident
    confidence[4:6, 3:6] = 51  # the other 6 px at 0.2
    confidence[0, 0] = 255  # outside every object; must not count
    objects = find_small_objects(labels, [POLE], min_area=5, confidence=confidence)
    assert len(objects) == 1
    assert objects[0].mean_confidence == pytest.approx((1.0 + 0.2) / 2)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        find_small_objects(np.zeros((4, 4), np.int32), [POLE], 1)
    with pytest.raises(ValueError):
        find_small_objects(np.zeros((4, 4), np.uint8), [POLE], 1, confidence=np.zeros((3, 4)))


def test_colorize_matches_palette_indexing():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 256, (37, 53), dtype=np.uint8)  # includes ignore/unknown ids
    palette = CITYSCAPES.palette_bgr()
    np.testing.assert_array_equal(colorize(labels, palette_lut(palette)), palette[labels])
    out = np.empty((37, 53, 3), np.uint8)
    assert colorize(labels, palette_lut(palette), out=out) is out
    np.testing.assert_array_equal(out, palette[labels])


@pytest.mark.parametrize("net_hw,frame_hw", [
    ((16, 32), (16, 32)),  # same size: no resize
    ((16, 32), (48, 96)),  # integer scale
    ((16, 32), (37, 53)),  # fractional scale, odd sizes
    ((64, 128), (45, 61)),  # frame smaller than the network
])
def test_colours_and_overlay_from_network_labels_equal_the_frame_labels_ones(net_hw, frame_hw):
    """The node's fast path (colour the network-resolution labels, resize the colours) gives
    the same pixels as the straightforward one on the frame-size labels the engine derives
    from them (OpenCV nearest); where resizing those labels back down restores the network's
    map, the objects found are the same too (elsewhere the given map is the exact one)."""
    import cv2

    rng = np.random.default_rng(sum(net_hw + frame_hw))
    net = rng.choice(np.array([ROAD, POLE, SIGN, 13, 255], np.uint8), size=net_hw)
    height, width = frame_hw
    labels = cv2.resize(net, (width, height), interpolation=cv2.INTER_NEAREST)
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    palette = CITYSCAPES.palette_bgr()

    color = colorize(net, palette_lut(palette), size=labels.shape)
    np.testing.assert_array_equal(color, palette[labels])
    objects = find_small_objects_at(labels, [POLE, SIGN], 4, net_hw,
                                    class_names=CITYSCAPES.names, analysis_labels=net)
    resized_down = cv2.resize(labels, net_hw[::-1], interpolation=cv2.INTER_NEAREST)
    if np.array_equal(resized_down, net) or net_hw == frame_hw:
        assert objects == find_small_objects_at(labels, [POLE, SIGN], 4, net_hw,
                                                class_names=CITYSCAPES.names)
    fast = draw_overlay(frame, labels, palette, objects, CITYSCAPES.names, 0.5, color=color,
                        out=np.empty_like(frame))
    plain = draw_overlay(frame, labels, palette, objects, CITYSCAPES.names, 0.5)
    np.testing.assert_array_equal(fast, plain)


def test_overlay_blend_endpoints_and_boxes():
    labels = two_blobs()
    frame = np.full((20, 30, 3), 100, np.uint8)
    palette = CITYSCAPES.palette_bgr()
    # opacity 0: the frame itself; opacity 1: the colours, where no box was drawn.
    np.testing.assert_array_equal(draw_overlay(frame, labels, palette, [], None, 0.0), frame)
    np.testing.assert_array_equal(
        draw_overlay(frame, labels, palette, [], None, 1.0), palette[labels]
    )
    half = draw_overlay(frame, labels, palette, [], None, 0.5)
    expected = np.round((frame.astype(float) + palette[labels]) / 2)
    assert np.abs(half.astype(float) - expected).max() <= 1

    objects = find_small_objects(labels, [POLE], min_area=5)
    boxed = draw_overlay(frame, labels, palette, objects, CITYSCAPES.names, 0.0)
    pole_bgr = palette[POLE]
    # The rectangle outline of the (3, 2, 3, 4) box is drawn in the pole colour.
    np.testing.assert_array_equal(boxed[2, 3], pole_bgr)
    np.testing.assert_array_equal(boxed[5, 5], pole_bgr)
    # Far from any object and caption, the frame is untouched.
    np.testing.assert_array_equal(boxed[19, 0], frame[19, 0])


def test_overlay_rejects_size_mismatch_and_bad_opacity():
    palette = CITYSCAPES.palette_bgr()
    with pytest.raises(ValueError):
        draw_overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4), np.uint8), palette, [],
                     None, 0.5)
    with pytest.raises(ValueError):
        draw_overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), palette, [],
                     None, 1.5)


def test_search_at_network_resolution_matches_the_upsampled_map():
    import cv2

    from bisestdc_core.small_objects import find_small_objects_at

    net = np.zeros((64, 128), np.uint8)
    net[10:40, 20:22] = 5  # a pole, 2 x 30 px at network resolution
    net[5:9, 90:96] = 7  # a sign, 6 x 4 px
    net[50, 50] = 7  # speckle: 1 px at network resolution = 9 px in the frame
    frame_labels = cv2.resize(net, (384, 192), interpolation=cv2.INTER_NEAREST)  # x3
    full = find_small_objects(frame_labels, [5, 7], min_area=16)
    fast = find_small_objects_at(frame_labels, [5, 7], 16, (64, 128))
    assert [(o.class_id, o.box, o.pixel_count) for o in fast] == \
        [(o.class_id, o.box, o.pixel_count) for o in full]
    assert [o.box for o in fast] == [(60, 30, 6, 90), (270, 15, 18, 12)]
    # A network size at or above the frame's means a plain full-resolution search.
    assert find_small_objects_at(frame_labels, [5, 7], 16, (192, 384)) == full


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 2)])
def test_degenerate_label_maps_are_searched_coloured_and_drawn(shape):
    """1 x 1 and one-pixel-wide frames are valid camera frames: every stage handles them."""
    from bisestdc_core.small_objects import find_small_objects_at

    labels = np.full(shape, POLE, np.uint8)
    area = shape[0] * shape[1]
    confidence = np.full(shape, 255, np.uint8)
    objects = find_small_objects(labels, [POLE, SIGN], min_area=1, confidence=confidence)
    assert [(o.class_id, o.box, o.pixel_count, o.mean_confidence) for o in objects] == \
        [(POLE, (0, 0, shape[1], shape[0]), area, 1.0)]
    assert find_small_objects(labels, [POLE], min_area=area + 1) == []
    # The node searches at the network's size, larger than these frames: a full search.
    assert find_small_objects_at(labels, [POLE], 1, (256, 512)) == \
        find_small_objects(labels, [POLE], 1)
    palette = CITYSCAPES.palette_bgr()
    np.testing.assert_array_equal(colorize(labels, palette_lut(palette)), palette[labels])
    frame = np.zeros((*shape, 3), np.uint8)
    overlay = draw_overlay(frame, labels, palette, objects, CITYSCAPES.names, 1.0)
    assert overlay.shape == (*shape, 3)


def test_more_regions_than_16_bit_labels_hold():
    # Isolated pixels on a 2-pixel grid: 300 x 300 = 90000 separate regions in one class.
    labels = np.zeros((600, 600), np.uint8)
    labels[::2, ::2] = POLE
    objects = find_small_objects(labels, [POLE], min_area=1)
    assert len(objects) == 90000
    assert {o.box for o in objects[-2:]} <= {(x, y, 1, 1) for x in range(0, 600, 2)
                                             for y in range(0, 600, 2)}
