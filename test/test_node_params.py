"""segment_node's parameter rules, topic layout and latest-frame-wins hand-over (no engine)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from bisestdc_core.classes import CITYSCAPES
from bisestdc_ros.node.config import (
    DEFAULTS,
    DYNAMIC,
    FLOAT_PARAMETERS,
    PARAMETERS,
    ConfigError,
    input_topic,
    output_topics,
    parameters_help,
    validate,
)
from bisestdc_ros.node.frame_slots import LatestFrameSlots

CONFIG = Path(__file__).resolve().parents[1] / "config" / "segment.yaml"


def test_defaults_are_valid():
    config = validate({}, CITYSCAPES.names)
    assert config.engine == "auto"
    assert config.network_size is None
    assert config.image_topics == ("camera/image_raw",)
    assert config.small_object_classes is None  # the engine's class set decides
    assert config.enabled_outputs == {"labels", "color", "overlay", "latency", "detections"}


def test_every_parameter_has_a_description():
    assert all(p.description for p in PARAMETERS)
    assert len({p.name for p in PARAMETERS}) == len(PARAMETERS)
    assert {"overlay_opacity", "publish_overlay", "small_object_classes"} <= DYNAMIC
    assert "engine" not in DYNAMIC and "image_topics" not in DYNAMIC


def test_config_file_matches_the_declared_parameters():
    params = yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"]
    # small_object_classes is left to the model's class set, so the file fits any class set.
    assert set(params) == set(DEFAULTS) - {"small_object_classes"}
    for name, value in params.items():
        assert type(value) is type(DEFAULTS[name]), name
    config = validate(params, CITYSCAPES.names)
    assert config.small_object_classes is None
    assert config.image_topics == ("camera/image_raw",)  # relative: follows the namespace


def test_float_parameters_accept_integers():
    assert FLOAT_PARAMETERS == {"overlay_opacity", "latency_budget_ms", "diagnostics_period"}
    config = validate({"overlay_opacity": 1, "latency_budget_ms": 50, "diagnostics_period": 2})
    assert (config.overlay_opacity, config.latency_budget_ms, config.diagnostics_period) == (
        1.0, 50.0, 2.0)
    assert all(isinstance(v, float) for v in (config.overlay_opacity, config.latency_budget_ms,
                                              config.diagnostics_period))
    with pytest.raises(ConfigError, match="overlay_opacity"):
        validate({"overlay_opacity": "1"})


def test_parameters_help_lists_every_parameter_with_its_default():
    text = parameters_help()
    for spec in PARAMETERS:
        assert f"  {spec.name} (default: " in text, spec.name
    assert "overlay_opacity (default: 0.5; settable at runtime)" in text


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"engine": "tflite"}, "engine must be one of"),
        ({"device": "gpu"}, "device must be"),
        ({"precision": "int4"}, "precision must be one of"),
        ({"network_height": 100, "network_width": 256}, "multiple of 32"),
        ({"network_height": 128}, "both be 0"),
        ({"network_height": -32, "network_width": 64}, ">= 0"),
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 300}, "num_classes"),
        ({"model_name": ""}, "model_name"),
        ({"image_topics": []}, "non-empty"),
        ({"image_topics": ["/cam/image raw"]}, "not a valid topic"),
        ({"image_topics": ["/cam//image"]}, "not a valid topic"),
        ({"image_topics": ["/cam/1image"]}, "not a valid topic"),
        ({"image_topics": ["/a/image", "/a/image"]}, "duplicates"),
        ({"image_topics": ["/a/image_raw", "/a/image_rect"]}, "share a namespace"),
        ({"input_type": "theora"}, "input_type"),
        ({"qos": "best_effort"}, "qos must be"),
        ({"qos_depth": 0}, "qos_depth"),
        ({"publish_overlay": "yes"}, "true or false"),
        ({"overlay_opacity": 1.5}, r"\[0, 1\]"),
        ({"overlay_opacity": -0.1}, r"\[0, 1\]"),
        ({"small_object_classes": ["pole", "unicorn"]}, "unknown classes"),
        ({"small_object_classes": "pole"}, "list of class names"),
        ({"small_object_min_area": 0}, ">= 1"),
        ({"latency_budget_ms": 0.0}, "> 0"),
        ({"diagnostics_period": -1.0}, "> 0"),
        ({"diagnostics_period": 600.0}, "<= 60"),
        ({"not_a_parameter": 1}, "unknown parameters"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(values, reason):
    with pytest.raises(ConfigError, match=reason):
        validate(values, CITYSCAPES.names)


def test_valid_non_defaults():
    config = validate(
        {
            "engine": "onnxruntime", "onnx": "m.onnx", "device": "cuda:1", "precision": "fp16",
            "network_height": 512, "network_width": 1024,
            "image_topics": ["/cam_front/image_raw", "cam_left/image_raw"],
            "input_type": "compressed", "qos": "reliable", "qos_depth": 3,
            "overlay_opacity": 1, "small_object_classes": [""],
        },
        CITYSCAPES.names,
    )
    assert config.network_size == (512, 1024)
    assert config.small_object_classes == ()  # [""] is the YAML spelling of "none"
    assert config.overlay_opacity == 1.0


def test_output_topic_layout():
    assert output_topics("/cam_front/image_raw") == {
        "labels": "/cam_front/segmentation/labels",
        "color": "/cam_front/segmentation/color",
        "overlay": "/cam_front/segmentation/overlay",
        "latency": "/cam_front/segmentation/latency",
        "confidence": "/cam_front/segmentation/confidence",
        "labels/compressed": "/cam_front/segmentation/labels/compressed",
        "detections": "/cam_front/segmentation/small_objects",
    }
    assert output_topics("/robot/cam/image_raw/compressed")["labels"] == (
        "/robot/cam/segmentation/labels"
    )
    assert output_topics("/image_raw")["color"] == "/segmentation/color"
    assert output_topics("image_raw")["color"] == "segmentation/color"
    assert output_topics("cam/image")["overlay"] == "cam/segmentation/overlay"


def test_input_topic_follows_image_transport_naming():
    assert input_topic("/cam/image_raw", "raw") == "/cam/image_raw"
    assert input_topic("/cam/image_raw", "compressed") == "/cam/image_raw/compressed"
    assert input_topic("/cam/image_raw/compressed", "compressed") == "/cam/image_raw/compressed"


def test_slots_keep_only_the_latest_frame_and_count_drops():
    slots = LatestFrameSlots(2)
    assert slots.put(0, "a1") is False
    assert slots.put(0, "a2") is True  # a1 was never processed
    assert slots.put(0, "a3") is True
    assert slots.drops(0) == 2 and slots.drops(1) == 0
    assert slots.pending_count() == 1
    assert slots.take(timeout=0) == (0, "a3")
    assert slots.take(timeout=0) is None


def test_slots_serve_cameras_round_robin():
    slots = LatestFrameSlots(3)
    order = []
    for _ in range(3):
        for camera in range(3):
            slots.put(camera, f"c{camera}")
        order += [slots.take(timeout=0)[0] for _ in range(3)]
    assert order == [0, 1, 2] * 3
    # A camera that always has a frame does not starve the others.
    slots.put(0, "x")
    slots.put(2, "y")
    assert slots.take(timeout=0)[0] == 0
    slots.put(0, "x2")
    assert slots.take(timeout=0)[0] == 2
    assert slots.take(timeout=0)[0] == 0


def test_slots_wake_a_waiting_worker_and_close():
    slots = LatestFrameSlots(1)
    got = []
    worker = threading.Thread(target=lambda: got.append(slots.take(timeout=30)))
    worker.start()
    slots.put(0, "frame")
    worker.join(timeout=30)
    assert got == [(0, "frame")]
    closer = threading.Thread(target=lambda: got.append(slots.take(timeout=30)))
    closer.start()
    slots.close()
    closer.join(timeout=30)
    assert got[-1] is None
    with pytest.raises(ValueError):
        slots.put(0, None)


# ---- the TensorRT parameters ----------------------------------------------------------------

def test_tensorrt_parameters_reach_the_engine_options():
    config = validate({"engine": "tensorrt", "onnx": "m.onnx", "build_only": True,
                       "int8_calibration": "implicit", "workspace_mb": 1024,
                       "timing_cache": "/data/timing.cache", "dla_core": 1, "cuda_graph": True,
                       "zero_copy": "off", "profile_layers": 50})
    options = config.tensorrt_options
    assert config.build_only is True
    assert (options.int8_calibration, options.workspace_mb, options.timing_cache,
            options.dla_core, options.cuda_graph, options.zero_copy, options.profile_layers) == (
        "implicit", 1024, "/data/timing.cache", 1, True, "off", 50)
    defaults = validate({}).tensorrt_options
    assert (defaults.int8_calibration, defaults.dla_core, defaults.cuda_graph,
            defaults.zero_copy, defaults.profile_layers) == ("qdq", -1, False, "auto", 0)


@pytest.mark.parametrize(("values", "reason"), [
    ({"build_only": True}, "build_only builds TensorRT engines: set engine to tensorrt"),
    ({"build_only": "yes"}, "build_only must be true or false"),
    ({"cuda_graph": 1}, "cuda_graph must be true or false"),
    ({"int8_calibration": "entropy"}, "int8_calibration must be one of qdq, implicit"),
    ({"zero_copy": "always"}, "zero_copy must be one of auto, on, off"),
    ({"dla_core": -2}, "dla_core must be -1"),
    ({"workspace_mb": 0}, "workspace_mb must be >= 1"),
    ({"profile_layers": -1}, "profile_layers must be 0"),
    ({"timing_cache": 3}, "timing_cache must be a path"),
])
def test_invalid_tensorrt_parameters_are_refused_with_a_reason(values, reason):
    with pytest.raises(ConfigError, match=reason):
        validate(values)
