"""The whole system on one machine: synthetic drive -> rosbag2 -> live segment_node -> report.

    python -m bisestdc_ros.demo            # what `make demo` runs

Steps:
  1. render a synthetic street sequence and record it as a rosbag2 (image, camera_info and
     ground-truth labels topics, with the labels' class set in the bag's metadata);
  2. start the real ROS 2 ``segment_node`` with the committed demo checkpoint (its card gives
     the network size and class set);
  3. replay the bag on ROS 2 topics twice: closed loop (each frame sent once the previous one
     was answered) for the scores, so the mIoU is the same on every run whatever the machine's
     load; then at the recorded rate for latency and drops, as on a vehicle;
  4. print a short summary, ending with the overlay video and the plots to open.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from bisestdc_core.cli.boundary import add_debug_flag, require_file, run_command, tool_options
from bisestdc_core.inference.registry import AUTO, ENGINE_CHOICES
from bisestdc_ros.bag_eval.errors import EvalError
from bisestdc_ros.bag_eval.run import evaluate
from bisestdc_ros.bags.make_bag import make_bag
from bisestdc_ros.bags.reader import BagError
from bisestdc_ros.cli import bag_eval as bag_eval_cli
from bisestdc_ros.cli import make_bag as make_bag_cli

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_WEIGHTS = REPO_ROOT / "training" / "checkpoints" / "demo" / "bisestdc_synthetic.pt"


def _step(index: int, total: int, text: str) -> None:
    print(f"\n[{index}/{total}] {text}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bisestdc_ros.demo", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--weights", type=Path, default=DEMO_WEIGHTS, help="checkpoint")
    parser.add_argument("--engine", default=AUTO, choices=ENGINE_CHOICES,
                        help="inference engine of the node")
    parser.add_argument("--frames", type=int, default=48, help="frames in the drive")
    parser.add_argument("--height", type=int, default=256, help="frame height")
    parser.add_argument("--width", type=int, default=512, help="frame width")
    parser.add_argument("--rate", type=float, default=4.0, help="camera rate (Hz)")
    parser.add_argument("--seed", type=int, default=7, help="scene seed (unseen in training)")
    parser.add_argument("--storage", default="mcap", choices=("sqlite3", "mcap"))
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The demo's DDS traffic stays on this machine.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    try:
        return run_command(_demo, args, errors=(BagError, EvalError))
    except KeyboardInterrupt:
        log.error("interrupted: stopped before the summary")
        return 130


def _demo(args: argparse.Namespace) -> int:
    require_file(args.weights, "--weights")
    bag = args.out / "drive_bag"
    report_dir = args.out / "report"
    started = time.perf_counter()

    _step(1, 3, f"Rendering a {args.frames}-frame synthetic drive ({args.width}x{args.height}, "
                f"{args.rate:g} Hz) into a rosbag2 ({args.storage}): {bag}")
    if bag.exists():
        shutil.rmtree(bag)
    args.out.mkdir(parents=True, exist_ok=True)
    counts = make_bag(tool_options(
        make_bag_cli.build_parser(), source="synthetic", frames=args.frames,
        height=args.height, width=args.width, rate=args.rate, seed=args.seed,
        storage=args.storage, out=bag))
    print(make_bag_cli.summary_line(bag, counts))

    _step(2, 3, f"Starting segment_node (engine {args.engine}, weights "
                f"{args.weights.name}) and replaying the bag on ROS 2 topics: closed loop "
                f"for the scores, then at {args.rate:g} Hz for latency and drops")
    eval_args = tool_options(
        bag_eval_cli.build_parser(), bag=bag, mode="live", weights=str(args.weights),
        engine=args.engine, device="cpu", reliable=True, replay="both", out=report_dir)
    bag_eval_cli.check_args(eval_args)
    report = evaluate(eval_args)
    print(bag_eval_cli.summary_line(report, report_dir))

    _step(3, 3, "Summary")
    print(summary_text(report, report_dir, time.perf_counter() - started))
    return 0


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def summary_text(report: dict, report_dir: Path, seconds: float) -> str:
    metrics = report["metrics"]
    small = metrics.get("small_object_iou") or {}
    small_text = ", ".join(f"{name} {_pct(v)}" for name, v in small.items())
    e2e = report.get("latency_ms", {}).get("end_to_end_ms", {})
    inference = report.get("latency_ms", {}).get("inference_ms", {})
    details = report.get("details", {})
    engine = report["engine"]
    size = engine.get("network_size") or ["?", "?"]
    lines = [
        f"  ran                  {engine.get('engine')} on {engine.get('device')}, "
        f"{engine.get('precision')}, network {size[1]}x{size[0]}",
        f"  mIoU                 {_pct(metrics['miou'])} %  ({report['frames_scored']}/"
        f"{report['frames_in_bag']} frames, closed loop: the same on every run)",
        f"  small-object mIoU    {_pct(metrics.get('small_object_miou'))} %  ({small_text})",
        f"  real-time pass       {details.get('realtime_pass', 'n/a')} at "
        f"{details.get('replay_rate_hz', 0):.1f} Hz",
        f"  latency end-to-end   p50 {e2e.get('p50', float('nan')):.1f} ms, "
        f"p99 {e2e.get('p99', float('nan')):.1f} ms",
        f"  inference            p50 {inference.get('p50', float('nan')):.1f} ms",
        f"  report               {report_dir / 'report.md'} (and report.json)",
        f"  node log             {report_dir / 'segment_node.log'}",
        f"  took                 {seconds:.0f} s",
        "",
        "  Open these:",
        f"  overlay video        {report_dir / 'overlay.mp4'}",
        f"  contact sheet        {report_dir / 'contact_sheet.png'}",
        f"  plots                {report_dir / 'per_class_iou.png'}",
        f"                       {report_dir / 'class_shares.png'}",
        f"                       {report_dir / 'small_objects.png'}",
        f"                       {report_dir / 'latency_histogram.png'}",
        f"                       {report_dir / 'latency_timeline.png'}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
