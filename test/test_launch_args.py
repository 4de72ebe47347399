"""launch/segment.launch.py: the argument -> parameter mapping, and a node started with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml
from segment_harness import (
    CONFIG,
    REPO_ROOT,
    Probe,
    Spinner,
    engine_available,
    image_msg,
    kv,
    start_node_process,
    stop_node_process,
    wait_until,
)

LAUNCH_FILE = REPO_ROOT / "launch" / "segment.launch.py"


def load_launch_module():
    spec = importlib.util.spec_from_file_location("segment_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # must work without `launch` installed
    return module


def test_defaults_use_the_parameter_file_only():
    launch = load_launch_module()
    params_file, overrides = launch.node_parameters({})
    assert Path(params_file).name == "segment.yaml" and Path(params_file).is_file()
    assert overrides == {}
    assert launch.node_environment({}) == {}


def test_arguments_map_to_parameters_and_environment():
    launch = load_launch_module()
    args = {"image_topics": "/cam_a/image_raw, /cam_b/image_raw", "engine": "torch",
            "weights": "/m/w.pt", "engine_path": "", "namespace": "perception",
            "params_file": str(CONFIG), "large_images": "true"}
    params_file, overrides = launch.node_parameters(args)
    assert params_file == str(CONFIG)
    assert overrides == {"image_topics": ["/cam_a/image_raw", "/cam_b/image_raw"],
                         "engine": "torch", "weights": "/m/w.pt"}
    env = launch.node_environment(args)
    profile = Path(env["FASTDDS_DEFAULT_PROFILES_FILE"])
    assert profile.name == "fastdds_large_images.xml" and profile.is_file()
    assert list(env) == ["FASTDDS_DEFAULT_PROFILES_FILE"]  # FASTRTPS_* is deprecated
    assert launch.ros_arguments(args) == [
        "-r", "__node:=segment_node", "-r", "__ns:=perception", "--params-file", str(CONFIG),
        "-p", "image_topics:=['/cam_a/image_raw','/cam_b/image_raw']",
        "-p", "engine:=torch", "-p", "weights:=/m/w.pt",
    ]
    assert launch.parse_topics("['/x/image', '/y/image']") == ["/x/image", "/y/image"]
    with pytest.raises(ValueError):
        launch.node_parameters({"not_an_argument": "1"})
    with pytest.raises(ValueError):
        launch.node_environment({"large_images": "maybe"})


def test_every_argument_is_described_and_sets_a_parameter_of_its_type():
    from bisestdc_core.inference.registry import ENGINE_CHOICES
    from bisestdc_core.model_card import PRECISIONS
    from bisestdc_ros.node.config import DEFAULTS, INPUT_TYPES, QOS_PROFILES

    launch = load_launch_module()
    for name, (default, description) in launch.LAUNCH_ARGUMENTS.items():
        assert description.strip(), name
        # "": keep the parameter file's value; only the launch-only switches have a default.
        assert default == ("false" if name in launch._SWITCHES else ""), name
    mapped = (*launch._STRING_PARAMETERS, *launch._INTEGER_PARAMETERS)
    for name in mapped:
        assert name in launch.LAUNCH_ARGUMENTS and name in DEFAULTS, name
    assert all(isinstance(DEFAULTS[n], str) for n in launch._STRING_PARAMETERS)
    assert all(type(DEFAULTS[n]) is int for n in launch._INTEGER_PARAMETERS)
    # What a deployment changes is all there (use_sim_time is rclpy's own parameter).
    for name in ("onnx", "device", "precision", "input_type", "network_height",
                 "network_width", "use_sim_time", "log_level", "managed", "autostart"):
        assert name in launch.LAUNCH_ARGUMENTS, name
    for name, choices in (("engine", ENGINE_CHOICES), ("precision", PRECISIONS),
                          ("input_type", INPUT_TYPES), ("qos", QOS_PROFILES)):
        for choice in choices:  # the descriptions list the node's choices
            assert choice in launch.LAUNCH_ARGUMENTS[name][1], (name, choice)


def test_deployment_arguments_map_to_typed_parameters_and_the_command_line():
    launch = load_launch_module()
    args = {"onnx": "/m/seg.onnx", "engine": "onnxruntime", "device": "cuda:1",
            "precision": "int8", "input_type": "compressed", "qos": "reliable",
            "network_height": "256", "network_width": " 512", "model_name": "stdc1",
            "num_classes": "11", "use_sim_time": "True", "log_level": "debug",
            "params_file": str(CONFIG)}
    _, overrides = launch.node_parameters(args)
    assert overrides == {"input_type": "compressed", "qos": "reliable", "onnx": "/m/seg.onnx",
                         "engine": "onnxruntime", "device": "cuda:1", "precision": "int8",
                         "model_name": "stdc1", "network_height": 256, "network_width": 512,
                         "num_classes": 11, "use_sim_time": True}
    assert launch.node_ros_arguments(args) == ["--log-level", "debug"]
    assert launch.node_arguments(args) == [] and not launch.is_managed(args)
    assert launch.command_line(args) == [
        "segment_node", "--ros-args", "-r", "__node:=segment_node",
        "--params-file", str(CONFIG),
        "-p", "engine:=onnxruntime", "-p", "onnx:=/m/seg.onnx", "-p", "device:=cuda:1",
        "-p", "precision:=int8", "-p", "model_name:=stdc1", "-p", "input_type:=compressed",
        "-p", "qos:=reliable", "-p", "network_height:=256", "-p", "network_width:=512",
        "-p", "num_classes:=11", "-p", "use_sim_time:=true", "--log-level", "debug",
    ]
    # use_sim_time:=false is an override too (a parameter file may say true).
    assert launch.node_parameters({"use_sim_time": "false"})[1] == {"use_sim_time": False}
    assert launch.node_ros_arguments({"log_level": "segment_node.loading:=WARN"}) == [
        "--log-level", "segment_node.loading:=WARN"]
    assert launch.node_ros_arguments({}) == []
    for name, bad in (("network_height", "tall"), ("num_classes", "1.5"),
                      ("use_sim_time", "sim")):
        with pytest.raises(ValueError, match=name):
            launch.node_parameters({name: bad})
    with pytest.raises(ValueError, match="log_level"):
        launch.node_ros_arguments({"log_level": "verbose"})
    # the TensorRT arguments, typed as the node declares them
    tensorrt = {"build_only": "true", "int8_calibration": "implicit", "workspace_mb": "1024",
                "timing_cache": "/data/t.cache", "dla_core": "0", "cuda_graph": "true",
                "zero_copy": "on", "profile_layers": "25"}
    assert launch.node_parameters(tensorrt)[1] == {
        "build_only": True, "int8_calibration": "implicit", "workspace_mb": 1024,
        "timing_cache": "/data/t.cache", "dla_core": 0, "cuda_graph": True,
        "zero_copy": "on", "profile_layers": 25}
    from bisestdc_ros.node.config import DEFAULTS

    for name, value in launch.node_parameters(tensorrt)[1].items():
        assert type(value) is type(DEFAULTS[name]), name
    for name, bad in (("dla_core", "gpu"), ("build_only", "maybe")):
        with pytest.raises(ValueError, match=name):
            launch.node_parameters({name: bad})
    with pytest.raises(ValueError, match="managed"):
        launch.node_arguments({"managed": "sometimes"})


def test_managed_starts_a_lifecycle_node_left_to_a_manager_unless_autostart():
    launch = load_launch_module()
    assert launch.node_arguments({"managed": "true"}) == ["--managed"]
    assert launch.is_managed({"managed": "true"}) and not launch.autostart({"managed": "true"})
    assert launch.autostart({"managed": "true", "autostart": "true"})
    assert not launch.autostart({"autostart": "true"})  # a plain node is active anyway
    assert launch.command_line({"managed": "true", "params_file": str(CONFIG)}) == [
        "segment_node", "--managed", "--ros-args", "-r", "__node:=segment_node",
        "--params-file", str(CONFIG)]


def _launch_tools():
    from ros_overlay import require_ros_tools

    require_ros_tools(modules=("launch", "launch_ros"))


def _actions(launch, arguments: dict[str, str]):
    """The actions of the launch description's OpaqueFunction for ``arguments``."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchContext

    description = launch.generate_launch_description()
    declared = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    assert [d.name for d in declared] == list(launch.LAUNCH_ARGUMENTS)
    assert all(d.description for d in declared)
    context = LaunchContext()
    for d in declared:
        context.launch_configurations[d.name] = arguments.get(d.name, d.default_value[0].text
                                                              if d.default_value else "")
    (opaque,) = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    return opaque.execute(context), context


