"""Live mode: replay the bag into a running segment_node and record what it answers.

The bag's images are published on real ROS 2 topics at the recorded rate (times
``--rate-factor``) by :class:`ReplayRecorder`, which also records the node's labels and
latency outputs. :func:`run_live` starts the node (see :mod:`.node_process`), waits for it,
sends a warm-up frame, replays the bag, and scores the recorded labels against the ground
truth by header stamp. rclpy is imported only here, so offline mode does not need ROS.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bisestdc_core.classes import ClassSet
from bisestdc_ros.bag_eval.errors import EvalError
from bisestdc_ros.bag_eval.node_process import (
    configure_large_frames,
    model_class_set,
    node_command,
    node_log_tail,
    replay_topic,
    start_node,
    stop_node,
)
from bisestdc_ros.bag_eval.plan import BagPlan
from bisestdc_ros.bag_eval.scoring import FrameTiming, RunResult, StampMatcher, sheet_stamps
from bisestdc_ros.bag_io import (
    COMPRESSED_IMAGE,
    IMAGE,
    NS_PER_S,
    BagReader,
    labels_from_msg,
    stamp_ns,
)
from bisestdc_ros.image_codec import ImageDecodeError, byte_array

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

        from bisestdc_ros.segment_config import output_topics  # noqa: PLC0415

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

    def _on_labels(self, msg: Any) -> None:
        now = time.monotonic()
        try:
            # A copy: the view into the message buffer must not outlive the message.
            labels = labels_from_msg(msg, IMAGE).copy()
        except ImageDecodeError as error:
            log.warning("unusable labels output: %s", error.reason)
            return
        with self._lock:
            stamp = stamp_ns(msg)
            self.labels[stamp] = labels
            self.received_at[stamp] = now
            self.last_output = now

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


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               alive: Callable[[], None] | None = None) -> None:
    """Poll ``predicate``; EvalError after ``timeout`` s. ``alive`` raises if a process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if alive is not None:
            alive()
        time.sleep(0.05)
    raise EvalError(f"timed out after {timeout:.0f} s waiting for {what}")


