"""segment_node with the real Segmenter under bad and unusual input, over real rclpy / Fast DDS.

- valid frames of any size, 1 x 1 included, are segmented and /diagnostics stays free of
  engine errors;
- decompression bombs on a compressed topic are counted as input errors and skipped, and the
  frames after them are segmented;
- frames overwritten in the DDS reader queue before the node took them are counted from the
  publisher's sequence numbers (``dds_lost``), in the node and in its /diagnostics.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from segment_harness import Probe, Spinner, header, image_msg, kv, wait_until
from sensor_msgs.msg import CompressedImage
from test_image_limits import bombs

from bisestdc_core.small_objects import find_small_objects_at
from bisestdc_ros.node.image_limits import MAX_SIDE
from bisestdc_ros.node.segment_node import SegmentNode

CAMERA = "/hardening/image_raw"


@pytest.fixture(scope="module")
def segmenter(test_checkpoint):
    from bisestdc_core.inference import Segmenter

    return Segmenter(weights=test_checkpoint, engine="torch", device="cpu",
                     network_size=(64, 128))


def make_node(context, segmenter, **params) -> SegmentNode:
    overrides = [Parameter("image_topics", value=[CAMERA]),
                 Parameter("diagnostics_period", value=0.5)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return SegmentNode(segmenter=segmenter, context=context, parameter_overrides=overrides)


def close(node: SegmentNode, probe: Probe, spinner: Spinner | None = None) -> None:
    if spinner is not None:
        spinner.stop()
    node.stop()
    node.destroy_node()
    probe.node.destroy_node()


@pytest.mark.ros
def test_frames_of_any_size_are_segmented(rclpy_context, segmenter):
    node = make_node(rclpy_context, segmenter)
    probe = Probe(rclpy_context, CAMERA, name="sizes_probe")
    spinner = Spinner(rclpy_context, node, probe.node)
    try:
        probe.wait_for_node(("labels", "overlay", "latency"))
        for seq, (height, width) in enumerate([(1, 1), (1, 9), (9, 1), (2, 3), (48, 64)]):
            frame = np.random.default_rng(seq).integers(0, 256, (height, width, 3), np.uint8)
            got = probe.send_and_wait(image_msg(frame, seq), ("labels", "overlay", "latency"))
            labels = np.frombuffer(got["labels"].data, np.uint8).reshape(height, width)
            np.testing.assert_array_equal(labels, segmenter.segment(frame, "rgb").labels)
            assert (got["overlay"].height, got["overlay"].width) == (height, width)
        diagnostics = wait_until(
            lambda: [m for m in probe.messages("diagnostics")
                     if m.status and int(kv(m.status[0])["frames"]) >= 5],
            what="/diagnostics after the frames")
        status = diagnostics[-1].status[0]
        assert kv(status)["engine_errors"] == "0"
        assert status.level != status.ERROR, status.message
    finally:
        close(node, probe, spinner)


@pytest.mark.ros
def test_bombs_on_a_compressed_topic_are_counted_and_skipped(rclpy_context, segmenter):
    node = make_node(rclpy_context, segmenter, input_type="compressed")
    probe = Probe(rclpy_context, CAMERA, input_type=CompressedImage, name="bombs_probe")
    spinner = Spinner(rclpy_context, node, probe.node)
    camera = node.cameras[0]
    try:
        probe.wait_for_node(("labels",))
        made = bombs()
        for count, name in enumerate(sorted(made), start=1):
            msg = CompressedImage(header=header(100 + count), format="jpeg")
            msg.data = made[name]
            probe.publisher.publish(msg)
            wait_until(lambda c=count: camera.input_errors >= c, what=f"{name} counted")
        frame = np.zeros((1, 1, 3), np.uint8)
        msg = CompressedImage(header=header(1), format="png")
        msg.data = cv2.imencode(".png", frame)[1].tobytes()
        got = probe.send_and_wait(msg, ("labels",))
        assert (got["labels"].height, got["labels"].width) == (1, 1)
        assert camera.input_errors == len(made)
    finally:
        close(node, probe, spinner)


@pytest.mark.ros
def test_frames_lost_in_the_dds_queue_are_counted(rclpy_context, segmenter):
    """The node's executor is stepped by hand: frames published while it does not take any
    overwrite each other in its one-deep reader queue, and the gap is counted."""
    node = make_node(rclpy_context, segmenter)
    probe = Probe(rclpy_context, CAMERA, name="dds_probe")
    probe_spinner = Spinner(rclpy_context, probe.node)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    camera = node.cameras[0]
    frame = np.zeros((4, 6, 3), np.uint8)

    def take_one() -> None:
        """Step the executor until the worker has segmented one more frame."""
        done = camera.frames
        deadline = time.monotonic() + 30.0
        while camera.frames <= done and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert camera.frames == done + 1

    try:
        probe.wait_for_node(("labels",))
        probe.publisher.publish(image_msg(frame, 1))
        take_one()
        assert camera.dds_lost.lost == 0
        for seq in range(2, 7):  # five frames, none taken until the last has arrived
            probe.publisher.publish(image_msg(frame, seq))
        time.sleep(1.0)
        take_one()
        assert camera.dds_lost.lost == 4
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not any(
                m.status and kv(m.status[0]).get("dds_lost") == "4"
                for m in probe.messages("diagnostics")):
            executor.spin_once(timeout_sec=0.1)  # the node's /diagnostics timer
        assert any(kv(m.status[0]).get("dds_lost") == "4" for m in probe.messages("diagnostics")
                   if m.status)
    finally:
        executor.shutdown(timeout_sec=5.0)
        close(node, probe, probe_spinner)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, MAX_SIDE), (MAX_SIDE, 1)])
def test_segmenter_and_small_object_search_at_the_extremes(segmenter, height, width):
    """What the node does per frame, at the smallest frame and the longest sides allowed."""
    frame = np.random.default_rng(width).integers(0, 256, (height, width, 3), np.uint8)
    result = segmenter.segment(frame, "rgb", with_confidence=True)
    assert result.labels.shape == (height, width)
    ids = [segmenter.class_set.names.index(name) for name in segmenter.class_set.small_objects]
    found = find_small_objects_at(result.labels, ids, 1, segmenter.network_size,
                                  confidence=result.confidence)
    assert sum(o.pixel_count for o in found) <= height * width
