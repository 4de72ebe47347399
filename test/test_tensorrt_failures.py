"""Every TensorRT / pycuda failure surfaces as one RuntimeError, TensorRTUnavailable.

TensorRT and pycuda cannot be installed here, so both are replaced by STAND-INS injected into
``sys.modules``. The stand-in exceptions copy pycuda's real hierarchy (pycuda's
``src/wrapper/wrap_cudadrv.cpp``: ``DECLARE_EXC(Error, NULL)``, then ``MemoryError``,
``LogicError``, ``LaunchError`` and ``RuntimeError`` with ``Error`` as their base): the base
derives from ``Exception``, not the builtin RuntimeError, and pycuda's own ``RuntimeError`` is a
``driver.Error``, not the builtin. (Some older pycuda releases also give ``MemoryError`` the
builtin MemoryError as a second base; the stand-in follows the current sources.)
"""

from __future__ import annotations

import logging
import re
import sys
import types

import numpy as np
import pytest
import torch
from inference_helpers import export_graph

from bisestdc_core.inference import Segmenter
from bisestdc_core.inference.model_files import write_engine_sidecar
from bisestdc_core.inference.tensorrt import cache_key, platform, runtime
from bisestdc_core.models import build_model

NETWORK_SIZE = (64, 128)
GPU = {"name": "Stand-in GPU", "compute_capability": [8, 7], "integrated": False,
       "total_memory": 8 << 30}
TRT_VERSION = "10.0.1"


# ---- stand-ins for pycuda.driver's exceptions (the real hierarchy) --------------------------

class StandInPycudaError(Exception):
    """Stand-in for ``pycuda.driver.Error`` (base: Exception)."""


class StandInPycudaMemoryError(StandInPycudaError):
    """Stand-in for ``pycuda.driver.MemoryError``."""


class StandInPycudaLogicError(StandInPycudaError):
    """Stand-in for ``pycuda.driver.LogicError``."""


class StandInPycudaLaunchError(StandInPycudaError):
    """Stand-in for ``pycuda.driver.LaunchError``."""


class StandInPycudaRuntimeError(StandInPycudaError):
    """Stand-in for ``pycuda.driver.RuntimeError`` (a driver.Error, NOT the builtin)."""


# ---- stand-in pycuda.driver and tensorrt modules --------------------------------------------

class StandInAllocation:
    def __init__(self, nbytes: int, freed: list[int]):
        self.nbytes, self._freed = nbytes, freed

    def __int__(self) -> int:
        return 0x1000 + id(self) % 0x1000

    def free(self) -> None:
        self._freed.append(self.nbytes)


def stand_in_pycuda(fail: dict[str, BaseException]) -> types.ModuleType:
    """A ``pycuda.driver`` stand-in; ``fail`` maps a step (init, device, context, mem_alloc)
    to the exception it raises."""
    cuda = types.ModuleType("pycuda.driver")
    cuda.Error = StandInPycudaError
    cuda.MemoryError = StandInPycudaMemoryError
    cuda.LogicError = StandInPycudaLogicError
    cuda.LaunchError = StandInPycudaLaunchError
    cuda.RuntimeError = StandInPycudaRuntimeError
    cuda.freed = []
    cuda.allocations = 0
    cuda.device_attribute = types.SimpleNamespace(INTEGRATED="INTEGRATED")

    def init():
        if "init" in fail:
            raise fail["init"]

    class Context:
        def push(self):
            pass

        def pop(self):
            pass

    class Device:
        def __init__(self, index):
            if "device" in fail:
                raise fail["device"]
            self.index = index

        def retain_primary_context(self):
            if "context" in fail:
                raise fail["context"]
            return Context()

        def name(self):
            return GPU["name"]

        def compute_capability(self):
            return tuple(GPU["compute_capability"])

        def get_attribute(self, attribute):  # noqa: ARG002 - one attribute asked
            return 0

        def total_memory(self):
            return GPU["total_memory"]

    def mem_alloc(nbytes):
        cuda.allocations += 1
        if "mem_alloc" in fail and cuda.allocations > fail.get("mem_alloc_after", 0):
            raise fail["mem_alloc"]
        return StandInAllocation(nbytes, cuda.freed)

    class Stream:
        handle = 0

    cuda.init, cuda.Device, cuda.mem_alloc, cuda.Stream = init, Device, mem_alloc, Stream
    cuda.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)
    return cuda


class StandInContext:
    def set_input_shape(self, name, shape):
        pass

    def get_tensor_shape(self, name):  # noqa: ARG002 - one output shape
        return (1, *NETWORK_SIZE)

    def set_tensor_address(self, name, address):
        pass


