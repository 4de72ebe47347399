"""uint8 frames -> normalised torch tensors, with the input normalisation of
:mod:`bisestdc_core.normalization` (kept apart so that the constants stay torch-free)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bisestdc_core.normalization import IMAGENET_MEAN, IMAGENET_STD


def images_to_tensor(images: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """N x H x W x 3 (or H x W x 3) uint8 RGB -> N x 3 x H x W normalised float32.

    (x / 255 - mean) / std, computed as one multiply-add (as the exported graphs do).
    """
    batch = torch.from_numpy(np.ascontiguousarray(images))
    if batch.ndim == 3:
        batch = batch[None]
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return batch.permute(0, 3, 1, 2).float() * (1.0 / (255.0 * std_t)) - mean_t / std_t
