"""TensorRT engines: ahead-of-time build from the exported ONNX, an on-disk cache, a runner.

NOTE: this path is written against the TensorRT 8.5, 8.6 and 10.x Python APIs and the pycuda
API; it has not been executed in this project's environment (no GPU, no TensorRT there). The
cache key, the int8 input checks and the version dispatch are pure Python and unit-tested; the
exported graphs are checked against the ONNX parser's rules (:mod:`.tensorrt_rules`).

* Build: ``OnnxParser`` -> ``IBuilderConfig`` (workspace pool limit, FP16 / INT8 flags) ->
  ``build_serialized_network``. Below 10 the network needs the EXPLICIT_BATCH creation flag;
  10 has explicit batch only, so ``create_network(0)``. int8 comes either from an explicitly
  quantized (QDQ) graph, which needs no calibrator and is the way on TensorRT 10 (implicit
  calibration is deprecated there), or from ``IInt8EntropyCalibrator2`` fed from an image folder
  or a rosbag topic, validated before the builder starts, with a calibration cache file.
* Cache: ``<engine>.json`` beside each engine records the key (ONNX sha256, GPU name, compute
  capability, TensorRT version, precision, input shape). A valid cache is reused; a stale one
  is rebuilt with a log line naming exactly which key changed. Engines are not portable across
  GPUs or TensorRT versions, hence the key.
* Run: page-locked host buffers, device buffers, one stream, async copies. TensorRT 8.5 and
  later use the tensor API (``set_tensor_address``, ``execute_async_v3``); older versions the
  bindings API (``execute_async_v2``). Every pycuda allocation is freed with its context pushed.
* Jetson: no discrete GPU is assumed. On Jetson (``INTEGRATED`` device attribute) host and
  device share one DRAM (unified memory), so the "copies" are cheap DRAM-to-DRAM moves; mapped
  zero-copy buffers could skip them, but the explicit copies keep one code path for both.

Errors: pycuda's exceptions derive from ``Exception``, not RuntimeError, and TensorRT reports
some failures by returning None; every TensorRT/pycuda failure (import, cuInit, device and
context, allocation, deserialisation, execution-context creation, execution) is raised as the
one :class:`TensorRTUnavailable` (a RuntimeError) whose one-line message names the step and the
engine or ONNX file, so ``auto`` falls back and the node reports it in one line.

``tensorrt`` and ``pycuda`` are imported lazily, only inside functions; the one TensorRT logger
(:func:`trt_logger`) is created on first use and shared by every builder, parser and runtime.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import platform
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..safe_files import atomic_write_bytes, remove_stale_temps
from ..stage_timings import StageTimings
from .base import EngineOutput, prepare_frame, resize_map
from .calibration_data import CalibrationSource
from .cuda_probe import cuda_available
from .model_files import (
    ENGINE_SIDECAR_FORMAT,
    engine_card,
    onnx_card,
    read_engine_sidecar,
    sidecar_path,
    write_engine_sidecar,
)
from .registry import ENGINES

if TYPE_CHECKING:
    from ..model_card import ModelCard
    from .registry import EngineRequest

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "TensorRT Python bindings not found: install TensorRT 8.5+ (pip install tensorrt, or "
    "JetPack's python3-libnvinfer) and pycuda"
)
# The first version with the name-based tensor API (set_tensor_address, execute_async_v3).
TENSOR_API_SINCE = (8, 5)
# Every field that makes a serialised engine unusable when it changes.
CACHE_KEY_FIELDS = (
    "onnx_sha256", "gpu_name", "compute_capability", "tensorrt_version", "precision",
    "input_shape",
)


# ---- cache key and staleness (pure Python) --------------------------------------------------

def engine_cache_key(
    onnx_sha256: str, gpu: dict[str, Any], tensorrt_version: str, precision: str,
    input_shape: Sequence[int],
) -> dict[str, Any]:
    """The dict that identifies an engine build.

    Args:
        onnx_sha256: hex digest of the ONNX file.
        gpu: ``{"name": str, "compute_capability": [major, minor]}`` (see :func:`gpu_info`).
        tensorrt_version: ``tensorrt.__version__``.
        precision: fp16, fp32 or int8.
        input_shape: N x H x W x 3 of the input the engine is built for.
    """
    _check_precision(precision)
    return {
        "onnx_sha256": str(onnx_sha256),
        "gpu_name": str(gpu["name"]),
        "compute_capability": [int(v) for v in gpu["compute_capability"]],
        "tensorrt_version": str(tensorrt_version),
        "precision": precision,
        "input_shape": [int(v) for v in input_shape],
    }


def stale_fields(stored: dict[str, Any] | None, expected: dict[str, Any]) -> list[str]:
    """Human-readable reasons why a cached engine does not match ``expected``; [] if valid.

    Each reason names the key and both values, e.g. ``gpu_name: 'Orin' -> 'NVIDIA H100'``.
    """
    if stored is None:
        return ["no cache sidecar"]
    reasons = []
    for key in CACHE_KEY_FIELDS:
        if key not in stored:
            reasons.append(f"{key}: missing from sidecar")
        elif stored[key] != expected[key]:
            reasons.append(f"{key}: {stored[key]!r} -> {expected[key]!r}")
    return reasons


def _check_precision(precision: str) -> None:
    precisions = ENGINES[TensorRTEngine.name].precisions
    if precision not in precisions:
        raise ValueError(f"precision must be one of {precisions}, got {precision!r}")


def cache_status(engine_path: str | os.PathLike, expected: dict[str, Any]) -> list[str]:
    """Reasons to rebuild ``engine_path`` for ``expected``; [] means reuse it."""
    if not Path(engine_path).is_file():
        return ["no engine file"]
    return stale_fields(read_engine_sidecar(engine_path), expected)


def default_engine_path(cache_root: Path, key: dict[str, Any]) -> Path:
    """A file name that differs whenever the key does (readable parts + the ONNX hash)."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", key["gpu_name"]).strip("-").lower()
    cc = "".join(str(v) for v in key["compute_capability"])
    shape = "x".join(str(v) for v in key["input_shape"][1:3])
    name = (f"{key['onnx_sha256'][:16]}-{shape}-{key['precision']}-{gpu}-sm{cc}-"
            f"trt{key['tensorrt_version']}.engine")
    return cache_root / name


