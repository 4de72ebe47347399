"""Per-layer timings of a running engine (the ``profile_layers`` option).

TensorRT calls ``IProfiler.report_layer_time(layer_name, ms)`` for every layer of every
execution once a profiler is set as ``context.profiler``; :class:`LayerTimes` sums them and,
every N frames, logs the slowest layers and writes all of them as JSON beside the engine.
Profiling slows execution down, so it is off unless asked for.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from bisestdc_core.artefacts import atomic_write_text

log = logging.getLogger(__name__)
LOGGED_LAYERS = 10


class LayerTimes:
    """Per-layer milliseconds summed over ``every`` frames, then reported and reset.

    Args:
        every: frames per report.
        json_path: where each report is written (``<engine>.layers.json``).
    """

    def __init__(self, every: int, json_path: str | os.PathLike):
        if every < 1:
            raise ValueError(f"profile_layers must be >= 1 frames; got {every}")
        self.every = every
        self.json_path = Path(json_path)
        self._totals: dict[str, float] = {}
        self._frames = 0

    def record(self, layer: str, ms: float) -> None:
        self._totals[layer] = self._totals.get(layer, 0.0) + float(ms)

    def end_frame(self) -> dict[str, Any] | None:
        """Count one frame; every ``every`` frames returns (and logs and writes) the report."""
        self._frames += 1
        if self._frames < self.every:
            return None
        mean = {name: total / self._frames for name, total in self._totals.items()}
        report = {"frames": self._frames, "total_ms": sum(mean.values()),
                  "layers_ms": dict(sorted(mean.items(), key=lambda kv: -kv[1]))}
        self._totals, self._frames = {}, 0
        slowest = ", ".join(f"{name} {ms:.3f}" for name, ms in
                            list(report["layers_ms"].items())[:LOGGED_LAYERS])
        log.info("TensorRT layers over %d frames: %.3f ms/frame; slowest (ms): %s (all in %s)",
                 report["frames"], report["total_ms"], slowest, self.json_path)
        atomic_write_text(self.json_path, json.dumps(report, indent=2) + "\n")
        return report


def make_profiler(trt: Any, times: LayerTimes) -> Any:
    """A ``trt.IProfiler`` feeding ``times`` (the class needs trt at definition time)."""

    class LayerProfiler(trt.IProfiler):
        def __init__(self):
            trt.IProfiler.__init__(self)

        def report_layer_time(self, layer_name, ms):
            times.record(layer_name, ms)

    return LayerProfiler()
