"""bisestdc-bag-eval: score segmentation on a rosbag2 recording, offline or through the live node.

Modes:

- ``offline``: each image of the bag goes straight to a `Segmenter`; predictions are matched to
  the labels topic by header stamp. Latency comes from ``Segmenter.timings_ms`` (plus decode).
- ``live``: the bag's images are replayed on real ROS 2 topics at the recorded rate (times
  ``--rate-factor``) into a running ``segment_node`` (started here as a subprocess, or already
  running with ``--no-start-node``); the node's ``segmentation/labels`` and
  ``segmentation/latency`` outputs are recorded and matched to the ground truth by header stamp.
  A frame with no labels output is a drop (the node keeps only the newest frame, so a slow
  engine drops frames instead of queueing them). Stage latencies are the node's own; the
  end-to-end latency is measured here, from publishing a frame to receiving its labels (the
  node's ``end_to_end_ms`` compares against the bag's stamps, which lie in the past).

The bag is checked completely before any inference work: it must be readable, the topics must
exist and hold messages, and labels must have the images' size. Everything is written to
``--out``: ``report.json``, ``report.md``, ``per_class_iou.png``, ``latency_histogram.png``,
``latency_timeline.png`` and ``contact_sheet.png`` (frames blended with the predicted colours).
With no drops, live and offline runs with the same engine and network size give the same mIoU.

Examples::

    bisestdc-bag-eval --bag bags/synth --mode offline --weights model.pt --engine onnxruntime \\
        --network-size 256 512 --out reports/offline
    bisestdc-bag-eval --bag bags/synth --mode live --weights model.pt --engine onnxruntime \\
        --network-size 256 512 --reliable --out reports/live
"""

from __future__ import annotations

import argparse
import array
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from bisestdc_core.classes import ClassSet
from bisestdc_core.evaluation.metrics import ConfusionMatrix
from bisestdc_ros.bag_io import (
    COMPRESSED_IMAGE,
    IMAGE,
    IMAGE_TYPES,
    NS_PER_S,
    BagError,
    BagReader,
    frame_from_msg,
    image_size,
    labels_from_msg,
    stamp_ns,
    wire_bytes,
)
from bisestdc_ros.image_codec import ImageDecodeError

log = logging.getLogger(__name__)

MODES = ("offline", "live")
PERCENTILES = (50, 90, 99)
CONTACT_SHEET_FRAMES = 8
CONTACT_SHEET_COLUMNS = 4
CONTACT_TILE_WIDTH = 320
OVERLAY_OPACITY = 0.5
# Above this many bytes per frame Fast DDS's default transports lose best-effort samples
# (UDP fragments, 512 KB shared-memory segment): both ends need the large-images profile.
LARGE_FRAME_BYTES = 512 * 1024
FASTDDS_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class EvalError(RuntimeError):
    """The evaluation cannot run or finish (node did not start, no output arrived, ...)."""


# --- the bag, checked before any inference ----------------------------------------------------


@dataclass
class BagPlan:
    """What the evaluation will read from the bag (all checked by :func:`inspect_bag`).

    Attributes:
        path: bag folder.
        image_topic, image_type: the camera topic and its message type.
        labels_topic, labels_type: the ground-truth topic and its message type.
        stamps: header stamps (ns) of the image messages in bag order.
        bag_times: bag timestamps (ns) of the same messages (the replay schedule).
        label_stamps: header stamps (ns) that have a labels message.
        height, width: image size.
        frame_bytes: payload bytes of the largest image message.
    """

    path: Path
    image_topic: str
    image_type: str
    labels_topic: str
    labels_type: str
    stamps: list[int]
    bag_times: list[int]
    label_stamps: set[int]
    height: int
    width: int
    frame_bytes: int

    @property
    def frames(self) -> int:
        return len(self.stamps)

    @property
    def rate_hz(self) -> float:
        """Recorded frame rate (from the bag timestamps); 0 for a single frame."""
        if len(self.bag_times) < 2 or self.bag_times[-1] == self.bag_times[0]:
            return 0.0
        return (len(self.bag_times) - 1) * NS_PER_S / (self.bag_times[-1] - self.bag_times[0])