# ---- the one error type, lazy imports, versions and device facts ----------------------------

class TensorRTUnavailable(RuntimeError):
    """A TensorRT or pycuda failure: import, cuInit, device/context, allocation,
    deserialisation, execution-context creation or a frame's execution.

    pycuda's ``pycuda.driver.Error`` (and its ``MemoryError``, ``LogicError``, ``LaunchError``
    and ``RuntimeError``) derives from ``Exception``, not the builtin RuntimeError, so it would
    escape ``auto``'s fallback and the node's start-up handling; every such failure is turned
    into this one RuntimeError, with a one-line message naming the step and, where known, the
    engine (or ONNX) file.

    Attributes:
        step: what failed (``import``, ``CUDA initialisation (cuInit)``, ...).
        detail: the underlying reason, on one line.
        subject: the engine or ONNX file, or None.
    """

    def __init__(self, step: str, detail: object, subject: str | os.PathLike | None = None):
        self.step = step
        self.detail = " ".join(str(detail).split())
        self.subject = subject
        where = f" ({subject})" if subject is not None else ""
        super().__init__(f"TensorRT {step} failed{where}: {self.detail}")

    def about(self, subject: str | os.PathLike) -> TensorRTUnavailable:
        """The same failure naming ``subject``."""
        return TensorRTUnavailable(self.step, self.detail, subject)


@contextlib.contextmanager
def _step(cuda: Any, step: str, subject: str | os.PathLike | None = None) -> Iterator[None]:
    """Turn a pycuda error or a TensorRT binding's RuntimeError inside the block into
    :class:`TensorRTUnavailable` for ``step``."""
    try:
        yield
    except TensorRTUnavailable:
        raise
    except (cuda.Error, RuntimeError) as error:
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise TensorRTUnavailable(step, detail, subject) from error


def import_tensorrt() -> tuple[Any, Any]:
    """``(tensorrt, pycuda.driver)``, or TensorRTUnavailable saying what to install."""
    try:
        import pycuda.driver as cuda  # noqa: PLC0415
        import tensorrt as trt  # noqa: PLC0415
    except (ImportError, OSError) as exc:  # OSError: a shared library that does not load
        raise TensorRTUnavailable("import", f"{INSTALL_HINT} ({exc})") from exc
    return trt, cuda


