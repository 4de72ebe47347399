"""launch/segment.launch.py under the real `ros2 launch`: the deployment arguments reach the
node, a node that exits with an error ends the launch with a non-zero exit code, and
managed:=true starts a lifecycle node.

Needs `launch_ros` and the `ros2` command (a ROS 2 install or the overlay that `.ci/run`
builds) and this package in an ament prefix (`colcon build`; `colcon test` provides it); skips
with the reason otherwise, and fails instead under BISESTDC_REQUIRE_ROS_TOOLS=1.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import time
from pathlib import Path

import pytest
import rclpy
import yaml
from ros_overlay import require_installed_package, require_ros_tools
from segment_harness import (
    TIMEOUT,
    Probe,
    Spinner,
    engine_available,
    interrupt_group,
    start_process,
    wait_for_log,
    wait_until,
)
from sensor_msgs.msg import CompressedImage

pytestmark = [
    pytest.mark.ros,
    pytest.mark.slow,
    pytest.mark.skipif(not engine_available(), reason="bisestdc_core.inference is not available"),
]
LAUNCH = ["ros2", "launch", "bisestdc_ros", "segment.launch.py"]
# Small and on the CPU: the node is up in seconds.
SMALL = ["device:=cpu", "network_height:=128", "network_width:=256"]


@pytest.fixture
def launch_env(ros_env):
    """The test's ROS environment, once `ros2 launch`, launch_ros and the package exist."""
    require_ros_tools(modules=("launch", "launch_ros", "ros2cli", "ros2launch"),
                      commands=("ros2",))
    require_installed_package()
    env = dict(ros_env)
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    return env


def node_pid(log: str) -> int:
    return int(re.search(r"segment_node-1\]: process started with pid \[(\d+)\]", log).group(1))


def assert_gone(pid: int) -> None:
    """The node process no longer exists (not even as a zombie of the launch)."""
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10.0,
               what=f"node process {pid} gone")


def ended_cleanly(code: int, log: str) -> None:
    assert code == 0, log
    assert "process has finished cleanly" in log, log
    assert "Caught exception" not in log and "Traceback" not in log, log


def test_deployment_arguments_reach_the_node(launch_env, rclpy_context, tmp_path, small_onnx):
    # onnx:= (the test checkpoint exported, small_onnx) is a deployment argument too, and the
    # node starts without torch.
    arguments = [*SMALL, "engine:=onnxruntime", f"onnx:={small_onnx}", "precision:=fp32",
                 "image_topics:=cam_t/image_raw",
                 "input_type:=compressed", "qos:=reliable", "use_sim_time:=true",
                 "log_level:=debug"]
    log = tmp_path / "launch.log"
    process = start_process([*LAUNCH, *arguments], launch_env, log)
    # input_type:=compressed: the node subscribes to sensor_msgs/CompressedImage there.
    probe = Probe(rclpy_context, "/cam_t/image_raw", input_type=CompressedImage)
    spinner = Spinner(rclpy_context, probe.node)
    try:
        probe.wait_for_node(("labels",))
        # --timeout polls the graph until the node is seen instead of a fixed 4 s --spin-time
        # (see test_ros_cli.ros2); the node is already discovered here anyway.
        dump = subprocess.run(
            ["ros2", "param", "dump", "/segment_node", "--no-daemon", "--spin-time", "0.5",
             "--timeout", str(int(TIMEOUT))],
            env=launch_env, capture_output=True, text=True, timeout=TIMEOUT)
        assert dump.returncode == 0, dump.stdout + dump.stderr
        params = yaml.safe_load(dump.stdout)["/segment_node"]["ros__parameters"]
        assert {name: params[name] for name in (
            "engine", "onnx", "device", "precision", "network_height", "network_width",
            "input_type", "qos", "image_topics", "use_sim_time")} == {
            "engine": "onnxruntime", "onnx": str(small_onnx), "device": "cpu", "precision": "fp32",
            "network_height": 128, "network_width": 256, "input_type": "compressed",
            "qos": "reliable", "image_topics": ["cam_t/image_raw"], "use_sim_time": True}
        # log_level:=debug reached the node's loggers (rcl's own debug messages among them).
        text = wait_for_log(log, "[DEBUG]", process)
        assert re.search(r"\[segment_node-1\] .*\[DEBUG\]", text), text[-2000:]
        assert process.poll() is None
    finally:
        spinner.stop()
        probe.node.destroy_node()
        code = interrupt_group(process)
    text = log.read_text(errors="replace")
    ended_cleanly(code, text)
    assert_gone(node_pid(text))


