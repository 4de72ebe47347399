"""segment_node as a ROS 2 managed (lifecycle) node: ``segment_node --managed``.

The transitions run the phases of `SegmentNode` one at a time, so a launch file or an
orchestrator decides when the engine is built and when frames flow:

- configure: validate the parameters, load and warm the engine (the slow part);
- activate: subscribe the cameras, create the publishers and /diagnostics, start the worker;
- deactivate: stop the worker, destroy subscriptions and publishers (no output at all);
- cleanup: free the engine; shutdown and error: all of the above from wherever the node was.

Publishers are created at activation rather than as lifecycle publishers: an inactive node then
does not even appear as a publisher of its output topics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from bisestdc_ros.node.errors import StartupError
from bisestdc_ros.node.segment_node import SegmentNode

Guard = Callable[[], contextlib.AbstractContextManager[Any]]


class ManagedSegmentNode(SegmentNode, LifecycleNode):
    """`SegmentNode` whose engine and interfaces follow the lifecycle transitions."""

    STARTS_ACTIVE = False

    def __init__(self, segmenter: Any = None, configure_guard: Guard = contextlib.nullcontext,
                 **node_kwargs: Any):
        """Declare the parameters only; nothing else happens before `on_configure`.

        Args:
            segmenter: an already built engine (tests); None builds one at configure.
            configure_guard: wraps the engine build (the command line makes a shutdown signal
                interrupt it there, as it does during a plain node's start-up).
            node_kwargs: passed to rclpy's LifecycleNode (context, parameter_overrides, ...).
        """
        self._injected_segmenter = segmenter
        self._configure_guard = configure_guard
        super().__init__(segmenter=segmenter, **node_kwargs)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            with self._configure_guard():
                self.configure_engine(self._injected_segmenter)
        except StartupError as error:
            self.get_logger().error(f"cannot configure: {error}")
            self.release_engine()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"configured: {self.engine_name} engine with "
                               f"{self._model_source}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.open_interfaces()
        except StartupError as error:
            self.get_logger().error(f"cannot activate: {error}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if not self.close_interfaces():
            # Destroying the publishers under a frame in progress could crash the worker.
            self.get_logger().error("cannot deactivate: the worker is stuck inside a frame")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("deactivated: not segmenting")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release_engine()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release_engine()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # Back to unconfigured with nothing held, ready for another configure.
        self.release_engine()
        return TransitionCallbackReturn.SUCCESS