def tensorrt_available() -> tuple[bool, str]:
    """Whether TensorRT and pycuda import; the reason when not."""
    try:
        trt, _ = import_tensorrt()
    except RuntimeError as exc:
        return False, str(exc)
    return True, f"TensorRT {trt.__version__}"


def parse_version(version: str) -> tuple[int, int]:
    """``"8.6.1.6"`` -> ``(8, 6)``."""
    parts = (str(version).split(".") + ["0"])[:2]
    try:
        return int(parts[0]), int(parts[1])
    except ValueError as exc:
        raise ValueError(f"not a TensorRT version: {version!r}") from exc


def uses_tensor_api(version: str) -> bool:
    """TensorRT 8.5 and later: name-based tensors; older: binding indices."""
    return parse_version(version) >= TENSOR_API_SINCE


def needs_explicit_batch_flag(version: str) -> bool:
    """Below 10 a network is implicit-batch unless EXPLICIT_BATCH is set; 10 has no other."""
    return parse_version(version) < (10, 0)


def rules_version(version: str) -> str | None:
    """The :data:`.tensorrt_rules.RULES` entry for an installed TensorRT, None when none fits."""
    from .tensorrt_rules import RULES  # noqa: PLC0415

    major, minor = parse_version(version)
    for key in (f"{major}.{minor}", str(major)):
        if key in RULES:
            return key
    return None


@functools.cache
def trt_logger() -> Any:
    """The process' one TensorRT logger (TensorRT expects a single logger per process)."""
    trt, _ = import_tensorrt()
    return trt.Logger(trt.Logger.WARNING)


def gpu_info(device_index: int = 0, subject: str | os.PathLike | None = None) -> dict[str, Any]:
    """Name, compute capability and integrated (Jetson) flag of a CUDA device, via pycuda.

    Raises:
        TensorRTUnavailable: no TensorRT/pycuda, cuInit or the device query failed (the
            message names ``subject``, the engine or ONNX file, when given).
    """
    _, cuda = import_tensorrt()
    with _step(cuda, "CUDA initialisation (cuInit)", subject):
        cuda.init()
    with _step(cuda, f"CUDA device {device_index} query", subject):
        device = cuda.Device(device_index)
        return {
            "name": device.name(),
            "compute_capability": list(device.compute_capability()),
            "integrated": bool(device.get_attribute(cuda.device_attribute.INTEGRATED)),
            "total_memory": int(device.total_memory()),
        }


def installed_lines() -> list[str]:
    """What the TensorRT path finds on this machine: Python, TensorRT, pycuda, CUDA devices."""
    lines = [f"Python {platform.python_version()} ({platform.machine()})"]
    try:
        import tensorrt as trt  # noqa: PLC0415

        api = "tensor API" if uses_tensor_api(trt.__version__) else "bindings API"
        lines.append(f"TensorRT {trt.__version__} ({api}; parser rules "
                     f"{rules_version(trt.__version__) or 'unknown for this version'})")
    except ImportError as exc:
        lines.append(f"TensorRT: not importable ({exc})")
    try:
        import pycuda  # noqa: PLC0415
        import pycuda.driver as cuda  # noqa: PLC0415
    except ImportError as exc:
        lines.append(f"pycuda: not importable ({exc}); CUDA devices: unknown")
        return lines
    cuda_version = ".".join(str(v) for v in cuda.get_version())
    lines.append(f"pycuda {pycuda.VERSION_TEXT} (built for CUDA {cuda_version})")
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as exc:
        lines.append(f"CUDA devices: none usable ({exc})")
        return lines
    for index in range(count):
        try:
            info = gpu_info(index)
        except TensorRTUnavailable as exc:
            lines.append(f"CUDA device {index}: not usable ({exc})")
            continue
        kind = "integrated (Jetson)" if info["integrated"] else "discrete"
        cc = ".".join(str(v) for v in info["compute_capability"])
        lines.append(f"CUDA device {index}: {info['name']}, compute capability {cc}, {kind}, "
                     f"{info['total_memory'] / 2**30:.1f} GiB")
    if count == 0:
        lines.append("CUDA devices: none")
    return lines


