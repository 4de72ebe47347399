"""segment_node end to end over real rclpy / Fast DDS on loopback.

Two layers:
- in-process tests with a stub engine (deterministic labels, fast): topics, headers, outputs,
  malformed inputs, runtime parameter validation, skipping unsubscribed outputs;
- subprocess tests with the real Segmenter on CPU: labels equal Segmenter's direct output for
  the same frame, latency and /diagnostics published, bad inputs mid-stream, refused runtime
  parameter sets, refused start-up parameters.
"""

from __future__ import annotations

import types

import cv2
import numpy as np
import pytest
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import ReliabilityPolicy
from ros_overlay import require_ros_tools
from segment_harness import (
    CONFIG,
    TIMEOUT,
    Probe,
    Spinner,
    engine_available,
    header,
    image_msg,
    kv,
    stamp_key,
    start_node_process,
    stop_node_process,
    wait_until,
)
from sensor_msgs.msg import CompressedImage, Image

from bisestdc_core.classes import CITYSCAPES
from bisestdc_core.stage_timings import StageTimings
from bisestdc_ros.node.errors import StartupError
from bisestdc_ros.node.frame_pipeline import wanted_outputs
from bisestdc_ros.node.outputs import OUTPUTS
from bisestdc_ros.node.segment_node import SegmentNode

POLE = CITYSCAPES.names.index("pole")
CAMERA = "/cam_front/image_raw"
ALL_OUTPUTS = tuple(o.name for o in OUTPUTS if o.available)


class StubSegmenter:
    """Labels = red channel mod 19, confidence = green channel: checkable by hand."""

    engine_name = "stub"
    precision = "fp32"
    class_set = CITYSCAPES
    network_size = (512, 1024)  # larger than the test frames: objects searched at full size

    def __init__(self):
        self.calls = []

    def segment(self, frame, channel_order="rgb", with_confidence=False):
        self.calls.append((frame.shape, channel_order, with_confidence))
        rgb = frame if channel_order == "rgb" else frame[..., ::-1]
        return types.SimpleNamespace(
            labels=(rgb[..., 0] % 19).astype(np.uint8),
            confidence=np.ascontiguousarray(rgb[..., 1]) if with_confidence else None,
            timings=StageTimings(preprocess_ms=0.1, inference_ms=0.2, postprocess_ms=0.3),
        )


def stub_frame(h: int = 48, w: int = 64) -> np.ndarray:
    frame = np.zeros((h, w, 3), np.uint8)
    frame[..., 1] = 200  # confidence 200/255
    frame[10:20, 30:36, 0] = POLE  # one 60 px pole at box (30, 10, 6, 10)
    frame[40:42, 2:4, 0] = POLE  # 4 px: under the default min area (16)
    frame[30:40, 0:20, 0] = 13  # a car
    return frame


