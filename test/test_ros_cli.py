"""The node started the way users start it: `ros2 launch`, `ros2 run`, `ros2 param`, and the
`vision_msgs/Detection2DArray` output.

Needs `launch_ros`, the `ros2` command and `vision_msgs` (a ROS 2 install or the overlay that
`.ci/run` builds) and this package in an ament prefix (`colcon build`; `colcon test` provides
it); skips with the reason otherwise, and fails instead under BISESTDC_REQUIRE_ROS_TOOLS=1.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_overlay import require_installed_package, require_ros_tools
from segment_harness import (
    CONFIG,
    TIMEOUT,
    Probe,
    Spinner,
    assert_clean_exit,
    engine_available,
    image_msg,
    interrupt_group,
    kv,
    stamp_key,
    start_process,
    wait_for_log,
    wait_until,
)

from bisestdc_core.classes import CITYSCAPES

pytestmark = [
    pytest.mark.ros,
    pytest.mark.slow,
    pytest.mark.skipif(not engine_available(), reason="bisestdc_core.inference is not available"),
]
LAUNCH = ["ros2", "launch", "bisestdc_ros", "segment.launch.py"]
SMALL_NETWORK = {"network_height": 128, "network_width": 256, "device": "cpu",
                 "diagnostics_period": 0.5}


@pytest.fixture
def ros_cli(ros_env):
    """The test's ROS environment, once `ros2`, launch_ros, vision_msgs and the package exist."""
    require_ros_tools(modules=("launch", "launch_ros", "ros2cli", "vision_msgs"),
                      commands=("ros2",))
    require_installed_package()
    env = dict(ros_env)
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    return env


def ros2(env: dict[str, str], *args: str) -> str:
    """Run a `ros2` verb without the daemon (nothing is left running); returns its stdout.

    A refused `param set` still exits 0; its reason is on stderr, which is appended.
    """
    verb, rest = args[0], args[1:]
    # Without the daemon every `ros2 param` verb builds two graph nodes and spins each for the
    # whole --spin-time before looking (ros2cli's DirectNode), so a fixed 4 s cost 8 s a call.
    # Waiting on events instead: --timeout polls the graph until the node appears (up to
    # TIMEOUT s on a loaded machine), and the service calls then wait for the node's parameter
    # services to be discovered (rclpy's wait_for_services); the short spin only seeds
    # discovery.
    command = ["ros2", verb, *rest[:1], "--no-daemon", "--spin-time", "0.5",
               "--timeout", str(int(TIMEOUT)), *rest[1:]]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def frame_of(seed: int, height: int = 120, width: int = 200) -> np.ndarray:
    from bisestdc_core.inference.untrained_network import synthetic_frame

    return synthetic_frame(height, width, np.random.default_rng(seed))


def labels_of(msg) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width)


def statuses(probe: Probe) -> list[DiagnosticStatus]:
    return [m.status[0] for m in probe.messages("diagnostics")
            if m.status and m.status[0].name.endswith("segmentation")]


def assert_launch_ended_cleanly(code: int, log: str) -> None:
    assert_clean_exit(code, log)
    assert "process has finished cleanly" in log, log
    assert "process has died" not in log, log


def test_launch_with_defaults_and_ctrl_c(ros_cli, rclpy_context, tmp_path):
    log = tmp_path / "launch.log"
    process = start_process(LAUNCH, ros_cli, log)
    probe = Probe(rclpy_context, "/camera/image_raw")  # the relative default, root namespace
    rosout: list = []
    probe.node.create_subscription(
        Log, "/rosout", rosout.append,
        QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                   durability=DurabilityPolicy.TRANSIENT_LOCAL))
    spinner = Spinner(rclpy_context, probe.node)
    try:
        probe.wait_for_node(("labels", "color", "latency"))
        frame = frame_of(1, 96, 160)
        got = probe.send_and_wait(image_msg(frame, 1, "cam_optical"),
                                  ("labels", "color", "overlay", "latency"), timeout=2 * TIMEOUT)
        labels = labels_of(got["labels"])
        assert labels.shape == (96, 160) and labels.max() < 19
        assert got["labels"].header.frame_id == "cam_optical"
        assert stamp_key(got["overlay"]) == stamp_key(got["labels"]) == (1001, 123_001)
        color = np.frombuffer(got["color"].data, np.uint8).reshape(96, 160, 3)
        np.testing.assert_array_equal(color, CITYSCAPES.palette_bgr()[labels])
        assert float(kv(got["latency"].status[0])["inference_ms"]) > 0

        # No weights: said on /rosout (the library's warning included) and a WARN diagnostic.
        status = wait_until(lambda: [s for s in statuses(probe) if s.level == s.WARN],
                            what="a WARN on /diagnostics")[-1]
        assert "random weights" in status.message and kv(status)["model"] == "random weights"
        wait_until(lambda: any(m.name == "segment_node.loading" and m.level == Log.WARN
                               and "no weights given" in m.msg for m in rosout),
                   what="the library's warning on /rosout")
        startup = [m.msg for m in rosout if m.msg.startswith("segmenting")]
        assert startup and ("with random weights: engine onnxruntime, precision fp32, network "
                            "512x1024, class set cityscapes (19 classes)") in startup[0]
    finally:
        spinner.stop()
        probe.node.destroy_node()
        code = interrupt_group(process)  # Ctrl-C in the terminal running `ros2 launch`
    assert_launch_ended_cleanly(code, log.read_text())


