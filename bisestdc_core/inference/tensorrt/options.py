"""The TensorRT engine's own options (build and run), one definition for the CLI, the node
and the Segmenter. Pure Python: importing it loads neither TensorRT nor pycuda.
"""

from __future__ import annotations

from dataclasses import dataclass

# qdq: int8 from an explicitly quantized (QDQ) graph (the TensorRT 10 way; supported since
# TensorRT 8.0, so on every version this code runs on); implicit: IInt8EntropyCalibrator2,
# deprecated from TensorRT 10.1, only when asked for.
INT8_CALIBRATIONS = ("qdq", "implicit")
ZERO_COPY_CHOICES = ("auto", "on", "off")
DEFAULT_WORKSPACE_MB = 2048


@dataclass(frozen=True)
class TensorRTOptions:
    """How TensorRT builds and runs an engine.

    Attributes:
        workspace_mb: builder workspace memory pool limit (MiB); part of the cache key.
        timing_cache: persistent builder timing cache file; empty: ``timing.cache`` beside the
            engine cache (``$BISESTDC_CACHE_DIR/tensorrt``). Reused across builds, so a rebuild
            (new weights, another precision) skips most kernel timing.
        dla_core: -1 runs on the GPU; N >= 0 builds for DLA core N (Jetson Xavier/Orin) with
            GPU fallback for layers the DLA lacks; refused where the device has no DLA.
        int8_calibration: ``qdq`` (default): int8 from an explicitly quantized graph;
            ``implicit``: TensorRT's entropy calibrator on the calibration frames.
        cuda_graph: replay the execution context as a CUDA graph per input shape (needs
            cuda-python); saves the launch overhead of many small kernels.
        zero_copy: host-mapped buffers the GPU reads in place: ``auto`` = on integrated GPUs
            (Jetson: host and device share one DRAM), ``on``, ``off``.
        profile_layers: every N frames log TensorRT's per-layer times (and write them as JSON
            beside the engine); 0: off (profiling slows inference).
    """

    workspace_mb: int = DEFAULT_WORKSPACE_MB
    timing_cache: str = ""
    dla_core: int = -1
    int8_calibration: str = "qdq"
    cuda_graph: bool = False
    zero_copy: str = "auto"
    profile_layers: int = 0

    def __post_init__(self):
        checks = (
            ("workspace_mb", _is_int(self.workspace_mb) and self.workspace_mb >= 1, ">= 1"),
            ("timing_cache", isinstance(self.timing_cache, str), "a path or empty"),
            ("dla_core", _is_int(self.dla_core) and self.dla_core >= -1,
             "-1 (GPU) or a DLA core >= 0"),
            ("int8_calibration", self.int8_calibration in INT8_CALIBRATIONS,
             f"one of {', '.join(INT8_CALIBRATIONS)}"),
            ("cuda_graph", isinstance(self.cuda_graph, bool), "true or false"),
            ("zero_copy", self.zero_copy in ZERO_COPY_CHOICES,
             f"one of {', '.join(ZERO_COPY_CHOICES)}"),
            ("profile_layers", _is_int(self.profile_layers) and self.profile_layers >= 0,
             "0 (off) or every N frames"),
        )
        for name, ok, wanted in checks:
            if not ok:
                raise ValueError(f"TensorRT option {name} must be {wanted}; got "
                                 f"{getattr(self, name)!r}")

    @property
    def on_dla(self) -> bool:
        return self.dla_core >= 0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
