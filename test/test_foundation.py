"""The package layout and metadata that colcon and ROS 2 tooling rely on."""

import xml.etree.ElementTree as ET

from conftest import DOMAIN_IDS, REPO_ROOT


def test_package_xml_is_format3_ament_python():
    root = ET.parse(REPO_ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "bisestdc_ros"
    assert root.find("export/build_type").text == "ament_python"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs"} <= exec_deps


def test_layout_folders_exist():
    for name in ["bisestdc_core", "bisestdc_ros", "training", "launch", "config", "test"]:
        assert (REPO_ROOT / name).is_dir(), name
    assert (REPO_ROOT / "resource" / "bisestdc_ros").is_file()


def test_ros_fixture_isolates_domain(ros_env):
    assert ros_env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert int(ros_env["ROS_DOMAIN_ID"]) in DOMAIN_IDS
    assert DOMAIN_IDS and all(1 <= i <= 232 for i in DOMAIN_IDS)  # what Fast DDS accepts


def test_rclpy_context_starts_a_real_node(rclpy_context):
    import rclpy

    node = rclpy.create_node("foundation_probe", context=rclpy_context)
    try:
        assert node.get_name() == "foundation_probe"
    finally:
        node.destroy_node()
