"""The Segmenter's TensorRT engine: a prebuilt, fixed-shape engine checked against its sidecar,
run by :class:`.runtime.TensorRTRunner`, plus host-side resizing."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bisestdc_core.artefacts import sidecar_path
from bisestdc_core.inference.base import EngineOutput, prepare_frame, resize_map
from bisestdc_core.inference.model_files import (
    ENGINE_SIDECAR_FORMAT,
    engine_card,
    read_engine_sidecar,
)
from bisestdc_core.inference.tensorrt.cache_key import engine_file_problems, stale_fields
from bisestdc_core.inference.tensorrt.options import TensorRTOptions
from bisestdc_core.inference.tensorrt.platform import gpu_info, import_tensorrt
from bisestdc_core.inference.tensorrt.runtime import TensorRTRunner
from bisestdc_core.stage_timings import StageTimings

if TYPE_CHECKING:
    from bisestdc_core.model_card import ModelCard

log = logging.getLogger(__name__)


def use_zero_copy(setting: str, integrated: bool) -> bool:
    """``zero_copy`` auto/on/off -> whether to map host buffers (auto: integrated GPUs)."""
    return setting == "on" or (setting == "auto" and integrated)


class TensorRTEngine:
    """A prebuilt engine (with its ``.json`` sidecar) on ``cuda:<device_index>``.

    Raises:
        ValueError: no sidecar.
        RuntimeError: built for another GPU or TensorRT version, or a file that is not the
            engine its sidecar describes.
        TensorRTUnavailable: TensorRT/pycuda failures (see :class:`.runtime.TensorRTRunner`).
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike, device_index: int = 0,
                 options: TensorRTOptions | None = None):
        options = options or TensorRTOptions()
        sidecar = read_engine_sidecar(engine_path)
        if sidecar is None:
            raise ValueError(f"{engine_path}: no {ENGINE_SIDECAR_FORMAT} sidecar "
                             f"({sidecar_path(engine_path).name}); build the engine with "
                             "bisestdc-export --tensorrt")
        trt, _ = import_tensorrt()
        gpu = gpu_info(device_index, engine_path)
        current = {**sidecar, "gpu_name": gpu["name"],
                   "compute_capability": gpu["compute_capability"],
                   "tensorrt_version": trt.__version__}
        reasons = stale_fields(sidecar, current)
        if reasons:
            raise RuntimeError(f"{engine_path} does not fit this device or this bisestdc "
                               f"({'; '.join(reasons)}); rebuild it here with "
                               "bisestdc-export --tensorrt")
        damage = engine_file_problems(engine_path, sidecar)
        if damage:
            raise RuntimeError(f"{engine_path}: {'; '.join(damage)}; rebuild it with "
                               "bisestdc-export --tensorrt")
        self.engine_path = Path(engine_path)
        self.card: ModelCard = engine_card(sidecar, engine_path)
        self.precision = self.card.precision
        self.device = f"cuda:{device_index}"
        self.channel_order = self.card.channel_order or "rgb"
        self.network_size = self.card.network_size
        zero_copy = use_zero_copy(options.zero_copy, gpu["integrated"])
        self.runner = TensorRTRunner(engine_path, device_index, zero_copy=zero_copy,
                                     cuda_graph=options.cuda_graph,
                                     profile_layers=options.profile_layers)
        log.info("TensorRT engine %s (%s buffers%s%s)", engine_path,
                 "zero-copy" if zero_copy else "device", ", CUDA graph" if options.cuda_graph
                 else "", f", layer profile every {options.profile_layers} frames"
                 if options.profile_layers else "")
        self.input_hw = tuple(self.runner.input_shape()[1:3])
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self.runner.close()

    def infer(self, frame: np.ndarray, channel_order: str, with_confidence: bool) -> EngineOutput:
        if with_confidence and "confidence" not in self.runner.outputs:
            raise RuntimeError("this engine has no confidence output; export with --confidence")
        t0 = time.perf_counter()
        image = prepare_frame(frame, channel_order, self.channel_order, self.input_hw)
        t1 = time.perf_counter()
        with self._lock:
            outputs = self.runner.infer(image)
        t2 = time.perf_counter()
        size = frame.shape[:2]
        labels = resize_map(outputs["labels"][0], size)
        conf = resize_map(outputs["confidence"][0], size) if with_confidence else None
        t3 = time.perf_counter()
        timings = StageTimings(preprocess_ms=(t1 - t0) * 1e3, inference_ms=(t2 - t1) * 1e3,
                               postprocess_ms=(t3 - t2) * 1e3)
        return EngineOutput(labels, conf, timings, network_labels=outputs["labels"][0])