def test_launch_description_starts_the_node_and_watches_its_exit():
    _launch_tools()
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch_ros.actions import LifecycleNode, Node

    launch = load_launch_module()
    (handler, node), _ = _actions(launch, {"log_level": "debug", "use_sim_time": "true"})
    assert type(node) is Node
    assert isinstance(handler, RegisterEventHandler)
    assert isinstance(handler.event_handler, OnProcessExit)
    (handler, node), _ = _actions(launch, {"managed": "true", "autostart": "true"})
    assert isinstance(node, LifecycleNode) and node.node_autostart is True
    (handler, node), _ = _actions(launch, {"managed": "true"})
    assert isinstance(node, LifecycleNode) and node.node_autostart is False


def test_node_exit_shuts_the_launch_down_and_an_error_fails_it():
    _launch_tools()
    from types import SimpleNamespace

    from launch.actions import EmitEvent
    from launch.events import Shutdown

    launch = load_launch_module()

    def event(code):
        return SimpleNamespace(returncode=code, action=SimpleNamespace(name="segment_node-1"))

    running = SimpleNamespace(is_shutdown=False)
    with pytest.raises(launch.NodeFailed, match="segment_node-1 exited with code 2"):
        launch._on_node_exit(event(2), running)
    with pytest.raises(launch.NodeFailed, match="killed by signal 9"):
        launch._on_node_exit(event(-9), SimpleNamespace(is_shutdown=True))
    with pytest.raises(launch.NodeFailed, match="killed by signal 2"):  # not sent by launch
        launch._on_node_exit(event(-2), running)
    # Ctrl-C: the SIGINT launch forwards may end a Python node by the signal; that is no error.
    assert launch._on_node_exit(event(-2), SimpleNamespace(is_shutdown=True)) is None
    (action,) = launch._on_node_exit(event(0), running)  # exited by itself: launch ends too
    assert isinstance(action, EmitEvent) and isinstance(action.event, Shutdown)
    assert launch._on_node_exit(event(0), SimpleNamespace(is_shutdown=True)) is None  # Ctrl-C