def parse_with_tensorrt(onnx_path: str | os.PathLike) -> list[str]:
    """The installed TensorRT parser's errors for ``onnx_path`` ([] when it parses).

    Raises:
        TensorRTUnavailable: TensorRT or pycuda missing, or no CUDA device for the builder.
    """
    trt, cuda = import_tensorrt()
    with _CudaContext(cuda, subject=onnx_path):
        builder = trt.Builder(trt_logger())
        network = builder.create_network(_network_flags(trt))
        parser = trt.OnnxParser(network, trt_logger())
        if parser.parse(Path(onnx_path).read_bytes()):
            return []
        return [str(parser.get_error(i)) for i in range(parser.num_errors)]


class _CudaContext:
    """The device's primary context (shared with PyTorch's runtime API), pushed per use.

    ``pycuda.autoinit`` would create a second context and bind it to the importing thread;
    the node calls from a worker thread, so push/pop around every use instead.
    """

    def __init__(self, cuda: Any, device_index: int = 0,
                 subject: str | os.PathLike | None = None):
        self._cuda, self._subject = cuda, subject
        with _step(cuda, "CUDA initialisation (cuInit)", subject):
            cuda.init()
        with _step(cuda, f"CUDA device {device_index} context creation", subject):
            self._ctx = cuda.Device(device_index).retain_primary_context()

    def __enter__(self):
        with _step(self._cuda, "CUDA context push", self._subject):
            self._ctx.push()
        return self

    def __exit__(self, *exc):
        self._ctx.pop()
        return False


def _network_flags(trt: Any) -> int:
    if needs_explicit_batch_flag(trt.__version__):
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


# ---- INT8 inputs and calibration ------------------------------------------------------------

def default_calibration_cache(engine_path: str | os.PathLike, onnx_sha256: str) -> Path:
    """``<engine stem>.<onnx sha256[:16]>.calib`` beside the engine.

    Scales belong to the weights they were measured on: a cache named after the ONNX's hash is
    never reused for an engine rebuilt from new weights.
    """
    engine_path = Path(engine_path)
    return engine_path.with_name(f"{engine_path.stem}.{onnx_sha256[:16]}.calib")


def int8_mode(onnx_path: str | os.PathLike | None, calibration: CalibrationSource | None,
              calib_cache: str | os.PathLike | None) -> str:
    """How an int8 engine gets its scales, checked before any build starts.

    ``onnx_path`` None stands for a graph still to be exported from weights (never QDQ).

    Returns:
        ``qdq`` (an explicitly quantized graph carries them), ``calibrate`` (from a validated
        source), or ``cache`` (an existing calibration cache file, no source).

    Raises:
        ValueError: none of the three, or an invalid source (the message names it).
    """
    from .tensorrt_rules import is_explicitly_quantized  # noqa: PLC0415

    if onnx_path is not None and is_explicitly_quantized(onnx_path):
        return "qdq"
    if calibration is not None and calibration.given:
        calibration.validate()
        return "calibrate"
    if calib_cache is not None and Path(calib_cache).is_file():
        return "cache"
    cache_note = f" (no calibration cache at {calib_cache})" if calib_cache else ""
    graph = onnx_path or "the exported weights"
    raise ValueError(
        f"int8 from {graph} needs a calibration source (an image folder, or a bag and its "
        f"image topic), an existing calibration cache, or an explicitly quantized (QDQ) "
        f"ONNX{cache_note}")


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
    failure; the feed keeps the exception in ``error`` and ends calibration, and
    :func:`build_engine` re-raises it after the build.

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


