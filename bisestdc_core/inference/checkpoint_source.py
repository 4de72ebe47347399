"""The torch side of the runtime: ``.pt`` checkpoints and the torch device check.

Everything here may import torch: reading a project checkpoint's card, building the network
of a checkpoint (or a random one), exporting it to ONNX on the fly (and quantizing that
export), and ``torch.cuda.is_available()`` for requests that run torch anyway. The runtime of
exported models (the node, the Segmenter, the ONNX Runtime and TensorRT engines: the
torch-free-runtime contract of .importlinter) reaches this module only through
:func:`.model_files.checkpoint_source`, by name, on first use: given an ONNX graph or a
TensorRT engine, torch is never loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from bisestdc_core.inference import loading, onnx_export
from bisestdc_core.inference.class_choice import card_with_class_set
from bisestdc_core.inference.model_files import MissingCard
from bisestdc_core.model_card import ModelCard, ModelCardError
from bisestdc_core.models import MODEL_REGISTRY
from bisestdc_core.models.checkpoint import (
    PROJECT_FORMAT,
    CheckpointError,
    read_file,
    validate_card,
)


def cuda_available() -> bool:
    """``torch.cuda.is_available()``: the device check of requests that load torch anyway."""
    return bool(torch.cuda.is_available())


def load_network(weights: str | os.PathLike | None, model_name: str, num_classes: int
                 ) -> tuple[Any, ModelCard]:
    """:func:`.loading.load_network`: the fp32 network of ``weights`` and its card."""
    return loading.load_network(weights, model_name, num_classes)


def export_cached(network: Any, card: ModelCard, weights: str | os.PathLike | None,
                  **options: Any) -> Path:
    """:func:`.onnx_export.export_cached` (the card's class set resolved first)."""
    return onnx_export.export_cached(network, card_with_class_set(card), weights, **options)


def quantize_cached(onnx_path: str | os.PathLike) -> Path:
    """:func:`.quantize.quantize_cached` (onnxruntime's quantizer; calibration scenes)."""
    from bisestdc_core.inference.onnxruntime.quantize import quantize_cached as quantize  # noqa: PLC0415 - only for int8

    return quantize(onnx_path)


def checkpoint_card(path: str | os.PathLike) -> ModelCard:
    """The card of a project checkpoint file (never builds the network).

    Raises:
        MissingCard: a seed checkpoint or raw state dict (no card).
        ModelCardError: unreadable file, a field out of bounds.
    """
    try:
        obj = read_file(path)
        if not (isinstance(obj, Mapping) and obj.get("format") == PROJECT_FORMAT):
            raise MissingCard(f"{path}: holds no model card (a seed or raw state dict "
                              f"checkpoint, no 'format': '{PROJECT_FORMAT}')")
        return validate_card(obj, path, known_models=MODEL_REGISTRY)
    except CheckpointError as error:
        raise ModelCardError(str(error)) from None
