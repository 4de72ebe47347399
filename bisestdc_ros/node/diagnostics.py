"""The statistics behind ``/diagnostics``: counters since the last message, recent latencies.

The worker thread records each frame's outcome; the diagnostics timer (executor thread) closes
the window once per period and gets a consistent snapshot. No rclpy here, like `frame_slots`:
the rules below turn a `WindowStats` into a level and a message, and `diagnostics_message`
turns those, with the node's and its cameras' counters, into the DiagnosticArray the node
publishes (one status for the node, one per camera).

Status names follow diagnostic_updater (``<fully qualified node name>: <task>``) so that a
fleet's diagnostic_aggregator can group them by node and camera.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from bisestdc_ros.node.cameras import Camera
from bisestdc_ros.node.frame_slots import LatestFrameSlots

LATENCY_SAMPLES = 1000  # recent frames kept for the p50/p99 (several windows at camera rates)
# diagnostic_msgs/DiagnosticStatus levels, as plain ints (no message package here).
OK, WARN, ERROR = 0, 1, 2
NODE_TASK = "segmentation"


@dataclass(frozen=True)
class WindowStats:
    """One closed window.

    Attributes:
        elapsed_s: seconds the window lasted.
        frames: frames segmented in the window.
        input_errors: malformed frames in the window.
        engine_errors: failed frames in the window.
        engine_errors_total: failed frames since start.
        last_engine_error: the most recent failure's message ("" if none ever).
        latency_p50_ms, latency_p99_ms: receive -> published over the recent frames (0 if none).
        latency_samples: how many recent frames those percentiles cover.
        camera_frames, camera_input_errors: per camera (by index), in the window.
    """

    elapsed_s: float
    frames: int
    input_errors: int
    engine_errors: int
    engine_errors_total: int
    last_engine_error: str
    latency_p50_ms: float
    latency_p99_ms: float
    latency_samples: int
    camera_frames: tuple[int, ...] = ()
    camera_input_errors: tuple[int, ...] = ()

    @property
    def rate_hz(self) -> float:
        return self.frames / self.elapsed_s


class DiagnosticsWindow:
    """Thread-safe per-window counters plus a sliding window of node latencies."""

    def __init__(self, latency_samples: int = LATENCY_SAMPLES,
                 clock: Callable[[], float] = time.monotonic, num_cameras: int = 1):
        self._clock = clock
        self._num_cameras = num_cameras
        self._camera_frames = [0] * num_cameras
        self._camera_input_errors = [0] * num_cameras
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=latency_samples)
        self._start = clock()
        self._frames = self._input_errors = self._engine_errors = 0
        self._engine_errors_total = 0
        self._last_engine_error = ""

    def frame_done(self, node_latency_ms: float, camera: int = 0) -> None:
        with self._lock:
            self._latencies.append(node_latency_ms)
            self._frames += 1
            self._camera_frames[camera] += 1

    def input_error(self, camera: int = 0) -> None:
        with self._lock:
            self._input_errors += 1
            self._camera_input_errors[camera] += 1

    def engine_error(self, message: str) -> None:
        with self._lock:
            self._engine_errors += 1
            self._engine_errors_total += 1
            self._last_engine_error = message

    def close(self) -> WindowStats:
        """The window's statistics; the next window starts now (latencies carry over)."""
        now = self._clock()
        with self._lock:
            latencies = np.array(self._latencies, np.float64)
            stats = WindowStats(
                elapsed_s=max(now - self._start, 1e-6),
                frames=self._frames,
                input_errors=self._input_errors,
                engine_errors=self._engine_errors,
                engine_errors_total=self._engine_errors_total,
                last_engine_error=self._last_engine_error,
                latency_p50_ms=0.0, latency_p99_ms=0.0, latency_samples=int(latencies.size),
                camera_frames=tuple(self._camera_frames),
                camera_input_errors=tuple(self._camera_input_errors),
            )
            self._start = now
            self._frames = self._input_errors = self._engine_errors = 0
            self._camera_frames = [0] * self._num_cameras
            self._camera_input_errors = [0] * self._num_cameras
        if latencies.size:  # percentiles outside the lock: the worker must not wait on them
            p50, p99 = np.percentile(latencies, [50, 99])
            stats = replace(stats, latency_p50_ms=float(p50), latency_p99_ms=float(p99))
        return stats


