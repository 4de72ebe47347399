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
    rclpy_context, ros_env, tmp_path, test_checkpoint
):
    launch = load_launch_module()
    weights = test_checkpoint
    args = {"image_topics": "/cam_a/image_raw,/cam_b/image_raw", "engine": "torch",
            "weights": str(weights), "large_images": "true"}
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
        assert kv(status)["engine"] == "torch"
        assert kv(status)["cameras"] == "2"
        assert process.poll() is None
    finally:
        spinner.stop()
        probe_a.node.destroy_node()
        probe_b.node.destroy_node()
        code = stop_node_process(process)
    assert code == 0, (tmp_path / "node.log").read_text()
