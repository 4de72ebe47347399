"""segment_node: semantic segmentation of one or more camera streams with one shared engine.

This module is the command line; the node is `bisestdc_ros.node.segment_node.SegmentNode`, its
managed variant `bisestdc_ros.node.lifecycle.ManagedSegmentNode` (``segment_node --managed``).

Kept free of heavy imports at module level: the console script imports this module before
`main` runs, and `main` must install the signal handlers before numpy, OpenCV, rclpy and the
engine are imported, so a Ctrl-C at any moment of start-up exits 0 without a traceback.

Shutdown: SIGINT and SIGTERM raise during start-up (imports, engine build, a managed node's
configure) and only set a flag once running; the main loop then stops the worker, destroys the
node and shuts rclpy down, in that order, so no publish meets an invalid context and a second
signal (``ros2 launch`` forwards Ctrl-C as one) cannot interrupt the clean-up. The wait for the
worker is bounded by what is left of `SHUTDOWN_BUDGET_S`: a frame still inside the engine after
that is abandoned (the process exits at once, 0, without tearing down under the worker's feet).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

NODE_NAME = "segment_node"
SPIN_PERIOD_S = 0.1  # how soon the main loop notices a shutdown signal
# From the signal to the worker given up on; the rest of the 5 s an orchestrator allows goes
# to destroying the node, rclpy's shutdown and the interpreter's exit.
SHUTDOWN_BUDGET_S = 3.0
MANAGED_FLAG = "--managed"  # the launch file passes exactly this (LifecycleNode arguments)


def build_parser() -> Any:
    """`segment_node --help`: what the node does and every parameter with its default."""
    import argparse

    from bisestdc_ros.node.config import parameters_help

    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    parser = argparse.ArgumentParser(
        prog=NODE_NAME,
        formatter_class=Formatter,
        description=(
            "Semantic segmentation of camera streams (BiSeSTDC) as a ROS 2 node. Parameters are "
            "ROS parameters, given after --ros-args:\n"
            "  segment_node --ros-args --params-file config/segment.yaml "
            "-p weights:=/models/bisestdc.pt"
        ),
        epilog="parameters:\n" + parameters_help(),
    )
    parser.add_argument(
        MANAGED_FLAG, action="store_true",
        help="run as a lifecycle (managed) node: the engine is loaded on configure, frames are "
             "segmented only while active",
    )
    return parser


class _ShutdownRequested(BaseException):
    """A shutdown signal arrived while the node was still starting (imports, engine build)."""


class _ShutdownSignals:
    """SIGINT/SIGTERM handling: raise during start-up, only set a flag once running.

    rclpy's own handlers shut the context down at the first signal, while the worker may still
    publish; here the main loop notices the flag and shuts down in order.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.requested_at: float | None = None
        self.running = False
        self._lost: int | None = None  # a signal whose raise was swallowed, until it lands
        self._landed = threading.Event()
        self._previous_unraisable_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        first = not self.requested.is_set()
        if first:
            self.requested_at = time.monotonic()
        self.requested.set()
        if not self.running and (first or self._lost is not None):
            raise _ShutdownRequested(signal.Signals(signum).name)

    def landed(self) -> None:
        """The shutdown exception reached start-up's caller: stop delivering it again."""
        self._landed.set()

    def _unraisable(self, unraisable: Any) -> None:
        # A signal whose handler runs inside a callback Python ignores exceptions of (an import
        # lock's weakref callback, a finaliser) loses the raise, and start-up would go on.
        # Deliver it again from another thread until the raise lands in ordinary code.
        if not isinstance(unraisable.exc_value, _ShutdownRequested):
            self._previous_unraisable_hook(unraisable)
            return
        if self._lost is None:
            name = str(unraisable.exc_value)
            self._lost = signal.Signals[name] if name in signal.Signals.__members__ \
                else signal.SIGINT
            threading.Thread(target=self._redeliver, daemon=True).start()

    def _redeliver(self) -> None:
        while not self._landed.wait(0.05) and not self.running:
            os.kill(os.getpid(), self._lost)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """While running, a stretch where a signal raises again (a managed node's configure:
        the engine build must not hold the shutdown up)."""
        if self.requested.is_set():
            raise _ShutdownRequested("shutdown requested")
        self.running = False
        try:
            yield
        finally:
            self.running = True

    def deadline(self) -> float:
        """When the wait for the worker ends: the budget counts from the first signal."""
        start = self.requested_at if self.requested_at is not None else time.monotonic()
        return start + SHUTDOWN_BUDGET_S


def main(args: list[str] | None = None) -> int:
    # First of all, before any heavy import: a signal from here on ends the process cleanly.
    signals = _ShutdownSignals()
    as_command = args is None
    args = sys.argv if args is None else args
    try:
        from rclpy.utilities import remove_ros_args

        options = build_parser().parse_args(remove_ros_args(args)[1:])  # --help exits here
        return _run(args, options.managed, signals)
    except _ShutdownRequested:
        signals.landed()
        return 0  # interrupted before anything needed cleaning up
    finally:
        if as_command:
            # Clean-up is done. The interpreter's exit restores the default handlers, and a
            # signal still on its way (``ros2 launch`` forwards the Ctrl-C the terminal already
            # delivered) would then kill the exit (code -2); ignored handlers stay ignored.
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_IGN)


def _make_node(managed: bool, signals: _ShutdownSignals) -> Any:
    if managed:
        from bisestdc_ros.node.lifecycle import ManagedSegmentNode

        return ManagedSegmentNode(configure_guard=signals.interruptible)
    from bisestdc_ros.node.segment_node import SegmentNode

    return SegmentNode()


def _run(args: list[str], managed: bool, signals: _ShutdownSignals) -> int:
    import rclpy
    from rclpy.exceptions import ParameterException
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.logging import get_logger
    from rclpy.signals import SignalHandlerOptions

    from bisestdc_ros.node.errors import StartupError

    node = None
    code = 0
    finished = True
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        node = _make_node(managed, signals)
        signals.running = True
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not signals.requested.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
        node.get_logger().info("shutting down")
    except (StartupError, ParameterException) as error:
        # Bad parameters or model files: say why and exit non-zero (launch shows the message).
        get_logger(NODE_NAME).fatal(f"cannot start: {error}")
        code = 2
    except (_ShutdownRequested, ExternalShutdownException):
        signals.landed()
    finally:
        signals.running = True  # from here a signal only sets the flag: clean-up runs to the end
        finished = _shut_down(node, signals.deadline())
    if not finished:
        # The worker is still inside the engine: tearing rclpy down under it could crash the
        # interpreter's exit, and waiting longer breaks the 5 s an orchestrator allows.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _shut_down(node: Any, deadline: float) -> bool:
    """Stop the worker (bounded), destroy the node, shut rclpy down.

    Returns:
        False when the worker did not stop before ``deadline`` (nothing was torn down).
    """
    import rclpy

    if node is not None:
        if not node.stop(timeout=deadline - time.monotonic()):
            node.get_logger().warning("the worker is still inside a frame; exiting without it")
            return False
        node.destroy_node()
    rclpy.try_shutdown()
    return True


if __name__ == "__main__":
    sys.exit(main())