def inspect_bag(path: str | Path, image_topic: str | None, labels_topic: str) -> BagPlan:
    """Open the bag, pick and check the topics, and check every labels message's size.

    Raises:
        BagError: unreadable bag, missing or empty topic, undecodable messages, labels of
            another size than the images (messages name the bag and topic).
    """
    with BagReader(path) as bag:
        topic = bag.image_topic(image_topic)
        image_type = bag.topics[topic]
        labels_type = bag.require_topic(labels_topic, IMAGE_TYPES)
        if bag.counts.get(topic, 0) == 0:
            raise BagError(f"bag {bag.path} has no messages on image topic {topic}")
        if bag.counts.get(labels_topic, 0) == 0:
            raise BagError(f"bag {bag.path} has no messages on labels topic {labels_topic}")
        stamps: list[int] = []
        bag_times: list[int] = []
        sizes: dict[int, tuple[int, int]] = {}
        label_sizes: dict[int, tuple[int, int]] = {}
        size: tuple[int, int] | None = None
        frame_bytes = 0
        for msg_topic, timestamp, msg in bag.messages([topic, labels_topic]):
            stamp = stamp_ns(msg)
            try:
                if msg_topic == topic:
                    stamps.append(stamp)
                    bag_times.append(timestamp)
                    frame_bytes = max(frame_bytes, wire_bytes(msg))
                    # Compressed frames are decoded once only: their size is in the payload.
                    if image_type == IMAGE or size is None:
                        size = image_size(msg, image_type)
                    sizes[stamp] = size
                else:
                    label_sizes[stamp] = labels_from_msg(msg, labels_type).shape[:2]
            except ImageDecodeError as error:
                raise BagError(f"bag {bag.path}, topic {msg_topic}, stamp {_fmt_stamp(stamp)}: "
                               f"{error.reason}") from error
    if len(set(stamps)) != len(stamps):
        log.warning("%s: %d image messages share a stamp with another; each stamp is scored "
                    "once", topic, len(stamps) - len(set(stamps)))
    for stamp, label_size in label_sizes.items():
        image_hw = sizes.get(stamp, size)
        if image_hw is not None and tuple(label_size) != tuple(image_hw):
            raise BagError(
                f"bag {path}: labels on {labels_topic} are {label_size[1]}x{label_size[0]} but "
                f"images on {topic} are {image_hw[1]}x{image_hw[0]} (stamp {_fmt_stamp(stamp)})")
    assert size is not None
    label_stamps = set(label_sizes) & set(stamps)
    if not label_stamps:
        raise BagError(f"bag {path}: no labels on {labels_topic} share a header stamp with "
                       f"the images on {topic}")
    return BagPlan(Path(path), topic, image_type, labels_topic, labels_type, stamps, bag_times,
                   label_stamps, size[0], size[1], frame_bytes)


def _fmt_stamp(stamp: int) -> str:
    return f"{stamp // NS_PER_S}.{stamp % NS_PER_S:09d}"


# --- scoring and timing -----------------------------------------------------------------------


class StampMatcher:
    """Scores predictions against ground truth with the same header stamp, in any order.

    Either side may come first; a pair is scored (and forgotten) as soon as both are in, so
    memory holds only the unmatched part.
    """

    def __init__(self, class_set: ClassSet):
        self.matrix = ConfusionMatrix(class_set.num_classes)
        self._predictions: dict[int, np.ndarray] = {}
        self._truth: dict[int, np.ndarray] = {}
        self.scored: set[int] = set()

    def add_prediction(self, stamp: int, labels: np.ndarray) -> None:
        self._add(stamp, labels, self._predictions, self._truth, prediction_first=True)

    def add_ground_truth(self, stamp: int, labels: np.ndarray) -> None:
        self._add(stamp, labels, self._truth, self._predictions, prediction_first=False)

    def _add(self, stamp: int, labels: np.ndarray, mine: dict[int, np.ndarray],
             other: dict[int, np.ndarray], prediction_first: bool) -> None:
        if stamp in self.scored:
            return
        partner = other.pop(stamp, None)
        if partner is None:
            mine[stamp] = labels
            return
        prediction, truth = (labels, partner) if prediction_first else (partner, labels)
        if prediction.shape != truth.shape:
            raise BagError(f"prediction {prediction.shape} and labels {truth.shape} differ in "
                           f"size at stamp {_fmt_stamp(stamp)}")
        self.matrix.update(prediction, truth)
        self.scored.add(stamp)


@dataclass
class FrameTiming:
    """Stage timings (ms) of one processed frame; ``t`` is seconds since the run started."""

    stamp: int
    t: float
    stages: dict[str, float]