def _make_calibrator(trt: Any, cuda: Any, frames: Iterator[np.ndarray], nbytes: int,
                     cache_file: Path) -> Any:
    """An IInt8EntropyCalibrator2 (the class needs trt at definition time, hence a factory)."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            with _step(cuda, "calibration buffer allocation", cache_file):
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
            with _step(cuda, "calibration buffer release", cache_file):
                self.device_input.free()

    return EntropyCalibrator()


# ---- build ----------------------------------------------------------------------------------

def build_engine(
    onnx_path: str | os.PathLike, engine_path: str | os.PathLike, precision: str,
    input_shape: Sequence[int], *, workspace_mb: int = 2048, channel_order: str = "rgb",
    calibration: CalibrationSource | None = None, calib_cache: str | os.PathLike | None = None,
) -> Path:
    """Parse the ONNX, build a serialised engine, write it atomically. Returns its path.

    Raises:
        ValueError: int8 without a usable source of scales (checked before TensorRT loads).
        RuntimeError: TensorRT missing, parse errors (listed, with the parser rules' verdict),
            an exception from the calibration frames, or a failed build.
    """
    engine_path = Path(engine_path)
    cache = Path(calib_cache or engine_path.with_suffix(".calib"))
    mode = int8_mode(onnx_path, calibration, cache) if precision == "int8" else None
    trt, cuda = import_tensorrt()
    with _CudaContext(cuda):
        builder = trt.Builder(trt_logger())
        network = builder.create_network(_network_flags(trt))
        parser = trt.OnnxParser(network, trt_logger())
        if not parser.parse(Path(onnx_path).read_bytes()):
            raise RuntimeError(_parse_failure(trt, onnx_path, parser))
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
        shape = tuple(int(v) for v in input_shape)
        profile = None
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            if any(d < 0 for d in tensor.shape):  # dynamic ONNX: pin the one shape we serve
                profile = profile or builder.create_optimization_profile()
                profile.set_shape(tensor.name, shape, shape, shape)
        if profile is not None:
            config.add_optimization_profile(profile)
        if precision != "fp32":
            if not builder.platform_has_fast_fp16:
                log.warning("this GPU has no fast fp16; TensorRT may pick fp32 kernels")
            config.set_flag(trt.BuilderFlag.FP16)  # int8 falls back to fp16, not fp32
        calibrator = None
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            if mode != "qdq":
                if not needs_explicit_batch_flag(trt.__version__):
                    log.warning("TensorRT %s deprecates implicit int8 calibration; an "
                                "explicitly quantized (QDQ) ONNX builds without it",
                                trt.__version__)
                frames = calibration_frames(shape, channel_order, calibration)
                calibrator = _make_calibrator(trt, cuda, frames, int(np.prod(shape)), cache)
                config.int8_calibrator = calibrator
                if profile is not None:
                    config.set_calibration_profile(profile)
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
    atomic_write_bytes(engine_path, bytes(serialized))
    log.info("built %s in %.0f s", engine_path, time.perf_counter() - start)
    return engine_path


def _parse_failure(trt: Any, onnx_path: str | os.PathLike, parser: Any) -> str:
    """The parser's errors plus what the documented rules say about the graph."""
    from .tensorrt_rules import check_tensorrt_rules  # noqa: PLC0415

    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    message = f"TensorRT {trt.__version__} could not parse {onnx_path}: " + "; ".join(errors)
    version = rules_version(trt.__version__)
    if version is not None:
        problems = check_tensorrt_rules(onnx_path, (version,))[version]
        if problems:
            message += f" (parser rules for {version}: " + "; ".join(problems) + ")"
    return message


def ensure_engine(
    onnx_path: str | os.PathLike, engine_path: str | os.PathLike | None = None,
    precision: str = "fp16", *, workspace_mb: int = 2048, device_index: int = 0,
    calibration: CalibrationSource | None = None, calib_cache: str | os.PathLike | None = None,
) -> Path:
    """Reuse a valid cached engine for this ONNX/GPU/TensorRT/precision/shape, or build one.

    ``engine_path`` None puts the engine in the cache folder under a name derived from the key.
    int8 inputs are checked before TensorRT is loaded (see :func:`int8_mode`).
    """
    from .model_files import cache_dir, file_sha256  # noqa: PLC0415

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ValueError(f"ONNX file not found: {onnx_path}")
    _check_precision(precision)
    onnx_sha256 = file_sha256(onnx_path)
    if precision == "int8":
        if calib_cache is None and engine_path is not None:
            calib_cache = default_calibration_cache(engine_path, onnx_sha256)
        int8_mode(onnx_path, calibration, calib_cache)
    trt, _ = import_tensorrt()
    card = onnx_card(onnx_path)
    if card is None:
        raise ValueError(f"{onnx_path}: no sidecar ({sidecar_path(onnx_path).name}); export it "
                         "with bisestdc-export")
    # A dynamic export is built for the network size.
    shape = [1, *(card.input_size or card.network_size), 3]
    key = engine_cache_key(onnx_sha256, gpu_info(device_index), trt.__version__, precision,
                           shape)
    engine_path = Path(engine_path) if engine_path else default_engine_path(
        cache_dir("tensorrt"), key)
    reasons = cache_status(engine_path, key)
    if not reasons:
        log.info("reusing TensorRT engine %s", engine_path)
        return engine_path
    if engine_path.is_file():
        log.info("rebuilding stale TensorRT engine %s: %s", engine_path, "; ".join(reasons))
    remove_stale_temps(engine_path.parent)  # engines of builds killed while writing
    build_engine(onnx_path, engine_path, precision, shape, workspace_mb=workspace_mb,
                 channel_order=card.channel_order or "rgb", calibration=calibration,
                 calib_cache=calib_cache or default_calibration_cache(engine_path, onnx_sha256))
    write_engine_sidecar(engine_path, key, onnx_path)
    return engine_path


# ---- run ------------------------------------------------------------------------------------

class TensorRTRunner:
    """Deserialised engine + execution context + page-locked/device buffers + one stream.

    ``infer`` takes the input array (engine shape and dtype) and returns output arrays by name;
    ``close`` frees the device buffers inside their context.

    Raises:
        TensorRTUnavailable: any TensorRT or pycuda failure setting it up (import, cuInit,
            context, runtime, deserialisation, execution context, buffers), naming the step
            and ``engine_path``.
    """

    def __init__(self, engine_path: str | os.PathLike, device_index: int = 0):
        trt, cuda = import_tensorrt()
        self._trt, self._cuda = trt, cuda
        self._context_guard = _CudaContext(cuda, device_index, engine_path)
        self._tensor_api = uses_tensor_api(trt.__version__)
        self.inputs: dict[str, tuple[Any, Any]] = {}
        self.outputs: dict[str, tuple[Any, Any]] = {}
        self.bindings: list[int] = []
        data = Path(engine_path).read_bytes()
        with self._context_guard:
            with _step(cuda, "runtime creation", engine_path):
                self._runtime = trt.Runtime(trt_logger())
            with _step(cuda, "deserialisation", engine_path):
                self.engine = self._runtime.deserialize_cuda_engine(data)
            if self.engine is None:
                raise TensorRTUnavailable(
                    "deserialisation", "deserialize_cuda_engine returned None (built for another "
                    "GPU or TensorRT version, or a damaged file?)", engine_path)
            try:
                with _step(cuda, "execution-context creation", engine_path):
                    self.context = self.engine.create_execution_context()
                if self.context is None:
                    raise TensorRTUnavailable(
                        "execution-context creation", "create_execution_context returned None "
                        "(out of GPU memory?)", engine_path)
                with _step(cuda, "buffer allocation", engine_path):
                    self.stream = cuda.Stream()
                    if self._tensor_api:
                        self._allocate_tensor_api()
                    else:
                        self._allocate_bindings_api()
            except BaseException:
                self._free()
                raise

    def _allocate(self, name: str, shape: Sequence[int], dtype: Any, is_input: bool) -> int:
        host = self._cuda.pagelocked_empty(tuple(shape), dtype)
        device = self._cuda.mem_alloc(host.nbytes)
        (self.inputs if is_input else self.outputs)[name] = (host, device)
        return int(device)

    def _allocate_tensor_api(self) -> None:
        trt, engine = self._trt, self.engine
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(engine.get_tensor_shape(name))
            if is_input and any(d < 0 for d in shape):
                shape = tuple(engine.get_tensor_profile_shape(name, 0)[1])  # opt shape
                self.context.set_input_shape(name, shape)
            if not is_input:
                shape = tuple(self.context.get_tensor_shape(name))
            dtype = trt.nptype(engine.get_tensor_dtype(name))
            self.context.set_tensor_address(name, self._allocate(name, shape, dtype, is_input))

    def _allocate_bindings_api(self) -> None:
        trt, engine = self._trt, self.engine
        for i in range(engine.num_bindings):
            name = engine.get_binding_name(i)
            is_input = engine.binding_is_input(i)
            shape = tuple(engine.get_binding_shape(i))
            if is_input and any(d < 0 for d in shape):
                shape = tuple(engine.get_profile_shape(0, i)[1])
                self.context.set_binding_shape(i, shape)
            if not is_input:
                shape = tuple(self.context.get_binding_shape(i))
            dtype = trt.nptype(engine.get_binding_dtype(i))
            self.bindings.append(self._allocate(name, shape, dtype, is_input))

    def input_shape(self) -> tuple[int, ...]:
        return next(iter(self.inputs.values()))[0].shape

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """image: the input tensor (e.g. 1 x H x W x 3 uint8) -> {output name: array copy}."""
        cuda = self._cuda
        with self._context_guard, _step(cuda, "execution"):
            host_in, device_in = next(iter(self.inputs.values()))
            np.copyto(host_in, image.reshape(host_in.shape))
            cuda.memcpy_htod_async(device_in, host_in, self.stream)
            if self._tensor_api:
                ok = self.context.execute_async_v3(stream_handle=self.stream.handle)
            else:
                ok = self.context.execute_async_v2(bindings=self.bindings,
                                                   stream_handle=self.stream.handle)
            if not ok:
                raise TensorRTUnavailable("execution", "execute_async returned False")
            for host, device in self.outputs.values():
                cuda.memcpy_dtoh_async(host, device, self.stream)
            self.stream.synchronize()
            return {name: host.copy() for name, (host, _) in self.outputs.items()}

    def _free(self) -> None:
        """Free device buffers, context and engine; call with the CUDA context pushed."""
        for _, device in (*self.inputs.values(), *self.outputs.values()):
            device.free()
        self.inputs.clear()
        self.outputs.clear()
        self.bindings.clear()
        self.context = None
        self.engine = None

    def close(self) -> None:
        """Release the GPU memory now (not whenever the garbage collector runs, in whatever
        context is current then)."""
        if getattr(self, "engine", None) is None:
            return
        with self._context_guard, _step(self._cuda, "buffer release"):
            self._free()

    def __del__(self):
        # pycuda would free the buffers itself, but without this device's context pushed.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the driver may be gone
            log.debug("TensorRT runner buffers not freed at exit", exc_info=True)


class TensorRTEngine:
    """The Segmenter's TensorRT engine: a fixed-shape engine plus host-side resizing."""

    name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike, device_index: int = 0):
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
            raise RuntimeError(f"{engine_path} was built elsewhere ({'; '.join(reasons)}); "
                               "rebuild it on this device with bisestdc-export --tensorrt")
        self.card: ModelCard = engine_card(sidecar, engine_path)
        self.precision = self.card.precision
        self.device = f"cuda:{device_index}"
        self.channel_order = self.card.channel_order or "rgb"
        self.network_size = self.card.network_size
        self.runner = TensorRTRunner(engine_path, device_index)
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


