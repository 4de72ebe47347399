"""Launch segment_node with a parameter file and a few common overrides.

    ros2 launch bisestdc_ros segment.launch.py \
        image_topics:=/cam_front/image_raw,/cam_left/image_raw engine:=tensorrt \
        engine_path:=/models/bisestdc_fp16.engine large_images:=true

Empty arguments leave the parameter file's value alone. The mapping from launch arguments to
the node's parameters and environment is plain Python (`node_parameters`, `node_environment`,
`ros_arguments`) so tests can check it without `launch` installed; the launch imports live
inside `generate_launch_description`.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = "bisestdc_ros"
EXECUTABLE = "segment_node"
NODE_NAME = "segment_node"
LARGE_IMAGES_PROFILE = "fastdds_large_images.xml"

# name -> (default, description); "" means "keep the parameter file's value".
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "params_file": ("", "parameter file (default: the installed config/segment.yaml)"),
    "image_topics": ("", "comma-separated image topics (or a YAML list); one per camera"),
    "namespace": ("", "namespace of the node"),
    "engine": ("", "auto, tensorrt, torch or onnxruntime"),
    "weights": ("", "PyTorch checkpoint"),
    "engine_path": ("", "serialized TensorRT engine"),
    "large_images": ("false", "true: load the Fast DDS profile for large images "
                              "(shared memory with big segments, loopback UDP)"),
}

# Launch arguments passed straight through as string parameters when set.
_STRING_PARAMETERS = ("engine", "weights", "engine_path")


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


def _is_true(value: str) -> bool:
    if value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if value.strip().lower() in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


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
    return values["params_file"], overrides


def node_environment(arguments: dict[str, str]) -> dict[str, str]:
    """Environment variables for the node process."""
    values = resolve(arguments)
    if not _is_true(values["large_images"]):
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
        args += ["-p", f"{name}:={value}"]
    return args


def _launch_setup(context, *args, **kwargs):
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    arguments = {name: LaunchConfiguration(name).perform(context) for name in LAUNCH_ARGUMENTS}
    params_file, overrides = node_parameters(arguments)
    return [
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=NODE_NAME,
            namespace=arguments["namespace"],
            parameters=[params_file, overrides],
            additional_env=node_environment(arguments),
            output="screen",
            emulate_tty=True,
        )
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
