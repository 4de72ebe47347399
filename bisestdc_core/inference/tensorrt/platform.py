"""TensorRT and pycuda on this machine: the one error type, lazy imports, versions, devices.

``tensorrt``, ``pycuda`` and ``cuda-python`` are imported lazily, only inside functions; the one
TensorRT logger (:func:`trt_logger`) is created on first use and shared by every builder,
parser and runtime. GPU facts (name, compute capability, integrated) come from the CUDA driver
through pycuda, fp16/int8 speed from TensorRT's builder: never from torch.

Errors: pycuda's exceptions derive from ``Exception``, not RuntimeError, and TensorRT reports
some failures by returning None; every TensorRT/pycuda failure (import, cuInit, device and
context, allocation, deserialisation, execution-context creation, execution) is raised as the
one :class:`TensorRTUnavailable` (a RuntimeError) whose one-line message names the step and the
engine or ONNX file, so ``auto`` falls back and the node reports it in one line.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from collections.abc import Iterator
from typing import Any

INSTALL_HINT = (
    "TensorRT Python bindings not found: install TensorRT 8.5+ (pip install tensorrt, or "
    "JetPack's python3-libnvinfer) and pycuda"
)
# The first version with the name-based tensor API (set_tensor_address, execute_async_v3).
TENSOR_API_SINCE = (8, 5)
# TensorRT 10 has trt.IProgressMonitor (build progress); 8.x logs phase lines instead.
PROGRESS_MONITOR_SINCE = (10, 0)


class TensorRTUnavailable(RuntimeError):
    """A TensorRT or pycuda failure: import, cuInit, device/context, allocation,
    deserialisation, execution-context creation or a frame's execution; also a request
    TensorRT cannot serve (no model file, no DLA on this device).

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
def step(cuda: Any, name: str, subject: str | os.PathLike | None = None) -> Iterator[None]:
    """Turn a pycuda error or a TensorRT binding's RuntimeError inside the block into
    :class:`TensorRTUnavailable` for step ``name``."""
    try:
        yield
    except TensorRTUnavailable:
        raise
    except (cuda.Error, RuntimeError) as error:
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise TensorRTUnavailable(name, detail, subject) from error


def import_tensorrt() -> tuple[Any, Any]:
    """``(tensorrt, pycuda.driver)``, or TensorRTUnavailable saying what to install."""
    try:
        import pycuda.driver as cuda  # noqa: PLC0415
        import tensorrt as trt  # noqa: PLC0415
    except (ImportError, OSError) as exc:  # OSError: a shared library that does not load
        raise TensorRTUnavailable("import", f"{INSTALL_HINT} ({exc})") from exc
    return trt, cuda


def import_cuda_runtime() -> Any:
    """cuda-python's CUDA runtime module (stream capture and graphs: pycuda has no graph API).

    ``cuda.bindings.runtime`` (cuda-python 12.6+) or the older ``cuda.cudart``.

    Raises:
        TensorRTUnavailable: neither importable, saying what to install.
    """
    try:
        from cuda.bindings import runtime  # noqa: PLC0415
    except (ImportError, OSError):
        try:
            from cuda import cudart as runtime  # noqa: PLC0415
        except (ImportError, OSError) as exc:
            raise TensorRTUnavailable(
                "CUDA graph set-up", "cuda_graph needs cuda-python (pip install cuda-python; "
                f"pycuda has no graph API): {exc}") from exc
    return runtime


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


def has_progress_monitor(version: str) -> bool:
    """``trt.IProgressMonitor`` / ``IBuilderConfig.progress_monitor`` exist (TensorRT 10)."""
    return parse_version(version) >= PROGRESS_MONITOR_SINCE


def rules_version(version: str) -> str | None:
    """The :data:`.parser_rules.RULES` entry for an installed TensorRT, None when none fits."""
    from bisestdc_core.inference.tensorrt.parser_rules import RULES  # noqa: PLC0415

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
    with step(cuda, "CUDA initialisation (cuInit)", subject):
        cuda.init()
    with step(cuda, f"CUDA device {device_index} query", subject):
        device = cuda.Device(device_index)
        return {
            "name": device.name(),
            "compute_capability": list(device.compute_capability()),
            "integrated": bool(device.get_attribute(cuda.device_attribute.INTEGRATED)),
            "total_memory": int(device.total_memory()),
        }


class CudaContext:
    """The device's primary context (shared with PyTorch's runtime API), pushed per use.

    ``pycuda.autoinit`` would create a second context and bind it to the importing thread;
    the node calls from a worker thread, so push/pop around every use instead.
    """

    def __init__(self, cuda: Any, device_index: int = 0,
                 subject: str | os.PathLike | None = None):
        self._cuda, self._subject = cuda, subject
        with step(cuda, "CUDA initialisation (cuInit)", subject):
            cuda.init()
        with step(cuda, f"CUDA device {device_index} context creation", subject):
            self._ctx = cuda.Device(device_index).retain_primary_context()

    def __enter__(self):
        with step(self._cuda, "CUDA context push", self._subject):
            self._ctx.push()
        return self

    def __exit__(self, *exc):
        self._ctx.pop()
        return False


def network_flags(trt: Any) -> int:
    """``create_network``'s flags: EXPLICIT_BATCH below 10, none on 10 (explicit only)."""
    if needs_explicit_batch_flag(trt.__version__):
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


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
