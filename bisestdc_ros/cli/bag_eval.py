"""The ``bisestdc-bag-eval`` command line: options, their checks, and the run itself.

:func:`build_parser` defines the options, :func:`check_args` refuses combinations that cannot
work, `bisestdc_ros.bag_eval.run.evaluate` reads the model card, checks the bag, runs the
chosen mode and writes the report, and :func:`main` is the console-script entry point
(``python -m bisestdc_ros.bag_eval`` runs it too): bag and evaluation errors
(and the package's other user errors: checkpoints, cards, files) go through the package's one
error boundary (``bisestdc_core.cli.boundary.run_command``: one line ``error: <message>`` on
stderr, exit code 2, the traceback with ``--debug``); 130 when stopped by SIGINT or SIGTERM,
after stopping the node it started.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from bisestdc_core.cli.boundary import add_debug_flag, run_command
from bisestdc_core.cli.model_options import add_segmenter_arguments
from bisestdc_ros.bag_eval.errors import EvalError
from bisestdc_ros.bag_eval.live import REPLAY_MODES
from bisestdc_ros.bag_eval.plan import DEFAULT_LABELS_TOPIC
from bisestdc_ros.bag_eval.report import format_percent
from bisestdc_ros.bag_eval.run import MODES, evaluate
from bisestdc_ros.bags.reader import BagError

log = logging.getLogger("bisestdc_ros.bag_eval")  # the tool's one logger, as its modules'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bisestdc-bag-eval",
        description="Segment a rosbag2 offline or through a live segment_node: overlay "
                    "video, class shares, small objects, latency and drops for any recorded "
                    "drive, and IoU where the bag has ground-truth labels.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--bag", type=Path, required=True, help="rosbag2 folder")
    parser.add_argument("--mode", choices=MODES, default="offline")
    parser.add_argument("--out", type=Path, default=Path("bag_eval"),
                        help="report folder")
    parser.add_argument("--image-topic",
                        help="Image or CompressedImage topic; default: the bag's only one")
    parser.add_argument("--labels-topic",
                        help=f"ground truth: mono8 train ids (or PNG CompressedImage); "
                             f"default: {DEFAULT_LABELS_TOPIC} when the bag has it, else the "
                             f"bag is inspected without scores")
    parser.add_argument("--no-labels", action="store_true",
                        help="inspect only: ignore the bag's labels")
    # A checkpoint without a network size in its card needs --network-size.
    add_segmenter_arguments(parser, files=("weights", "onnx"), title="model (both modes)")
    live = parser.add_argument_group("live mode")
    live.add_argument("--start-node", action=argparse.BooleanOptionalAction, default=True,
                      help="start segment_node as a subprocess (else use a running one)")
    live.add_argument("--params-file", type=Path,
                      help="segment_node parameter file (e.g. config/segment.yaml)")
    live.add_argument("--node-param", action="append", metavar="NAME:=VALUE",
                      help="extra segment_node parameter (repeatable)")
    live.add_argument("--replay-topic",
                      help="camera topic the node listens to; default: the bag's image topic")
    live.add_argument("--replay", choices=REPLAY_MODES, default="realtime",
                      help="realtime: at the recorded rate, drops as on the vehicle; "
                           "closed-loop: each frame after the previous answer (scores "
                           "independent of machine load); both: closed loop for the scores, "
                           "then real time for latency and drops")
    live.add_argument("--rate-factor", type=float, default=1.0,
                      help="replay speed relative to the recorded rate")
    live.add_argument("--max-gap", type=float, default=1.0,
                      help="seconds: longer gaps in the recording are replayed this long")
    live.add_argument("--frame-timeout", type=float, default=60.0,
                      help="closed loop: seconds to wait for one frame's answer")
    live.add_argument("--reliable", action="store_true",
                      help="reliable replay QoS (default: sensor-data best effort)")
    live.add_argument("--startup-timeout", type=float, default=180.0,
                      help="seconds to wait for the node to answer its first frame")
    live.add_argument("--idle-timeout", type=float, default=10.0,
                      help="seconds without outputs after the last frame before scoring")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_debug_flag(parser)
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Raise EvalError for argument combinations that cannot work."""
    for name in ("rate_factor", "max_gap", "frame_timeout"):
        if getattr(args, name) <= 0:
            raise EvalError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.no_labels and args.labels_topic:
        raise EvalError("--no-labels and --labels-topic contradict each other")
    if args.mode == "live" and not args.start_node and not args.network_size:
        # The running node's size cannot be asked; the card's is only a guess for it.
        log.info("--no-start-node: the report shows the card's network size as a guess")
    if args.mode == "live" and args.start_node and not (args.weights or args.onnx):
        raise EvalError("live mode starting the node needs --weights or --onnx")
    if args.mode == "offline" and not (args.weights or args.onnx):
        raise EvalError("offline mode needs --weights or --onnx")
    for name in ("weights", "onnx", "params_file"):
        value = getattr(args, name)
        if value and Path(value).is_dir():
            raise EvalError(f"--{name.replace('_', '-')} is a directory, not a file: {value}")
        if value and not Path(value).is_file():
            raise EvalError(f"--{name.replace('_', '-')} file not found: {value}")


def _interrupt(signum: int, _frame: Any) -> None:
    """SIGTERM as SIGINT: unwind, stopping the node this tool started on the way."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def summary_line(report: dict[str, Any], out: Path) -> str:
    """The one line printed at the end of a run."""
    metrics = report["metrics"]
    scores = (f"mIoU {format_percent(metrics['miou'])} % over {report['frames_scored']} "
              f"scored frames" if metrics else "no labels (inspected)")
    passes = report["details"].get("replay") == "both"
    return (f"{report['mode']}: {scores} ({report['frames_processed']}/"
            f"{report['frames_in_bag']} processed, {report['frames_dropped']} dropped"
            f"{' in the real-time pass' if passes else ''}, {report['frames_bad']} bad), "
            f"{report['throughput_fps']:.2f} frames/s; report in {out}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")

    def body(parsed: argparse.Namespace) -> int:
        check_args(parsed)
        print(summary_line(evaluate(parsed), parsed.out))
        return 0

    previous = signal.signal(signal.SIGTERM, _interrupt)
    # A shell starts background jobs with SIGINT ignored, and Python then keeps it ignored:
    # Ctrl-C (or a supervisor's SIGINT) must still stop the tool and the node it starts.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run_command(body, args, errors=(BagError, EvalError))
    except KeyboardInterrupt as interrupt:
        log.error("interrupted (%s): stopped before the report", str(interrupt) or "SIGINT")
        if argv is None:
            # Run as a command: the node is stopped and the files are closed, so the
            # interpreter's teardown (about 2 s once torch is imported) is skipped and a
            # signal ends the tool within 2 s. Called with arguments (tests, the demo), it
            # returns like any function.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


if __name__ == "__main__":
    sys.exit(main())