class StandInEngine:
    """Two I/O tensors (the input image, the labels); ``context`` is what
    create_execution_context returns."""

    num_io_tensors = 2

    def __init__(self, context):
        self._context = context

    def create_execution_context(self):
        return self._context

    def get_tensor_name(self, index):
        return ("image", "labels")[index]

    def get_tensor_mode(self, name):
        return "INPUT" if name == "image" else "OUTPUT"

    def get_tensor_shape(self, name):
        return (1, *NETWORK_SIZE, 3) if name == "image" else (1, *NETWORK_SIZE)

    def get_tensor_dtype(self, name):  # noqa: ARG002 - uint8 in and out
        return "uint8"


class StandInLogger:
    """``tensorrt.Logger`` of the stand-ins: the level the code asked for, nothing logged."""

    WARNING = 2

    def __init__(self, level):
        self.level = level


def stand_in_tensorrt(engine: object) -> types.ModuleType:
    """A ``tensorrt`` stand-in whose Runtime.deserialize_cuda_engine returns ``engine``."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = TRT_VERSION

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, data):  # noqa: ARG002 - any bytes
            return engine

    trt.Logger, trt.Runtime = StandInLogger, Runtime
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.nptype = lambda dtype: np.dtype(dtype).type
    return trt


@pytest.fixture
def inject(monkeypatch):
    """inject(fail=..., engine=...) puts the stand-ins in sys.modules; returns the pycuda one."""
    platform.trt_logger.cache_clear()

    def _inject(fail=None, engine=None):
        cuda = stand_in_pycuda(fail or {})
        package = types.ModuleType("pycuda")
        package.driver = cuda
        monkeypatch.setitem(sys.modules, "pycuda", package)
        monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
        monkeypatch.setitem(sys.modules, "tensorrt", stand_in_tensorrt(engine))
        return cuda

    yield _inject
    platform.trt_logger.cache_clear()  # no stand-in logger outlives the test


@pytest.fixture
def cuda_visible(monkeypatch):
    """Let a Segmenter ask for ``cuda`` on this CPU machine (only TensorRT's stand-in runs)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BISESTDC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    """A small fixed-size export with its sidecar (random weights: only the engine choice
    matters here)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_graph(build_model("stdc1", 19).eval(), path, network_size=NETWORK_SIZE)
    return path


@pytest.fixture
def engine_file(tmp_path, onnx_file):
    """A 'prebuilt' engine (bytes the stand-in runtime accepts) with a sidecar that matches
    the stand-in GPU and TensorRT version."""
    path = tmp_path / "m.engine"
    path.write_bytes(b"stand-in engine")
    key = cache_key.engine_cache_key("0" * 64, GPU, TRT_VERSION, "fp16", [1, *NETWORK_SIZE, 3])
    write_engine_sidecar(path, key, onnx_file)
    return path


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and text.strip() == text
    return text


# ---- the stand-ins are faithful ---------------------------------------------------------------

def test_stand_ins_copy_pycudas_hierarchy():
    assert StandInPycudaError.__bases__ == (Exception,)
    for cls in (StandInPycudaMemoryError, StandInPycudaLogicError, StandInPycudaLaunchError,
                StandInPycudaRuntimeError):
        assert cls.__bases__ == (StandInPycudaError,)
    # The point of the issue: none of them is a builtin RuntimeError.
    assert not issubclass(StandInPycudaRuntimeError, RuntimeError)
    assert issubclass(platform.TensorRTUnavailable, RuntimeError)


# ---- explicit construction: the project error, naming the step and the file ----------------

CASES = {
    "cuInit": ({"init": StandInPycudaLogicError(
        "cuInit failed: no CUDA-capable device is detected")}, "ok",
        r"CUDA initialisation \(cuInit\) failed", StandInPycudaLogicError),
    # The engine queries the device (gpu_info) before the runner creates its context.
    "device": ({"device": StandInPycudaLogicError("cuDeviceGet failed: invalid device ordinal")},
               "ok", "CUDA device 0 (context creation|query) failed", StandInPycudaLogicError),
    "context": ({"context": StandInPycudaRuntimeError(
        "cuDevicePrimaryCtxRetain failed: out of memory")}, "ok",
        "CUDA device 0 context creation failed", StandInPycudaRuntimeError),
    "deserialise": ({}, None, "deserialisation failed", None),
    "execution context": ({}, "no context", "execution-context creation failed", None),
    "allocation": ({"mem_alloc": StandInPycudaMemoryError("cuMemAlloc failed: out of memory"),
                    "mem_alloc_after": 1}, "ok", "buffer allocation failed",
                   StandInPycudaMemoryError),
}


