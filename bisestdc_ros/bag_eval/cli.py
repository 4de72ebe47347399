"""The ``bisestdc-bag-eval`` command line: options, their checks, and the run itself.

:func:`build_parser` defines the options, :func:`check_args` refuses combinations that cannot
work, :func:`evaluate` checks the bag, runs the chosen mode and writes the report, and
:func:`main` is the console-script entry point (exit code 1, with the reason logged, for bag
and evaluation errors).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from bisestdc_ros.bag_eval.errors import EvalError
from bisestdc_ros.bag_eval.live import run_live
from bisestdc_ros.bag_eval.offline import run_offline
from bisestdc_ros.bag_eval.plan import inspect_bag
from bisestdc_ros.bag_eval.report import format_percent, write_report
from bisestdc_ros.bag_io import BagError

log = logging.getLogger(__package__)  # one logger for the tool: "bisestdc_ros.bag_eval"

MODES = ("offline", "live")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bisestdc-bag-eval",
        description="Score segmentation on a rosbag2 with ground-truth labels, offline or "
                    "through a live segment_node.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--bag", type=Path, required=True, help="rosbag2 folder")
    parser.add_argument("--mode", choices=MODES, default="offline")
    parser.add_argument("--out", type=Path, default=Path("bag_eval"),
                        help="report folder")
    parser.add_argument("--image-topic",
                        help="Image or CompressedImage topic; default: the bag's only one")
    parser.add_argument("--labels-topic", default="/camera/labels_gt",
                        help="ground truth: mono8 train ids (or PNG CompressedImage)")
    model = parser.add_argument_group("model (both modes)")
    model.add_argument("--weights", help="project checkpoint (.pt)")
    model.add_argument("--onnx", help="exported ONNX model")
    model.add_argument("--engine", default="auto",
                       choices=("auto", "tensorrt", "torch", "onnxruntime"))
    model.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    model.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "int8"))
    model.add_argument("--network-size", type=int, nargs=2, metavar=("H", "W"),
                       help="network input size; default: the model's")
    model.add_argument("--model-name", default="bisestdc",
                       help="architecture of seed checkpoints (project ones name their own)")
    model.add_argument("--num-classes", type=int, default=19)
    model.add_argument("--class-set", help="class set name; default: the model's")
    live = parser.add_argument_group("live mode")
    live.add_argument("--start-node", action=argparse.BooleanOptionalAction, default=True,
                      help="start segment_node as a subprocess (else use a running one)")
    live.add_argument("--params-file", type=Path,
                      help="segment_node parameter file (e.g. config/segment.yaml)")
    live.add_argument("--node-param", action="append", metavar="NAME:=VALUE",
                      help="extra segment_node parameter (repeatable)")
    live.add_argument("--replay-topic",
                      help="camera topic the node listens to; default: the bag's image topic")
    live.add_argument("--rate-factor", type=float, default=1.0,
                      help="replay speed relative to the recorded rate")
    live.add_argument("--reliable", action="store_true",
                      help="reliable replay QoS (default: sensor-data best effort)")
    live.add_argument("--startup-timeout", type=float, default=180.0,
                      help="seconds to wait for the node to answer its first frame")
    live.add_argument("--idle-timeout", type=float, default=10.0,
                      help="seconds without outputs after the last frame before scoring")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Raise EvalError for argument combinations that cannot work."""
    if args.rate_factor <= 0:
        raise EvalError(f"--rate-factor must be > 0, got {args.rate_factor}")
    if args.mode == "live" and args.start_node and not (args.weights or args.onnx):
        raise EvalError("live mode starting the node needs --weights or --onnx")
    if args.mode == "offline" and not (args.weights or args.onnx):
        raise EvalError("offline mode needs --weights or --onnx")
    for name in ("weights", "onnx", "params_file"):
        value = getattr(args, name)
        if value and not Path(value).is_file():
            raise EvalError(f"--{name.replace('_', '-')} file not found: {value}")


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Check the bag, run the mode, write the report; returns the report dict."""
    check_args(args)
    plan = inspect_bag(args.bag, args.image_topic, args.labels_topic)
    log.info("bag %s: %d frames on %s (%dx%d, %.2f Hz), %d with labels on %s", plan.path,
             plan.frames, plan.image_topic, plan.width, plan.height, plan.rate_hz,
             len(plan.label_stamps), plan.labels_topic)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mode == "offline":
        result, class_set = run_offline(plan, args)
    else:
        result, class_set = run_live(plan, args, args.out)
    return write_report(plan, result, class_set, args.mode, args.out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        report = evaluate(args)
    except (BagError, EvalError) as error:
        log.error("%s", error)
        return 1
    metrics = report["metrics"]
    print(f"{report['mode']}: mIoU {format_percent(metrics['miou'])}% over "
          f"{report['frames_scored']} scored frames ({report['frames_processed']}/"
          f"{report['frames_in_bag']} processed, "
          f"{report['frames_dropped']} dropped), {report['throughput_fps']:.2f} frames/s; "
          f"report in {args.out}")
    return 0

