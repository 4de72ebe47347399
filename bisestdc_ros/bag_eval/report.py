"""The evaluation report: report.json, report.md, the plots, the contact sheet and the video.

:func:`build_report` turns a :class:`RunResult` into the JSON-ready dict (frame counts, drops
and bad frames, what ran, predicted class shares and small objects, metrics when the bag has
labels, latency percentiles, throughput); :func:`write_report` renders the overlay video and
contact sheet (:mod:`.render`), the plots (:mod:`.figures`) and writes it with its markdown
rendering under ``--out``. Percentages are written as percentages everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bisestdc_core.classes import ClassSet
from bisestdc_core.evaluation.plots import plot_per_class_iou
from bisestdc_ros.bag_eval.figures import plot_class_shares, plot_latency, plot_small_objects
from bisestdc_ros.bag_eval.plan import BagPlan
from bisestdc_ros.bag_eval.render import FrameStats, render
from bisestdc_ros.bag_eval.scoring import RunResult, latency_summary

PLOTS = {
    "per_class_iou.png": "per-class IoU",
    "class_shares.png": "predicted class shares over time",
    "small_objects.png": "small objects per frame",
    "latency_histogram.png": "latency histogram",
    "latency_timeline.png": "latency timeline",
    "contact_sheet.png": "contact sheet",
}


def build_report(plan: BagPlan, result: RunResult, class_set: ClassSet, mode: str,
                 stats: FrameStats | None = None) -> dict[str, Any]:
    """The JSON-ready report of one run (``metrics`` is None for a bag without labels)."""
    unique = set(plan.stamps)
    processed = result.processed & unique
    if result.dropped is not None:
        dropped = len(result.dropped & unique)
    else:
        dropped = 0  # offline: every decodable frame is processed
    stats = stats or FrameStats()
    report = {
        "mode": mode,
        "bag": str(plan.path),
        "image_topic": plan.image_topic,
        "labels_topic": plan.labels_topic,
        "bag_class_set": plan.class_set,
        "image_size": [plan.height, plan.width],
        "recorded_rate_hz": plan.rate_hz,
        "engine": result.engine,
        "class_set": class_set.name,
        "frames_in_bag": plan.frames,
        "frames_with_labels": len(plan.label_stamps),
        "frames_processed": len(processed),
        "frames_dropped": dropped,
        "frames_bad": len(result.bad_frames),
        "bad_frames": result.bad_frames,
        "frames_scored": len(result.matcher.scored) if result.matcher else 0,
        "metrics": result.matcher.matrix.summary(class_set) if result.matcher else None,
        "frames_not_scored": result.matcher.mismatched if result.matcher else [],
        "predicted_class_share": stats.mean_shares(class_set),
        "small_objects_found": stats.small_object_totals(),
        "latency_ms": latency_summary(result.timings),
        # Frames answered per second in the pass that measured latency.
        "throughput_fps": len(result.timings) / result.wall_s if result.wall_s > 0 else 0.0,
        "wall_s": result.wall_s,
        "details": result.details,
    }
    return report


def format_percent(value: float | None) -> str:
    """A fraction as a percentage with two decimals; "n/a" for None."""
    return "n/a" if value is None else f"{100 * value:.2f}"


def _engine_line(engine: dict[str, Any]) -> str:
    size = engine.get("network_size")
    parts = [f"{engine.get('engine', '?')} on {engine.get('device', '?')}",
             f"{engine.get('precision', '?')}",
             f"network {size[1]}x{size[0]}" if size else "network size ?",
             f"classes {engine.get('class_set', '?')}"]
    if engine.get("mean") and engine.get("std"):
        parts.append("normalised with mean " + "/".join(f"{v:.3f}" for v in engine["mean"])
                     + ", std " + "/".join(f"{v:.3f}" for v in engine["std"]))
    if engine.get("card"):
        parts.append(f"size from the {engine['card']}")
    return ", ".join(parts)


def report_markdown(report: dict[str, Any]) -> str:
    """report.md: the numbers of report.json as tables, with the plots."""
    metrics = report["metrics"]
    labels = (f"labels `{report['labels_topic']}`" if report["labels_topic"]
              else "no labels (inspected, not scored)")
    lines = [
        f"# Segmentation on `{report['bag']}` ({report['mode']})", "",
        f"- image topic `{report['image_topic']}` ({report['image_size'][1]}x"
        f"{report['image_size'][0]}, {report['recorded_rate_hz']:.2f} Hz recorded), {labels}",
        f"- ran: {_engine_line(report['engine'])}",
        f"- frames: {report['frames_in_bag']} in the bag, {report['frames_processed']} "
        f"processed, {report['frames_dropped']} dropped"
        f"{' in the real-time pass' if report['details'].get('replay') == 'both' else ''}, "
        f"{report['frames_bad']} bad (skipped)"
        + (f", {report['frames_scored']} scored" if metrics else ""),
    ]
    if metrics and report["frames_scored"] < report["frames_with_labels"]:
        lines.append(f"- **only {report['frames_scored']} of the {report['frames_with_labels']} "
                     f"labelled frames were scored: the metrics cover those.**")
    if metrics:
        lines.append(f"- **mIoU {format_percent(metrics['miou'])} %**, small objects "
                     f"{format_percent(metrics['small_object_miou'])} %, pixel accuracy "
                     f"{format_percent(metrics['pixel_accuracy'])} %")
    lines.append(f"- throughput {report['throughput_fps']:.2f} frames/s over "
                 f"{report['wall_s']:.1f} s")
    if report["bad_frames"] or report["frames_not_scored"]:
        lines += ["", "## Frames skipped", ""]
        lines += [f"- {reason}" for reason in report["bad_frames"] + report["frames_not_scored"]]
    iou_column = "| IoU (%) " if metrics else ""
    lines += ["", "## Predicted classes", "",
              f"| class | share of pixels (%) {iou_column}| small objects found |",
              "|---|---:|" + ("---:|" if metrics else "") + "---:|"]
    small = report["small_objects_found"]
    for name, share in report["predicted_class_share"].items():
        iou = f"| {format_percent(metrics['iou'].get(name))} " if metrics else ""
        found = str(small[name]) if name in small else ""
        lines.append(f"| {name} | {100 * share:.2f} {iou}| {found} |")
    if metrics:
        lines.append("")
        lines.append("IoU n/a: the class has no pixels in the ground truth nor the prediction.")
    lines += ["", "## Latency (ms)", "", "| stage | p50 | p90 | p99 | mean | max | n |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for stage, row in report["latency_ms"].items():
        lines.append(f"| {stage} | {row['p50']:.2f} | {row['p90']:.2f} | {row['p99']:.2f} | "
                     f"{row['mean']:.2f} | {row['max']:.2f} | {row['count']} |")
    if report["details"]:
        lines += ["", "## Run", ""]
        lines += [f"- {k}: {v}" for k, v in report["details"].items()]
    lines += ["", "Overlay video (small objects boxed and named): [overlay.mp4](overlay.mp4)", ""]
    for name, title in PLOTS.items():
        if name != "per_class_iou.png" or metrics:
            lines += [f"![{title}]({name})", ""]
    return "\n".join(lines)


def write_report(plan: BagPlan, result: RunResult, class_set: ClassSet, mode: str,
                 out_dir: Path) -> dict[str, Any]:
    """Everything under ``out_dir``; returns the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = render(plan, result, class_set, out_dir)
    report = build_report(plan, result, class_set, mode, stats)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(report_markdown(report))
    metrics = report["metrics"]
    if metrics:
        plot_per_class_iou(list(metrics["iou"].values()), class_set.names,
                           out_dir / "per_class_iou.png", small_objects=class_set.small_objects,
                           title=f"{mode}: mIoU {format_percent(metrics['miou'])} % over "
                                 f"{report['frames_scored']} frames")
    plot_class_shares(stats, class_set, out_dir / "class_shares.png")
    plot_small_objects(stats, class_set, out_dir / "small_objects.png")
    plot_latency(result.timings, out_dir, result.details.get("latency_pass", ""))
    return report
