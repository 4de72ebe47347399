"""Python `logging` records (library warnings included) forwarded to a ROS logger.

The core library logs through `logging`; inside a node those records must reach the node's
ROS logger, so they appear with its name, honour `--log-level` and are published on /rosout.
"""

from __future__ import annotations

import logging
from typing import Any

# rcutils has no level between WARN and ERROR or below DEBUG; map Python's levels onto its five.
_LEVELS = (
    (logging.CRITICAL, "fatal"),
    (logging.ERROR, "error"),
    (logging.WARNING, "warning"),
    (logging.INFO, "info"),
)


class RosLogHandler(logging.Handler):
    """Emits each record through ``ros_logger.get_child(<last part of the record's name>)``.

    Children of a node's logger are registered for /rosout by rclpy, so library messages reach
    /rosout under ``<node logger>.<module>``.
    """

    def __init__(self, ros_logger: Any):
        super().__init__(level=logging.DEBUG)
        self._ros_logger = ros_logger
        self._children: dict[str, Any] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = record.name.rsplit(".", 1)[-1] or "python"
            logger = self._children.get(name)
            if logger is None:
                logger = self._children[name] = self._ros_logger.get_child(name)
            method = next((m for level, m in _LEVELS if record.levelno >= level), "debug")
            getattr(logger, method)(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def forward_python_logging(ros_logger: Any, level: int = logging.INFO) -> RosLogHandler:
    """Route the root Python logger (and `warnings`) to ``ros_logger``; returns the handler.

    Python's root logger defaults to WARNING; it is lowered to ``level`` so the library's INFO
    lines (engine choice, caches) are shown, the ROS logger's own level filtering them further.
    """
    handler = RosLogHandler(ros_logger)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    logging.captureWarnings(True)
    return handler


def stop_forwarding(handler: RosLogHandler) -> None:
    """Undo `forward_python_logging` (warnings stay captured while another node forwards)."""
    root = logging.getLogger()
    root.removeHandler(handler)
    if not any(isinstance(h, RosLogHandler) for h in root.handlers):
        logging.captureWarnings(False)
