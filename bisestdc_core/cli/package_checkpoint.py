"""``bisestdc-package-checkpoint``: turn a training checkpoint into a small deployable one (fp16
by default).

    bisestdc-package-checkpoint runs/bisestdc_synthetic/last.pt \
        training/checkpoints/demo/bisestdc_synthetic.pt --network-size 256 512

``python training/package_checkpoint.py`` and ``python -m bisestdc_core.cli.package_checkpoint``
are the same command; the work is
:func:`bisestdc_core.training.package_checkpoint.package_checkpoint`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bisestdc_core.cli.boundary import HelpFormatter, add_debug_flag, require_file, run_command
from bisestdc_core.training.package_checkpoint import package_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python training/package_checkpoint.py",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("source", type=Path, help="project checkpoint (last.pt, best.pt)")
    parser.add_argument("target", type=Path, help="file to write")
    parser.add_argument("--network-size", type=int, nargs=2, metavar=("H", "W"),
                        help="default network input size for the engines")
    parser.add_argument("--fp32", action="store_true", help="keep fp32 tensors")
    add_debug_flag(parser)
    return run_command(_package, parser.parse_args(argv))


def _package(args: argparse.Namespace) -> int:
    require_file(args.source, "source")
    if args.target.is_dir():
        require_file(args.target, "target")
    meta = package_checkpoint(args.source, args.target, args.network_size, half=not args.fp32)
    size_mb = args.target.stat().st_size / 1e6
    print(f"wrote {args.target} ({size_mb:.1f} MB, {meta['model']}, {meta['class_set']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
