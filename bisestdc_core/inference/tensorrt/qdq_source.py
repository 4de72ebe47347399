"""The explicitly quantized (QDQ) graph an int8 engine is built from, made when only a float
graph is at hand (``int8_calibration: qdq``, the default).

With a calibration source (image folder, or bag and topic) the float graph is quantized for
TensorRT on those frames into the engine cache, keyed by the float graph's hash and the
source; without one (weights only: latency runs, quick starts) on generated scenes, with a
warning, as ONNX Runtime's int8 does. Both go through
:func:`bisestdc_core.inference.onnxruntime.quantize.quantize_from_sources` with
``target="tensorrt"`` (symmetric int8 activations, TensorRT's graph rewrites).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from bisestdc_core.artefacts import atomic_path, cache_dir, file_sha256, remove_stale_temps
from bisestdc_core.inference.calibration_data import CalibrationSource
from bisestdc_core.inference.model_files import read_sidecar

log = logging.getLogger(__name__)
TARGET = "tensorrt"


def qdq_graph_for(onnx_path: str | os.PathLike,
                  calibration: CalibrationSource | None) -> Path:
    """A TensorRT-target QDQ copy of the float graph ``onnx_path`` (reused while its recorded
    float source still matches)."""
    from bisestdc_core.inference.onnxruntime import quantize  # noqa: PLC0415 - only for int8

    onnx_path = Path(onnx_path)
    if calibration is None or not calibration.given:
        return quantize.quantize_cached(onnx_path, target=TARGET)
    calibration.validate()
    source = {"images": str(calibration.images) if calibration.images else None,
              "bag": str(calibration.bag) if calibration.bag else None,
              "topic": calibration.topic, "count": calibration.count}
    fp32_sha = file_sha256(onnx_path)
    tag = hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:12]
    out = cache_dir(TARGET) / f"{fp32_sha[:16]}.int8-{TARGET}-{tag}.onnx"
    sidecar = read_sidecar(out) if out.is_file() else None
    if sidecar is not None and sidecar.get("sha256") == file_sha256(out) and \
            sidecar["quantization"]["fp32_source"]["sha256"] == fp32_sha:
        log.info("reusing QDQ graph %s", out)
        return out
    log.info("quantizing %s for TensorRT on %s", onnx_path.name, calibration.describe())
    remove_stale_temps(out.parent)
    with atomic_path(out, companions=(".json",)) as tmp:
        quantize.quantize_from_sources(
            onnx_path, tmp, target=TARGET, calib_images=source["images"],
            calib_bag=source["bag"], calib_topic=calibration.topic,
            calib_count=calibration.count, float_layers=quantize.DEFAULT_FLOAT_LAYERS)
    return out
