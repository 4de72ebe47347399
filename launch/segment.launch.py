"""Launch segment_node with a parameter file and the overrides a deployment changes.

    ros2 launch bisestdc_ros segment.launch.py \
        image_topics:=/cam_front/image_raw,/cam_left/image_raw engine:=tensorrt \
        engine_path:=/models/bisestdc_fp16.engine precision:=fp16 large_images:=true

    ros2 launch bisestdc_ros segment.launch.py managed:=true   # lifecycle node, left unconfigured

Empty arguments leave the parameter file's value alone (`ros2 launch ... --show-args` lists them
all). When the node exits with an error (bad parameters, a missing model or engine: it logs
FATAL and exits 2) the launch shuts down and `ros2 launch` exits non-zero; when it exits
cleanly the launch shuts down too.

The mapping from launch arguments to the node's parameters, command line and environment is
plain Python (`node_parameters`, `node_arguments`, `node_ros_arguments`, `node_environment`,
`ros_arguments`) so tests can check it without `launch` installed; the launch imports live
inside `generate_launch_description` and the functions it calls.
"""

from __future__ import annotations

import signal
from pathlib import Path

PACKAGE = "bisestdc_ros"
EXECUTABLE = "segment_node"
NODE_NAME = "segment_node"
LARGE_IMAGES_PROFILE = "fastdds_large_images.xml"

# Log levels rcutils knows (`--ros-args --log-level LEVEL` or `--log-level NAME:=LEVEL`).
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "fatal", "unset")

# name -> (default, description); "" means "keep the parameter file's value".
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "params_file": ("", "parameter file (default: the installed config/segment.yaml)"),
    "image_topics": ("", "comma-separated image topics (or a YAML list); one per camera"),
    "namespace": ("", "namespace of the node"),
    "input_type": ("", "raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage "
                       "on <topic>/compressed)"),
    "qos": ("", "subscription QoS: sensor_data (best effort) or reliable"),
    # The model: one of weights, onnx, engine_path.
    "weights": ("", "PyTorch checkpoint (.pt)"),
    "onnx": ("", "ONNX model file"),
    "engine_path": ("", "serialized TensorRT engine"),
    "engine": ("", "auto, tensorrt, torch or onnxruntime"),
    "device": ("", "auto, cpu, cuda or cuda:N"),
    "precision": ("", "fp32, fp16, bf16 (torch on CPU) or int8 (TensorRT, ONNX Runtime)"),
    "network_height": ("", "network input height, a multiple of 32 (0 and 0: the model's "
                           "default size)"),
    "network_width": ("", "network input width, a multiple of 32 (0 and 0: the model's "
                          "default size)"),
    "model_name": ("", "network architecture name, e.g. bisestdc or stdc1"),
    "num_classes": ("", "classes the network predicts"),
    # TensorRT (ignored by the other engines); node defaults in config/segment.yaml.
    "build_only": ("", "true: build or refresh the TensorRT engine, log its path and exit 0 "
                       "without subscribing (needs engine:=tensorrt; default false)"),
    "int8_calibration": ("", "TensorRT int8 scales: qdq (default: from a QDQ graph) or "
                             "implicit (entropy calibrator, deprecated from TensorRT 10.1)"),
    "workspace_mb": ("", "TensorRT builder workspace limit in MiB (default 2048)"),
    "timing_cache": ("", "TensorRT persistent timing cache file (default empty: one per GPU "
                         "and TensorRT version in the engine cache)"),
    "dla_core": ("", "TensorRT: -1 (default) the GPU, N >= 0 DLA core N with GPU fallback"),
    "cuda_graph": ("", "true: TensorRT replays each frame as a CUDA graph (default false; "
                       "needs cuda-python)"),
    "zero_copy": ("", "TensorRT host-mapped buffers: auto (default: on integrated GPUs, "
                      "Jetson), on or off"),
    "profile_layers": ("", "TensorRT: log per-layer times every N frames (default 0: off)"),
    "use_sim_time": ("", "true: the node's clock follows /clock (bag replay, simulation)"),
    "log_level": ("", "log level of the node: debug, info, warn, error or fatal "
                      "(or LOGGER:=LEVEL); empty: info"),
    "large_images": ("false", "true: load the Fast DDS profile for large images "
                              "(shared memory with big segments, loopback UDP)"),
    "managed": ("false", "true: start the node as a ROS 2 lifecycle node (segment_node "
                         "--managed); it waits unconfigured for a lifecycle manager unless "
                         "autostart:=true"),
    "autostart": ("false", "with managed:=true: configure and activate the node at once "
                           "(ignored without managed:=true)"),
}

