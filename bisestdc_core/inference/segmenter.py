"""The one inference interface: ``Segmenter(...).segment(frame) -> SegmentationResult``.

Engines (registered in :mod:`.registry`; see :func:`available_engines`):

* ``tensorrt``: a prebuilt engine (``engine_path``) or one built into the cache from ``onnx``
  or, asked for by name, from ``weights`` (fp16/fp32/int8; int8 from a QDQ graph by default);
  never from random weights; needs TensorRT + pycuda and a CUDA device. Its build and run
  options (timing cache, DLA core, CUDA graph, zero-copy, layer profile) are
  ``tensorrt_options``.
* ``torch``: the network from ``weights`` on CUDA (fp16/fp32, BN folded, channels-last,
  CUDA graphs per frame size) or CPU (fp32, or bf16 on CPUs with bf16 instructions).
* ``onnxruntime``: an exported graph (``onnx``), or one exported on the fly from ``weights``
  into the cache (keyed by the checkpoint's hash and the export settings); CPU, or CUDA with
  onnxruntime-gpu. ``int8``: a QDQ graph from :mod:`.quantize` (``onnx``), or one quantized
  on the fly from ``weights`` with generated calibration scenes.

``engine="auto"`` tries them in that order and logs which it took and why the others were not;
when TensorRT is installed but parsing or building the engine fails, ``auto`` logs the reason
once and takes the next engine, while an explicit ``engine="tensorrt"`` fails at start with it.

Timing stages: ``preprocess`` is what happens before the network (for the CUDA graph engine:
host staging and the upload; the in-graph normalise/resize is counted in ``inference``),
``inference`` the network with argmax, ``postprocess`` the labels' trip to the frame size and
back to the host.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bisestdc_core.classes import ClassSet
from bisestdc_core.inference.base import Engine
from bisestdc_core.inference.calibration_data import CalibrationSource
from bisestdc_core.inference.class_choice import resolve_class_set
from bisestdc_core.inference.cuda_probe import cuda_available
from bisestdc_core.inference.model_files import checkpoint_source
from bisestdc_core.inference.processing import check_channel_order
from bisestdc_core.inference.registry import AUTO, ENGINE_NAMES, ENGINES, EngineRequest, engine_spec
from bisestdc_core.inference.tensorrt.options import TensorRTOptions
from bisestdc_core.model_card import PRECISIONS, ModelCard
from bisestdc_core.stage_timings import StageTimings

log = logging.getLogger(__name__)


@dataclass
class SegmentationResult:
    """One frame's segmentation.

    Attributes:
        labels: H x W uint8 train ids at the frame's size.
        confidence: H x W uint8 (max class probability x 255), or None when not requested.
        timings: the inference stages (preprocess, inference, postprocess, total) in ms.
        network_labels: the labels at the network's resolution (before the nearest resize to
            the frame), where the engine keeps them; they carry all the detail ``labels`` has.
    """

    labels: np.ndarray
    confidence: np.ndarray | None = None
    timings: StageTimings = field(default_factory=StageTimings)
    network_labels: np.ndarray | None = None


def available_engines() -> dict[str, str]:
    """Engine name -> why it can or cannot run here (a line each, for logs and --help)."""
    return {name: spec.code().status() for name, spec in ENGINES.items()}


def _resolve_device(device: str, with_torch: bool) -> str:
    """``auto`` -> cuda or cpu; a CUDA device asked for must exist. ``with_torch``: the request
    loads torch anyway (a checkpoint or random weights, or engine torch), so torch's answer
    is taken; an ONNX graph or a TensorRT engine asks the CUDA driver, without torch."""
    if device == "auto" or device.startswith("cuda"):
        cuda = checkpoint_source().cuda_available() if with_torch else cuda_available()
    if device == "auto":
        return "cuda" if cuda else "cpu"
    if device.startswith("cuda") and not cuda:
        raise RuntimeError(f"device {device!r} requested but no CUDA device is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}")
    return device


def _choose(request: EngineRequest) -> Engine:
    """The requested engine, or under ``auto`` the first registered one that can serve."""
    names = ENGINE_NAMES if request.explicit == AUTO else (request.explicit,)
    reasons: dict[str, str] = {}
    for name in names:
        spec = ENGINES[name]
        reason = spec.unavailable_reason(request)
        if reason is None and spec.fallible_build:
            try:
                built = spec.build(request)
            except (RuntimeError, ValueError) as error:
                # TensorRT and pycuda failures arrive as TensorRTUnavailable (a RuntimeError;
                # pycuda's own errors are not). One line: the node logs it as one FATAL line.
                why = " ".join(str(error).split()) or type(error).__name__
                if request.explicit != AUTO:
                    raise RuntimeError(f"engine {name} failed: {why}") from error
                reason = f"installed, but the engine could not be made: {why}"
                log.warning("engine auto: %s failed, trying the next engine (%s)", name, why)
        elif reason is None:
            built = spec.build(request)
        if reason is None:
            if request.explicit == AUTO:
                skipped = "; ".join(f"{k}: {v}" for k, v in reasons.items()) or "none"
                log.info("engine auto -> %s on %s (%s); not taken: %s", name, built.device,
                         built.precision, skipped)
            else:
                log.info("engine %s on %s (%s)", name, built.device, built.precision)
            return built
        reasons[name] = reason
    detail = "; ".join(f"{k}: {v}" for k, v in reasons.items())
    raise RuntimeError(f"no usable inference engine ({detail})")


class Segmenter:
    """Semantic segmentation of uint8 frames with the best engine available.

    Args:
        weights: project or seed checkpoint (None with no ``onnx``/``engine_path``: random
            weights, for latency measurements only).
        onnx: an exported graph (see :mod:`bisestdc_core.cli.export`).
        engine_path: a prebuilt TensorRT engine (with its ``.json`` sidecar).
        engine: ``auto`` or a registered engine name (:mod:`.registry`).
        device: ``auto``, ``cpu`` or ``cuda[:i]``.
        precision: ``fp32``, ``fp16`` (CUDA engines), ``bf16`` (torch on CPU) or ``int8``
            (TensorRT, ONNX Runtime). TensorRT int8 builds from an explicitly quantized (QDQ)
            graph by default: the given ``onnx`` if it is one, else one quantized for TensorRT
            from ``calibration`` (or, for ``weights``, generated scenes); implicit calibration
            (``calibration`` or an existing ``calib_cache``) only with ``int8_calibration:
            implicit``. Anything else is refused here, and a given source is validated here,
            before any engine is built.
        calibration: int8 calibration frames (image folder, or bag and topic).
        calib_cache: int8 calibration cache file (read if present, written after calibrating;
            ``int8_calibration: implicit`` only).
        tensorrt_options: the TensorRT engine's build and run options (workspace, timing
            cache, DLA core, int8 calibration way, CUDA graph, zero-copy, layer profile; see
            :class:`.tensorrt.options.TensorRTOptions`); ignored by the other engines.
        network_size: (H, W) the network runs at; default: the checkpoint's / ONNX's, else
            (512, 1024).
        model_name, num_classes: describe seed checkpoints and random networks.
        class_set: ClassSet or name; default: the checkpoint's / ONNX's.

    Raises:
        ValueError: missing files, unknown names, inconsistent arguments.
        RuntimeError: the requested engine or device cannot run here.
    """

    def __init__(
        self, weights: str | os.PathLike | None = None, onnx: str | os.PathLike | None = None,
        engine_path: str | os.PathLike | None = None, engine: str = "auto",
        device: str = "auto", precision: str = "fp32",
        network_size: Sequence[int] | None = None, model_name: str = "bisestdc",
        num_classes: int = 19, class_set: ClassSet | str | None = None,
        calibration: CalibrationSource | None = None,
        calib_cache: str | os.PathLike | None = None,
        tensorrt_options: TensorRTOptions | None = None,
    ):
        if engine != AUTO:
            engine_spec(engine)  # an unknown name fails here, naming the known ones
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        for label, path in (("weights", weights), ("onnx", onnx), ("engine_path", engine_path)):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{label} file not found: {path}")
        # TensorRT int8 needs its scales from somewhere, checked before minutes of building.
        # ONNX Runtime asked for by name may quantize the weights' export itself (generated
        # calibration scenes, with a warning); a QDQ graph carries its own scales.
        tensorrt_options = tensorrt_options or TensorRTOptions()
        if precision == "int8" and engine_path is None and engine != "onnxruntime":
            from bisestdc_core.inference.tensorrt.calibration import int8_mode  # noqa: PLC0415

            int8_mode(onnx, calibration, calib_cache, tensorrt_options.int8_calibration)
        self._lock = threading.Lock()
        # Exports of random networks go to a folder that lives as long as this Segmenter: no
        # later run could reuse them, so they must not pile up in the persistent cache.
        self._scratch = tempfile.TemporaryDirectory(prefix="bisestdc-") if weights is None \
            else None
        requested_size = tuple(int(v) for v in network_size) if network_size else None
        request = EngineRequest(
            weights=weights, onnx=onnx, engine_path=engine_path, explicit=engine,
            device=_resolve_device(device, with_torch=engine == "torch" or (
                onnx is None and engine_path is None)),
            precision=precision, network_size=requested_size,
            model_name=model_name, num_classes=num_classes, calibration=calibration,
            calib_cache=calib_cache, tensorrt=tensorrt_options,
            scratch_dir=Path(self._scratch.name) if self._scratch is not None else None)
        self._engine: Engine = _choose(request)
        if requested_size and tuple(self._engine.network_size) != requested_size:
            raise ValueError(
                f"the {self._engine.name} model runs at {tuple(self._engine.network_size)}, not "
                f"the requested network_size {requested_size}")
        self.card: ModelCard = self._engine.card
        self.engine_name: str = self._engine.name
        self.precision: str = self._engine.precision
        self.device = self._engine.device
        # The serialised engine file, for engines that have one (TensorRT; build_only logs it).
        self.engine_path: Path | None = getattr(self._engine, "engine_path", None)
        self.network_size: tuple[int, int] = tuple(self._engine.network_size)
        self.class_set: ClassSet = resolve_class_set(
            class_set, self.card.class_set, self.card.num_classes)

    # -- per frame ----------------------------------------------------------------------------

    def segment(self, frame: np.ndarray, channel_order: str = "rgb",
                with_confidence: bool = False) -> SegmentationResult:
        """Segment one frame.

        Args:
            frame: H x W x 3 uint8 (any H, W; resized to the network size internally).
            channel_order: ``rgb`` or ``bgr``: the order of ``frame``'s channels.
            with_confidence: also return the confidence map.

        Returns:
            labels H x W uint8 (nearest-resized from the network size), confidence or None,
            timings in ms.

        Raises:
            ValueError: a frame that is not H x W x 3 uint8, or an unknown channel order.
        """
        order = check_channel_order(channel_order)
        if not isinstance(frame, np.ndarray):
            raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
        if frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8, got {frame.dtype}")
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
            raise ValueError(f"frame must be H x W x 3, got shape {frame.shape}")
        t0 = time.perf_counter()
        with self._lock:  # engines keep per-shape buffers; one frame at a time
            out = self._engine.infer(frame, order, with_confidence)
        timings = replace(out.timings, total_ms=(time.perf_counter() - t0) * 1e3)
        return SegmentationResult(out.labels, out.confidence, timings, out.network_labels)

    def __repr__(self) -> str:
        return (f"Segmenter(engine={self.engine_name!r}, device={self.device!r}, "
                f"precision={self.precision!r}, network_size={self.network_size}, "
                f"class_set={self.class_set.name!r})")
