"""Ahead-of-time engine builds from the exported ONNX, and the cache that reuses or heals them.

Build: ``OnnxParser`` -> ``IBuilderConfig`` (:mod:`.builder_config`: workspace, FP16/INT8,
DLA, timing cache, progress) -> ``build_serialized_network``; below 10 the network needs the
EXPLICIT_BATCH creation flag, 10 has explicit batch only. int8 scales come from a QDQ graph
or, asked for, the entropy calibrator (:mod:`.calibration`). The engine is written atomically,
then its sidecar (:mod:`.cache_key`).

NOTE: written against the TensorRT 8.5, 8.6 and 10.x Python APIs; TensorRT is not installable
in this project's CI, so the build runs on GPU machines only (test/test_tensorrt_gpu.py); the
choices around it are tested with stand-ins.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bisestdc_core.artefacts import (
    atomic_write_bytes,
    cache_dir,
    file_sha256,
    remove_stale_temps,
    sidecar_path,
)
from bisestdc_core.inference.calibration_data import CalibrationSource
from bisestdc_core.inference.model_files import onnx_card
from bisestdc_core.inference.tensorrt import builder_config
from bisestdc_core.inference.tensorrt.cache_key import (
    cache_status,
    check_precision,
    default_calibration_cache,
    default_engine_path,
    default_timing_cache_path,
    engine_cache_key,
    write_cache_sidecar,
)
from bisestdc_core.inference.tensorrt.calibration import (
    calibration_frames,
    int8_mode,
    int8_scales,
    make_calibrator,
)
from bisestdc_core.inference.tensorrt.options import TensorRTOptions
from bisestdc_core.inference.tensorrt.platform import (
    CudaContext,
    gpu_info,
    import_tensorrt,
    network_flags,
    rules_version,
    trt_logger,
)

log = logging.getLogger(__name__)


def parse_with_tensorrt(onnx_path: str | os.PathLike) -> list[str]:
    """The installed TensorRT parser's errors for ``onnx_path`` ([] when it parses).

    Raises:
        TensorRTUnavailable: TensorRT or pycuda missing, or no CUDA device for the builder.
    """
    trt, cuda = import_tensorrt()
    with CudaContext(cuda, subject=onnx_path):
        builder = trt.Builder(trt_logger())
        network = builder.create_network(network_flags(trt))
        parser = trt.OnnxParser(network, trt_logger())
        if parser.parse(Path(onnx_path).read_bytes()):
            return []
        return [str(parser.get_error(i)) for i in range(parser.num_errors)]


def parse_failure(trt, onnx_path: str | os.PathLike, parser) -> str:
    """The parser's errors plus what the documented rules say about the graph."""
    from bisestdc_core.inference.tensorrt.parser_rules import check_tensorrt_rules  # noqa: PLC0415

    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    message = f"TensorRT {trt.__version__} could not parse {onnx_path}: " + "; ".join(errors)
    version = rules_version(trt.__version__)
    if version is not None:
        problems = check_tensorrt_rules(onnx_path, (version,))[version]
        if problems:
            message += f" (parser rules for {version}: " + "; ".join(problems) + ")"
    return message


def build_engine(
    onnx_path: str | os.PathLike, engine_path: str | os.PathLike, precision: str,
    input_shape: Sequence[int], *, options: TensorRTOptions | None = None,
    channel_order: str = "rgb", calibration: CalibrationSource | None = None,
    calib_cache: str | os.PathLike | None = None, timing_cache: str | os.PathLike | None = None,
    device_index: int = 0,
) -> Path:
    """Parse the ONNX, build a serialised engine, write it atomically. Returns its path.

    Raises:
        ValueError: int8 without a usable source of scales (checked before TensorRT loads).
        TensorRTUnavailable: TensorRT missing, a CUDA failure, a DLA core the device lacks.
        RuntimeError: parse errors (listed, with the parser rules' verdict), an exception
            from the calibration frames, or a failed build.
    """
    options = options or TensorRTOptions()
    engine_path = Path(engine_path)
    cache = Path(calib_cache or engine_path.with_suffix(".calib"))
    mode = int8_mode(onnx_path, calibration, cache, options.int8_calibration) \
        if precision == "int8" else None
    if mode == "quantize":
        raise ValueError(f"{onnx_path} is a float graph: quantize it for TensorRT first "
                         "(bisestdc-quantize --int8-target tensorrt), or build with "
                         "int8_calibration implicit")
    trt, cuda = import_tensorrt()
    with CudaContext(cuda, device_index, onnx_path):
        builder = trt.Builder(trt_logger())
        network = builder.create_network(network_flags(trt))
        parser = trt.OnnxParser(network, trt_logger())
        if not parser.parse(Path(onnx_path).read_bytes()):
            raise RuntimeError(parse_failure(trt, onnx_path, parser))
        config, profile = builder_config.configure_build(
            trt, builder, network, precision, input_shape, options, onnx_path)
        calibrator = None
        if mode in ("calibrate", "cache"):
            log.warning("implicit int8 calibration (deprecated from TensorRT 10.1); the "
                        "default int8_calibration qdq builds from a QDQ graph instead")
            shape = tuple(int(v) for v in input_shape)
            frames = calibration_frames(shape, channel_order, calibration)
            calibrator = make_calibrator(trt, cuda, frames, int(np.prod(shape)), cache)
            config.int8_calibrator = calibrator
            if profile is not None:
                config.set_calibration_profile(profile)
        if timing_cache is not None:
            builder_config.load_timing_cache(config, Path(timing_cache))
        monitored = builder_config.attach_progress_monitor(trt, config)
        log.info("building TensorRT %s engine from %s (%s; minutes on small devices)",
                 precision, onnx_path, f"int8 scales: {mode}" if mode else "no calibration")
        start = time.perf_counter()
        try:
            serialized = builder.build_serialized_network(network, config)
        finally:
            if calibrator is not None:
                calibrator.free()
        if calibrator is not None and calibrator.feed.error is not None:
            source = calibration.describe() if mode == "calibrate" else f"cache {cache}"
            raise RuntimeError(f"int8 calibration from {source} failed: "
                               f"{calibrator.feed.error}") from calibrator.feed.error
        if serialized is None:
            raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
        if not monitored:  # 8.x: no progress monitor, so at least the end of the build
            log.info("TensorRT build finished after %.0f s", time.perf_counter() - start)
        if timing_cache is not None:
            builder_config.save_timing_cache(config, Path(timing_cache))
    atomic_write_bytes(engine_path, bytes(serialized))
    log.info("built %s in %.0f s", engine_path, time.perf_counter() - start)
    return engine_path


