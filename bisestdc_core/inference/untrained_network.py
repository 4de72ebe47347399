"""Street-like synthetic frames and BN statistics for untrained networks.

Randomly initialised networks often predict one class everywhere, which makes label-agreement
checks (ONNX vs PyTorch, fp16 vs fp32) meaningless. Frames with sky, road, blobs and edges, plus
BatchNorm running statistics measured on them, give spatially varied labels without training.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from bisestdc_core.image_tensors import images_to_tensor


def synthetic_frame(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random street-like RGB frame: H x W x 3 uint8."""
    frame = np.empty((height, width, 3), np.float32)
    horizon = int(height * rng.uniform(0.3, 0.6))
    sky = rng.uniform(120, 240, 3)
    ground = rng.uniform(40, 140, 3)
    ramp = np.linspace(0.7, 1.0, max(horizon, 1))[:, None, None]
    frame[:horizon] = sky * ramp
    frame[horizon:] = ground
    for _ in range(int(rng.integers(4, 12))):  # buildings, cars, poles, signs
        h = int(rng.integers(max(2, height // 20), max(3, height // 2)))
        w = int(rng.integers(max(2, width // 60), max(3, width // 4)))
        y = int(rng.integers(0, max(1, height - h)))
        x = int(rng.integers(0, max(1, width - w)))
        frame[y : y + h, x : x + w] = rng.uniform(0, 255, 3)
    frame += rng.normal(0, 8, frame.shape)
    frame = cv2.GaussianBlur(frame, (0, 0), sigmaX=max(0.5, width / 400))
    return np.clip(frame, 0, 255).astype(np.uint8)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, frames: list[np.ndarray]) -> nn.Module:
    """Set every BatchNorm's running mean/var to its statistics on ``frames`` (in place).

    Returns the model in eval mode. Frames must share one size.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    model(images_to_tensor(np.stack(frames)))
    return model.eval()
