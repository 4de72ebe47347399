"""One input stream of the node: its subscription, publishers, buffers and counters.

The subscription is created first: its RESOLVED name (namespace and remappings applied) places
the camera's outputs (`config.output_topics`), one publisher per available row of
`outputs.OUTPUTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image

from bisestdc_ros.node.config import SegmentConfig, input_topic, output_topics
from bisestdc_ros.node.errors import StartupError
from bisestdc_ros.node.image_codec import array_backed
from bisestdc_ros.node.outputs import OUTPUTS
from bisestdc_ros.node.sequence_gaps import SequenceGaps

# (camera index, message, message info) -> None, on the executor thread.
ImageCallback = Callable[[int, Any, Any], None]


@dataclass
class Camera:
    """Subscription, publishers (one per available output, by output name), renderer and
    counters of one input stream.

    ``topic`` is the resolved name the node subscribes (remappings and namespace applied).
    """

    index: int
    topic: str
    publishers: dict[str, Any]
    subscription: Any = None
    frames: int = 0
    input_errors: int = 0
    buffers: dict[str, np.ndarray] = field(default_factory=dict)
    # Frames lost in the DDS reader queue or on the wire (never seen by the node).
    dds_lost: SequenceGaps = field(default_factory=SequenceGaps)

    def buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A reusable uint8 output buffer (publishing copies, so reuse is safe); array-backed,
        so the message takes it without another copy."""
        buf = self.buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self.buffers[name] = array_backed(shape)
        return buf


def input_qos(config: SegmentConfig) -> QoSProfile:
    """The subscriptions' QoS: sensor data (best effort) or reliable, ``qos_depth`` deep."""
    if config.qos == "sensor_data":
        return QoSProfile(
            depth=config.qos_depth,
            history=qos_profile_sensor_data.history,
            reliability=qos_profile_sensor_data.reliability,
            durability=qos_profile_sensor_data.durability,
        )
    return QoSProfile(
        depth=config.qos_depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE,
    )


def open_camera(node: Node, index: int, topic: str, config: SegmentConfig,
                on_image: ImageCallback) -> Camera:
    """Subscribe ``topic`` and create the publishers of its outputs."""
    msg_type = CompressedImage if config.input_type == "compressed" else Image
    # The subscription first: its resolved name (remappings, namespace) places the outputs.
    subscription = node.create_subscription(
        msg_type,
        input_topic(topic, config.input_type),
        lambda msg, info: on_image(index, msg, info),
        input_qos(config),
        # qos_overrides.<topic>.subscription.{history,depth,reliability,durability}
        qos_overriding_options=QoSOverridingOptions.with_default_policies(),
    )
    camera = Camera(index, subscription.topic_name, {}, subscription)
    names = output_topics(camera.topic)
    # Outputs are reliable (depth 1): reliable publishers match both reliable and best-effort
    # subscribers (rviz, bag recorders), and depth 1 keeps only the newest result.
    out_qos = QoSProfile(
        depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE
    )
    for output in OUTPUTS:
        if output.available:
            camera.publishers[output.name] = node.create_publisher(
                output.msg_type, names[output.name], out_qos)
    return camera


def close_camera(node: Node, camera: Camera) -> None:
    """Destroy the camera's subscription and publishers."""
    if camera.subscription is not None:
        node.destroy_subscription(camera.subscription)
    for publisher in camera.publishers.values():
        node.destroy_publisher(publisher)


def check_distinct_outputs(cameras: list[Camera]) -> None:
    """`validate` checks the names as given; remappings can still make two cameras meet.

    Raises:
        StartupError: two cameras whose outputs would share topics.
    """
    seen: dict[str, str] = {}
    for camera in cameras:
        labels = camera.publishers["labels"].topic_name
        if labels in seen:
            raise StartupError(
                f"the inputs {seen[labels]} and {camera.topic} resolve to one namespace, so "
                f"their outputs would collide on {labels} (remap them apart)"
            )
        seen[labels] = camera.topic
