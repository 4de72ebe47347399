"""PyTorch engine: CUDA fp16 channels-last CUDA graphs, or CPU fp32/bf16 eager.

Both paths run the network with BatchNorm folded into the convolutions and the same
pre/post-processing as the ONNX export (:mod:`.processing`), so the engines agree.

CUDA: the whole per-frame function (uint8 -> float -> resize -> normalise -> network ->
argmax -> nearest resize of the labels to the frame size) is captured once per input shape as
a CUDA graph over static buffers (after warm-up on a side stream, as torch.cuda.graphs asks),
so one replay launches everything. Frames enter through a page-locked host buffer and labels
leave through another; only uint8 crosses the bus. A small LRU bounds the graphs kept (one per
camera size).

CPU: eager under ``torch.inference_mode``, fp32; channels-last is optional (it helps oneDNN
convolutions on some CPUs, not all). bf16 on CPUs with bf16 instructions (AVX512-BF16, AMX):
weights and activations in bf16, channels-last (oneDNN's bf16 convolutions want NHWC; measured
here, NCHW bf16 was no faster than fp32), pre/postprocessing in fp32.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from bisestdc_core.inference.base import EngineOutput
from bisestdc_core.inference.bn_fold import fold_batchnorm
from bisestdc_core.inference.processing import DEFAULT_NETWORK_SIZE, check_channel_order
from bisestdc_core.inference.torch_processing import (
    Preprocess,
    confidence_from_logits,
    labels_from_logits,
    resize_nearest,
)
from bisestdc_core.model_card import ModelCard
from bisestdc_core.stage_timings import StageTimings

if TYPE_CHECKING:
    from bisestdc_core.inference.registry import EngineRequest

log = logging.getLogger(__name__)

__all__ = ["TorchEngine", "fold_batchnorm"]

_WARMUP_ITERS = 3
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def cpu_bf16_supported() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX), not emulated."""
    # torch's own probe; a private op, so a torch without it counts as "no".
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


@dataclass
class _GraphEntry:
    """Static buffers and the captured graph for one (H, W, order, confidence) key."""

    graph: torch.cuda.CUDAGraph | None
    host_in: torch.Tensor  # pinned 1 x H x W x 3 uint8
    device_in: torch.Tensor
    outputs: tuple[torch.Tensor, ...]  # device H x W uint8 maps
    host_out: tuple[torch.Tensor, ...]  # pinned copies


