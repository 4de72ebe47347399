"""Train BiSeSTDC-Seg, STDC1-Seg or STDC2-Seg.

    python -m training.train --config training/configs/bisestdc_cityscapes_seg50.yaml
    python -m training.train --config CONFIG train.max_iters=2000 data.batch_size=8
    torchrun --nproc_per_node 2 -m training.train --config CONFIG      # DDP (nccl / gloo)

A run writes into ``train.out_dir``: config.yaml, train.log, losses.jsonl, TensorBoard logs
(tb/), last.pt (resumable, atomic), best.pt and metrics.json (best val mIoU), and
train_summary.json. Starting the same command again resumes from last.pt.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bisestdc_core.training.config import ConfigError, load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train a segmentation network with the seed's recipe.",
        epilog="Overrides: section.key=value, e.g. train.max_iters=1000 data.root=/data/cs",
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    return parser.parse_args(argv)


def check_paths(cfg) -> None:
    """Stop before any work when a folder or file the config names does not exist."""
    root = Path(cfg.data.root)
    if not root.is_dir():
        raise ConfigError(f"'data.root': dataset folder not found: {root}")
    for key in ("weights", "backbone_weights"):
        path = getattr(cfg.model, key)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"'model.{key}': file not found: {path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
        check_paths(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from bisestdc_core.training.trainer import Trainer

    try:
        summary = Trainer(cfg).fit()
    except ConfigError as exc:  # data that cannot train, found when the datasets are opened
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.info("done: %s", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
