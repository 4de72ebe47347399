"""The segmentation node itself: `SegmentNode`, its phases and its threads.

A thin node over the core: `bisestdc_core.inference.Segmenter` does the network work (the node
sees it through `bisestdc_core.inference.base.FrameSegmenter`). The node's parts, one job each:
`parameters` declares the ROS parameters and checks changes (`config` holds their rules and the
topic layout), `cameras` one input stream with its subscription and publishers, `frame_pipeline`
one frame's decode, segment, render and publish (`outputs` the table of outputs and their
message builders), `diagnostics` the statistics and status rules behind /diagnostics, and
`ros_logging` forwards library log records to /rosout. `bisestdc_ros.cli.segment_node` is the
command line (kept free of heavy imports so a signal during start-up is handled), `lifecycle`
the managed variant.

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
``<parent of the resolved topic>/segmentation/<topic>`` per row of `outputs.OUTPUTS`
(labels, color, overlay, latency, confidence, labels/compressed, small_objects where vision_msgs
imports), and /diagnostics (DiagnosticArray) every diagnostics_period seconds with one status
for the node and one per camera, named as diagnostic_updater names them. All outputs carry the
input header (stamp and frame_id) unchanged. Input QoS can be overridden with rclpy's standard
``qos_overrides.<input topic>.subscription.<policy>`` parameters.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from bisestdc_core.inference.base import FrameSegmenter
from bisestdc_core.stage_timings import StageTimings
from bisestdc_ros.node import parameters
from bisestdc_ros.node.cameras import Camera, check_distinct_outputs, close_camera, open_camera
from bisestdc_ros.node.config import SegmentConfig, validate
from bisestdc_ros.node.diagnostics import DiagnosticsWindow, NodeFacts, diagnostics_message
from bisestdc_ros.node.errors import StartupError
from bisestdc_ros.node.frame_pipeline import FramePipeline, FrameSettings
from bisestdc_ros.node.frame_slots import LatestFrameSlots
from bisestdc_ros.node.ros_logging import forward_python_logging, stop_forwarding

NODE_NAME = "segment_node"
RANDOM_WEIGHTS = "random weights"
WORKER_JOIN_S = 10.0  # default bound on waiting for the frame in progress (tests, benchmarks)


class SegmentNode(Node):
    """Segments camera streams; see the module docstring for topics, phases and threading."""

    # False in the lifecycle node: its transitions run the phases.
    STARTS_ACTIVE = True

    def __init__(self, segmenter: FrameSegmenter | None = None, start_worker: bool = True,
                 **node_kwargs: Any):
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
            parameters.declare_parameters(self, self._validate_parameter_changes,
                                          self._apply_parameter_changes)
            if self.STARTS_ACTIVE:
                self.configure_engine(segmenter)
                if self._config.build_only:  # the engine is built and loads: nothing to serve
                    self.get_logger().info(f"build_only: TensorRT engine ready at "
                                           f"{getattr(self._segmenter, 'engine_path', None)}")
                    raise SystemExit(0)
                self.open_interfaces(start_worker)
        except BaseException:  # a node that failed to start must not keep the forwarding
            stop_forwarding(self._log_forwarding)
            raise

    def _reset_state(self) -> None:
        """Nothing configured, nothing open (construction and after `release_engine`)."""
        self._settings: FrameSettings | None = None
        self._pipeline: FramePipeline | None = None
        self._model_source = ""
        self._cameras: list[Camera] = []
        self._slots = LatestFrameSlots(1)
        self._window = DiagnosticsWindow()
        self._diagnostics_pub: Any = None
        self._diagnostics_timer: Any = None
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None

    # --- parameters -----------------------------------------------------------------------

    @property
    def _class_names(self) -> tuple[str, ...]:
        """The engine's class names (none before the engine is loaded)."""
        return self._pipeline.class_names if self._pipeline is not None else ()

    def _validate_parameter_changes(self, params: list[Parameter]) -> SetParametersResult:
        return parameters.check_changes(self, params, self._class_names)

    def _apply_parameter_changes(self, params: list[Parameter]) -> None:
        ours = parameters.own_changes(params)
        if not ours or self._settings is None:  # not configured yet: configure reads them all
            return
        # One assignment: the worker reads config and small-object ids as one snapshot.
        self._settings = self._make_settings(
            validate(parameters.current_values(self), self._class_names))
        self.get_logger().info(
            "parameters changed: " + ", ".join(f"{p.name}={p.value!r}" for p in ours)
        )

    def _make_settings(self, config: SegmentConfig) -> FrameSettings:
        return FrameSettings(config, self._pipeline.class_ids(config.small_object_classes))

    @property
    def _config(self) -> SegmentConfig:
        return self._settings.config

    # --- configure: the engine ------------------------------------------------------------

    def configure_engine(self, segmenter: FrameSegmenter | None = None) -> None:
        """Validate the parameters and build (or take) the engine.

        Raises:
            StartupError: invalid parameters or an engine that cannot be created.
        """
        config = parameters.validated(self)
        self._model_source = self._describe_model(config, injected=segmenter is not None)
        if segmenter is None:
            self.get_logger().info(f"loading the {config.engine} engine with {self._model_source}")
            segmenter = self._build_segmenter(config)
        self._pipeline = FramePipeline(segmenter, self.get_fully_qualified_name(),
                                       self.get_logger(), self.get_clock())
        try:
            parameters.declare_small_object_classes(self, list(segmenter.class_set.small_objects))
        except InvalidParameterValueException as error:  # refused by the on-set callback
            raise StartupError(f"invalid parameter: {error}") from error
        self._settings = self._make_settings(parameters.validated(self, self._class_names))

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
    def _segmenter(self) -> FrameSegmenter | None:
        return self._pipeline.segmenter if self._pipeline is not None else None

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
            from bisestdc_core.cli.model_options import segmenter_from_args
        except ImportError as error:
            raise StartupError(f"the inference package is not importable: {error}") from error
        try:
            # The parameters carry the command-line options' names: one builder for both.
            return segmenter_from_args(config, tensorrt_options=config.tensorrt_options)
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
                cameras.append(open_camera(self, index, topic, config, self._on_image))
                self._cameras = cameras  # as built, so a failure can close what was opened
            check_distinct_outputs(cameras)
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
            close_camera(self, camera)
        self._cameras = []
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        return True

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
                self._pipeline.count_engine_error(
                    self._window,
                    f"processing a frame of {self._topic_of(index)} failed: "
                    f"{type(error).__name__}: {error}",
                )

    def _topic_of(self, index: int) -> str:
        # The cameras may be gone already (a deactivation while the frame was in progress).
        cameras = self._cameras
        return cameras[index].topic if index < len(cameras) else f"camera {index}"

    def process_frame(
        self, index: int, msg: Any, received: float | None = None
    ) -> StageTimings | None:
        """Decode, segment and publish one frame of camera ``index`` (see `frame_pipeline`).

        Returns:
            The stage timings (as published on the latency topic), or None when the frame was
            skipped (malformed message or an engine failure).
        """
        received = time.monotonic() if received is None else received
        return self._pipeline.process(self._cameras[index], msg, received, self._settings,
                                      self._window, self._slots)

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

    # --- /diagnostics ---------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        facts = NodeFacts(
            name=self.get_fully_qualified_name(), hardware_id=self.hardware_id,
            model=self._model_source, engine=self.engine_name, precision=self.precision,
            random_weights=self.random_weights,
            latency_budget_ms=self._config.latency_budget_ms,
        )
        array_msg = diagnostics_message(self._window.close(), facts, self._cameras, self._slots)
        array_msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array_msg)
