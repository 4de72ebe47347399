"""Where an int8 engine's scales come from, checked before any build starts.

Two ways (:data:`.options.INT8_CALIBRATIONS`):

* ``qdq`` (default, the TensorRT 10 way): an explicitly quantized graph carries its scales
  (QuantizeLinear/DequantizeLinear nodes); TensorRT builds it with no calibrator. A float
  graph is first quantized for TensorRT (symmetric int8 activations) by
  :func:`bisestdc_core.inference.onnxruntime.quantize.quantize_from_sources`
  (``target="tensorrt"``) on the calibration frames. TensorRT parses QDQ graphs since 8.0, so
  every version this package runs on (8.5+) takes this way.
* ``implicit``: ``IInt8EntropyCalibrator2`` fed from an image folder or a rosbag topic, with a
  calibration cache file; deprecated from TensorRT 10.1, so only when asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bisestdc_core.artefacts import atomic_write_bytes, file_sha256
from bisestdc_core.inference.base import prepare_frame
from bisestdc_core.inference.calibration_data import CalibrationSource
from bisestdc_core.inference.model_files import read_sidecar
from bisestdc_core.inference.tensorrt.platform import step

log = logging.getLogger(__name__)


def int8_mode(onnx_path: str | os.PathLike | None, calibration: CalibrationSource | None,
              calib_cache: str | os.PathLike | None, int8_calibration: str = "qdq") -> str:
    """How an int8 engine gets its scales, checked (sources validated) before any build.

    ``onnx_path`` None stands for a graph still to be exported from weights (never QDQ).

    Returns:
        ``qdq`` (the graph carries them), ``quantize`` (make a QDQ graph first: from the
        validated source, or, for weights without a source, generated scenes), ``calibrate``
        (implicit, from a validated source) or ``cache`` (implicit, an existing cache file).

    Raises:
        ValueError: none of these applies, or an invalid source (the message names it).
    """
    from bisestdc_core.inference.tensorrt.parser_rules import is_explicitly_quantized  # noqa: PLC0415

    if onnx_path is not None and is_explicitly_quantized(onnx_path):
        return "qdq"
    given = calibration is not None and calibration.given
    if given:
        calibration.validate()
    graph = onnx_path or "the exported weights"
    if int8_calibration == "qdq":
        if given or onnx_path is None:
            return "quantize"
        raise ValueError(
            f"int8 from {graph} needs a calibration source (an image folder, or a bag and its "
            "image topic) to quantize it with, or an explicitly quantized (QDQ) ONNX "
            "(bisestdc-quantize --int8-target tensorrt); a calibration cache serves only "
            "int8_calibration implicit")
    if given:
        return "calibrate"
    if calib_cache is not None and Path(calib_cache).is_file():
        return "cache"
    cache_note = f" (no calibration cache at {calib_cache})" if calib_cache else ""
    raise ValueError(
        f"int8 from {graph} needs a calibration source (an image folder, or a bag and its "
        f"image topic), an existing calibration cache, or an explicitly quantized (QDQ) "
        f"ONNX{cache_note}")


def int8_scales(mode: str, onnx_path: str | os.PathLike, calibration: CalibrationSource | None,
                calib_cache: str | os.PathLike | None) -> dict[str, Any]:
    """The cache key's record of where the scales come from (see :func:`int8_mode`).

    qdq: the graph's sha256 and the calibration its sidecar records (folder, bag and topic,
    or generated scenes with count and seed); calibrate: the source; cache: the cache's hash.
    """
    if mode == "qdq":
        quantization = (read_sidecar(onnx_path) or {}).get("quantization") or {}
        return {"quantization": "explicit", "qdq_sha256": file_sha256(onnx_path),
                "calibration": quantization.get("calibration")}
    if mode == "calibrate":
        source = ({"images": str(calibration.images)} if calibration.images else
                  {"bag": str(calibration.bag), "topic": calibration.topic})
        return {"quantization": "implicit", "source": {**source, "count": calibration.count}}
    if mode == "cache":
        return {"quantization": "implicit", "calibration_cache_sha256": file_sha256(calib_cache)}
    raise ValueError(f"int8 mode {mode!r} has no scales yet (quantize the graph first)")


def calibration_frames(input_shape: Sequence[int], channel_order: str,
                       calibration: CalibrationSource | None) -> Iterator[np.ndarray]:
    """1 x H x W x 3 uint8 frames at the engine input size, in its channel order (none when
    only a cache is used)."""
    if calibration is None or not calibration.given:
        return
    height, width = int(input_shape[1]), int(input_shape[2])
    for rgb in calibration.frames():
        # The same host resize the runner applies, so calibration sees what inference sees.
        yield prepare_frame(rgb, "rgb", channel_order, (height, width))


class CalibrationFeed:
    """The calibrator's batches, with any exception kept instead of thrown into TensorRT.

    TensorRT calls ``get_batch`` from C++, which turns a Python exception into a bare build
    failure; the feed keeps the exception in ``error`` and ends calibration, and the build
    re-raises it afterwards.

    Args:
        frames: engine-ready input arrays.
        upload: copies one array to the device buffer and returns its address.
        cache_file: named in the error when there is no frame at all.
    """

    def __init__(self, frames: Iterator[np.ndarray], upload: Any, cache_file: Path):
        self._frames = frames
        self._upload = upload
        self._cache_file = cache_file
        self.used = 0
        self.error: BaseException | None = None

    def next_batch(self) -> list[int] | None:
        """Device addresses of the next batch, or None when calibration is over."""
        if self.error is not None:
            return None
        try:
            frame = next(self._frames, None)
            if frame is None:
                if self.used == 0:
                    raise RuntimeError(
                        f"no calibration frames: the calibration cache {self._cache_file} was "
                        "missing or not accepted, and no calibration source gave a frame")
                log.info("calibration used %d frames", self.used)
                return None
            address = self._upload(np.ascontiguousarray(frame))
        except Exception as exc:  # noqa: BLE001 - kept and re-raised after the build
            self.error = exc
            return None
        self.used += 1
        return [int(address)]


def make_calibrator(trt: Any, cuda: Any, frames: Iterator[np.ndarray], nbytes: int,
                    cache_file: Path) -> Any:
    """An IInt8EntropyCalibrator2 (the class needs trt at definition time, hence a factory)."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            with step(cuda, "calibration buffer allocation", cache_file):
                self.device_input = cuda.mem_alloc(nbytes)
            self.feed = CalibrationFeed(frames, self._upload, cache_file)

        def _upload(self, frame: np.ndarray) -> int:
            cuda.memcpy_htod(self.device_input, frame)
            return int(self.device_input)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):  # noqa: ARG002 - one input
            return self.feed.next_batch()

        def read_calibration_cache(self):
            if cache_file.is_file():
                log.info("using calibration cache %s", cache_file)
                return cache_file.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            atomic_write_bytes(cache_file, bytes(cache))
            log.info("wrote calibration cache %s", cache_file)

        def free(self) -> None:
            """Release the device buffer; call with the CUDA context pushed."""
            with step(cuda, "calibration buffer release", cache_file):
                self.device_input.free()

    return EntropyCalibrator()
