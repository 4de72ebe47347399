"""Is there a CUDA device? Asked of the CUDA driver itself (libcuda), without torch.

``torch.cuda.is_available()`` asks the same driver; the runtime of exported models (ONNX
Runtime, TensorRT) must not load torch for the answer. Where torch is loaded already, its
answer is taken (it also knows a CPU-only build of torch).
"""

from __future__ import annotations

import ctypes
import functools
import sys

_DRIVER_LIBRARIES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")


@functools.lru_cache(maxsize=1)
def driver_device_count() -> int:
    """CUDA devices the driver reports (``cuInit`` + ``cuDeviceGetCount``; it honours
    ``CUDA_VISIBLE_DEVICES``); 0 without a driver or when either call fails."""
    for name in _DRIVER_LIBRARIES:
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
        except AttributeError:  # not a CUDA driver after all
            return 0
        return int(count.value)
    return 0


def cuda_available() -> bool:
    """A usable CUDA device: torch's answer where torch is loaded, else the driver's."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return bool(torch.cuda.is_available())
    return driver_device_count() > 0
