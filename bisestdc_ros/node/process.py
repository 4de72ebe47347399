"""segment_node in a subprocess: its command line, the Fast DDS large-images profile, start
and stop in its own process group (used by the bag tool's live mode, the tests and benchmarks).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# Above this many bytes per frame Fast DDS's default transports lose best-effort samples
# (UDP fragments, 512 KB shared-memory segment): both ends need the large-images profile.
LARGE_FRAME_BYTES = 512 * 1024
# Only the Fast DDS 3 name: setting the old FASTRTPS_DEFAULT_PROFILES_FILE as well makes every
# participant print a deprecation warning.
FASTDDS_PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE",)
# The source checkout: bisestdc_ros/node/process.py -> the repository root.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def segment_node_command(ros_args: list[str], managed: bool = False) -> list[str]:
    """``python -m bisestdc_ros.cli.segment_node [--managed] --ros-args ...`` with this interpreter.

    ``managed`` starts a lifecycle node, unconfigured until someone drives its transitions.
    """
    flags = ["--managed"] if managed else []
    return [sys.executable, "-m", "bisestdc_ros.cli.segment_node", *flags, "--ros-args", *ros_args]


def fastdds_profile() -> Path | None:
    """config/fastdds_large_images.xml of the source tree or the installed package."""
    candidate = PACKAGE_ROOT / "config" / "fastdds_large_images.xml"
    if candidate.is_file():
        return candidate
    try:
        from ament_index_python.packages import (  # noqa: PLC0415
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:
        return None
    try:
        installed = Path(get_package_share_directory("bisestdc_ros"))
    except PackageNotFoundError:
        return None
    candidate = installed / "config" / "fastdds_large_images.xml"
    return candidate if candidate.is_file() else None


def start_node(command: list[str], log_path: Path,
               env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start the node in its own process group, output to ``log_path``.

    ``env`` (default: this process's) gets this source tree on PYTHONPATH.
    """
    env = dict(os.environ if env is None else env)
    # The node must import this source tree even when the package is not installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                      env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    log.info("starting: %s", " ".join(command))
    with open(log_path, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_node(process: subprocess.Popen, timeout: float = 20.0, group: bool = False) -> int:
    """SIGINT (the node shuts down cleanly), SIGKILL to its group after ``timeout`` s.

    ``group`` sends the SIGINT to the whole process group, as Ctrl-C in a terminal does (what
    ``ros2 launch`` expects; it then interrupts its nodes itself).
    """
    if process.poll() is None:
        if group:
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
    return int(process.returncode)


def node_log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of the node's log file ("" when there is none)."""
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
