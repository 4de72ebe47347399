"""Fold BatchNorm into the preceding convolution for inference.

The networks pair a bias-free Conv2d with a BatchNorm2d in three places: ``ConvX`` /
``ConvBNReLU`` (``conv`` -> ``bn``), the ARM attention (``conv_atten`` -> ``bn_atten``) and the
stride-2 ``avd_layer`` (``Sequential(Conv2d, BatchNorm2d)``). Folding removes a full pass over
every feature map; in eval mode the result is the same function up to float rounding.
"""

from __future__ import annotations

import copy
import logging

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

log = logging.getLogger(__name__)

# (conv attribute, bn attribute) pairs that forward() applies back to back.
_ATTR_PAIRS = (("conv", "bn"), ("conv_atten", "bn_atten"))


def _fold_attr_pairs(module: nn.Module) -> int:
    folded = 0
    for conv_name, bn_name in _ATTR_PAIRS:
        conv = getattr(module, conv_name, None)
        bn = getattr(module, bn_name, None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Identity())
            folded += 1
    return folded


def _fold_sequential(seq: nn.Sequential) -> int:
    folded = 0
    names = list(seq._modules)
    for first, second in zip(names, names[1:]):
        conv, bn = seq._modules[first], seq._modules[second]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            seq._modules[first] = fuse_conv_bn_eval(conv, bn)
            seq._modules[second] = nn.Identity()
            folded += 1
    return folded


def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return ``model`` (a copy unless ``inplace``) in eval mode with Conv+BN pairs folded.

    Raises:
        RuntimeError: if a BatchNorm2d is left over (a block this walk does not know), since a
            half-folded network would be silently slower, not wrong, and we want to know.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    folded = 0
    for module in list(model.modules()):
        folded += _fold_attr_pairs(module)
        if isinstance(module, nn.Sequential):
            folded += _fold_sequential(module)
    left = [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if left:
        raise RuntimeError(f"BatchNorm folding left {len(left)} BatchNorm2d: {left[:5]}")
    log.debug("folded %d Conv2d+BatchNorm2d pairs", folded)
    return model
