"""Segmentation networks: STDC-Seg (STDC1-Seg, STDC2-Seg) and BiSeSTDC-Seg.

In ``eval()`` mode ``forward`` returns only the main logits (N x C x H x W at input size) and
computes no auxiliary or detail head. In ``train()`` mode it returns :class:`SegOutputs`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import STDC1_LAYERS, STDC2_LAYERS, BiSeSTDCBackbone, STDCNet
from .layers import (
    AttentionRefinementModule,
    ConvBNReLU,
    FeatureFusionModule,
    SegHead,
    init_weights,
    upsample_logits,
    upsample_nearest_to,
)

CONTEXT_CHANNELS = 128
FUSION_CHANNELS = 256


class SegOutputs(NamedTuple):
    """What a network returns in train mode.

    Attributes:
        main: N x C x H x W logits of the main head, at input size.
        aux: auxiliary logits, finest stride first (BiSeSTDC: 1/4, 1/8, 1/16; STDC-Seg: 1/8,
            1/16), each N x C x H x W at input size.
        detail: N x 1 x h x w detail logits at the detail head's own stride (1/4 for
            BiSeSTDC, 1/8 for STDC-Seg); the detail loss upsamples them.
    """

    main: torch.Tensor
    aux: tuple[torch.Tensor, ...]
    detail: torch.Tensor


class ContextPath(nn.Module):
    """Global context refined top-down with ARMs, nearest upsampling and 3x3 ConvBNReLUs.

    ``levels`` is how far down it goes: 2 -> outputs at 1/8 (STDC-Seg), 3 -> 1/4 (BiSeSTDC).
    Shapes: taps (feat8: 256, feat16: 512, feat32: 1024 ch) -> list of 128-ch maps, the
    finest first: [1/4 (levels=3),] 1/8, 1/16.
    """

    def __init__(self, levels: int = 2, channels: int = CONTEXT_CHANNELS):
        super().__init__()
        self.levels = levels
        self.conv_avg = ConvBNReLU(1024, channels, 1, padding=0)
        self.arm32 = AttentionRefinementModule(1024, channels)
        self.conv_head32 = ConvBNReLU(channels, channels, 3)
        self.arm16 = AttentionRefinementModule(512, channels)
        self.conv_head16 = ConvBNReLU(channels, channels, 3)
        if levels == 3:
            self.arm8 = AttentionRefinementModule(256, channels)
            self.conv_head8 = ConvBNReLU(channels, channels, 3)

    def forward(
        self, feat4: torch.Tensor, feat8: torch.Tensor, feat16: torch.Tensor,
        feat32: torch.Tensor,
    ) -> list[torch.Tensor]:
        avg = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))
        feat32_sum = self.arm32(feat32) + avg  # 1x1 global context broadcast over 1/32
        cp16 = self.conv_head32(upsample_nearest_to(feat32_sum, feat16))
        feat16_sum = self.arm16(feat16) + cp16
        cp8 = self.conv_head16(upsample_nearest_to(feat16_sum, feat8))
        if self.levels == 2:
            return [cp8, cp16]
        feat8_sum = self.arm8(feat8) + cp8
        cp4 = self.conv_head8(upsample_nearest_to(feat8_sum, feat4))
        return [cp4, cp8, cp16]


class STDCSeg(nn.Module):
    """STDC-Seg: FFM(backbone 1/8 tap, context 1/8) -> main head at 1/8.

    Aux heads Head(128, 64, n) at 1/8 and 1/16; detail head Head(256, 64, 1) on the 1/8 tap.
    """

    fusion_stride = 8

    def __init__(self, num_classes: int, layers: tuple[int, ...] = STDC1_LAYERS):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = STDCNet(layers)
        self.context = ContextPath(levels=2)
        self.ffm = FeatureFusionModule(256 + CONTEXT_CHANNELS, FUSION_CHANNELS)
        self.head = SegHead(FUSION_CHANNELS, 256, num_classes)
        self.aux_head8 = SegHead(CONTEXT_CHANNELS, 64, num_classes)
        self.aux_head16 = SegHead(CONTEXT_CHANNELS, 64, num_classes)
        self.detail_head = SegHead(256, 64, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | SegOutputs:
        """x: N x 3 x H x W (normalised RGB) -> logits N x C x H x W, or SegOutputs."""
        size = x.shape[-2:]
        _, feat4, feat8, feat16, feat32 = self.backbone(x)
        cp8, cp16 = self.context(feat4, feat8, feat16, feat32)
        fused8 = self.ffm(feat8, cp8)
        main = upsample_logits(self.head(fused8), size)
        if not self.training:
            return main
        aux = (
            upsample_logits(self.aux_head8(cp8), size),
            upsample_logits(self.aux_head16(cp16), size),
        )
        return SegOutputs(main, aux, self.detail_head(feat8))


class BiSeSTDCSeg(nn.Module):
    """BiSeSTDC-Seg: the context path continues to 1/4 and fuses with the detail branch there.

    FFM(detail-fused 1/4 tap: 256, context 1/4: 128) -> main head Head(256, 256, n) at 1/4.
    Aux heads: Head(128, 128, n) at 1/4, Head(128, 64, n) at 1/8 and 1/16.
    Detail head Head(256, 64, 1) on the detail branch output (1/4).
    """

    fusion_stride = 4

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = BiSeSTDCBackbone()
        self.context = ContextPath(levels=3)
        self.ffm = FeatureFusionModule(256 + CONTEXT_CHANNELS, FUSION_CHANNELS)
        self.head = SegHead(FUSION_CHANNELS, 256, num_classes)
        self.aux_head4 = SegHead(CONTEXT_CHANNELS, 128, num_classes)
        self.aux_head8 = SegHead(CONTEXT_CHANNELS, 64, num_classes)
        self.aux_head16 = SegHead(CONTEXT_CHANNELS, 64, num_classes)
        self.detail_head = SegHead(256, 64, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | SegOutputs:
        """x: N x 3 x H x W (normalised RGB) -> logits N x C x H x W, or SegOutputs."""
        size = x.shape[-2:]
        _, detail4, feat8, feat16, feat32 = self.backbone(x)
        cp4, cp8, cp16 = self.context(detail4, feat8, feat16, feat32)
        fused4 = self.ffm(detail4, cp4)
        main = upsample_logits(self.head(fused4), size)
        if not self.training:
            return main
        aux = (
            upsample_logits(self.aux_head4(cp4), size),
            upsample_logits(self.aux_head8(cp8), size),
            upsample_logits(self.aux_head16(cp16), size),
        )
        return SegOutputs(main, aux, self.detail_head(detail4))


def stdc1_seg(num_classes: int) -> STDCSeg:
    return STDCSeg(num_classes, STDC1_LAYERS)


def stdc2_seg(num_classes: int) -> STDCSeg:
    return STDCSeg(num_classes, STDC2_LAYERS)


def bisestdc_seg(num_classes: int) -> BiSeSTDCSeg:
    return BiSeSTDCSeg(num_classes)
