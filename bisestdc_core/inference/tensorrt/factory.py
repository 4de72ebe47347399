"""The engine registry's hooks for TensorRT (see :mod:`bisestdc_core.inference.registry`).

An engine comes from, in this order: ``engine_path`` (prebuilt), ``onnx`` (built into the
cache), or ``weights`` (exported, then built). Never from random weights: an explicit
``engine: tensorrt`` with none of the three is refused in one line saying what to pass, and
``auto`` passes over TensorRT with that reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bisestdc_core.inference.cuda_probe import cuda_available
from bisestdc_core.inference.tensorrt.build import ensure_engine
from bisestdc_core.inference.tensorrt.calibration import int8_mode
from bisestdc_core.inference.tensorrt.engine import TensorRTEngine
from bisestdc_core.inference.tensorrt.options import TensorRTOptions
from bisestdc_core.inference.tensorrt.platform import TensorRTUnavailable, tensorrt_available

if TYPE_CHECKING:
    from bisestdc_core.inference.registry import EngineRequest

NO_MODEL = ("no model to build an engine from (TensorRT never builds one from random "
            "weights): pass weights:=... or onnx:=... or engine_path:=...")


def status() -> str:
    ok, reason = tensorrt_available()
    if ok and cuda_available():
        return "available: " + reason
    return "unavailable: " + (reason if not ok else "no CUDA device")


def _has_model(request: EngineRequest) -> bool:
    return any(p is not None for p in (request.weights, request.onnx, request.engine_path))


def unavailable_reason(request: EngineRequest) -> str | None:
    ok, why = tensorrt_available()
    if not ok:
        return why
    if request.explicit == TensorRTEngine.name:
        return None  # build() refuses a request without a model, as an engine failure
    if not _has_model(request):
        return NO_MODEL
    if request.engine_path is None and request.onnx is None:
        return "weights only (a build takes minutes; ask for engine tensorrt to build one)"
    return None


def build(request: EngineRequest) -> TensorRTEngine:
    """The engine for ``request``.

    Raises:
        TensorRTUnavailable: no model given, or a TensorRT or pycuda failure, naming the step
            and the file.
        RuntimeError, ValueError: parse or build failures, a stale or foreign engine.
    """
    if not _has_model(request):
        raise TensorRTUnavailable("engine request", NO_MODEL)
    options = request.tensorrt or TensorRTOptions()
    path = request.engine_path
    onnx_path = None
    try:
        if path is None:
            onnx_path = request.onnx or _export_for_tensorrt(request)
            if request.precision == "int8":
                onnx_path = int8_graph(onnx_path, request, options,
                                       from_weights=request.onnx is None)
            path = ensure_engine(onnx_path, precision=request.precision, options=options,
                                 device_index=request.device_index,
                                 calibration=request.calibration,
                                 calib_cache=request.calib_cache)
        return TensorRTEngine(path, request.device_index, options)
    except TensorRTUnavailable as error:
        subject = path or onnx_path
        if error.subject is None and subject is not None:
            raise error.about(subject) from error.__cause__
        raise


def int8_graph(onnx_path: str | os.PathLike, request: EngineRequest,
               options: TensorRTOptions, from_weights: bool) -> Path:
    """The graph an int8 build starts from: a QDQ graph (the given one, or one quantized for
    TensorRT now) unless implicit calibration is asked for. ``from_weights``: ``onnx_path``
    was exported from the request's weights (generated scenes may calibrate it)."""
    mode = int8_mode(None if from_weights else onnx_path, request.calibration,
                     request.calib_cache, options.int8_calibration)
    if mode != "quantize":
        return Path(onnx_path)
    from bisestdc_core.inference.tensorrt.qdq_source import qdq_graph_for  # noqa: PLC0415

    return qdq_graph_for(onnx_path, request.calibration)


def _export_for_tensorrt(request: EngineRequest) -> Path:
    """Fixed-size ONNX (with confidence) from the weights, for an engine build."""
    from bisestdc_core.inference.model_files import checkpoint_source  # noqa: PLC0415 - torch, by name

    model, card = request.network()
    return checkpoint_source().export_cached(model, card, request.weights, channel_order="rgb",
                                             dynamic=False, confidence=True,
                                             directory=request.scratch_dir)
