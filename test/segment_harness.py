"""Helpers for the segment_node tests: a probe node that feeds frames and records the outputs.

Synchronisation is by polling conditions with generous timeouts (discovery and first inference
are slow on a loaded 2-core machine), never by fixed sleeps.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from bisestdc_ros.node.config import output_topics
from bisestdc_ros.node.outputs import OUTPUTS

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "config" / "segment.yaml"
TIMEOUT = 60.0

RELIABLE = QoSProfile(depth=20, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE)


def wait_until(predicate: Callable[[], Any], timeout: float = TIMEOUT, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")


def header(seq: int, frame_id: str = "camera") -> Header:
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = 1000 + seq, 123_000 + seq
    return h


def image_msg(frame_rgb: np.ndarray, seq: int, frame_id: str = "camera") -> Image:
    msg = Image(header=header(seq, frame_id), encoding="rgb8")
    msg.height, msg.width = frame_rgb.shape[:2]
    msg.step = frame_rgb.shape[1] * 3
    msg.data = np.ascontiguousarray(frame_rgb).tobytes()
    return msg


def stamp_key(msg: Any) -> tuple[int, int]:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def kv(status: Any) -> dict[str, str]:
    return {v.key: v.value for v in status.values}


class Probe:
    """A test node publishing to one camera topic and recording every output of that camera."""

    def __init__(self, context: Any, camera_topic: str, input_type: type = Image,
                 name: str = "segment_probe"):
        self.node = rclpy.create_node(name, context=context)
        self.lock = threading.Lock()
        self.received: dict[str, list[Any]] = {}
        topics = output_topics(camera_topic)
        self.subscriptions = {}
        for output in OUTPUTS:
            if output.available:  # detections only where vision_msgs imports
                self._subscribe(output.name, output.msg_type, topics[output.name])
        self._subscribe("diagnostics", DiagnosticArray, "/diagnostics")
        in_topic = camera_topic + ("/compressed" if input_type is CompressedImage else "")
        self.publisher = self.node.create_publisher(input_type, in_topic, RELIABLE)

    def _subscribe(self, name: str, msg_type: type, topic: str) -> None:
        self.received[name] = []

        def store(msg: Any, key: str = name) -> None:
            with self.lock:
                self.received[key].append(msg)

        self.subscriptions[name] = self.node.create_subscription(msg_type, topic, store,
                                                                 RELIABLE)

    def messages(self, name: str) -> list[Any]:
        with self.lock:
            return list(self.received[name])

    def by_stamp(self, name: str, key: tuple[int, int]) -> Any:
        return next((m for m in self.messages(name) if stamp_key(m) == key), None)

    def wait_for_node(self, outputs: tuple[str, ...] = ("labels",)) -> None:
        """Wait until the node subscribes to our input and publishes the given outputs."""
        wait_until(lambda: self.publisher.get_subscription_count() > 0, what="input discovery")
        for name in outputs:
            wait_until(lambda n=name: self.subscriptions[n].get_publisher_count() > 0,
                       what=f"{name} publisher discovery")

    def send_and_wait(self, msg: Any, outputs: tuple[str, ...] = ("labels",),
                      timeout: float = TIMEOUT) -> dict[str, Any]:
        """Publish one frame and wait for all ``outputs`` carrying its stamp.

        The frame is re-sent every few seconds: the input is best effort on the node side and
        the very first frames after discovery can be lost.
        """
        key = stamp_key(msg)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.publisher.publish(msg)
            resend = time.monotonic() + 5.0
            while time.monotonic() < min(resend, deadline):
                found = {n: self.by_stamp(n, key) for n in outputs}
                if all(v is not None for v in found.values()):
                    return found
                time.sleep(0.02)
        raise AssertionError(f"no {outputs} for stamp {key} within {timeout:.0f} s")


@contextlib.contextmanager
def flooding(probe: Probe, frame_rgb: np.ndarray, period_s: float = 0.01) -> Iterator[None]:
    """Publish ``frame_rgb`` on the probe's camera every ``period_s`` while the block runs.

    Faster than the engine, so the node's worker is always inside a frame: what the shutdown
    tests signal the node under.
    """
    stop = threading.Event()

    def flood() -> None:
        seq = 0
        while not stop.wait(period_s):
            seq += 1
            probe.publisher.publish(image_msg(frame_rgb, seq))

    flooder = threading.Thread(target=flood, name="flooder", daemon=True)
    flooder.start()
    try:
        yield
    finally:
        stop.set()
        flooder.join(timeout=10)


class Spinner:
    """Spin nodes in a background executor for the duration of a test."""

    def __init__(self, context: Any, *nodes: Any, executor: Any = None):
        self.executor = executor or SingleThreadedExecutor(context=context)
        for node in nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except rclpy.executors.ExternalShutdownException:
            pass

    def stop(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.thread.join(timeout=10.0)


def start_node_process(ros_env: dict[str, str], ros_args: list[str],
                       log_path: Path) -> subprocess.Popen:
    """Start ``python -m bisestdc_ros.cli.segment_node --ros-args ...`` with the test's env."""
    from bisestdc_ros.node.process import segment_node_command, start_node

    return start_node(segment_node_command(ros_args), log_path, env=ros_env)


