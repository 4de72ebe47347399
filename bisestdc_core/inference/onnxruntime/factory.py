"""The engine registry's hooks for ONNX Runtime (see :mod:`.registry`).

Separate from :mod:`.engine` because building may quantize weights on the fly
(:mod:`.quantize`), and quantization itself runs graphs with the engine: one module for both
would import itself in a circle.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bisestdc_core.inference.model_files import checkpoint_source, onnx_card
from bisestdc_core.inference.onnxruntime.engine import OnnxRuntimeEngine, assumed_card
from bisestdc_core.inference.onnxruntime.session import cuda_provider_available
from bisestdc_core.model_card import ModelCard

if TYPE_CHECKING:
    from bisestdc_core.inference.registry import EngineRequest

log = logging.getLogger(__name__)


def status() -> str:
    return "available: CPU" + (" and CUDA" if cuda_provider_available() else "")


def unavailable_reason(request: EngineRequest) -> str | None:
    if request.engine_path is not None and request.onnx is None and request.weights is None:
        return "needs onnx or weights (only a TensorRT engine was given)"
    if request.precision == "int8" and request.onnx is not None:
        card = onnx_card(request.onnx)
        stored = (card.precision if card is not None else None) or "fp32"
        if stored != "int8":
            return (f"{Path(request.onnx).name} is an {stored} graph; quantize it with "
                    "bisestdc-quantize")
    return None


def build(request: EngineRequest) -> OnnxRuntimeEngine:
    if request.precision == "fp16":
        log.warning("ONNX Runtime runs the fp32 graph (requested fp16)")
    device = request.device if request.cuda and cuda_provider_available() else "cpu"
    if request.onnx is not None:
        card = onnx_card(request.onnx) or assumed_card(request.onnx, request.model_name,
                                                         request.num_classes)
        return OnnxRuntimeEngine(request.onnx, card, device=device)
    # Weights: exported on the fly (and quantized for int8), with torch (by name, on first use).
    model, card = request.network()
    torch_side = checkpoint_source()

    def export(confidence: bool) -> tuple[Path, ModelCard]:
        path = torch_side.export_cached(model, card, request.weights, channel_order="rgb",
                                        dynamic=True, confidence=confidence,
                                        directory=request.scratch_dir)
        if request.precision == "int8":
            path = torch_side.quantize_cached(path)
        return path, onnx_card(path)

    return OnnxRuntimeEngine(*export(False), device=device,
                             confidence_factory=lambda: export(True))