def make_node(context, segmenter, **params):
    overrides = [Parameter("image_topics", value=[CAMERA]),
                 Parameter("diagnostics_period", value=0.5)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return SegmentNode(segmenter=segmenter, context=context, parameter_overrides=overrides)


@pytest.fixture
def stub_setup(rclpy_context):
    segmenter = StubSegmenter()
    node = make_node(rclpy_context, segmenter, publish_confidence=True,
                     publish_labels_compressed=True)
    probe = Probe(rclpy_context, CAMERA)
    spinner = Spinner(rclpy_context, node, probe.node,
                      executor=MultiThreadedExecutor(num_threads=2, context=rclpy_context))
    try:
        probe.wait_for_node(ALL_OUTPUTS)
        camera = node.cameras[0]
        wait_until(lambda: all(p.get_subscription_count() > 0
                               for p in camera.publishers.values()), what="probe subscriptions")
        yield node, probe, segmenter
    finally:
        spinner.stop()
        node.stop()
        node.destroy_node()
        probe.node.destroy_node()


@pytest.mark.ros
def test_outputs_headers_and_small_objects_with_stub_engine(stub_setup):
    node, probe, segmenter = stub_setup
    frame = stub_frame()
    got = probe.send_and_wait(image_msg(frame, 1, "cam_front_optical"), ALL_OUTPUTS)
    expected = frame[..., 0] % 19

    labels = got["labels"]
    assert (labels.encoding, labels.height, labels.width) == ("mono8", 48, 64)
    assert labels.header.frame_id == "cam_front_optical"
    assert stamp_key(labels) == (1001, 123_001)
    np.testing.assert_array_equal(np.frombuffer(labels.data, np.uint8).reshape(48, 64), expected)

    color = np.frombuffer(got["color"].data, np.uint8).reshape(48, 64, 3)
    np.testing.assert_array_equal(color, CITYSCAPES.palette_bgr()[expected])
    assert got["overlay"].encoding == "bgr8" and got["overlay"].header.frame_id == (
        "cam_front_optical"
    )
    confidence = np.frombuffer(got["confidence"].data, np.uint8).reshape(48, 64)
    assert (confidence == 200).all()
    png = got["labels/compressed"]
    assert png.format == "mono8; png compressed mono8"
    np.testing.assert_array_equal(
        cv2.imdecode(np.frombuffer(png.data, np.uint8), cv2.IMREAD_UNCHANGED), expected
    )

    latency = got["latency"]
    assert latency.header.frame_id == "cam_front_optical"
    values = kv(latency.status[0])
    for key in ("decode_ms", "preprocess_ms", "inference_ms", "postprocess_ms", "publish_ms",
                "end_to_end_ms", "drops", "input_errors"):
        assert key in values, key
    assert float(values["inference_ms"]) == pytest.approx(0.2)
    assert values["small_objects/pole"] == "1"  # the 4 px blob is under min area
    assert values["small_objects/traffic sign"] == "0"
    # rgb8 input reaches the engine without a colour conversion; confidence was requested.
    assert segmenter.calls[-1] == ((48, 64, 3), "rgb", True)

    diagnostics = wait_until(
        lambda: [m for m in probe.messages("diagnostics")
                 if m.status and kv(m.status[0]).get("frames", "0") != "0"],
        what="/diagnostics after a frame",
    )[-1].status[0]
    values = kv(diagnostics)
    assert values["engine"] == "stub" and values["precision"] == "fp32"
    for key in ("rate_hz", "latency_p50_ms", "latency_p99_ms", "drops", "input_errors"):
        assert key in values


@pytest.mark.ros
def test_malformed_frames_are_counted_and_the_stream_continues(stub_setup):
    node, probe, _ = stub_setup
    camera = node.cameras[0]
    probe.send_and_wait(image_msg(stub_frame(), 1))
    bad = [
        Image(header=header(2), encoding="32FC7", height=4, width=4, step=16, data=bytes(64)),
        Image(header=header(3), encoding="rgb8", height=4, width=4, step=12, data=bytes(20)),
        Image(header=header(4), encoding="rgb8", height=0, width=0, step=0),
    ]
    for count, msg in enumerate(bad, start=1):
        probe.publisher.publish(msg)
        wait_until(lambda c=count: camera.input_errors >= c, what=f"input error {count}")
    got = probe.send_and_wait(image_msg(stub_frame(), 5), ("labels", "latency"))
    assert kv(got["latency"].status[0])["input_errors"] == "3"
    # Nothing was published for the malformed frames.
    assert {stamp_key(m) for m in probe.messages("labels")} == {(1001, 123_001), (1005, 123_005)}
    diagnostics = wait_until(
        lambda: [m for m in probe.messages("diagnostics")
                 if m.status and kv(m.status[0])["input_errors"] == "3"],
        what="/diagnostics counting the input errors",
    )
    assert diagnostics


@pytest.mark.ros
def test_runtime_parameter_changes_are_validated(stub_setup):
    node, _, _ = stub_setup
    result = node.set_parameters([Parameter("overlay_opacity", value=1.5)])[0]
    assert not result.successful and "overlay_opacity" in result.reason
    result = node.set_parameters([Parameter("small_object_classes", value=["unicorn"])])[0]
    assert not result.successful and "unknown classes" in result.reason
    result = node.set_parameters([Parameter("engine", value="torch")])[0]
    assert not result.successful and "read-only" in result.reason
    result = node.set_parameters([Parameter("small_object_min_area", value=1)])[0]
    assert result.successful
    assert node.get_parameter("overlay_opacity").value == 0.5
    result = node.set_parameters([Parameter("overlay_opacity", value=0.25)])[0]
    assert result.successful
    wait_until(lambda: node._config.overlay_opacity == 0.25, what="config update")


@pytest.mark.ros
def test_unsubscribed_outputs_are_not_computed(stub_setup):
    node, probe, segmenter = stub_setup
    camera = node.cameras[0]
    # Detections (where vision_msgs imports) would ask for the confidence map too.
    dropped = [n for n in ("overlay", "confidence", "color", "detections")
               if n in probe.subscriptions]
    for name in dropped:
        probe.node.destroy_subscription(probe.subscriptions.pop(name))
    wait_until(lambda: all(camera.publishers[n].get_subscription_count() == 0 for n in dropped),
               what="the node noticing the unsubscriptions")
    wanted = {o.name for o in wanted_outputs(camera, node._config)}
    assert wanted == {"labels", "latency", "labels/compressed"}
    probe.send_and_wait(image_msg(stub_frame(), 7), ("labels",))
    assert segmenter.calls[-1][2] is False  # no confidence map requested
    assert "overlay" not in camera.buffers


@pytest.mark.ros
def test_compressed_input_and_corrupt_jpeg(rclpy_context):
    node = make_node(rclpy_context, StubSegmenter(), input_type="compressed")
    probe = Probe(rclpy_context, CAMERA, input_type=CompressedImage, name="compressed_probe")
    spinner = Spinner(rclpy_context, node, probe.node)
    try:
        probe.wait_for_node(("labels",))
        wait_until(lambda: node.cameras[0].publishers["labels"].get_subscription_count() > 0)
        probe.publisher.publish(CompressedImage(header=header(1), format="jpeg",
                                                data=b"\xff\xd8\xff\xe0 broken"))
        wait_until(lambda: node.cameras[0].input_errors >= 1, what="corrupt JPEG counted")
        frame = stub_frame()
        ok, png = cv2.imencode(".png", frame[..., ::-1])  # lossless, so labels are exact
        assert ok
        msg = CompressedImage(header=header(2), format="png")
        msg.data = png.tobytes()
        got = probe.send_and_wait(msg, ("labels",))
        np.testing.assert_array_equal(
            np.frombuffer(got["labels"].data, np.uint8).reshape(48, 64), frame[..., 0] % 19
        )
    finally:
        spinner.stop()
        node.stop()
        node.destroy_node()
        probe.node.destroy_node()


@pytest.mark.ros
def test_input_qos_follows_rclpy_qos_overrides(rclpy_context):
    node = make_node(rclpy_context, StubSegmenter(),
                     **{f"qos_overrides.{CAMERA}.subscription.reliability": "reliable",
                        f"qos_overrides.{CAMERA}.subscription.depth": 3})
    try:
        info = wait_until(lambda: node.get_subscriptions_info_by_topic(CAMERA),
                          what="the node's own subscription in the graph")
        # The default is best effort (sensor data); the graph does not report the depth.
        assert info[0].qos_profile.reliability == ReliabilityPolicy.RELIABLE
        # Read-only like every QoS override, and no concern of the node's own validation.
        result = node.set_parameters(
            [Parameter(f"qos_overrides.{CAMERA}.subscription.depth", value=5)])[0]
        assert not result.successful
    finally:
        node.stop()
        node.destroy_node()


@pytest.mark.ros
def test_detections_match_the_labels_and_carry_the_region_confidence(stub_setup):
    require_ros_tools(modules=("vision_msgs",))
    node, probe, segmenter = stub_setup  # the probe subscribes the detections (the table's row)
    for name in ("confidence",):  # the score must not depend on a confidence subscriber
        probe.node.destroy_subscription(probe.subscriptions.pop(name))
    frame = stub_frame()
    frame[10:20, 30:36, 1] = 100  # the pole's own confidence: 100/255
    got = probe.send_and_wait(image_msg(frame, 3, "cam_front_optical"), ("labels", "detections"))
    key = stamp_key(got["labels"])
    message = got["detections"]
    assert message.header.frame_id == "cam_front_optical"
    (detection,) = message.detections  # the 4 px pole is under the minimum area
    assert detection.header.frame_id == "cam_front_optical" and stamp_key(detection) == key
    assert (detection.bbox.center.position.x, detection.bbox.center.position.y) == (33.0, 15.0)
    assert (detection.bbox.size_x, detection.bbox.size_y) == (6.0, 10.0)
    (result,) = detection.results
    assert result.hypothesis.class_id == "pole"
    assert result.hypothesis.score == pytest.approx(100 / 255)
    assert segmenter.calls[-1][2] is True  # confidence computed for the detections


def test_invalid_start_parameters_raise_startup_error(rclpy_context):
    with pytest.raises(StartupError, match="overlay_opacity"):
        make_node(rclpy_context, StubSegmenter(), overlay_opacity=3.0)
    with pytest.raises(StartupError, match="unknown classes"):
        make_node(rclpy_context, StubSegmenter(), small_object_classes=["unicorn"])


# --- the real node process ----------------------------------------------------------------


def node_args(*extra: str) -> list[str]:
    return ["--params-file", str(CONFIG), "-p", f"image_topics:=['{CAMERA}']",
            "-p", "diagnostics_period:=0.5", *extra]


@pytest.mark.ros
def test_invalid_start_parameter_exits_with_a_clear_error(ros_env, tmp_path):
    log = tmp_path / "node.log"
    process = start_node_process(ros_env, node_args("-p", "overlay_opacity:=2.0"), log)
    try:
        code = process.wait(timeout=TIMEOUT)
    finally:
        stop_node_process(process)
    assert code == 2
    assert "overlay_opacity must be in [0, 1]" in log.read_text()


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.skipif(not engine_available(), reason="bisestdc_core.inference is not available")
def test_node_process_matches_segmenter_and_survives_bad_input(rclpy_context, ros_env,
                                                               tmp_path, small_onnx):
    from bisestdc_core.inference import Segmenter
    from bisestdc_core.inference.untrained_network import synthetic_frame

    # The test checkpoint exported (small_onnx), in the node and here: the node starts without
    # torch (the torch engine from weights:= is compared with Segmenter in test_ros_cli's
    # launch test).
    engine = dict(onnx=str(small_onnx), engine="onnxruntime", device="cpu", precision="fp32",
                  network_size=(128, 256))
    log = tmp_path / "node.log"
    process = start_node_process(ros_env, node_args(
        "-p", f"onnx:={small_onnx}", "-p", "engine:=onnxruntime", "-p", "device:=cpu",
        "-p", "network_height:=128", "-p", "network_width:=256",
    ), log)
    probe = Probe(rclpy_context, CAMERA)
    spinner = Spinner(rclpy_context, probe.node)
    try:
        probe.wait_for_node(("labels", "latency"))
        segmenter = Segmenter(**engine)
        frames = [synthetic_frame(120, 200, np.random.default_rng(i)) for i in range(2)]
        for seq, frame in enumerate(frames, start=1):
            got = probe.send_and_wait(image_msg(frame, seq, "cam_front_optical"),
                                      ("labels", "latency", "color", "overlay"))
            labels = got["labels"]
            assert labels.header.frame_id == "cam_front_optical"
            assert stamp_key(labels) == (1000 + seq, 123_000 + seq)
            node_labels = np.frombuffer(labels.data, np.uint8).reshape(120, 200)
            direct = segmenter.segment(frame, channel_order="rgb").labels
            assert len(np.unique(direct)) > 1  # a non-trivial prediction to compare
            np.testing.assert_array_equal(node_labels, direct)
            values = kv(got["latency"].status[0])
            assert float(values["inference_ms"]) > 0 and float(values["end_to_end_ms"]) != 0

        # Malformed frames mid-stream: counted, nothing published, the stream goes on.
        bad = [
            Image(header=header(10), encoding="32FC7", height=4, width=4, step=16,
                  data=bytes(64)),
            Image(header=header(11), encoding="rgb8", height=4, width=4, step=12,
                  data=bytes(20)),
            Image(header=header(12), encoding="rgb8", height=0, width=0, step=0),
        ]
        for count, msg in enumerate(bad, start=1):
            probe.publisher.publish(msg)
            wait_until(lambda c=count: any(
                m.status and int(kv(m.status[0])["input_errors"]) >= c
                for m in probe.messages("diagnostics")), what=f"input error {count}")
        got = probe.send_and_wait(image_msg(frames[0], 13), ("labels",))
        assert got["labels"] is not None and process.poll() is None
        assert not [m for m in probe.messages("labels") if stamp_key(m)[0] in (1010, 1011, 1012)]
        status = wait_until(lambda: [m.status[0] for m in probe.messages("diagnostics")
                                     if m.status and kv(m.status[0])["frames"] != "0"],
                            what="/diagnostics")[-1]
        assert kv(status)["engine"] == "onnxruntime" and kv(status)["precision"] == "fp32"
        assert float(kv(status)["latency_p50_ms"]) > 0

        # A runtime parameter set with an invalid value is refused with the reason.
        client = AsyncParameterClient(probe.node, "segment_node")
        assert client.wait_for_services(timeout_sec=TIMEOUT)
        future = client.set_parameters([Parameter("overlay_opacity", value=2.0)])
        wait_until(future.done, what="set_parameters reply")
        result = future.result().results[0]
        assert not result.successful and "overlay_opacity" in result.reason
        future = client.set_parameters([Parameter("overlay_opacity", value=0.3)])
        wait_until(future.done, what="set_parameters reply")
        assert future.result().results[0].successful
    finally:
        spinner.stop()
        probe.node.destroy_node()
        code = stop_node_process(process)
    assert code == 0, log.read_text()


assert TIMEOUT >= 30  # the harness timeouts are sized for a loaded 2-core machine
