"""Running a serialised engine: execution context, buffers, one stream.

* Buffers: page-locked host buffers plus device buffers with async copies; or, with
  ``zero_copy`` (auto: on integrated GPUs, i.e. Jetson, where host and device share one DRAM),
  host buffers mapped into the device's address space (``pagelocked_empty(...,
  mem_flags=host_alloc_flags.DEVICEMAP)`` + ``get_device_pointer``) that the engine reads and
  writes in place, with no copies.
* API: TensorRT 8.5 and later use the tensor API (``set_tensor_address``,
  ``execute_async_v3``); older versions the bindings API (``execute_async_v2``).
* Options: ``cuda_graph`` replays the frame's work as a CUDA graph (:mod:`.cuda_graph`);
  ``profile_layers`` sets a per-layer profiler on the context (:mod:`.layer_profile`).

Every pycuda allocation is freed with its context pushed. NOTE: written against the TensorRT
8.5/8.6/10.x and pycuda APIs; executed on GPU machines only (test/test_tensorrt_gpu.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bisestdc_core.inference.tensorrt.layer_profile import LayerTimes, make_profiler
from bisestdc_core.inference.tensorrt.platform import (
    CudaContext,
    TensorRTUnavailable,
    import_tensorrt,
    step,
    trt_logger,
    uses_tensor_api,
)

log = logging.getLogger(__name__)


class Buffer:
    """One I/O tensor's memory: a host array and the device address the engine uses.

    ``mapped``: zero-copy, the host array is the device memory (no device allocation).
    """

    def __init__(self, cuda: Any, shape: Sequence[int], dtype: Any, mapped: bool):
        self.mapped = mapped
        if mapped:
            self.host = cuda.pagelocked_empty(tuple(shape), dtype,
                                              mem_flags=cuda.host_alloc_flags.DEVICEMAP)
            self.device = None
            self.address = int(self.host.base.get_device_pointer())
        else:
            self.host = cuda.pagelocked_empty(tuple(shape), dtype)
            self.device = cuda.mem_alloc(self.host.nbytes)
            self.address = int(self.device)

    def free(self) -> None:
        if self.device is not None:
            self.device.free()
        elif self.mapped:
            self.host.base.free()


class TensorRTRunner:
    """Deserialised engine + execution context + buffers + one stream.

    ``infer`` takes the input array (engine shape and dtype) and returns output arrays by name;
    ``close`` frees the buffers inside their context.

    Args:
        zero_copy: host-mapped buffers instead of device buffers and copies.
        cuda_graph: replay each frame's work as a CUDA graph (needs cuda-python).
        profile_layers: every N frames report per-layer times (0: off).

    Raises:
        TensorRTUnavailable: any TensorRT or pycuda failure setting it up (import, cuInit,
            context, runtime, deserialisation, execution context, buffers), naming the step
            and ``engine_path``.
    """

    def __init__(self, engine_path: str | os.PathLike, device_index: int = 0, *,
                 zero_copy: bool = False, cuda_graph: bool = False, profile_layers: int = 0):
        if cuda_graph and profile_layers:
            raise ValueError("cuda_graph and profile_layers exclude each other (a replayed "
                             "graph reports no layer times); set one of them")
        trt, cuda = import_tensorrt()
        self._trt, self._cuda = trt, cuda
        self._context_guard = CudaContext(cuda, device_index, engine_path)
        self._tensor_api = uses_tensor_api(trt.__version__)
        self._zero_copy = zero_copy
        self._graphs = None
        self._layer_times = None
        self.inputs: dict[str, Buffer] = {}
        self.outputs: dict[str, Buffer] = {}
        self.bindings: list[int] = []
        data = Path(engine_path).read_bytes()
        with self._context_guard:
            with step(cuda, "runtime creation", engine_path):
                self._runtime = trt.Runtime(trt_logger())
            with step(cuda, "deserialisation", engine_path):
                self.engine = self._runtime.deserialize_cuda_engine(data)
            if self.engine is None:
                raise TensorRTUnavailable(
                    "deserialisation", "deserialize_cuda_engine returned None (built for another "
                    "GPU or TensorRT version, or a damaged file?)", engine_path)
            try:
                with step(cuda, "execution-context creation", engine_path):
                    self.context = self.engine.create_execution_context()
                if self.context is None:
                    raise TensorRTUnavailable(
                        "execution-context creation", "create_execution_context returned None "
                        "(out of GPU memory?)", engine_path)
                with step(cuda, "buffer allocation", engine_path):
                    self.stream = cuda.Stream()
                    if self._tensor_api:
                        self._allocate_tensor_api()
                    else:
                        self._allocate_bindings_api()
                if cuda_graph:
                    from bisestdc_core.inference.tensorrt.cuda_graph import CudaGraphs  # noqa: PLC0415

                    self._graphs = CudaGraphs(self.stream.handle, engine_path)
                if profile_layers:
                    self._layer_times = LayerTimes(
                        profile_layers, Path(engine_path).with_suffix(".layers.json"))
                    self.context.profiler = make_profiler(trt, self._layer_times)
            except BaseException:
                self._free()
                raise

    def _allocate(self, name: str, shape: Sequence[int], dtype: Any, is_input: bool) -> int:
        buffer = Buffer(self._cuda, shape, dtype, self._zero_copy)
        (self.inputs if is_input else self.outputs)[name] = buffer
        return buffer.address

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
        return next(iter(self.inputs.values())).host.shape

    def _enqueue(self) -> None:
        """The frame's work on the stream: input copy, execution, output copies."""
        cuda = self._cuda
        for buffer in self.inputs.values():
            if not buffer.mapped:
                cuda.memcpy_htod_async(buffer.device, buffer.host, self.stream)
        if self._tensor_api:
            ok = self.context.execute_async_v3(stream_handle=self.stream.handle)
        else:
            ok = self.context.execute_async_v2(bindings=self.bindings,
                                               stream_handle=self.stream.handle)
        if not ok:
            raise TensorRTUnavailable("execution", "execute_async returned False")
        for buffer in self.outputs.values():
            if not buffer.mapped:
                cuda.memcpy_dtoh_async(buffer.host, buffer.device, self.stream)

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """image: the input tensor (e.g. 1 x H x W x 3 uint8) -> {output name: array copy}."""
        with self._context_guard, step(self._cuda, "execution"):
            host_in = next(iter(self.inputs.values())).host
            np.copyto(host_in, image.reshape(host_in.shape))
            if self._graphs is not None:
                self._graphs.launch(tuple(host_in.shape), self._enqueue)
            else:
                self._enqueue()
            self.stream.synchronize()
            if self._layer_times is not None:
                self._layer_times.end_frame()
            return {name: buffer.host.copy() for name, buffer in self.outputs.items()}

    def _free(self) -> None:
        """Free graphs, buffers, context and engine; call with the CUDA context pushed."""
        if self._graphs is not None:
            self._graphs.close()
        for buffer in (*self.inputs.values(), *self.outputs.values()):
            buffer.free()
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
        with self._context_guard, step(self._cuda, "buffer release"):
            self._free()

    def __del__(self):
        # pycuda would free the buffers itself, but without this device's context pushed.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the driver may be gone
            log.debug("TensorRT runner buffers not freed at exit", exc_info=True)