# ---- the engine registry's hooks (see .registry) --------------------------------------------

def status() -> str:
    ok, reason = tensorrt_available()
    if ok and cuda_available():
        return "available: " + reason
    return "unavailable: " + (reason if not ok else "no CUDA device")


def unavailable_reason(request: EngineRequest) -> str | None:
    ok, why = tensorrt_available()
    if not ok:
        return why
    if request.engine_path is None and request.onnx is None \
            and request.explicit != TensorRTEngine.name:
        return "no engine_path or onnx given (a build takes minutes; weights use torch)"
    return None


def build(request: EngineRequest) -> TensorRTEngine:
    """The engine for ``request``.

    Raises:
        TensorRTUnavailable: a TensorRT or pycuda failure, naming the step and the file.
        RuntimeError, ValueError: parse or build failures, a stale or foreign engine.
    """
    path = request.engine_path
    onnx_path = None
    try:
        if path is None:
            onnx_path = request.onnx or _export_for_tensorrt(request)
            path = ensure_engine(onnx_path, precision=request.precision,
                                 device_index=request.device_index,
                                 calibration=request.calibration,
                                 calib_cache=request.calib_cache)
        return TensorRTEngine(path, request.device_index)
    except TensorRTUnavailable as error:
        subject = path or onnx_path
        if error.subject is None and subject is not None:
            raise error.about(subject) from error.__cause__
        raise


def _export_for_tensorrt(request: EngineRequest) -> Path:
    """Fixed-size ONNX (with confidence) from the weights, for an engine build."""
    from .model_files import checkpoint_source  # noqa: PLC0415 - torch, by name

    model, card = request.network()
    return checkpoint_source().export_cached(model, card, request.weights, channel_order="rgb",
                                             dynamic=False, confidence=True,
                                             directory=request.scratch_dir)