def _engine_for(kind):
    if kind is None:
        return None  # deserialize_cuda_engine returns None
    return StandInEngine(None if kind == "no context" else StandInContext())


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_runner_failure_is_the_project_error(inject, engine_file, case):
    fail, kind, step, cause = CASES[case]
    cuda = inject(fail, _engine_for(kind))
    with pytest.raises(platform.TensorRTUnavailable, match=step) as caught:
        runtime.TensorRTRunner(engine_file)
    text = _one_line(caught.value)
    assert str(engine_file) in text and text.startswith("TensorRT ")
    if cause is not None:
        assert isinstance(caught.value.__cause__, cause)
        assert cause.__name__ in text
    if case == "allocation":  # the buffer allocated before the failure was freed
        assert cuda.allocations == 2 and len(cuda.freed) == 1


def test_import_failure_is_the_project_error(monkeypatch, tmp_path):
    platform.trt_logger.cache_clear()
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(platform.TensorRTUnavailable, match="TensorRT import failed") as caught:
        runtime.TensorRTRunner(tmp_path / "m.engine")
    assert "install TensorRT 8.5+" in _one_line(caught.value)
    assert platform.tensorrt_available()[0] is False


def test_gpu_info_on_a_failing_device(inject):
    inject({"device": StandInPycudaLogicError("cuDeviceGet failed: invalid device ordinal")})
    with pytest.raises(platform.TensorRTUnavailable, match="CUDA device 0 query failed"):
        platform.gpu_info(0)


def test_a_frames_pycuda_error_is_the_project_error(inject, engine_file):
    cuda = inject({}, StandInEngine(StandInContext()))
    runner = runtime.TensorRTRunner(engine_file)

    def launch_failure(*args):
        raise StandInPycudaLaunchError("cuMemcpyHtoDAsync failed: launch failed")

    cuda.memcpy_htod_async = launch_failure
    with pytest.raises(platform.TensorRTUnavailable, match="TensorRT execution failed") as caught:
        runner.infer(np.zeros((1, *NETWORK_SIZE, 3), np.uint8))
    assert "StandInPycudaLaunchError" in _one_line(caught.value)
    runner.close()
    assert len(cuda.freed) == 2  # both buffers freed with the context pushed


@pytest.mark.parametrize("case", ["cuInit", "deserialise", "execution context", "allocation"])
def test_explicit_tensorrt_segmenter_one_line_error(inject, cuda_visible, engine_file, case):
    fail, kind, step, _ = CASES[case]
    inject(fail, _engine_for(kind))
    with pytest.raises(RuntimeError, match=f"engine tensorrt failed: TensorRT {step}") as caught:
        Segmenter(engine_path=engine_file, engine="tensorrt", device="cuda")
    assert isinstance(caught.value.__cause__, platform.TensorRTUnavailable)
    assert str(engine_file) in _one_line(caught.value)


def test_explicit_tensorrt_from_onnx_names_the_onnx(inject, cuda_visible, onnx_file):
    inject(CASES["cuInit"][0])
    with pytest.raises(RuntimeError, match=r"engine tensorrt failed: TensorRT CUDA "
                                           r"initialisation \(cuInit\) failed") as caught:
        Segmenter(onnx=onnx_file, engine="tensorrt", device="cuda")
    assert str(onnx_file) in _one_line(caught.value)


# ---- auto: falls back to ONNX Runtime with one warning ---------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_auto_falls_back_to_onnxruntime_with_one_warning(inject, cuda_visible, onnx_file,
                                                         engine_file, case, caplog):
    fail, kind, step, _ = CASES[case]
    inject(fail, _engine_for(kind))
    with caplog.at_level(logging.INFO, logger="bisestdc_core.inference.segmenter"):
        seg = Segmenter(onnx=onnx_file, engine_path=engine_file, engine="auto", device="cuda")
    assert seg.engine_name == "onnxruntime"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "bisestdc_core.inference.segmenter"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "tensorrt failed, trying the next engine" in message and "\n" not in message
    assert re.search(f"TensorRT {step}", message) and str(engine_file) in message
    frame = np.zeros((*NETWORK_SIZE, 3), np.uint8)
    assert seg.segment(frame).labels.shape == NETWORK_SIZE


def test_auto_from_onnx_only_falls_back_when_cuinit_fails(inject, cuda_visible, onnx_file,
                                                          caplog):
    inject(CASES["cuInit"][0])
    with caplog.at_level(logging.WARNING, logger="bisestdc_core.inference.segmenter"):
        seg = Segmenter(onnx=onnx_file, engine="auto", device="cuda")
    assert seg.engine_name == "onnxruntime"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "bisestdc_core.inference.segmenter"]
    assert len(warnings) == 1 and "cuInit" in warnings[0] and str(onnx_file) in warnings[0]
