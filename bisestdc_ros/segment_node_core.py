"""The segmentation node itself: `SegmentNode`, its phases and its per-frame work.

A thin node over the core: `bisestdc_core.inference.Segmenter` does the network work,
`image_codec` converts messages, `bisestdc_core.small_objects` renders and extracts small objects,
`segment_config` holds the parameter rules and the topic layout, `node_outputs` the table of
outputs (and their message builders), `diagnostics_window` the statistics and status rules
behind /diagnostics. `segment_node` is the command line (kept free of heavy imports so a signal
during start-up is handled), `lifecycle_node` the managed variant.

Phases, so the lifecycle node can run them one transition at a time: declare parameters
(construction), `configure_engine` (validate, build the engine), `open_interfaces`
(subscriptions, publishers, /diagnostics timer, worker), `close_interfaces`, `release_engine`.
The plain node runs the first three at construction.

Threading: subscription callbacks (executor thread) only store the newest message of their camera
in a `LatestFrameSlots`; one worker thread takes pending frames round-robin, decodes, segments and
publishes. A frame replaced before the worker got to it is a drop. Outputs without subscribers
are not computed.

Topics, per input topic: the subscription is created first and its RESOLVED name (namespace and
remappings applied, e.g. ``-r camera/image_raw:=/remapped/img``) gives the outputs: one
``<parent of the resolved topic>/segmentation/<topic>`` per row of `node_outputs.OUTPUTS`
(labels, color, overlay, latency, confidence, labels/compressed, small_objects where vision_msgs
imports), and /diagnostics (DiagnosticArray) every diagnostics_period seconds with one status
for the node and one per camera, named as diagnostic_updater names them. All outputs carry the
input header (stamp and frame_id) unchanged. Input QoS can be overridden with rclpy's standard
``qos_overrides.<input topic>.subscription.<policy>`` parameters.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.exceptions import InvalidParameterValueException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image

from bisestdc_core.small_objects import colorize, draw_overlay, find_small_objects_at, palette_lut
from bisestdc_core.stage_timings import StageTimings
from bisestdc_ros import diagnostics_window as rules
from bisestdc_ros.diagnostics_window import DiagnosticsWindow, WindowStats
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
    validate,
)
from bisestdc_ros.sequence_gaps import SequenceGaps

NODE_NAME = "segment_node"
LOG_THROTTLE_S = 5.0
RANDOM_WEIGHTS = "random weights"
WORKER_JOIN_S = 10.0  # default bound on waiting for the frame in progress (tests, benchmarks)

_PARAMETER_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
    list: ParameterType.PARAMETER_STRING_ARRAY,  # the only list parameters are string lists
}
_LEVELS = {rules.OK: DiagnosticStatus.OK, rules.WARN: DiagnosticStatus.WARN,
           rules.ERROR: DiagnosticStatus.ERROR}
SMALL_OBJECT_CLASSES = "small_object_classes"


class StartupError(RuntimeError):
    """The node cannot start with its parameters (bad value, missing model file, ...)."""


def _stamp_seconds(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def as_double(param: Parameter) -> Parameter:
    """An integer for a double parameter (``ros2 param set ... overlay_opacity 1``, a parameter
    file's ``1``) as the double it means; anything else unchanged (the type check refuses it)."""
    if param.name in FLOAT_PARAMETERS and param.type_ == Parameter.Type.INTEGER:
        return Parameter(param.name, Parameter.Type.DOUBLE, float(param.value))
    return param


class _Settings(NamedTuple):
    """What a frame is processed with; replaced as a whole when parameters change."""

    config: SegmentConfig
    small_ids: tuple[int, ...]


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


class SegmentNode(Node):
    """Segments camera streams; see the module docstring for topics, phases and threading."""

    # False in the lifecycle node: its transitions run the phases.
    STARTS_ACTIVE = True

    def __init__(self, segmenter: Any = None, start_worker: bool = True, **node_kwargs: Any):
        """Declare parameters; unless managed, also build the engine and open the interfaces.

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
        self._reset_state()
        # From here on, library log records (engine choice, random-weights warning) go to /rosout.
        self._log_forwarding = forward_python_logging(self.get_logger())
        try:
            self._declare_parameters()
            if self.STARTS_ACTIVE:
                self.configure_engine(segmenter)
                self.open_interfaces(start_worker)
        except BaseException:  # a node that failed to start must not keep the forwarding
            stop_forwarding(self._log_forwarding)
            raise

    def _reset_state(self) -> None:
        """Nothing configured, nothing open (construction and after `release_engine`)."""
        self._settings: _Settings | None = None
        self._segmenter: Any = None
        self._model_source = ""
        self._class_names: tuple[str, ...] = ()
        self._cameras: list[Camera] = []
        self._slots = LatestFrameSlots(1)
        self._window = DiagnosticsWindow()
        self._diagnostics_pub: Any = None
        self._diagnostics_timer: Any = None
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None

    # --- parameters -----------------------------------------------------------------------

    def _declare_parameters(self) -> None:
        """Every parameter but small_object_classes (its default comes with the engine)."""
        # Runs for runtime sets only (rclpy calls no pre-set callback for declarations).
        self.add_pre_set_parameters_callback(lambda params: [as_double(p) for p in params])
        for spec in PARAMETERS:
            if spec.name != SMALL_OBJECT_CLASSES:
                self._declare(spec.name, spec.default, spec.description, spec.read_only)
        # Registered after the declarations: they run for runtime changes, the QoS-override
        # declarations and small_object_classes' late declaration.
        self.add_on_set_parameters_callback(self._validate_parameter_changes)
        self.add_post_set_parameters_callback(self._apply_parameter_changes)

    def _declare(self, name: str, default: Any, description: str, read_only: bool) -> None:
        descriptor = ParameterDescriptor(
            description=description,
            read_only=read_only,
            type=_PARAMETER_TYPES[type(default)],
        )
        if name in FLOAT_PARAMETERS:
            # Statically DOUBLE, so a runtime integer cannot turn it into an INTEGER parameter
            # (the pre-set callback converts those); an integer given at start-up
            # (``-p overlay_opacity:=1``, a parameter file's ``1``) is converted here, as rclpy
            # offers no hook for overrides and would refuse its type.
            override = self._parameter_overrides.get(name)
            if override is not None:
                self._parameter_overrides[name] = as_double(override)
        self.declare_parameter(name, default, descriptor)

    def _declare_small_object_classes(self, default: list[str]) -> None:
        """Declared after the engine: its default is the engine's class set's own list.

        Declared by type, not by value: an empty default (a class set without small objects)
        would otherwise become a byte array and refuse every list of names. Declared once: a
        lifecycle node configured again keeps the value it had.
        """
        if self.has_parameter(SMALL_OBJECT_CLASSES):
            return
        spec = next(s for s in PARAMETERS if s.name == SMALL_OBJECT_CLASSES)
        descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
        declared = self.declare_parameter(
            SMALL_OBJECT_CLASSES, Parameter.Type.STRING_ARRAY, descriptor
        )
        if declared.type_ == Parameter.Type.NOT_SET:  # no override: the class set's list
            self.set_parameters(
                [Parameter(SMALL_OBJECT_CLASSES, Parameter.Type.STRING_ARRAY, default)]
            )

    def _current_values(self) -> dict[str, Any]:
        """The node's declared parameters with a value (validation fills in the rest)."""
        values = {}
        for spec in PARAMETERS:
            if not self.has_parameter(spec.name):
                continue
            try:
                values[spec.name] = self.get_parameter(spec.name).value
            except ParameterUninitializedException:  # small_object_classes while declared
                pass
        return values

    def _validate_parameter_changes(self, params: list[Parameter]) -> SetParametersResult:
        # Only the node's own parameters; rclpy's (qos_overrides.*, use_sim_time) have their
        # own rules.
        proposed = self._current_values()
        proposed.update({p.name: p.value for p in params if p.name in DEFAULTS})
        try:
            # Before the engine is loaded (lifecycle: unconfigured) no class names to check.
            validate(proposed, self._class_names or None)
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
        if not ours or self._settings is None:  # not configured yet: configure reads them all
            return
        # One assignment: the worker reads config and small-object ids as one snapshot.
        self._settings = self._make_settings(validate(self._current_values(), self._class_names))
        self.get_logger().info(
            "parameters changed: " + ", ".join(f"{p.name}={p.value!r}" for p in ours)
        )

    def _validated(self, class_names: tuple[str, ...] | None = None) -> SegmentConfig:
        try:
            return validate(self._current_values(), class_names)
        except ConfigError as error:
            raise StartupError(f"invalid parameter: {error}") from error

    # --- configure: the engine ------------------------------------------------------------

    def configure_engine(self, segmenter: Any = None) -> None:
        """Validate the parameters and build (or take) the engine.

        Raises:
            StartupError: invalid parameters or an engine that cannot be created.
        """
        config = self._validated()
        self._model_source = self._describe_model(config, injected=segmenter is not None)
        if segmenter is None:
            self.get_logger().info(f"loading the {config.engine} engine with {self._model_source}")
            segmenter = self._build_segmenter(config)
        self._segmenter = segmenter
        class_set = segmenter.class_set
        self._class_names = tuple(class_set.names)
        try:
            self._declare_small_object_classes(list(class_set.small_objects))
        except InvalidParameterValueException as error:  # refused by the on-set callback
            raise StartupError(f"invalid parameter: {error}") from error
        config = self._validated(self._class_names)
        self._palette = np.asarray(class_set.palette_bgr(), np.uint8)
        self._lut = palette_lut(self._palette)
        self._settings = self._make_settings(config)

    def release_engine(self) -> None:
        """Drop the engine (lifecycle cleanup): the memory goes back once nothing refers to it."""
        self.close_interfaces()
        self._reset_state()

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

    @property
    def hardware_id(self) -> str:
        """One hardware_id for every status of the node (the parameter, else its full name)."""
        return self._config.hardware_id or self.get_fully_qualified_name()

    def startup_summary(self) -> str:
        """The start-up line: model source, engine, precision, network size, class set, topics."""
        config = self._config
        height, width = getattr(self._segmenter, "network_size", ("?", "?"))
        class_set = self._segmenter.class_set
        return (
            f"segmenting {', '.join(c.topic for c in self._cameras)} "
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

    # --- activate: subscriptions, publishers, worker --------------------------------------

    def open_interfaces(self, start_worker: bool = True) -> None:
        """Subscribe the cameras, create their publishers and /diagnostics, start the worker.

        Raises:
            StartupError: two cameras whose resolved topics would share outputs.
        """
        config = self._config
        self._slots = LatestFrameSlots(len(config.image_topics))
        self._window = DiagnosticsWindow(num_cameras=len(config.image_topics))
        cameras = []
        try:
            for index, topic in enumerate(config.image_topics):
                cameras.append(self._create_camera(index, topic))
                self._cameras = cameras  # as built, so a failure can close what was opened
            self._check_distinct_outputs(cameras)
        except BaseException:
            self.close_interfaces()
            raise
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(
            config.diagnostics_period, self._publish_diagnostics
        )
        self._stopping = threading.Event()
        # A fresh thread per activation; slots and flag passed in, so a worker left over from
        # an earlier activation never takes this one's frames.
        self._worker = threading.Thread(target=self._work, args=(self._slots, self._stopping),
                                        name="segment_worker", daemon=True)
        if start_worker:
            self._worker.start()
        self.get_logger().info(self.startup_summary())

    def close_interfaces(self, timeout: float = WORKER_JOIN_S) -> bool:
        """Stop the worker, destroy subscriptions, publishers and the timer.

        Returns:
            False when the worker was still busy after ``timeout`` s (then nothing is
            destroyed: it could still publish).
        """
        if not self.stop(timeout):
            return False
        for camera in self._cameras:
            if camera.subscription is not None:
                self.destroy_subscription(camera.subscription)
            for publisher in camera.publishers.values():
                self.destroy_publisher(publisher)
        self._cameras = []
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        return True

    def _create_camera(self, index: int, topic: str) -> Camera:
        config = self._config
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
        # The subscription first: its resolved name (remappings, namespace) places the outputs.
        subscription = self.create_subscription(
            msg_type,
            input_topic(topic, config.input_type),
            lambda msg, info, i=index: self._on_image(i, msg, info),
            in_qos,
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
                camera.publishers[output.name] = self.create_publisher(
                    output.msg_type, names[output.name], out_qos)
        return camera

    @staticmethod
    def _check_distinct_outputs(cameras: list[Camera]) -> None:
        """`validate` checks the names as given; remappings can still make two cameras meet."""
        seen: dict[str, str] = {}
        for camera in cameras:
            labels = camera.publishers["labels"].topic_name
            if labels in seen:
                raise StartupError(
                    f"the inputs {seen[labels]} and {camera.topic} resolve to one namespace, so "
                    f"their outputs would collide on {labels} (remap them apart)"
                )
            seen[labels] = camera.topic

    def _class_ids(self, names: tuple[str, ...] | None) -> tuple[int, ...]:
        return tuple(self._class_names.index(n) for n in names or ())

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
        cameras = self._cameras
        if index >= len(cameras):  # a frame while the cameras are still being opened
            return
        if info is not None:
            cameras[index].dds_lost.observe(info)
        self._slots.put(index, (msg, time.monotonic()))

    def _work(self, slots: LatestFrameSlots, stopping: threading.Event) -> None:
        while not stopping.is_set():
            taken = slots.take(timeout=0.2)
            if taken is None or stopping.is_set():
                continue
            index, (msg, received) = taken
            try:
                self.process_frame(index, msg, received)
            except Exception as error:  # noqa: BLE001 - one bad frame must not end the worker
                # Counted and reported as ERROR on /diagnostics, like an engine failure.
                self._count_engine_error(
                    f"processing a frame of {self._topic_of(index)} failed: "
                    f"{type(error).__name__}: {error}"
                )

    def _topic_of(self, index: int) -> str:
        # The cameras may be gone already (a deactivation while the frame was in progress).
        cameras = self._cameras
        return cameras[index].topic if index < len(cameras) else f"camera {index}"

    def _count_engine_error(self, message: str) -> None:
        """Count a failed frame, report it on /diagnostics (ERROR) and log it (throttled)."""
        self._window.engine_error(message)
        self.get_logger().error(message, throttle_duration_sec=LOG_THROTTLE_S)

    def stop(self, timeout: float = WORKER_JOIN_S) -> bool:
        """Stop the worker thread (before destroy_node), waiting at most ``timeout`` s.

        Returns:
            True when no worker runs any more (False: it is still inside a frame).
        """
        self._stopping.set()
        self._slots.close()
        worker = self._worker
        if worker is not None and worker.is_alive():
            worker.join(timeout=max(timeout, 0.0))
            return not worker.is_alive()
        return True

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
            self._window.input_error(camera.index)
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
        self._window.frame_done(node_latency_ms, camera.index)
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
            source=rules.status_name(self.get_fully_qualified_name(), camera.topic),
            camera_topic=camera.topic, hardware_id=self.hardware_id,
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
        stats = self._window.close()
        array_msg = DiagnosticArray(
            status=[self._node_status(stats)]
            + [self._camera_status(stats, camera) for camera in self._cameras]
        )
        array_msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array_msg)

    def _status(self, task: str, level_message: tuple[int, str],
                values: dict[str, str]) -> DiagnosticStatus:
        level, message = level_message
        return DiagnosticStatus(
            level=_LEVELS[level],
            name=rules.status_name(self.get_fully_qualified_name(), task),
            message=message,
            hardware_id=self.hardware_id,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )

    def _node_status(self, stats: WindowStats) -> DiagnosticStatus:
        config = self._config
        values = {
            "model": self._model_source,
            "engine": self.engine_name,
            "precision": self.precision,
            "cameras": str(len(self._cameras)),
            "rate_hz": f"{stats.rate_hz:.2f}",
            "latency_p50_ms": f"{stats.latency_p50_ms:.2f}",
            "latency_p99_ms": f"{stats.latency_p99_ms:.2f}",
            "latency_budget_ms": f"{config.latency_budget_ms:.1f}",
            "drops": str(self._slots.total_drops()),
            "input_errors": str(sum(c.input_errors for c in self._cameras)),
            "dds_lost": str(sum(c.dds_lost.lost for c in self._cameras)),
            "engine_errors": str(stats.engine_errors_total),
            "frames": str(sum(c.frames for c in self._cameras)),
        }
        level = rules.node_status(stats, self.random_weights, config.latency_budget_ms)
        return self._status(rules.NODE_TASK, level, values)

    def _camera_status(self, stats: WindowStats, camera: Camera) -> DiagnosticStatus:
        values = {
            "topic": camera.topic,
            "outputs": camera.publishers["labels"].topic_name.rpartition("/")[0],
            "frames": str(camera.frames),
            "drops": str(self._slots.drops(camera.index)),
            "input_errors": str(camera.input_errors),
            "dds_lost": str(camera.dds_lost.lost),
        }
        return self._status(camera.topic, rules.camera_status(stats, camera.index), values)