def latency_summary(timings: Sequence[FrameTiming]) -> dict[str, dict[str, float]]:
    """Per stage: p50/p90/p99, mean, max (ms) and the sample count."""
    stages: dict[str, list[float]] = {}
    for timing in timings:
        for name, value in timing.stages.items():
            if math.isfinite(value) and value >= 0:
                stages.setdefault(name, []).append(value)
    summary = {}
    for name, values in stages.items():
        arr = np.asarray(values, np.float64)
        row = {f"p{p}": float(np.percentile(arr, p)) for p in PERCENTILES}
        row.update(mean=float(arr.mean()), max=float(arr.max()), count=int(arr.size))
        summary[name] = row
    return summary


@dataclass
class RunResult:
    """What one mode produced: predictions scored, timings, and mode details for the report."""

    matcher: StampMatcher
    processed: set[int]
    timings: list[FrameTiming]
    wall_s: float
    engine: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    keep: dict[int, np.ndarray] = field(default_factory=dict)  # predictions for the sheet


def sheet_stamps(plan: BagPlan, count: int = CONTACT_SHEET_FRAMES) -> set[int]:
    """Stamps of up to ``count`` evenly spaced frames, the contact sheet's candidates."""
    if not plan.stamps:
        return set()
    picks = np.linspace(0, plan.frames - 1, min(count, plan.frames)).round().astype(int)
    return {plan.stamps[i] for i in picks}


# --- offline ----------------------------------------------------------------------------------


def build_segmenter(args: argparse.Namespace) -> Any:
    """The Segmenter the arguments describe (raises EvalError when it cannot be built)."""
    from bisestdc_core.inference import Segmenter  # noqa: PLC0415 (torch import is slow)

    try:
        return Segmenter(weights=args.weights, onnx=args.onnx, engine=args.engine,
                         device=args.device, precision=args.precision,
                         network_size=args.network_size, model_name=args.model_name,
                         num_classes=args.num_classes, class_set=args.class_set)
    except (ValueError, RuntimeError, OSError) as error:
        raise EvalError(f"cannot create the segmenter: {error}") from error


def run_offline(plan: BagPlan, args: argparse.Namespace) -> tuple[RunResult, ClassSet]:
    """Segment every image of the bag in-process and score it against the labels by stamp."""
    segmenter = build_segmenter(args)
    log.info("offline: %r", segmenter)
    matcher = StampMatcher(segmenter.class_set)
    keep_stamps = sheet_stamps(plan)
    result = RunResult(matcher, set(), [], 0.0, _engine_info(segmenter))
    start = time.perf_counter()
    with BagReader(plan.path) as bag, tqdm(total=plan.frames, desc="offline", unit="frame") as bar:
        for topic, _, msg in bag.messages([plan.image_topic, plan.labels_topic]):
            stamp = stamp_ns(msg)
            if topic == plan.labels_topic:
                matcher.add_ground_truth(stamp, labels_from_msg(msg, plan.labels_type))
                continue
            t0 = time.perf_counter()
            frame, order = frame_from_msg(msg, plan.image_type)
            decode_ms = (time.perf_counter() - t0) * 1e3
            out = segmenter.segment(frame, channel_order=order)
            stages = {"decode_ms": decode_ms}
            stages.update({f"{k}_ms": float(v) for k, v in out.timings_ms.items()})
            result.timings.append(FrameTiming(stamp, time.perf_counter() - start, stages))
            result.processed.add(stamp)
            matcher.add_prediction(stamp, out.labels)
            if stamp in keep_stamps:
                result.keep[stamp] = out.labels
            bar.update()
    result.wall_s = time.perf_counter() - start
    return result, segmenter.class_set


def _engine_info(segmenter: Any) -> dict[str, Any]:
    return {"engine": segmenter.engine_name, "device": segmenter.device,
            "precision": segmenter.precision, "network_size": list(segmenter.network_size),
            "class_set": segmenter.class_set.name}


# --- live: the node process -------------------------------------------------------------------


