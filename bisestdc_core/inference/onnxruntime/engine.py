"""ONNX Runtime engine for graphs exported by :mod:`bisestdc_core.cli.export`.

The sessions come from :mod:`.session` (providers, options, threads). The engine's
precision is the graph's: ``int8`` for QDQ graphs written by
:mod:`.quantize` (their sidecar says so), else ``fp32``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort  # the session type of _Graph

from bisestdc_core.inference.base import EngineOutput, prepare_frame, resize_map
from bisestdc_core.inference.model_files import onnx_card
from bisestdc_core.inference.onnxruntime.session import make_session
from bisestdc_core.inference.processing import DEFAULT_NETWORK_SIZE
from bisestdc_core.model_card import ModelCard
from bisestdc_core.stage_timings import StageTimings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Graph:
    """One opened graph: its session and how it is fed."""

    session: ort.InferenceSession
    card: ModelCard
    input_name: str
    input_hw: tuple[int, int] | None  # fixed input size; None: any
    output_names: tuple[str, ...]


class OnnxRuntimeEngine:
    """Runs an exported graph; handles channel order, fixed input sizes and label resizing.

    Args:
        onnx_path: graph with input ``image`` (N x H x W x 3 uint8) and outputs ``labels``
            [, ``confidence``].
        card: the graph's card (channel order, network size, precision); None reads the
            sidecar, and without one assumes RGB and the graph's own input size.
        confidence_factory: called once, lazily, to get a graph (and its card) with a
            confidence output when this one has none (the Segmenter exports such a variant on
            demand).
    """

    name = "onnxruntime"

    def __init__(
        self, onnx_path: str | os.PathLike, card: ModelCard | None = None, device: str = "cpu",
        threads: int | None = None,
        confidence_factory: Callable[[], tuple[str | os.PathLike, ModelCard]] | None = None,
    ):
        self.device = device
        self._threads = threads
        self._confidence_factory = confidence_factory
        self._graph = self._open(onnx_path, card)
        self.card = self._graph.card
        self.network_size = self.card.network_size
        self.precision = self.card.precision
        self._conf_graph: _Graph | None = None
        self._lock = threading.Lock()
        log.info("ONNX Runtime %s session on %s (%s) with %d intra-op threads", self.precision,
                 self._graph.session.get_providers()[0], Path(onnx_path).name,
                 self._graph.session.get_session_options().intra_op_num_threads)

    def _open(self, onnx_path: str | os.PathLike, card: ModelCard | None) -> _Graph:
        if not Path(onnx_path).is_file():
            raise ValueError(f"ONNX file not found: {onnx_path}")
        card = card or onnx_card(onnx_path)
        session = make_session(onnx_path, self.device, self._threads,
                               int8=card is not None and card.precision == "int8")
        inp = session.get_inputs()[0]
        if inp.type != "tensor(uint8)" or len(inp.shape) != 4 or inp.shape[3] != 3:
            raise ValueError(f"{onnx_path}: expected an N x H x W x 3 uint8 input, found "
                             f"{inp.type} {inp.shape}; export it with bisestdc-export")
        fixed = tuple(inp.shape[1:3]) if all(isinstance(d, int) for d in inp.shape[1:3]) \
            else None
        outputs = tuple(o.name for o in session.get_outputs())
        card = card or assumed_card(onnx_path, "unknown", 1)
        card = card.replace(
            channel_order=card.channel_order or "rgb", precision=card.precision or "fp32",
            network_size=card.network_size or fixed or DEFAULT_NETWORK_SIZE,
            input_size=fixed, outputs=outputs)
        return _Graph(session, card, inp.name, fixed, outputs)

    def _graph_for(self, with_confidence: bool) -> _Graph:
        if not with_confidence or "confidence" in self._graph.output_names:
            return self._graph
        if self._conf_graph is None:
            if self._confidence_factory is None:
                raise RuntimeError("this ONNX graph has no confidence output; export it with "
                                   "--confidence")
            self._conf_graph = self._open(*self._confidence_factory())
        return self._conf_graph

    def infer(self, frame: np.ndarray, channel_order: str, with_confidence: bool) -> EngineOutput:
        """frame: H x W x 3 uint8 in ``channel_order`` -> labels (and confidence) at H x W."""
        with self._lock:
            graph = self._graph_for(with_confidence)
            t0 = time.perf_counter()
            image = prepare_frame(frame, channel_order, graph.card.channel_order, graph.input_hw)
            t1 = time.perf_counter()
            wanted = ["labels"] + (["confidence"] if with_confidence else [])
            outputs = graph.session.run(wanted, {graph.input_name: image})
            t2 = time.perf_counter()
        size = frame.shape[:2]
        labels = resize_map(outputs[0][0], size)
        conf = resize_map(outputs[1][0], size) if with_confidence else None
        t3 = time.perf_counter()
        timings = StageTimings(preprocess_ms=(t1 - t0) * 1e3, inference_ms=(t2 - t1) * 1e3,
                               postprocess_ms=(t3 - t2) * 1e3)
        return EngineOutput(labels, conf, timings, network_labels=outputs[0][0])


def assumed_card(onnx_path: str | os.PathLike, model: str, num_classes: int) -> ModelCard:
    """For a graph without a sidecar: RGB input, classes as the caller says."""
    log.warning("%s has no sidecar; assuming RGB input", onnx_path)
    return ModelCard(model=model, num_classes=num_classes, source=str(onnx_path))
