"""Soak test: cameras publishing flat out into segment_node for minutes; memory, latency, losses.

Starts the node as a subprocess (an untrained small network unless told otherwise) with one
topic per camera, then publishes rgb8 frames on every camera at the camera rate (default two
1920x1080 cameras at 30 Hz, far more than a CPU engine sustains) for --minutes. It prints, per
minute, the frames each camera sent and got labels for, the node's RSS and its /diagnostics
latency; then the RSS growth after the warm-up, the worst p99 latency, and where every sent
frame went: segmented, replaced in the node's one-frame-per-camera slot (``drops``), lost in
the DDS reader queue or on the wire (``dds_lost``, counted by the node from the publishers'
sequence numbers), malformed, or still in flight when the run ended.

    python -m benchmarks.soak --minutes 10
    python -m benchmarks.soak --minutes 0.5 --size 256x512 --cameras 1
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

from bisestdc_ros.node.config import output_topics
from bisestdc_ros.node.process import (
    FASTDDS_PROFILE_VARIABLES,
    fastdds_profile,
    segment_node_command,
    start_node,
    stop_node,
)

LOG = logging.getLogger("soak")
REPO_ROOT = Path(__file__).resolve().parents[1]
RSS_GROWTH_LIMIT_PCT = 5.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def camera_topics(count: int) -> list[str]:
    return [f"/soak/cam{i}/image_raw" for i in range(count)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the overload")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--size", default="1080x1920", help="frame HxW (rgb8)")
    parser.add_argument("--rate-hz", type=float, default=30.0,
                        help="frames per second per camera; 0 publishes as fast as possible")
    parser.add_argument("--warmup-s", type=float, default=60.0,
                        help="RSS growth is measured from the end of this")
    parser.add_argument("--network-size", default="256x512", help="HxW")
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--weights", default="", help="checkpoint; default an untrained stdc1")
    parser.add_argument("--model-name", default="stdc1")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    net_h, net_w = (int(v) for v in args.network_size.split("x"))
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(50 + os.getpid() % 50))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # Large frames between processes: the shared-memory profile of the launch file.
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
            weights = str(Path(tmp) / f"{args.model_name}.pt")
            save_checkpoint(weights, build_model(args.model_name, 19), args.model_name,
                            "cityscapes")
        topics = ",".join(f"'{t}'" for t in camera_topics(args.cameras))
        command = segment_node_command([
            "-p", f"image_topics:=[{topics}]", "-p", f"engine:={args.engine}",
            "-p", "device:=cpu", "-p", f"weights:={weights}",
            "-p", f"model_name:={args.model_name}",
            "-p", f"network_height:={net_h}", "-p", f"network_width:={net_w}",
        ])
        node = start_node(command, Path(tmp) / "segment_node.log", env=env)
        try:
            return soak(node, args)
        finally:
            stop_node(node, timeout=30.0)


class Counters:
    """Per-camera counts, written by the publisher threads and the probe's callbacks."""

    def __init__(self, cameras: int):
        self.lock = threading.Lock()
        self.sent = [0] * cameras
        self.labels = [0] * cameras
        self.diagnostics: list[dict[str, str]] = []

    def snapshot(self) -> tuple[list[int], list[int], dict[str, str]]:
        with self.lock:
            last = self.diagnostics[-1] if self.diagnostics else {}
            return list(self.sent), list(self.labels), dict(last)


