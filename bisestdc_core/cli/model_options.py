"""The command-line options that describe a Segmenter, and the Segmenter they describe.

Every tool that runs or exports a network takes the same options, with choices from the
registries (networks: ``bisestdc_core.models.MODEL_REGISTRY``; engines and precisions:
:mod:`.registry`)::

    parser = argparse.ArgumentParser()
    add_segmenter_arguments(parser)
    segmenter = segmenter_from_args(parser.parse_args())

:func:`segmenter_from_args` takes anything with those attribute names, so the node's typed
configuration (``bisestdc_ros.node.config.SegmentConfig``) builds its Segmenter the same
way; empty strings stand for "not given", as in ROS parameters.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bisestdc_core.classes import CLASS_SETS
from bisestdc_core.inference.registry import AUTO, ENGINE_CHOICES
from bisestdc_core.model_card import NETWORK_NAMES, PRECISIONS

if TYPE_CHECKING:
    from bisestdc_core.inference.segmenter import Segmenter

MODEL_FILES = ("weights", "onnx", "engine_path")
_FILE_HELP = {
    "weights": "project checkpoint (.pt), or a seed checkpoint described by --model-name and "
               "--num-classes",
    "onnx": "exported ONNX graph (with its .json sidecar)",
    "engine_path": "serialized TensorRT engine (with its .json sidecar)",
}


def add_segmenter_arguments(
    parser: argparse.ArgumentParser, *, files: Sequence[str] = MODEL_FILES,
    engine: bool = True, device: bool = True, model: bool = True, network_size: bool = True,
    precisions: Sequence[str] = PRECISIONS, precision_default: str = "fp32",
    precision_help: str = "numeric precision the engine runs at",
    title: str = "model",
) -> argparse._ArgumentGroup:
    """Add the model options to ``parser`` in a group named ``title``.

    Options: the model files in ``files`` (``--weights``, ``--onnx``, ``--engine-path``),
    ``--engine``, ``--device``, ``--precision`` (``precisions``), ``--network-size H W``,
    ``--model-name`` (alias ``--model``), ``--num-classes``, ``--class-set``. ``engine``,
    ``device``, ``model`` and ``network_size`` False leave those out (for tools that take them
    differently, e.g. one Segmenter per engine).
    """
    if not set(precisions) <= set(PRECISIONS):
        raise ValueError(f"unknown precisions {precisions}")
    group = parser.add_argument_group(title)
    add_model_file_options(group, files)
    if engine:
        group.add_argument("--engine", default=AUTO, choices=ENGINE_CHOICES,
                           help="inference engine; auto takes the first that can run here")
    if device:
        add_device_option(group)
    group.add_argument("--precision", default=precision_default, choices=tuple(precisions),
                       help=precision_help)
    if network_size:
        group.add_argument("--network-size", type=int, nargs=2, metavar=("H", "W"),
                           help="network input size (none given: the model card's)")
    add_network_options(group, model_name=model)
    add_class_set_option(group)
    return group


# The pieces below are the options one at a time, for tools that describe a network without
# building a Segmenter (evaluation runs the torch network itself, multi-scale).


def add_model_file_options(group: argparse._ArgumentGroup,
                           files: Sequence[str] = MODEL_FILES) -> None:
    """``--weights`` / ``--onnx`` / ``--engine-path``, those named in ``files``."""
    unknown = set(files) - set(MODEL_FILES)
    if unknown:
        raise ValueError(f"unknown model files {sorted(unknown)}")
    for name in files:
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, help=_FILE_HELP[name])


def add_device_option(group: argparse._ArgumentGroup, default: str = "auto") -> None:
    """``--device``: where the network runs."""
    group.add_argument("--device", default=default, help="auto, cpu, cuda or cuda:N")


def add_network_options(group: argparse._ArgumentGroup, *, model_name: bool = True,
                        model_default: str | None = "bisestdc",
                        num_classes_default: int | None = 19,
                        num_classes_help: str = "classes of seed checkpoints and random weights",
                        ) -> None:
    """``--model-name`` (alias ``--model``; left out when ``model_name`` is False) and
    ``--num-classes``: what a file without a card (a seed checkpoint) or no file holds."""
    if model_name:
        group.add_argument("--model-name", "--model", dest="model_name", default=model_default,
                           choices=NETWORK_NAMES,
                           help="network of seed checkpoints and random weights (project "
                                "checkpoints and exports name their own)")
    group.add_argument("--num-classes", type=int, default=num_classes_default,
                       help=num_classes_help)


def add_class_set_option(group: argparse._ArgumentGroup, *, known_only: bool = False,
                         help: str = "class set name (none given: the model card's)") -> None:
    """``--class-set``; ``known_only``: only the names of ``bisestdc_core.classes.CLASS_SETS``
    (where the tool needs the class names, not just their count)."""
    group.add_argument("--class-set", choices=tuple(CLASS_SETS) if known_only else None,
                       help=help)


def segmenter_kwargs(args: Any, **overrides: Any) -> dict[str, Any]:
    """The Segmenter keyword arguments ``args`` holds (absent or empty: the default), with
    ``overrides`` applied."""
    def given(name: str) -> Any:
        value = getattr(args, name, None)
        return None if value in ("", None) else value

    kwargs: dict[str, Any] = {name: given(name) for name in MODEL_FILES}
    for name in ("engine", "device", "precision", "model_name", "num_classes", "class_set"):
        if given(name) is not None:
            kwargs[name] = given(name)
    size = given("network_size")
    kwargs["network_size"] = tuple(int(v) for v in size) if size else None
    kwargs.update(overrides)
    return kwargs


def segmenter_from_args(args: Any, **overrides: Any) -> Segmenter:
    """The Segmenter the options (or a configuration with the same names) describe.

    Raises:
        ValueError, RuntimeError: as :class:`Segmenter` does (missing files, unknown names,
            engines that cannot run here).
    """
    from bisestdc_core.inference.segmenter import Segmenter  # noqa: PLC0415

    return Segmenter(**segmenter_kwargs(args, **overrides))