def model_class_set(args: argparse.Namespace) -> ClassSet:
    """The class set of the node's model, read from the ONNX sidecar or the checkpoint.

    The node does not publish it, and building a Segmenter here only to ask would double the
    start-up time.
    """
    from bisestdc_core.export import read_sidecar  # noqa: PLC0415
    from bisestdc_core.inference.loading import resolve_class_set  # noqa: PLC0415

    stored, num_classes = None, args.num_classes
    if args.onnx:
        meta = read_sidecar(args.onnx) or {}
        stored, num_classes = meta.get("class_set"), int(meta.get("num_classes", num_classes))
    elif args.weights:
        from bisestdc_core.models.checkpoint import read_file  # noqa: PLC0415

        obj = read_file(args.weights)
        if isinstance(obj, dict):
            stored = obj.get("class_set")
            num_classes = int(obj.get("num_classes", num_classes))
    return resolve_class_set(args.class_set, stored, num_classes)


def replay_topic(plan: BagPlan, args: argparse.Namespace) -> tuple[str, str]:
    """(topic the node is configured with, topic the frames are published on).

    The node subscribes ``<topic>/compressed`` for compressed input (image_transport naming),
    so a compressed bag topic is published under that name whatever it was recorded as.
    """
    from bisestdc_ros.segment_config import input_topic  # noqa: PLC0415

    base = args.replay_topic or plan.image_topic
    if base.endswith("/compressed"):
        base = base[: -len("/compressed")]
    input_type = "compressed" if plan.image_type == COMPRESSED_IMAGE else "raw"
    return base, input_topic(base, input_type)


def node_command(plan: BagPlan, args: argparse.Namespace, camera_topic: str) -> list[str]:
    """``python -m bisestdc_ros.segment_node --ros-args ...`` for this bag and model."""
    params = [f"image_topics:=['{camera_topic}']",
              f"input_type:={'compressed' if plan.image_type == COMPRESSED_IMAGE else 'raw'}",
              f"qos:={'reliable' if args.reliable else 'sensor_data'}",
              # Only labels and latency are recorded; the node skips unsubscribed outputs
              # anyway, these keep a stray viewer from slowing the measurement down.
              "publish_color:=false", "publish_overlay:=false"]
    for name, value in (("weights", args.weights), ("onnx", args.onnx),
                        ("model_name", args.model_name)):
        if value:
            params.append(f"{name}:={value}")
    params += [f"engine:={args.engine}", f"device:={args.device}",
               f"precision:={args.precision}", f"num_classes:={args.num_classes}"]
    if args.network_size:
        params += [f"network_height:={args.network_size[0]}",
                   f"network_width:={args.network_size[1]}"]
    command = [sys.executable, "-m", "bisestdc_ros.segment_node", "--ros-args"]
    if args.params_file:
        command += ["--params-file", str(args.params_file)]
    for param in params + list(args.node_param or []):
        command += ["-p", param]
    return command


