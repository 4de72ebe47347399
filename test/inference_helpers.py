"""Shared helpers for the inference tests: small non-degenerate networks and frames."""

from __future__ import annotations

import copy

import numpy as np
import torch

from bisestdc_core.classes import CITYSCAPES
from bisestdc_core.inference.onnx_export import export_onnx
from bisestdc_core.inference.untrained_network import calibrate_batchnorm, synthetic_frame
from bisestdc_core.model_card import ModelCard
from bisestdc_core.models import build_model

SMALL = (128, 256)


def realistic_frames(count: int, height: int = SMALL[0], width: int = SMALL[1],
                     seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [synthetic_frame(height, width, rng) for _ in range(count)]


# (name, num_classes, seed) -> (network, torch RNG state right after building it).
_BUILT: dict[tuple[str, int, int], tuple[torch.nn.Module, torch.Tensor]] = {}


def nondegenerate_model(name: str = "stdc1", num_classes: int = 19, seed: int = 0):
    """A seeded random network whose BN statistics come from synthetic street frames, so its
    labels vary over the image instead of being one class.

    Built (and BN-calibrated, about a second of CPU) once per process: later calls get a deep
    copy, which callers may change, and the torch RNG state a fresh build would leave, so what
    a test draws after the call does not depend on which test built the network first."""
    key = (name, num_classes, seed)
    if key not in _BUILT:
        torch.manual_seed(seed)
        model = calibrate_batchnorm(build_model(name, num_classes),
                                    realistic_frames(4, seed=seed + 100))
        _BUILT[key] = (model, torch.get_rng_state())
    model, rng_state = _BUILT[key]
    torch.set_rng_state(rng_state)
    return copy.deepcopy(model)


def cityscapes_card(model: str, network_size=SMALL, **fields) -> ModelCard:
    """The card of a Cityscapes network (ImageNet normalisation unless given)."""
    return ModelCard(model=model, num_classes=len(CITYSCAPES.names), class_set="cityscapes",
                     class_names=CITYSCAPES.names, network_size=tuple(network_size), **fields)


def export_graph(network, path, model: str = "stdc1", network_size=SMALL, **options) -> ModelCard:
    """export_onnx with a Cityscapes card; ``options`` are the export's (dynamic, ...)."""
    return export_onnx(network, path, cityscapes_card(model, network_size), **options)