# Launch arguments that set the node parameter of the same name, by type, when non-empty.
_STRING_PARAMETERS = ("engine", "weights", "engine_path", "onnx", "device", "precision",
                      "model_name", "input_type", "qos", "int8_calibration", "timing_cache",
                      "zero_copy")
_INTEGER_PARAMETERS = ("network_height", "network_width", "num_classes", "workspace_mb",
                       "dla_core", "profile_layers")
_BOOL_PARAMETERS = ("use_sim_time", "build_only", "cuda_graph")
# Launch-only switches, not parameters of the node.
_SWITCHES = ("large_images", "managed", "autostart")


def _share_directory() -> Path:
    """The installed share directory, or the source tree when the package is not installed."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:
        return Path(__file__).resolve().parents[1]
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH (not sourced)
        return Path(__file__).resolve().parents[1]


def default_params_file() -> str:
    return str(_share_directory() / "config" / "segment.yaml")


def parse_topics(value: str) -> list[str]:
    """"/a/image,/b/image" or "['/a/image', '/b/image']" -> ['/a/image', '/b/image']."""
    value = value.strip()
    if value.startswith("["):
        import yaml

        topics = yaml.safe_load(value)
        if not isinstance(topics, list):
            raise ValueError(f"image_topics: not a list: {value!r}")
        return [str(t).strip() for t in topics if str(t).strip()]
    return [t.strip() for t in value.split(",") if t.strip()]


def _is_true(value: str, name: str = "") -> bool:
    if value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if value.strip().lower() in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"{name + ': ' if name else ''}expected true or false, got {value!r}")


def _integer(name: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"{name}: expected an integer, got {value!r}") from None


def resolve(arguments: dict[str, str]) -> dict[str, str]:
    """Launch argument values with defaults filled in (unknown names refused)."""
    unknown = set(arguments) - set(LAUNCH_ARGUMENTS)
    if unknown:
        raise ValueError(f"unknown launch arguments: {sorted(unknown)}")
    values = {name: default for name, (default, _) in LAUNCH_ARGUMENTS.items()}
    values.update(arguments)
    if not values["params_file"]:
        values["params_file"] = default_params_file()
    return values


def node_parameters(arguments: dict[str, str]) -> tuple[str, dict[str, object]]:
    """(parameter file, parameter overrides) the node is started with."""
    values = resolve(arguments)
    overrides: dict[str, object] = {}
    if values["image_topics"].strip():
        overrides["image_topics"] = parse_topics(values["image_topics"])
    for name in _STRING_PARAMETERS:
        if values[name]:
            overrides[name] = values[name]
    for name in _INTEGER_PARAMETERS:
        if values[name].strip():
            overrides[name] = _integer(name, values[name])
    for name in _BOOL_PARAMETERS:
        if values[name].strip():
            overrides[name] = _is_true(values[name], name)
    return values["params_file"], overrides


def is_managed(arguments: dict[str, str]) -> bool:
    """managed:=true: the node runs as a lifecycle node."""
    return _is_true(resolve(arguments)["managed"], "managed")


def autostart(arguments: dict[str, str]) -> bool:
    """Whether launch itself configures and activates the (managed) node."""
    values = resolve(arguments)
    return is_managed(arguments) and _is_true(values["autostart"], "autostart")


def node_arguments(arguments: dict[str, str]) -> list[str]:
    """The node's own command-line arguments (before --ros-args)."""
    return ["--managed"] if is_managed(arguments) else []


def node_ros_arguments(arguments: dict[str, str]) -> list[str]:
    """--ros-args the launch adds besides name, namespace and parameters: the log level."""
    level = resolve(arguments)["log_level"].strip()
    if not level:
        return []
    severity = level.rpartition(":=")[2]
    if severity.lower() not in LOG_LEVELS:
        raise ValueError(f"log_level: expected one of {', '.join(LOG_LEVELS)} "
                         f"(or LOGGER:=LEVEL), got {level!r}")
    return ["--log-level", level]


