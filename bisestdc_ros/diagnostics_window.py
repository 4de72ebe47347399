"""The statistics behind ``/diagnostics``: counters since the last message, recent latencies.

The worker thread records each frame's outcome; the diagnostics timer (executor thread) closes
the window once per period and gets a consistent snapshot. No rclpy here, like
`frame_slots`: the node turns a `WindowStats` into a DiagnosticStatus.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

LATENCY_SAMPLES = 1000  # recent frames kept for the p50/p99 (several windows at camera rates)


@dataclass(frozen=True)
class WindowStats:
    """One closed window.

    Attributes:
        elapsed_s: seconds the window lasted.
        frames: frames segmented in the window.
        input_errors: malformed frames in the window.
        engine_errors: failed frames in the window.
        engine_errors_total: failed frames since start.
        last_engine_error: the most recent failure's message ("" if none ever).
        latency_p50_ms, latency_p99_ms: receive -> published over the recent frames (0 if none).
        latency_samples: how many recent frames those percentiles cover.
    """

    elapsed_s: float
    frames: int
    input_errors: int
    engine_errors: int
    engine_errors_total: int
    last_engine_error: str
    latency_p50_ms: float
    latency_p99_ms: float
    latency_samples: int

    @property
    def rate_hz(self) -> float:
        return self.frames / self.elapsed_s


class DiagnosticsWindow:
    """Thread-safe per-window counters plus a sliding window of node latencies."""

    def __init__(self, latency_samples: int = LATENCY_SAMPLES,
                 clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._latencies: deque[float] = deque(maxlen=latency_samples)
        self._start = clock()
        self._frames = self._input_errors = self._engine_errors = 0
        self._engine_errors_total = 0
        self._last_engine_error = ""

    def frame_done(self, node_latency_ms: float) -> None:
        with self._lock:
            self._latencies.append(node_latency_ms)
            self._frames += 1

    def input_error(self) -> None:
        with self._lock:
            self._input_errors += 1

    def engine_error(self, message: str) -> None:
        with self._lock:
            self._engine_errors += 1
            self._engine_errors_total += 1
            self._last_engine_error = message

    def close(self) -> WindowStats:
        """The window's statistics; the next window starts now (latencies carry over)."""
        now = self._clock()
        with self._lock:
            latencies = np.array(self._latencies, np.float64)
            stats = WindowStats(
                elapsed_s=max(now - self._start, 1e-6),
                frames=self._frames,
                input_errors=self._input_errors,
                engine_errors=self._engine_errors,
                engine_errors_total=self._engine_errors_total,
                last_engine_error=self._last_engine_error,
                latency_p50_ms=0.0, latency_p99_ms=0.0, latency_samples=int(latencies.size),
            )
            self._start = now
            self._frames = self._input_errors = self._engine_errors = 0
        if latencies.size:  # percentiles outside the lock: the worker must not wait on them
            p50, p99 = np.percentile(latencies, [50, 99])
            stats = replace(stats, latency_p50_ms=float(p50), latency_p99_ms=float(p99))
        return stats
