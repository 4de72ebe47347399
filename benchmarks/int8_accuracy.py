"""Accuracy kept by int8: fp32 and QDQ int8 graphs of one checkpoint on a labelled val split.

Exports the checkpoint (fixed input = network size, uint8 frame in, labels out), quantizes it
with :mod:`bisestdc_core.inference.onnxruntime.quantize` (float layers chosen by measurement on
held-out calibration frames), then runs both graphs through the ONNX Runtime engine on every val
image (resized to the network size, labels nearest-resized back to the label size, the deployed
path) and scores them against the ground truth: mIoU, small-object IoU, per-class IoU, and
the pixels on which int8 and fp32 labels agree. Targets: agreement >= 99 %, mIoU drop <= 1.0
point, small-object IoU drop <= 2.0 points.

    python -m benchmarks.int8_accuracy --weights training/checkpoints/demo/bisestdc_synthetic.pt \\
        --dataset synthetic --root data/synthetic --out benchmarks --name int8_accuracy_synthetic
    python -m benchmarks.int8_accuracy --weights camvid.pt --dataset camvid \\
        --root ../shared/datasets/camvid --calib-images ../shared/datasets/camvid/train \\
        --out benchmarks --name int8_accuracy_camvid
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmarks.reports import write_report
from bisestdc_core.artefacts import file_sha256
from bisestdc_core.cli.benchmark import hardware_info, parse_size
from bisestdc_core.cli.quantize import add_quantize_arguments, parse_float_layers
from bisestdc_core.data.registry import DATASET_NAMES, build_dataset
from bisestdc_core.evaluation.metrics import ConfusionMatrix
from bisestdc_core.inference.class_choice import card_with_class_set, resolve_class_set
from bisestdc_core.inference.loading import load_network
from bisestdc_core.inference.onnx_export import export_onnx
from bisestdc_core.inference.onnxruntime.engine import OnnxRuntimeEngine
from bisestdc_core.inference.onnxruntime.quantize import (
    DEFAULT_CALIB_COUNT,
    DEFAULT_SELECT_COUNT,
    quantize_from_sources,
)
from bisestdc_core.inference.processing import DEFAULT_NETWORK_SIZE

log = logging.getLogger("int8_accuracy")
TARGETS = {"agreement": 0.99, "miou_drop": 1.0, "small_object_miou_drop": 2.0}


def score(fp32: OnnxRuntimeEngine, int8: OnnxRuntimeEngine, dataset: Any, num_classes: int,
          limit: int | None) -> tuple[ConfusionMatrix, ConfusionMatrix, float]:
    """Confusion matrices of both graphs against the labels, and their label agreement."""
    matrices = (ConfusionMatrix(num_classes), ConfusionMatrix(num_classes))
    equal = total = 0
    count = min(len(dataset), limit or len(dataset))
    for index in tqdm(range(count), desc="val images", unit="img"):
        sample = dataset[index]
        image, label = sample["image"], sample["label"]
        if label is None:
            raise ValueError(f"{sample['image_path']}: no label; the split must be labelled")
        predictions = [e.infer(image, "rgb", False).labels for e in (fp32, int8)]
        for matrix, pred in zip(matrices, predictions):
            matrix.update(pred, label)
        equal += int(np.count_nonzero(predictions[0] == predictions[1]))
        total += predictions[0].size
    return matrices[0], matrices[1], equal / max(total, 1)


def points(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 2)


def markdown(report: dict[str, Any]) -> str:
    fp32, int8, d = report["fp32"], report["int8"], report["delta_points"]
    q = report["quantization"]
    lines = [
        f"# int8 QDQ vs fp32 accuracy ({report['date']})", "",
        f"Machine: {report['hardware']['cpu']} ({report['hardware']['usable_cores']} usable "
        f"cores), onnxruntime {report['hardware']['onnxruntime']}.", "",
        f"Command: `{report['command']}`", "",
        f"Checkpoint `{report['weights']}` ({report['model']}), {report['dataset']} "
        f"{report['split']} ({report['images']} images), network {report['network_size'][0]}x"
        f"{report['network_size'][1]}. Labels: the exported graph's argmax at network size, "
        "nearest-resized to the label size (the deployed path).", "",
        f"Quantization: {q['activations']}, {q['weights']}, target {q['target']}, "
        f"{q['calibration']['frames']} calibration frames ({json.dumps(q['source'])}). "
        f"Float layers (measured): {', '.join(f'{k} ({v})' for k, v in q['float_layers'].items()) or 'none'}.",  # noqa: E501
        "",
        "| | mIoU | small-object mIoU | pixel acc. | label agreement with fp32 |",
        "|---|---:|---:|---:|---:|",
        f"| fp32 | {fp32['miou']} | {fp32['small_object_miou']} | {fp32['pixel_accuracy']} | |",
        f"| int8 | {int8['miou']} | {int8['small_object_miou']} | {int8['pixel_accuracy']} "
        f"| {report['agreement_percent']} % |",
        f"| int8 - fp32 | {d['miou']:+.2f} | {d['small_object_miou']:+.2f} | | |", "",
        "Small-object IoU (fp32 / int8): " + ", ".join(
            f"{k} {fp32['small_object_iou'][k]} / {int8['small_object_iou'][k]}"
            for k in fp32["small_object_iou"]), "",
        "Targets: " + ", ".join(f"{k} {'met' if ok else 'MISSED'}"
                                for k, ok in report["targets_met"].items()), "",
    ]
    selection = q["float_layer_selection"]
    if isinstance(selection, dict):
        lines += [
            f"Float-layer measurement on {selection['frames']} held-out calibration frames: "
            f"all layers int8 agree with fp32 on {100 * selection['agreement_all_int8']:.3f} % "
            f"of pixels; a candidate stays float if that gains >= "
            f"{100 * selection['min_gain']:.2f} points.", "",
            "| candidate | node | agreement if float | gain (points) | kept float |",
            "|---|---|---:|---:|---|",
        ]
        for role, c in selection["candidates"].items():
            kept = "yes" if role in q["float_layers"] else "no"
            lines.append(f"| {role} | `{c['node']}` | {100 * c['agreement_if_float']:.3f} % | "
                         f"{100 * c['gain']:+.3f} | {kept} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    network, card = load_network(args.weights)
    class_set = resolve_class_set(None, card.class_set, card.num_classes)
    card = card_with_class_set(card, class_set)
    size = tuple(args.network_size or card.network_size or DEFAULT_NETWORK_SIZE)
    dataset = build_dataset(args.dataset, args.root, args.split)
    if len(dataset) == 0:
        raise SystemExit(f"no {args.split} images under {args.root}")
    with tempfile.TemporaryDirectory(prefix="int8-accuracy-") as tmp:
        fp32_path = Path(args.keep or tmp) / f"{card.model}_{size[0]}x{size[1]}.onnx"
        card = card.replace(network_size=size)
        export_onnx(network, fp32_path, card,
                    source={"weights": args.weights, "weights_sha256": file_sha256(args.weights)})
        int8_path = fp32_path.with_name(fp32_path.stem + ".int8.onnx")
        sidecar = quantize_from_sources(
            fp32_path, int8_path, target=args.int8_target, calib_images=args.calib_images,
            calib_count=args.calib_count, select_count=args.select_count,
            float_layers=parse_float_layers(args.float_layers), seed=args.seed)
        fp32 = OnnxRuntimeEngine(fp32_path)
        int8 = OnnxRuntimeEngine(int8_path)
        m32, m8, agreement = score(fp32, int8, dataset, class_set.num_classes, args.limit)
    s32, s8 = m32.summary(class_set), m8.summary(class_set)

    def pts(summary: dict[str, Any]) -> dict[str, Any]:
        return {"miou": points(summary["miou"]),
                "small_object_miou": points(summary["small_object_miou"]),
                "pixel_accuracy": points(summary["pixel_accuracy"]),
                "small_object_iou": {k: points(v) for k, v in summary["small_object_iou"].items()},
                "iou": {k: points(v) for k, v in summary["iou"].items()}}

    fp32_pts, int8_pts = pts(s32), pts(s8)
    delta = {k: round(int8_pts[k] - fp32_pts[k], 2) for k in ("miou", "small_object_miou")}
    quant = dict(sidecar["quantization"])
    quant["source"] = quant.pop("calibration")
    quant["calibration"] = {"frames": quant["source"].pop("frames")}
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 - 3.10
        "command": "python -m benchmarks.int8_accuracy "
        + " ".join(shlex.quote(a) for a in args.argv),
        "hardware": hardware_info(),
        "weights": args.weights, "model": card.model, "dataset": args.dataset,
        "split": args.split, "images": min(len(dataset), args.limit or len(dataset)),
        "network_size": list(size),
        "fp32": fp32_pts, "int8": int8_pts, "delta_points": delta,
        "agreement_percent": round(100.0 * agreement, 3),
        "targets_met": {
            "agreement >= 99 %": agreement >= TARGETS["agreement"],
            "mIoU drop <= 1.0": -delta["miou"] <= TARGETS["miou_drop"],
            "small-object drop <= 2.0": (
                -delta["small_object_miou"] <= TARGETS["small_object_miou_drop"]),
        },
        "quantization": quant,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--weights", required=True, help="project checkpoint")
    parser.add_argument("--dataset", default="synthetic", choices=DATASET_NAMES)
    parser.add_argument("--root", required=True, help="dataset root")
    parser.add_argument("--split", default="val")
    parser.add_argument("--network-size", type=parse_size, metavar="HxW",
                        help="default: the checkpoint's")
    parser.add_argument("--calib-images",
                        help="calibration image folder (default: generated street scenes)")
    parser.add_argument("--calib-count", type=int, default=DEFAULT_CALIB_COUNT)
    parser.add_argument("--seed", type=int, default=0, help="seed of generated scenes")
    parser.add_argument("--limit", type=int, help="score only the first N val images")
    parser.add_argument("--keep", help="folder to keep the fp32 and int8 graphs in")
    parser.add_argument("--out", default="benchmarks", help="output folder")
    parser.add_argument("--name", default="int8_accuracy", help="file stem for .json and .md")
    add_quantize_arguments(parser)
    parser.set_defaults(select_count=DEFAULT_SELECT_COUNT)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not Path(args.weights).is_file():
        raise SystemExit(f"weights file not found: {args.weights}")
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    report = run(args)
    write_report(args.out, args.name, report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
