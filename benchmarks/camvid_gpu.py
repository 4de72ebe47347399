"""CamVid from scratch under the seed's budget: BiSeSTDC-Seg and STDC1-Seg (needs a GPU).

2500 iterations of 16 crops of 352x480 with the spec's recipe (bf16 autocast), then the
seed's single-scale evaluation on CamVid ``val`` (11 classes, void ignored). Writes
``benchmarks/camvid.json`` (``miou``, ``small_iou``, per-class IoU and ``images_per_s`` per
network: training throughput over the whole run, evaluation excluded) and
``benchmarks/camvid.md``, and keeps the BiSeSTDC-Seg checkpoint in fp16 beside them.

    python -m benchmarks.camvid_gpu --root ../shared/datasets/camvid [--models bisestdc stdc1]

The seed's own code reached 49.4 mIoU (small classes 21.1) at 216 images/s on an H100.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import sys
from pathlib import Path

import torch

from bisestdc_core.cli.boundary import USAGE_EXIT, HelpFormatter
from bisestdc_core.data.registry import build_dataset
from bisestdc_core.evaluation.evaluator import evaluate
from bisestdc_core.models import load_checkpoint_model
from bisestdc_core.torch_cuda import require_cuda_message
from bisestdc_core.training.config import load_config
from bisestdc_core.training.package_checkpoint import package_checkpoint
from bisestdc_core.training.trainer import Trainer

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "training/configs"


def run_one(name: str, root: str, out_root: Path, overrides: list[str]) -> dict:
    cfg = load_config(CONFIGS / f"{name}_camvid.yaml",
                      [f"data.root={root}", f"train.out_dir={out_root / name}",
                       "train.eval_every=0", *overrides])
    summary = Trainer(cfg).fit()
    model, _ = load_checkpoint_model(out_root / name / "last.pt")
    dataset = build_dataset("camvid", root, "val")
    metrics = evaluate(model, dataset, scale=cfg.data.eval_scale,
                       device="cuda" if torch.cuda.is_available() else "cpu")
    return {
        "miou": metrics["miou"],
        "small_iou": metrics["small_object_miou"],
        "small_object_iou": metrics["small_object_iou"],
        "iou": metrics["iou"],
        "images_per_s": summary["images_per_s"],
        "train_seconds": summary["train_seconds"],
        "iterations": summary["iterations"],
        "batch_size": cfg.data.batch_size,
        "crop_size": cfg.data.crop_size,
        "amp": cfg.train.amp,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--root", default="../shared/datasets/camvid", help="CamVid folder")
    parser.add_argument("--models", nargs="+", default=["bisestdc", "stdc1"],
                        help="networks to train")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/camvid_gpu"),
                        help="run folders")
    parser.add_argument("--out", type=Path, default=HERE, help="where camvid.json goes")
    parser.add_argument("overrides", nargs="*", help="config overrides, section.key=value")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        # 2500 iterations of 16 crops take about 19 hours on a 2-core CPU: refuse, say why.
        print(f"error: {require_cuda_message('benchmarks.camvid_gpu needs a CUDA GPU')}; "
              f"on a CPU, train with python training/train.py --config "
              f"training/configs/bisestdc_camvid.yaml and a budget of your own",
              file=sys.stderr)
        return USAGE_EXIT
    argv = sys.argv[1:] if argv is None else argv
    results = {
        "date": datetime.date.today().isoformat(),
        "hardware": torch.cuda.get_device_name(0) if torch.cuda.is_available() else
        platform.processor() or "cpu",
        "torch": torch.__version__,
        "command": "python -m benchmarks.camvid_gpu " + " ".join(argv),
        "protocol": "CamVid val, single scale 1.0, 11 classes, void ignored",
        "networks": {},
    }
    for name in args.models:
        results["networks"][name] = run_one(name, args.root, args.work_dir, args.overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "camvid.json").write_text(json.dumps(results, indent=2))
    lines = ["| network | mIoU | small-class mIoU | images/s |", "|---|---|---|---|"]
    for name, r in results["networks"].items():
        lines.append(f"| {name} | {100 * r['miou']:.1f} | {100 * r['small_iou']:.1f} | "
                     f"{r['images_per_s']:.0f} |")
    (args.out / "camvid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if "bisestdc" in results["networks"]:
        package_checkpoint(args.work_dir / "bisestdc" / "last.pt",
                           args.out / "bisestdc_camvid_fp16.pt")
        shutil.copy(args.work_dir / "bisestdc" / "config.yaml", args.out / "camvid_config.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
