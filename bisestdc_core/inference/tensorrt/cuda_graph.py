"""The execution context replayed as a CUDA graph (the ``cuda_graph`` option).

TensorRT's execution context cannot capture itself and pycuda has no graph API, so the
stream is captured with cuda-python's runtime (``cudaStreamBeginCapture`` ...
``cudaStreamEndCapture``, ``cudaGraphInstantiate``, ``cudaGraphLaunch``): the input copy,
``execute_async_v3`` and the output copies become one graph per input shape, launched with
one call per frame instead of one per kernel. The work is run once uncaptured first, since
TensorRT may allocate or set up lazily on its first execution, which a capture forbids.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from bisestdc_core.inference.tensorrt.platform import TensorRTUnavailable, import_cuda_runtime


class CudaGraphs:
    """One instantiated graph per input shape, of the work ``enqueue`` puts on ``stream``.

    Args:
        stream_handle: the CUDA stream (``pycuda.driver.Stream().handle``).
        subject: the engine file, named in errors.
    """

    def __init__(self, stream_handle: int, subject: str | os.PathLike | None = None):
        self._cudart = import_cuda_runtime()
        self._stream = stream_handle
        self._subject = subject
        self._graphs: dict[tuple[int, ...], tuple[Any, Any]] = {}

    def _check(self, result: Any, call: str) -> Any:
        error, *values = result if isinstance(result, tuple) else (result,)
        if error != self._cudart.cudaError_t.cudaSuccess:
            raise TensorRTUnavailable("CUDA graph", f"{call} returned {error}", self._subject)
        return values[0] if values else None

    def launch(self, shape: tuple[int, ...], enqueue: Callable[[], None]) -> None:
        """Launch the graph for ``shape``, capturing ``enqueue``'s work the first time."""
        cudart = self._cudart
        if shape not in self._graphs:
            enqueue()  # warm-up, uncaptured: TensorRT's lazy first-run set-up
            mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
            self._check(cudart.cudaStreamBeginCapture(self._stream, mode),
                        "cudaStreamBeginCapture")
            try:
                enqueue()
            finally:
                graph = self._check(cudart.cudaStreamEndCapture(self._stream),
                                    "cudaStreamEndCapture")
            executable = self._check(cudart.cudaGraphInstantiate(graph, 0),
                                     "cudaGraphInstantiate")
            self._graphs[shape] = (graph, executable)
        self._check(cudart.cudaGraphLaunch(self._graphs[shape][1], self._stream),
                    "cudaGraphLaunch")

    def close(self) -> None:
        """Destroy the graphs (with the CUDA context pushed)."""
        for graph, executable in self._graphs.values():
            self._cudart.cudaGraphExecDestroy(executable)
            self._cudart.cudaGraphDestroy(graph)
        self._graphs.clear()