@pytest.mark.parametrize("arguments, reason", [
    pytest.param(["engine:=tensorrt"], "cannot start", id="tensorrt-missing"),
    pytest.param(["onnx:=/nonexistent/bisestdc.onnx"], "cannot start", id="onnx-missing"),
])
def test_node_error_ends_the_launch_non_zero_and_quickly(launch_env, tmp_path, arguments,
                                                         reason):
    if arguments == ["engine:=tensorrt"] and importlib.util.find_spec("tensorrt"):
        pytest.skip("TensorRT is installed here: engine:=tensorrt would start")
    log = tmp_path / "launch.log"
    started = time.monotonic()
    process = start_process([*LAUNCH, *SMALL, *arguments], launch_env, log)
    try:
        code = process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        interrupt_group(process)
        pytest.fail(f"ros2 launch still running {TIMEOUT:.0f} s after the node failed:\n"
                    f"{log.read_text(errors='replace')}")
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    assert code != 0, text
    assert "[FATAL]" in text and reason in text, text  # the node said why
    assert "process has died" in text and "exit code 2" in text, text
    assert "segment_node-1 exited with code 2" in text, text  # and the launch, why it stopped
    assert_gone(node_pid(text))
    # The node's start-up (imports, the engine attempt) is all the time it takes.
    assert elapsed < TIMEOUT / 2, f"{elapsed:.1f} s\n{text}"


def test_bad_argument_value_fails_the_launch(launch_env, tmp_path):
    log = tmp_path / "launch.log"
    process = start_process([*LAUNCH, "network_height:=tall"], launch_env, log)
    code = process.wait(timeout=TIMEOUT)
    text = log.read_text(errors="replace")
    assert code != 0, text
    assert "network_height: expected an integer, got 'tall'" in text, text
    assert "process started" not in text, text


def _node_has_managed_flag() -> bool:
    """Whether segment_node's --help lists --managed: its parser asked in process (a
    subprocess per parametrization only to read the help cost an interpreter start each)."""
    from bisestdc_ros.cli.segment_node import build_parser

    return "--managed" in build_parser().format_help()


def lifecycle_state(context, node_name: str = "/segment_node") -> str:
    """The lifecycle state label of ``node_name`` (waits for its get_state service)."""
    from lifecycle_msgs.srv import GetState
    from rclpy.executors import SingleThreadedExecutor

    node = rclpy.create_node("lifecycle_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        client = node.create_client(GetState, f"{node_name}/get_state")
        assert client.wait_for_service(timeout_sec=TIMEOUT), f"no {node_name}/get_state"
        future = client.call_async(GetState.Request())
        executor.spin_until_future_complete(future, timeout_sec=TIMEOUT)
        assert future.done(), "get_state did not answer"
        return future.result().current_state.label
    finally:
        executor.shutdown()
        node.destroy_node()


@pytest.mark.parametrize("autostart, state", [("false", "unconfigured"), ("true", "active")])
def test_managed_starts_a_lifecycle_node(launch_env, rclpy_context, tmp_path, autostart, state,
                                        small_onnx):
    if not _node_has_managed_flag():
        pytest.skip("segment_node has no --managed flag yet (segment_node --help): the "
                    "lifecycle node is not implemented in bisestdc_ros/cli/segment_node.py")
    log = tmp_path / "launch.log"
    # The test checkpoint exported (small_onnx): autostart's configure loads it without torch.
    process = start_process([*LAUNCH, *SMALL, f"onnx:={small_onnx}", "managed:=true",
                             f"autostart:={autostart}"], launch_env, log)
    try:
        wait_until(lambda: lifecycle_state(rclpy_context) == state, timeout=2 * TIMEOUT,
                   what=f"segment_node {state}")
        assert process.poll() is None
        pid = node_pid(log.read_text(errors="replace"))
        assert "--managed" in Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    finally:
        code = interrupt_group(process)
    ended_cleanly(code, log.read_text(errors="replace"))
