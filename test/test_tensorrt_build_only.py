"""``build_only:=true``: the node builds (or refreshes) the TensorRT engine, logs its path and
exits 0 without subscribing; refused, like any bad parameter, for another engine.

In-process over rclpy with a stand-in Segmenter (the engine build itself is covered with
stand-ins in test_tensorrt_build.py and on GPUs in test_tensorrt_gpu.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rclpy.parameter import Parameter

from bisestdc_core.classes import CITYSCAPES
from bisestdc_ros.node.errors import StartupError
from bisestdc_ros.node.segment_node import SegmentNode


class StandInTensorRTSegmenter:
    """What the node reads of a Segmenter whose TensorRT engine was just built."""

    engine_name = "tensorrt"
    precision = "fp16"
    class_set = CITYSCAPES
    network_size = (64, 128)
    engine_path = Path("/cache/tensorrt/m-64x128-fp16.engine")

    def __init__(self):
        self.frames = 0

    def segment(self, *args, **kwargs):  # pragma: no cover - must never run
        self.frames += 1
        raise AssertionError("build_only must not segment")


def _node(context, segmenter, **params):
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return SegmentNode(segmenter=segmenter, context=context, parameter_overrides=overrides)


def test_build_only_exits_0_after_the_engine_without_subscribing(rclpy_context, capfd):
    segmenter = StandInTensorRTSegmenter()
    with pytest.raises(SystemExit) as caught:
        _node(rclpy_context, segmenter, engine="tensorrt", build_only=True,
              image_topics=["/build_only_cam/image_raw"])
    assert caught.value.code == 0 and segmenter.frames == 0
    err = capfd.readouterr().err
    assert f"build_only: TensorRT engine ready at {segmenter.engine_path}" in err


def test_build_only_needs_engine_tensorrt(rclpy_context):
    with pytest.raises(StartupError, match="build_only builds TensorRT engines: set engine to "
                                           "tensorrt"):
        _node(rclpy_context, StandInTensorRTSegmenter(), engine="auto", build_only=True)
