"""Shared pytest fixtures.

Every ROS test goes through `ros_env` (or `rclpy_context`, which builds on it): each test gets
its own ROS_DOMAIN_ID and discovery is confined to loopback, so no DDS traffic leaves the
machine and parallel or successive tests never hear each other.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    # colcon runs pytest from the source tree; make the packages importable from there too.
    sys.path.insert(0, str(REPO_ROOT))


def domain_id_range() -> range:
    """The ROS_DOMAIN_IDs this pytest process may use.

    Ids 1..100 are valid for every RMW. BISESTDC_TEST_DOMAIN_IDS="FIRST-LAST" confines a run to
    its own ids, so that people sharing a machine cannot hear each other's nodes. Under
    pytest-xdist each worker takes its own slice of the range: two workers starting nodes at
    the same moment would otherwise join each other's graphs (a `ros2 param` reaching the other
    worker's /segment_node, a probe receiving the other's labels).
    """
    given = os.environ.get("BISESTDC_TEST_DOMAIN_IDS")
    first, last = (int(v) for v in given.split("-")) if given else (1, 100)
    ids = range(first, last + 1)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker.startswith("gw") and 1 < workers <= len(ids):
        ids = ids[int(worker[2:])::workers]
    return ids


DOMAIN_IDS = domain_id_range()
# Start from the process id so that two pytest processes running at the same time on the
# same range are unlikely to collide, then step per test.
_DOMAIN_IDS = itertools.cycle(DOMAIN_IDS)
for _ in range(os.getpid() % len(DOMAIN_IDS)):
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
    heavy_files_first(items)


def heavy_files_first(items: list) -> None:
    """Files with the most `slow` and `ros` tests first, each file's tests in their own order:
    `make test` hands whole files to its workers in this order, and a long end-to-end file
    started last would leave the other workers idle while it runs."""
    weight: collections.Counter[Path] = collections.Counter(
        item.path for item in items
        if item.get_closest_marker("slow") or item.get_closest_marker("ros"))
    order = {path: i for i, path in enumerate(dict.fromkeys(item.path for item in items))}
    items.sort(key=lambda item: (-weight[item.path], order[item.path]))


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


@pytest.fixture(scope="session")
def small_onnx(test_checkpoint, tmp_path_factory) -> Path:
    """``test_checkpoint`` exported once per session at the network size 128 x 256 the node
    tests run at (rgb, dynamic input H/W, with the confidence output detections need): the
    graph a node exports from ``weights:=`` at that size, so a node given ``onnx:=`` starts
    without importing torch. For tests whose subject is not the checkpoint path."""
    from bisestdc_core.cli.export import main as export_main

    path = tmp_path_factory.mktemp("small_onnx") / f"{test_checkpoint.stem}_128x256.onnx"
    assert export_main(["--weights", str(test_checkpoint), "--dynamic", "--confidence",
                        "--network-size", "128", "256", "--out", str(path)]) == 0
    return path


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


@pytest.fixture(autouse=True)
def standard_loggers_after_launch():
    """Importing ``launch`` in process (the launch-file tests do) makes every logger created
    afterwards a ``LaunchLogger`` that does not propagate, so a later test's caplog would miss
    the records of a project logger first created then (e.g. the parent named in
    ``caplog.at_level(logger=...)``). Put the standard logger class back after each test and let
    the project's loggers propagate again; launch's own loggers keep their setting."""
    yield
    if logging.getLoggerClass() is logging.Logger:
        return
    logging.setLoggerClass(logging.Logger)
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith(("bisestdc_core", "bisestdc_ros")) and \
                isinstance(logger, logging.Logger) and type(logger) is not logging.Logger:
            logger.propagate = True
