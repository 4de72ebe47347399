"""The inference engines: each name, what it runs and where its code lives, defined once.

An engine registers an :class:`EngineSpec`: its name, the precisions and devices it runs, and
the module that holds its code. That module defines three functions, imported only when the
engine is considered (so this registry imports neither torch nor onnxruntime nor TensorRT, and
the ROS node's configuration can read it):

* ``unavailable_reason(request: EngineRequest) -> str | None``: why the engine cannot serve
  this request here (None: it can);
* ``build(request: EngineRequest) -> Engine``: the engine;
* ``status() -> str``: one line on whether it can run here at all (logs, ``--help``).

``engine="auto"`` tries the engines in registration order. Adding an engine is its module plus
one :func:`register_engine` line below; the command lines
(:mod:`bisestdc_core.cli.model_options`), the Segmenter and the node's parameter validation
take their choices from here.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bisestdc_core.model_card import PRECISIONS, ModelCard

if TYPE_CHECKING:
    from bisestdc_core.inference.base import Engine
    from bisestdc_core.inference.calibration_data import CalibrationSource

__all__ = ["AUTO", "ENGINES", "ENGINE_CHOICES", "ENGINE_NAMES", "PRECISIONS", "EngineRequest",
           "EngineSpec", "register_engine", "engine_spec"]

AUTO = "auto"
DEVICES = ("cpu", "cuda")


@dataclass
class EngineRequest:
    """What a Segmenter asks an engine for (paths are None when not given).

    Attributes:
        explicit: the engine asked for by name, or ``auto``.
        device: resolved device, ``cpu`` or ``cuda[:i]``.
        network_size: (H, W) asked for, None: the card's.
        model_name, num_classes: describe seed checkpoints and random networks.
        scratch_dir: where exports of networks no file describes go (None: the cache).
        tensorrt: the TensorRT engine's build and run options, a
            :class:`bisestdc_core.inference.tensorrt.options.TensorRTOptions` (None: the
            defaults); typed ``Any`` because the engines import the registry, not the reverse.
    """

    weights: str | os.PathLike | None
    onnx: str | os.PathLike | None
    engine_path: str | os.PathLike | None
    explicit: str
    device: str
    precision: str
    network_size: tuple[int, int] | None
    model_name: str
    num_classes: int
    calibration: CalibrationSource | None = None
    calib_cache: str | os.PathLike | None = None
    scratch_dir: Path | None = None
    tensorrt: Any = None
    _network: tuple[Any, ModelCard] | None = field(default=None, repr=False)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def device_index(self) -> int:
        return int(self.device.split(":")[1]) if ":" in self.device else 0

    def network(self) -> tuple[Any, ModelCard]:
        """The fp32 network (a torch ``nn.Module``) of ``weights`` (random without) and its
        card, with the network size this request runs at; loaded once, whichever engines ask.
        Loads torch (through :mod:`.checkpoint_source`, by name)."""
        if self._network is None:
            from bisestdc_core.inference.model_files import checkpoint_source  # noqa: PLC0415
            from bisestdc_core.inference.processing import DEFAULT_NETWORK_SIZE  # noqa: PLC0415

            model, card = checkpoint_source().load_network(self.weights, self.model_name,
                                                           self.num_classes)
            size = self.network_size or card.network_size or DEFAULT_NETWORK_SIZE
            self._network = model, card.replace(network_size=(int(size[0]), int(size[1])))
        return self._network


@dataclass(frozen=True)
class EngineSpec:
    """One engine: its name, what it runs, where its code lives.

    Attributes:
        precisions: the precisions it accepts.
        devices: ``cpu`` and/or ``cuda``.
        module: the module defining ``unavailable_reason(request)`` and ``build(request)``.
        fallible_build: a build that can fail where the engine is installed (TensorRT's parser
            and builder): ``auto`` then logs the reason and takes the next engine.
        needs_weights: runs only a checkpoint's network (torch): given only an ONNX graph or a
            TensorRT engine, it is refused here, without importing its module (nor torch).
    """

    name: str
    precisions: tuple[str, ...]
    devices: tuple[str, ...]
    module: str
    fallible_build: bool = False
    needs_weights: bool = False

    def code(self) -> ModuleType:
        return importlib.import_module(self.module)

    def unavailable_reason(self, request: EngineRequest) -> str | None:
        """None if this engine can serve ``request`` here, else why not."""
        if request.precision not in self.precisions:
            runs = [name for name, spec in ENGINES.items() if request.precision in spec.precisions]
            return f"{request.precision} runs on {', '.join(runs) or 'no engine'}"
        if self.needs_weights and request.weights is None and (
                request.onnx is not None or request.engine_path is not None):
            return "needs weights (only an ONNX/engine was given)"
        reason = self.code().unavailable_reason(request)
        if reason is None and ("cuda" if request.cuda else "cpu") not in self.devices:
            reason = "needs a CUDA device" if self.devices == ("cuda",) else \
                f"runs on {', '.join(self.devices)}"
        return reason

    def build(self, request: EngineRequest) -> Engine:
        return self.code().build(request)


ENGINES: dict[str, EngineSpec] = {}


def register_engine(spec: EngineSpec) -> None:
    unknown = set(spec.precisions) - set(PRECISIONS)
    if unknown or not set(spec.devices) <= set(DEVICES) or spec.name == AUTO:
        raise ValueError(f"engine {spec.name!r}: unknown precisions {sorted(unknown)} or "
                         f"devices {spec.devices} (or a reserved name)")
    ENGINES[spec.name] = spec


# The order is ``auto``'s preference.
register_engine(EngineSpec("tensorrt", ("fp16", "fp32", "int8"), ("cuda",),
                           "bisestdc_core.inference.tensorrt.factory", fallible_build=True))
register_engine(EngineSpec("torch", ("fp32", "fp16", "bf16"), ("cpu", "cuda"),
                           "bisestdc_core.inference.torch_engine", needs_weights=True))
register_engine(EngineSpec("onnxruntime", ("fp32", "fp16", "int8"), ("cpu", "cuda"),
                           "bisestdc_core.inference.onnxruntime.factory"))

ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)
ENGINE_CHOICES: tuple[str, ...] = (AUTO, *ENGINE_NAMES)


def engine_spec(name: str) -> EngineSpec:
    """The spec of a registered engine.

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"engine must be {AUTO!r} or one of {ENGINE_NAMES}, got {name!r}") \
            from None
