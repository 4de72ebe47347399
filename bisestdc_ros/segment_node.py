"""segment_node: semantic segmentation of one or more camera streams with one shared engine.

A thin node over the core: `bisestdc_core.inference.Segmenter` does the network work,
`image_codec` converts messages, `bisestdc_core.small_objects` renders and extracts small objects,
`segment_config` holds the parameter rules and the topic layout, `node_outputs` the table of
outputs (and their message builders), `diagnostics_window` the statistics behind /diagnostics.

Threading: subscription callbacks (executor thread) only store the newest message of their camera
in a `LatestFrameSlots`; one worker thread takes pending frames round-robin, decodes, segments and
publishes. A frame replaced before the worker got to it is a drop. Outputs without subscribers
are not computed.

Topics, per input topic ``<ns>/<image>``: one ``<ns>/segmentation/<topic>`` per row of
`node_outputs.OUTPUTS` (labels, color, overlay, latency, confidence, labels/compressed,
small_objects where vision_msgs imports), and /diagnostics (DiagnosticArray) every
diagnostics_period seconds. All outputs carry the input header (stamp and frame_id) unchanged.
Input QoS can be overridden with rclpy's standard
``qos_overrides.<input topic>.subscription.<policy>`` parameters.

Shutdown: SIGINT and SIGTERM only set a flag; the main loop then stops the worker, destroys the
node and shuts rclpy down, in that order, so no publish meets an invalid context and a second
signal (``ros2 launch`` forwards Ctrl-C as one) cannot interrupt the clean-up.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import CompressedImage, Image

from bisestdc_core.small_objects import colorize, draw_overlay, find_small_objects_at, palette_lut
from bisestdc_core.stage_timings import StageTimings
from bisestdc_ros.diagnostics_window import DiagnosticsWindow
from bisestdc_ros.frame_slots import LatestFrameSlots
from bisestdc_ros.image_codec import (
    ImageDecodeError,
    array_backed,
    compressed_msg_to_frame,
    image_msg_to_frame,
    to_bgr,
)
from bisestdc_ros.node_outputs import (
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
from bisestdc_ros.ros_logging import forward_python_logging, stop_forwarding
from bisestdc_ros.segment_config import (
    DEFAULTS,
    FLOAT_PARAMETERS,
    PARAMETERS,
    ConfigError,
    SegmentConfig,
    input_topic,
    output_topics,
    parameters_help,
    validate,
)
from bisestdc_ros.sequence_gaps import SequenceGaps

NODE_NAME = "segment_node"
LOG_THROTTLE_S = 5.0
SPIN_PERIOD_S = 0.1  # how soon the main loop notices a shutdown signal
RANDOM_WEIGHTS = "random weights"

_PARAMETER_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    str: ParameterType.PARAMETER_STRING,
    list: ParameterType.PARAMETER_STRING_ARRAY,  # the only list parameters are string lists
}
SMALL_OBJECT_CLASSES = "small_object_classes"


class StartupError(RuntimeError):
    """The node cannot start with its parameters (bad value, missing model file, ...)."""


def _stamp_seconds(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class _Settings(NamedTuple):
    """What a frame is processed with; replaced as a whole when parameters change."""

    config: SegmentConfig
    small_ids: tuple[int, ...]


@dataclass
class Camera:
    """Publishers (one per available output, by output name), renderer and counters of one
    input stream."""

    index: int
    topic: str
    publishers: dict[str, Any]
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


class SegmentNode(Node):
    """Segments camera streams; see the module docstring for topics and threading."""

    def __init__(self, segmenter: Any = None, start_worker: bool = True, **node_kwargs: Any):
        """Declare and validate parameters, build the engine, create the ROS interfaces.

        Args:
            segmenter: an already built engine (tests, benchmarks); None builds a
                `bisestdc_core.inference.Segmenter` from the parameters.
            start_worker: False leaves the worker thread off (benchmarks call
                `process_frame` themselves).
            node_kwargs: passed to rclpy's Node (context, parameter_overrides, ...).

        Raises:
            StartupError: invalid parameters or an engine that cannot be created.
        """
        super().__init__(NODE_NAME, **node_kwargs)
        # From here on, library log records (engine choice, random-weights warning) go to /rosout.
        self._log_forwarding = forward_python_logging(self.get_logger())
        try:
            self._set_up(segmenter, start_worker)
        except BaseException:  # a node that failed to start must not keep the forwarding
            stop_forwarding(self._log_forwarding)
            raise
        self.get_logger().info(self.startup_summary())

    def _set_up(self, segmenter: Any, start_worker: bool) -> None:
        """Parameters, engine, cameras, timers and worker (see __init__)."""
        for spec in PARAMETERS:
            if spec.name != SMALL_OBJECT_CLASSES:
                self._declare(spec.name, spec.default, spec.description, spec.read_only)
        values = {s.name: self.get_parameter(s.name).value for s in PARAMETERS
                  if s.name != SMALL_OBJECT_CLASSES}
        try:
            config = validate(values)
        except ConfigError as error:
            raise StartupError(f"invalid parameter: {error}") from error

        self._model_source = self._describe_model(config, injected=segmenter is not None)
        if segmenter is None:
            self.get_logger().info(f"loading the {config.engine} engine with {self._model_source}")
            segmenter = self._build_segmenter(config)
        self._segmenter = segmenter
        class_set = self._segmenter.class_set
        self._class_names: tuple[str, ...] = tuple(class_set.names)
        self._declare_small_object_classes(list(class_set.small_objects))
        try:
            config = validate(
                {**values, SMALL_OBJECT_CLASSES: self.get_parameter(SMALL_OBJECT_CLASSES).value},
                self._class_names,
            )
        except ConfigError as error:
            raise StartupError(f"invalid parameter: {error}") from error
        self._palette = np.asarray(class_set.palette_bgr(), np.uint8)
        self._lut = palette_lut(self._palette)
        self._settings = self._make_settings(config)

        self._slots = LatestFrameSlots(len(self._config.image_topics))
        self._window = DiagnosticsWindow()

        self._cameras = [self._create_camera(i, t) for i, t in enumerate(self._config.image_topics)]
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(
            self._config.diagnostics_period, self._publish_diagnostics
        )

        # Registered after every declaration (the QoS-override ones included): they run for
        # runtime changes only.
        self.add_on_set_parameters_callback(self._validate_parameter_changes)
        self.add_post_set_parameters_callback(self._apply_parameter_changes)

        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name="segment_worker", daemon=True)
        if start_worker:
            self._worker.start()

    # --- set-up ---------------------------------------------------------------------------

    def _declare(self, name: str, default: Any, description: str, read_only: bool) -> None:
        if name in FLOAT_PARAMETERS:
            # Dynamically typed so an integer (a parameter file's `1`, `ros2 param set ... 1`)
            # is accepted; `validate` still refuses anything but a number and the
            # configuration holds it as a float.
            descriptor = ParameterDescriptor(
                description=description, read_only=read_only, dynamic_typing=True
            )
            self.declare_parameter(name, default, descriptor)
            return
        descriptor = ParameterDescriptor(
            description=description,
            read_only=read_only,
            type=_PARAMETER_TYPES[type(default)],
        )
        self.declare_parameter(name, default, descriptor)

    def _declare_small_object_classes(self, default: list[str]) -> None:
        """Declared after the engine: its default is the engine's class set's own list.

        Declared by type, not by value: an empty default (a class set without small objects)
        would otherwise become a byte array and refuse every list of names.
        """
        spec = next(s for s in PARAMETERS if s.name == SMALL_OBJECT_CLASSES)
        descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
        declared = self.declare_parameter(
            SMALL_OBJECT_CLASSES, Parameter.Type.STRING_ARRAY, descriptor
        )
        if declared.type_ == Parameter.Type.NOT_SET:  # no override: the class set's list
            self.set_parameters(
                [Parameter(SMALL_OBJECT_CLASSES, Parameter.Type.STRING_ARRAY, default)]
            )

    @staticmethod
    def _describe_model(config: SegmentConfig, injected: bool) -> str:
        if injected:
            return "an engine supplied by the caller"
        for label, path in (("weights", config.weights), ("onnx", config.onnx),
                            ("engine_path", config.engine_path)):
            if path:
                return f"{label} {path}"
        return RANDOM_WEIGHTS

    @property
    def random_weights(self) -> bool:
        """True when no weights, ONNX or engine file was given: the outputs mean nothing."""
        return self._model_source == RANDOM_WEIGHTS

    def startup_summary(self) -> str:
        """The start-up line: model source, engine, precision, network size, class set, topics."""
        config = self._config
        height, width = getattr(self._segmenter, "network_size", ("?", "?"))
        class_set = self._segmenter.class_set
        return (
            f"segmenting {', '.join(self.resolve_topic_name(t) for t in config.image_topics)} "
            f"({config.input_type}) with {self._model_source}: engine {self.engine_name}, "
            f"precision {self.precision}, network {height}x{width}, class set {class_set.name} "
            f"({len(class_set.names)} classes); small objects: "
            f"{', '.join(config.small_object_classes or ()) or 'none'}"
        )

    @staticmethod
    def _build_segmenter(config: SegmentConfig) -> Any:
        try:
            from bisestdc_core.inference.cli_args import segmenter_from_args
        except ImportError as error:
            raise StartupError(f"the inference package is not importable: {error}") from error
        try:
            # The parameters carry the command-line options' names: one builder for both.
            return segmenter_from_args(config)
        except (OSError, ValueError, RuntimeError, KeyError, ImportError) as error:
            # Missing files, unknown models, unavailable engines: the node cannot run at all.
            raise StartupError(f"cannot create the {config.engine} engine: {error}") from error

    def _create_camera(self, index: int, topic: str) -> Camera:
        config = self._config
        names = output_topics(topic)
        # Outputs are reliable (depth 1): reliable publishers match both reliable and best-effort
        # subscribers (rviz, bag recorders), and depth 1 keeps only the newest result.
        out_qos = QoSProfile(
            depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE
        )
        publishers = {
            output.name: self.create_publisher(output.msg_type, names[output.name], out_qos)
            for output in OUTPUTS if output.available
        }
        if config.qos == "sensor_data":
            in_qos = QoSProfile(
                depth=config.qos_depth,
                history=qos_profile_sensor_data.history,
                reliability=qos_profile_sensor_data.reliability,
                durability=qos_profile_sensor_data.durability,
            )
        else:
            in_qos = QoSProfile(
                depth=config.qos_depth,
                history=HistoryPolicy.KEEP_LAST,
                reliability=ReliabilityPolicy.RELIABLE,
            )
        msg_type = CompressedImage if config.input_type == "compressed" else Image
        self.create_subscription(
            msg_type,
            input_topic(topic, config.input_type),
            lambda msg, info, i=index: self._on_image(i, msg, info),
            in_qos,
            # qos_overrides.<topic>.subscription.{history,depth,reliability,durability}
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        return Camera(index, topic, publishers)

    def _class_ids(self, names: tuple[str, ...] | None) -> tuple[int, ...]:
        return tuple(self._class_names.index(n) for n in names or ())

    # --- parameters at runtime ------------------------------------------------------------

    def _current_values(self) -> dict[str, Any]:
        return {s.name: self.get_parameter(s.name).value for s in PARAMETERS}

    def _validate_parameter_changes(self, params: list[Parameter]) -> SetParametersResult:
        # Only the node's own parameters; rclpy's (qos_overrides.*, use_sim_time) have their
        # own rules.
        proposed = self._current_values()
        proposed.update({p.name: p.value for p in params if p.name in DEFAULTS})
        try:
            validate(proposed, self._class_names)
        except ConfigError as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _make_settings(self, config: SegmentConfig) -> _Settings:
        return _Settings(config, self._class_ids(config.small_object_classes))

    @property
    def _config(self) -> SegmentConfig:
        return self._settings.config

    def _apply_parameter_changes(self, params: list[Parameter]) -> None:
        ours = [p for p in params if p.name in DEFAULTS]
        if not ours:
            return
        # One assignment: the worker reads config and small-object ids as one snapshot.
        self._settings = self._make_settings(validate(self._current_values(), self._class_names))
        self.get_logger().info(
            "parameters changed: " + ", ".join(f"{p.name}={p.value!r}" for p in ours)
        )

    # --- frames -----------------------------------------------------------------------------

    @property
    def engine_name(self) -> str:
        return str(getattr(self._segmenter, "engine_name", "unknown"))

    @property
    def precision(self) -> str:
        return str(getattr(self._segmenter, "precision", "unknown"))

    @property
    def cameras(self) -> list[Camera]:
        return self._cameras

    def _on_image(self, index: int, msg: Any, info: Any = None) -> None:
        # Executor thread: store and return at once; all work happens in the worker.
        if info is not None:
            self._cameras[index].dds_lost.observe(info)
        self._slots.put(index, (msg, time.monotonic()))

    def _work(self) -> None:
        while not self._stopping.is_set():
            taken = self._slots.take(timeout=0.2)
            if taken is None:
                continue
            index, (msg, received) = taken
            try:
                self.process_frame(index, msg, received)
            except Exception as error:  # noqa: BLE001 - one bad frame must not end the worker
                # Counted and reported as ERROR on /diagnostics, like an engine failure.
                self._count_engine_error(
                    f"processing a frame of {self._cameras[index].topic} failed: "
                    f"{type(error).__name__}: {error}"
                )

    def _count_engine_error(self, message: str) -> None:
        """Count a failed frame, report it on /diagnostics (ERROR) and log it (throttled)."""
        self._window.engine_error(message)
        self.get_logger().error(message, throttle_duration_sec=LOG_THROTTLE_S)

    def stop(self) -> None:
        """Stop the worker thread (before destroy_node)."""
        self._stopping.set()
        self._slots.close()
        if self._worker.is_alive():
            self._worker.join(timeout=10.0)

    def destroy_node(self) -> None:
        stop_forwarding(self._log_forwarding)
        super().destroy_node()

    def _decode(self, msg: Any) -> tuple[np.ndarray, str]:
        if isinstance(msg, CompressedImage):
            return compressed_msg_to_frame(msg)
        return image_msg_to_frame(msg)

    def _wanted(self, camera: Camera, config: SegmentConfig) -> tuple[Output, ...]:
        """Outputs that are enabled and have at least one subscriber, in table order."""
        return tuple(
            output for output in OUTPUTS
            if output.name in config.enabled_outputs and output.name in camera.publishers
            and camera.publishers[output.name].get_subscription_count() > 0
        )

    def process_frame(
        self, index: int, msg: Any, received: float | None = None
    ) -> StageTimings | None:
        """Decode, segment and publish one frame of camera ``index``.

        Only what the wanted outputs need is computed (see `node_outputs.Output.needs`).

        Returns:
            The stage timings (as published on the latency topic), or None when the frame was
            skipped (malformed message or an engine failure).
        """
        camera = self._cameras[index]
        config, small_ids = self._settings
        received = time.monotonic() if received is None else received
        t0 = time.perf_counter()
        try:
            frame, order = self._decode(msg)
        except ImageDecodeError as error:
            camera.input_errors += 1
            self._window.input_error()
            self.get_logger().warning(
                f"skipping a malformed frame on {camera.topic}: {error.reason}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
            return None
        t_decoded = time.perf_counter()

        wanted = self._wanted(camera, config)
        needs = needs_of(wanted)
        try:
            result = self._segmenter.segment(
                frame, channel_order=order, with_confidence=CONFIDENCE in needs
            )
        except (RuntimeError, ValueError, MemoryError) as error:
            self._count_engine_error(f"segmentation failed on {camera.topic}: {error}")
            return None
        t_segmented = time.perf_counter()

        products = self._render(camera, msg.header, frame, order, result, needs, config,
                                small_ids)
        t_rendered = time.perf_counter()
        # Image outputs first: the timings published after them include publishing them.
        for output in wanted:
            if TIMINGS not in output.needs:
                self._publish(camera, output, products)
        t_published = time.perf_counter()

        stamp = _stamp_seconds(msg.header.stamp)
        now = self.get_clock().now().nanoseconds * 1e-9
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
        self._window.frame_done(node_latency_ms)
        if any(TIMINGS in output.needs for output in wanted):
            products.counters = {"drops": self._slots.drops(camera.index),
                                 "input_errors": camera.input_errors,
                                 "dds_lost": camera.dds_lost.lost}
            for output in wanted:
                if TIMINGS in output.needs:
                    self._publish(camera, output, products)
        return products.timings

    def _render(self, camera: Camera, header: Any, frame: np.ndarray, order: str, result: Any,
                needs: frozenset[str], config: SegmentConfig, small_ids: tuple[int, ...]
                ) -> FrameProducts:
        """Small objects, colours and overlay, as far as ``needs`` asks for them."""
        labels = result.labels
        # The engine's labels at the network's resolution, when it hands them back (a
        # segmenter passed in by a caller may not): small objects are searched there and the
        # colours computed there, both without resizing the frame-size labels back down.
        network_labels = getattr(result, "network_labels", None)
        products = FrameProducts(
            header=header, labels=labels, confidence=result.confidence,
            small_object_classes=tuple(self._class_names[i] for i in small_ids),
            source=f"{self.get_name()}: {camera.topic}", camera_topic=camera.topic,
        )
        if OBJECTS in needs:
            products.objects = find_small_objects_at(
                labels, small_ids, config.small_object_min_area, self._segmenter.network_size,
                confidence=result.confidence, class_names=self._class_names,
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
                self._class_names, config.overlay_opacity, color=products.color,
                out=camera.buffer("overlay", (*labels.shape, 3)),
            )
        return products

    @staticmethod
    def _publish(camera: Camera, output: Output, products: FrameProducts) -> None:
        msg = output.build(products)
        if msg is not None:
            camera.publishers[output.name].publish(msg)

    # --- /diagnostics ---------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        config = self._config
        stats = self._window.close()
        p99 = stats.latency_p99_ms
        if stats.engine_errors:
            level = DiagnosticStatus.ERROR
            message = f"engine failed: {stats.last_engine_error}"
        elif self.random_weights:
            level = DiagnosticStatus.WARN
            message = "random weights: no weights, onnx or engine_path set; outputs are meaningless"
        elif stats.latency_samples and p99 > config.latency_budget_ms:
            level = DiagnosticStatus.WARN
            message = f"p99 latency {p99:.1f} ms above budget {config.latency_budget_ms:.1f} ms"
        elif stats.input_errors:
            level = DiagnosticStatus.WARN
            message = f"{stats.input_errors} malformed input frames"
        elif stats.frames == 0:
            level, message = DiagnosticStatus.OK, "waiting for frames"
        else:
            level, message = DiagnosticStatus.OK, "segmenting"
        values = {
            "model": self._model_source,
            "engine": self.engine_name,
            "precision": self.precision,
            "cameras": str(len(self._cameras)),
            "rate_hz": f"{stats.rate_hz:.2f}",
            "latency_p50_ms": f"{stats.latency_p50_ms:.2f}",
            "latency_p99_ms": f"{p99:.2f}",
            "latency_budget_ms": f"{config.latency_budget_ms:.1f}",
            "drops": str(self._slots.total_drops()),
            "input_errors": str(sum(c.input_errors for c in self._cameras)),
            "dds_lost": str(sum(c.dds_lost.lost for c in self._cameras)),
            "engine_errors": str(stats.engine_errors_total),
            "frames": str(sum(c.frames for c in self._cameras)),
        }
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: segmentation",
            message=message,
            hardware_id=self.engine_name,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array_msg = DiagnosticArray(status=[status])
        array_msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array_msg)


def build_parser() -> argparse.ArgumentParser:
    """`segment_node --help`: what the node does and every parameter with its default."""

    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    return argparse.ArgumentParser(
        prog=NODE_NAME,
        formatter_class=Formatter,
        description=(
            "Semantic segmentation of camera streams (BiSeSTDC) as a ROS 2 node. Parameters are "
            "ROS parameters, given after --ros-args:\n"
            "  segment_node --ros-args --params-file config/segment.yaml "
            "-p weights:=/models/bisestdc.pt"
        ),
        epilog="parameters:\n" + parameters_help(),
    )


class _ShutdownRequested(BaseException):
    """A shutdown signal arrived while the node was still starting (engine being built)."""


class _ShutdownSignals:
    """SIGINT/SIGTERM handling: raise during start-up, only set a flag once running.

    rclpy's own handlers shut the context down at the first signal, while the worker may still
    publish; here the main loop notices the flag and shuts down in order.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.running = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        already = self.requested.is_set()
        self.requested.set()
        if not self.running and not already:
            raise _ShutdownRequested(signal.Signals(signum).name)


def main(args: list[str] | None = None) -> int:
    args = sys.argv if args is None else args
    build_parser().parse_args(remove_ros_args(args)[1:])  # --help exits here
    signals = _ShutdownSignals()
    node = None
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        node = SegmentNode()
        signals.running = True
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not signals.requested.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
        node.get_logger().info("shutting down")
    except (StartupError, ParameterException) as error:
        # Bad parameters or model files: say why and exit non-zero (launch shows the message).
        get_logger(NODE_NAME).fatal(f"cannot start: {error}")
        return 2
    except (_ShutdownRequested, ExternalShutdownException):
        pass
    finally:
        signals.running = True  # from here a signal only sets the flag: clean-up runs to the end
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
