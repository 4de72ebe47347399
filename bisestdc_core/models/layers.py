"""Building blocks shared by the STDC backbones and the segmentation networks.

Every block here is used by all three networks (BiSeSTDC-Seg, STDC1-Seg, STDC2-Seg); none is
copied per variant. Attribute names follow the published STDC-Seg code (``conv``, ``bn``,
``conv_list``, ``avd_layer``, ``conv_atten``...) so that checkpoints map onto them one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvX(nn.Module):
    """Conv k x k (stride s, padding k//2, no bias) -> BatchNorm -> ReLU.

    Shapes: N x in x H x W -> N x out x H/s x W/s.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class ConvBNReLU(ConvX):
    """ConvX with explicit padding, as the heads and the context path use it."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
        padding: int | None = None,
    ):
        super().__init__(in_channels, out_channels, kernel, stride)
        if padding is not None:
            self.conv.padding = (padding, padding)


class CatBottleneck(nn.Module):
    """STDC module: four convolutions whose outputs are concatenated.

    conv_list[0]: 1x1 in -> out/2; conv_list[1]: 3x3 out/2 -> out/4;
    conv_list[2]: 3x3 out/4 -> out/8; conv_list[3]: 3x3 out/8 -> out/8.
    With stride 2 the first output goes through a depthwise 3x3/2 conv + BN (``avd_layer``)
    before conv_list[1], and is average-pooled (3x3/2, padding 1) for the concatenation.

    Shapes: N x in x H x W -> N x out x H/s x W/s, out = out/2 + out/4 + out/8 + out/8.
    """

    def __init__(self, in_channels: int, out_channels: int, block_num: int = 4, stride: int = 1):
        super().__init__()
        if block_num != 4:
            raise ValueError("CatBottleneck is defined for block_num=4 (the STDC networks)")
        half = out_channels // 2
        self.stride = stride
        if stride == 2:
            self.avd_layer = nn.Sequential(
                nn.Conv2d(half, half, 3, stride=2, padding=1, groups=half, bias=False),
                nn.BatchNorm2d(half),
            )
            self.skip = nn.AvgPool2d(kernel_size=3, stride=2, padding=1)
        self.conv_list = nn.ModuleList(
            [
                ConvX(in_channels, half, kernel=1),
                ConvX(half, out_channels // 4),
                ConvX(out_channels // 4, out_channels // 8),
                ConvX(out_channels // 8, out_channels // 8),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv_list[0](x)
        out2 = self.conv_list[1](self.avd_layer(out1) if self.stride == 2 else out1)
        out3 = self.conv_list[2](out2)
        out4 = self.conv_list[3](out3)
        if self.stride == 2:
            out1 = self.skip(out1)
        return torch.cat([out1, out2, out3, out4], dim=1)


class AttentionRefinementModule(nn.Module):
    """ARM: ConvBNReLU 3x3, then channel attention (GAP -> 1x1 conv -> BN -> sigmoid).

    Shapes: N x in x H x W -> N x out x H x W.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, 3)
        self.conv_atten = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        atten = torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))
        return feat * atten


class FeatureFusionModule(nn.Module):
    """FFM: concat -> ConvBNReLU 1x1 -> squeeze-excite attention, residual.

    ``forward(a, b)`` concatenates in argument order (a first), which the checkpoints rely on.
    Shapes: N x Ca x H x W, N x Cb x H x W (Ca + Cb = in) -> N x out x H x W.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.convblk = ConvBNReLU(in_channels, out_channels, 1, padding=0)
        self.conv1 = nn.Conv2d(out_channels, out_channels // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels // 4, out_channels, 1, bias=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([a, b], dim=1))
        atten = F.adaptive_avg_pool2d(feat, 1)
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(atten))))
        return feat * atten + feat


class SegHead(nn.Module):
    """Head(in, mid, n): ConvBNReLU 3x3 in -> mid, then 1x1 conv mid -> n (no bias).

    Shapes: N x in x H x W -> N x n x H x W.
    """

    def __init__(self, in_channels: int, mid_channels: int, num_outputs: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, mid_channels, 3)
        self.conv_out = nn.Conv2d(mid_channels, num_outputs, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


def upsample_nearest_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Nearest upsampling of ``x`` to the spatial size of ``ref`` (context path)."""
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")


def upsample_logits(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, align_corners=True: how every logit map reaches the input size."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def init_weights(module: nn.Module) -> None:
    """Kaiming (fan-out) for convolutions, unit BN, zero biases: the STDC initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
