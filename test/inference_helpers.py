"""Shared helpers for the inference tests: small non-degenerate networks and frames."""

from __future__ import annotations

import numpy as np
import torch

from bisestdc_core.inference.synthetic import calibrate_batchnorm, synthetic_frame
from bisestdc_core.models import build_model

SMALL = (128, 256)


def realistic_frames(count: int, height: int = SMALL[0], width: int = SMALL[1],
                     seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [synthetic_frame(height, width, rng) for _ in range(count)]


def nondegenerate_model(name: str = "stdc1", num_classes: int = 19, seed: int = 0):
    """A seeded random network whose BN statistics come from synthetic street frames, so its
    labels vary over the image instead of being one class."""
    torch.manual_seed(seed)
    model = build_model(name, num_classes)
    return calibrate_batchnorm(model, realistic_frames(4, seed=seed + 100))
