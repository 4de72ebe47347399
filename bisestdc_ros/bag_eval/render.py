"""One pass over the bag after a run: overlay video, contact sheet and per-frame statistics.

Every image is read again, blended with its prediction (small objects boxed and named) and
written to ``overlay.mp4`` (OpenCV's mp4v writer: no ffmpeg needed) with its time since the
first frame; frames without a prediction are dimmed and marked "dropped". The same pass counts
per frame the predicted class shares and the small objects of each class, and draws the
contact sheet: a few evenly spaced frames, with the ground truth and the errors beside each
prediction when the bag has labels.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from bisestdc_core.classes import IGNORE_INDEX, ClassSet
from bisestdc_core.small_objects import SmallObject, draw_overlay, find_small_objects
from bisestdc_ros.bag_eval.errors import EvalError
from bisestdc_ros.bag_eval.plan import BagPlan
from bisestdc_ros.bag_eval.scoring import RunResult, sheet_stamps
from bisestdc_ros.bags.messages import frame_from_msg, labels_from_msg, stamp_ns
from bisestdc_ros.bags.reader import BagReader
from bisestdc_ros.node.image_codec import ImageDecodeError, to_bgr

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"

OVERLAY_OPACITY = 0.5
SMALL_OBJECT_MIN_AREA = 16  # pixels: segment_node's default small_object_min_area
VIDEO_MIN_FPS, VIDEO_MAX_FPS = 1.0, 120.0
VIDEO_MAX_WIDTH = 1280  # larger frames are scaled down: the video is for looking, not scoring
TILE_WIDTH = 320
SHEET_COLUMNS_WITHOUT_LABELS = 4
SHEET_ROWS_WITH_LABELS = 6
ERROR_BGR = (0, 0, 255)  # red: predicted class differs from the ground truth
CAPTION_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class FrameStats:
    """Per-frame predicted class shares and small-object counts, in bag order."""

    seconds: list[float] = field(default_factory=list)
    shares: list[np.ndarray] = field(default_factory=list)  # C fractions per frame
    small_objects: list[dict[str, int]] = field(default_factory=list)

    def mean_shares(self, class_set: ClassSet) -> dict[str, float]:
        """Mean predicted share of each class over the frames (fractions)."""
        if not self.shares:
            return {name: 0.0 for name in class_set.names}
        mean = np.mean(np.stack(self.shares), axis=0)
        return {name: float(v) for name, v in zip(class_set.names, mean)}

    def small_object_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for counts in self.small_objects:
            for name, n in counts.items():
                totals[name] = totals.get(name, 0) + n
        return totals


def render(plan: BagPlan, result: RunResult, class_set: ClassSet, out_dir: Path
           ) -> FrameStats:
    """Write overlay.mp4 and contact_sheet.png under ``out_dir``; returns the frame statistics.

    Raises:
        EvalError: the video or the sheet cannot be written.
    """
    palette = class_set.palette_bgr()
    small_ids = list(class_set.small_object_ids)
    stats = FrameStats()
    wanted = sheet_stamps(plan, SHEET_ROWS_WITH_LABELS if plan.has_labels else 8)
    sheet_frames: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    truths: dict[int, np.ndarray] = {}
    video = _VideoWriter(out_dir / "overlay.mp4", plan)
    seen: set[int] = set()
    topics = [plan.image_topic] + ([plan.labels_topic] if plan.labels_topic else [])
    try:
        with BagReader(plan.path) as bag:
            for topic, _, msg in bag.messages(topics, on_bad_message=lambda *_: None):
                stamp = stamp_ns(msg)
                if topic == plan.labels_topic:
                    if stamp in wanted and plan.labels_type is not None:
                        truths[stamp] = labels_from_msg(msg, plan.labels_type).copy()
                    continue
                if stamp in seen:
                    continue  # a repeated stamp is one frame, as in scoring
                try:
                    frame, order = frame_from_msg(msg, plan.image_type)
                except ImageDecodeError:
                    continue  # counted and named by the run
                seen.add(stamp)
                bgr = to_bgr(frame, order)
                labels = result.prediction(stamp)
                if labels is not None and labels.shape != bgr.shape[:2]:
                    labels = None  # cannot happen with the node's or Segmenter's output
                objects = []
                if labels is not None:
                    objects = find_small_objects(labels, small_ids, SMALL_OBJECT_MIN_AREA,
                                                 class_names=class_set.names)
                    counts = np.bincount(labels.ravel(), minlength=256)[:class_set.num_classes]
                    stats.seconds.append(plan.seconds(stamp))
                    stats.shares.append(counts / max(labels.size, 1))
                    stats.small_objects.append(
                        {class_set.names[i]: sum(o.class_id == i for o in objects)
                         for i in small_ids})
                video.write(_overlay(bgr, labels, objects, palette, class_set),
                            _caption(plan, stamp, labels is None))
                if stamp in wanted:
                    sheet_frames[stamp] = (bgr, labels)
    finally:
        video.close()
    sheet = _contact_sheet(plan, sheet_frames, truths, palette, class_set)
    if not cv2.imwrite(str(out_dir / "contact_sheet.png"), sheet):
        raise EvalError(f"cannot write {out_dir / 'contact_sheet.png'}")
    log.info("overlay video: %s (%d frames)", out_dir / "overlay.mp4", video.frames)
    return stats


def _overlay(bgr: np.ndarray, labels: np.ndarray | None, objects: list[SmallObject],
             palette: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """The frame blended with its prediction, small objects boxed; dimmed without one."""
    if labels is None:
        return _dimmed(bgr)
    return draw_overlay(bgr, labels, palette, objects, class_set.names, OVERLAY_OPACITY)


def _dimmed(bgr: np.ndarray) -> np.ndarray:
    """A frame with no prediction: a third of its brightness."""
    return (bgr // 3).astype(np.uint8)


def _caption(plan: BagPlan, stamp: int, dropped: bool) -> str:
    return f"t = {plan.seconds(stamp):.2f} s" + ("  no prediction (dropped)" if dropped else "")


def _put_caption(image: np.ndarray, text: str) -> None:
    """White text on a dark strip at the top left, sized for the image's width."""
    scale = max(0.4, image.shape[1] / 1600.0)
    thickness = 1 if image.shape[1] < 1000 else 2
    (w, h), base = cv2.getTextSize(text, CAPTION_FONT, scale, thickness)
    cv2.rectangle(image, (0, 0), (w + 8, h + base + 6), (0, 0, 0), -1)
    cv2.putText(image, text, (4, h + 3), CAPTION_FONT, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)


