"""Evaluation plots as PNG files (matplotlib's Agg canvas: no display, no global backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a ``Figure`` as PNG through an Agg canvas of its own (no pyplot, no backend)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi)
    return path


def plot_confusion_matrix(matrix: np.ndarray, names: Sequence[str], path: str | Path,
                          normalize: bool = True) -> Path:
    """Confusion matrix heat map, rows = ground truth normalised to 1 (recall per class).

    Args:
        matrix: C x C counts, ``matrix[gt, pred]``.
        names: C class names.
        path: output PNG.
        normalize: divide each row by its sum (empty rows stay 0).
    """
    m = np.asarray(matrix, np.float64)
    if normalize:
        rows = m.sum(1, keepdims=True)
        m = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(names)
    size = max(4.0, 0.45 * n + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    ax.set_xticks(range(n), names, rotation=90, fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    if n <= 20:  # annotate the diagonal; off-diagonal text would be unreadable
        for i in range(n):
            ax.text(i, i, f"{m[i, i]:.2f}" if normalize else f"{int(m[i, i])}", ha="center",
                    va="center", fontsize=6, color="white" if m[i, i] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title("confusion matrix (row-normalised)" if normalize else "confusion matrix")
    fig.tight_layout()
    return save_figure(fig, path)


NA_BAR_HEIGHT = 100.0  # n/a classes: a full-height hatched outline, never a 0 % bar


def plot_per_class_iou(ious: Sequence[float | None], names: Sequence[str], path: str | Path,
                       small_objects: Sequence[str] = (), title: str = "") -> Path:
    """Bar chart of per-class IoU in %, small objects in a second colour, n/a classes hatched.

    A class with no pixels in either the ground truth or the prediction has no IoU (None or
    NaN); it is drawn as an empty hatched outline labelled "n/a", so it cannot be mistaken
    for a class scored 0 %. The legend names the three kinds of bar.

    Args:
        ious: C IoUs in [0, 1] (None or NaN for classes without pixels).
        names: C class names.
        path: output PNG.
        small_objects: names drawn in a second colour.
        title: figure title (e.g. the mIoU in %).
    """
    from matplotlib.patches import Patch  # noqa: PLC0415

    values = np.array([np.nan if v is None else v for v in ious], np.float64) * 100.0
    missing = np.isnan(values)
    positions = np.arange(len(names))
    colors = ["tab:orange" if n in small_objects else "tab:blue" for n in names]
    fig = Figure(figsize=(max(5.0, 0.45 * len(names) + 2), 4.2))
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.bar(positions[~missing], values[~missing],
                  color=[c for c, m in zip(colors, missing) if not m])
    ax.bar_label(bars, fmt="%.0f", fontsize=6, padding=1)
    ax.bar(positions[missing], np.full(int(missing.sum()), NA_BAR_HEIGHT), fill=False,
           hatch="//", edgecolor="0.6", linewidth=0.5)
    for x in positions[missing]:
        ax.text(x, NA_BAR_HEIGHT / 2, "n/a", ha="center", va="center", fontsize=8,
                color="0.25", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.set_xticks(positions, names, rotation=60, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylim(0, 125)  # the band above 100 % holds the legend, clear of the bars
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("IoU (%)")
    ax.grid(axis="y", alpha=0.3)
    handles = [Patch(color="tab:blue", label="class")]
    if small_objects:
        handles.append(Patch(color="tab:orange", label="small object"))
    if missing.any():
        handles.append(Patch(fill=False, hatch="//", edgecolor="0.6",
                             label="n/a (no pixels in truth or prediction)"))
    ax.legend(handles=handles, fontsize=7, loc="upper center", ncol=len(handles),
              framealpha=0.9)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_per_class_iou_comparison(runs: dict[str, Sequence[float | None]],
                                  names: Sequence[str], path: str | Path,
                                  small_objects: Sequence[str] = (), title: str = "") -> Path:
    """Grouped bars of per-class IoU in % for several runs (e.g. training ideas side by side).

    Args:
        runs: run label -> C IoUs in [0, 1] (None or NaN: no pixels; drawn as no bar).
        names: C class names; small objects get their name in bold.
        path: output PNG.
        title: figure title.
    """
    if not runs:
        raise ValueError("no runs to compare")
    for label, ious in runs.items():
        if len(ious) != len(names):
            raise ValueError(f"run {label!r} has {len(ious)} IoUs for {len(names)} classes")
    positions = np.arange(len(names))
    width = 0.8 / len(runs)
    fig = Figure(figsize=(max(6.0, 0.6 * len(names) * max(1, len(runs) / 2) + 2), 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for i, (label, ious) in enumerate(runs.items()):
        values = np.array([np.nan if v is None else v for v in ious], np.float64) * 100.0
        bars = ax.bar(positions - 0.4 + width * (i + 0.5), np.nan_to_num(values), width,
                      label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=5, padding=1)
    ax.set_xticks(positions, names, rotation=60, ha="right", fontsize=8)
    for tick, name in zip(ax.get_xticklabels(), names):
        if name in small_objects:
            tick.set_fontweight("bold")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylim(0, 125)  # the band above 100 % holds the legend, clear of the bars
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("IoU (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", ncol=len(runs), framealpha=0.9)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
