"""The runner's options with STAND-INS for tensorrt, pycuda and cuda-python (none installable
here): zero-copy host-mapped buffers, the CUDA graph replay per input shape, and the per-layer
profile; plus the choice of zero-copy from the device's INTEGRATED attribute."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from test_tensorrt_failures import NETWORK_SIZE, StandInEngine, stand_in_pycuda, stand_in_tensorrt

from bisestdc_core.inference.tensorrt import platform
from bisestdc_core.inference.tensorrt.engine import use_zero_copy
from bisestdc_core.inference.tensorrt.layer_profile import LayerTimes
from bisestdc_core.inference.tensorrt.runtime import TensorRTRunner


class StandInMappedHost:
    """Stand-in for pycuda's HostAllocation of DEVICEMAP memory (the array's ``base``)."""

    def __init__(self, shape, dtype):
        self._array = np.zeros(shape, dtype)
        self.__array_interface__ = self._array.__array_interface__
        self.freed = False

    def get_device_pointer(self):
        return 0xD000 + self._array.__array_interface__["data"][0] % 0x1000

    def free(self):
        self.freed = True


class StandInContext:
    """Records executions; labels = first input channel (so a result can be checked); calls
    the profiler the way TensorRT does when one is set."""

    def __init__(self, runner_inputs):
        self.addresses, self.executions, self.profiler = {}, 0, None
        self._inputs = runner_inputs

    def set_input_shape(self, name, shape):
        pass

    def get_tensor_shape(self, name):
        return (1, *NETWORK_SIZE)

    def set_tensor_address(self, name, address):
        self.addresses[name] = address

    def execute_async_v3(self, stream_handle):
        self.executions += 1
        if self.profiler is not None:
            self.profiler.report_layer_time("conv1", 0.25)
            self.profiler.report_layer_time("head", 0.75)
        return True


@pytest.fixture
def inject(monkeypatch, tmp_path):
    platform.trt_logger.cache_clear()

    def _inject():
        cuda = stand_in_pycuda({})
        cuda.host_alloc_flags = types.SimpleNamespace(DEVICEMAP=2)
        cuda.copies = []
        plain = cuda.pagelocked_empty

        def pagelocked_empty(shape, dtype, mem_flags=0):
            if mem_flags == cuda.host_alloc_flags.DEVICEMAP:
                return np.asarray(StandInMappedHost(shape, dtype))
            return plain(shape, dtype)

        cuda.pagelocked_empty = pagelocked_empty
        cuda.memcpy_htod_async = lambda *a: cuda.copies.append("htod")
        cuda.memcpy_dtoh_async = lambda *a: cuda.copies.append("dtoh")
        cuda.Stream.synchronize = lambda self: None
        package = types.ModuleType("pycuda")
        package.driver = cuda
        context = StandInContext(None)
        trt = stand_in_tensorrt(StandInEngine(context))

        class IProfiler:
            def __init__(self):
                pass

        trt.IProfiler = IProfiler
        monkeypatch.setitem(sys.modules, "pycuda", package)
        monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return cuda, context

    yield _inject
    platform.trt_logger.cache_clear()


@pytest.fixture
def engine_file(tmp_path):
    path = tmp_path / "m.engine"
    path.write_bytes(b"stand-in engine")
    return path


def stand_in_cudart(monkeypatch) -> types.SimpleNamespace:
    """cuda-python's runtime (``cuda.bindings.runtime``): records the graph calls."""
    calls = []
    runtime = types.ModuleType("cuda.bindings.runtime")
    runtime.cudaError_t = types.SimpleNamespace(cudaSuccess=0)
    runtime.cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeThreadLocal=1)

    def record(name, *result):
        def call(*args):
            calls.append(name)
            return (0, *result)
        return call

    runtime.cudaStreamBeginCapture = record("begin")
    runtime.cudaStreamEndCapture = record("end", "graph")
    runtime.cudaGraphInstantiate = record("instantiate", "executable")
    runtime.cudaGraphLaunch = record("launch")
    runtime.cudaGraphExecDestroy = record("destroy exec")
    runtime.cudaGraphDestroy = record("destroy graph")
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = runtime
    package = types.ModuleType("cuda")
    package.bindings = bindings
    monkeypatch.setitem(sys.modules, "cuda", package)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", runtime)
    return types.SimpleNamespace(calls=calls)