def ensure_engine(
    onnx_path: str | os.PathLike, engine_path: str | os.PathLike | None = None,
    precision: str = "fp16", *, options: TensorRTOptions | None = None, device_index: int = 0,
    calibration: CalibrationSource | None = None, calib_cache: str | os.PathLike | None = None,
) -> Path:
    """Reuse a valid cached engine for this ONNX/GPU/TensorRT/precision/shape/build settings,
    or build one; a stale or damaged engine is rebuilt with one log line saying why.

    ``engine_path`` None puts the engine in the cache folder under a name derived from the key.
    int8 inputs are checked before TensorRT is loaded (see :func:`.calibration.int8_mode`).
    """
    options = options or TensorRTOptions()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ValueError(f"ONNX file not found: {onnx_path}")
    check_precision(precision)
    onnx_sha256 = file_sha256(onnx_path)
    mode = None
    if precision == "int8":
        if calib_cache is None and engine_path is not None:
            calib_cache = default_calibration_cache(engine_path, onnx_sha256)
        mode = int8_mode(onnx_path, calibration, calib_cache, options.int8_calibration)
        if mode == "quantize":
            raise ValueError(f"{onnx_path} is a float graph: int8_calibration qdq builds from "
                             "a QDQ graph (bisestdc-quantize --int8-target tensorrt, or "
                             "bisestdc-export --tensorrt --precision int8 makes one)")
    trt, _ = import_tensorrt()
    card = onnx_card(onnx_path)
    if card is None:
        raise ValueError(f"{onnx_path}: no sidecar ({sidecar_path(onnx_path).name}); export it "
                         "with bisestdc-export")
    # A dynamic export is built for the network size.
    shape = [1, *(card.input_size or card.network_size), 3]
    gpu = gpu_info(device_index, onnx_path)
    scales = None
    if mode is not None:
        if calib_cache is None:  # engine in the cache: the calibration cache goes there too
            calib_cache = cache_dir("tensorrt") / f"{onnx_sha256[:16]}.calib"
        scales = int8_scales(mode, onnx_path, calibration, calib_cache)
    key = engine_cache_key(onnx_sha256, gpu, trt.__version__, precision, shape,
                           int8_scales=scales, workspace_mb=options.workspace_mb,
                           dla_core=options.dla_core)
    engine_path = Path(engine_path) if engine_path else default_engine_path(
        cache_dir("tensorrt"), key)
    reasons = cache_status(engine_path, key)
    if not reasons:
        log.info("reusing TensorRT engine %s", engine_path)
        return engine_path
    if engine_path.is_file():
        log.info("rebuilding TensorRT engine %s: %s", engine_path, "; ".join(reasons))
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(engine_path.parent)  # engines of builds killed while writing
    timing_cache = Path(options.timing_cache) if options.timing_cache else \
        default_timing_cache_path(cache_dir("tensorrt"), gpu, trt.__version__)
    build_engine(onnx_path, engine_path, precision, shape, options=options,
                 channel_order=card.channel_order or "rgb", calibration=calibration,
                 calib_cache=calib_cache or default_calibration_cache(engine_path, onnx_sha256),
                 timing_cache=timing_cache, device_index=device_index)
    write_cache_sidecar(engine_path, key, onnx_path)
    return engine_path
