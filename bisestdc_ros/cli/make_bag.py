"""The ``bisestdc-make-bag`` command line: its options, their checks, and the run.

What the bag holds is `bisestdc_ros.bags.make_bag`'s (it writes the bag). Errors go through
the package's one boundary (``bisestdc_core.cli.boundary.run_command``): a bad option, a
missing dataset or a bag that cannot be written is one line ``error: <message>``, exit 2.

Examples::

    bisestdc-make-bag --source synthetic --frames 60 --height 512 --width 1024 --rate 10 \\
        --out bags/synth --storage mcap --image-format jpeg
    bisestdc-make-bag --source cityscapes --root data/cityscapes --split val --city frankfurt \\
        --frames 100 --out bags/frankfurt --compression file
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bisestdc_core.classes import CLASS_SETS
from bisestdc_core.cli.boundary import add_debug_flag, run_command
from bisestdc_core.errors import UsageError
from bisestdc_ros.bags.make_bag import DEFAULT_START, IMAGE_FORMATS, SOURCES, make_bag
from bisestdc_ros.bags.reader import BagError
from bisestdc_ros.bags.writer import COMPRESSIONS, STORAGES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bisestdc-make-bag",
        description="Write a rosbag2 of camera frames, camera info and ground-truth labels.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = parser.add_argument_group("source")
    src.add_argument("--source", choices=SOURCES, default="synthetic", help="frame source")
    src.add_argument("--root", type=Path,
                     help="dataset root (cityscapes, camvid) or image folder (folder)")
    src.add_argument("--split", default="val", help="dataset split (cityscapes, camvid)")
    src.add_argument("--city", help="cityscapes: only this city's frames")
    src.add_argument("--label-dir", type=Path,
                     help="folder: train-id label PNGs named like the images")
    src.add_argument("--class-set", choices=tuple(CLASS_SETS), default="cityscapes",
                     help="folder: the class set of the label PNGs (other sources know theirs)")
    src.add_argument("--frames", type=int,
                     help="number of frames (synthetic: required, default 30; others: at most)")
    src.add_argument("--height", type=int, default=512, help="synthetic frame height")
    src.add_argument("--width", type=int, default=1024, help="synthetic frame width")
    src.add_argument("--seed", type=int, default=0, help="synthetic world seed")
    out = parser.add_argument_group("bag")
    out.add_argument("--out", type=Path, required=True, help="bag folder to create")
    out.add_argument("--storage", choices=tuple(STORAGES), default="sqlite3")
    out.add_argument("--compression", choices=tuple(COMPRESSIONS), default="none",
                     help="zstd compression of the whole file, or of each message (sqlite3 "
                          "only, as in rosbag2)")
    out.add_argument("--image-topic", default="/camera/image_raw")
    out.add_argument("--image-format", choices=IMAGE_FORMATS, default="raw",
                     help="raw: sensor_msgs/Image; jpeg|png: CompressedImage on "
                          "<image-topic>/compressed")
    out.add_argument("--encoding", choices=("bgr8", "rgb8"), default="bgr8",
                     help="raw image encoding")
    out.add_argument("--jpeg-quality", type=int, default=95)
    out.add_argument("--camera-info-topic",
                     help="default: camera_info beside the image topic")
    out.add_argument("--labels-topic", default="/camera/labels_gt",
                     help="mono8 train-id labels")
    out.add_argument("--no-labels", action="store_true",
                     help="camera topics only, like a drive recorded with ros2 bag record")
    out.add_argument("--rate", type=float, default=10.0, help="frame rate in Hz")
    out.add_argument("--start", type=float, default=DEFAULT_START,
                     help="stamp of the first frame, seconds since the epoch")
    out.add_argument("--frame-id", default="camera")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_debug_flag(parser)
    return parser


def option_error(args: argparse.Namespace) -> str | None:
    """Why ``args`` cannot make a bag (None when they can)."""
    if args.rate <= 0:
        return f"--rate must be > 0, got {args.rate}"
    if args.frames is not None and args.frames < 1:
        return f"--frames must be >= 1, got {args.frames}"
    if args.source != "synthetic" and args.root is None:
        return f"--root is required for --source {args.source}"
    return None


def summary_line(out: Path, counts: dict[str, int]) -> str:
    """The line printed when a bag was written."""
    return f"wrote {out}: " + ", ".join(f"{t}: {n}" for t, n in counts.items())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_command(_make_bag_command, args, errors=(BagError,))


def _make_bag_command(args: argparse.Namespace) -> int:
    error = option_error(args)
    if error:
        raise UsageError(error)
    print(summary_line(args.out, make_bag(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
