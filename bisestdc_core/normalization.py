"""The input normalisation every network here is trained and deployed with.

RGB on the 0..1 scale, ImageNet statistics (the STDC backbones were pretrained with them).
Checkpoints record the values they were trained with; these are the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def images_to_tensor(images: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """N x H x W x 3 (or H x W x 3) uint8 RGB -> N x 3 x H x W normalised float32.

    (x / 255 - mean) / std, computed as one multiply-add (as the exported graphs do).
    """
    import torch  # noqa: PLC0415 - the constants above are read where torch is not needed

    batch = torch.from_numpy(np.ascontiguousarray(images))
    if batch.ndim == 3:
        batch = batch[None]
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return batch.permute(0, 3, 1, 2).float() * (1.0 / (255.0 * std_t)) - mean_t / std_t
