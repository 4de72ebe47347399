"""The command-line options that describe a Segmenter, and the Segmenter they describe.

Every tool that runs or exports a network takes the same options, with choices from the
registries (networks: ``bisestdc_core.models.MODEL_REGISTRY``; engines and precisions:
:mod:`.registry`)::

    parser = argparse.ArgumentParser()
    add_segmenter_arguments(parser)
    segmenter = segmenter_from_args(parser.parse_args())

:func:`segmenter_from_args` takes anything with those attribute names, so the node's typed
configuration (``bisestdc_ros.segment_config.SegmentConfig``) builds its Segmenter the same
way; empty strings stand for "not given", as in ROS parameters.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..model_card import PRECISIONS
from .registry import AUTO, ENGINE_CHOICES

if TYPE_CHECKING:
    from .segmenter import Segmenter

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
    unknown = set(files) - set(MODEL_FILES)
    if unknown or not set(precisions) <= set(PRECISIONS):
        raise ValueError(f"unknown model files {sorted(unknown)} or precisions {precisions}")
    group = parser.add_argument_group(title)
    for name in files:
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, help=_FILE_HELP[name])
    if engine:
        group.add_argument("--engine", default=AUTO, choices=ENGINE_CHOICES,
                           help="inference engine; auto takes the first that can run here")
    if device:
        group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    group.add_argument("--precision", default=precision_default, choices=tuple(precisions),
                       help=precision_help)
    if network_size:
        group.add_argument("--network-size", type=int, nargs=2, metavar=("H", "W"),
                           help="network input size (none given: the model card's)")
    if model:
        from .model_files import checkpoint_source  # noqa: PLC0415 - torch, for the names

        group.add_argument("--model-name", "--model", dest="model_name", default="bisestdc",
                           choices=checkpoint_source().model_names(),
                           help="network of seed checkpoints and random weights (project "
                                "checkpoints and exports name their own)")
    group.add_argument("--num-classes", type=int, default=19,
                       help="classes of seed checkpoints and random weights")
    group.add_argument("--class-set", help="class set name (none given: the model card's)")
    return group


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
    from .segmenter import Segmenter  # noqa: PLC0415

    return Segmenter(**segmenter_kwargs(args, **overrides))