def test_launch_with_every_argument(ros_cli, rclpy_context, tmp_path, test_checkpoint):
    from bisestdc_core.inference import Segmenter

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": SMALL_NETWORK}}))
    arguments = [f"params_file:={params}", "image_topics:=cam_a/image_raw,cam_b/image_raw",
                 "namespace:=robot1", "engine:=torch", f"weights:={test_checkpoint}",
                 "large_images:=true"]
    log = tmp_path / "launch.log"
    process = start_process([*LAUNCH, *arguments], ros_cli, log)
    probe_a = Probe(rclpy_context, "/robot1/cam_a/image_raw", name="probe_a")
    probe_b = Probe(rclpy_context, "/robot1/cam_b/image_raw", name="probe_b")
    spinner = Spinner(rclpy_context, probe_a.node, probe_b.node)
    try:
        for probe in (probe_a, probe_b):  # both cameras, topics moved by the namespace
            probe.wait_for_node(("labels",))
        segmenter = Segmenter(weights=str(test_checkpoint), engine="torch", device="cpu",
                              network_size=(128, 256))
        for seq, probe in enumerate((probe_a, probe_b), start=1):
            frame = frame_of(seq)
            got = probe.send_and_wait(image_msg(frame, seq, f"cam{seq}"), ("labels",))
            expected = segmenter.segment(frame, channel_order="rgb").labels
            assert len(np.unique(expected)) > 1
            np.testing.assert_array_equal(labels_of(got["labels"]), expected)
        status = wait_until(lambda: statuses(probe_a), what="/diagnostics")[-1]
        assert kv(status)["engine"] == "torch" and kv(status)["cameras"] == "2"
        assert kv(status)["model"] == f"weights {test_checkpoint}"

        # The parameter file applied under the namespace (asked over the parameter service in
        # process: `ros2 param get` itself is checked in the `ros2 run` test below).
        client = AsyncParameterClient(probe_a.node, "/robot1/segment_node")
        assert client.wait_for_services(timeout_sec=TIMEOUT)
        future = client.get_parameters(["network_height"])
        wait_until(future.done, what="get_parameters reply")
        value = future.result().values[0]
        assert (value.type, value.integer_value) == (Parameter.Type.INTEGER.value, 128)
        # large_images: the profile reaches the node under the one variable Fast DDS 3 reads.
        pid = int(re.search(r"segment_node-1\]: process started with pid \[(\d+)\]",
                            log.read_text()).group(1))
        environ = dict(item.split("=", 1) for item in
                       Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
        assert environ["FASTDDS_DEFAULT_PROFILES_FILE"].endswith(
            "config/fastdds_large_images.xml")
        assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in environ
    finally:
        spinner.stop()
        probe_a.node.destroy_node()
        probe_b.node.destroy_node()
        code = interrupt_group(process)
    text = log.read_text()
    assert_launch_ended_cleanly(code, text)
    assert "FASTRTPS" not in text  # no deprecation warning


def expected_detections(labels: np.ndarray, class_ids: list[int], min_area: int) -> set:
    """(class name, x, y, w, h) of every 8-connected region of the classes, from the labels."""
    found = set()
    for class_id in class_ids:
        count, _, stats, _ = cv2.connectedComponentsWithStats(
            (labels == class_id).astype(np.uint8), connectivity=8)
        for x, y, w, h, area in stats[1:count]:
            if area >= min_area:
                found.add((CITYSCAPES.names[class_id], int(x), int(y), int(w), int(h)))
    return found


def test_ros2_run_param_qos_override_and_detections(ros_cli, rclpy_context, tmp_path,
                                                    small_onnx):
    from segment_harness import RELIABLE
    from vision_msgs.msg import Detection2DArray

    # The test checkpoint exported (small_onnx): the subject is `ros2 run`/`ros2 param`, not
    # the checkpoint path (weights:= under `ros2 launch` is above), and a node given onnx:=
    # starts without torch.
    command = ["ros2", "run", "bisestdc_ros", "segment_node", "--ros-args",
               "--params-file", str(CONFIG), "-p", f"onnx:={small_onnx}",
               "-p", "engine:=onnxruntime", "-p", "small_object_min_area:=4",
               "-p", "qos_overrides./camera/image_raw.subscription.reliability:=reliable"]
    for name, value in SMALL_NETWORK.items():
        command += ["-p", f"{name}:={value}"]
    log = tmp_path / "node.log"
    process = start_process(command, ros_cli, log)
    probe = Probe(rclpy_context, "/camera/image_raw")
    detections: list = []
    probe.node.create_subscription(Detection2DArray, "/camera/segmentation/small_objects",
                                   detections.append, RELIABLE)
    spinner = Spinner(rclpy_context, probe.node)
    try:
        probe.wait_for_node(("labels",))
        wait_for_log(log, "segmenting /camera/image_raw", process)
        # rclpy's QoS overrides: the input is reliable instead of the sensor-data default.
        subscriptions = probe.node.get_subscriptions_info_by_topic("/camera/image_raw")
        assert [s.qos_profile.reliability for s in subscriptions] == [
            ReliabilityPolicy.RELIABLE]

        assert ros2(ros_cli, "param", "get", "/segment_node", "overlay_opacity").strip() == (
            "Double value is: 0.5")
        out = ros2(ros_cli, "param", "set", "/segment_node", "overlay_opacity", "1")
        assert "Set parameter successful" in out  # an integer for a float parameter
        out = ros2(ros_cli, "param", "set", "/segment_node", "overlay_opacity", "2")
        assert "overlay_opacity must be in [0, 1]" in out
        dumped = yaml.safe_load(ros2(ros_cli, "param", "dump", "/segment_node"))
        values = dumped["/segment_node"]["ros__parameters"]
        assert values["overlay_opacity"] == 1 and values["network_height"] == 128
        assert values["small_object_classes"] == list(CITYSCAPES.small_objects)

        # Detections of the classes this frame shows, checked against the published labels.
        frame = frame_of(3)
        labels = labels_of(probe.send_and_wait(image_msg(frame, 1), ("labels",))["labels"])
        present = [int(c) for c in np.unique(labels)][:4]
        names = "[" + ", ".join(f"'{CITYSCAPES.names[c]}'" for c in present) + "]"
        out = ros2(ros_cli, "param", "set", "/segment_node", "small_object_classes", names)
        assert "Set parameter successful" in out
        got = probe.send_and_wait(image_msg(frame, 2, "cam_optical"), ("labels",))
        key = stamp_key(got["labels"])
        message = wait_until(lambda: next((d for d in detections if stamp_key(d) == key), None),
                             what="Detection2DArray for the frame")
        labels = labels_of(got["labels"])
        assert message.header.frame_id == "cam_optical"
        boxes = set()
        for detection in message.detections:
            assert stamp_key(detection) == key
            bbox, (result,) = detection.bbox, detection.results
            w, h = bbox.size_x, bbox.size_y
            x, y = bbox.center.position.x - w / 2, bbox.center.position.y - h / 2
            boxes.add((result.hypothesis.class_id, int(x), int(y), int(w), int(h)))
            assert 0.0 < result.hypothesis.score < 1.0  # the region's mean probability
        assert boxes and boxes == expected_detections(labels, present, 4)
        assert len({d.results[0].hypothesis.score for d in message.detections}) > 1
    finally:
        spinner.stop()
        probe.node.destroy_node()
        code = interrupt_group(process)
    assert_clean_exit(code, log.read_text())