def run_live(plan: BagPlan, args: argparse.Namespace, out_dir: Path
             ) -> tuple[RunResult, ClassSet]:
    """Replay the bag into segment_node and record its outputs (see the package docstring)."""
    import rclpy  # noqa: PLC0415
    from rclpy.context import Context  # noqa: PLC0415
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: PLC0415

    class_set = model_class_set(args)
    profile = configure_large_frames(plan)
    camera_topic, in_topic = replay_topic(plan, args)
    process = None
    node_log = out_dir / "segment_node.log"
    if args.start_node:
        process = start_node(node_command(plan, args, camera_topic), node_log)

    def alive() -> None:
        if process is not None and process.poll() is not None:
            raise EvalError(f"segment_node exited with code {process.returncode}; its log "
                            f"({node_log}):\n{node_log_tail(node_log)}")

    # Whatever fails from here on (DDS set-up included), the node started above is stopped.
    try:
        context = Context()
        rclpy.init(context=context)
        recorder = ReplayRecorder(context, in_topic, plan.image_type, camera_topic, args.reliable)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(recorder.node)

        def spin() -> None:
            try:
                executor.spin()
            except ExternalShutdownException:
                pass

        spinner = threading.Thread(target=spin, name="bag_eval_spin", daemon=True)
        spinner.start()
        try:
            log.info("waiting for segment_node on %s (outputs %s, %s)", in_topic,
                     recorder.labels_topic, recorder.latency_topic)
            wait_until(recorder.discovered, args.startup_timeout,
                       f"segment_node to subscribe {in_topic} and publish {recorder.labels_topic}",
                       alive)
            with BagReader(plan.path) as bag:
                warm_up(bag, plan, recorder, args.startup_timeout, alive)
                start, first_publish, result_details = replay(bag, plan, recorder, args.rate_factor)
            total = len(set(plan.stamps))
            # Outputs trail the last frame by one inference; stop once all arrived or none came
            # for idle_timeout seconds.
            while not recorder.complete(total):
                alive()
                idle = time.monotonic() - max(recorder.last_output, result_details["last_publish"])
                if idle > args.idle_timeout:
                    break
                time.sleep(0.05)
        finally:
            executor.shutdown(timeout_sec=5.0)
            spinner.join(timeout=10.0)
            recorder.node.destroy_node()
            rclpy.try_shutdown(context=context)
    finally:
        if process is not None:
            code = stop_node(process)
            log.info("segment_node stopped (exit code %d); log: %s", code, node_log)

    matcher = StampMatcher(class_set)
    keep_stamps = sheet_stamps(plan)
    engine = ({"engine": args.engine, "device": args.device, "precision": args.precision,
               "network_size": list(args.network_size or [])} if args.start_node
              else {"engine": "as configured in the running node"})
    engine["class_set"] = class_set.name
    result = RunResult(matcher, set(recorder.labels), [], 0.0, engine)
    for stamp, labels in recorder.labels.items():
        if stamp in keep_stamps:
            result.keep[stamp] = labels
    last = max(recorder.received_at.values(), default=first_publish)
    result.wall_s = max(last - first_publish, 1e-9)
    node_drops = 0.0
    for stamp in sorted(recorder.labels):
        stages = {k: v for k, v in recorder.latency.get(stamp, {}).items()
                  if k.endswith("_ms") and k != "end_to_end_ms"}
        if stamp in recorder.published_at:
            stages["end_to_end_ms"] = (recorder.received_at[stamp]
                                       - recorder.published_at[stamp]) * 1e3
        node_drops = max(node_drops, recorder.latency.get(stamp, {}).get("drops", 0.0))
        result.timings.append(FrameTiming(stamp, recorder.received_at[stamp] - start, stages))
    result.details = {
        "replay_topic": in_topic, "labels_topic": recorder.labels_topic,
        "latency_topic": recorder.latency_topic, "qos": "reliable" if args.reliable
        else "sensor_data", "rate_factor": args.rate_factor,
        "replay_rate_hz": plan.rate_hz * args.rate_factor,
        "node_started_by_tool": bool(args.start_node), "node_reported_drops": int(node_drops),
        "fastdds_profile": profile, "replay_duration_s": result_details["duration_s"],
    }
    # Ground truth is read after the run, so memory holds predictions, not both.
    with BagReader(plan.path) as bag:
        for _, _, msg in tqdm(bag.messages([plan.labels_topic]), total=len(plan.label_stamps),
                              desc="scoring", unit="frame"):
            stamp = stamp_ns(msg)
            if stamp in recorder.labels:
                matcher.add_prediction(stamp, recorder.labels.pop(stamp))
                matcher.add_ground_truth(stamp, labels_from_msg(msg, plan.labels_type))
    return result, class_set


def warm_up(bag: BagReader, plan: BagPlan, recorder: ReplayRecorder, timeout: float,
            alive: Callable[[], None]) -> None:
    """Send the first frame under a stamp of its own until its labels come back.

    Proves the whole path (both directions matched, engine loaded, first-inference cost paid)
    before the timed replay, so the first bag frames are not lost to start-up.
    """
    first = next(msg for _, _, msg in bag.messages([plan.image_topic]))
    stamp = 1  # 1 ns after the epoch: no camera stamps with it, so it never meets a bag frame
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recorder.publish(first, stamp)
        resend = time.monotonic() + 2.0
        while time.monotonic() < min(resend, deadline):
            if recorder.has_labels(stamp):
                recorder.forget(stamp)
                log.info("segment_node answered the warm-up frame")
                # The latency message of the warm-up may still be in flight; let it land.
                time.sleep(0.2)
                recorder.forget(stamp)
                return
            alive()
            time.sleep(0.05)
    raise EvalError(f"no labels on {recorder.labels_topic} for the warm-up frame within "
                    f"{timeout:.0f} s")


def replay(bag: BagReader, plan: BagPlan, recorder: ReplayRecorder, rate_factor: float
           ) -> tuple[float, float, dict[str, float]]:
    """Publish every image at its bag time / rate_factor; returns (run start, first publish
    time, details) in time.monotonic seconds."""
    start = time.monotonic()
    first_publish = start
    bag_start = plan.bag_times[0]
    last_publish = start
    for i, (_, timestamp, msg) in enumerate(tqdm(bag.messages([plan.image_topic]),
                                                  total=plan.frames, desc="replay",
                                                  unit="frame")):
        due = start + (timestamp - bag_start) / NS_PER_S / rate_factor
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        recorder.publish(msg)
        last_publish = time.monotonic()
        if i == 0:
            first_publish = last_publish
    return start, first_publish, {"last_publish": last_publish,
                                  "duration_s": last_publish - first_publish}
