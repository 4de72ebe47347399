"""Networks: ``build_model(name, num_classes, weights=None, backbone_weights=None)``.

Names (the keys of ``MODEL_REGISTRY``, see ``registry.py``): ``bisestdc`` (BiSeSTDC-Seg),
``stdc1`` (STDC1-Seg), ``stdc2`` (STDC2-Seg).
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from bisestdc_core.models.checkpoint import (
    PROJECT_FORMAT,
    CheckpointError,
    load_backbone_weights,
    load_checkpoint_object,
    load_weights,
    make_checkpoint,
    read_file,
    save_checkpoint,
    validate_card,
)
from bisestdc_core.models.registry import MODEL_REGISTRY
from bisestdc_core.models.segmentation import SegmentationNetwork, SegOutputs
from bisestdc_core.normalization import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "MODEL_REGISTRY", "SegmentationNetwork", "SegOutputs", "CheckpointError", "build_model",
    "load_checkpoint_model", "save_checkpoint", "make_checkpoint",
]


def build_model(
    name: str, num_classes: int, weights: str | os.PathLike | None = None,
    backbone_weights: str | os.PathLike | None = None,
) -> nn.Module:
    """Build a network by name, optionally loading full or ImageNet-backbone weights.

    Args:
        name: a key of ``MODEL_REGISTRY``.
        num_classes: classes of the main and auxiliary heads.
        weights: a project or seed checkpoint for the whole network.
        backbone_weights: an ImageNet STDC backbone file (ignored when ``weights`` is given).
    """
    try:
        network = MODEL_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODEL_REGISTRY)}") from None
    model = network.build(num_classes)
    if weights is not None:
        load_weights(model, weights, name)
    elif backbone_weights is not None:
        load_backbone_weights(model, backbone_weights)
    return model


def load_checkpoint_model(
    path: str | os.PathLike, model_name: str | None = None, num_classes: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build and load the network a checkpoint file holds (fp32, eval mode); one read.

    A project checkpoint names its own network. A seed checkpoint does not: pass
    ``model_name`` and ``num_classes`` for those.

    Returns:
        ``(model, meta)`` with meta keys ``model``, ``num_classes``, ``mean``, ``std``, and for
        project checkpoints ``class_set`` (and whatever else the trainer stored).
    """
    obj = read_file(path)
    if isinstance(obj, dict) and obj.get("format") == PROJECT_FORMAT:
        validate_card(obj, path, known_models=MODEL_REGISTRY)  # before anything is allocated
        model = build_model(obj["model"], obj["num_classes"])
        meta = load_checkpoint_object(model, obj, path, obj["model"])
        meta.setdefault("class_set", "cityscapes")
    elif model_name is not None and num_classes is not None:
        model = build_model(model_name, num_classes)
        load_checkpoint_object(model, obj, path, model_name)
        meta = {"model": model_name, "num_classes": num_classes}
    else:
        raise CheckpointError(
            f"{path}: not a project checkpoint (no 'format': '{PROJECT_FORMAT}'); for seed "
            "files pass model_name and num_classes"
        )
    meta.setdefault("mean", list(IMAGENET_MEAN))
    meta.setdefault("std", list(IMAGENET_STD))
    return model.float().eval(), meta
