"""Per-frame overhead of segment_node: everything except the network's inference.

Runs the node in-process with a real engine and calls its own `process_frame` (decode, engine
pre/postprocessing, small objects, colours, overlay, message building, publishing) on rgb8
frames, with subscribers on every output that is on by default (labels, colour, overlay,
latency) so none of them is skipped. Overhead = process_frame wall time - the engine's
reported inference time; the stages printed are `StageTimings` fields.

    python -m benchmarks.node_overhead --weights ckpt.pt --model-name bisestdc
    python -m benchmarks.node_overhead            # an untrained stdc1, for the overhead only

Targets: p50 <= 4 ms at 1024x512 and <= 10 ms at 1920x1080. The first lines printed give the
command, date, machine and load average: on a shared machine other processes inflate the
figures.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from bisestdc_core.cli.benchmark import cpu_model
from bisestdc_core.inference.onnxruntime.session import usable_cores
from bisestdc_ros.node.config import output_topics
from bisestdc_ros.node.outputs import OUTPUTS
from bisestdc_ros.node.segment_node import SegmentNode

LOG = logging.getLogger("node_overhead")
SIZES = ((512, 1024), (1080, 1920))  # (H, W)
TARGET_P50_MS = {(512, 1024): 4.0, (1080, 1920): 10.0}
CAMERA = "/bench/image_raw"
# The outputs a default configuration publishes (detections need a subscriber asking for them).
MEASURED_OUTPUTS = tuple(o for o in OUTPUTS if o.available and o.parameter and o.default)
# The stages outside the network's inference, per frame (StageTimings fields).
OVERHEAD_STAGES = ("decode_ms", "preprocess_ms", "postprocess_ms", "render_ms", "publish_ms")


def rgb8_msg(height: int, width: int, seq: int) -> Image:
    rng = np.random.default_rng(seq)
    msg = Image(encoding="rgb8", height=height, width=width, step=width * 3)
    msg.header.frame_id = "bench"
    msg.header.stamp.sec = seq
    msg.data = rng.integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes()
    return msg


def untrained_checkpoint(directory: Path) -> Path:
    import torch

    from bisestdc_core.models import build_model, save_checkpoint

    torch.manual_seed(0)
    path = directory / "stdc1_untrained.pt"
    save_checkpoint(path, build_model("stdc1", 19), "stdc1", "cityscapes")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--weights", default="")
    parser.add_argument("--onnx", default="")
    parser.add_argument("--engine", default="torch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-name", default="stdc1")
    parser.add_argument("--network-size", default="512x1024", help="HxW")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    LOG.info("# %s  python -m benchmarks.node_overhead %s",
             datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - 3.10
             " ".join(shlex.quote(a) for a in sys.argv[1:]))
    LOG.info("# %s, %d usable cores, load average %s", cpu_model(), usable_cores(),
             " ".join(f"{v:.2f}" for v in os.getloadavg()))
    net_h, net_w = (int(v) for v in args.network_size.split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or ("" if args.onnx else str(untrained_checkpoint(Path(tmp))))
        # In-process only, but the participant still discovers: keep it on loopback.
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        os.environ.setdefault("ROS_DOMAIN_ID", str(50 + os.getpid() % 50))
        context = Context()
        rclpy.init(context=context)
        try:
            run(context, args, weights, net_h, net_w)
        finally:
            rclpy.shutdown(context=context)


def run(context: Context, args: argparse.Namespace, weights: str, net_h: int, net_w: int):
    overrides = [
        Parameter("image_topics", value=[CAMERA]), Parameter("engine", value=args.engine),
        Parameter("weights", value=weights), Parameter("onnx", value=args.onnx),
        Parameter("device", value=args.device), Parameter("model_name", value=args.model_name),
        Parameter("network_height", value=net_h), Parameter("network_width", value=net_w),
    ]
    node = SegmentNode(context=context, parameter_overrides=overrides, start_worker=False)
    # Subscribers on every output so the node computes all of them; never spun (deserialising
    # 6 MB images in Python would compete for the CPU being measured), KEEP_LAST 1 drops.
    sink = rclpy.create_node("overhead_sink", context=context)
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    topics = output_topics(CAMERA)
    for output in MEASURED_OUTPUTS:
        sink.create_subscription(output.msg_type, topics[output.name], lambda _m: None, qos)
    publishers = [node.cameras[0].publishers[o.name] for o in MEASURED_OUTPUTS]
    deadline = time.monotonic() + 30
    while not all(p.get_subscription_count() > 0 for p in publishers):
        if time.monotonic() > deadline:
            # Without subscribers the node skips outputs and the overhead would look smaller.
            raise RuntimeError("the benchmark's subscribers were not matched within 30 s")
        time.sleep(0.05)

    LOG.info("engine %s %s, network %dx%d, outputs %s", node.engine_name, node.precision, net_w,
             net_h, ", ".join(o.name for o in MEASURED_OUTPUTS))
    for height, width in SIZES:
        msgs = [rgb8_msg(height, width, i) for i in range(4)]
        for i in range(args.warmup):
            node.process_frame(0, msgs[i % 4])
        overhead, stages = [], {}
        for i in range(args.iterations):
            start = time.perf_counter()
            timings = node.process_frame(0, msgs[i % 4])
            total_ms = (time.perf_counter() - start) * 1e3
            overhead.append(total_ms - timings.inference_ms)
            for key in OVERHEAD_STAGES:
                stages.setdefault(key, []).append(getattr(timings, key))
        p50, p90 = np.percentile(overhead, [50, 90])
        target = TARGET_P50_MS[(height, width)]
        LOG.info("%dx%d rgb8: overhead p50 %.2f ms, p90 %.2f ms (%d frames); target p50 <= "
                 "%.0f ms %s", width, height, p50, p90, args.iterations, target,
                 "met" if p50 <= target else "MISSED")
        LOG.info("    stage p50: " + ", ".join(
            f"{k[:-3]} {np.percentile(v, 50):.2f}" for k, v in stages.items()))
    LOG.info("# load average at the end %s", " ".join(f"{v:.2f}" for v in os.getloadavg()))
    node.destroy_node()
    sink.destroy_node()


if __name__ == "__main__":
    main()
