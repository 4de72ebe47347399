"""The model files and their cards: JSON sidecars of ONNX graphs and TensorRT engines, and
:func:`describe`, the card of any of the three formats.

* a project checkpoint (``.pt``) carries its card in its own keys;
* an exported ONNX graph has ``<file>.onnx.json``: its card plus the export's record (input
  layout, opset, the file's sha256, provenance);
* a TensorRT engine has ``<file>.engine.json``: the build's cache key plus the ONNX sidecar it
  was built from (whose card it serves, at the engine's precision and input size).

What a sidecar holds is decided here (where it lies, and the atomic JSON write, are
:mod:`bisestdc_core.artefacts`); the card inside goes through
:meth:`ModelCard.from_dict` / :meth:`ModelCard.to_dict`.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from bisestdc_core.artefacts import (
    read_json_object,
    read_json_sidecar,
    sidecar_path,
    write_json_sidecar,
)
from bisestdc_core.model_card import ModelCard, ModelCardError

log = logging.getLogger(__name__)

ONNX_SIDECAR_FORMAT = "bisestdc-onnx"
ENGINE_SIDECAR_FORMAT = "bisestdc-tensorrt"
CHECKPOINT_SOURCE = "bisestdc_core.inference.checkpoint_source"


def checkpoint_source() -> ModuleType:
    """:mod:`.checkpoint_source`, the torch side (``.pt`` checkpoints, exports on the fly,
    engine ``torch``'s device check), imported on first use and by name: the runtime of
    exported models (the torch-free-runtime contract of .importlinter) never imports torch."""
    return importlib.import_module(CHECKPOINT_SOURCE)


class MissingCard(ModelCardError):
    """A readable model file that carries no card (a seed checkpoint, a graph without its
    sidecar): callers may describe it from their own options instead."""


def read_sidecar(onnx_path: str | os.PathLike) -> dict[str, Any] | None:
    """The export sidecar of an ONNX file (card and record), or None if it has none.

    Raises:
        ModelCardError: the sidecar exists but is not valid JSON of this format.
    """
    data = read_json_sidecar(onnx_path, ModelCardError)
    if data is not None and data.get("format") != ONNX_SIDECAR_FORMAT:
        raise ModelCardError(f"{sidecar_path(onnx_path)}: not a {ONNX_SIDECAR_FORMAT} sidecar")
    return data


def write_sidecar(model_path: str | os.PathLike, record: Mapping[str, Any],
                  card: ModelCard) -> dict[str, Any]:
    """Write ``<model_path>.json`` (atomically): the file's record with the card's keys;
    returns the dict."""
    data = {**record, **card.to_dict()}
    write_json_sidecar(model_path, data)
    return data


def onnx_card(onnx_path: str | os.PathLike) -> ModelCard | None:
    """The card in an ONNX file's sidecar (None without a sidecar).

    Raises:
        ModelCardError: an unreadable sidecar or a card field out of bounds, by name.
    """
    data = read_sidecar(onnx_path)
    return None if data is None else ModelCard.from_dict(data, sidecar_path(onnx_path))


def read_engine_sidecar(engine_path: str | os.PathLike) -> dict[str, Any] | None:
    """A TensorRT engine's sidecar, or None when it is missing or unreadable (a stale cache)."""
    try:
        data = read_json_sidecar(engine_path, ModelCardError)
    except ModelCardError:
        log.warning("%s: unreadable engine sidecar, treating the engine as stale",
                    sidecar_path(engine_path))
        return None
    return data if data is not None and data.get("format") == ENGINE_SIDECAR_FORMAT else None


def write_engine_sidecar(engine_path: str | os.PathLike, key: Mapping[str, Any],
                         onnx_path: str | os.PathLike) -> dict[str, Any]:
    """Write ``<engine_path>.json``: the build's cache key and the ONNX sidecar it was built
    from (whose card the engine serves); returns the dict.

    Raises:
        ModelCardError: the ONNX has no readable sidecar.
    """
    onnx_sidecar = read_sidecar(onnx_path)
    if onnx_sidecar is None:
        raise ModelCardError(f"{onnx_path}: no sidecar ({sidecar_path(onnx_path).name})")
    data = {"format": ENGINE_SIDECAR_FORMAT, **key, "onnx": onnx_sidecar,
            "onnx_path": str(onnx_path)}
    write_json_sidecar(engine_path, data)
    return data


def engine_card(sidecar: Mapping[str, Any], engine_path: str | os.PathLike) -> ModelCard:
    """The card an engine serves: its ONNX's, at the engine's precision and input size.

    Raises:
        ModelCardError: naming the sidecar and the field.
    """
    source = sidecar_path(engine_path)
    card = ModelCard.from_dict(sidecar.get("onnx"), source)
    shape = sidecar.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 4):
        raise ModelCardError(f"{source}: card field 'input_shape' = {shape!r}: must be "
                             "[N, H, W, 3]")
    checked = ModelCard.from_dict({**card.to_dict(), "precision": sidecar.get("precision"),
                                   "input_size": shape[1:3]}, source)
    return checked.replace(network_size=card.network_size or checked.input_size)


def describe(path: str | os.PathLike) -> ModelCard:
    """The card of a project checkpoint, an ONNX export or a TensorRT engine (by its sidecar).

    Raises:
        MissingCard: a file without a card (a seed checkpoint, an ONNX or engine without its
            sidecar).
        ModelCardError: no such file, an unreadable one, or a field out of bounds; the message
            names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelCardError(f"{path}: no such model file")
    side = sidecar_path(path)
    if side.is_file():
        data = read_json_object(side, ModelCardError)
        if data.get("format") == ONNX_SIDECAR_FORMAT:
            return ModelCard.from_dict(data, side)
        if data.get("format") == ENGINE_SIDECAR_FORMAT:
            return engine_card(data, path)
        raise ModelCardError(f"{side}: not a {ONNX_SIDECAR_FORMAT} or {ENGINE_SIDECAR_FORMAT} "
                             "sidecar")
    if path.suffix in (".onnx", ".engine", ".plan"):
        raise MissingCard(f"{path}: no sidecar ({side.name}) to describe it; export it with "
                             "bisestdc-export")
    return checkpoint_card(path)


def checkpoint_card(path: str | os.PathLike) -> ModelCard:
    """The card of a project checkpoint file (never builds the network).

    Raises:
        MissingCard: a seed checkpoint or raw state dict (no card).
        ModelCardError: unreadable file, a field out of bounds.
    """
    return checkpoint_source().checkpoint_card(path)