def test_large_images_profile_is_well_formed():
    import xml.etree.ElementTree as ET

    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(REPO_ROOT / "config" / "fastdds_large_images.xml").getroot()
    participant = root.find("d:profiles/d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    assert participant.find("d:rtps/d:useBuiltinTransports", ns).text == "false"
    shm = [t for t in root.iter("{http://www.eprosima.com}transport_descriptor")
           if t.find("d:type", ns).text == "SHM"][0]
    assert int(shm.find("d:segment_size", ns).text) >= 4 * 1920 * 1080 * 3
    udp = [t for t in root.iter("{http://www.eprosima.com}transport_descriptor")
           if t.find("d:type", ns).text == "UDPv4"][0]
    assert [a.text for a in udp.iter("{http://www.eprosima.com}address")] == ["127.0.0.1"]


def test_config_file_is_a_ros_parameter_file():
    params = yaml.safe_load(CONFIG.read_text())
    assert list(params) == ["/**"]  # applies under any namespace and node name
    assert "ros__parameters" in params["/**"]


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not engine_available(), reason="bisestdc_core.inference is not available")
def test_node_started_with_the_launch_mapping_behaves_as_configured(
    rclpy_context, ros_env, tmp_path, small_onnx
):
    launch = load_launch_module()
    # The test checkpoint exported (small_onnx): the subject is the mapping, and a node given
    # onnx:= starts without torch (weights:= with engine:=torch through `ros2 launch`:
    # test_ros_cli).
    args = {"image_topics": "/cam_a/image_raw,/cam_b/image_raw", "engine": "onnxruntime",
            "onnx": str(small_onnx), "large_images": "true"}
    ros_args = launch.ros_arguments(args) + [
        "-p", "model_name:=stdc1", "-p", "device:=cpu", "-p", "network_height:=128",
        "-p", "network_width:=256", "-p", "diagnostics_period:=0.5",
    ]
    env = {**ros_env, **launch.node_environment(args)}
    process = start_node_process(env, ros_args, tmp_path / "node.log")
    probe_a = Probe(rclpy_context, "/cam_a/image_raw", name="probe_a")
    probe_b = Probe(rclpy_context, "/cam_b/image_raw", name="probe_b")
    spinner = Spinner(rclpy_context, probe_a.node, probe_b.node)
    try:
        for probe in (probe_a, probe_b):
            # The node subscribes to both configured topics and publishes under both namespaces.
            probe.wait_for_node(("labels",))
        frame = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
        got_b = probe_b.send_and_wait(image_msg(frame, 1, "cam_b"), ("labels",))
        assert got_b["labels"].header.frame_id == "cam_b"
        assert (got_b["labels"].height, got_b["labels"].width) == (64, 96)
        status = wait_until(
            lambda: [m.status[0] for m in probe_a.messages("diagnostics") if m.status],
            what="/diagnostics",
        )[-1]
        assert kv(status)["engine"] == "onnxruntime"
        assert kv(status)["cameras"] == "2"
        assert process.poll() is None
    finally:
        spinner.stop()
        probe_a.node.destroy_node()
        probe_b.node.destroy_node()
        code = stop_node_process(process)
    assert code == 0, (tmp_path / "node.log").read_text()