def stop_node_process(process: subprocess.Popen, timeout: float = 30.0) -> int:
    """SIGINT, then SIGKILL to the group: the same shutdown the bag tools use."""
    from bisestdc_ros.node.process import stop_node

    return stop_node(process, timeout)


def engine_available() -> bool:
    """Whether bisestdc_core.inference.Segmenter (the real engine) can be imported."""
    try:
        from bisestdc_core.inference import Segmenter  # noqa: F401
    except ImportError:
        return False
    return True


def write_test_checkpoint(path: Path, model_name: str = "stdc1", seed: int = 0,
                          num_classes: int = 19, class_set: str = "cityscapes") -> Path:
    """A deterministic untrained checkpoint whose predictions vary over a frame.

    Random weights with fixed seed; BatchNorm statistics calibrated on synthetic street frames so
    the network does not predict one class everywhere (which would make label checks vacuous).
    """
    import torch

    from bisestdc_core.inference.untrained_network import calibrate_batchnorm, synthetic_frame
    from bisestdc_core.models import build_model, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(model_name, num_classes)
    rng = np.random.default_rng(seed)
    calibrate_batchnorm(model, [synthetic_frame(128, 256, rng) for _ in range(4)])
    save_checkpoint(path, model, model_name, class_set)
    return path


def start_process(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``command`` in its own process group (as a terminal would), output to a file."""
    with open(log_path, "wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=REPO_ROOT)


def interrupt_group(process: subprocess.Popen, timeout: float = 60.0) -> int:
    """Ctrl-C in a terminal: SIGINT to the whole process group, then wait for the leader.

    Returns the exit code; SIGKILLs the group (and fails the caller's check) if it hangs.
    """
    from bisestdc_ros.node.process import stop_node

    return stop_node(process, timeout, group=True)


def wait_for_log(log_path: Path, text: str, process: subprocess.Popen,
                 timeout: float = TIMEOUT) -> str:
    """Wait until ``text`` appears in the log; fail early if the process ends first."""
    def found() -> bool:
        if process.poll() is not None and text not in log_path.read_text(errors="replace"):
            raise AssertionError(f"process exited ({process.returncode}) before logging "
                                 f"{text!r}:\n{log_path.read_text(errors='replace')}")
        return text in log_path.read_text(errors="replace")

    wait_until(found, timeout, what=f"{text!r} in {log_path.name}")
    return log_path.read_text(errors="replace")


def assert_clean_exit(code: int, log: str) -> None:
    """Exit 0, no traceback, no publish on a dead context."""
    assert code == 0, log
    assert "Traceback" not in log, log
    assert "context is invalid" not in log, log
