"""Turning a weights argument into a network, its model card and its class set."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch
from torch import nn

from ..classes import CLASS_SETS, ClassSet, get_class_set
from ..model_card import ModelCard
from ..models import build_model, load_checkpoint_model

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(model: nn.Module) -> str:
    """Hex sha256 over a network's tensors (names, shapes, bytes): for weights with no file."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_network(
    weights: str | os.PathLike | None, model_name: str = "bisestdc", num_classes: int = 19,
) -> tuple[nn.Module, ModelCard]:
    """Build an fp32 eval-mode network from a project checkpoint, a seed checkpoint or nothing.

    Args:
        weights: project checkpoint (its own card wins), seed checkpoint (``model_name`` /
            ``num_classes`` describe it), or None for random weights (only meaningful for
            latency measurements; logged as a warning).

    Returns:
        ``(model, card)``; a seed checkpoint's or a random network's card has the default
        normalisation and no class set.

    Raises:
        ValueError: the file does not exist.
        CheckpointError: the file cannot be read or does not fit the network.
    """
    if weights is None:
        log.warning("no weights given: %s with random initialisation (latency only)", model_name)
        model = build_model(model_name, num_classes).float().eval()
        return model, ModelCard(model=model_name, num_classes=num_classes, source="random")
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    model, meta = load_checkpoint_model(path, model_name, num_classes)
    # The checkpoint's card was checked on loading; this reads the same keys into the card.
    return model, ModelCard.from_dict(meta, path)


def generic_class_set(num_classes: int) -> ClassSet:
    """Numbered classes with a deterministic palette, for networks of no known class set."""
    rng = torch.Generator().manual_seed(num_classes)
    colors = torch.randint(0, 256, (num_classes, 3), generator=rng).tolist()
    return ClassSet(
        name=f"generic{num_classes}",
        names=tuple(f"class_{i}" for i in range(num_classes)),
        colors=tuple(tuple(c) for c in colors),
        small_objects=(),
    )


def resolve_class_set(
    requested: ClassSet | str | None, stored: str | None, num_classes: int,
) -> ClassSet:
    """The class set to report: explicit request, else the stored name, else by class count.

    Raises:
        ValueError: unknown name, or a class count that does not match the network's.
    """
    if isinstance(requested, ClassSet):
        class_set = requested
    elif requested is not None:
        class_set = get_class_set(requested)
    elif stored is not None and stored in CLASS_SETS:
        class_set = CLASS_SETS[stored]
    else:
        by_count = [c for c in CLASS_SETS.values() if c.num_classes == num_classes]
        class_set = by_count[0] if by_count else generic_class_set(num_classes)
    if class_set.num_classes != num_classes:
        raise ValueError(
            f"class set {class_set.name!r} has {class_set.num_classes} classes but the network "
            f"predicts {num_classes}"
        )
    return class_set


def card_with_class_set(card: ModelCard, requested: ClassSet | str | None = None) -> ModelCard:
    """``card`` with its class set resolved (:func:`resolve_class_set`) and its class names,
    as an export records them.

    Raises:
        ValueError: unknown name, or a class count that does not match the card's.
    """
    class_set = resolve_class_set(requested, card.class_set, card.num_classes)
    return card.replace(class_set=class_set.name, class_names=class_set.names)
