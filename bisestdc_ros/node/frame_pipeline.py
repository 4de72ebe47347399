"""One frame's work on the worker thread: decode, segment, render, publish.

Only what the wanted outputs need is computed (see `outputs.Output.needs`): an output that is
disabled or has no subscriber costs nothing. Image outputs are published before the latency
output, so the timings it carries include publishing them.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
from sensor_msgs.msg import CompressedImage

from bisestdc_core.inference.base import FrameSegmenter, SegmentedFrame
from bisestdc_core.small_objects import colorize, draw_overlay, find_small_objects_at, palette_lut
from bisestdc_core.stage_timings import StageTimings
from bisestdc_ros.node.cameras import Camera
from bisestdc_ros.node.config import SegmentConfig
from bisestdc_ros.node.diagnostics import DiagnosticsWindow, status_name
from bisestdc_ros.node.frame_slots import LatestFrameSlots
from bisestdc_ros.node.image_codec import (
    ImageDecodeError,
    compressed_msg_to_frame,
    image_msg_to_frame,
    to_bgr,
)
from bisestdc_ros.node.outputs import (
    COLOR,
    CONFIDENCE,
    OBJECTS,
    OUTPUTS,
    OVERLAY,
    TIMINGS,
    FrameProducts,
    Output,
    needs_of,
)

LOG_THROTTLE_S = 5.0


class FrameSettings(NamedTuple):
    """What a frame is processed with; replaced as a whole when parameters change, so the
    worker reads config and small-object ids as one snapshot."""

    config: SegmentConfig
    small_ids: tuple[int, ...]


def _stamp_seconds(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _decode(msg: Any) -> tuple[np.ndarray, str]:
    if isinstance(msg, CompressedImage):
        return compressed_msg_to_frame(msg)
    return image_msg_to_frame(msg)


def wanted_outputs(camera: Camera, config: SegmentConfig) -> tuple[Output, ...]:
    """Outputs that are enabled and have at least one subscriber, in table order."""
    return tuple(
        output for output in OUTPUTS
        if output.name in config.enabled_outputs and output.name in camera.publishers
        and camera.publishers[output.name].get_subscription_count() > 0
    )


def _publish(camera: Camera, output: Output, products: FrameProducts) -> None:
    msg = output.build(products)
    if msg is not None:
        camera.publishers[output.name].publish(msg)


class FramePipeline:
    """The engine with what rendering its results needs (class names, palette), and the
    node's logger, clock and counters that one frame's outcome goes to.

    Args:
        segmenter: the engine.
        node_name: the node's fully qualified name (statuses and hardware_id name it).
        logger, clock: the node's.
    """

    def __init__(self, segmenter: FrameSegmenter, node_name: str, logger: Any, clock: Any):
        self.segmenter = segmenter
        class_set = segmenter.class_set
        self.class_names: tuple[str, ...] = tuple(class_set.names)
        self._palette = np.asarray(class_set.palette_bgr(), np.uint8)
        self._lut = palette_lut(self._palette)
        self._node_name = node_name
        self._logger = logger
        self._clock = clock

    def class_ids(self, names: tuple[str, ...] | None) -> tuple[int, ...]:
        return tuple(self.class_names.index(n) for n in names or ())

    def count_engine_error(self, window: DiagnosticsWindow, message: str) -> None:
        """Count a failed frame, report it on /diagnostics (ERROR) and log it (throttled)."""
        window.engine_error(message)
        self._logger.error(message, throttle_duration_sec=LOG_THROTTLE_S)

    def process(self, camera: Camera, msg: Any, received: float, settings: FrameSettings,
                window: DiagnosticsWindow, slots: LatestFrameSlots) -> StageTimings | None:
        """Decode, segment and publish one frame of ``camera``.

        Returns:
            The stage timings (as published on the latency topic), or None when the frame was
            skipped (malformed message or an engine failure).
        """
        config, small_ids = settings
        t0 = time.perf_counter()
        try:
            frame, order = _decode(msg)
        except ImageDecodeError as error:
            camera.input_errors += 1
            window.input_error(camera.index)
            self._logger.warning(
                f"skipping a malformed frame on {camera.topic}: {error.reason}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
            return None
        t_decoded = time.perf_counter()

        wanted = wanted_outputs(camera, config)
        needs = needs_of(wanted)
        try:
            result = self.segmenter.segment(
                frame, channel_order=order, with_confidence=CONFIDENCE in needs
            )
        except (RuntimeError, ValueError, MemoryError) as error:
            self.count_engine_error(window, f"segmentation failed on {camera.topic}: {error}")
            return None
        t_segmented = time.perf_counter()

        products = self._render(camera, msg.header, frame, order, result, needs, settings)
        t_rendered = time.perf_counter()
        # Image outputs first: the timings published after them include publishing them.
        for output in wanted:
            if TIMINGS not in output.needs:
                _publish(camera, output, products)
        t_published = time.perf_counter()

        stamp = _stamp_seconds(msg.header.stamp)
        now = self._clock.now().nanoseconds * 1e-9
        node_latency_ms = (time.monotonic() - received) * 1e3
        products.timings = replace(
            result.timings,
            decode_ms=(t_decoded - t0) * 1e3,
            segment_ms=(t_segmented - t_decoded) * 1e3,
            render_ms=(t_rendered - t_segmented) * 1e3,
            publish_ms=(t_published - t_rendered) * 1e3,
            # Only meaningful when the camera stamps with the same clock; 0 stamps give
            # nonsense, so they are reported as -1.
            end_to_end_ms=(now - stamp) * 1e3 if stamp > 0 else -1.0,
            node_latency_ms=node_latency_ms,
        )
        camera.frames += 1
        window.frame_done(node_latency_ms, camera.index)
        if any(TIMINGS in output.needs for output in wanted):
            products.counters = {"drops": slots.drops(camera.index),
                                 "input_errors": camera.input_errors,
                                 "dds_lost": camera.dds_lost.lost}
            for output in wanted:
                if TIMINGS in output.needs:
                    _publish(camera, output, products)
        return products.timings

    def _render(self, camera: Camera, header: Any, frame: np.ndarray, order: str,
                result: SegmentedFrame, needs: frozenset[str], settings: FrameSettings
                ) -> FrameProducts:
        """Small objects, colours and overlay, as far as ``needs`` asks for them."""
        config, small_ids = settings
        labels = result.labels
        # The engine's labels at the network's resolution, when it hands them back (a
        # segmenter passed in by a caller may not): small objects are searched there and the
        # colours computed there, both without resizing the frame-size labels back down.
        network_labels = getattr(result, "network_labels", None)
        products = FrameProducts(
            header=header, labels=labels, confidence=result.confidence,
            small_object_classes=tuple(self.class_names[i] for i in small_ids),
            source=status_name(self._node_name, camera.topic),
            camera_topic=camera.topic, hardware_id=config.hardware_id or self._node_name,
        )
        if OBJECTS in needs:
            products.objects = find_small_objects_at(
                labels, small_ids, config.small_object_min_area, self.segmenter.network_size,
                confidence=result.confidence, class_names=self.class_names,
                analysis_labels=network_labels,
            )
        if COLOR in needs or OVERLAY in needs:
            products.color = colorize(
                labels if network_labels is None else network_labels, self._lut,
                out=camera.buffer("color", (*labels.shape, 3)), size=labels.shape,
            )
        if OVERLAY in needs:
            products.overlay = draw_overlay(
                to_bgr(frame, order), labels, self._palette, products.objects,
                self.class_names, config.overlay_opacity, color=products.color,
                out=camera.buffer("overlay", (*labels.shape, 3)),
            )
        return products
