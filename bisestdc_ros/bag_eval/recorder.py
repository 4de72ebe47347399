"""Live mode's side of the ROS 2 graph: an rclpy node publishing the bag's frames into
segment_node and recording what it answers (labels, latency, the engine it reports on
``/diagnostics``), keyed by header stamp.

rclpy and the message packages are imported when a recorder is made, so offline mode does not
need ROS.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from bisestdc_ros.bag_eval.scoring import RunResult
from bisestdc_ros.bags.messages import COMPRESSED_IMAGE, IMAGE, NS_PER_S, labels_from_msg, stamp_ns
from bisestdc_ros.node.image_codec import ImageDecodeError, byte_array

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"


class ReplayRecorder:
    """An rclpy node publishing the bag's frames and recording the segment_node's outputs.

    Args:
        context: an initialised rclpy Context.
        in_topic: topic to publish frames on; ``image_type`` their bag message type.
        camera_topic: the node's camera topic (its outputs are siblings, see output_topics).
        reliable: reliable replay QoS; else sensor-data QoS like a camera driver.
    """

    def __init__(self, context: Any, in_topic: str, image_type: str, camera_topic: str,
                 reliable: bool):
        import rclpy  # noqa: PLC0415 (offline mode must not need ROS)
        from diagnostic_msgs.msg import DiagnosticArray  # noqa: PLC0415
        from rclpy.qos import (  # noqa: PLC0415
            HistoryPolicy,
            QoSProfile,
            ReliabilityPolicy,
            qos_profile_sensor_data,
        )
        from sensor_msgs.msg import CompressedImage, Image  # noqa: PLC0415

        from bisestdc_ros.node.config import output_topics  # noqa: PLC0415

        self.node = rclpy.create_node("bag_eval_replay", context=context)
        self._msg_class = CompressedImage if image_type == COMPRESSED_IMAGE else Image
        pub_qos = (QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                              reliability=ReliabilityPolicy.RELIABLE)
                   if reliable else qos_profile_sensor_data)
        self.publisher = self.node.create_publisher(self._msg_class, in_topic, pub_qos)
        # Reliable with a deep queue: the node publishes reliably, every output must be kept.
        out_qos = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.RELIABLE)
        outputs = output_topics(camera_topic)
        self.labels_topic, self.latency_topic = outputs["labels"], outputs["latency"]
        self._lock = threading.Lock()
        self.labels: dict[int, np.ndarray] = {}
        self.latency: dict[int, dict[str, float]] = {}
        self.received_at: dict[int, float] = {}
        self.published_at: dict[int, float] = {}
        self.last_output = 0.0
        self.labels_sub = self.node.create_subscription(Image, self.labels_topic,
                                                        self._on_labels, out_qos)
        self.latency_sub = self.node.create_subscription(DiagnosticArray, self.latency_topic,
                                                         self._on_latency, out_qos)
        self.engine: dict[str, str] = {}  # engine and precision as the node reports them
        self.diagnostics_sub = self.node.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.keep: RunResult | None = None  # where answered predictions are stored, if anywhere

    def _on_labels(self, msg: Any) -> None:
        now = time.monotonic()
        try:
            # A copy: the view into the message buffer must not outlive the message.
            labels = labels_from_msg(msg, IMAGE).copy()
        except ImageDecodeError as error:
            log.warning("unusable labels output: %s", error.reason)
            return
        stamp = stamp_ns(msg)
        keep = self.keep
        if keep is not None and stamp in self.published_at:
            keep.keep_prediction(stamp, labels)  # PNG-encoded outside the lock
        with self._lock:
            self.labels[stamp] = labels
            self.received_at[stamp] = now
            self.last_output = now

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if "engine" in values:
                with self._lock:
                    self.engine = {"engine": values["engine"],
                                   "precision": values.get("precision", "?")}

    def _on_latency(self, msg: Any) -> None:
        if not msg.status:
            return
        values: dict[str, float] = {}
        for kv in msg.status[0].values:
            try:
                values[kv.key] = float(kv.value)
            except ValueError:
                continue  # non-numeric entries are not timings
        with self._lock:
            self.latency[stamp_ns(msg)] = values
            self.last_output = time.monotonic()

    def discovered(self) -> bool:
        """The node subscribes our frames and publishes both recorded outputs to us."""
        return (self.publisher.get_subscription_count() > 0
                and self.labels_sub.get_publisher_count() > 0
                and self.latency_sub.get_publisher_count() > 0)

    def has_labels(self, stamp: int) -> bool:
        with self._lock:
            return stamp in self.labels

    def complete(self, total: int) -> bool:
        """Labels for ``total`` stamps, and a latency message for each of them."""
        with self._lock:
            return len(self.labels) >= total and set(self.labels) <= set(self.latency)

    def forget(self, stamp: int) -> None:
        with self._lock:
            for table in (self.labels, self.latency, self.received_at, self.published_at):
                table.pop(stamp, None)

    def take(self) -> tuple[dict[int, Any], dict[int, dict[str, float]], dict[int, float],
                            dict[int, float]]:
        """(labels, latency, received_at, published_at) so far; the recorder starts empty."""
        with self._lock:
            tables = (self.labels, self.latency, self.received_at, self.published_at)
            self.labels, self.latency, self.received_at, self.published_at = {}, {}, {}, {}
        return tables

    def publish(self, msg: Any, stamp: int | None = None) -> int:
        """Publish a bag message (optionally restamped); returns the stamp it carried."""
        ros_msg = to_ros_msg(msg, self._msg_class, stamp)
        stamp = stamp_ns(ros_msg)
        with self._lock:
            self.published_at[stamp] = time.monotonic()
        self.publisher.publish(ros_msg)
        return stamp


def to_ros_msg(msg: Any, msg_class: type, stamp: int | None = None) -> Any:
    """A rosbags Image/CompressedImage -> the rclpy message (data copied once)."""
    ros_msg = msg_class()
    sec, nanosec = ((msg.header.stamp.sec, msg.header.stamp.nanosec) if stamp is None
                    else divmod(stamp, NS_PER_S))
    ros_msg.header.stamp.sec, ros_msg.header.stamp.nanosec = int(sec), int(nanosec)
    ros_msg.header.frame_id = msg.header.frame_id
    data = byte_array(msg.data)
    if msg_class.__name__ == "CompressedImage":
        ros_msg.format = msg.format
    else:
        ros_msg.height, ros_msg.width = int(msg.height), int(msg.width)
        ros_msg.encoding, ros_msg.is_bigendian = msg.encoding, int(msg.is_bigendian)
        ros_msg.step = int(msg.step)
    ros_msg.data = data
    return ros_msg
