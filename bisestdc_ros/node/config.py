"""Parameters of `segment_node`: declarations, validation and the topic layout, without rclpy.

Kept apart from the node so the rules can be unit-tested and read in one place; the node only
declares `PARAMETERS`, feeds the values to `validate` and applies the resulting `SegmentConfig`.
Engine names and precisions come from the inference registry (which imports no torch); the
model fields of a `SegmentConfig` carry the names of the tools' model options, so
`bisestdc_core.cli.model_options.segmenter_from_args(config)` builds the node's Segmenter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from bisestdc_core.classes import MAX_CLASSES
from bisestdc_core.inference.registry import ENGINE_CHOICES
from bisestdc_core.inference.tensorrt.options import (
    DEFAULT_WORKSPACE_MB,
    INT8_CALIBRATIONS,
    ZERO_COPY_CHOICES,
    TensorRTOptions,
)
from bisestdc_core.model_card import PRECISIONS
from bisestdc_ros.node.outputs import OUTPUT_PARAMETERS, OUTPUTS

INPUT_TYPES = ("raw", "compressed")
QOS_PROFILES = ("sensor_data", "reliable")
# The network downsamples by 32; other sizes would be padded or fail in the exported engines.
NETWORK_STRIDE = 32
MAX_QOS_DEPTH = 100


class ConfigError(ValueError):
    """A parameter value the node refuses; the message is the reason given to the user."""


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    description: str
    read_only: bool  # True: needs a restart (engine, subscriptions, timers)


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("weights", "", "PyTorch checkpoint (.pt); empty: none", True),
    ParameterSpec("onnx", "", "ONNX model file; empty: none", True),
    ParameterSpec("engine_path", "", "serialized TensorRT engine; empty: none", True),
    ParameterSpec("engine", "auto", f"inference engine, one of {', '.join(ENGINE_CHOICES)}",
                  True),
    ParameterSpec("device", "auto", "auto, cpu, cuda or cuda:N", True),
    ParameterSpec("precision", "fp32", f"one of {', '.join(PRECISIONS)}", True),
    ParameterSpec("network_height", 0,
                  f"network input height, a multiple of {NETWORK_STRIDE}; 0: model default", True),
    ParameterSpec("network_width", 0,
                  f"network input width, a multiple of {NETWORK_STRIDE}; 0: model default", True),
    ParameterSpec("model_name", "bisestdc", "network architecture name (build_model registry)",
                  True),
    # TensorRT only (the other engines ignore them); see bisestdc_core.inference.tensorrt.
    ParameterSpec("build_only", False,
                  "TensorRT: build (or refresh) the engine, log its path and exit 0 without "
                  "subscribing (needs engine tensorrt; unmanaged node only)", True),
    ParameterSpec("int8_calibration", "qdq",
                  "TensorRT int8 scales: qdq builds from an explicitly quantized (QDQ) graph "
                  "(quantized for TensorRT first when only a float model is given); implicit "
                  "runs TensorRT's entropy calibrator (deprecated from TensorRT 10.1)", True),
    ParameterSpec("workspace_mb", DEFAULT_WORKSPACE_MB,
                  "TensorRT builder workspace memory limit in MiB", True),
    ParameterSpec("timing_cache", "",
                  "TensorRT persistent timing cache file, reused by every build; empty: one "
                  "per GPU and TensorRT version in the engine cache", True),
    ParameterSpec("dla_core", -1,
                  "TensorRT: -1 runs on the GPU; N >= 0 builds for DLA core N (Jetson) with GPU "
                  "fallback; refused where the device has no DLA", True),
    ParameterSpec("cuda_graph", False,
                  "TensorRT: replay each frame's work as a CUDA graph (needs cuda-python)",
                  True),
    ParameterSpec("zero_copy", "auto",
                  f"TensorRT host-mapped buffers without copies, one of "
                  f"{', '.join(ZERO_COPY_CHOICES)}; auto: on integrated GPUs (Jetson)", True),
    ParameterSpec("profile_layers", 0,
                  "TensorRT: every N frames log per-layer times and write them to "
                  "<engine>.layers.json; 0: off (profiling slows inference)", True),
    ParameterSpec("num_classes", 19, f"classes the network predicts, 1..{MAX_CLASSES}", True),
    # Relative, so a node namespace or a remapping moves inputs and outputs together.
    ParameterSpec("image_topics", ["camera/image_raw"],
                  "input image topics, one per camera; all share one engine. Outputs go to "
                  "<topic namespace>/segmentation/... (relative names resolve in the node's "
                  "namespace)", True),
    ParameterSpec("input_type", "raw",
                  "raw: sensor_msgs/Image on each topic; compressed: sensor_msgs/CompressedImage "
                  "on <topic>/compressed (image_transport naming)", True),
    ParameterSpec("qos", "sensor_data",
                  "subscription QoS: sensor_data (best effort) or reliable", True),
    ParameterSpec("qos_depth", 1,
                  "subscription history depth; the node keeps only the newest frame anyway", True),
    # publish_*: one per switchable output, from the output table.
    *(ParameterSpec(o.parameter, o.default, o.description, False)
      for o in OUTPUT_PARAMETERS.values()),
    ParameterSpec("overlay_opacity", 0.5, "weight of the class colours in the overlay, 0..1",
                  False),
    # None: the engine's class set decides (the node declares that list as the default).
    ParameterSpec("small_object_classes", None,
                  "class names reported as small objects (default: the class set's small "
                  "objects; [''] for none)", False),
    ParameterSpec("small_object_min_area", 16,
                  "smallest connected region (pixels) reported as a small object", False),
    ParameterSpec("latency_budget_ms", 100.0,
                  "/diagnostics turns WARN when the p99 receive-to-publish latency exceeds it",
                  False),
    ParameterSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", True),
    ParameterSpec("hardware_id", "",
                  "hardware_id of every /diagnostics status of the node; empty: the fully "
                  "qualified node name (stable, and distinct per node in a fleet)", True),
)

DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMETERS}
DYNAMIC: frozenset[str] = frozenset(p.name for p in PARAMETERS if not p.read_only)
# Parameters that take any number: `ros2 param set ... overlay_opacity 1` sends an integer.
FLOAT_PARAMETERS: frozenset[str] = frozenset(
    p.name for p in PARAMETERS if isinstance(p.default, float)
)


@dataclass(frozen=True)
class SegmentConfig:
    weights: str
    onnx: str
    engine_path: str
    engine: str
    device: str
    precision: str
    network_height: int
    network_width: int
    model_name: str
    num_classes: int
    build_only: bool
    int8_calibration: str
    workspace_mb: int
    timing_cache: str
    dla_core: int
    cuda_graph: bool
    zero_copy: str
    profile_layers: int
    image_topics: tuple[str, ...]
    input_type: str
    qos: str
    qos_depth: int
    enabled_outputs: frozenset[str]  # output names switched on (parameter-less ones always)
    overlay_opacity: float
    small_object_classes: tuple[str, ...] | None  # None: the class set's small objects
    small_object_min_area: int
    latency_budget_ms: float
    diagnostics_period: float
    hardware_id: str

    @property
    def tensorrt_options(self) -> TensorRTOptions:
        """The TensorRT engine's options (passed to the Segmenter as ``tensorrt_options``)."""
        return TensorRTOptions(
            workspace_mb=self.workspace_mb, timing_cache=self.timing_cache,
            dla_core=self.dla_core, int8_calibration=self.int8_calibration,
            cuda_graph=self.cuda_graph, zero_copy=self.zero_copy,
            profile_layers=self.profile_layers)

    @property
    def network_size(self) -> tuple[int, int] | None:
        if self.network_height == 0:
            return None
        return (self.network_height, self.network_width)


