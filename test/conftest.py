"""Shared pytest fixtures.

Every ROS test goes through `ros_env` (or `rclpy_context`, which builds on it): each test gets
its own ROS_DOMAIN_ID and discovery is confined to loopback, so no DDS traffic leaves the
machine and parallel or successive tests never hear each other.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    # colcon runs pytest from the source tree; make the packages importable from there too.
    sys.path.insert(0, str(REPO_ROOT))

# Domain ids 1..100 are valid for every RMW; start from the process id so that two pytest
# processes running at the same time are unlikely to collide, then step per test.
_DOMAIN_IDS = itertools.cycle(range(1, 101))
for _ in range(os.getpid() % 100):
    next(_DOMAIN_IDS)


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is present on this machine")
    if not _has_cuda():
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def test_checkpoint(tmp_path_factory) -> Path:
    """A small deterministic stdc1 checkpoint with varied predictions, made once per session."""
    from segment_harness import write_test_checkpoint

    return write_test_checkpoint(tmp_path_factory.mktemp("weights") / "stdc1.pt")


@pytest.fixture(scope="session")
def test_weights(request) -> Path:
    """BISESTDC_TEST_WEIGHTS when set, else ``test_checkpoint``."""
    given = os.environ.get("BISESTDC_TEST_WEIGHTS")
    return Path(given) if given else request.getfixturevalue("test_checkpoint")


@pytest.fixture
def ros_env(monkeypatch) -> dict[str, str]:
    """Environment for one ROS test: private domain id, localhost-only discovery.

    Returns the full environment (a dict) to pass to subprocesses such as the node under test.
    """
    domain_id = str(next(_DOMAIN_IDS))
    monkeypatch.setenv("ROS_DOMAIN_ID", domain_id)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")  # older distros read this one
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def rclpy_context(ros_env):
    """An initialised rclpy Context on the test's own domain, shut down cleanly afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=int(ros_env["ROS_DOMAIN_ID"]))
    try:
        yield context
    finally:
        if context.ok():
            rclpy.shutdown(context=context)