def soak(node: subprocess.Popen, args: argparse.Namespace) -> int:
    height, width = (int(v) for v in args.size.split("x"))
    topics = camera_topics(args.cameras)
    counters = Counters(args.cameras)
    context = Context()
    rclpy.init(context=context)
    probe = rclpy.create_node("soak_probe", context=context)
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    publishers = [probe.create_publisher(Image, topic, qos) for topic in topics]

    def count_labels(index: int) -> None:
        with counters.lock:
            counters.labels[index] += 1

    def keep_diagnostics(msg: DiagnosticArray) -> None:
        with counters.lock:
            counters.diagnostics.append({v.key: v.value for v in msg.status[0].values})

    label_subs = [probe.create_subscription(Image, output_topics(topic)["labels"],
                                            lambda _m, i=i: count_labels(i), qos)
                  for i, topic in enumerate(topics)]
    probe.create_subscription(DiagnosticArray, "/diagnostics", keep_diagnostics, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    threading.Thread(target=executor.spin, daemon=True).start()
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 180
        # Both directions: the node skips outputs nobody subscribes to, so a frame sent before
        # its labels publisher has matched ours would never be answered.
        while not all(p.get_subscription_count() for p in publishers) or \
                not all(s.get_publisher_count() for s in label_subs):
            if time.monotonic() > deadline or node.poll() is not None:
                LOG.error("the node did not come up")
                return 1
            time.sleep(0.1)
        frames = [np.random.default_rng(i).integers(0, 256, (height, width, 3), np.uint8)
                  .tobytes() for i in range(4)]

        def camera(index: int) -> None:
            """Publish like a camera: at the rate, or back to back with --rate-hz 0."""
            msgs = []
            for i, data in enumerate(frames):
                msg = Image(encoding="rgb8", height=height, width=width, step=width * 3)
                msg.header.frame_id = f"cam{index}_{i}"
                msg.data = data
                msgs.append(msg)
            period = 1.0 / args.rate_hz if args.rate_hz > 0 else 0.0
            next_t = time.monotonic()
            sent = 0
            while not stop.is_set():
                msg = msgs[sent % len(msgs)]
                msg.header.stamp = probe.get_clock().now().to_msg()
                publishers[index].publish(msg)
                sent += 1
                with counters.lock:
                    counters.sent[index] = sent
                next_t += period
                # A camera that fell behind does not burst to catch up.
                next_t = max(next_t, time.monotonic() - period)
                time.sleep(max(0.0, next_t - time.monotonic()))

        threads = [threading.Thread(target=camera, args=(i,), daemon=True)
                   for i in range(args.cameras)]
        LOG.info("%d camera(s) of %dx%d rgb8 at %s for %.1f min; node pid %d",
                 args.cameras, width, height,
                 f"{args.rate_hz:g} Hz" if args.rate_hz > 0 else "full speed",
                 args.minutes, node.pid)
        start = time.monotonic()
        for thread in threads:
            thread.start()
        return watch(node, args, counters, start, stop)
    finally:
        stop.set()
        executor.shutdown(timeout_sec=5)
        probe.destroy_node()
        rclpy.shutdown(context=context)


def watch(node: subprocess.Popen, args: argparse.Namespace, counters: Counters,
          start: float, stop: threading.Event) -> int:
    """Sample every few seconds, log each minute, then the summary; 1 if a check fails."""
    end = start + args.minutes * 60.0
    sample_s = 5.0
    rss_warm = None
    rss_samples: list[float] = []
    p99_after_warmup: list[float] = []
    minute_sent, minute_labels = [0] * args.cameras, [0] * args.cameras
    next_minute = start + 60.0
    silent_minutes = 0
    LOG.info("minute | sent per camera | labels per camera | RSS MiB | p50 / p99 ms | "
             "drops | dds_lost")
    while time.monotonic() < end:
        time.sleep(min(sample_s, max(0.0, end - time.monotonic())))
        if node.poll() is not None:
            LOG.error("the node exited with %s during the soak", node.returncode)
            return 1
        now = time.monotonic()
        rss = rss_mib(node.pid)
        sent, labels, diag = counters.snapshot()
        if now - start >= args.warmup_s:
            if rss_warm is None:
                rss_warm = rss
            rss_samples.append(rss)
            if diag.get("latency_p99_ms"):
                p99_after_warmup.append(float(diag["latency_p99_ms"]))
        if now >= next_minute or now >= end:
            got = [b - a for a, b in zip(minute_labels, labels)]
            silent_minutes += any(g == 0 for g in got)
            LOG.info("%6.1f | %s | %s | %7.1f | %s / %s | %s | %s", (now - start) / 60.0,
                     " ".join(f"{b - a:5d}" for a, b in zip(minute_sent, sent)),
                     " ".join(f"{g:5d}" for g in got), rss,
                     diag.get("latency_p50_ms", "?"), diag.get("latency_p99_ms", "?"),
                     diag.get("drops", "?"), diag.get("dds_lost", "?"))
            minute_sent, minute_labels = sent, labels
            next_minute += 60.0
    stop.set()  # the cameras stop; what they sent is final
    elapsed = time.monotonic() - start
    time.sleep(3.0)  # the last frames in flight and one more /diagnostics
    sent, labels, diag = counters.snapshot()
    segmented, drops = int(diag.get("frames", 0)), int(diag.get("drops", 0))
    dds_lost, bad = int(diag.get("dds_lost", 0)), int(diag.get("input_errors", 0))
    total = sum(sent)
    LOG.info("sent %d frames (%s per camera, %.1f Hz in all) in %.1f s", total,
             "/".join(map(str, sent)), total / elapsed, elapsed)
    LOG.info("segmented %d (%.1f Hz), labels received %d", segmented, segmented / elapsed,
             sum(labels))
    LOG.info("where the sent frames went: segmented %d + replaced in the node's slot %d + "
             "lost in DDS %d + malformed %d = %d; unaccounted %d", segmented, drops, dds_lost,
             bad, segmented + drops + dds_lost + bad,
             total - segmented - drops - dds_lost - bad)
    growth = 100.0 * (rss_samples[-1] - rss_warm) / rss_warm if rss_warm else float("nan")
    LOG.info("node RSS after %.0f s warm-up %.1f MiB, end %.1f MiB (growth %.2f %%), max %.1f "
             "MiB", args.warmup_s, rss_warm or float("nan"),
             rss_samples[-1] if rss_samples else float("nan"), growth,
             max(rss_samples, default=float("nan")))
    worst = max(p99_after_warmup, default=float("nan"))
    LOG.info("/diagnostics after warm-up: p99 latency per 1 s window median %.1f ms, worst %.1f "
             "ms; last window p50 %s ms", float(np.median(p99_after_warmup))
             if p99_after_warmup else float("nan"), worst, diag.get("latency_p50_ms", "?"))
    LOG.info("minutes with a camera that got no labels: %d", silent_minutes)
    ok = growth < RSS_GROWTH_LIMIT_PCT and silent_minutes == 0
    LOG.info("RSS growth < %.0f %% and outputs every minute: %s", RSS_GROWTH_LIMIT_PCT,
             "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
