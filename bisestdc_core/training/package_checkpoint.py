"""Turn a training checkpoint into a small deployable one (fp16 by default).

    python training/package_checkpoint.py runs/bisestdc_synthetic/last.pt \
        training/checkpoints/demo/bisestdc_synthetic.pt --network-size 256 512

Drops the optimiser state, stores tensors in fp16 (half the size; loading casts back to
fp32) and records the network input size that engines should use by default.
(The command line is :mod:`bisestdc_core.cli.package_checkpoint`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bisestdc_core.model_card import check_network_size
from bisestdc_core.models import load_checkpoint_model, save_checkpoint


def package_checkpoint(source: str | Path, target: str | Path,
                       network_size: Sequence[int] | None = None,
                       half: bool = True) -> dict[str, Any]:
    """Write ``target``: the network of training checkpoint ``source`` and its card, without
    the optimiser state; returns the card's metadata as read from ``source``.

    Raises:
        CheckpointError: ``source`` is not a readable project checkpoint.
        ModelCardError: ``network_size`` is not one a card takes (the card readers' rule).
    """
    if network_size:
        network_size = check_network_size(list(network_size), "--network-size")
    model, meta = load_checkpoint_model(source)
    # The card keeps what evaluation and the engines need: iteration, evaluation scale.
    extra = {"iteration": meta.get("iteration")}
    if meta.get("eval_scale"):
        extra["eval_scale"] = meta["eval_scale"]
    if network_size:
        extra["network_size"] = list(network_size)
    save_checkpoint(target, model, meta["model"], meta["class_set"], half=half,
                    mean=tuple(meta["mean"]), std=tuple(meta["std"]), **extra)
    return meta
