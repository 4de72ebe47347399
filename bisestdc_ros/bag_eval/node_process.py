"""Live mode's segment_node subprocess: its command line, environment, start and stop.

Builds the ``python -m bisestdc_ros.segment_node --ros-args ...`` command for a bag and model
(network size and class count from the model card), works out the topic the frames are
replayed on, selects the Fast DDS large-images profile when frames are too big for the default
transports, and starts and stops the node in its own process group.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from bisestdc_ros.bag_eval.model_card import EvalModel
from bisestdc_ros.bag_eval.plan import BagPlan
from bisestdc_ros.bag_io import COMPRESSED_IMAGE

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"

# Above this many bytes per frame Fast DDS's default transports lose best-effort samples
# (UDP fragments, 512 KB shared-memory segment): both ends need the large-images profile.
LARGE_FRAME_BYTES = 512 * 1024
# Only the Fast DDS 3 name: setting the old FASTRTPS_DEFAULT_PROFILES_FILE as well makes every
# participant print a deprecation warning.
FASTDDS_PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE",)
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def replay_topic(plan: BagPlan, args: argparse.Namespace) -> tuple[str, str]:
    """(topic the node is configured with, topic the frames are published on).

    The node subscribes ``<topic>/compressed`` for compressed input (image_transport naming),
    so a compressed bag topic is published under that name whatever it was recorded as.
    """
    from bisestdc_ros.segment_config import input_topic  # noqa: PLC0415

    base = args.replay_topic or plan.image_topic
    if base.endswith("/compressed"):
        base = base[: -len("/compressed")]
    input_type = "compressed" if plan.image_type == COMPRESSED_IMAGE else "raw"
    return base, input_topic(base, input_type)


def node_command(plan: BagPlan, args: argparse.Namespace, camera_topic: str,
                 card: EvalModel) -> list[str]:
    """``python -m bisestdc_ros.segment_node --ros-args ...`` for this bag and model.

    The network size is always passed: the card's (or ``--network-size``), never the node's
    default.
    """
    params = [f"image_topics:=['{camera_topic}']",
              f"input_type:={'compressed' if plan.image_type == COMPRESSED_IMAGE else 'raw'}",
              f"qos:={'reliable' if args.reliable else 'sensor_data'}",
              # Only labels and latency are recorded; the node skips unsubscribed outputs
              # anyway, these keep a stray viewer from slowing the measurement down.
              "publish_color:=false", "publish_overlay:=false"]
    for name, value in (("weights", args.weights), ("onnx", args.onnx),
                        ("model_name", args.model_name)):
        if value:
            params.append(f"{name}:={value}")
    params += [f"engine:={args.engine}", f"device:={args.device}",
               f"precision:={args.precision}", f"num_classes:={card.class_set.num_classes}",
               f"network_height:={card.network_size[0]}",
               f"network_width:={card.network_size[1]}"]
    ros_args = ["--params-file", str(args.params_file)] if args.params_file else []
    for param in params + list(args.node_param or []):
        ros_args += ["-p", param]
    return segment_node_command(ros_args)


def segment_node_command(ros_args: list[str]) -> list[str]:
    """``python -m bisestdc_ros.segment_node --ros-args ...`` with this interpreter."""
    return [sys.executable, "-m", "bisestdc_ros.segment_node", "--ros-args", *ros_args]


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


def configure_large_frames(plan: BagPlan) -> str | None:
    """Set the Fast DDS large-images profile for this process (and so the node) if needed.

    Must run before rclpy.init: Fast DDS reads the variable when the participant is created.
    A profile the user already set is kept.
    """
    if plan.frame_bytes <= LARGE_FRAME_BYTES:
        return None
    current = next((os.environ[v] for v in FASTDDS_PROFILE_VARIABLES if v in os.environ), None)
    if current:
        return current
    profile = fastdds_profile()
    if profile is None:
        log.warning("frames of %d bytes but no fastdds_large_images.xml found; best-effort "
                    "frames may be lost", plan.frame_bytes)
        return None
    for variable in FASTDDS_PROFILE_VARIABLES:
        os.environ[variable] = str(profile)
    log.info("frames of %.1f MB: using the Fast DDS profile %s", plan.frame_bytes / 2**20,
             profile)
    return str(profile)


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
