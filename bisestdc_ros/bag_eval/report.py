"""The evaluation report: report.json, report.md, latency plots and the contact sheet.

:func:`build_report` turns a :class:`RunResult` into the JSON-ready dict (frame counts,
metrics, latency percentiles, throughput, run details); :func:`write_report` writes it under
``--out`` with its markdown rendering, the per-class IoU chart, the latency histogram and
timeline, and a contact sheet of frames blended with their predicted colours.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bisestdc_core.classes import ClassSet
from bisestdc_core.evaluation.plots import save_figure
from bisestdc_ros.bag_eval.errors import EvalError
from bisestdc_ros.bag_eval.plan import BagPlan, format_stamp
from bisestdc_ros.bag_eval.scoring import FrameTiming, RunResult, latency_summary, sheet_stamps
from bisestdc_ros.bag_io import BagReader, frame_from_msg, stamp_ns
from bisestdc_ros.image_codec import to_bgr

CONTACT_SHEET_COLUMNS = 4
CONTACT_TILE_WIDTH = 320
OVERLAY_OPACITY = 0.5


def build_report(plan: BagPlan, result: RunResult, class_set: ClassSet, mode: str
                 ) -> dict[str, Any]:
    """The JSON-ready report of one run."""
    unique = set(plan.stamps)
    processed = result.processed & unique
    dropped = len(unique) - len(processed)
    summary = result.matcher.matrix.summary(class_set)
    return {
        "mode": mode,
        "bag": str(plan.path),
        "image_topic": plan.image_topic,
        "labels_topic": plan.labels_topic,
        "image_size": [plan.height, plan.width],
        "recorded_rate_hz": plan.rate_hz,
        "engine": result.engine,
        "class_set": class_set.name,
        "frames_in_bag": plan.frames,
        "frames_with_labels": len(plan.label_stamps),
        "frames_processed": len(processed),
        "frames_dropped": dropped,
        "frames_scored": len(result.matcher.scored),
        "metrics": summary,
        "latency_ms": latency_summary(result.timings),
        "throughput_fps": len(processed) / result.wall_s if result.wall_s > 0 else 0.0,
        "wall_s": result.wall_s,
        "details": result.details,
    }


def format_percent(value: float | None) -> str:
    """A fraction as a percentage with two decimals; "n/a" for None."""
    return "n/a" if value is None else f"{100 * value:.2f}"


def report_markdown(report: dict[str, Any]) -> str:
    """report.md: the numbers of report.json as tables, with the plots."""
    metrics = report["metrics"]
    lines = [
        f"# Segmentation on `{report['bag']}` ({report['mode']})", "",
        f"- image topic `{report['image_topic']}` ({report['image_size'][1]}x"
        f"{report['image_size'][0]}, {report['recorded_rate_hz']:.2f} Hz recorded), labels "
        f"`{report['labels_topic']}`",
        f"- engine: {', '.join(f'{k} {v}' for k, v in report['engine'].items())}",
        f"- frames: {report['frames_in_bag']} in the bag, {report['frames_processed']} "
        f"processed, {report['frames_dropped']} dropped, {report['frames_scored']} scored",
    ]
    if report["frames_dropped"]:
        lines.append(f"- **{report['frames_dropped']} frames had no output: the metrics cover "
                     f"only the {report['frames_scored']} scored frames.**")
    lines += [
        f"- **mIoU {format_percent(metrics['miou'])} %**, small objects "
        f"{format_percent(metrics['small_object_miou'])} %, pixel accuracy "
        f"{format_percent(metrics['pixel_accuracy'])} %",
        f"- throughput {report['throughput_fps']:.2f} frames/s over {report['wall_s']:.1f} s",
        "", "## Per class IoU (%)", "", "| class | IoU | small object |", "|---|---:|:---:|",
    ]
    small = metrics["small_object_iou"]
    for name, iou in metrics["iou"].items():
        lines.append(f"| {name} | {format_percent(iou)} | {'yes' if name in small else ''} |")
    lines += ["", "## Latency (ms)", "", "| stage | p50 | p90 | p99 | mean | max | n |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for stage, row in report["latency_ms"].items():
        lines.append(f"| {stage} | {row['p50']:.2f} | {row['p90']:.2f} | {row['p99']:.2f} | "
                     f"{row['mean']:.2f} | {row['max']:.2f} | {row['count']} |")
    if report["details"]:
        lines += ["", "## Run", ""]
        lines += [f"- {k}: {v}" for k, v in report["details"].items()]
    lines += ["", "![per-class IoU](per_class_iou.png)", "",
              "![latency histogram](latency_histogram.png)", "",
              "![latency timeline](latency_timeline.png)", "",
              "![contact sheet](contact_sheet.png)", ""]
    return "\n".join(lines)


def _headline_stages(timings: Sequence[FrameTiming]) -> list[str]:
    """Stages worth plotting: end to end (live) or total (offline), then the network."""
    present = {k for t in timings for k in t.stages}
    return [s for s in ("end_to_end_ms", "node_latency_ms", "total_ms", "inference_ms",
                        "preprocess_ms", "postprocess_ms", "decode_ms") if s in present]


def plot_latency(timings: Sequence[FrameTiming], out_dir: Path) -> None:
    """latency_histogram.png and latency_timeline.png."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    stages = _headline_stages(timings)
    hist = Figure(figsize=(7, 4))
    ax = hist.add_subplot(1, 1, 1)
    for stage in stages[:3]:
        values = [t.stages[stage] for t in timings if t.stages.get(stage, -1) >= 0]
        if values:
            ax.hist(values, bins=min(40, max(5, len(values))), alpha=0.6, label=stage)
    ax.set_xlabel("ms")
    ax.set_ylabel("frames")
    ax.set_title("latency per frame")
    if stages:
        ax.legend()
    hist.tight_layout()
    save_figure(hist, out_dir / "latency_histogram.png")

    line = Figure(figsize=(8, 4))
    ax = line.add_subplot(1, 1, 1)
    for stage in stages:
        points = [(t.t, t.stages[stage]) for t in timings if t.stages.get(stage, -1) >= 0]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker=".", label=stage)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("ms")
    ax.set_title("latency over the run")
    ax.grid(alpha=0.3)
    if stages:
        ax.legend(fontsize=8)
    line.tight_layout()
    save_figure(line, out_dir / "latency_timeline.png")


