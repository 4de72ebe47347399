"""The class set a model card reports: asked for, stored, or found by class count (no torch)."""

from __future__ import annotations

import numpy as np

from bisestdc_core.classes import CLASS_SETS, ClassSet, get_class_set
from bisestdc_core.model_card import ModelCard


def generic_class_set(num_classes: int) -> ClassSet:
    """Numbered classes with a deterministic palette, for networks of no known class set."""
    colors = np.random.default_rng(num_classes).integers(0, 256, (num_classes, 3)).tolist()
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
