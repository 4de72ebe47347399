"""segment_node as a managed node (``--managed``), driven through the REAL lifecycle services
(<node>/change_state, <node>/get_state) from a client node, over rclpy / Fast DDS on loopback."""

from __future__ import annotations

import time

import pytest
import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from segment_harness import (
    CONFIG,
    TIMEOUT,
    Probe,
    Spinner,
    assert_clean_exit,
    engine_available,
    image_msg,
    stamp_key,
    start_process,
    wait_until,
)
from test_segment_node import StubSegmenter, stub_frame

from bisestdc_ros.node.lifecycle import ManagedSegmentNode

pytestmark = pytest.mark.ros
CAMERA = "/cam_front/image_raw"
NODE = "/segment_node"


class LifecycleClient:
    """change_state / get_state of one node, called as `ros2 lifecycle set/get` would."""

    def __init__(self, node, target: str = NODE):
        self._change = node.create_client(ChangeState, f"{target}/change_state")
        self._get = node.create_client(GetState, f"{target}/get_state")
        for client in (self._change, self._get):
            assert client.wait_for_service(timeout_sec=TIMEOUT), client.srv_name

    def _call(self, client, request):
        future = client.call_async(request)
        wait_until(future.done, what=f"{client.srv_name} reply")
        return future.result()

    def change(self, transition: int) -> bool:
        return self._call(self._change, ChangeState.Request(
            transition=Transition(id=transition))).success

    def state(self) -> int:
        return self._call(self._get, GetState.Request()).current_state.id


def output_topics_in_graph(node, name: str = "segment_node", namespace: str = "/") -> set[str]:
    return {t for t, _ in node.get_publisher_names_and_types_by_node(name, namespace)
            if "segmentation" in t or t == "/diagnostics"}


def test_transitions_gate_the_engine_and_the_outputs(rclpy_context):
    segmenter = StubSegmenter()
    node = ManagedSegmentNode(segmenter=segmenter, context=rclpy_context, parameter_overrides=[
        Parameter("image_topics", value=[CAMERA]), Parameter("diagnostics_period", value=0.2)])
    probe = Probe(rclpy_context, CAMERA, name="lifecycle_probe")
    spinner = Spinner(rclpy_context, node, probe.node,
                      executor=MultiThreadedExecutor(num_threads=2, context=rclpy_context))
    try:
        lifecycle = LifecycleClient(probe.node)
        assert lifecycle.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert lifecycle.change(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == State.PRIMARY_STATE_INACTIVE
        assert node.engine_name == "stub"
        # Configured but inactive: not subscribed and no output (not even /diagnostics).
        time.sleep(1.0)  # long enough for a 0.2 s diagnostics period to have published
        assert output_topics_in_graph(probe.node) == set()
        assert probe.publisher.get_subscription_count() == 0
        assert probe.messages("diagnostics") == [] and probe.messages("labels") == []

        assert lifecycle.change(Transition.TRANSITION_ACTIVATE)
        assert lifecycle.state() == State.PRIMARY_STATE_ACTIVE
        probe.wait_for_node(("labels",))
        got = probe.send_and_wait(image_msg(stub_frame(), 1), ("labels",))
        assert stamp_key(got["labels"]) == (1001, 123_001)
        wait_until(lambda: probe.messages("diagnostics"), what="/diagnostics while active")

        assert lifecycle.change(Transition.TRANSITION_DEACTIVATE)
        assert lifecycle.state() == State.PRIMARY_STATE_INACTIVE
        wait_until(lambda: output_topics_in_graph(probe.node) == set(),
                   what="outputs gone after deactivate")
        calls = len(segmenter.calls)
        probe.publisher.publish(image_msg(stub_frame(), 2))
        time.sleep(1.0)
        assert len(segmenter.calls) == calls
        assert probe.by_stamp("labels", (1002, 123_002)) is None

        # Active again: the same engine, frames flow again.
        assert lifecycle.change(Transition.TRANSITION_ACTIVATE)
        probe.wait_for_node(("labels",))
        probe.send_and_wait(image_msg(stub_frame(), 3), ("labels",))
        assert lifecycle.change(Transition.TRANSITION_DEACTIVATE)
        assert lifecycle.change(Transition.TRANSITION_CLEANUP)
        assert lifecycle.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert node.engine_name == "unknown"  # the engine was let go
        assert lifecycle.change(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert lifecycle.state() == State.PRIMARY_STATE_FINALIZED
    finally:
        spinner.stop()
        node.stop()
        node.destroy_node()
        probe.node.destroy_node()


def test_a_configure_with_bad_parameters_fails_and_stays_unconfigured(rclpy_context):
    node = ManagedSegmentNode(segmenter=StubSegmenter(), context=rclpy_context,
                              parameter_overrides=[Parameter("overlay_opacity", value=3.0)])
    client_node = rclpy.create_node("lifecycle_client", context=rclpy_context)
    spinner = Spinner(rclpy_context, node, client_node)
    try:
        lifecycle = LifecycleClient(client_node)
        assert not lifecycle.change(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == State.PRIMARY_STATE_UNCONFIGURED
    finally:
        spinner.stop()
        node.destroy_node()
        client_node.destroy_node()


@pytest.mark.slow
@pytest.mark.skipif(not engine_available(), reason="bisestdc_core.inference is not available")
def test_managed_flag_starts_an_unconfigured_node(rclpy_context, ros_env, tmp_path,
                                                  small_onnx):
    """``segment_node --managed`` (what the launch file passes): nothing runs until activated."""
    from segment_harness import interrupt_group

    log = tmp_path / "node.log"
    # The test checkpoint exported (small_onnx): configure loads it without torch.
    process = start_process(
        [".venv/bin/segment_node", "--managed", "--ros-args", "--params-file", str(CONFIG),
         "-p", f"image_topics:=['{CAMERA}']", "-p", f"onnx:={small_onnx}",
         "-p", "engine:=onnxruntime", "-p", "device:=cpu",
         "-p", "network_height:=128", "-p", "network_width:=256"], ros_env, log)
    probe = Probe(rclpy_context, CAMERA, name="managed_probe")
    spinner = Spinner(rclpy_context, probe.node)
    try:
        lifecycle = LifecycleClient(probe.node)
        assert lifecycle.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert "loading the onnxruntime engine" not in log.read_text()
        assert lifecycle.change(Transition.TRANSITION_CONFIGURE)
        assert output_topics_in_graph(probe.node) == set()
        assert lifecycle.change(Transition.TRANSITION_ACTIVATE)
        probe.wait_for_node(("labels",))
        got = probe.send_and_wait(image_msg(stub_frame(), 1), ("labels",))
        assert got["labels"].height == 48
    finally:
        spinner.stop()
        probe.node.destroy_node()
        code = interrupt_group(process)
    assert_clean_exit(code, log.read_text())