# ROS topic names: tokens of alphanumerics and underscores, "/"-separated, optional leading "/"
# or "~"; no token starts with a digit, no "//" and no trailing "/" (rcl's validation rules).
_TOPIC = re.compile(r"^(~/?|/)?([A-Za-z_][A-Za-z0-9_]*)(/[A-Za-z_][A-Za-z0-9_]*)*$")


def _one_of(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def input_topic(topic: str, input_type: str) -> str:
    """The topic subscribed: image_transport puts compressed images on <topic>/compressed."""
    if input_type == "compressed" and not topic.endswith("/compressed"):
        return f"{topic}/compressed"
    return topic


def output_topics(topic: str) -> dict[str, str]:
    """Output topics of one camera: siblings of the image topic under ``segmentation/``.

    ``/cam_front/image_raw`` -> ``/cam_front/segmentation/labels``, ``.../color``, ... (one
    per row of `node_outputs.OUTPUTS`, keyed by the output's name).
    A topic without a namespace (``image_raw``, ``/image``) maps to ``segmentation/...`` relative
    (resp. absolute). A trailing ``/compressed`` is ignored, so the raw and compressed inputs of
    one camera give the same outputs. Relative topics stay relative (resolved in the node's
    namespace).
    """
    base = topic[: -len("/compressed")] if topic.endswith("/compressed") else topic
    namespace, _, _ = base.rpartition("/")
    prefix = f"{namespace}/segmentation" if namespace or base.startswith("/") else "segmentation"
    return {output.name: f"{prefix}/{output.topic}" for output in OUTPUTS}


def validate(
    values: Mapping[str, Any],
    class_names: Sequence[str] | None = None,
) -> SegmentConfig:
    """Check a full set of parameter values and return the typed configuration.

    Args:
        values: parameter name -> value (missing names take their defaults).
        class_names: names the engine's class set knows; when given, small_object_classes is
            checked against them.

    Raises:
        ConfigError: with the reason, for the first invalid value found.
    """
    unknown = set(values) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown parameters: {', '.join(sorted(unknown))}")
    v = {**DEFAULTS, **values}

    for name in ("weights", "onnx", "engine_path", "model_name", "hardware_id"):
        if not isinstance(v[name], str):
            raise ConfigError(f"{name} must be a string; got {v[name]!r}")
    if not v["model_name"]:
        raise ConfigError("model_name must not be empty")
    _one_of("engine", v["engine"], ENGINE_CHOICES)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(v["device"])):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N; got {v['device']!r}")
    _one_of("precision", v["precision"], PRECISIONS)

    height, width = v["network_height"], v["network_width"]
    for name, size in (("network_height", height), ("network_width", width)):
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"{name} must be an integer >= 0; got {size!r}")
        if size % NETWORK_STRIDE:
            raise ConfigError(f"{name} must be a multiple of {NETWORK_STRIDE}; got {size}")
    if (height == 0) != (width == 0):
        raise ConfigError("network_height and network_width must both be 0 or both be set")
    if not isinstance(v["num_classes"], int) or not 1 <= v["num_classes"] <= MAX_CLASSES:
        raise ConfigError(f"num_classes must be in 1..{MAX_CLASSES}; got {v['num_classes']!r}")

    _validate_tensorrt(v)

    topics = v["image_topics"]
    if isinstance(topics, str) or not topics:
        raise ConfigError("image_topics must be a non-empty list of topic names")
    for topic in topics:
        if not isinstance(topic, str) or not _TOPIC.match(topic):
            raise ConfigError(f"image_topics: {topic!r} is not a valid topic name")
    _one_of("input_type", v["input_type"], INPUT_TYPES)
    subscribed = [input_topic(t, v["input_type"]) for t in topics]
    if len(set(subscribed)) != len(subscribed):
        raise ConfigError(f"image_topics has duplicates: {list(topics)}")
    namespaces = [output_topics(t)["labels"] for t in topics]
    if len(set(namespaces)) != len(namespaces):
        raise ConfigError(
            "two image_topics share a namespace, so their outputs would collide: "
            f"{list(topics)} (put each camera in its own namespace)"
        )
    _one_of("qos", v["qos"], QOS_PROFILES)
    depth = v["qos_depth"]
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_QOS_DEPTH:
        raise ConfigError(f"qos_depth must be in 1..{MAX_QOS_DEPTH}; got {depth!r}")

    for name in OUTPUT_PARAMETERS:
        if not isinstance(v[name], bool):
            raise ConfigError(f"{name} must be true or false; got {v[name]!r}")
    enabled = frozenset(o.name for o in OUTPUTS if o.parameter is None or v[o.parameter])
    opacity = v["overlay_opacity"]
    if isinstance(opacity, bool) or not isinstance(opacity, int | float) or not (
        0.0 <= opacity <= 1.0
    ):
        raise ConfigError(f"overlay_opacity must be in [0, 1]; got {opacity!r}")

    small = v["small_object_classes"]
    if isinstance(small, str):
        raise ConfigError("small_object_classes must be a list of class names")
    if small is not None:
        # [""] is how a ROS parameter file says "empty list" (a bare [] has no type).
        small = tuple(name for name in small if name != "")
    if small is not None and class_names is not None:
        missing = [name for name in small if name not in class_names]
        if missing:
            raise ConfigError(
                f"small_object_classes: unknown classes {missing}; known: {list(class_names)}"
            )
    area = v["small_object_min_area"]
    if not isinstance(area, int) or isinstance(area, bool) or area < 1:
        raise ConfigError(f"small_object_min_area must be an integer >= 1; got {area!r}")
    for name in ("latency_budget_ms", "diagnostics_period"):
        value = v[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(f"{name} must be > 0; got {value!r}")
    if v["diagnostics_period"] > 60:
        raise ConfigError(f"diagnostics_period must be <= 60 s; got {v['diagnostics_period']}")

    kwargs = {f.name: v[f.name] for f in fields(SegmentConfig) if f.name in v}
    kwargs.update(
        image_topics=tuple(topics),
        enabled_outputs=enabled,
        small_object_classes=small,
        overlay_opacity=float(opacity),
        latency_budget_ms=float(v["latency_budget_ms"]),
        diagnostics_period=float(v["diagnostics_period"]),
    )
    return SegmentConfig(**kwargs)


def _validate_tensorrt(v: Mapping[str, Any]) -> None:
    """The TensorRT parameters: their own rules, and build_only only for engine tensorrt."""
    for name in ("build_only", "cuda_graph"):
        if not isinstance(v[name], bool):
            raise ConfigError(f"{name} must be true or false; got {v[name]!r}")
    _one_of("int8_calibration", v["int8_calibration"], INT8_CALIBRATIONS)
    _one_of("zero_copy", v["zero_copy"], ZERO_COPY_CHOICES)
    try:
        TensorRTOptions(workspace_mb=v["workspace_mb"], timing_cache=v["timing_cache"],
                        dla_core=v["dla_core"], int8_calibration=v["int8_calibration"],
                        cuda_graph=v["cuda_graph"], zero_copy=v["zero_copy"],
                        profile_layers=v["profile_layers"])
    except ValueError as error:
        raise ConfigError(str(error).replace("TensorRT option ", "", 1)) from None
    if v["build_only"] and v["engine"] != "tensorrt":
        raise ConfigError(f"build_only builds TensorRT engines: set engine to tensorrt "
                          f"(got {v['engine']!r})")


def parameters_help() -> str:
    """One line per parameter (default, whether it can change at runtime), for ``--help``."""
    lines = []
    for spec in PARAMETERS:
        default = "the class set's own list" if spec.default is None else repr(spec.default)
        when = "read-only" if spec.read_only else "settable at runtime"
        lines.append(f"  {spec.name} (default: {default}; {when})\n      {spec.description}")
    return "\n".join(lines)
