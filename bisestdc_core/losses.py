"""Losses of the seed's recipe: OHEM cross-entropy, the detail-aggregation loss, and
:class:`SegLoss`, which combines them over a network's training outputs.

All are device-agnostic (they follow their inputs' device) and autocast-safe (they compute
in float32).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bisestdc_core.classes import IGNORE_INDEX


class OhemCELoss(nn.Module):
    """Online hard example mining cross-entropy, optionally class-weighted.

    Keeps every pixel whose probability for its true class is below ``thresh`` (loss above
    -log(thresh)), and at least ``n_min = N*H*W * min_kept_ratio`` pixels (the hardest).
    Ignored pixels never count. With ``class_weights`` the kept pixels' losses are averaged
    with the weight of their true class (sum(w * loss) / sum(w)); which pixels are kept is
    decided on the unweighted loss, so the weights change how much a class counts, not which
    pixels are hard.
    """

    def __init__(self, thresh: float = 0.7, min_kept_ratio: float = 1 / 16,
                 ignore_index: int = IGNORE_INDEX,
                 class_weights: Sequence[float] | None = None):
        super().__init__()
        self.loss_thresh = -math.log(thresh)
        self.min_kept_ratio = min_kept_ratio
        self.ignore_index = ignore_index
        weights = torch.tensor(list(class_weights), dtype=torch.float32) if class_weights \
            else torch.empty(0)
        # Not persistent: the weights are the config's, not the network's.
        self.register_buffer("class_weights", weights, persistent=False)

    def _kept(self, logits: torch.Tensor, labels: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-pixel losses, indices of the kept pixels), both 1-D."""
        loss = F.cross_entropy(
            logits.float(), labels.long(), ignore_index=self.ignore_index, reduction="none"
        ).flatten()
        n_min = min(int(labels.numel() * self.min_kept_ratio), loss.numel())
        hard = loss > self.loss_thresh
        if int(hard.sum()) > n_min:
            return loss, hard.nonzero().squeeze(1)
        return loss, loss.topk(n_min, sorted=False).indices

    def kept_pixels(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The per-pixel losses that OHEM keeps (1-D). logits N x C x H x W, labels N x H x W."""
        loss, kept = self._kept(logits, labels)
        return loss[kept]

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss, kept = self._kept(logits, labels)
        if not self.class_weights.numel():
            return loss[kept].mean()
        if self.class_weights.numel() != logits.shape[1]:
            raise ValueError(f"loss.class_weights has {self.class_weights.numel()} values for "
                             f"{logits.shape[1]} classes")
        target = labels.flatten()[kept].long()
        # Ignored pixels are only kept when fewer than n_min pixels are labelled: weight 0.
        valid = target != self.ignore_index
        weights = self.class_weights.to(loss.device)[target.clamp(0, logits.shape[1] - 1)] * valid
        return (loss[kept] * weights).sum() / weights.sum().clamp_min(1e-12)


def laplacian_kernel() -> torch.Tensor:
    """3x3 Laplacian (-1 around, 8 centre) as a 1 x 1 x 3 x 3 conv weight."""
    k = -torch.ones(3, 3)
    k[1, 1] = 8.0
    return k.view(1, 1, 3, 3)


def dice_loss(probs: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - (2|P.T| + s) / (|P| + |T| + s), per sample, averaged. Inputs N x 1 x H x W."""
    p = probs.flatten(1)
    t = targets.flatten(1)
    inter = (p * t).sum(1)
    return (1 - (2 * inter + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


class DetailAggregateLoss(nn.Module):
    """Detail loss: Laplacian-pyramid boundary targets, fixed fusion, BCE + dice.

    Targets: Laplacian of the label map at strides 1, 2, 4, clamped at 0, thresholded at
    0.1, nearest-upsampled to full size, fused by a 1x1 conv of weights (0.6, 0.3, 0.1) and
    thresholded at 0.1 again.
    """

    def __init__(self, threshold: float = 0.1):
        super().__init__()
        self.threshold = threshold
        self.register_buffer("laplacian", laplacian_kernel(), persistent=False)
        # The seed declares the fusion weights learnable, but the targets are computed without
        # gradient, so they never change: a constant, not a parameter an optimiser would list.
        self.register_buffer("fuse_kernel", torch.tensor([0.6, 0.3, 0.1]).view(1, 3, 1, 1),
                             persistent=False)

    def _binarise(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).float()

    @torch.no_grad()
    def detail_targets(self, labels: torch.Tensor) -> torch.Tensor:
        """labels N x H x W (train ids) -> N x 1 x H x W binary detail targets."""
        gt = labels.unsqueeze(1).float()
        size = gt.shape[-2:]
        levels = []
        for stride in (1, 2, 4):
            edges = F.conv2d(gt, self.laplacian, stride=stride, padding=1).clamp(min=0)
            if stride > 1:
                edges = F.interpolate(edges, size=size, mode="nearest")
            levels.append(self._binarise(edges))
        fused = F.conv2d(torch.cat(levels, dim=1), self.fuse_kernel.float())
        return self._binarise(fused)

    def forward(self, detail_logits: torch.Tensor, labels: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """detail_logits N x 1 x h x w, labels N x H x W -> (bce, dice)."""
        targets = self.detail_targets(labels)
        logits = detail_logits.float()
        if logits.shape[-2:] != targets.shape[-2:]:
            logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear",
                                   align_corners=True)
        bce = F.binary_cross_entropy_with_logits(logits, targets)
        return bce, dice_loss(torch.sigmoid(logits), targets)


class SegLoss(nn.Module):
    """The training loss: OHEM on the main head + ``aux_weight`` x OHEM on each auxiliary
    head + ``detail_weight`` x (detail BCE + dice).

    Its arguments are the fields of the training config's ``loss`` section, which holds their
    defaults (see :meth:`from_config`).
    """

    def __init__(self, *, ohem_thresh: float, ohem_min_kept_ratio: float, aux_weight: float,
                 detail_weight: float, class_weights: Sequence[float] = ()):
        super().__init__()
        self.ohem = OhemCELoss(ohem_thresh, ohem_min_kept_ratio, class_weights=class_weights)
        self.detail = DetailAggregateLoss()
        self.aux_weight = aux_weight
        self.detail_weight = detail_weight

    @classmethod
    def from_config(cls, loss_config: Any) -> SegLoss:
        """From a dataclass whose fields are this class's arguments (the config's ``loss``)."""
        return cls(**dataclasses.asdict(loss_config))

    def forward(self, outputs: Any, labels: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """outputs: a network's SegOutputs, labels N x H x W -> (total, detached parts)."""
        main = self.ohem(outputs.main, labels)
        aux = sum(self.ohem(a, labels) for a in outputs.aux)
        bce, dice = self.detail(outputs.detail, labels)
        total = main + self.aux_weight * aux + self.detail_weight * (bce + dice)
        parts = {"main": main.detach(), "aux": aux.detach(), "detail_bce": bce.detach(),
                 "detail_dice": dice.detach()}
        return total, parts