class TorchEngine:
    """Runs a network with PyTorch.

    Args:
        model: fp32 network (N x 3 x h x w normalised RGB -> N x C x h x w logits in eval).
        card: its card: normalisation, and the (h, w) the network runs at (default
            (512, 1024)).
        device: ``cpu`` or ``cuda[:i]``.
        precision: ``fp16`` or ``fp32`` on CUDA; ``fp32`` or ``bf16`` on CPU.
        channels_last: memory format (default: True on CUDA and for bf16, else False).
        cuda_graphs: capture per-shape CUDA graphs (CUDA only).
        max_graphs: graphs kept (least recently used dropped first).
    """

    name = "torch"

    def __init__(
        self, model: nn.Module, card: ModelCard, device: str = "cpu", precision: str = "fp32",
        channels_last: bool | None = None, cuda_graphs: bool = True, max_graphs: int = 8,
    ):
        self.device = str(torch.device(device))
        self.cuda = self.device.startswith("cuda")
        if self.cuda and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but torch sees no CUDA device")
        if precision not in _DTYPES:
            raise ValueError(f"torch engine precision must be one of {tuple(_DTYPES)}, "
                             f"got {precision!r}")
        if precision == "bf16" and (self.cuda or not cpu_bf16_supported()):
            raise ValueError("bf16 runs on CPUs with bf16 instructions (AVX512-BF16 or AMX); "
                             + ("use fp16 on CUDA" if self.cuda else "this CPU has none"))
        if not self.cuda and precision == "fp16":
            log.warning("torch on CPU runs fp32 (requested fp16)")
            precision = "fp32"
        self.precision = precision
        self.dtype = _DTYPES[precision]
        size = card.network_size or DEFAULT_NETWORK_SIZE
        self.network_size = (int(size[0]), int(size[1]))
        self.card = card.replace(network_size=self.network_size, precision=precision)
        if channels_last is None:
            channels_last = self.cuda or precision == "bf16"
        self.channels_last = channels_last
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.use_graphs = self.cuda and cuda_graphs
        self.max_graphs = max_graphs
        net = fold_batchnorm(copy.deepcopy(model).float().eval(), inplace=True)
        self.net = net.to(self.device, self.dtype).to(memory_format=self.memory_format)
        self.pre = {
            order: Preprocess(self.network_size, card.mean, card.std, order).to(self.device)
            for order in ("rgb", "bgr")
        }
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels
        self._graphs: OrderedDict[tuple, _GraphEntry] = OrderedDict()
        self._lock = threading.Lock()

    # -- the per-frame function (also what the CUDA graph captures) ---------------------------

    def _forward(self, image: torch.Tensor, order: str, with_confidence: bool
                 ) -> tuple[torch.Tensor, ...]:
        """image: 1 x H x W x 3 uint8 on device -> (labels[, confidence]) H x W uint8, then
        the labels at the network's resolution h x w (the node searches small objects there)."""
        x = self.pre[order](image).to(self.dtype).contiguous(memory_format=self.memory_format)
        logits = self.net(x)
        size = image.shape[1:3]
        network_labels = labels_from_logits(logits)
        labels = resize_nearest(network_labels, size)[0]
        if not with_confidence:
            return labels, network_labels[0]
        return labels, resize_nearest(confidence_from_logits(logits), size)[0], network_labels[0]

    # -- CPU ----------------------------------------------------------------------------------

    def _infer_cpu(self, frame: np.ndarray, order: str, with_confidence: bool) -> EngineOutput:
        t0 = time.perf_counter()
        image = torch.from_numpy(frame)[None]  # zero-copy view
        x = self.pre[order](image).to(self.dtype).contiguous(memory_format=self.memory_format)
        t1 = time.perf_counter()
        logits = self.net(x)
        labels = labels_from_logits(logits)
        conf = confidence_from_logits(logits) if with_confidence else None
        t2 = time.perf_counter()
        size = frame.shape[:2]
        labels_np = resize_nearest(labels, size)[0].numpy()
        conf_np = resize_nearest(conf, size)[0].numpy() if conf is not None else None
        t3 = time.perf_counter()
        timings = StageTimings(preprocess_ms=(t1 - t0) * 1e3, inference_ms=(t2 - t1) * 1e3,
                               postprocess_ms=(t3 - t2) * 1e3)
        return EngineOutput(labels_np, conf_np, timings, network_labels=labels[0].numpy())

    # -- CUDA ---------------------------------------------------------------------------------

    def _capture(self, key: tuple) -> _GraphEntry:
        height, width, order, with_confidence = key
        host_in = torch.empty((1, height, width, 3), dtype=torch.uint8, pin_memory=True)
        device_in = torch.zeros((1, height, width, 3), dtype=torch.uint8, device=self.device)
        graph = None
        if self.use_graphs:
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up: cuDNN autotuning, allocator pools
                for _ in range(_WARMUP_ITERS):
                    self._forward(device_in, order, with_confidence)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = self._forward(device_in, order, with_confidence)
        else:
            outputs = self._forward(device_in, order, with_confidence)
        host_out = tuple(torch.empty(o.shape, dtype=torch.uint8, pin_memory=True)
                         for o in outputs)
        log.info("torch engine: %s for %dx%d %s%s", "captured a CUDA graph" if graph else
                 "prepared eager buffers", height, width, order,
                 " + confidence" if with_confidence else "")
        return _GraphEntry(graph, host_in, device_in, outputs, host_out)

    def _entry(self, key: tuple) -> _GraphEntry:
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(key)
            self._graphs[key] = entry
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        return entry

    def _infer_cuda(self, frame: np.ndarray, order: str, with_confidence: bool) -> EngineOutput:
        key = (frame.shape[0], frame.shape[1], order, with_confidence)
        entry = self._entry(key)
        stream = torch.cuda.current_stream(self.device)
        events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        t0 = time.perf_counter()
        entry.host_in[0].numpy()[...] = frame  # into page-locked memory for an async copy
        staging_ms = (time.perf_counter() - t0) * 1e3
        events[0].record(stream)
        entry.device_in.copy_(entry.host_in, non_blocking=True)
        events[1].record(stream)
        if entry.graph is not None:
            entry.graph.replay()
        else:
            entry.outputs = self._forward(entry.device_in, order, with_confidence)
        events[2].record(stream)
        for host, dev in zip(entry.host_out, entry.outputs):
            host.copy_(dev, non_blocking=True)
        events[3].record(stream)
        events[3].synchronize()
        # Copies out: the pinned buffers are overwritten by the next frame of this size.
        labels = entry.host_out[0].numpy().copy()
        conf = entry.host_out[1].numpy().copy() if with_confidence else None
        network_labels = entry.host_out[-1].numpy().copy()
        return EngineOutput(labels, conf, StageTimings(
            preprocess_ms=staging_ms + events[0].elapsed_time(events[1]),
            inference_ms=events[1].elapsed_time(events[2]),
            postprocess_ms=events[2].elapsed_time(events[3]),
        ), network_labels=network_labels)

    def infer(self, frame: np.ndarray, channel_order: str, with_confidence: bool) -> EngineOutput:
        """frame: H x W x 3 uint8 in ``channel_order`` -> labels (and confidence) at H x W."""
        order = check_channel_order(channel_order)
        with self._lock, torch.inference_mode():
            if self.cuda:
                return self._infer_cuda(frame, order, with_confidence)
            return self._infer_cpu(frame, order, with_confidence)


# ---- the engine registry's hooks (see .registry) --------------------------------------------

def status() -> str:
    where = "CUDA and CPU" if torch.cuda.is_available() else "CPU only"
    return f"available: torch {torch.__version__} on {where}"


def unavailable_reason(request: EngineRequest) -> str | None:
    if request.weights is None and (request.onnx is not None or request.engine_path):
        return "needs weights (only an ONNX/engine was given)"
    if request.precision == "bf16" and request.cuda:
        return "bf16 is for CPUs (fp16 on CUDA)"
    if request.precision == "bf16" and not cpu_bf16_supported():
        return "this CPU has no bf16 instructions (AVX512-BF16 or AMX)"
    if not request.cuda and request.explicit != "torch":
        return "no CUDA device (on CPU ONNX Runtime is faster; ask for engine='torch')"
    return None


def build(request: EngineRequest) -> TorchEngine:
    model, card = request.network()
    return TorchEngine(model, card, device=request.device, precision=request.precision)