def status_name(node_name: str, task: str) -> str:
    """diagnostic_updater's naming: ``/ns/node: task`` (node_name fully qualified)."""
    return f"{node_name}: {task}"


def node_status(stats: WindowStats, random_weights: bool,
                latency_budget_ms: float) -> tuple[int, str]:
    """Level and message of the node's own status; the worst condition wins."""
    if stats.engine_errors:
        return ERROR, f"engine failed: {stats.last_engine_error}"
    if random_weights:
        # Operators must see that the outputs are meaningless, even when all else is fine.
        return WARN, "random weights: no weights, onnx or engine_path set; outputs are meaningless"
    if stats.latency_samples and stats.latency_p99_ms > latency_budget_ms:
        return WARN, (f"p99 latency {stats.latency_p99_ms:.1f} ms above budget "
                      f"{latency_budget_ms:.1f} ms")
    if stats.input_errors:
        return WARN, f"{stats.input_errors} malformed input frames"
    if stats.frames == 0:
        return OK, "waiting for frames"
    return OK, "segmenting"


def camera_status(stats: WindowStats, camera: int) -> tuple[int, str]:
    """Level and message of one camera's status, from its share of the window."""
    frames = stats.camera_frames[camera] if camera < len(stats.camera_frames) else 0
    errors = (stats.camera_input_errors[camera]
              if camera < len(stats.camera_input_errors) else 0)
    if errors:
        return WARN, f"{errors} malformed input frames"
    if frames == 0:
        return OK, "waiting for frames"
    return OK, f"{frames / stats.elapsed_s:.1f} Hz"


# --- the DiagnosticArray ------------------------------------------------------------------------

_LEVELS = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}


@dataclass(frozen=True)
class NodeFacts:
    """What the node's status reports besides the window's statistics.

    Attributes:
        name: the node's fully qualified name (statuses are named after it).
        hardware_id: the hardware_id of every status.
        model, engine, precision: the model source and the engine running it.
        random_weights: no model file was given (the status warns).
        latency_budget_ms: the p99 latency above which the status warns.
    """

    name: str
    hardware_id: str
    model: str
    engine: str
    precision: str
    random_weights: bool
    latency_budget_ms: float


def diagnostics_message(stats: WindowStats, node: NodeFacts, cameras: list[Camera],
                        slots: LatestFrameSlots) -> DiagnosticArray:
    """The /diagnostics message of one closed window (its header stamp left to the node)."""
    return DiagnosticArray(status=[_node_status(stats, node, cameras, slots)]
                           + [_camera_status(stats, node, camera, slots) for camera in cameras])


def _status(node: NodeFacts, task: str, level_message: tuple[int, str],
            values: dict[str, str]) -> DiagnosticStatus:
    level, message = level_message
    return DiagnosticStatus(
        level=_LEVELS[level],
        name=status_name(node.name, task),
        message=message,
        hardware_id=node.hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )


def _node_status(stats: WindowStats, node: NodeFacts, cameras: list[Camera],
                 slots: LatestFrameSlots) -> DiagnosticStatus:
    values = {
        "model": node.model,
        "engine": node.engine,
        "precision": node.precision,
        "cameras": str(len(cameras)),
        "rate_hz": f"{stats.rate_hz:.2f}",
        "latency_p50_ms": f"{stats.latency_p50_ms:.2f}",
        "latency_p99_ms": f"{stats.latency_p99_ms:.2f}",
        "latency_budget_ms": f"{node.latency_budget_ms:.1f}",
        "drops": str(slots.total_drops()),
        "input_errors": str(sum(c.input_errors for c in cameras)),
        "dds_lost": str(sum(c.dds_lost.lost for c in cameras)),
        "engine_errors": str(stats.engine_errors_total),
        "frames": str(sum(c.frames for c in cameras)),
    }
    level = node_status(stats, node.random_weights, node.latency_budget_ms)
    return _status(node, NODE_TASK, level, values)


def _camera_status(stats: WindowStats, node: NodeFacts, camera: Camera,
                   slots: LatestFrameSlots) -> DiagnosticStatus:
    values = {
        "topic": camera.topic,
        "outputs": camera.publishers["labels"].topic_name.rpartition("/")[0],
        "frames": str(camera.frames),
        "drops": str(slots.drops(camera.index)),
        "input_errors": str(camera.input_errors),
        "dds_lost": str(camera.dds_lost.lost),
    }
    return _status(node, camera.topic, camera_status(stats, camera.index), values)
