"""Latest-frame-wins hand-over between subscription callbacks and the inference worker.

Cameras publish faster than one shared engine can segment all of them. Queueing would grow
latency (and memory) without bound, so each camera has one slot: a new frame replaces the
pending one (counted as a drop), and the worker takes pending frames round-robin so no camera
starves another. No rclpy here: the node wires it to its callbacks and worker thread.
"""

from __future__ import annotations

import threading
from typing import Any


class LatestFrameSlots:
    """One pending item per camera; ``take`` serves cameras round-robin."""

    def __init__(self, num_cameras: int):
        if num_cameras < 1:
            raise ValueError("need at least one camera")
        self._pending: list[Any] = [None] * num_cameras
        self._drops = [0] * num_cameras
        self._next = 0
        self._closed = False
        self._cond = threading.Condition()

    def put(self, camera: int, item: Any) -> bool:
        """Store the newest item of a camera; True when it replaced an unprocessed one."""
        if item is None:
            raise ValueError("None marks an empty slot")
        with self._cond:
            replaced = self._pending[camera] is not None
            if replaced:
                self._drops[camera] += 1
            self._pending[camera] = item
            self._cond.notify()
        return replaced

    def take(self, timeout: float | None = None) -> tuple[int, Any] | None:
        """The next pending (camera, item), waiting up to ``timeout`` s; None on timeout/close."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._closed or any(p is not None for p in self._pending), timeout
            ):
                return None
            if self._closed:
                return None
            count = len(self._pending)
            for offset in range(count):
                camera = (self._next + offset) % count
                item = self._pending[camera]
                if item is not None:
                    self._pending[camera] = None
                    self._next = (camera + 1) % count
                    return camera, item
        return None  # unreachable: wait_for guaranteed a pending item

    def drops(self, camera: int) -> int:
        with self._cond:
            return self._drops[camera]

    def total_drops(self) -> int:
        with self._cond:
            return sum(self._drops)

    def pending_count(self) -> int:
        with self._cond:
            return sum(p is not None for p in self._pending)

    def close(self) -> None:
        """Wake the worker for shutdown; later ``take`` calls return None at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