FRAME = np.zeros((1, *NETWORK_SIZE, 3), np.uint8)


def test_zero_copy_follows_the_integrated_attribute():
    assert use_zero_copy("auto", integrated=True) is True
    assert use_zero_copy("auto", integrated=False) is False
    assert use_zero_copy("on", integrated=False) is True
    assert use_zero_copy("off", integrated=True) is False


def test_zero_copy_maps_host_buffers_and_copies_nothing(inject, engine_file):
    cuda, context = inject()
    runner = TensorRTRunner(engine_file, zero_copy=True)
    assert cuda.allocations == 0  # no device buffers
    for name, buffer in (*runner.inputs.items(), *runner.outputs.items()):
        assert context.addresses[name] == buffer.host.base.get_device_pointer()
    outputs = runner.infer(FRAME)
    assert cuda.copies == [] and context.executions == 1
    assert outputs["labels"].shape == (1, *NETWORK_SIZE)
    bases = [b.host.base for b in (*runner.inputs.values(), *runner.outputs.values())]
    runner.close()
    assert all(base.freed for base in bases)


def test_device_buffers_copy_each_way(inject, engine_file):
    cuda, context = inject()
    runner = TensorRTRunner(engine_file, zero_copy=False)
    runner.infer(FRAME)
    assert cuda.allocations == 2 and cuda.copies == ["htod", "dtoh"]
    runner.close()


def test_cuda_graph_is_captured_once_per_shape_then_replayed(inject, engine_file,
                                                             monkeypatch):
    cuda, context = inject()
    cudart = stand_in_cudart(monkeypatch)
    runner = TensorRTRunner(engine_file, cuda_graph=True)
    runner.infer(FRAME)
    # warm-up run, then the captured run; the graph is launched
    assert context.executions == 2 and cudart.calls == ["begin", "end", "instantiate", "launch"]
    runner.infer(FRAME)
    runner.infer(FRAME)
    assert context.executions == 2 and cudart.calls.count("launch") == 3
    runner.close()
    assert cudart.calls[-2:] == ["destroy exec", "destroy graph"]


def test_cuda_graph_without_cuda_python_is_refused_in_one_line(inject, engine_file,
                                                               monkeypatch):
    inject()
    monkeypatch.setitem(sys.modules, "cuda", None)
    with pytest.raises(platform.TensorRTUnavailable,
                       match=r"CUDA graph set-up failed.*needs cuda-python") as caught:
        TensorRTRunner(engine_file, cuda_graph=True)
    assert "\n" not in str(caught.value)


def test_layer_profile_is_reported_every_n_frames(inject, engine_file):
    _, context = inject()
    runner = TensorRTRunner(engine_file, profile_layers=2)
    assert context.profiler is not None
    report = engine_file.with_suffix(".layers.json")
    runner.infer(FRAME)
    assert not report.exists()
    runner.infer(FRAME)
    data = json.loads(report.read_text())
    assert data["frames"] == 2 and data["layers_ms"] == {"head": 0.75, "conv1": 0.25}
    assert data["total_ms"] == pytest.approx(1.0)
    runner.close()


def test_layer_profile_and_cuda_graph_exclude_each_other(engine_file):
    with pytest.raises(ValueError, match="cuda_graph and profile_layers exclude each other"):
        TensorRTRunner(engine_file, cuda_graph=True, profile_layers=10)


def test_layer_times_average_over_the_window(tmp_path):
    times = LayerTimes(3, tmp_path / "l.json")
    for ms in (1.0, 2.0, 3.0):
        times.record("a", ms)
        report = times.end_frame()
    assert report == {"frames": 3, "total_ms": 2.0, "layers_ms": {"a": 2.0}}
    times.record("a", 9.0)
    assert times.end_frame() is None  # a new window started
    with pytest.raises(ValueError, match="profile_layers must be >= 1"):
        LayerTimes(0, tmp_path / "x.json")
