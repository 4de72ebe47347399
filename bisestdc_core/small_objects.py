"""Small-object extraction from label maps, and the colour/overlay renderings the node publishes.

Everything here works on plain numpy arrays (no ROS): ``labels`` is an H x W uint8 map of train
ids, ``confidence`` an optional H x W uint8 map (0..255 = 0..1), frames are H x W x 3 uint8 BGR.

Speed matters (these run per frame in the node): colours are looked up as packed 4-byte
values (and resized from the network's resolution), blending goes through ``cv2.addWeighted``
in uint8, and callers may pass ``out`` buffers that are reused between frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Connected components are grouped with 8-connectivity: thin diagonal structures (poles seen at
# an angle, sign edges after downscaling) would otherwise break into several objects.
CONNECTIVITY = 8
MAX_16U_LABEL = np.iinfo(np.uint16).max


@dataclass(frozen=True)
class SmallObject:
    """One connected region of a small-object class.

    Attributes:
        class_id: train id of the region.
        box: (x, y, w, h) bounding box in pixels of the label map.
        pixel_count: number of pixels in the region.
        mean_confidence: mean confidence over the region in 0..1, None without a confidence map.
        class_name: class name when the caller passed names, else None.
    """

    class_id: int
    box: tuple[int, int, int, int]
    pixel_count: int
    mean_confidence: float | None = None
    class_name: str | None = None


def find_small_objects(
    labels: np.ndarray,
    class_ids: Iterable[int],
    min_area: int,
    confidence: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
) -> list[SmallObject]:
    """Connected components of each small-object class, largest first within a class.

    Args:
        labels: H x W uint8 train ids.
        class_ids: train ids to extract (the class set's small objects, usually).
        min_area: regions with fewer pixels are dropped (speckle from the upsampled logits).
        confidence: optional H x W uint8 confidence map (255 = 1.0).
        class_names: optional names indexed by train id, copied into ``SmallObject.class_name``.

    Returns:
        SmallObjects ordered by class (in ``class_ids`` order), then by decreasing pixel count.
    """
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels must be H x W uint8, got {labels.shape} {labels.dtype}")
    if confidence is not None and confidence.shape != labels.shape:
        raise ValueError(f"confidence {confidence.shape} does not match labels {labels.shape}")
    objects: list[SmallObject] = []
    for class_id in class_ids:
        regions, means = _class_regions(labels, int(class_id), min_area, confidence)
        objects += _small_objects(int(class_id), regions, means, class_names)
    return objects


def _class_regions(
    labels: np.ndarray, class_id: int, min_area: int, confidence: np.ndarray | None,
) -> tuple[np.ndarray, list[float] | None]:
    """Connected regions of one class with at least ``min_area`` pixels, largest first.

    Returns:
        N x 5 int64 rows (x, y, w, h, pixel count) in ``labels``' pixels, and the regions'
        mean confidences in 0..1 (None without a confidence map).
    """
    # A 0/1 uint8 mask: numpy's comparison viewed as bytes, no conversion. Not cv2.compare:
    # it reads a 1 x 1 array as a scalar and refuses to compare it with the class id.
    mask = np.equal(labels, class_id).view(np.uint8)
    if cv2.countNonZero(mask) < max(min_area, 1):
        return _NO_REGIONS, None if confidence is None else []  # most classes are absent
    # Labelling only the class's bounding rectangle: small-object classes cover a small part
    # of the frame, and a full 1080p labelling pass costs ~6 ms per class.
    x0, y0, w0, h0 = cv2.boundingRect(mask)
    # 16-bit component labels are ~3x faster than 32-bit ones; they suffice while the
    # rectangle cannot hold 65535 regions (8-connected regions are >= 2 px apart each way).
    ltype = cv2.CV_16U if ((w0 + 1) // 2) * ((h0 + 1) // 2) < MAX_16U_LABEL else cv2.CV_32S
    _, components, stats, _ = cv2.connectedComponentsWithStats(
        mask[y0 : y0 + h0, x0 : x0 + w0], connectivity=CONNECTIVITY, ltype=ltype
    )
    # Row 0 is the background. Filtered and sorted in numpy: noisy frames have hundreds of
    # regions, and a Python loop over them costs more than the labelling.
    kept = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area) + 1
    kept = kept[np.argsort(-stats[kept, cv2.CC_STAT_AREA], kind="stable")]
    regions = stats[kept].astype(np.int64)
    means = None
    if confidence is not None:
        means = []
        for index, (x, y, w, h, _) in zip(kept.tolist(), regions.tolist()):
            # Only the region's own box is scanned: small objects keep this cheap.
            region = components[y : y + h, x : x + w] == index
            box_conf = confidence[y0 + y : y0 + y + h, x0 + x : x0 + x + w]
            means.append(float(box_conf[region].mean()) / 255.0)
    regions[:, 0] += x0
    regions[:, 1] += y0
    return regions, means


_NO_REGIONS = np.zeros((0, 5), np.int64)


def _small_objects(
    class_id: int, regions: np.ndarray, means: list[float] | None,
    class_names: Sequence[str] | None,
) -> list[SmallObject]:
    name = class_names[class_id] if class_names and class_id < len(class_names) else None
    means = means if means is not None else [None] * len(regions)
    return [SmallObject(class_id, (x, y, w, h), area, mean, name)
            for (x, y, w, h, area), mean in zip(regions.tolist(), means)]


def find_small_objects_at(
    labels: np.ndarray,
    class_ids: Iterable[int],
    min_area: int,
    analysis_size: tuple[int, int],
    confidence: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    analysis_labels: np.ndarray | None = None,
) -> list[SmallObject]:
    """``find_small_objects`` run at ``analysis_size`` (H, W), results in ``labels``' pixels.

    Label maps published at a camera's resolution are nearest-upsampled from the network's
    output, so the network's resolution carries all their detail. Searching there instead of
    at 1080p is several times cheaper; boxes and pixel counts are scaled back to the frame and
    ``min_area`` (in frame pixels) is scaled down accordingly. ``analysis_labels``, the
    engine's own labels at ``analysis_size`` when it has them, are searched as they are
    (no resize of the frame-size labels back down).
    """
    h, w = labels.shape
    ah, aw = int(analysis_size[0]), int(analysis_size[1])
    if ah >= h or aw >= w:
        return find_small_objects(labels, class_ids, min_area, confidence, class_names)
    sy, sx = h / ah, w / aw
    if analysis_labels is not None and analysis_labels.shape == (ah, aw):
        small = analysis_labels
    else:
        small = cv2.resize(labels, (aw, ah), interpolation=cv2.INTER_NEAREST)
    small_conf = None
    if confidence is not None:
        small_conf = cv2.resize(confidence, (aw, ah), interpolation=cv2.INTER_NEAREST)
    area_scale = sx * sy
    small_min_area = max(1, int(np.ceil(min_area / area_scale)))
    objects: list[SmallObject] = []
    for class_id in class_ids:
        regions, means = _class_regions(small, int(class_id), small_min_area, small_conf)
        x, y, bw, bh, area = regions.T.astype(np.float64)
        x0, y0 = (x * sx).astype(np.int64), (y * sy).astype(np.int64)
        x1 = np.minimum(w, np.ceil((x + bw) * sx).astype(np.int64))
        y1 = np.minimum(h, np.ceil((y + bh) * sy).astype(np.int64))
        scaled = np.stack([x0, y0, x1 - x0, y1 - y0, np.round(area * area_scale)], axis=1)
        objects += _small_objects(int(class_id), scaled.astype(np.int64), means, class_names)
    return objects


def palette_lut(palette_bgr: np.ndarray) -> np.ndarray:
    """256 x 3 palette -> the colour table ``colorize`` takes: one packed B, G, R, 0 int32 each.

    Packed, a colour is one 4-byte element: looked up with one ``np.take`` and nearest-resized
    as a single channel, both several times cheaper than on 3 separate bytes.
    """
    palette = np.asarray(palette_bgr, np.uint8)
    if palette.shape != (256, 3):
        raise ValueError(f"palette must be 256 x 3 uint8, got {palette.shape}")
    packed = np.zeros((256, 4), np.uint8)
    packed[:, :3] = palette
    return packed.view(np.int32)[:, 0].copy()


def colorize(
    labels: np.ndarray,
    lut: np.ndarray,
    out: np.ndarray | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """h x w uint8 labels -> H x W x 3 uint8 colours through a ``palette_lut`` table.

    ``size`` (H, W), when it differs from the labels' size, nearest-resizes the colours: the
    colours of the network-resolution labels resized to the frame are those of the frame-size
    labels the engine resized the same way (OpenCV's nearest rule), and colouring 256 x 512
    labels then resizing costs ~1 ms at 1080p where colouring 1080p labels costs several.
    """
    if lut.shape != (256,):
        lut = palette_lut(lut)
    packed = np.take(lut, labels)
    if size is not None and tuple(size) != labels.shape:
        height, width = int(size[0]), int(size[1])
        packed = cv2.resize(packed, (width, height), interpolation=cv2.INTER_NEAREST)
    bgr0 = packed.view(np.uint8).reshape(*packed.shape, 4)
    return cv2.cvtColor(bgr0, cv2.COLOR_BGRA2BGR, dst=out)


def draw_overlay(
    frame_bgr: np.ndarray,
    labels: np.ndarray,
    palette_bgr: np.ndarray,
    objects: Sequence[SmallObject],
    class_names: Sequence[str] | None,
    opacity: float,
    color: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The frame blended with the class colours, small objects boxed and named.

    Args:
        frame_bgr: H x W x 3 uint8 BGR frame (same size as ``labels``).
        labels: H x W uint8 train ids.
        palette_bgr: 256 x 3 (or 256 x 1 x 3) uint8 BGR palette.
        objects: small objects to outline (from ``find_small_objects``).
        class_names: names indexed by train id for the box captions; None uses the object's
            ``class_name`` or its id.
        opacity: weight of the colours, 0 (frame only) .. 1 (colours only).
        color: the already colourised labels, when the caller computed them anyway.
        out: optional H x W x 3 uint8 buffer to draw into (reused between frames).

    Returns:
        H x W x 3 uint8 BGR image (``out`` when given).
    """
    if frame_bgr.shape[:2] != labels.shape:
        raise ValueError(f"frame {frame_bgr.shape[:2]} and labels {labels.shape} differ in size")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    palette = np.asarray(palette_bgr, np.uint8).reshape(256, 3)
    if color is None:
        color = colorize(labels, palette_lut(palette))
    image = cv2.addWeighted(frame_bgr, 1.0 - opacity, color, opacity, 0.0, dst=out)
    # Text size scales with the image so captions stay readable at 1080p and at 256 px.
    scale = max(0.35, image.shape[0] / 1400.0)
    thickness = 1 if image.shape[0] < 720 else 2
    colors = palette.tolist()  # plain ints once, not a numpy row per box (noisy frames: 100s)
    for obj in objects:
        x, y, w, h = obj.box
        box_color = colors[obj.class_id]
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), box_color, thickness)
        if class_names is not None and obj.class_id < len(class_names):
            caption = class_names[obj.class_id]
        else:
            caption = obj.class_name or str(obj.class_id)
        cv2.putText(
            image, caption, (x, max(y - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, scale, box_color,
            thickness, cv2.LINE_AA,
        )
    return image
