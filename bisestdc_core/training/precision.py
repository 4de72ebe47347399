"""Mixed precision for training: which autocast dtype a config gets on a device.

bf16 autocast runs on CUDA and on CPUs with native bf16 (AVX512-BF16 or AMX: oneDNN's bf16
convolutions and matmuls are about twice as fast as fp32 there). fp16 needs CUDA (and a
GradScaler). Anything else trains in fp32, with a log line saying so.
"""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger(__name__)


def cpu_supports_bf16() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU."""
    return bool(torch.backends.mkldnn.is_available()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp`` on ``device``; None means fp32."""
    if amp == "bf16" and (device.type == "cuda" or cpu_supports_bf16()):
        return torch.bfloat16
    if amp == "fp16" and device.type == "cuda":
        return torch.float16
    if amp != "none":
        log.info("train.amp=%s is not supported on this %s: training in fp32", amp, device.type)
    return None


def autocast(dtype: torch.dtype | None, device: torch.device):
    """Context manager: autocast to ``dtype`` on ``device`` (a no-op for None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def precision_name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