class _VideoWriter:
    """overlay.mp4 at the bag's frame rate; frames of another size are scaled to the first's."""

    def __init__(self, path: Path, plan: BagPlan):
        self.path = path
        scale = min(1.0, VIDEO_MAX_WIDTH / plan.width)
        # mp4v needs even sizes.
        self.size = (2 * round(plan.width * scale / 2), 2 * round(plan.height * scale / 2))
        # MPEG-4 takes time bases up to 1/65535: a rate within what a camera sends.
        fps = round(min(max(plan.rate_hz, VIDEO_MIN_FPS), VIDEO_MAX_FPS), 2)
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                       self.size)
        if not self._writer.isOpened():
            raise EvalError(f"cannot write the overlay video {path} (OpenCV mp4v writer)")
        self.frames = 0

    def write(self, image: np.ndarray, caption: str) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        _put_caption(image, caption)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        self._writer.release()


def _tile(image: np.ndarray, height: int, caption: str) -> np.ndarray:
    tile = cv2.resize(image, (TILE_WIDTH, height), interpolation=cv2.INTER_AREA)
    _put_caption(tile, caption)
    return tile


def _tile_overlay(bgr: np.ndarray, labels: np.ndarray, palette: np.ndarray,
                  class_set: ClassSet, height: int, caption: str) -> np.ndarray:
    """The overlay drawn at tile size (readable names), boxes found at full size."""
    sx, sy = TILE_WIDTH / labels.shape[1], height / labels.shape[0]
    objects = [replace(o, box=(int(o.box[0] * sx), int(o.box[1] * sy),
                               max(2, math.ceil(o.box[2] * sx)), max(2, math.ceil(o.box[3] * sy))))
               for o in find_small_objects(labels, class_set.small_object_ids,
                                           SMALL_OBJECT_MIN_AREA)]
    small_bgr = cv2.resize(bgr, (TILE_WIDTH, height), interpolation=cv2.INTER_AREA)
    small_labels = cv2.resize(labels, (TILE_WIDTH, height), interpolation=cv2.INTER_NEAREST)
    tile = draw_overlay(small_bgr, small_labels, palette, objects, class_set.names,
                        OVERLAY_OPACITY)
    _put_caption(tile, caption)
    return tile


def _error_tile(bgr: np.ndarray, labels: np.ndarray, truth: np.ndarray, height: int,
                caption: str) -> np.ndarray:
    """Grey frame, red where the prediction is wrong, black where the truth is ignored."""
    grey = cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) // 2
    wrong = (labels != truth) & (truth != IGNORE_INDEX)
    grey[wrong] = ERROR_BGR
    grey[truth == IGNORE_INDEX] = 0
    scored = int((truth != IGNORE_INDEX).sum())
    share = 100.0 * int(wrong.sum()) / scored if scored else 0.0
    return _tile(grey, height, f"{caption}  errors {share:.1f} %")


def _contact_sheet(plan: BagPlan, frames: dict[int, tuple[np.ndarray, np.ndarray | None]],
                   truths: dict[int, np.ndarray], palette: np.ndarray,
                   class_set: ClassSet) -> np.ndarray:
    """Rows of (prediction, ground truth, errors) with labels; a grid of predictions without."""
    height = max(1, round(TILE_WIDTH * plan.height / plan.width))
    rows: list[list[np.ndarray]] = []
    for stamp in sorted(frames):
        bgr, labels = frames[stamp]
        when = f"t = {plan.seconds(stamp):.2f} s"
        if labels is None:
            prediction = _tile(_dimmed(bgr), height, f"{when}  dropped")
        else:
            prediction = _tile_overlay(bgr, labels, palette, class_set, height,
                                       f"{when}  prediction")
        if not plan.has_labels:
            rows.append([prediction])
            continue
        truth = truths.get(stamp)
        if truth is None or truth.shape != bgr.shape[:2]:
            blank = np.zeros((height, TILE_WIDTH, 3), np.uint8)
            _put_caption(blank, f"{when}  no ground truth")
            rows.append([prediction, blank, blank.copy()])
            continue
        truth_tile = _tile_overlay(bgr, truth, palette, class_set, height,
                                   f"{when}  ground truth")
        errors = (_error_tile(bgr, labels, truth, height, when) if labels is not None
                  else _tile(np.zeros_like(bgr), height, f"{when}  no prediction"))
        rows.append([prediction, truth_tile, errors])
    if not rows:
        blank = np.zeros((height, TILE_WIDTH, 3), np.uint8)
        _put_caption(blank, "no frames")
        return blank
    if not plan.has_labels:  # a grid: the frames read left to right, top to bottom
        tiles = [r[0] for r in rows]
        columns = min(SHEET_COLUMNS_WITHOUT_LABELS, len(tiles))
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
        rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    return np.vstack([np.hstack(row) for row in rows])
