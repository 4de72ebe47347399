"""Turning a weights argument into a network and its model card (torch), and the hash of
in-memory weights.

A card's class set is :mod:`.class_choice`'s and a file's sha256 :mod:`bisestdc_core.artefacts`'
(both torch-free, for the runtime of exported models).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from torch import nn

from bisestdc_core.model_card import ModelCard
from bisestdc_core.models import build_model, load_checkpoint_model

log = logging.getLogger(__name__)


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