def node_environment(arguments: dict[str, str]) -> dict[str, str]:
    """Environment variables for the node process."""
    values = resolve(arguments)
    if not _is_true(values["large_images"], "large_images"):
        return {}
    profile = str(_share_directory() / "config" / LARGE_IMAGES_PROFILE)
    # Fast DDS 3 (Jazzy, Kilted) reads this name and warns at every start when the older
    # FASTRTPS_DEFAULT_PROFILES_FILE is set; Fast DDS 2 (Humble) reads only the older name (set it
    # by hand there, see README).
    return {"FASTDDS_DEFAULT_PROFILES_FILE": profile}


def ros_arguments(arguments: dict[str, str]) -> list[str]:
    """The --ros-args the launch description amounts to (for running the node by hand)."""
    values = resolve(arguments)
    params_file, overrides = node_parameters(arguments)
    args = ["-r", f"__node:={NODE_NAME}"]
    if values["namespace"]:
        args += ["-r", f"__ns:={values['namespace']}"]
    args += ["--params-file", params_file]
    for name, value in overrides.items():
        if isinstance(value, list):
            value = "[" + ",".join(f"'{v}'" for v in value) + "]"
        elif isinstance(value, bool):
            value = str(value).lower()
        args += ["-p", f"{name}:={value}"]
    return args + node_ros_arguments(arguments)


def command_line(arguments: dict[str, str]) -> list[str]:
    """The node's command line the launch description amounts to (for running it by hand).

    managed:=true autostart:=true also has launch configure and activate the node, which a
    command line cannot say.
    """
    return [EXECUTABLE, *node_arguments(arguments), "--ros-args", *ros_arguments(arguments)]


class NodeFailed(RuntimeError):
    """The node exited with an error; raised in launch so that `ros2 launch` exits non-zero."""


def exit_message(name: str, returncode: int) -> str:
    """Why the launch stops when the node process ended with ``returncode``."""
    if returncode == 0:
        return f"{name} exited"
    if returncode < 0:
        return f"{name} was killed by signal {-returncode}"
    return f"{name} exited with code {returncode} (its log above says why)"


def _on_node_exit(event, context):
    """The node ended: shut the launch down; on an error make `ros2 launch` exit non-zero.

    launch's LaunchService.run returns 0 however its processes end, and non-zero only when an
    exception reaches its event loop; raising here does that, and the loop then shuts the
    launch down with this message as the reason ("Caught exception in launch ...").
    """
    from launch.actions import EmitEvent
    from launch.events import Shutdown

    message = exit_message(event.action.name, event.returncode)
    # Killed by the SIGINT the launch itself sent on Ctrl-C: stopped as asked, not a failure
    # (a SIGTERM or SIGKILL on shutdown means it did not stop in time: that one is).
    stopped_as_asked = context.is_shutdown and event.returncode == -signal.SIGINT
    if event.returncode != 0 and not stopped_as_asked:
        raise NodeFailed(message)
    if context.is_shutdown:
        return None
    # A clean exit on its own (no Ctrl-C): end the launch too, lifecycle actions included.
    return [EmitEvent(event=Shutdown(reason=message))]


def _launch_setup(context, *args, **kwargs):
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import LifecycleNode, Node
    from launch_ros.parameter_descriptions import ParameterValue

    arguments = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    params_file, overrides = node_parameters(arguments)
    # Strings stay strings: launch_ros would otherwise read engine_path:=1234 as an integer.
    typed = {name: ParameterValue(value, value_type=str) if isinstance(value, str) else value
             for name, value in overrides.items()}
    options = dict(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=NODE_NAME,
        namespace=arguments["namespace"],
        parameters=[params_file, typed],
        arguments=node_arguments(arguments),
        # None, not []: launch_ros adds a second "--ros-args" for an empty list.
        ros_arguments=node_ros_arguments(arguments) or None,
        additional_env=node_environment(arguments),
        output="screen",
        emulate_tty=True,
    )
    if is_managed(arguments):
        node = LifecycleNode(autostart=autostart(arguments), **options)
    else:
        node = Node(**options)
    return [
        RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_on_node_exit)),
        node,
    ]


def generate_launch_description():
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchDescription

    declared = [
        DeclareLaunchArgument(name, default_value=default, description=description)
        for name, (default, description) in LAUNCH_ARGUMENTS.items()
    ]
    # OpaqueFunction: the overrides depend on which arguments are non-empty, which is only
    # known once the launch context resolves them.
    return LaunchDescription([*declared, OpaqueFunction(function=_launch_setup)])
