"""The model card: what a model predicts and at what size, read before any inference.

A project checkpoint carries its card (``class_set``, ``num_classes``, ``mean``, ``std`` and,
once packaged, ``network_size``); an exported ONNX carries the same in its sidecar. The card
decides the class set and the network size of both modes, so a model never runs at a silent
default size (a raw ``best.pt`` has no ``network_size``: ``--network-size`` is then required),
and a bag recorded for one class set is never scored against a model of another.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bisestdc_core.classes import ClassSet
from bisestdc_ros.bag_eval.errors import EvalError


@dataclass(frozen=True)
class ModelCard:
    """What the model predicts and how it is fed.

    Attributes:
        class_set: the classes of its train ids.
        network_size: (H, W) it runs at (the card's, or ``--network-size``).
        mean, std: input normalisation (None where the file does not say: seed checkpoints).
        source: where the card came from, for the report.
    """

    class_set: ClassSet
    network_size: tuple[int, int]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    source: str

    def describe(self) -> dict[str, object]:
        """The card's fields for the report (lists, JSON-ready)."""
        return {"network_size": list(self.network_size), "class_set": self.class_set.name,
                "mean": list(self.mean) if self.mean else None,
                "std": list(self.std) if self.std else None, "card": self.source}


def read_model_card(args: argparse.Namespace) -> ModelCard:
    """The card of ``--weights`` / ``--onnx`` (never loads the network).

    Raises:
        EvalError: unreadable file, unknown class set, or no network size from either the card
            or ``--network-size``.
    """
    from bisestdc_core.export import read_sidecar  # noqa: PLC0415 (onnx import is slow)
    from bisestdc_core.inference.loading import resolve_class_set  # noqa: PLC0415
    from bisestdc_core.models.checkpoint import (  # noqa: PLC0415
        PROJECT_FORMAT,
        CheckpointError,
        read_file,
    )

    card: dict = {}
    if args.onnx:
        path, kind = Path(args.onnx), "ONNX sidecar"
        try:
            card = read_sidecar(path) or {}
        except ValueError as error:
            raise EvalError(str(error)) from error
    else:
        path, kind = Path(args.weights), "checkpoint card"
        try:
            obj = read_file(path)
        except CheckpointError as error:
            raise EvalError(str(error)) from error
        if isinstance(obj, dict) and obj.get("format") == PROJECT_FORMAT:
            card = {k: v for k, v in obj.items() if k != "state_dict"}
    num_classes = int(card.get("num_classes", args.num_classes))
    try:
        class_set = resolve_class_set(args.class_set, card.get("class_set"), num_classes)
    except ValueError as error:
        raise EvalError(f"{path}: {error}") from error
    if args.network_size:
        size, source = tuple(int(v) for v in args.network_size), "--network-size"
    elif card.get("network_size"):
        size, source = tuple(int(v) for v in card["network_size"]), f"{kind} of {path.name}"
    else:
        raise EvalError(f"{path} has no network size in its {kind if card else 'file'} (a raw "
                        f"training checkpoint, or a seed file): pass --network-size H W, or "
                        f"package it with training.package_checkpoint --network-size")
    if len(size) != 2 or min(size) <= 0 or any(v % 32 for v in size):
        raise EvalError(f"network size must be two positive multiples of 32, got {size}")
    mean = tuple(float(v) for v in card["mean"]) if card.get("mean") else None
    std = tuple(float(v) for v in card["std"]) if card.get("std") else None
    return ModelCard(class_set, (int(size[0]), int(size[1])), mean, std, source)


def check_bag_class_set(card: ModelCard, bag_class_set: str | None, bag: Path) -> None:
    """Refuse to score labels of one class set with a model of another.

    Raises:
        EvalError: naming both class sets.
    """
    if bag_class_set is not None and bag_class_set != card.class_set.name:
        raise EvalError(f"bag {bag} is labelled with class set {bag_class_set!r} but the model "
                        f"predicts {card.class_set.name!r}: its scores would be meaningless "
                        f"(--no-labels inspects the bag without scoring it)")
