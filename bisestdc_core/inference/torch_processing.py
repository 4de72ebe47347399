"""The torch pre- and post-processing shared by the ONNX export and the PyTorch engine.

Both paths run exactly these torch functions, so an exported graph and the PyTorch engine see
the same pixels: uint8 N x H x W x 3 -> float N x 3 x H x W (RGB order) -> bilinear resize to
the network size (align_corners=False, no antialias) -> ImageNet-style normalisation.
Resizing before normalising is exact (bilinear weights sum to one) and cheaper when the frame
is larger than the network. The torch-free part (channel orders, the default network size)
is :mod:`.processing`, which the runtime of exported models imports.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bisestdc_core.inference.processing import check_channel_order
from bisestdc_core.normalization import IMAGENET_MEAN, IMAGENET_STD


class Preprocess(nn.Module):
    """uint8 frames -> normalised network input.

    Args:
        network_size: (H, W) the network runs at.
        mean, std: per-channel RGB statistics on the 0..1 scale.
        channel_order: order of the incoming frames; ``bgr`` is flipped to RGB here.
        always_resize: emit the resize even when the frame already has the network size
            (needed when tracing a graph with dynamic H/W; at equal sizes it is an identity).

    Shapes: N x H x W x 3 uint8 -> N x 3 x h x w float32 (h, w = network_size).
    """

    def __init__(
        self, network_size: Sequence[int], mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD, channel_order: str = "rgb",
        always_resize: bool = False,
    ):
        super().__init__()
        self.network_size = (int(network_size[0]), int(network_size[1]))
        self.bgr = check_channel_order(channel_order) == "bgr"
        self.always_resize = always_resize
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std == x * scale + shift: one multiply-add per pixel.
        self.register_buffer("scale", 1.0 / (255.0 * std_t), persistent=False)
        self.register_buffer("shift", -mean_t / std_t, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float()
        if self.bgr:
            x = x.flip(1)
        if self.always_resize or tuple(x.shape[-2:]) != self.network_size:
            x = F.interpolate(x, size=self.network_size, mode="bilinear", align_corners=False)
        return x * self.scale + self.shift


def labels_from_logits(logits: torch.Tensor, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """N x C x h x w logits -> N x h x w train ids (argmax over classes), uint8 by default.

    The exported graphs ask for float32 and cast to uint8 as their last node (TensorRT accepts
    uint8 only at the graph's boundary).
    """
    return logits.argmax(dim=1).to(dtype)


def confidence_from_logits(logits: torch.Tensor, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """N x C x h x w logits -> N x h x w: max softmax probability x 255, rounded (whole numbers
    0..255 in ``dtype``, uint8 by default).

    max softmax = 1 / sum(exp(l - max l)); computed in fp32 for fp16 networks.
    """
    logits = logits.float()
    top = logits.amax(dim=1, keepdim=True)
    prob = 1.0 / torch.exp(logits - top).sum(dim=1)
    return torch.round(prob * 255.0).to(dtype)


def resize_nearest(maps: torch.Tensor, size: Sequence[int], always: bool = False) -> torch.Tensor:
    """N x h x w maps -> N x H x W of the same dtype, nearest (torch's floor rule, like OpenCV's).

    ``always`` emits the resize at equal sizes too (tracing graphs with dynamic H/W).
    """
    if not always and tuple(maps.shape[-2:]) == tuple(size):
        return maps
    # Through float: nearest copies values, so 0..255 survive exactly; uint8 Resize is not
    # implemented by every ONNX backend.
    out = F.interpolate(maps[:, None].float(), size=tuple(size), mode="nearest")
    return out[:, 0].to(maps.dtype)
