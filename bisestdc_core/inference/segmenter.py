"""The one inference interface: ``Segmenter(...).segment(frame) -> SegmentationResult``.

Engines (see :func:`available_engines`):

* ``tensorrt``: a prebuilt engine (``engine_path``) or one built from ``onnx`` into the cache
  (fp16/fp32/int8); needs TensorRT + pycuda and a CUDA device.
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
from typing import Any

import numpy as np
import torch

from ..classes import ClassSet
from ..stage_timings import StageTimings
from .base import Engine
from .calibration_data import CalibrationSource
from .loading import load_network, resolve_class_set
from .processing import DEFAULT_NETWORK_SIZE, check_channel_order
from .torch_engine import cpu_bf16_supported

log = logging.getLogger(__name__)

ENGINES = ("tensorrt", "torch", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


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
    from .onnxruntime_engine import cuda_provider_available  # noqa: PLC0415
    from .tensorrt_engine import tensorrt_available  # noqa: PLC0415

    cuda = torch.cuda.is_available()
    trt_ok, trt_reason = tensorrt_available()
    status = {
        "tensorrt": ("available: " + trt_reason if trt_ok and cuda else
                     "unavailable: " + (trt_reason if not trt_ok else "no CUDA device")),
        "torch": f"available: torch {torch.__version__} on "
                 + ("CUDA and CPU" if cuda else "CPU only"),
        "onnxruntime": "available: CPU" + (" and CUDA" if cuda_provider_available() else ""),
    }
    return status


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but no CUDA device is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {device!r}")
    return device


class Segmenter:
    """Semantic segmentation of uint8 frames with the best engine available.

    Args:
        weights: project or seed checkpoint (None with no ``onnx``/``engine_path``: random
            weights, for latency measurements only).
        onnx: an exported graph (see :mod:`bisestdc_core.export`).
        engine_path: a prebuilt TensorRT engine (with its ``.json`` sidecar).
        engine: ``auto``, ``tensorrt``, ``torch`` or ``onnxruntime``.
        device: ``auto``, ``cpu`` or ``cuda[:i]``.
        precision: ``fp32``, ``fp16`` (CUDA engines), ``bf16`` (torch on CPU) or ``int8``
            (TensorRT, ONNX Runtime). TensorRT int8 needs a prebuilt ``engine_path``, an
            explicitly quantized (QDQ) ``onnx``, a ``calibration`` source or an existing
            ``calib_cache``; anything else is refused here, and a given source is validated
            here, before any engine is built.
        calibration: int8 calibration frames (image folder, or bag and topic).
        calib_cache: int8 calibration cache file (read if present, written after calibrating).
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
    ):
        if engine not in ("auto", *ENGINES):
            raise ValueError(f"engine must be 'auto' or one of {ENGINES}, got {engine!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        for label, path in (("weights", weights), ("onnx", onnx), ("engine_path", engine_path)):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{label} file not found: {path}")
        self._weights = weights
        self._onnx = onnx
        self._engine_path = engine_path
        self._calibration = calibration
        self._calib_cache = calib_cache
        # TensorRT int8 needs its scales from somewhere, checked before minutes of building.
        # ONNX Runtime asked for by name may quantize the weights' export itself (generated
        # calibration scenes, with a warning); a QDQ graph carries its own scales.
        if precision == "int8" and engine_path is None and engine != "onnxruntime":
            from .tensorrt_engine import int8_mode  # noqa: PLC0415

            int8_mode(onnx, calibration, calib_cache)
        self._model_name = model_name
        self._num_classes = num_classes
        self._requested_size = tuple(int(v) for v in network_size) if network_size else None
        self._network: tuple[torch.nn.Module, dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._explicit_engine = engine
        self._meta: dict[str, Any] = {}
        # Exports of random networks go to a folder that lives as long as this Segmenter: no
        # later run could reuse them, so they must not pile up in the persistent cache.
        self._scratch = tempfile.TemporaryDirectory(prefix="bisestdc-") if weights is None \
            else None
        self.device = _resolve_device(device)
        self._engine: Engine = self._choose(engine, precision)
        if self._requested_size and tuple(self._engine.network_size) != self._requested_size:
            raise ValueError(
                f"the {self._engine.name} model runs at {tuple(self._engine.network_size)}, not "
                f"the requested network_size {self._requested_size}")
        self.engine_name: str = self._engine.name
        self.precision: str = self._engine.precision
        self.device = self._engine.device
        self.network_size: tuple[int, int] = tuple(self._engine.network_size)
        self.class_set: ClassSet = resolve_class_set(
            class_set, self._meta.get("class_set"), int(self._meta["num_classes"]))

    # -- construction -------------------------------------------------------------------------

    def _load_network(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        if self._network is None:
            self._network = load_network(self._weights, self._model_name, self._num_classes)
        return self._network

    def _network_size(self, meta: dict[str, Any]) -> tuple[int, int]:
        size = self._requested_size or meta.get("network_size") or DEFAULT_NETWORK_SIZE
        return int(size[0]), int(size[1])

    def _choose(self, engine: str, precision: str) -> Engine:
        order = ENGINES if engine == "auto" else (engine,)
        reasons: dict[str, str] = {}
        for name in order:
            reason = self._unavailable_reason(name, precision)
            if reason is None and name == "tensorrt":
                try:
                    built = self._make_tensorrt(precision)
                except (RuntimeError, ValueError) as error:
                    if engine != "auto":
                        raise RuntimeError(f"engine tensorrt failed: {error}") from error
                    reason = f"installed, but the engine could not be made: {error}"
                    log.warning("engine auto: TensorRT failed, trying the next engine (%s)",
                                error)
            elif reason is None:
                built = getattr(self, f"_make_{name}")(precision)
            if reason is None:
                if engine == "auto":
                    skipped = "; ".join(f"{k}: {v}" for k, v in reasons.items()) or "none"
                    log.info("engine auto -> %s on %s (%s); not taken: %s", name,
                             built.device, built.precision, skipped)
                else:
                    log.info("engine %s on %s (%s)", name, built.device, built.precision)
                return built
            reasons[name] = reason
        detail = "; ".join(f"{k}: {v}" for k, v in reasons.items())
        raise RuntimeError(f"no usable inference engine ({detail})")

    def _unavailable_reason(self, name: str, precision: str) -> str | None:
        """None if engine ``name`` can run with these arguments, else why not."""
        cuda = self.device.startswith("cuda")
        if name == "tensorrt":
            from .tensorrt_engine import tensorrt_available  # noqa: PLC0415

            ok, why = tensorrt_available()
            if not ok:
                return why
            if not cuda:
                return "needs a CUDA device"
            if precision == "bf16":
                return "bf16 is the torch engine's (on CPU)"
            if self._engine_path is None and self._onnx is None \
                    and self._explicit_engine != "tensorrt":
                return "no engine_path or onnx given (a build takes minutes; weights use torch)"
            return None
        if name == "torch":
            if self._weights is None and (self._onnx is not None or self._engine_path):
                return "needs weights (only an ONNX/engine was given)"
            if precision == "int8":
                return "int8 runs on TensorRT or ONNX Runtime"
            if precision == "bf16" and cuda:
                return "bf16 is for CPUs (fp16 on CUDA)"
            if precision == "bf16" and not cpu_bf16_supported():
                return "this CPU has no bf16 instructions (AVX512-BF16 or AMX)"
            if not cuda and self._explicit_engine != "torch":
                return "no CUDA device (on CPU ONNX Runtime is faster; ask for engine='torch')"
            return None
        if name == "onnxruntime":
            if self._engine_path is not None and self._onnx is None and self._weights is None:
                return "needs onnx or weights (only a TensorRT engine was given)"
            if precision == "bf16":
                return "bf16 is the torch engine's"
            if precision == "int8" and self._onnx is not None:
                from ..export import read_sidecar  # noqa: PLC0415

                stored = (read_sidecar(self._onnx) or {}).get("precision", "fp32")
                if stored != "int8":
                    return (f"{Path(self._onnx).name} is an {stored} graph; quantize it with "
                            "bisestdc-quantize")
            return None
        raise ValueError(name)

    def _make_tensorrt(self, precision: str) -> Engine:
        from .tensorrt_engine import TensorRTEngine, ensure_engine  # noqa: PLC0415

        index = int(self.device.split(":")[1]) if ":" in self.device else 0
        path = self._engine_path
        if path is None:
            onnx_path = self._onnx or self._export_for_tensorrt()
            path = ensure_engine(onnx_path, precision=precision, device_index=index,
                                 calibration=self._calibration, calib_cache=self._calib_cache)
        built = TensorRTEngine(path, index)
        self._meta = {"num_classes": built.meta.get("num_classes", self._num_classes),
                      "class_set": built.meta.get("class_set")}
        return built

    def _export_for_tensorrt(self) -> Path:
        """Fixed-size ONNX (with confidence) from the weights, for an engine build."""
        from ..export import export_cached  # noqa: PLC0415

        model, meta = self._load_network()
        class_set = resolve_class_set(None, meta.get("class_set"), int(meta["num_classes"]))
        return export_cached(model, meta, self._weights, class_set=class_set.name,
                             class_names=class_set.names, network_size=self._network_size(meta),
                             channel_order="rgb", dynamic=False, confidence=True,
                             directory=self._scratch_dir)

    def _make_torch(self, precision: str) -> Engine:
        from .torch_engine import TorchEngine  # noqa: PLC0415

        model, meta = self._load_network()
        self._meta = meta
        return TorchEngine(model, meta["mean"], meta["std"], self._network_size(meta),
                           device=self.device, precision=precision)

    def _make_onnxruntime(self, precision: str) -> Engine:
        from ..export import export_cached, read_sidecar  # noqa: PLC0415
        from .onnxruntime_engine import OnnxRuntimeEngine  # noqa: PLC0415
        from .quantize import quantize_cached  # noqa: PLC0415

        if precision == "fp16":
            log.warning("ONNX Runtime runs the fp32 graph (requested fp16)")
        device = self.device if self.device.startswith("cuda") and self._ort_cuda() else "cpu"
        if self._onnx is not None:
            meta = read_sidecar(self._onnx) or {}
            self._meta = {"num_classes": meta.get("num_classes", self._num_classes),
                          "class_set": meta.get("class_set")}
            return OnnxRuntimeEngine(self._onnx, meta or None, device=device)
        model, meta = self._load_network()
        self._meta = meta
        size = self._network_size(meta)
        class_set = resolve_class_set(None, meta.get("class_set"), int(meta["num_classes"]))

        def export(confidence: bool) -> tuple[Path, dict]:
            path = export_cached(model, meta, self._weights, class_set=class_set.name,
                                 class_names=class_set.names, network_size=size,
                                 channel_order="rgb", dynamic=True, confidence=confidence,
                                 directory=self._scratch_dir)
            if precision == "int8":
                path = quantize_cached(path)
            return path, read_sidecar(path)

        path, sidecar = export(False)
        return OnnxRuntimeEngine(path, sidecar, device=device,
                                 confidence_factory=lambda: export(True))

    @property
    def _scratch_dir(self) -> Path | None:
        return Path(self._scratch.name) if self._scratch is not None else None

    def _ort_cuda(self) -> bool:
        from .onnxruntime_engine import cuda_provider_available  # noqa: PLC0415

        return cuda_provider_available()

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
