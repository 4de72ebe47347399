"""The evaluated model: its card (``bisestdc_core.inference.model_files.describe``) resolved
against the options, read before any inference.

The card is read and checked by the card readers' one set of rules
(:meth:`bisestdc_core.model_card.ModelCard.from_dict`; ``--network-size`` by the same rule,
:func:`~bisestdc_core.model_card.check_network_size`). The card decides the class set and the
network size of both modes, so a model never runs at a
silent default size (a raw ``best.pt`` has no ``network_size``: ``--network-size`` is then
required), and a bag recorded for one class set is never scored against a model of another.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bisestdc_core.classes import ClassSet
from bisestdc_core.inference.model_files import MissingCard, describe
from bisestdc_core.model_card import ModelCard, ModelCardError, check_network_size
from bisestdc_ros.bag_eval.errors import EvalError


@dataclass(frozen=True)
class EvalModel:
    """The model as this evaluation runs it: its card resolved against the options.

    Attributes:
        class_set: the classes of its train ids (``--class-set``, else the card's).
        network_size: (H, W) it runs at (``--network-size``, else the card's).
        card: the file's model card (None for files without one: seed checkpoints, graphs
            without a sidecar).
        source: where the network size came from, for the report.
    """

    class_set: ClassSet
    network_size: tuple[int, int]
    card: ModelCard | None
    source: str

    def describe(self) -> dict[str, object]:
        """The fields for the report (lists, JSON-ready)."""
        return {"network_size": list(self.network_size), "class_set": self.class_set.name,
                "mean": list(self.card.mean) if self.card else None,
                "std": list(self.card.std) if self.card else None, "card": self.source}


def read_model_card(args: argparse.Namespace) -> EvalModel:
    """The model of ``--weights`` / ``--onnx`` (its card; never loads the network).

    Raises:
        EvalError: unreadable file or card, unknown class set, or no network size from either
            the card or ``--network-size``.
    """
    from bisestdc_core.inference.class_choice import resolve_class_set  # noqa: PLC0415

    path = Path(args.onnx or args.weights)
    kind = "ONNX sidecar" if args.onnx else "checkpoint card"
    try:
        card: ModelCard | None = describe(path)
    except MissingCard:
        card = None
    except ModelCardError as error:
        raise EvalError(str(error)) from error
    num_classes = card.num_classes if card else args.num_classes
    try:
        class_set = resolve_class_set(args.class_set, card and card.class_set, num_classes)
    except ValueError as error:
        raise EvalError(f"{path}: {error}") from error
    if args.network_size:
        try:
            size = check_network_size(list(args.network_size), "--network-size")
        except ModelCardError as error:
            raise EvalError(str(error)) from error
        source = "--network-size"
    elif card and card.network_size:
        size, source = card.network_size, f"{kind} of {path.name}"
    else:
        raise EvalError(f"{path} has no network size in its {kind if card else 'file'} (a raw "
                        f"training checkpoint, or a seed file): pass --network-size H W, or "
                        f"package it with training.package_checkpoint --network-size")
    return EvalModel(class_set, (int(size[0]), int(size[1])), card, source)


def check_bag_class_set(card: EvalModel, bag_class_set: str | None, bag: Path) -> None:
    """Refuse to score labels of one class set with a model of another.

    Raises:
        EvalError: naming both class sets.
    """
    if bag_class_set is not None and bag_class_set != card.class_set.name:
        raise EvalError(f"bag {bag} is labelled with class set {bag_class_set!r} but the model "
                        f"predicts {card.class_set.name!r}: its scores would be meaningless "
                        f"(--no-labels inspects the bag without scoring it)")
