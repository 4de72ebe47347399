"""Soak test: overload segment_node for minutes and watch its memory.

Starts the node as a subprocess (CPU torch engine, small network unless told otherwise),
measures the rate it sustains, then publishes at twice that rate for --minutes and prints the
node's RSS at the start and end of the overload phase and the growth in percent. With
latest-frame-wins the node should drop frames, not grow.

    python -m benchmarks.soak --minutes 10
    python -m benchmarks.soak --minutes 0.5 --size 256x512
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from bisestdc_ros.bag_eval import (
    FASTDDS_PROFILE_VARIABLES,
    fastdds_profile,
    segment_node_command,
    start_node,
    stop_node,
)
from bisestdc_ros.segment_config import output_topics

LOG = logging.getLogger("soak")
REPO_ROOT = Path(__file__).resolve().parents[1]
CAMERA = "/soak/image_raw"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--size", default="512x1024", help="frame HxW (rgb8)")
    parser.add_argument("--network-size", default="256x512", help="HxW")
    parser.add_argument("--weights", default="", help="checkpoint; default an untrained stdc1")
    parser.add_argument("--model-name", default="stdc1")
    parser.add_argument("--calibration-s", type=float, default=15.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    height, width = (int(v) for v in args.size.split("x"))
    net_h, net_w = (int(v) for v in args.network_size.split("x"))
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(50 + os.getpid() % 50))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # Large frames between processes: the shared-memory profile of the launch file, under the
    # variable names of both Fast DDS 2 and 3.
    for variable in FASTDDS_PROFILE_VARIABLES:
        env.setdefault(variable, str(fastdds_profile()))
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE",
                                           *FASTDDS_PROFILE_VARIABLES)})

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if not weights:
            import torch

            from bisestdc_core.models import build_model, save_checkpoint

            torch.manual_seed(0)
            weights = str(Path(tmp) / "stdc1.pt")
            save_checkpoint(weights, build_model(args.model_name, 19), args.model_name,
                            "cityscapes")
        command = segment_node_command([
            "-p", f"image_topics:=['{CAMERA}']", "-p", "engine:=torch", "-p", "device:=cpu",
            "-p", f"weights:={weights}", "-p", f"model_name:={args.model_name}",
            "-p", f"network_height:={net_h}", "-p", f"network_width:={net_w}",
        ])
        node = start_node(command, Path(tmp) / "segment_node.log", env=env)
        try:
            return soak(node, args, height, width)
        finally:
            stop_node(node, timeout=30.0)


def soak(node: subprocess.Popen, args: argparse.Namespace, height: int, width: int) -> int:
    context = Context()
    rclpy.init(context=context)
    probe = rclpy.create_node("soak_probe", context=context)
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    publisher = probe.create_publisher(Image, CAMERA, qos)
    labels_count = [0]
    diagnostics: list[dict[str, str]] = []
    labels_sub = probe.create_subscription(
        Image, output_topics(CAMERA)["labels"],
        lambda _m: labels_count.__setitem__(0, labels_count[0] + 1), qos)
    probe.create_subscription(
        DiagnosticArray, "/diagnostics",
        lambda m: diagnostics.append({v.key: v.value for v in m.status[0].values}), 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        # Both directions: the node skips outputs nobody subscribes to, so a frame sent before
        # its labels publisher has matched ours would never be answered.
        while publisher.get_subscription_count() == 0 or labels_sub.get_publisher_count() == 0:
            if time.monotonic() > deadline or node.poll() is not None:
                LOG.error("the node did not come up")
                return 1
            time.sleep(0.1)
        frames = [np.random.default_rng(i).integers(0, 256, (height, width, 3), np.uint8)
                  for i in range(4)]
        msgs = []
        for i, frame in enumerate(frames):
            msg = Image(encoding="rgb8", height=height, width=width, step=width * 3)
            msg.header.frame_id = f"soak{i}"
            msg.data = frame.tobytes()
            msgs.append(msg)

        def publish_for(seconds: float, rate_hz: float | None) -> int:
            """Publish for `seconds`; rate None: one frame per processed result (closed loop)."""
            sent, end, next_t = 0, time.monotonic() + seconds, time.monotonic()
            last_sent = 0.0
            while time.monotonic() < end:
                if rate_hz is None:
                    # Closed loop; a frame unanswered for 1 s counts as lost and is re-sent.
                    if labels_count[0] < sent and time.monotonic() - last_sent < 1.0:
                        time.sleep(0.002)
                        continue
                else:
                    next_t += 1.0 / rate_hz
                    time.sleep(max(0.0, next_t - time.monotonic()))
                msg = msgs[sent % len(msgs)]
                msg.header.stamp = probe.get_clock().now().to_msg()
                publisher.publish(msg)
                sent += 1
                last_sent = time.monotonic()
            return sent

        before = labels_count[0]
        start = time.monotonic()
        publish_for(args.calibration_s, None)
        sustainable = max((labels_count[0] - before) / (time.monotonic() - start), 0.5)
        LOG.info("sustainable rate %.1f Hz; publishing at %.1f Hz for %.1f min", sustainable,
                 2 * sustainable, args.minutes)
        rss_start = rss_mib(node.pid)
        before = labels_count[0]
        start = time.monotonic()
        sent = publish_for(args.minutes * 60.0, 2 * sustainable)
        elapsed = time.monotonic() - start
        rss_end = rss_mib(node.pid)
        processed = labels_count[0] - before
        last = diagnostics[-1] if diagnostics else {}
        LOG.info("sent %d, segmented %d (%.1f Hz), node drops %s", sent, processed,
                 processed / elapsed, last.get("drops", "?"))
        LOG.info("p50 %s ms, p99 %s ms", last.get("latency_p50_ms", "?"),
                 last.get("latency_p99_ms", "?"))
        LOG.info("RSS start %.1f MiB, end %.1f MiB, growth %.1f %%", rss_start, rss_end,
                 100.0 * (rss_end - rss_start) / rss_start)
        return 0
    finally:
        executor.shutdown(timeout_sec=5)
        probe.destroy_node()
        rclpy.shutdown(context=context)


if __name__ == "__main__":
    sys.exit(main())
