"""The node's ROS parameters: declaration, integers given for doubles, checks of changes.

The rules (names, defaults, validation) are `config`'s, without rclpy; this module puts them on
an rclpy node. ``small_object_classes`` is declared late, once the engine's class set gives its
default (see `declare_small_object_classes`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from bisestdc_ros.node.config import (
    DEFAULTS,
    FLOAT_PARAMETERS,
    PARAMETERS,
    ConfigError,
    SegmentConfig,
    validate,
)
from bisestdc_ros.node.errors import StartupError

SMALL_OBJECT_CLASSES = "small_object_classes"
_PARAMETER_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
    list: ParameterType.PARAMETER_STRING_ARRAY,  # the only list parameters are string lists
}


def as_double(param: Parameter) -> Parameter:
    """An integer for a double parameter (``ros2 param set ... overlay_opacity 1``, a parameter
    file's ``1``) as the double it means; anything else unchanged (the type check refuses it)."""
    if param.name in FLOAT_PARAMETERS and param.type_ == Parameter.Type.INTEGER:
        return Parameter(param.name, Parameter.Type.DOUBLE, float(param.value))
    return param


def declare_parameters(node: Node,
                       check_changes: Callable[[list[Parameter]], SetParametersResult],
                       apply_changes: Callable[[list[Parameter]], None]) -> None:
    """Every parameter but small_object_classes (its default comes with the engine), and the
    callbacks that check and apply runtime changes."""
    # Runs for runtime sets only (rclpy calls no pre-set callback for declarations).
    node.add_pre_set_parameters_callback(lambda params: [as_double(p) for p in params])
    for spec in PARAMETERS:
        if spec.name != SMALL_OBJECT_CLASSES:
            _declare(node, spec.name, spec.default, spec.description, spec.read_only)
    # Registered after the declarations: they run for runtime changes, the QoS-override
    # declarations and small_object_classes' late declaration.
    node.add_on_set_parameters_callback(check_changes)
    node.add_post_set_parameters_callback(apply_changes)


def _declare(node: Node, name: str, default: Any, description: str, read_only: bool) -> None:
    descriptor = ParameterDescriptor(
        description=description,
        read_only=read_only,
        type=_PARAMETER_TYPES[type(default)],
    )
    if name in FLOAT_PARAMETERS:
        # Statically DOUBLE, so a runtime integer cannot turn it into an INTEGER parameter
        # (the pre-set callback converts those); an integer given at start-up
        # (``-p overlay_opacity:=1``, a parameter file's ``1``) is converted here, as rclpy
        # offers no hook for overrides and would refuse its type.
        override = node._parameter_overrides.get(name)
        if override is not None:
            node._parameter_overrides[name] = as_double(override)
    node.declare_parameter(name, default, descriptor)


def declare_small_object_classes(node: Node, default: list[str]) -> None:
    """Declared after the engine: its default is the engine's class set's own list.

    Declared by type, not by value: an empty default (a class set without small objects)
    would otherwise become a byte array and refuse every list of names. Declared once: a
    lifecycle node configured again keeps the value it had.
    """
    if node.has_parameter(SMALL_OBJECT_CLASSES):
        return
    spec = next(s for s in PARAMETERS if s.name == SMALL_OBJECT_CLASSES)
    descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    declared = node.declare_parameter(
        SMALL_OBJECT_CLASSES, Parameter.Type.STRING_ARRAY, descriptor
    )
    if declared.type_ == Parameter.Type.NOT_SET:  # no override: the class set's list
        node.set_parameters(
            [Parameter(SMALL_OBJECT_CLASSES, Parameter.Type.STRING_ARRAY, default)]
        )


def current_values(node: Node) -> dict[str, Any]:
    """The node's declared parameters with a value (validation fills in the rest)."""
    values = {}
    for spec in PARAMETERS:
        if not node.has_parameter(spec.name):
            continue
        try:
            values[spec.name] = node.get_parameter(spec.name).value
        except ParameterUninitializedException:  # small_object_classes while declared
            pass
    return values


def own_changes(params: list[Parameter]) -> list[Parameter]:
    """The node's own parameters among ``params``; rclpy's (qos_overrides.*, use_sim_time) have
    their own rules."""
    return [p for p in params if p.name in DEFAULTS]


def check_changes(node: Node, params: list[Parameter],
                  class_names: tuple[str, ...]) -> SetParametersResult:
    """Whether the node's parameters would still be valid with ``params`` set."""
    proposed = current_values(node)
    proposed.update({p.name: p.value for p in own_changes(params)})
    try:
        # Before the engine is loaded (lifecycle: unconfigured) no class names to check.
        validate(proposed, class_names or None)
    except ConfigError as error:
        return SetParametersResult(successful=False, reason=str(error))
    return SetParametersResult(successful=True)


def validated(node: Node, class_names: tuple[str, ...] | None = None) -> SegmentConfig:
    """The node's configuration from its parameters.

    Raises:
        StartupError: an invalid parameter.
    """
    try:
        return validate(current_values(node), class_names)
    except ConfigError as error:
        raise StartupError(f"invalid parameter: {error}") from error
