"""The node's outputs as one table: topic, message type, switch parameter, default and builder.

Everything about an output derives from its row: the node's ``publish_*`` parameters
(`config`), the topic layout (`config.output_topics`), the publishers (`cameras`), which
outputs are wanted for a frame (enabled and subscribed), what the frame must compute for them
(``needs``), the publish loop (`frame_pipeline`), and the tests' and the benchmark's
subscribers. Adding an output is one row here plus its builder.

A builder turns a `FrameProducts` (what the node computed for one frame) into the message, or
None when there is nothing to publish (no confidence map from the engine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CompressedImage, Image

from bisestdc_core.small_objects import SmallObject
from bisestdc_core.stage_timings import StageTimings
from bisestdc_ros.node.image_codec import (
    bgr_to_image_msg,
    labels_to_image_msg,
    labels_to_png_compressed,
)

try:  # vision_msgs is optional (not installable everywhere); without it no detections topic.
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
except ImportError:
    Detection2DArray = None

# What a frame can compute for its outputs (the labels are always there).
CONFIDENCE, OBJECTS, COLOR, OVERLAY = "confidence", "objects", "color", "overlay"
# Needed by outputs that report on the frame itself: built after the other outputs are
# published, so the timings include publishing them.
TIMINGS = "timings"


@dataclass
class FrameProducts:
    """What the node computed for one frame: the builders' input.

    Attributes:
        header: the input message's header, copied to every output.
        labels: H x W uint8 train ids at the frame's size.
        confidence: H x W uint8 (255 = 1.0), or None.
        color: H x W x 3 uint8 BGR class colours, or None.
        overlay: H x W x 3 uint8 BGR frame + colours + small-object boxes, or None.
        objects: small objects in frame pixels.
        small_object_classes: names of the classes reported as small objects, in order.
        source: who produced the frame (node and camera), the latency message's status name.
        camera_topic: the (resolved) input topic.
        hardware_id: the node's diagnostics hardware id ("": the camera topic).
        timings: the frame's stage timings (complete once the image outputs are published).
        counters: per camera: drops, input_errors, dds_lost (read with the timings).
    """

    header: Any
    labels: np.ndarray
    confidence: np.ndarray | None = None
    color: np.ndarray | None = None
    overlay: np.ndarray | None = None
    objects: list[SmallObject] = field(default_factory=list)
    small_object_classes: tuple[str, ...] = ()
    source: str = ""
    camera_topic: str = ""
    hardware_id: str = ""
    timings: StageTimings = field(default_factory=StageTimings)
    counters: dict[str, int] = field(default_factory=dict)


def _labels(frame: FrameProducts) -> Any:
    return labels_to_image_msg(frame.labels, frame.header)


def _color(frame: FrameProducts) -> Any:
    return bgr_to_image_msg(frame.color, frame.header)


def _overlay(frame: FrameProducts) -> Any:
    return bgr_to_image_msg(frame.overlay, frame.header)


def _confidence(frame: FrameProducts) -> Any:
    if frame.confidence is None:  # an engine without a confidence output
        return None
    return labels_to_image_msg(frame.confidence, frame.header)


def _labels_compressed(frame: FrameProducts) -> Any:
    return labels_to_png_compressed(frame.labels, frame.header)


def _latency(frame: FrameProducts) -> DiagnosticArray:
    """Stage timings (ms, 3 decimals), the camera's counters, small objects per class."""
    values = [KeyValue(key=k, value=f"{v:.3f}") for k, v in frame.timings.measured().items()]
    values += [KeyValue(key=k, value=str(v)) for k, v in frame.counters.items()]
    for name in frame.small_object_classes:
        count = sum(o.class_name == name for o in frame.objects)
        values.append(KeyValue(key=f"small_objects/{name}", value=str(count)))
    status = DiagnosticStatus(level=DiagnosticStatus.OK, name=frame.source,
                              message="frame segmented",
                              hardware_id=frame.hardware_id or frame.camera_topic, values=values)
    return DiagnosticArray(header=frame.header, status=[status])


def _detections(frame: FrameProducts) -> Any:
    """Boxes in frame pixels; the score is the region's mean class probability."""
    array_msg = Detection2DArray(header=frame.header)
    for obj in frame.objects:
        x, y, w, h = obj.box
        detection = Detection2D(header=frame.header)
        detection.bbox.center.position.x = x + w / 2.0
        detection.bbox.center.position.y = y + h / 2.0
        detection.bbox.size_x, detection.bbox.size_y = float(w), float(h)
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = obj.class_name or str(obj.class_id)
        # The confidence map is requested for the detections; an engine that cannot produce
        # one gives no score rather than a made-up certainty.
        hypothesis.hypothesis.score = (
            float(obj.mean_confidence) if obj.mean_confidence is not None else float("nan")
        )
        detection.results.append(hypothesis)
        array_msg.detections.append(detection)
    return array_msg


@dataclass(frozen=True)
class Output:
    """One output of each camera.

    Attributes:
        name: the output's key (publishers, probes, ``output_topics``).
        topic: its topic under ``<camera namespace>/segmentation/``.
        msg_type: the message class; None when its package does not import here (the output
            is then not offered).
        parameter: the bool parameter switching it (settable at runtime); None: always on,
            published whenever someone subscribes.
        default: the parameter's default.
        description: the parameter's description.
        needs: what the frame must compute for it (`CONFIDENCE`, `OBJECTS`, `COLOR`,
            `OVERLAY`, `TIMINGS`).
        build: FrameProducts -> message (None: nothing to publish for this frame).
    """

    name: str
    topic: str
    msg_type: type | None
    parameter: str | None
    default: bool
    description: str
    needs: frozenset[str]
    build: Callable[[FrameProducts], Any]

    @property
    def available(self) -> bool:
        return self.msg_type is not None


OUTPUTS: tuple[Output, ...] = (
    Output("labels", "labels", Image, "publish_labels", True,
           "publish segmentation/labels (mono8 train ids)", frozenset(), _labels),
    Output("color", "color", Image, "publish_color", True,
           "publish segmentation/color (bgr8 palette)", frozenset({COLOR}), _color),
    Output("overlay", "overlay", Image, "publish_overlay", True,
           "publish segmentation/overlay (frame blended with colours, small objects boxed)",
           frozenset({OVERLAY, OBJECTS}), _overlay),
    Output("latency", "latency", DiagnosticArray, "publish_latency", True,
           "publish segmentation/latency (DiagnosticArray of stage timings per frame)",
           frozenset({OBJECTS, TIMINGS}), _latency),
    Output("confidence", "confidence", Image, "publish_confidence", False,
           "publish segmentation/confidence (mono8, 255 = 1.0); costs a softmax",
           frozenset({CONFIDENCE}), _confidence),
    Output("labels/compressed", "labels/compressed", CompressedImage,
           "publish_labels_compressed", False,
           "publish segmentation/labels/compressed (lossless PNG)", frozenset(),
           _labels_compressed),
    # The score of a detection is its region's mean confidence, hence the confidence map.
    Output("detections", "small_objects", Detection2DArray, None, True,
           "small objects as vision_msgs/Detection2DArray", frozenset({OBJECTS, CONFIDENCE}),
           _detections),
)

OUTPUT_PARAMETERS: dict[str, Output] = {o.parameter: o for o in OUTPUTS if o.parameter}


def needs_of(outputs: tuple[Output, ...] | list[Output]) -> frozenset[str]:
    """Everything the given outputs need computed."""
    return frozenset().union(*(o.needs for o in outputs))