def contact_sheet(plan: BagPlan, predictions: dict[int, np.ndarray], class_set: ClassSet,
                  path: Path) -> Path:
    """A grid of frames blended with their predicted colours (black where none arrived)."""
    from bisestdc_core.small_objects import draw_overlay  # noqa: PLC0415

    palette = class_set.palette_bgr()
    tile_h = max(1, round(CONTACT_TILE_WIDTH * plan.height / plan.width))
    tiles: dict[int, np.ndarray] = {}
    wanted = sheet_stamps(plan)
    with BagReader(plan.path) as bag:
        for _, _, msg in bag.messages([plan.image_topic]):
            stamp = stamp_ns(msg)
            if stamp not in wanted or stamp in tiles:
                continue
            frame, order = frame_from_msg(msg, plan.image_type)
            bgr = to_bgr(frame, order)
            if stamp in predictions:
                bgr = draw_overlay(bgr, predictions[stamp], palette, [], None, OVERLAY_OPACITY)
            else:
                bgr = (bgr // 3).astype(np.uint8)  # dimmed: this frame was dropped
            tile = cv2.resize(bgr, (CONTACT_TILE_WIDTH, tile_h), interpolation=cv2.INTER_AREA)
            cv2.putText(tile, format_stamp(stamp) + ("" if stamp in predictions else " dropped"),
                        (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            tiles[stamp] = tile
    ordered = [tiles[s] for s in sorted(tiles)]
    columns = min(CONTACT_SHEET_COLUMNS, len(ordered))
    rows = math.ceil(len(ordered) / columns)
    sheet = np.zeros((rows * tile_h, columns * CONTACT_TILE_WIDTH, 3), np.uint8)
    for i, tile in enumerate(ordered):
        row, col = divmod(i, columns)
        x0 = col * CONTACT_TILE_WIDTH
        sheet[row * tile_h:(row + 1) * tile_h, x0:x0 + CONTACT_TILE_WIDTH] = tile
    if not cv2.imwrite(str(path), sheet):
        raise EvalError(f"cannot write {path}")
    return path


def write_report(plan: BagPlan, result: RunResult, class_set: ClassSet, mode: str,
                 out_dir: Path) -> dict[str, Any]:
    """report.json, report.md and the plots under ``out_dir``; returns the report."""
    from bisestdc_core.evaluation.plots import plot_per_class_iou  # noqa: PLC0415

    report = build_report(plan, result, class_set, mode)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(report_markdown(report))
    metrics = report["metrics"]
    plot_per_class_iou(list(metrics["iou"].values()), class_set.names,
                       out_dir / "per_class_iou.png", small_objects=class_set.small_objects,
                       title=f"{mode}: mIoU {format_percent(metrics['miou'])}% "
                             f"({report['frames_scored']} frames)")
    plot_latency(result.timings, out_dir)
    contact_sheet(plan, result.keep, class_set, out_dir / "contact_sheet.png")
    return report
