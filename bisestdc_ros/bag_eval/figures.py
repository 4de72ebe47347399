"""The report's time plots: latency (histogram and timeline), predicted class shares and
small-object counts over the drive. PNGs through ``evaluation.plots.save_figure`` (no pyplot).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bisestdc_core.classes import ClassSet
from bisestdc_core.evaluation.plots import save_figure
from bisestdc_core.stage_timings import STAGE_LABELS
from bisestdc_ros.bag_eval.render import FrameStats
from bisestdc_ros.bag_eval.scoring import FrameTiming

SHARE_CLASSES = 8  # the largest classes get a band each, the rest one "other" band

# The stages plotted, in plotting order: the headline figure first (end to end live, the
# Segmenter's total offline), then its parts.
PLOTTED_STAGES = ("end_to_end_ms", "total_ms", "inference_ms", "preprocess_ms",
                  "postprocess_ms", "decode_ms")


def headline_stages(timings: Sequence[FrameTiming]) -> list[str]:
    """Plotted stages present in ``timings``, end to end (live) or total (offline) first."""
    present = {k for t in timings for k in t.stages.measured()}
    return [s for s in PLOTTED_STAGES if s in present]


def _stage_points(timings: Sequence[FrameTiming], stage: str) -> list[tuple[float, float]]:
    """(t, ms) of the frames where ``stage`` was measured (negative: not available)."""
    values = ((t.t, getattr(t.stages, stage)) for t in timings)
    return [(when, ms) for when, ms in values if ms is not None and ms >= 0]


def plot_latency(timings: Sequence[FrameTiming], out_dir: Path, subtitle: str = "") -> None:
    """latency_histogram.png and latency_timeline.png."""
    stages = headline_stages(timings)
    hist = Figure(figsize=(7, 4))
    ax = hist.add_subplot(1, 1, 1)
    for stage in stages[:3]:
        values = [ms for _, ms in _stage_points(timings, stage)]
        if values:
            ax.hist(values, bins=min(40, max(5, len(values))), alpha=0.6,
                    label=f"{STAGE_LABELS[stage]} (p50 {np.percentile(values, 50):.1f} ms)")
    ax.set_xlabel("latency per frame (ms)")
    ax.set_ylabel("frames")
    ax.set_title("latency per frame" + (f": {subtitle}" if subtitle else ""))
    if stages:
        ax.legend(fontsize=8)
    hist.tight_layout()
    save_figure(hist, out_dir / "latency_histogram.png")

    line = Figure(figsize=(8, 4))
    ax = line.add_subplot(1, 1, 1)
    for stage in stages:
        points = _stage_points(timings, stage)
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker=".", label=STAGE_LABELS[stage])
    ax.set_xlabel("time since the run started (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("latency over the run" + (f": {subtitle}" if subtitle else ""))
    ax.grid(alpha=0.3)
    if stages:
        ax.legend(fontsize=8)
    line.tight_layout()
    save_figure(line, out_dir / "latency_timeline.png")


def plot_class_shares(stats: FrameStats, class_set: ClassSet, path: Path) -> Path:
    """Stacked predicted class shares (%) per frame over the drive, in the class colours."""
    fig = Figure(figsize=(9, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    if stats.shares:
        shares = np.stack(stats.shares) * 100.0  # frames x C
        order = np.argsort(-shares.mean(0))
        top = [int(i) for i in order[:SHARE_CLASSES] if shares[:, i].mean() > 0]
        rest = shares.sum(1) - shares[:, top].sum(1)
        bands = [shares[:, i] for i in top] + [rest]
        labels = [class_set.names[i] for i in top] + ["other classes"]
        colors = [tuple(c / 255.0 for c in class_set.colors[i]) for i in top] + [(0.8,) * 3]
        ax.stackplot(stats.seconds, bands, labels=labels, colors=colors, edgecolor="white",
                     linewidth=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_xlabel("time since the first frame (s)")
    ax.set_ylabel("share of the frame's pixels (%)")
    ax.set_ylim(0, 100)
    ax.set_title("predicted classes over the drive")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_small_objects(stats: FrameStats, class_set: ClassSet, path: Path) -> Path:
    """Small objects found per frame for each small-object class, over the drive."""
    fig = Figure(figsize=(9, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    for class_id in class_set.small_object_ids:
        name = class_set.names[class_id]
        counts = [frame.get(name, 0) for frame in stats.small_objects]
        if counts:
            ax.step(stats.seconds, counts, where="mid", label=f"{name} (total {sum(counts)})",
                    color=tuple(c / 255.0 for c in class_set.colors[class_id]), linewidth=1.5)
    ax.set_xlabel("time since the first frame (s)")
    ax.set_ylabel("objects in the frame")
    ax.set_title("small objects found per frame (predicted, boxed in the video)")
    ax.grid(alpha=0.3)
    ax.yaxis.get_major_locator().set_params(integer=True)
    if stats.small_objects and class_set.small_object_ids:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return save_figure(fig, path)
