"""Where the ROS 2 tools live for the tests: the optional overlay source and what imports.

Tests that need `launch_ros`, the `ros2` command or `vision_msgs` run wherever those import (a
ROS install, or the overlay built by `.ci/run`) and skip with the reason otherwise. CI sets
BISESTDC_REQUIRE_ROS_TOOLS=1 when it built the overlay: then a missing tool fails the test
instead of skipping it, so the overlay-dependent tests cannot silently stop running.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRE_VARIABLE = "BISESTDC_REQUIRE_ROS_TOOLS"


def overlay_source() -> Path | None:
    """The `shared/ros-overlay` folder beside the checkout (or named by BISESTDC_ROS_OVERLAY).

    Looked for next to the repository and next to each of its parents, so a checkout at
    ``<root>/<repo>`` or ``<root>/<group>/<repo>`` finds ``<root>/shared/ros-overlay``.
    """
    given = os.environ.get("BISESTDC_ROS_OVERLAY")
    if given:
        return Path(given) if Path(given).is_dir() else None
    for parent in REPO_ROOT.parents:
        candidate = parent / "shared" / "ros-overlay"
        if candidate.is_dir():
            return candidate
    return None


def missing_ros_tools(modules: tuple[str, ...] = (), commands: tuple[str, ...] = ()) -> str:
    """"" when every module imports and every command is on PATH, else what is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    missing += [c for c in commands if shutil.which(c) is None]
    return ", ".join(missing)


def require_ros_tools(modules: tuple[str, ...] = (), commands: tuple[str, ...] = ()) -> None:
    """Skip (or fail, under BISESTDC_REQUIRE_ROS_TOOLS=1) when a ROS tool is missing."""
    missing = missing_ros_tools(modules, commands)
    if not missing:
        return
    reason = (f"needs {missing}: a ROS 2 install, or the overlay "
              "(bash ../shared/ros-overlay/build.sh .venv .ros-overlay; "
              "source .ros-overlay/setup.sh)")
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{REQUIRE_VARIABLE}=1 but the test {reason}")
    pytest.skip(reason)


def require_installed_package(package: str = "bisestdc_ros") -> None:
    """Skip (or fail, see above) unless ``package`` is in an ament prefix (`ros2 run` finds it).

    `colcon test` provides it; by hand: colcon build and source install/setup.bash.
    """
    try:
        from ament_index_python.packages import get_package_share_directory

        get_package_share_directory(package)
    except (ImportError, LookupError, KeyError, OSError):
        # PackageNotFoundError is a KeyError; an unset AMENT_PREFIX_PATH raises an EnvironmentError.
        require_ros_tools(modules=(f"{package} installed in an ament prefix (colcon build; "
                                   "source install/setup.bash)",))
