"""Turn a training checkpoint into a small deployable one (fp16 by default).

    python -m training.package_checkpoint runs/bisestdc_synthetic/last.pt \
        training/checkpoints/demo/bisestdc_synthetic.pt --network-size 256 512

Drops the optimiser state, stores tensors in fp16 (half the size; loading casts back to
fp32) and records the network input size that engines should use by default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bisestdc_core.models import CheckpointError, load_checkpoint_model, save_checkpoint
from bisestdc_core.training.cli import USAGE_EXIT, HelpFormatter, one_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.package_checkpoint",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("source", type=Path, help="project checkpoint (last.pt, best.pt)")
    parser.add_argument("target", type=Path, help="file to write")
    parser.add_argument("--network-size", type=int, nargs=2, metavar=("H", "W"),
                        help="default network input size for the engines")
    parser.add_argument("--fp32", action="store_true", help="keep fp32 tensors")
    args = parser.parse_args(argv)
    try:
        model, meta = load_checkpoint_model(args.source)
    except CheckpointError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return USAGE_EXIT
    # The card keeps what evaluation and the engines need: iteration, evaluation scale.
    extra = {"iteration": meta.get("iteration")}
    if meta.get("eval_scale"):
        extra["eval_scale"] = meta["eval_scale"]
    if args.network_size:
        extra["network_size"] = list(args.network_size)
    save_checkpoint(args.target, model, meta["model"], meta["class_set"], half=not args.fp32,
                    mean=tuple(meta["mean"]), std=tuple(meta["std"]), **extra)
    size_mb = args.target.stat().st_size / 1e6
    print(f"wrote {args.target} ({size_mb:.1f} MB, {meta['model']}, {meta['class_set']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
