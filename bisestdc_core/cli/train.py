"""The training command line: train BiSeSTDC-Seg, STDC1-Seg or STDC2-Seg.

    python training/train.py --config training/configs/bisestdc_cityscapes_seg50.yaml
    python training/train.py --config CONFIG train.max_iters=2000 data.batch_size=8
    torchrun --nproc_per_node 2 training/train.py --config CONFIG      # DDP (nccl / gloo)

(``python -m bisestdc_core.cli.train`` is the same command.)

A run writes into ``train.out_dir``: config.yaml (the config it started with), train.log,
losses.jsonl, evaluations.jsonl, TensorBoard logs (tb/), last.pt (resumable, atomic), best.pt
and metrics.json (best val mIoU), and train_summary.json. Starting the same command again
resumes from last.pt; a config that would change the run's trajectory is refused unless
``--allow-config-change`` is given (the change is then recorded in config_changes.jsonl).
User errors (bad config keys or values, missing files, bad dataset files) stop with a one-line
message and exit status 2 before any work.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bisestdc_core.cli.boundary import (
    HelpFormatter,
    add_debug_flag,
    run_command,
)
from bisestdc_core.torch_cuda import require_cuda_message
from bisestdc_core.training.config import Config, ConfigError, load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python training/train.py",
        description="Train a segmentation network with the seed's recipe.",
        epilog="Overrides: section.key=value, e.g. train.max_iters=1000 data.root=/data/cs",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML config file")
    parser.add_argument("--skip-bad", action="store_true",
                        help="train without image/label pairs that cannot be read (listed in "
                             "OUT_DIR/dataset_check_SPLIT.json) instead of refusing the dataset")
    parser.add_argument("--allow-config-change", action="store_true",
                        help="resume even if the config changes the run's trajectory; the "
                             "change is recorded in OUT_DIR/config_changes.jsonl")
    add_debug_flag(parser)
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    return parser.parse_args(argv)


def check_environment(cfg: Config) -> None:
    """Stop before any work when a folder, file or device the config names is not there."""
    import torch

    root = Path(cfg.data.root)
    if not root.is_dir():
        raise ConfigError(f"'data.root': dataset folder not found: {root}")
    for key in ("weights", "backbone_weights"):
        path = getattr(cfg.model, key)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"'model.{key}': file not found: {path}")
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(require_cuda_message("'train.device' is cuda"))


def train(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    check_environment(cfg)
    from bisestdc_core.training.trainer import Trainer, format_summary

    summary = Trainer(cfg, allow_config_change=args.allow_config_change,
                      skip_bad=args.skip_bad).fit()
    logging.info("done: %s", format_summary(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run_command(train, args)


if __name__ == "__main__":
    sys.exit(main())
