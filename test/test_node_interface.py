"""The ROS 2 interface a robotics engineer expects, over the real rclpy graph (stub engine):
outputs follow the resolved (remapped, namespaced) input, diagnostics named per node and camera
with one hardware_id, and double parameters that stay doubles when set with an integer."""

from __future__ import annotations

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from segment_harness import RELIABLE, TIMEOUT, Spinner, wait_until
from test_segment_node import StubSegmenter

from bisestdc_ros.node.segment_node import SegmentNode

pytestmark = pytest.mark.ros


def make(context, namespace: str = "/", args: tuple[str, ...] = (), **params) -> SegmentNode:
    overrides = [Parameter("diagnostics_period", value=0.2)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    cli_args = ["--ros-args", *args] if args else None
    return SegmentNode(segmenter=StubSegmenter(), context=context, namespace=namespace,
                       cli_args=cli_args, parameter_overrides=overrides)


def published_topics(node: SegmentNode) -> set[str]:
    return {name for name, _ in node.get_publisher_names_and_types_by_node(
        node.get_name(), node.get_namespace())}


def subscribed_topics(node: SegmentNode) -> set[str]:
    return {name for name, _ in node.get_subscriber_names_and_types_by_node(
        node.get_name(), node.get_namespace())}


def test_a_remapped_input_moves_the_outputs(rclpy_context):
    node = make(rclpy_context, args=("-r", "camera/image_raw:=/remapped/img"))
    try:
        assert node.cameras[0].topic == "/remapped/img"
        topics = wait_until(lambda: (t := published_topics(node)) and
                            "/remapped/segmentation/labels" in t and t,
                            what="the remapped outputs in the graph")
        assert {"/remapped/segmentation/labels", "/remapped/segmentation/color",
                "/remapped/segmentation/latency"} <= topics
        assert not [t for t in topics if t.startswith("/camera/")]
        assert "/remapped/img" in subscribed_topics(node)
    finally:
        node.stop()
        node.destroy_node()


def test_a_namespace_moves_input_and_outputs_together(rclpy_context):
    node = make(rclpy_context, namespace="/front")
    try:
        assert node.cameras[0].topic == "/front/camera/image_raw"
        wait_until(lambda: "/front/camera/segmentation/labels" in published_topics(node),
                   what="the namespaced outputs")
    finally:
        node.stop()
        node.destroy_node()


def test_remapping_two_cameras_onto_one_namespace_is_refused(rclpy_context):
    from bisestdc_ros.node.errors import StartupError

    with pytest.raises(StartupError, match="collide"):
        make(rclpy_context, args=("-r", "/a/image:=/x/one", "-r", "/b/image:=/x/two"),
             image_topics=["/a/image", "/b/image"])


def _statuses(context, nodes) -> dict[str, object]:
    """The latest status of every name seen on /diagnostics."""
    import rclpy

    listener = rclpy.create_node("diagnostics_listener", context=context)
    seen: dict[str, object] = {}
    listener.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: seen.update({s.name: s for s in m.status}), RELIABLE)
    spinner = Spinner(context, listener, *nodes)
    try:
        expected = 2 * len(nodes)  # one node status and one camera status each
        wait_until(lambda: len(seen) >= expected, timeout=TIMEOUT, what="statuses of all nodes")
        return dict(seen)
    finally:
        spinner.stop()
        listener.destroy_node()


def test_diagnostics_are_named_per_node_and_camera_with_one_hardware_id(rclpy_context):
    front = make(rclpy_context, namespace="/front", image_topics=["mycam/image_raw"])
    rear = make(rclpy_context, namespace="/rear", image_topics=["mycam/image_raw"],
                hardware_id="rear_gpu0")
    try:
        statuses = _statuses(rclpy_context, [front, rear])
    finally:
        for node in (front, rear):
            node.stop()
            node.destroy_node()
    assert set(statuses) == {
        "/front/segment_node: segmentation", "/front/segment_node: /front/mycam/image_raw",
        "/rear/segment_node: segmentation", "/rear/segment_node: /rear/mycam/image_raw",
    }
    for name, status in statuses.items():
        expected = "/front/segment_node" if name.startswith("/front/") else "rear_gpu0"
        assert status.hardware_id == expected, name
    camera = {kv.key: kv.value for kv in
              statuses["/front/segment_node: /front/mycam/image_raw"].values}
    assert camera["topic"] == "/front/mycam/image_raw"
    assert camera["outputs"] == "/front/mycam/segmentation"


def test_an_integer_keeps_a_double_parameter_double(rclpy_context):
    node = make(rclpy_context, overlay_opacity=1)  # as `-p overlay_opacity:=1` gives it
    try:
        assert node.get_parameter("overlay_opacity").type_ == Parameter.Type.DOUBLE
        assert node._config.overlay_opacity == 1.0
        result = node.set_parameters([Parameter("latency_budget_ms", value=50)])[0]
        assert result.successful, result.reason
        parameter = node.get_parameter("latency_budget_ms")
        assert parameter.type_ == Parameter.Type.DOUBLE and parameter.value == 50.0
        assert node._config.latency_budget_ms == 50.0
        # Other types are still refused, and so are integers out of range.
        assert not node.set_parameters([Parameter("overlay_opacity", value=True)])[0].successful
        assert not node.set_parameters([Parameter("overlay_opacity", value=2)])[0].successful
    finally:
        node.stop()
        node.destroy_node()


def test_an_integer_through_the_parameter_service_stays_double(rclpy_context):
    """What `ros2 param set /segment_node overlay_opacity 0` sends."""
    import rclpy

    node = make(rclpy_context)
    client_node = rclpy.create_node("param_client", context=rclpy_context)
    spinner = Spinner(rclpy_context, node, client_node)
    try:
        client = AsyncParameterClient(client_node, "/segment_node")
        assert client.wait_for_services(timeout_sec=TIMEOUT)
        future = client.set_parameters([Parameter("overlay_opacity", value=0)])
        wait_until(future.done, what="set_parameters reply")
        assert future.result().results[0].successful, future.result().results[0].reason
        future = client.get_parameters(["overlay_opacity"])
        wait_until(future.done, what="get_parameters reply")
        value = future.result().values[0]
        assert value.type == Parameter.Type.DOUBLE.value and value.double_value == 0.0
        wait_until(lambda: node._config.overlay_opacity == 0.0, what="the change applied")
    finally:
        spinner.stop()
        client_node.destroy_node()
        node.stop()
        node.destroy_node()
