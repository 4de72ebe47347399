"""STDC backbones (STDC1 = "STDCNet813", STDC2 = "STDCNet1446") and the BiSeSTDC backbone.

Each backbone returns its five taps ``(feat2, feat4, feat8, feat16, feat32)`` at strides
2, 4, 8, 16 and 32 of the input.
"""

from __future__ import annotations

import torch
from torch import nn

from bisestdc_core.models.layers import CatBottleneck, ConvX, FeatureFusionModule

STDC1_LAYERS = (2, 2, 2)
STDC2_LAYERS = (4, 5, 3)
TAP_STRIDES = (2, 4, 8, 16, 32)  # of the five taps every backbone returns, in order


def _make_stdc_features(base: int, layers: tuple[int, ...]) -> nn.Sequential:
    """ConvX(3, base/2, s2), ConvX(base/2, base, s2), then CatBottleneck stages."""
    features: list[nn.Module] = [ConvX(3, base // 2, 3, 2), ConvX(base // 2, base, 3, 2)]
    in_channels = base
    for stage, depth in enumerate(layers):
        out_channels = base * 4 * 2**stage
        for block in range(depth):
            stride = 2 if block == 0 else 1
            features.append(CatBottleneck(in_channels, out_channels, 4, stride))
            in_channels = out_channels
    return nn.Sequential(*features)


class STDCNet(nn.Module):
    """STDC backbone without its ImageNet classifier.

    Taps: 1/2 (32 ch), 1/4 (64), 1/8 (256), 1/16 (512), 1/32 (1024).
    """

    def __init__(self, layers: tuple[int, ...] = STDC1_LAYERS, base: int = 64):
        super().__init__()
        self.layers = tuple(layers)
        # Channels of each tap by stride: the segmentation network sizes its heads from them.
        self.tap_channels = dict(zip(TAP_STRIDES, (base // 2, base, base * 4, base * 8,
                                                   base * 16)))
        self.features = _make_stdc_features(base, self.layers)
        # Index ranges of each stride in `features`: stem convs, then one range per stage.
        b8 = 2 + self.layers[0]
        b16 = b8 + self.layers[1]
        self._stage_slices = ((0, 1), (1, 2), (2, b8), (b8, b16), (b16, len(self.features)))

    def _run(self, start: int, stop: int, x: torch.Tensor) -> torch.Tensor:
        for i in range(start, stop):
            x = self.features[i](x)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x: N x 3 x H x W -> (feat2, feat4, feat8, feat16, feat32)."""
        feats = []
        for start, stop in self._stage_slices:
            x = self._run(start, stop, x)
            feats.append(x)
        return tuple(feats)


DETAIL_CHANNELS = 256  # the detail branch's output, and BiSeSTDC's fused 1/4 tap


class DetailBranch(nn.Sequential):
    """BiSeSTDC's detail branch: ConvX(3,32,s2), ConvX(32,64,s1), CatBottleneck(64->256, s2).

    Shapes: N x 3 x H x W -> N x 256 x H/4 x W/4.
    """

    def __init__(self):
        super().__init__(ConvX(3, 32, 3, 2), ConvX(32, 64, 3, 1),
                         CatBottleneck(64, DETAIL_CHANNELS, 4, 2))


class BiSeSTDCBackbone(STDCNet):
    """STDC1 semantic branch plus a detail branch, fused at 1/4 resolution.

    The 1/4 tap is FFM(concat(detail 256 ch, semantic 1/4 tap 64 ch)) -> 256 ch; the other
    taps are STDC1's: 1/2 (32), 1/4 (256), 1/8 (256), 1/16 (512), 1/32 (1024).
    """

    def __init__(self, base: int = 64):
        super().__init__(STDC1_LAYERS, base)
        self.detail_branch = DetailBranch()
        self.detail_fusion = FeatureFusionModule(DETAIL_CHANNELS + self.tap_channels[4],
                                                 DETAIL_CHANNELS)
        self.tap_channels[4] = DETAIL_CHANNELS

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feat2, feat4, feat8, feat16, feat32 = super().forward(x)
        detail4 = self.detail_branch(x)
        fused4 = self.detail_fusion(detail4, feat4)
        return feat2, fused4, feat8, feat16, feat32
