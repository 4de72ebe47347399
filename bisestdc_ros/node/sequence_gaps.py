"""Frames lost before the node saw them, counted from the publishers' sequence numbers.

A camera subscription with the sensor-data QoS keeps one message per publisher in the DDS
reader queue: when frames arrive faster than the executor takes them, the older ones are
overwritten (and best-effort frames can be lost on the wire) without the node ever seeing them.
Each DDS writer numbers its samples 1, 2, 3, ...; rclpy hands the number and the writer's id to
a callback that takes a second argument (MessageInfo), so a jump from n to n + k means k - 1
frames of that publisher were lost on the way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SequenceGaps:
    """Counts the messages missing between consecutive sequence numbers of each publisher."""

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}
        self.lost = 0

    def observe(self, info: Mapping[str, Any]) -> None:
        """Account one received message from its rclpy MessageInfo."""
        number = info.get("publication_sequence_number")
        gid = info.get("publisher_gid")
        if number is None or not gid:
            return  # an RMW that does not report them: nothing can be counted
        key = bytes(gid["data"])
        last = self._last.get(key)
        # A number at or below the last one (reordering, a restarted publisher that reused its
        # id) starts the count again rather than guessing.
        if last is not None and number > last + 1:
            self.lost += number - last - 1
        self._last[key] = number
