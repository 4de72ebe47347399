"""The evaluation command line: a segmentation network on a dataset with the seed's protocol.

Examples (``python -m bisestdc_core.cli.evaluate`` is the same command)::

    python training/evaluate.py --weights runs/bisestdc_cityscapes_seg50/best.pt \\
        --dataset cityscapes --root data/cityscapes --split val --out eval/seg50
    python training/evaluate.py --model bisestdc --num-classes 19 --weights seed.pth \\
        --dataset cityscapes --root data/cityscapes --scales 0.5 0.75 1.0 --flip --out eval/ms

Writes ``metrics.json``, ``confusion_matrix.png`` and ``per_class_iou.png`` to ``--out`` and,
with ``--save-predictions``, one PNG per image (Cityscapes labelIds for Cityscapes-layout
datasets, readable by cityscapesscripts' evaluatePixelLevelSemanticLabeling; train ids otherwise).
Without ``--scale`` the scale is the checkpoint card's (``card_eval_scale``); the card's class
set is resolved as every reader resolves it (``model_card.card_class_set``: an unknown name
falls back to the class count). The dataset is checked before any inference, as training
checks it. User errors (a missing file, a checkpoint that does not fit, mismatched classes,
unreadable dataset files) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from bisestdc_core.classes import CLASS_SETS, ClassSet, get_class_set
from bisestdc_core.cli.boundary import (
    HelpFormatter,
    add_debug_flag,
    require_file,
    run_command,
)
from bisestdc_core.cli.model_options import (
    add_class_set_option,
    add_device_option,
    add_model_file_options,
    add_network_options,
)
from bisestdc_core.data.check import check_split
from bisestdc_core.data.datasets import CityscapesDataset
from bisestdc_core.data.registry import DATASET_NAMES, build_dataset, default_class_set
from bisestdc_core.errors import UsageError
from bisestdc_core.evaluation.evaluator import card_eval_scale, evaluate
from bisestdc_core.evaluation.plots import plot_confusion_matrix, plot_per_class_iou
from bisestdc_core.model_card import ModelCard, card_class_set
from bisestdc_core.normalization import IMAGENET_MEAN, IMAGENET_STD
from bisestdc_core.torch_cuda import require_cuda_message

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python training/evaluate.py",
        description="Evaluate a segmentation network (mIoU, per-class and small-object IoU).",
        formatter_class=HelpFormatter)
    # The shared model options; no --model-name default: without one, --weights is a project
    # checkpoint that names its own network.
    g = p.add_argument_group("model")
    add_model_file_options(g, files=("weights",))
    add_network_options(g, model_default=None,
                        num_classes_help="classes of --model-name; default: the class set's")
    add_class_set_option(g, known_only=True,
                         help="class set of the model output; default: the checkpoint's, else "
                              "the dataset's")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=DATASET_NAMES, default="cityscapes",
                   help="dataset layout")
    d.add_argument("--root", type=Path, required=True,
                   help="dataset root (for 'folder': the image folder)")
    d.add_argument("--split", default="val", help="split to evaluate")
    d.add_argument("--label-dir", type=Path, help="'folder' only: train-id label PNGs")
    d.add_argument("--limit", type=int, help="only the first N images")
    d.add_argument("--skip-bad", action="store_true",
                   help="evaluate without image/label pairs that cannot be read (logged) instead "
                        "of refusing the dataset")
    e = p.add_argument_group("protocol")
    e.add_argument("--scale", type=float,
                   help="single-scale input resize factor (seed: 0.5 'Seg50', 0.75 'Seg75'); "
                        "default: the checkpoint card's eval_scale (else its network_size over "
                        "the image height, else 0.5)")
    e.add_argument("--scales", type=float, nargs="+",
                   help="multi-scale factors (overrides --scale; softmax averaged)")
    e.add_argument("--flip", action="store_true", help="add horizontally flipped inputs")
    add_device_option(e, default="cuda" if torch.cuda.is_available() else "cpu")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, required=True, help="output folder")
    o.add_argument("--save-predictions", action="store_true",
                   help="write predictions to OUT/predictions/")
    o.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    add_debug_flag(p)
    return p


def load_model(args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network and its metadata (class set name, mean, std) from the CLI arguments."""
    from bisestdc_core.models import build_model, load_checkpoint_model

    if args.model_name is None:
        if args.weights is None:
            raise UsageError("give --weights CKPT (project checkpoint) or --model-name NAME")
        return load_checkpoint_model(args.weights)
    class_set = get_class_set(args.class_set) if args.class_set else \
        default_class_set(args.dataset)
    num_classes = args.num_classes or class_set.num_classes
    if args.weights is None:
        logger.warning("--model-name without --weights: evaluating a randomly initialised "
                       "network")
    model = build_model(args.model_name, num_classes, weights=args.weights)
    meta = {"model": args.model_name, "num_classes": num_classes, "class_set": class_set.name,
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    return model, meta


def model_class_set(args: argparse.Namespace, meta: dict[str, Any]) -> ClassSet:
    """The class set of the network's train ids: ``--class-set``, else a checkpoint card's by
    the card readers' one policy (an unknown name falls back to the class count), else the
    dataset's.

    Raises:
        ModelCardError: ``--class-set`` with another class count than the card's.
        UsageError: a card of no known class set and no known class count.
    """
    if args.model_name is not None:
        name = args.class_set or meta.get("class_set")
        return get_class_set(name) if name else default_class_set(args.dataset)
    card = ModelCard.from_dict(meta, args.weights)
    class_set = card_class_set(card, args.class_set)
    if class_set is None:
        raise UsageError(f"{args.weights}: card class set {card.class_set!r} is not a known one "
                         f"and no known class set has {card.num_classes} classes "
                         f"(known: {sorted(CLASS_SETS)})")
    if card.class_set is not None and card.class_set != class_set.name and not args.class_set:
        logger.warning("%s: unknown class set %r: evaluating as %s (%d classes)",
                       args.weights, card.class_set, class_set.name, class_set.num_classes)
    return class_set


def write_outputs(result: dict[str, Any], out: Path, names: tuple[str, ...],
                  small: tuple[str, ...]) -> None:
    """metrics.json and the two plots."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    plot_confusion_matrix(result["confusion_matrix"], names, out / "confusion_matrix.png")
    miou = result["miou"]
    title = f"mIoU {100 * miou:.2f} %" if miou is not None else "mIoU n/a"
    plot_per_class_iou([result["iou"][n] for n in names], names, out / "per_class_iou.png",
                       small_objects=small, title=title)


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse values that would evaluate something meaningless, before any work."""
    for scale in [args.scale] if args.scales is None else args.scales:
        if scale is not None and not 0.05 <= scale <= 8:
            raise UsageError(f"--scale/--scales: {scale} is outside 0.05..8")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit: {args.limit} must be at least 1")
    require_file(args.weights, "--weights")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(require_cuda_message(f"--device is {args.device}"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate as ``args`` say; returns what ``metrics.json`` holds."""
    check_arguments(args)
    model, meta = load_model(args)
    class_set = model_class_set(args, meta)
    try:
        dataset = build_dataset(args.dataset, args.root, args.split, label_dir=args.label_dir,
                                class_set=class_set)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--root: {exc}") from exc
    if args.limit is not None:
        dataset.items = dataset.items[:args.limit]
    # Every pair read once before any inference: a bad file is one line naming it, not a
    # traceback some images in (training checks its splits the same way).
    check_split(dataset, args.split, skip_bad=args.skip_bad, report=None,
                progress=not args.no_progress)
    if dataset.class_set.name != class_set.name:
        raise UsageError(f"model predicts {class_set.name} classes but the dataset is labelled "
                         f"with {dataset.class_set.name} classes")
    scale = args.scale
    if scale is None and args.scales is None:
        first_height = dataset.load(0)["image"].shape[0] if len(dataset) else None
        scale, source = card_eval_scale(meta, first_height)
        logger.info("evaluation scale %g, from %s", scale, source)
    pred_dir = args.out / "predictions" if args.save_predictions else None
    result = evaluate(
        model, dataset, scale=scale, flip=args.flip, scales=args.scales,
        device=args.device, num_classes=int(meta.get("num_classes", class_set.num_classes)),
        class_set=class_set, mean=meta.get("mean", IMAGENET_MEAN),
        std=meta.get("std", IMAGENET_STD), prediction_dir=pred_dir,
        save_label_ids=isinstance(dataset, CityscapesDataset), limit=args.limit,
        progress=not args.no_progress,
    )
    result.update(model=meta.get("model"), weights=str(args.weights) if args.weights else None,
                  checkpoint=str(args.weights) if args.weights else None,
                  iteration=meta.get("iteration"), dataset=args.dataset, root=str(args.root),
                  split=args.split)
    write_outputs(result, args.out, class_set.names, class_set.small_objects)
    _print_summary(result, class_set.names)
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def body(parsed: argparse.Namespace) -> int:
        run(parsed)
        return 0

    return run_command(body, args)


def _print_summary(result: dict[str, Any], names: tuple[str, ...]) -> None:
    def pct(v: float | None) -> str:
        return "  n/a" if v is None else f"{100 * v:5.1f}"

    print(f"images: {result['num_images']}  protocol: scales {result['protocol']['scales']}"
          f" flip {result['protocol']['flip']}")
    for n in names:
        print(f"  {n:<14} {pct(result['iou'][n])}")
    print(f"mIoU {pct(result['miou'])}  small-object mIoU {pct(result['small_object_miou'])}"
          f"  pixel acc {pct(result['pixel_accuracy'])}")


if __name__ == "__main__":
    sys.exit(main())
