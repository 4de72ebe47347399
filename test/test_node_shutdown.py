"""Stops that are always clean: SIGINT/SIGTERM at any moment of the console script's life
(imports, engine build, a managed node's configure, segmenting under load) end it within 5 s,
exit 0 and no traceback."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from segment_harness import (
    CONFIG,
    REPO_ROOT,
    TIMEOUT,
    Probe,
    Spinner,
    assert_clean_exit,
    engine_available,
    flooding,
    image_msg,
    start_process,
    wait_for_log,
    wait_until,
)

pytestmark = [pytest.mark.ros,
              pytest.mark.skipif(not engine_available(),
                                 reason="bisestdc_core.inference is not available")]
CONSOLE_SCRIPT = str(REPO_ROOT / ".venv" / "bin" / "segment_node")
CAMERA = "/camera/image_raw"
STOP_WITHIN_S = 5.0
SMALL = ("-p", "network_height:=128", "-p", "network_width:=256", "-p", "device:=cpu")


def command(*ros_args: str, managed: bool = False) -> list[str]:
    flags = ["--managed"] if managed else []
    return [CONSOLE_SCRIPT, *flags, "--ros-args", "--params-file", str(CONFIG), *ros_args]


def signal_and_time(process: subprocess.Popen, signum: int) -> tuple[int, float]:
    """Send ``signum``; the exit code and how long the process took to end (killed after
    TIMEOUT, so a hang fails the check instead of the run)."""
    start = time.monotonic()
    process.send_signal(signum)
    try:
        code = process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=TIMEOUT)
        return -1, TIMEOUT
    return code, time.monotonic() - start


def assert_quick_clean_exit(code: int, took: float, log: str) -> None:
    assert took < STOP_WITHIN_S, f"took {took:.1f} s\n{log}"
    assert_clean_exit(code, log)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_imports(signum, ros_env, tmp_path):
    log = tmp_path / "node.log"
    process = start_process(command("-p", "engine:=onnxruntime"), ros_env, log)
    try:
        time.sleep(0.5)  # the interpreter is importing numpy, OpenCV, rclpy
        code, took = signal_and_time(process, signum)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=TIMEOUT)
    assert_quick_clean_exit(code, took, log.read_text())


def test_sigint_during_the_engine_build(ros_env, tmp_path):
    log = tmp_path / "node.log"
    # Random weights at the default size: the engine build (an ONNX export) takes seconds.
    process = start_process(command("-p", "engine:=onnxruntime"), ros_env, log)
    try:
        wait_for_log(log, "loading the onnxruntime engine", process)
        code, took = signal_and_time(process, signal.SIGINT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=TIMEOUT)
    text = log.read_text()
    assert_quick_clean_exit(code, took, text)
    assert "segmenting" not in text  # it really was still starting


def test_sigint_during_a_managed_configure(rclpy_context, ros_env, tmp_path):
    log = tmp_path / "node.log"
    process = start_process(command("-p", "engine:=onnxruntime", managed=True), ros_env, log)
    import rclpy

    client_node = rclpy.create_node("configure_client", context=rclpy_context)
    spinner = Spinner(rclpy_context, client_node)
    try:
        client = client_node.create_client(ChangeState, "/segment_node/change_state")
        assert client.wait_for_service(timeout_sec=TIMEOUT)
        client.call_async(ChangeState.Request(transition=Transition(
            id=Transition.TRANSITION_CONFIGURE)))  # no wait: the build takes seconds
        wait_for_log(log, "loading the onnxruntime engine", process)
        code, took = signal_and_time(process, signal.SIGINT)
    finally:
        spinner.stop()
        client_node.destroy_node()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=TIMEOUT)
    text = log.read_text()
    assert_quick_clean_exit(code, took, text)
    assert "configured:" not in text


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_segmenting_under_load(signum, rclpy_context, ros_env, tmp_path,
                                            small_onnx):
    log = tmp_path / "node.log"
    # The test checkpoint exported (small_onnx): a running engine is what matters here, and
    # onnx:= starts without torch.
    process = start_process(command("-p", f"onnx:={small_onnx}", "-p", "engine:=onnxruntime",
                                    *SMALL), ros_env, log)
    probe = Probe(rclpy_context, CAMERA, name="load_probe")
    spinner = Spinner(rclpy_context, probe.node)
    # Large frames, faster than the engine: the worker is always inside a frame.
    frame = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    try:
        probe.wait_for_node(("labels",))
        with flooding(probe, frame):
            wait_until(lambda: len(probe.messages("labels")) >= 2, what="frames under load")
            code, took = signal_and_time(process, signum)
    finally:
        spinner.stop()
        probe.node.destroy_node()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=TIMEOUT)
    text = log.read_text()
    assert_quick_clean_exit(code, took, text)
    assert "shutting down" in text  # the node's own orderly shutdown, not an abort


class BlockingSegmenter:
    """An engine stuck inside a frame until released (a huge frame on a slow device)."""

    engine_name, precision, network_size = "blocking", "fp32", (64, 64)

    def __init__(self):
        from bisestdc_core.classes import CITYSCAPES

        self.class_set = CITYSCAPES
        self.inside = threading.Event()
        self.release = threading.Event()

    def segment(self, frame, channel_order="rgb", with_confidence=False):
        self.inside.set()
        self.release.wait(TIMEOUT)
        raise RuntimeError("released")


def test_the_wait_for_a_busy_worker_is_bounded(rclpy_context):
    from rclpy.parameter import Parameter

    from bisestdc_ros.node.segment_node import SegmentNode

    segmenter = BlockingSegmenter()
    node = SegmentNode(segmenter=segmenter, context=rclpy_context,
                       parameter_overrides=[Parameter("image_topics", value=[CAMERA])])
    try:
        node._on_image(0, image_msg(np.zeros((8, 8, 3), np.uint8), 1))
        assert segmenter.inside.wait(TIMEOUT)
        start = time.monotonic()
        assert node.stop(timeout=0.3) is False  # still inside the frame: given up on
        assert time.monotonic() - start < 2.0
        segmenter.release.set()
        assert node.stop(timeout=TIMEOUT) is True
    finally:
        segmenter.release.set()
        node.stop()
        node.destroy_node()