def fastdds_profile() -> Path | None:
    """config/fastdds_large_images.xml of the source tree or the installed package."""
    candidate = PACKAGE_ROOT / "config" / "fastdds_large_images.xml"
    if candidate.is_file():
        return candidate
    try:
        from ament_index_python.packages import (  # noqa: PLC0415
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:
        return None
    try:
        installed = Path(get_package_share_directory("bisestdc_ros"))
    except PackageNotFoundError:
        return None
    candidate = installed / "config" / "fastdds_large_images.xml"
    return candidate if candidate.is_file() else None


def configure_large_frames(plan: BagPlan) -> str | None:
    """Set the Fast DDS large-images profile for this process (and so the node) if needed.

    Must run before rclpy.init: Fast DDS reads the variable when the participant is created.
    A profile the user already set is kept.
    """
    if plan.frame_bytes <= LARGE_FRAME_BYTES:
        return None
    current = next((os.environ[v] for v in FASTDDS_PROFILE_VARIABLES if v in os.environ), None)
    if current:
        return current
    profile = fastdds_profile()
    if profile is None:
        log.warning("frames of %d bytes but no fastdds_large_images.xml found; best-effort "
                    "frames may be lost", plan.frame_bytes)
        return None
    for variable in FASTDDS_PROFILE_VARIABLES:
        os.environ[variable] = str(profile)
    log.info("frames of %.1f MB: using the Fast DDS profile %s", plan.frame_bytes / 2**20,
             profile)
    return str(profile)


def start_node(command: list[str], log_path: Path) -> subprocess.Popen:
    """Start the node in its own process group, output to ``log_path``."""
    env = dict(os.environ)
    # The node must import this source tree even when the package is not installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                      env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    log.info("starting: %s", " ".join(command))
    with open(log_path, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_node(process: subprocess.Popen, timeout: float = 20.0) -> int:
    """SIGINT (the node shuts down cleanly), SIGKILL to its group if that does not work."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
    return int(process.returncode)


def _log_tail(path: Path, lines: int = 15) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- live: replay and recording ---------------------------------------------------------------


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
    data = array.array("B")  # what rclpy stores uint8[] as: assigning it skips a per-byte check
    data.frombytes(np.ascontiguousarray(msg.data).tobytes())
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
    """Replay the bag into segment_node and record its outputs (see the module docstring)."""
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
                            f"({node_log}):\n{_log_tail(node_log)}")

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


# --- report -----------------------------------------------------------------------------------


def build_report(plan: BagPlan, result: RunResult, class_set: ClassSet, mode: str
                 ) -> dict[str, Any]:
    """The JSON-ready report of one run."""
    unique = set(plan.stamps)
    processed = result.processed & unique
    dropped = len(unique) - len(processed)
    summary = result.matcher.matrix.summary(class_set)
    return {
        "mode": mode,
        "bag": str(plan.path),
        "image_topic": plan.image_topic,
        "labels_topic": plan.labels_topic,
        "image_size": [plan.height, plan.width],
        "recorded_rate_hz": plan.rate_hz,
        "engine": result.engine,
        "class_set": class_set.name,
        "frames_in_bag": plan.frames,
        "frames_with_labels": len(plan.label_stamps),
        "frames_processed": len(processed),
        "frames_dropped": dropped,
        "frames_scored": len(result.matcher.scored),
        "metrics": summary,
        "latency_ms": latency_summary(result.timings),
        "throughput_fps": len(processed) / result.wall_s if result.wall_s > 0 else 0.0,
        "wall_s": result.wall_s,
        "details": result.details,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def report_markdown(report: dict[str, Any]) -> str:
    """report.md: the numbers of report.json as tables, with the plots."""
    metrics = report["metrics"]
    lines = [
        f"# Segmentation on `{report['bag']}` ({report['mode']})", "",
        f"- image topic `{report['image_topic']}` ({report['image_size'][1]}x"
        f"{report['image_size'][0]}, {report['recorded_rate_hz']:.2f} Hz recorded), labels "
        f"`{report['labels_topic']}`",
        f"- engine: {', '.join(f'{k} {v}' for k, v in report['engine'].items())}",
        f"- frames: {report['frames_in_bag']} in the bag, {report['frames_processed']} "
        f"processed, {report['frames_dropped']} dropped, {report['frames_scored']} scored",
    ]
    if report["frames_dropped"]:
        lines.append(f"- **{report['frames_dropped']} frames had no output: the metrics cover "
                     f"only the {report['frames_scored']} scored frames.**")
    lines += [
        f"- **mIoU {_pct(metrics['miou'])} %**, small objects "
        f"{_pct(metrics['small_object_miou'])} %, pixel accuracy "
        f"{_pct(metrics['pixel_accuracy'])} %",
        f"- throughput {report['throughput_fps']:.2f} frames/s over {report['wall_s']:.1f} s",
        "", "## Per class IoU (%)", "", "| class | IoU | small object |", "|---|---:|:---:|",
    ]
    small = metrics["small_object_iou"]
    for name, iou in metrics["iou"].items():
        lines.append(f"| {name} | {_pct(iou)} | {'yes' if name in small else ''} |")
    lines += ["", "## Latency (ms)", "", "| stage | p50 | p90 | p99 | mean | max | n |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for stage, row in report["latency_ms"].items():
        lines.append(f"| {stage} | {row['p50']:.2f} | {row['p90']:.2f} | {row['p99']:.2f} | "
                     f"{row['mean']:.2f} | {row['max']:.2f} | {row['count']} |")
    if report["details"]:
        lines += ["", "## Run", ""]
        lines += [f"- {k}: {v}" for k, v in report["details"].items()]
    lines += ["", "![per-class IoU](per_class_iou.png)", "",
              "![latency histogram](latency_histogram.png)", "",
              "![latency timeline](latency_timeline.png)", "",
              "![contact sheet](contact_sheet.png)", ""]
    return "\n".join(lines)


def _headline_stages(timings: Sequence[FrameTiming]) -> list[str]:
    """Stages worth plotting: end to end (live) or total (offline), then the network."""
    present = {k for t in timings for k in t.stages}
    return [s for s in ("end_to_end_ms", "node_latency_ms", "total_ms", "inference_ms",
                        "preprocess_ms", "postprocess_ms", "decode_ms") if s in present]


def plot_latency(timings: Sequence[FrameTiming], out_dir: Path) -> None:
    """latency_histogram.png and latency_timeline.png."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    stages = _headline_stages(timings)
    hist = Figure(figsize=(7, 4))
    ax = hist.add_subplot(1, 1, 1)
    for stage in stages[:3]:
        values = [t.stages[stage] for t in timings if t.stages.get(stage, -1) >= 0]
        if values:
            ax.hist(values, bins=min(40, max(5, len(values))), alpha=0.6, label=stage)
    ax.set_xlabel("ms")
    ax.set_ylabel("frames")
    ax.set_title("latency per frame")
    if stages:
        ax.legend()
    hist.tight_layout()
    FigureCanvasAgg(hist)
    hist.savefig(out_dir / "latency_histogram.png", dpi=100)

    line = Figure(figsize=(8, 4))
    ax = line.add_subplot(1, 1, 1)
    for stage in stages:
        points = [(t.t, t.stages[stage]) for t in timings if t.stages.get(stage, -1) >= 0]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker=".", label=stage)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("ms")
    ax.set_title("latency over the run")
    ax.grid(alpha=0.3)
    if stages:
        ax.legend(fontsize=8)
    line.tight_layout()
    FigureCanvasAgg(line)
    line.savefig(out_dir / "latency_timeline.png", dpi=100)


def contact_sheet(plan: BagPlan, predictions: dict[int, np.ndarray], class_set: ClassSet,
                  path: Path) -> Path:
    """A grid of frames blended with their predicted colours (black where none arrived)."""
    from bisestdc_core.small_objects import colorize, palette_lut  # noqa: PLC0415

    lut = palette_lut(class_set.palette_bgr())
    tile_h = max(1, round(CONTACT_TILE_WIDTH * plan.height / plan.width))
    tiles: dict[int, np.ndarray] = {}
    wanted = sheet_stamps(plan)
    with BagReader(plan.path) as bag:
        for _, _, msg in bag.messages([plan.image_topic]):
            stamp = stamp_ns(msg)
            if stamp not in wanted or stamp in tiles:
                continue
            frame, order = frame_from_msg(msg, plan.image_type)
            bgr = frame if order == "bgr" else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
            if stamp in predictions:
                color = colorize(predictions[stamp], lut)
                bgr = cv2.addWeighted(bgr, 1.0 - OVERLAY_OPACITY, color, OVERLAY_OPACITY, 0.0)
            else:
                bgr = (bgr // 3).astype(np.uint8)  # dimmed: this frame was dropped
            tile = cv2.resize(bgr, (CONTACT_TILE_WIDTH, tile_h), interpolation=cv2.INTER_AREA)
            cv2.putText(tile, _fmt_stamp(stamp) + ("" if stamp in predictions else " dropped"),
                        (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            tiles[stamp] = tile
    ordered = [tiles[s] for s in sorted(tiles)]
    columns = min(CONTACT_SHEET_COLUMNS, len(ordered))
    rows = math.ceil(len(ordered) / columns)
    sheet = np.zeros((rows * tile_h, columns * CONTACT_TILE_WIDTH, 3), np.uint8)
    for i, tile in enumerate(ordered):
        row, col = divmod(i, columns)
        x0 = col * CONTACT_TILE_WIDTH
        sheet[row * tile_h:(row + 1) * tile_h, x0:x0 + CONTACT_TILE_WIDTH] = tile
    if not cv2.imwrite(str(path), sheet):
        raise EvalError(f"cannot write {path}")
    return path


def write_report(plan: BagPlan, result: RunResult, class_set: ClassSet, mode: str,
                 out_dir: Path) -> dict[str, Any]:
    """report.json, report.md and the plots under ``out_dir``; returns the report."""
    from bisestdc_core.evaluation.plots import plot_per_class_iou  # noqa: PLC0415

    report = build_report(plan, result, class_set, mode)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(report_markdown(report))
    metrics = report["metrics"]
    plot_per_class_iou(list(metrics["iou"].values()), class_set.names,
                       out_dir / "per_class_iou.png", small_objects=class_set.small_objects,
                       title=f"{mode}: mIoU {_pct(metrics['miou'])}% "
                             f"({report['frames_scored']} frames)")
    plot_latency(result.timings, out_dir)
    contact_sheet(plan, result.keep, class_set, out_dir / "contact_sheet.png")
    return report


# --- CLI --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bisestdc-bag-eval",
        description="Score segmentation on a rosbag2 with ground-truth labels, offline or "
                    "through a live segment_node.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--bag", type=Path, required=True, help="rosbag2 folder")
    parser.add_argument("--mode", choices=MODES, default="offline")
    parser.add_argument("--out", type=Path, default=Path("bag_eval"),
                        help="report folder")
    parser.add_argument("--image-topic",
                        help="Image or CompressedImage topic; default: the bag's only one")
    parser.add_argument("--labels-topic", default="/camera/labels_gt",
                        help="ground truth: mono8 train ids (or PNG CompressedImage)")
    model = parser.add_argument_group("model (both modes)")
    model.add_argument("--weights", help="project checkpoint (.pt)")
    model.add_argument("--onnx", help="exported ONNX model")
    model.add_argument("--engine", default="auto",
                       choices=("auto", "tensorrt", "torch", "onnxruntime"))
    model.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    model.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    model.add_argument("--network-size", type=int, nargs=2, metavar=("H", "W"),
                       help="network input size; default: the model's")
    model.add_argument("--model-name", default="bisestdc",
                       help="architecture of seed checkpoints (project ones name their own)")
    model.add_argument("--num-classes", type=int, default=19)
    model.add_argument("--class-set", help="class set name; default: the model's")
    live = parser.add_argument_group("live mode")
    live.add_argument("--start-node", action=argparse.BooleanOptionalAction, default=True,
                      help="start segment_node as a subprocess (else use a running one)")
    live.add_argument("--params-file", type=Path,
                      help="segment_node parameter file (e.g. config/segment.yaml)")
    live.add_argument("--node-param", action="append", metavar="NAME:=VALUE",
                      help="extra segment_node parameter (repeatable)")
    live.add_argument("--replay-topic",
                      help="camera topic the node listens to; default: the bag's image topic")
    live.add_argument("--rate-factor", type=float, default=1.0,
                      help="replay speed relative to the recorded rate")
    live.add_argument("--reliable", action="store_true",
                      help="reliable replay QoS (default: sensor-data best effort)")
    live.add_argument("--startup-timeout", type=float, default=180.0,
                      help="seconds to wait for the node to answer its first frame")
    live.add_argument("--idle-timeout", type=float, default=10.0,
                      help="seconds without outputs after the last frame before scoring")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Raise EvalError for argument combinations that cannot work."""
    if args.rate_factor <= 0:
        raise EvalError(f"--rate-factor must be > 0, got {args.rate_factor}")
    if args.mode == "live" and args.start_node and not (args.weights or args.onnx):
        raise EvalError("live mode starting the node needs --weights or --onnx")
    if args.mode == "offline" and not (args.weights or args.onnx):
        raise EvalError("offline mode needs --weights or --onnx")
    for name in ("weights", "onnx", "params_file"):
        value = getattr(args, name)
        if value and not Path(value).is_file():
            raise EvalError(f"--{name.replace('_', '-')} file not found: {value}")


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Check the bag, run the mode, write the report; returns the report dict."""
    check_args(args)
    plan = inspect_bag(args.bag, args.image_topic, args.labels_topic)
    log.info("bag %s: %d frames on %s (%dx%d, %.2f Hz), %d with labels on %s", plan.path,
             plan.frames, plan.image_topic, plan.width, plan.height, plan.rate_hz,
             len(plan.label_stamps), plan.labels_topic)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mode == "offline":
        result, class_set = run_offline(plan, args)
    else:
        result, class_set = run_live(plan, args, args.out)
    return write_report(plan, result, class_set, args.mode, args.out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        report = evaluate(args)
    except (BagError, EvalError) as error:
        log.error("%s", error)
        return 1
    metrics = report["metrics"]
    print(f"{report['mode']}: mIoU {_pct(metrics['miou'])}% over {report['frames_scored']} "
          f"scored frames ({report['frames_processed']}/{report['frames_in_bag']} processed, "
          f"{report['frames_dropped']} dropped), {report['throughput_fps']:.2f} frames/s; "
          f"report in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

