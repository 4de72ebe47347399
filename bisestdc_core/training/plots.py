"""Training curves as PNG (loss parts and learning rate over iterations)."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from bisestdc_core.evaluation.plots import save_figure


def plot_losses(history: Path, out_png: Path) -> None:
    """Read ``losses.jsonl`` (one record per iteration) and draw loss parts and lr."""
    records: dict[int, dict] = {}
    for line in history.read_text().splitlines():
        rec = json.loads(line)
        records[rec["iteration"]] = rec  # a resumed run overwrites the killed run's tail
    its = sorted(records)
    fig = Figure(figsize=(8, 6))
    ax_loss, ax_lr = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for key in ("loss", "main", "aux", "detail_bce", "detail_dice"):
        ax_loss.plot(its, [records[i][key] for i in its], label=key, linewidth=1)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.grid(alpha=0.3)
    ax_lr.plot(its, [records[i]["lr"] for i in its], color="black", linewidth=1)
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("iteration")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out_png, dpi=110)
