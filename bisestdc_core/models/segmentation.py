"""Segmentation networks: one class, three specs (STDC1-Seg, STDC2-Seg, BiSeSTDC-Seg).

The networks differ only in their backbone, the stride at which the context path meets the
backbone (the fusion stride: 1/8 for STDC-Seg, 1/4 for BiSeSTDC-Seg) and their auxiliary
heads; :class:`NetworkSpec` says which, :class:`SegmentationNetwork` builds any of them.

In ``eval()`` mode ``forward`` returns only the main logits (N x C x H x W at input size) and
computes no auxiliary or detail head. In ``train()`` mode it returns :class:`SegOutputs`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bisestdc_core.models.backbones import (
    STDC1_LAYERS,
    STDC2_LAYERS,
    TAP_STRIDES,
    BiSeSTDCBackbone,
    STDCNet,
)
from bisestdc_core.models.layers import (
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
MAIN_HEAD_CHANNELS = 256  # Head(256, 256, n)
DETAIL_HEAD_CHANNELS = 64  # Head(256, 64, 1)


class SegOutputs(NamedTuple):
    """What a network returns in train mode.

    Attributes:
        main: N x C x H x W logits of the main head, at input size.
        aux: auxiliary logits, finest stride first (BiSeSTDC: 1/4, 1/8, 1/16; STDC-Seg: 1/8,
            1/16), each N x C x H x W at input size.
        detail: N x 1 x h x w detail logits at the fusion stride (1/4 for BiSeSTDC, 1/8 for
            STDC-Seg); the detail loss upsamples them.
    """

    main: torch.Tensor
    aux: tuple[torch.Tensor, ...]
    detail: torch.Tensor


class ContextPath(nn.Module):
    """Global context refined top-down, one level per ARM, down to ``finest_stride``.

    avg = ConvBNReLU 1x1 of the pooled 1/32 tap; then for s = 32, 16[, 8]: ARM_s(tap s) plus
    the coarser context, nearest-upsampled to 1/(s/2) and ConvBNReLU 3x3 (``conv_head{s}``).
    STDC-Seg stops at 1/8 (ARM32, ARM16); BiSeSTDC-Seg goes on to 1/4 (ARM8).

    Shapes: taps {s: N x C_s x H/s x W/s} -> {s: N x 128 x H/s x W/s} for s = finest_stride
    up to 16.
    """

    def __init__(self, tap_channels: Mapping[int, int], finest_stride: int,
                 channels: int = CONTEXT_CHANNELS):
        super().__init__()
        # The ARM at stride s yields the context map at s / 2.
        self.arm_strides = tuple(s for s in (32, 16, 8) if s > finest_stride)
        self.conv_avg = ConvBNReLU(tap_channels[32], channels, 1, padding=0)
        for stride in self.arm_strides:
            self.add_module(f"arm{stride}",
                            AttentionRefinementModule(tap_channels[stride], channels))
            self.add_module(f"conv_head{stride}", ConvBNReLU(channels, channels, 3))

    def forward(self, taps: Mapping[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        context = self.conv_avg(F.adaptive_avg_pool2d(taps[32], 1))  # broadcast over 1/32
        maps = {}
        for stride in self.arm_strides:
            refined = getattr(self, f"arm{stride}")(taps[stride]) + context
            finer = stride // 2
            context = getattr(self, f"conv_head{stride}")(
                upsample_nearest_to(refined, taps[finer]))
            maps[finer] = context
        return maps


@dataclass(frozen=True)
class NetworkSpec:
    """What distinguishes one segmentation network from another.

    Attributes:
        title: the network's published name, e.g. ``BiSeSTDC-Seg``.
        backbone: builds the backbone; it returns taps at TAP_STRIDES and has their channels
            in ``tap_channels``.
        fusion_stride: where the FFM fuses the backbone tap with the context path; the main
            and detail heads run there.
        aux_heads: ``(stride, mid channels)`` of each auxiliary Head(128, mid, n) on the
            context path, finest first.
    """

    title: str
    backbone: Callable[[], nn.Module]
    fusion_stride: int
    aux_heads: tuple[tuple[int, int], ...]


class SegmentationNetwork(nn.Module):
    """Backbone -> context path -> FFM(backbone tap, context) at the fusion stride -> main head.

    Training adds the auxiliary heads (on the context maps) and the detail head Head(256,
    64, 1) on the backbone's tap at the fusion stride. Module names are the published
    STDC-Seg ones (``aux_head{stride}`` for the auxiliary heads), so checkpoints map onto them.
    """

    def __init__(self, spec: NetworkSpec, num_classes: int):
        super().__init__()
        self.title = spec.title
        self.num_classes = num_classes
        self.fusion_stride = spec.fusion_stride
        self.aux_strides = tuple(stride for stride, _ in spec.aux_heads)
        self.backbone = spec.backbone()
        taps = self.backbone.tap_channels
        fused = taps[self.fusion_stride]
        self.context = ContextPath(taps, self.fusion_stride)
        self.ffm = FeatureFusionModule(fused + CONTEXT_CHANNELS, FUSION_CHANNELS)
        self.head = SegHead(FUSION_CHANNELS, MAIN_HEAD_CHANNELS, num_classes)
        for stride, mid in spec.aux_heads:
            self.add_module(f"aux_head{stride}", SegHead(CONTEXT_CHANNELS, mid, num_classes))
        self.detail_head = SegHead(fused, DETAIL_HEAD_CHANNELS, 1)
        init_weights(self)

    def extra_repr(self) -> str:
        return f"{self.title}, {self.num_classes} classes, fusion at 1/{self.fusion_stride}"

    def forward(self, x: torch.Tensor) -> torch.Tensor | SegOutputs:
        """x: N x 3 x H x W (normalised RGB) -> logits N x C x H x W, or SegOutputs."""
        size = x.shape[-2:]
        taps = dict(zip(TAP_STRIDES, self.backbone(x)))
        context = self.context(taps)
        feat = taps[self.fusion_stride]
        main = upsample_logits(self.head(self.ffm(feat, context[self.fusion_stride])), size)
        if not self.training:
            return main
        aux = tuple(upsample_logits(getattr(self, f"aux_head{stride}")(context[stride]), size)
                    for stride in self.aux_strides)
        return SegOutputs(main, aux, self.detail_head(feat))


STDC_SEG_AUX_HEADS = ((8, 64), (16, 64))
STDC1_SEG = NetworkSpec("STDC1-Seg", partial(STDCNet, STDC1_LAYERS), 8, STDC_SEG_AUX_HEADS)
STDC2_SEG = NetworkSpec("STDC2-Seg", partial(STDCNet, STDC2_LAYERS), 8, STDC_SEG_AUX_HEADS)
# The small-object idea: the final fusion runs at 1/4 instead of 1/8, with one more aux head.
BISESTDC_SEG = NetworkSpec("BiSeSTDC-Seg", BiSeSTDCBackbone, 4, ((4, 128), *STDC_SEG_AUX_HEADS))
