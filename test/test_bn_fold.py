"""BatchNorm folding: same logits in fp32 (and exactly, up to rounding, in fp64)."""

from __future__ import annotations

import pytest
import torch
from inference_helpers import nondegenerate_model
from torch import nn

from bisestdc_core.inference.bn_fold import fold_batchnorm


def _model(name):
    model = nondegenerate_model(name)
    # A random head gives logits of +-40; trained networks give a few units. Scale the last
    # 1x1 conv to that range so the fp32 tolerance is tested where it matters (rounding
    # error scales with the logits; the fp64 test below checks the algebra itself).
    with torch.no_grad():
        model.head.conv_out.weight.mul_(0.1)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bisestdc", "stdc1"])
def test_folded_logits_match_fp32(name):
    model = _model(name)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "original untouched"
    x = torch.randn(2, 3, 64, 128, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref, out = model(x), folded(x)
    assert ref.abs().max() > 1.0, "logits should not be trivially small"
    assert (ref - out).abs().max().item() < 1e-4


@pytest.mark.slow
def test_folded_logits_match_fp64():
    model = nondegenerate_model("bisestdc").double()
    folded = fold_batchnorm(model)
    x = torch.randn(1, 3, 64, 128, dtype=torch.float64)
    with torch.inference_mode():
        assert (model(x) - folded(x)).abs().max().item() < 1e-9


def test_unknown_batchnorm_is_reported():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4))
    with pytest.raises(RuntimeError, match="left 1 BatchNorm2d"):
        fold_batchnorm(model)
